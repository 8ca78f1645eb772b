//! `aioloop::io::Async` on the per-loop reactor: partial reads and writes (rule N1), a
//! 16 MiB transfer under backpressure between two workers (N1, N2, N3), EOF (N5), a
//! host-driven `LocalLoop` woken through its fd by socket readiness (N7), a descriptor
//! dropped while registered and a reused descriptor number (N4), and faults (N6).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::task::Poll;

use aioloop::io::Async;

mod common;
use common::{guarded, new_loop, poll_once, runtime, NO_WAIT};

fn pair() -> (Async<UnixStream>, Async<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    (Async::new(a).unwrap(), Async::new(b).unwrap())
}

/// Whether `fd` is readable now (`poll(2)`, waiting at most `ms`).
fn fd_readable(fd: i32, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that outlives the call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// N1: a write bigger than the socket buffer is partial (never blocks the worker); the
/// reader gets at most what it asked for.
#[test]
fn n1_partial_reads_and_writes() {
    guarded("partial", || {
        let rt = runtime(1);
        let (a, b) = pair();
        rt.block_on(async move {
            let big = vec![7u8; 8 << 20];
            let n = a.write_with(|mut s| s.write(&big)).await.unwrap();
            assert!(n > 0 && n < big.len(), "a partial write, got {n}");
            let mut buf = [0u8; 10];
            let m = b.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            assert_eq!(m, 10);
            assert_eq!(buf, [7u8; 10]);
        });
    });
}

/// N1, N2, N3: 16 MiB from a task on one worker to a task on the other, through a socket
/// whose buffer fills many times (each side waits on the other's progress); EOF at the end
/// (N5).
#[test]
fn n2_sixteen_mib_under_backpressure() {
    guarded("16 MiB", || {
        let rt = runtime(2);
        let (a, b) = pair();
        const LEN: usize = 16 << 20;
        let writer = rt.spawn(async move {
            let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            let mut off = 0;
            while off < LEN {
                off += a.write_with(|mut s| s.write(&data[off..])).await.unwrap();
                if off % 3 == 0 {
                    aioloop::yield_now().await;
                }
            }
            // Dropping `a` closes it: EOF for the reader.
        });
        let reader = rt.spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            let mut total = 0usize;
            loop {
                let n = b.read_with(|mut s| s.read(&mut buf)).await.unwrap();
                if n == 0 {
                    break;
                }
                for (i, &x) in buf[..n].iter().enumerate() {
                    assert_eq!(x, ((total + i) % 251) as u8, "byte {}", total + i);
                }
                total += n;
            }
            // N5: EOF stays EOF.
            assert_eq!(b.read_with(|mut s| s.read(&mut buf)).await.unwrap(), 0);
            total
        });
        rt.block_on(writer).unwrap();
        assert_eq!(rt.block_on(reader).unwrap(), LEN);
    });
}

/// N7: a host that sleeps on `LocalLoop::as_raw_fd` learns that a socket a task waits on
/// became readable, and one non-blocking iteration then completes the task.
#[test]
fn n7_local_loop_fd_woken_by_socket_readiness() {
    guarded("host fd", || {
        let lp = new_loop();
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Rc::new(Async::new(a).unwrap());
        let a2 = a.clone();
        let task = lp
            .create_task(async move {
                let mut buf = [0u8; 4];
                a2.read_with(|mut s| s.read(&mut buf)).await.unwrap()
            })
            .unwrap();
        for _ in 0..3 {
            lp.run_once(NO_WAIT).unwrap();
        }
        assert!(!task.done());
        assert!(!fd_readable(lp.as_raw_fd(), 0), "the loop's fd is quiet");
        b.write_all(b"ping").unwrap();
        assert!(
            fd_readable(lp.as_raw_fd(), 30_000),
            "socket readiness wakes the host"
        );
        lp.run_once(NO_WAIT).unwrap();
        lp.run_once(NO_WAIT).unwrap();
        assert!(task.done());
        assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 4);
    });
}

/// N4: a task waiting on a descriptor is cancelled, the descriptor dropped while
/// registered; a new socket reusing the number waits for its own data only.
#[test]
fn n4_dropped_while_registered_and_fd_reuse() {
    guarded("fd reuse", || {
        let lp = new_loop();
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let old_fd = a.as_raw_fd();
        let a = Async::new(a).unwrap();
        let t = lp
            .create_task(async move {
                a.readable().await.unwrap();
            })
            .unwrap();
        lp.run_once(NO_WAIT).unwrap();
        t.cancel(None);
        lp.run_once(NO_WAIT).unwrap();
        lp.run_once(NO_WAIT).unwrap();
        assert!(t.cancelled());
        // `a` was dropped with the task: its peer's writes go nowhere.
        assert!(a_peer.write_all(b"stale").is_err());

        // The lowest free number is reused: `c` gets `a`'s old descriptor number.
        let (c, mut c_peer) = UnixStream::pair().unwrap();
        assert_eq!(c.as_raw_fd(), old_fd);
        let c = Async::new(c).unwrap();
        let t2 = lp
            .create_task(async move {
                let mut buf = [0u8; 3];
                c.read_with(|mut s| s.read(&mut buf)).await.unwrap();
                buf
            })
            .unwrap();
        for _ in 0..5 {
            lp.run_once(NO_WAIT).unwrap();
        }
        assert!(!t2.done(), "no stale wake completes a read with no data");
        c_peer.write_all(b"new").unwrap();
        assert_eq!(&lp.run_until_complete(t2).unwrap().unwrap(), b"new");
    });
}

/// N6: waiting with no running loop is an error, not a hang or a panic; so is wrapping a
/// closed descriptor; reading after the peer is gone gives EOF, writing gives an error.
#[test]
fn n6_faults_are_errors() {
    let (a, b) = pair();
    let mut fut = Box::pin(a.readable());
    match poll_once(&mut fut) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("no running event loop")),
        other => panic!("expected an error, got {other:?}"),
    }
    drop(fut);

    let (s, _p) = UnixStream::pair().unwrap();
    let fd = s.as_raw_fd();
    drop(s);
    #[derive(Debug)]
    struct Closed(i32);
    impl std::os::fd::AsFd for Closed {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            // SAFETY: deliberately a closed descriptor number: only `fcntl` sees it, which
            // reports EBADF (the fault under test). Nothing else of the test opens files.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
        }
    }
    let err = Async::new(Closed(fd)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(9), "EBADF");

    guarded("peer gone", move || {
        let rt = runtime(1);
        rt.block_on(async move {
            drop(b);
            let mut buf = [0u8; 4];
            assert_eq!(a.read_with(|mut s| s.read(&mut buf)).await.unwrap(), 0);
            let e = a.write_with(|mut s| s.write(b"x")).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        });
    });
}
