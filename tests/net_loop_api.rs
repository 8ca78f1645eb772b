//! asyncio's loop I/O API on `LocalLoop` and the runtime `Handle`: `add_reader` level
//! semantics and replacement (rule N8), `sock_*` round trips that try the syscall first
//! (N1), and faults — a closed descriptor, a blocking socket, a refused connect (N6).

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use aioloop::net::{Domain, SockAddr, Socket, Type};

mod common;
use common::{guarded, new_loop, runtime, NO_WAIT};

/// N8: a reader that does not consume is called once per iteration while data is
/// pending (level-triggered), not at all once the data is consumed; a second `add_reader`
/// replaces the callback; `remove_reader` says whether one was registered.
#[test]
fn n8_add_reader_is_level_triggered_and_replaces() {
    guarded("add_reader", || {
        let lp = new_loop();
        let (a, mut b) = UnixStream::pair().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l1 = log.clone();
        lp.add_reader(&a, move || l1.borrow_mut().push("first"))
            .unwrap();
        for _ in 0..3 {
            lp.run_once(NO_WAIT).unwrap();
        }
        assert!(log.borrow().is_empty(), "not readable yet");
        b.write_all(b"abc").unwrap();
        // Not consumed: called on every iteration (level), once per iteration.
        let mut iterations = 0;
        while log.borrow().len() < 3 {
            lp.run_once(Some(common::TIMEOUT)).unwrap();
            iterations += 1;
        }
        assert!(iterations >= 3);
        assert!(log.borrow().iter().all(|s| *s == "first"));

        // Replacement: the new callback consumes; the old one is never called again.
        let l2 = log.clone();
        let reader = a.try_clone().unwrap();
        lp.add_reader(&a, move || {
            let mut buf = [0u8; 16];
            let n = (&reader).read(&mut buf).unwrap();
            l2.borrow_mut()
                .push(if n == 3 { "second" } else { "short" });
        })
        .unwrap();
        let before = log.borrow().len();
        while !log.borrow().contains(&"second") {
            lp.run_once(Some(common::TIMEOUT)).unwrap();
        }
        for _ in 0..5 {
            lp.run_once(NO_WAIT).unwrap();
        }
        let after: Vec<_> = log.borrow()[before..].to_vec();
        assert_eq!(
            after,
            vec!["second"],
            "level: quiet once the data is consumed"
        );

        assert!(lp.remove_reader(&a));
        assert!(!lp.remove_reader(&a));
        b.write_all(b"more").unwrap();
        for _ in 0..5 {
            lp.run_once(NO_WAIT).unwrap();
        }
        assert_eq!(log.borrow().len(), before + 1, "removed: not called");
    });
}

/// N8: a reader and a writer on one descriptor are independent (two registrations of the
/// same open file, no `EEXIST`), also on the runtime.
#[test]
fn n8_reader_and_writer_on_one_fd_on_the_runtime() {
    guarded("reader+writer", || {
        let rt = runtime(2);
        let h = rt.handle();
        let (a, mut b) = UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        let reader = a.try_clone().unwrap();
        h.add_reader(&a, move || {
            let mut buf = [0u8; 1];
            if (&reader).read(&mut buf).unwrap() == 1 {
                let _ = tx.send("read");
            }
        })
        .unwrap();
        h.add_writer(&a, move || {
            let _ = tx2.send("write");
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), "write");
        assert!(h.remove_writer(&a));
        b.write_all(b"x").unwrap();
        while rx.recv().unwrap() != "read" {}
        assert!(h.remove_reader(&a));
    });
}

