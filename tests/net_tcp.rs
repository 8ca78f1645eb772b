//! `aioloop::net` over TCP, UDP and Unix sockets: half-close and EOF (rule N5), faults —
//! refused, reset, closed — as errors (N6), many concurrent loopback connections (N1, N2),
//! a connection that moves between tasks on different threads mid-conversation (N3), and
//! the futures-io traits on the stream types.

use std::io::ErrorKind;
use std::net::Shutdown;
use std::time::Duration;

use aioloop::net::unix::{UnixDatagram, UnixStream};
use aioloop::net::{TcpListener, TcpStream, UdpSocket};

mod common;
use common::{guarded, runtime};

/// A listener, a client connected to it and the accepted server side.
async fn connected() -> (TcpListener, TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (s, peer) = l.accept().await.unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (l, c, s)
}

/// N5: after the client's `shutdown(Write)` the server reads its data then EOF (again and
/// again), and can still answer on the other direction.
#[test]
fn n5_half_close_and_eof() {
    guarded("half-close", || {
        runtime(2).block_on(async {
            let (_l, c, s) = connected().await;
            c.write_all(b"request").await.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 3];
            loop {
                match s.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, b"request");
            assert_eq!(s.read(&mut buf).await.unwrap(), 0, "EOF stays EOF");
            s.write_all(b"reply").await.unwrap();
            drop(s);
            let mut reply = [0u8; 5];
            c.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply, b"reply");
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        });
    });
}

/// N6: a closed port gives `ConnectionRefused`.
#[test]
fn n6_closed_port_is_connection_refused() {
    guarded("refused", || {
        runtime(1).block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            drop(l);
            let e = TcpStream::connect(addr).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        });
    });
}

/// N6: a peer that resets the connection (`SO_LINGER` 0, then close): reading gives
/// `ConnectionReset`, writing gives `BrokenPipe` or `ConnectionReset` — errors, not panics.
#[test]
fn n6_connection_reset_and_writing_to_a_reset_peer() {
    guarded("reset", || {
        runtime(2).block_on(async {
            let (_l, c, s) = connected().await;
            s.set_linger(Some(Duration::ZERO)).unwrap();
            drop(s);
            let mut buf = [0u8; 4];
            let e = c.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset);
            let mut failed = None;
            for _ in 0..100 {
                if let Err(e) = c.write_all(&[0u8; 1024]).await {
                    failed = Some(e);
                    break;
                }
            }
            let e = failed.expect("writing to a reset peer fails");
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e:?}"
            );
        });
    });
}

/// N6, N5: reading after our own `shutdown(Both)` gives EOF, writing gives an error.
#[test]
fn n6_reading_and_writing_after_close() {
    guarded("after close", || {
        runtime(1).block_on(async {
            let (_l, c, _s) = connected().await;
            c.shutdown(Shutdown::Both).unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);
            let e = c.write(b"x").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        });
    });
}

/// N3: a connection first used by a task on a worker (registered on that worker's
/// poller) is handed to the main task on the `block_on` thread — always another thread —
/// and the conversation goes on: the home poller's harvest wakes it there.
#[test]
fn n3_connection_moves_to_another_thread_mid_conversation() {
    guarded("moved connection", || {
        let rt = runtime(2);
        rt.block_on(async {
            let (_l, c, s) = connected().await;
            let echo = aioloop::create_task(async move {
                let mut buf = [0u8; 16];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
            let first = aioloop::create_task(async move {
                let worker = std::thread::current().id();
                c.write_all(b"one").await.unwrap();
                let mut buf = [0u8; 3];
                c.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"one");
                (c, worker)
            });
            let (c, worker) = first.await.unwrap();
            assert_ne!(worker, std::thread::current().id());
            for _ in 0..50 {
                c.write_all(b"two").await.unwrap();
                let mut buf = [0u8; 3];
                c.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"two");
            }
            drop(c);
            echo.await.unwrap();
        });
    });
}

/// N1: UDP datagrams both ways, connected and not.
#[test]
fn n1_udp_round_trip() {
    guarded("udp", || {
        runtime(1).block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
            let mut buf = [0u8; 8];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
            b.connect(from).await.unwrap();
            b.send(b"pong").await.unwrap();
            let (n, _) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"pong");
        });
    });
}

/// N1, N5: Unix stream and datagram sockets, through a listener on a path.
#[test]
fn n1_unix_sockets() {
    guarded("unix", || {
        let path = std::env::temp_dir().join(format!("aioloop-net-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p2 = path.clone();
        runtime(2).block_on(async move {
            let l = aioloop::net::unix::UnixListener::bind(&p2).unwrap();
            let c = UnixStream::connect(&p2).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let (mut r, mut w) = s.into_split();
            let echo = aioloop::create_task(async move {
                let mut buf = [0u8; 8];
                let n = r.read(&mut buf).await.unwrap();
                w.write_all(&buf[..n]).await.unwrap();
                // Dropping `w` shuts down writing: the client reads EOF after the echo.
            });
            c.write_all(b"unix").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"unix");
            echo.await.unwrap();
            assert_eq!(c.read(&mut buf).await.unwrap(), 0);

            let (a, b) = UnixDatagram::pair().unwrap();
            a.send(b"dg").await.unwrap();
            assert_eq!(b.recv(&mut buf).await.unwrap(), 2);
        });
        std::fs::remove_file(&path).unwrap();
    });
}

/// The futures-io traits on `TcpStream` and on split halves drive the same I/O.
#[cfg(feature = "futures-io")]
#[test]
fn futures_io_traits_on_streams_and_halves() {
    use futures_io::{AsyncRead, AsyncWrite};
    use std::future::poll_fn;
    use std::pin::Pin;

    guarded("futures-io", || {
        runtime(1).block_on(async {
            let (_l, mut c, s) = connected().await;
            let n = poll_fn(|cx| Pin::new(&mut c).poll_write(cx, b"abc"))
                .await
                .unwrap();
            assert_eq!(n, 3);
            let (mut r, _w) = s.into_split();
            let mut buf = [0u8; 3];
            let n = poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], &b"abc"[..n]);
            poll_fn(|cx| Pin::new(&mut c).poll_close(cx)).await.unwrap();
        });
    });
}
