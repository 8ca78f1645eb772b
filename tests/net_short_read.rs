//! A stream read shorter than its buffer clears read readiness (reactor rule R12), yet the
//! peer's close that arrived with the data is still seen: the next read returns 0 at once
//! (rule N5) instead of waiting for an edge that never comes (N2).
//!
//! The deterministic cases drive a `LocalLoop` by hand so that the data and the peer's
//! FIN reach the socket before the loop's one harvest reports them together: exactly
//! the case where clearing readiness without the closed bit would hang.

use std::io::Write;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use aioloop::net::unix::UnixStream;
use aioloop::net::{TcpListener, TcpStream};

mod common;
use common::{guarded, new_loop, runtime, NO_WAIT};

/// Waits (at most 30 s) until `fd` reports the peer's half-close (`POLLRDHUP`): the FIN
/// is queued behind the data.
fn wait_half_closed(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd that outlives the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
    assert_eq!(n, 1, "the peer's FIN arrives");
}

/// A task that reads twice with a 64-byte buffer: the data (a short read), then EOF.
fn reads_then_eof<S>(lp: &aioloop::LocalLoop, read: S) -> aioloop::Task<(usize, usize)>
where
    S: AsyncRead2 + 'static,
{
    lp.create_task(async move {
        let mut buf = [0u8; 64];
        let n = read.read_once(&mut buf).await;
        let eof = read.read_once(&mut buf).await;
        (n, eof)
    })
    .unwrap()
}

/// The two stream types' `read`, for one test body.
trait AsyncRead2 {
    async fn read_once(&self, buf: &mut [u8]) -> usize;
}

impl AsyncRead2 for TcpStream {
    async fn read_once(&self, buf: &mut [u8]) -> usize {
        self.read(buf).await.unwrap()
    }
}

impl AsyncRead2 for UnixStream {
    async fn read_once(&self, buf: &mut [u8]) -> usize {
        self.read(buf).await.unwrap()
    }
}

/// Runs the reader task until it waits (registered, readiness cleared by `EWOULDBLOCK`),
/// has `send_and_close` queue data and a FIN, then lets the loop harvest both at once.
fn eof_after_short_read<S: AsyncRead2 + AsRawFd + 'static>(
    lp: &aioloop::LocalLoop,
    ours: S,
    send_and_close: impl FnOnce(),
) {
    let fd = ours.as_raw_fd();
    let task = reads_then_eof(lp, ours);
    for _ in 0..3 {
        lp.run_once(NO_WAIT).unwrap();
    }
    assert!(!task.done(), "the first read waits for data");
    send_and_close();
    wait_half_closed(fd);
    // Without the closed bit surviving the short read's clear this would never finish
    // (`guarded` fails the test after its timeout).
    let (n, eof) = lp.run_until_complete(task).unwrap().unwrap();
    assert_eq!(
        (n, eof),
        (5, 0),
        "a short read, then EOF without a new edge"
    );
}

/// N5, R12 over TCP: the peer writes 5 bytes and shuts down its writing side.
#[test]
fn n5_tcp_eof_after_short_read() {
    guarded("tcp eof after short read", || {
        let lp = new_loop();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let ours = TcpStream::from_std(l.accept().unwrap().0).unwrap();
        eof_after_short_read(&lp, ours, move || {
            peer.write_all(b"hello").unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
        });
    });
}

/// N5, R12 over a Unix stream: the peer writes 5 bytes and closes.
#[test]
fn n5_unix_eof_after_short_read() {
    guarded("unix eof after short read", || {
        let lp = new_loop();
        let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = UnixStream::from_std(a).unwrap();
        eof_after_short_read(&lp, ours, move || {
            peer.write_all(b"hello").unwrap();
            drop(peer);
        });
    });
}

/// N2, N5, R12 under load: 200 connections on 2 workers, each peer sends a few short
/// messages then closes; every server side reads them with a big buffer (short reads)
/// and must reach EOF.
#[test]
fn n5_many_short_reads_then_eof_on_two_workers() {
    guarded("many short reads then eof", || {
        runtime(2).block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            const CONNS: usize = 200;
            let server = aioloop::create_task(async move {
                let mut readers = Vec::new();
                for _ in 0..CONNS {
                    let (s, _) = l.accept().await.unwrap();
                    readers.push(aioloop::create_task(async move {
                        let mut buf = [0u8; 4096];
                        let mut total = 0;
                        loop {
                            match s.read(&mut buf).await.unwrap() {
                                0 => return total,
                                n => total += n,
                            }
                        }
                    }));
                }
                let mut sum = 0;
                for r in readers {
                    sum += r.await.unwrap();
                }
                sum
            });
            for i in 0..CONNS {
                let c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                for _ in 0..(i % 4) {
                    c.write_all(b"abc").await.unwrap();
                    aioloop::yield_now().await;
                }
                if i % 2 == 0 {
                    c.shutdown(Shutdown::Write).unwrap();
                }
                drop(c);
            }
            let expected: usize = (0..CONNS).map(|i| 3 * (i % 4)).sum();
            assert_eq!(server.await.unwrap(), expected);
        });
    });
}
