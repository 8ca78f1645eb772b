//! EMFILE on accept (rule N6): out of descriptors, `accept` gives the OS error — no panic,
//! no hang, no busy loop — and the listener serves again once descriptors are freed. Its own
//! test binary: it lowers the process's descriptor limit.

use std::io::Write;

use aioloop::net::TcpListener;

mod common;
use common::{exhaust_fds, guarded, runtime, set_fd_limit};

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
            let (mut hog, old) = exhaust_fds(256);
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
