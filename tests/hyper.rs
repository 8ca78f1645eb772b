//! hyper on aioloop (feature `hyper`): `examples/hyper_server.rs`'s server, started on
//! port 0, answers hyper clients running on aioloop too, over HTTP/1.1 (several requests
//! on one keep-alive connection, and several connections at once) and HTTP/2 (concurrent
//! streams on one connection, which go through `HyperExecutor`); on the runtime (2
//! workers) and on a `LocalLoop`.

#[allow(dead_code)]
#[path = "../examples/hyper_server.rs"]
mod server;

mod common;

use aioloop::compat::hyper::{HyperExecutor, HyperTimer};
use aioloop::net::{TcpListener, TcpStream};
use common::{guarded, new_loop, runtime};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

async fn start(http2: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    aioloop::create_task(server::serve(listener, http2));
    addr
}

fn get(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(path).body(Empty::new()).unwrap()
}

async fn body_of(resp: hyper::Response<hyper::body::Incoming>) -> Vec<u8> {
    assert_eq!(resp.status(), 200);
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// HTTP/1.1: five requests on one keep-alive connection, then ten connections at once.
async fn http1_round_trips() {
    let addr = start(false).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
    aioloop::create_task(conn);
    for i in 0..5 {
        // The previous response done, the connection takes the next request.
        sender.ready().await.unwrap();
        let resp = sender.send_request(get(&format!("/{i}"))).await.unwrap();
        assert_eq!(body_of(resp).await, b"Hello, World!");
    }
    let clients: Vec<_> = (0..10)
        .map(|_| {
            aioloop::create_task(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(stream).await.unwrap();
                aioloop::create_task(conn);
                let resp = sender.send_request(get("/")).await.unwrap();
                body_of(resp).await
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.await.unwrap(), b"Hello, World!");
    }
}

/// HTTP/2: twenty concurrent streams on one connection.
async fn http2_round_trips() {
    let addr = start(true).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
        .timer(HyperTimer)
        .handshake(stream)
        .await
        .unwrap();
    aioloop::create_task(conn);
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let mut sender = sender.clone();
            aioloop::create_task(async move {
                let resp = sender
                    .send_request(get(&format!("http://x/{i}")))
                    .await
                    .unwrap();
                body_of(resp).await
            })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), b"Hello, World!");
    }
}

/// `HyperTimer::reset` moves a pending sleep's deadline in place (hyper resets its
/// header-read timeout per request): an hour-long sleep reset to now completes, and the
/// boxed sleep is the same allocation afterwards.
#[test]
fn hyper_timer_reset_moves_the_deadline_in_place() {
    use hyper::rt::Timer;
    guarded("timer reset", || {
        runtime(1).block_on(async {
            let timer = HyperTimer;
            let mut sleep = timer.sleep(std::time::Duration::from_secs(3600));
            let before = &*sleep as *const dyn hyper::rt::Sleep as *const ();
            // Registered on the wheel with the hour-long deadline first.
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(sleep.as_mut().poll(cx).is_pending())
            })
            .await;
            assert!(polled, "an hour-long sleep is pending");
            timer.reset(&mut sleep, std::time::Instant::now());
            let after = &*sleep as *const dyn hyper::rt::Sleep as *const ();
            assert_eq!(before, after, "reset reuses the allocation");
            aioloop::timeout(std::time::Duration::from_secs(10), sleep)
                .await
                .expect("the reset sleep completes");
        })
    });
}

/// HyperTimer's sleeps skip the first poll's clock read (their deadline is fresh): on a
/// worker's wheel a deadline already past still completes (at the loop's next timer pass),
/// and a future one never completes before it (rule X6's "never before its deadline").
#[test]
fn hyper_timer_sleep_on_the_wheel_never_ends_early() {
    use hyper::rt::Timer;
    guarded("timer wheel", || {
        let rt = runtime(1);
        rt.block_on(async {
            aioloop::create_task(async {
                let timer = HyperTimer;
                let past = std::time::Instant::now() - std::time::Duration::from_secs(1);
                aioloop::timeout(std::time::Duration::from_secs(10), timer.sleep_until(past))
                    .await
                    .expect("a past deadline completes");
                let at = std::time::Instant::now() + std::time::Duration::from_millis(20);
                timer.sleep_until(at).await;
                assert!(std::time::Instant::now() >= at, "woke before the deadline");
            })
            .await
            .expect("the sleeping task");
        })
    });
}

#[test]
fn http1_on_runtime() {
    guarded("http1 runtime", || runtime(2).block_on(http1_round_trips()));
}

#[test]
fn http1_on_local_loop() {
    guarded("http1 local", || {
        new_loop().run_until_complete(http1_round_trips()).unwrap()
    });
}

#[test]
fn http2_on_runtime() {
    guarded("http2 runtime", || runtime(2).block_on(http2_round_trips()));
}

#[test]
fn http2_on_local_loop() {
    guarded("http2 local", || {
        new_loop().run_until_complete(http2_round_trips()).unwrap()
    });
}

/// A `UnixStream` pair carries HTTP/1 (hyper I/O on Unix sockets).
#[test]
fn http1_over_a_unix_pair() {
    guarded("http1 unix", || {
        runtime(2).block_on(async {
            let (a, b) = aioloop::net::unix::UnixStream::pair().unwrap();
            aioloop::create_task(async move {
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let body = format!("you asked for {}", req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from(body)),
                    ))
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(a, service)
                    .await
                    .unwrap();
            });
            let (mut sender, conn) = hyper::client::conn::http1::handshake(b).await.unwrap();
            aioloop::create_task(conn);
            let resp = sender.send_request(get("/unix")).await.unwrap();
            assert_eq!(body_of(resp).await, b"you asked for /unix");
        })
    });
}

/// One I/O object made of a read half and a write half: hyper needs both traits on one
/// type, and a caller holding `split` halves (borrowed) or `into_split` ones builds this.
struct Joined<R, W>(R, W);

impl<R: hyper::rt::Read + Unpin, W: Unpin> hyper::rt::Read for Joined<R, W> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: hyper::rt::Write + Unpin> hyper::rt::Write for Joined<R, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.1).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.1).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.1).poll_shutdown(cx)
    }
}

/// hyper's traits on the borrowed halves (`split`) as on the owned ones: an HTTP/1
/// server reads and writes a socket it only borrows, the client uses owned halves.
#[test]
fn http1_over_split_halves() {
    guarded("http1 halves", || {
        runtime(2).block_on(async {
            let (a, b) = aioloop::net::unix::UnixStream::pair().unwrap();
            let server = aioloop::create_task(async move {
                let (r, w) = a.split();
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let body = format!("halves served {}", req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from(body)),
                    ))
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(Joined(r, w), service)
                    .await
            });
            let (r, w) = b.into_split();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(Joined(r, w))
                .await
                .unwrap();
            let client = aioloop::create_task(conn);
            let resp = sender.send_request(get("/split")).await.unwrap();
            assert_eq!(body_of(resp).await, b"halves served /split");
            drop(sender);
            client.await.unwrap().unwrap();
            server.await.unwrap().unwrap();
        })
    });
}