/// N1: the `sock_*` methods between two non-blocking sockets, on a `LocalLoop` and on the
/// runtime: accept/connect, sendall/recv/recv_into, sendto/recvfrom.
#[test]
fn n1_sock_functions_round_trip() {
    guarded("sock_*", || {
        let lp = new_loop();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let to = SockAddr::from(l.local_addr().unwrap());
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let got = lp
            .run_until_complete(async {
                lp.sock_connect(&c, &to).await.unwrap();
                let (s, _) = lp.sock_accept(&l).await.unwrap();
                let writer = async {
                    lp.sock_sendall(&c, &data).await.unwrap();
                    c.shutdown(std::net::Shutdown::Write).unwrap();
                };
                let reader = async {
                    let mut got = Vec::new();
                    loop {
                        let chunk = lp.sock_recv(&s, 7000).await.unwrap();
                        if chunk.is_empty() {
                            return got;
                        }
                        got.extend_from_slice(&chunk);
                    }
                };
                join(writer, reader).await.1
            })
            .unwrap();
        assert_eq!(got, data);
        let rt = runtime(1);
        let h = rt.handle();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let to = SockAddr::from(a.local_addr().unwrap());
        let (data, from) = rt.block_on(async {
            assert_eq!(h.sock_sendto(&a, b"dgram", &to).await.unwrap(), 5);
            h.sock_recvfrom(&a, 64).await.unwrap()
        });
        assert_eq!(data, b"dgram");
        assert_eq!(from.as_socket(), Some(a.local_addr().unwrap()));
    });
}

/// Runs two futures to completion concurrently on the current task.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}

/// N6: a closed descriptor cannot be watched; a blocking socket is refused with asyncio's
/// message; `sock_connect` to a closed port is `ConnectionRefused`.
#[test]
fn n6_loop_api_faults_are_errors() {
    guarded("faults", || {
        let lp = new_loop();
        // A descriptor number no process can have open (far above any RLIMIT_NOFILE): a
        // number freed by `close` could be reused at once by a test on another thread.
        let fd = 1 << 30;
        struct Closed(i32);
        impl std::os::fd::AsFd for Closed {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                // SAFETY: deliberately a closed descriptor number: only `dup` sees it,
                // which reports EBADF (the fault under test).
                unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
            }
        }
        let e = lp.add_reader(Closed(fd), || {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(9), "EBADF");

        let (blocking, _peer) = UnixStream::pair().unwrap();
        let e = lp
            .run_until_complete(lp.sock_recv(&blocking, 4))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "the socket must be non-blocking");

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::from(l.local_addr().unwrap());
        drop(l);
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let e = lp
            .run_until_complete(lp.sock_connect(&s, &to))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
}

/// Runs `run_host_passes` with a host whose every callback queues the next (as
/// `call_soon_100k` does), for at most `passes` passes, with `fd` readable from the start;
/// returns the pass in which `fd`'s reader ran (`None`: not within them).
fn host_pass_that_sees_reader(quiet_sources: usize, passes: usize) -> Option<usize> {
    let lp = new_loop();
    let (a, mut b) = UnixStream::pair().unwrap();
    let pass = Rc::new(std::cell::Cell::new(0usize));
    let seen = Rc::new(std::cell::Cell::new(None));
    let (p, s) = (pass.clone(), seen.clone());
    lp.add_reader(&a, move || {
        if s.get().is_none() {
            s.set(Some(p.get()));
        }
    })
    .unwrap();
    // The first pass harvests (the host has just waited): the data comes after it.
    let p = pass.clone();
    let wrote = std::cell::Cell::new(false);
    lp.run_host_passes(
        || {
            p.set(p.get() + 1);
            if p.get() == 2 && !wrote.replace(true) {
                b.write_all(b"x").unwrap();
            }
            1
        },
        || true,
        || pass.get() < passes && seen.get().is_none(),
        quiet_sources,
    )
    .unwrap();
    seen.get()
}

/// S3, N8: an embedding host's passes look at I/O on every pass while a source is
/// registered, even with its own callbacks always ready, as asyncio's `_run_once`
/// selects with a zero timeout on every iteration: data that arrives during pass 2 is
/// handled in pass 2's I/O step, not dozens of host callbacks later.
#[test]
fn s3_host_passes_poll_io_on_every_pass() {
    guarded("host passes poll I/O", || {
        assert_eq!(host_pass_that_sees_reader(0, 200), Some(2));
    });
}

/// S3: a source the host declares quiet (its signal self-pipe, which only ends a wait)
/// does not cost a poll per pass: with only that registered, the host's busy passes
/// look at I/O at the busy loop's interval, later than pass 2, yet still within a
/// bounded number of passes.
#[test]
fn s3_host_passes_poll_quiet_sources_at_the_busy_interval() {
    guarded("host passes, quiet source", || {
        let seen = host_pass_that_sees_reader(1, 200).expect("seen within 200 passes");
        assert!(seen > 2, "polled on every pass: {seen}");
    });
}
