extern crate aioloop_macros as aioloop;

#[aioloop::test]
fn not_async() {}

#[aioloop::test]
async fn with_argument(n: u32) {
    let _ = n;
}

#[aioloop::test(timeout = "soon")]
async fn bad_timeout() {}

#[aioloop::test(local, workers = 2)]
async fn local_with_workers() {}

#[aioloop::main(timeout = "1s")]
async fn main() {}
