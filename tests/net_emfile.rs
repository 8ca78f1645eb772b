//! EMFILE on accept (rule N6): out of descriptors, `accept` gives the OS error — no panic,
//! no hang, no busy loop — and the listener serves again once descriptors are freed. Its own
//! test binary: it lowers the process's descriptor limit.

use std::io::Write;

use aioloop::net::TcpListener;

mod common;
use common::{guarded, runtime};

fn set_fd_limit(n: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer for getrlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let new = libc::rlimit {
        rlim_cur: n,
        rlim_max: old.rlim_max,
    };
    // SAFETY: a valid rlimit value for setrlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
    old.rlim_cur
}

/// N6: `accept` while the process is out of descriptors gives `EMFILE`; after some are
/// closed, the same listener accepts the waiting connections and they work.
#[test]
fn n6_emfile_on_accept_then_recovery() {
    guarded("EMFILE", || {
        let rt = runtime(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            // Two clients whose connections wait in the backlog.
            let mut clients: Vec<_> = (0..2)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            // Use up every descriptor the (lowered) limit allows.
            let devnull = std::fs::File::open("/dev/null").unwrap();
            let mut hog = Vec::new();
            let old = set_fd_limit(256);
            while let Ok(f) = devnull.try_clone() {
                hog.push(f);
            }
            let e = l.accept().await.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e:?}");
            // Still out of descriptors: the error again, not a hang.
            assert_eq!(
                l.accept().await.unwrap_err().raw_os_error(),
                Some(libc::EMFILE)
            );
            hog.truncate(hog.len().saturating_sub(16));
            for c in clients.iter_mut() {
                let (s, _) = l.accept().await.unwrap();
                c.write_all(b"ok").unwrap();
                let mut buf = [0u8; 2];
                s.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ok");
            }
            drop(hog);
            set_fd_limit(old);
        });
    });
}
