//! A server's accept: what asyncio's accept loop (`_accept_connection`) does with an error,
//! for the listeners' `accept_retrying` and for servers built on them.
//!
//! Out of descriptors or buffers (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) the error goes
//! to the loop's exception handler as "socket.accept() out of system resource" and the
//! accept is retried after [`ACCEPT_RETRY_DELAY`]: the connection stays in the kernel's
//! backlog and is served once descriptors are freed. A connection aborted before it was
//! accepted is skipped silently. Any other error is the caller's.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::event_loop::context;
use crate::ExceptionContext;

/// How long a server's accept waits after an out-of-resources error before it tries
/// again: asyncio's `constants.ACCEPT_RETRY_DELAY`, 1 second.
///
/// ```
/// assert_eq!(aioloop::net::ACCEPT_RETRY_DELAY.as_secs(), 1);
/// ```
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The message asyncio's accept loop reports resource exhaustion with.
pub(crate) const OUT_OF_RESOURCES: &str = "socket.accept() out of system resource";

fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Runs `accept` until it gives a connection or an error a server cannot wait out (see
/// the module docs). With no running loop, a resource error is returned as it is.
pub(crate) async fn accept_retrying<T, F, Fut>(mut accept: F) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) if out_of_resources(&e) => {
                let Some(lp) = context::current_owner() else {
                    return Err(e);
                };
                let mut ctx = ExceptionContext::new(OUT_OF_RESOURCES);
                ctx.error = Some(Arc::new(e));
                lp.call_exception_handler(ctx);
                crate::sleep(ACCEPT_RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    }
}
