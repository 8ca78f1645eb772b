//! EMFILE in a server's accept loop (issue 11 item 9; asyncio's `_accept_connection`):
//! `accept_retrying` reports "socket.accept() out of system resource" to the loop's
//! exception handler, waits `ACCEPT_RETRY_DELAY`, and the server serves the waiting
//! connections once descriptors are freed. Its own test binary: it lowers the process's
//! descriptor limit, which would starve other tests running beside it.

use std::io::Read;
use std::sync::{Arc, Mutex};

use aioloop::net::TcpListener;
use aioloop::ExceptionContext;

mod common;
use common::{exhaust_fds, guarded, runtime, set_fd_limit, wait_until};

/// What the exception handler saw: message and errno.
type Reports = Arc<Mutex<Vec<(String, Option<i32>)>>>;

/// The server is out of descriptors while two clients wait in its backlog: the exception
/// handler gets asyncio's message with the EMFILE error; once descriptors are freed the
/// same accept loop serves both clients.
#[test]
fn emfile_is_reported_and_the_server_keeps_serving() {
    guarded("EMFILE server", || {
        let rt = runtime(1);
        let reports: Reports = Arc::default();
        let r = reports.clone();
        rt.handle()
            .set_exception_handler(Some(Arc::new(move |ctx: &ExceptionContext| {
                let errno = ctx
                    .error
                    .as_ref()
                    .and_then(|e| e.downcast_ref::<std::io::Error>())
                    .and_then(|e| e.raw_os_error());
                r.lock().unwrap().push((ctx.message.clone(), errno));
            })));
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let (mut hog, old) = exhaust_fds(256);
        let server = rt.spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept_retrying().await?;
                s.write_all(b"hi").await?;
            }
            Ok::<_, std::io::Error>(())
        });
        wait_until("the EMFILE report", || !reports.lock().unwrap().is_empty());
        hog.clear();
        rt.block_on(server).unwrap().unwrap();
        set_fd_limit(old);
        for c in clients.iter_mut() {
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
        }
        let reports = reports.lock().unwrap();
        assert!(reports
            .iter()
            .all(|(m, errno)| m == "socket.accept() out of system resource"
                && *errno == Some(libc::EMFILE)));
    });
}
