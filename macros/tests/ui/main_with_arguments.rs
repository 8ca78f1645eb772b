extern crate aioloop_macros as aioloop;

#[aioloop::main(workers = 2)]
async fn main(args: Vec<String>) {
    let _ = args;
}
