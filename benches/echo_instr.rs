//! A fixed number of TCP echo round trips (50 connections driven by a blocking client on
//! the main thread) against the echo server of `benches/net.rs` on a 1-worker aioloop or
//! tokio runtime: `benches/echo_instr.sh` runs it under callgrind and prints the server
//! thread's user-space instructions per round trip for both runtimes — a figure the shared
//! machine's load does not move, unlike time.
//!
//! ```sh
//! echo_instr aioloop|tokio ROUNDS [SIZE]   # ROUNDS x 50 round trips of SIZE (64) bytes
//! ```
use std::io::{Read, Write};
use std::net::TcpStream;

#[path = "common/echo.rs"]
mod echo;
use echo::{aioloop_server, tokio_server};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].as_str();
    let n: usize = args[2].parse().unwrap();
    let size: usize = args.get(3).map_or(64, |s| s.parse().unwrap());
    let aio;
    let tok;
    let addr = if which == "aioloop" {
        aio = aioloop::Runtime::builder().workers(1).build().unwrap();
        aioloop_server(&aio)
    } else {
        tok = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        tokio_server(&tok)
    };
    let mut conns: Vec<TcpStream> = (0..50)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            c
        })
        .collect();
    let msg = vec![7u8; size];
    let mut back = vec![0u8; size];
    for _ in 0..n {
        for c in conns.iter_mut() {
            c.write_all(&msg).unwrap();
        }
        for c in conns.iter_mut() {
            c.read_exact(&mut back).unwrap();
        }
    }
    drop(conns);
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::process::exit(0);
}
