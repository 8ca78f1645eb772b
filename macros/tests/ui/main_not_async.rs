extern crate aioloop_macros as aioloop;

#[aioloop::main]
fn main() {}
