//! tokio's `AsyncRead`/`AsyncWrite` on aioloop's stream types (feature `tokio-io`): tokio's
//! extension traits, `tokio::io::copy` and tokio-util's codecs run on aioloop tasks, with
//! no tokio runtime involved.

use std::future::poll_fn;
use std::pin::Pin;

use aioloop::net::unix::UnixStream;
use aioloop::net::{TcpListener, TcpStream};
use futures_core::Stream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::codec::{FramedRead, LinesCodec};

mod common;
use common::{guarded, new_loop, runtime};

/// tokio's `read_exact`/`write_all`/`read_to_end`/`shutdown` over TCP.
async fn tcp_ext_traits() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (mut s, _) = l.accept().await.unwrap();
    // Fully qualified: the inherent methods of the same names would win otherwise.
    AsyncWriteExt::write_all(&mut c, b"hello tokio")
        .await
        .unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(AsyncReadExt::read_exact(&mut s, &mut buf).await.unwrap(), 5);
    assert_eq!(&buf, b"hello");
    AsyncWriteExt::shutdown(&mut c).await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b" tokio");
}

/// `tokio::io::copy` between owned halves (an echo), a `BufReader` reading lines, and
/// tokio-util's `FramedRead` + `LinesCodec` as a stream.
async fn copy_bufreader_and_codec() {
    let (a, b) = UnixStream::pair().unwrap();
    let (mut ar, mut aw) = a.into_split();
    let echo = aioloop::create_task(async move { tokio::io::copy(&mut ar, &mut aw).await });
    let (br, mut bw) = b.into_split();
    AsyncWriteExt::write_all(&mut bw, b"one\ntwo\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(br).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("one"));
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("two"));
    drop(bw);
    assert_eq!(lines.next_line().await.unwrap(), None);
    assert_eq!(echo.await.unwrap().unwrap(), 8);

    let (c, mut d) = UnixStream::pair().unwrap();
    AsyncWriteExt::write_all(&mut d, b"alpha\nbeta\n")
        .await
        .unwrap();
    drop(d);
    let mut framed = FramedRead::new(c, LinesCodec::new());
    let mut got = Vec::new();
    while let Some(line) = poll_fn(|cx| Pin::new(&mut framed).poll_next(cx)).await {
        got.push(line.unwrap());
    }
    assert_eq!(got, ["alpha", "beta"]);
}

/// `tokio::io::copy` between the borrowed halves of one socket (`split`): an echo that
/// never gives the socket away.
async fn copy_between_borrowed_halves() {
    let (a, b) = UnixStream::pair().unwrap();
    let echo = aioloop::create_task(async move {
        let (mut r, mut w) = a.split();
        tokio::io::copy(&mut r, &mut w).await
    });
    let (mut br, mut bw) = b.split();
    AsyncWriteExt::write_all(&mut bw, b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    AsyncReadExt::read_exact(&mut br, &mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    AsyncWriteExt::shutdown(&mut bw).await.unwrap();
    assert_eq!(echo.await.unwrap().unwrap(), 4);
    let mut rest = Vec::new();
    assert_eq!(
        br.read_to_end(&mut rest).await.unwrap(),
        0,
        "echo ended at EOF"
    );
}

#[test]
fn tokio_traits_on_runtime() {
    guarded("tokio runtime", || {
        let rt = runtime(2);
        rt.block_on(tcp_ext_traits());
        rt.block_on(copy_bufreader_and_codec());
        rt.block_on(copy_between_borrowed_halves());
    });
}

#[test]
fn tokio_traits_on_local_loop() {
    guarded("tokio local", || {
        let lp = new_loop();
        lp.run_until_complete(tcp_ext_traits()).unwrap();
        lp.run_until_complete(copy_bufreader_and_codec()).unwrap();
        lp.run_until_complete(copy_between_borrowed_halves())
            .unwrap();
    });
}

#[cfg(target_os = "linux")]
static SIGPIPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(target_os = "linux")]
extern "C" fn count_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Rule N6 (a reset peer is an error, never a crash): vectored writes to a peer that
/// closed fail with `ECONNRESET`, then `EPIPE`, and raise no `SIGPIPE` — whose default
/// action kills the process, and a host such as Python's interpreter may restore it
/// (the standard library's `writev` would raise it; aioloop sends with `MSG_NOSIGNAL`).
#[cfg(target_os = "linux")]
#[test]
fn n6_vectored_write_to_closed_peer_raises_no_sigpipe() {
    // SAFETY: a zeroed `sigaction` is valid; the handler only adds to an atomic
    // (async-signal-safe) and `SA_RESTART` keeps other tests' system calls from failing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_sigpipe as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0);
    }
    let kind = guarded("sigpipe", || {
        let rt = runtime(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            drop(s);
            let bufs = [
                std::io::IoSlice::new(b"head"),
                std::io::IoSlice::new(b"body"),
            ];
            for _ in 0..1000 {
                match AsyncWriteExt::write_vectored(&mut c, &bufs).await {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return e.kind(),
                    Ok(_) | Err(_) => aioloop::sleep(std::time::Duration::from_millis(1)).await,
                }
            }
            panic!("no EPIPE after 1000 writes to a closed peer");
        })
    });
    assert_eq!(kind, std::io::ErrorKind::BrokenPipe);
    assert_eq!(
        SIGPIPES.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "SIGPIPE raised"
    );
}
