//! An HTTP hello-world server: hyper 1.x on aioloop (feature `hyper`).
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server -- [ADDR] [WORKERS] [h2]
//! curl http://127.0.0.1:3000/          # Hello, World!
//! curl --http2-prior-knowledge http://127.0.0.1:3000/    # with `h2`
//! ```
//!
//! ADDR defaults to 127.0.0.1:3000, WORKERS to 1; `h2` serves HTTP/2 (prior knowledge)
//! instead of HTTP/1.1. Each connection is a task; hyper's HTTP/2 streams are tasks too
//! (through `HyperExecutor`), and its timers run on aioloop's sleep (`HyperTimer`).
//! `tests/hyper.rs` includes this file and drives `serve` with a hyper client.

use std::convert::Infallible;
use std::io;

use aioloop::compat::hyper::{HyperExecutor, HyperTimer};
use aioloop::net::{TcpListener, TcpStream};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

/// The one handler: "Hello, World!" for every request.
async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// Serves one connection with HTTP/1.1 or HTTP/2.
async fn serve_connection(stream: TcpStream, http2: bool) {
    let service = hyper::service::service_fn(hello);
    let result = if http2 {
        hyper::server::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer)
            .serve_connection(stream, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .serve_connection(stream, service)
            .await
    };
    if let Err(e) = result {
        // A client going away mid-request is routine; anything else is worth a line.
        if !e.is_incomplete_message() {
            eprintln!("connection error: {e}");
        }
    }
}

/// Accepts connections on `listener` forever, each served by a task of its own.
pub async fn serve(listener: TcpListener, http2: bool) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        aioloop::create_task(serve_connection(stream, http2));
    }
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let http2 = args.next().is_some_and(|a| a == "h2");
    let rt = aioloop::Runtime::builder()
        .workers(workers)
        .build()
        .map_err(io::Error::other)?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        println!(
            "listening on http://{} ({} worker(s), {})",
            listener.local_addr()?,
            workers,
            if http2 { "HTTP/2" } else { "HTTP/1.1" }
        );
        // The accept loop runs as a task on the workers (not on this thread, which only
        // waits), so each connection's task starts on the worker that accepted it.
        aioloop::create_task(serve(listener, http2))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
    })
}
