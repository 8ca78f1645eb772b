//! hyper 1.x on aioloop (feature `hyper`): `hyper::rt::Read` and `hyper::rt::Write` on
//! [`TcpStream`], [`UnixStream`] and their halves (borrowed and owned); [`HyperExecutor`], which runs
//! the futures hyper spawns (HTTP/2 streams, client connections) as aioloop tasks; and
//! [`HyperTimer`], hyper's timer on aioloop's [`sleep`](crate::sleep).
//!
//! An HTTP/1 round trip, server and client both on aioloop (hyper's `server`, `client`
//! and `http1` features are the application's to turn on):
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use hyper::body::Bytes;
//!
//! let rt = aioloop::Runtime::builder().workers(2).build()?;
//! rt.block_on(async {
//!     let listener = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     aioloop::create_task(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let service = hyper::service::service_fn(|_req| async {
//!             Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
//!         });
//!         let _ = hyper::server::conn::http1::Builder::new()
//!             .timer(aioloop::compat::hyper::HyperTimer)
//!             .serve_connection(stream, service)
//!             .await;
//!     });
//!     let stream = aioloop::net::TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
//!     aioloop::create_task(conn);
//!     let req = hyper::Request::get("/").body(Full::new(Bytes::new())).unwrap();
//!     let resp = sender.send_request(req).await.unwrap();
//!     let body = resp.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(&body[..], b"hello");
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::ReadBufCursor;

use crate::event_loop::context;
use crate::net::unix::UnixStream;
use crate::net::{
    OwnedReadHalf, OwnedWriteHalf, ReadHalf, SplitSocket, StreamIo, TcpStream, WriteHalf,
};
use crate::{ExceptionContext, Handle};

/// Reads into hyper's cursor without zeroing it.
fn read_cursor<S: StreamIo + ?Sized>(
    s: &S,
    cx: &mut Context<'_>,
    mut buf: ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice is only written to (by recv(2) in `poll_read_uninit`), never
    // de-initialised: `as_mut`'s contract.
    let n = ready!(s.poll_read_uninit(cx, unsafe { buf.as_mut() }))?;
    // SAFETY: `poll_read_uninit` returned `n`: recv(2) initialised the first `n` bytes of
    // the slice `as_mut` gave, the cursor's unfilled part (`advance`'s contract).
    unsafe { buf.advance(n) };
    Poll::Ready(Ok(()))
}

/// `hyper::rt::Read` for a stream type or read half, through the socket `$sock(this)`.
macro_rules! hyper_read {
    ($ty:ty, [$($gen:tt)*], $this:ident => $sock:expr) => {
        impl<$($gen)*> hyper::rt::Read for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                read_cursor($sock, cx, buf)
            }
        }
    };
}

hyper_read!(TcpStream, [], s => s);
write_trait!(hyper::rt::Write, TcpStream, [], s => s);
hyper_read!(UnixStream, [], s => s);
write_trait!(hyper::rt::Write, UnixStream, [], s => s);
hyper_read!(OwnedReadHalf<S>, [S: SplitSocket], h => h.socket());
write_trait!(hyper::rt::Write, OwnedWriteHalf<S>, [S: SplitSocket], h => h.socket());
hyper_read!(ReadHalf<'_, S>, [S: SplitSocket], h => h.socket());
write_trait!(hyper::rt::Write, WriteHalf<'_, S>, [S: SplitSocket], h => h.socket());

/// hyper's executor on aioloop: each future hyper hands it (an HTTP/2 stream, a client
/// connection's background work) becomes an aioloop task on the loop running the caller,
/// or, called from a thread that runs no loop, on the runtime it was created for.
///
/// ```
/// use hyper::rt::Executor;
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let exec = aioloop::compat::hyper::HyperExecutor::on(rt.handle().clone());
/// let (tx, rx) = std::sync::mpsc::channel();
/// exec.execute(async move { tx.send(42).unwrap() }); // from outside the runtime
/// assert_eq!(rx.recv().unwrap(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct HyperExecutor {
    handle: Option<Handle>,
}

impl HyperExecutor {
    /// An executor for the loop running the caller (a runtime worker or a `LocalLoop`);
    /// on a runtime, remembers it for calls from other threads.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let _exec = aioloop::compat::hyper::HyperExecutor::new();
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> HyperExecutor {
        HyperExecutor {
            handle: Handle::try_current().ok(),
        }
    }

    /// An executor that spawns on the runtime behind `handle` when called from a thread
    /// that runs no loop.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let _exec = aioloop::compat::hyper::HyperExecutor::on(rt.handle().clone());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on(handle: Handle) -> HyperExecutor {
        HyperExecutor {
            handle: Some(handle),
        }
    }
}

impl<F> hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        if context::current_owner().is_some() {
            // A loop runs on this thread: the task starts there (and may be stolen).
            drop(crate::create_task(fut));
        } else if let Some(h) = &self.handle {
            drop(h.spawn(fut));
        } else {
            // hyper's `execute` cannot fail: say why the work is dropped.
            crate::default_exception_handler(&ExceptionContext::new(
                "HyperExecutor::execute called with no running loop and no runtime handle; \
                 the future was dropped",
            ));
        }
    }
}

/// hyper's timer on aioloop's [`sleep`](crate::sleep) (header-read timeouts, HTTP/2
/// keep-alive pings). The sleeps must be polled by an aioloop task.
///
/// hyper computes every deadline from the clock just before it asks for a sleep (a
/// header-read timeout per request head), so these sleeps skip the clock read of their
/// first poll: one that finds its deadline already past completes at the loop's next timer
/// pass rather than at once — never before the deadline.
///
/// ```
/// use hyper::rt::Timer;
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let timer = aioloop::compat::hyper::HyperTimer;
///     timer.sleep(std::time::Duration::from_millis(1)).await;
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::event_loop::sleep::sleep_until_fresh(
            deadline,
        )))
    }

    /// In place: hyper's HTTP/1 server resets its header-read timeout (30 s) for every
    /// request head, and the default `reset` boxes a new sleep each time. `Pin::set`
    /// drops the old sleep where it is pinned (unlinking it from the wheel, wheel.rs rule
    /// 2) and puts the new, not yet registered, one in its place.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(mut s) => s.set(HyperSleep(crate::event_loop::sleep::sleep_until_fresh(
                new_deadline,
            ))),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// An aioloop [`Sleep`](crate::Sleep) as hyper's `Sleep`.
struct HyperSleep(crate::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `Sleep` is structurally pinned in `HyperSleep`: nothing moves it out, and
        // `HyperSleep` has no `Drop` or `Unpin` impl, so the entry the wheel links stays
        // where it was pinned until it is dropped in place (event_loop/wheel.rs rule 2).
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}
