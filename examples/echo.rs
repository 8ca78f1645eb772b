//! A TCP echo server and its client on aioloop.
//!
//! ```text
//! cargo run --example echo                  # server and a client in one process
//! cargo run --example echo -- server 7000   # a server on 127.0.0.1:7000
//! cargo run --example echo -- client 7000   # 100 round trips against it
//! ```
//!
//! The server accepts in a loop and serves each connection in its own task (on whichever
//! worker runs it; the socket's registration stays on the poller of the worker that first
//! waited on it). Every read and write tries the system call first and waits for
//! readiness only on `EWOULDBLOCK`.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use aioloop::net::{TcpListener, TcpStream};

/// Echoes one connection until the client closes it.
async fn serve(conn: TcpStream) -> io::Result<u64> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut echoed = 0;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(echoed);
        }
        conn.write_all(&buf[..n]).await?;
        echoed += n as u64;
    }
}

/// Accepts forever (or `limit` connections), one task per connection.
async fn server(listener: TcpListener, limit: Option<usize>) -> io::Result<()> {
    let mut served = 0;
    while limit.is_none_or(|l| served < l) {
        let (conn, peer) = listener.accept().await?;
        served += 1;
        aioloop::create_task(async move {
            match serve(conn).await {
                Ok(n) => println!("server: {peer} done after {n} bytes"),
                Err(e) => println!("server: {peer} failed: {e}"),
            }
        });
    }
    Ok(())
}

/// `rounds` round trips of a 64-byte message; the mean round-trip time.
async fn client(addr: SocketAddr, rounds: u32) -> io::Result<f64> {
    let conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let msg = [b'e'; 64];
    let mut back = [0u8; 64];
    let start = Instant::now();
    for _ in 0..rounds {
        conn.write_all(&msg).await?;
        conn.read_exact(&mut back).await?;
        assert_eq!(back, msg);
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(rounds))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = aioloop::Runtime::builder().workers(2).build()?;
    let port = |i: usize| -> Result<u16, Box<dyn std::error::Error>> {
        Ok(args.get(i).map_or(Ok(7000), |p| p.parse())?)
    };
    match args.first().map(String::as_str) {
        Some("server") => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port(1)?));
            rt.block_on(async move {
                let listener = TcpListener::bind(addr).await?;
                println!("echo server on {}", listener.local_addr()?);
                server(listener, None).await
            })?;
        }
        Some("client") => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port(1)?));
            let rtt = rt.block_on(client(addr, 100))?;
            println!("100 round trips of 64 B: {:.1} µs each", rtt * 1e6);
        }
        _ => {
            rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                println!("echo server on {addr}; 4 clients, 1,000 round trips each");
                let srv = aioloop::create_task(server(listener, Some(4)));
                let clients: Vec<_> = (0..4)
                    .map(|_| aioloop::create_task(client(addr, 1000)))
                    .collect();
                for (i, c) in clients.into_iter().enumerate() {
                    let rtt = c.await.expect("client task")?;
                    println!("client {i}: {:.1} µs per round trip", rtt * 1e6);
                }
                srv.await.expect("server task")
            })?;
        }
    }
    Ok(())
}
