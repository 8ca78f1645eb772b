//! asyncio's `run_coroutine_threadsafe(coro, loop)`: submit a future to a loop from any
//! thread and get a `concurrent.futures.Future`-like handle, [`ConcurrentFuture`], that can
//! be waited on synchronously (with a timeout) or awaited from any loop.
//!
//! The handle is the task's [`Task`] plus a blocking wait: the waiting thread polls the
//! `Task` with a waker that unparks it, as `Runtime::block_on` sleeps between polls
//! (runtime/block_on.rs; like it, this uses `std::thread` parking directly: it is a
//! caller's thread, not part of any loop's protocol). Cancelling the handle cancels the
//! task (asyncio chains the two futures' cancellation).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::error::{CancelledError, InvalidStateError, LoopError, PanicError, TaskError};
use crate::{Handle, LoopHandle, Task, TaskRef, TimeoutError};

mod sealed {
    pub trait Sealed {}
}

/// A loop that [`run_coroutine_threadsafe`] can submit to from any thread: a runtime's
/// [`Handle`] or a [`LocalLoop`](crate::LocalLoop)'s [`LoopHandle`]. Sealed.
///
/// ```
/// fn submit<L: aioloop::SubmitTarget>(to: &L) {
///     let mut fut = aioloop::run_coroutine_threadsafe(async { 1 }, to).unwrap();
///     assert_eq!(fut.result(None).unwrap(), 1);
/// }
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// submit(rt.handle());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait SubmitTarget: sealed::Sealed {
    /// Spawns `future` on the loop, from any thread.
    ///
    /// # Errors
    /// [`LoopError::Closed`] if the loop is closed (a closed runtime instead gives a
    /// task that ends cancelled).
    ///
    /// ```
    /// use aioloop::SubmitTarget;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.handle().submit(async { 2 }).unwrap();
    /// assert_eq!(rt.block_on(t).unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn submit<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

impl sealed::Sealed for Handle {}
impl sealed::Sealed for LoopHandle {}

impl SubmitTarget for Handle {
    fn submit<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(self.spawn(future))
    }
}

impl SubmitTarget for LoopHandle {
    fn submit<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }
}

/// asyncio's `asyncio.run_coroutine_threadsafe(coro, loop)`: runs `future` as a task of
/// the loop behind `target` (a runtime's [`Handle`], or a [`LoopHandle`]), callable from
/// any thread, and returns a handle to wait for it synchronously
/// ([`ConcurrentFuture::result`], with a timeout) or to await from any loop.
///
/// # Errors
/// [`LoopError::Closed`] for a closed `LocalLoop` (the future is dropped, not run).
///
/// ```
/// use std::time::Duration;
///
/// let lp = aioloop::LocalLoop::new()?;
/// let h = lp.handle();
/// // Another thread submits work to the loop and waits for it.
/// let submitter = std::thread::spawn(move || {
///     let mut fut = aioloop::run_coroutine_threadsafe(async { 6 * 7 }, &h).unwrap();
///     fut.result(Some(Duration::from_secs(30))).unwrap()
/// });
/// while !submitter.is_finished() {
///     lp.run_once(Some(Duration::from_millis(10)))?;
/// }
/// assert_eq!(submitter.join().unwrap(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_coroutine_threadsafe<F, L>(
    future: F,
    target: &L,
) -> Result<ConcurrentFuture<F::Output>, LoopError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    L: SubmitTarget,
{
    Ok(ConcurrentFuture {
        task: target.submit(future)?,
    })
}

/// What [`ConcurrentFuture::result`] gives instead of the value: what
/// `concurrent.futures.Future.result(timeout)` raises.
///
/// ```
/// let e = aioloop::ConcurrentError::Timeout(aioloop::TimeoutError);
/// assert_eq!(e.to_string(), aioloop::TimeoutError.to_string());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConcurrentError {
    /// The task ended cancelled.
    Cancelled(CancelledError),
    /// The task panicked.
    Panicked(PanicError),
    /// The timeout passed first; the task goes on, and the handle may be waited on again.
    Timeout(TimeoutError),
    /// The result was already taken (by an earlier `result` or an await).
    InvalidState(InvalidStateError),
    /// `result` was called on the thread of the `LocalLoop` that runs the task, which
    /// cannot run it while blocked (asyncio would hang there).
    WouldBlockLoop,
}

impl fmt::Display for ConcurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConcurrentError::Cancelled(e) => e.fmt(f),
            ConcurrentError::Panicked(e) => e.fmt(f),
            ConcurrentError::Timeout(e) => e.fmt(f),
            ConcurrentError::InvalidState(e) => e.fmt(f),
            ConcurrentError::WouldBlockLoop => f.write_str(
                "result() was called on the thread of the event loop that runs the task",
            ),
        }
    }
}

impl std::error::Error for ConcurrentError {}

impl From<TaskError> for ConcurrentError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Cancelled(c) => ConcurrentError::Cancelled(c),
            TaskError::Panicked(p) => ConcurrentError::Panicked(p),
        }
    }
}

/// The handle [`run_coroutine_threadsafe`] returns: asyncio's `concurrent.futures.Future`
/// for a submitted coroutine. Wait for it on any thread with
/// [`result`](ConcurrentFuture::result), or `.await` it from any loop (it yields what
/// awaiting the [`Task`] yields). [`cancel`](ConcurrentFuture::cancel) cancels the task.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let fut = aioloop::run_coroutine_threadsafe(async { "hi" }, rt.handle()).unwrap();
/// // Awaited from another loop:
/// let lp = aioloop::LocalLoop::new()?;
/// assert_eq!(lp.run_until_complete(fut)?.unwrap(), "hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the handle detaches the task"]
pub struct ConcurrentFuture<T> {
    task: Task<T>,
}

/// Unparks the waiting thread; the flag makes an unpark before the park count.
struct Unpark {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

impl<T> ConcurrentFuture<T> {
    /// Blocks this thread until the task is done, for at most `timeout` (`None`: no
    /// limit), and takes its value: `concurrent.futures.Future.result(timeout)`.
    ///
    /// Do not call it on a thread that runs the task's loop: on a `LocalLoop`'s own thread
    /// it returns [`ConcurrentError::WouldBlockLoop`] at once (the loop could not run the
    /// task while blocked here); on a runtime's worker it blocks that worker, and with one
    /// worker it could only time out.
    ///
    /// # Errors
    /// [`ConcurrentError::Timeout`] if `timeout` passed first (the task goes on; call
    /// again to keep waiting); [`ConcurrentError::Cancelled`] / [`ConcurrentError::Panicked`]
    /// as the task ended; [`ConcurrentError::InvalidState`] if the value was taken already;
    /// [`ConcurrentError::WouldBlockLoop`] (see above).
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::ConcurrentError;
    ///
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let gate = rt.handle().create_future::<u8>();
    /// let g = gate.clone();
    /// let mut fut = aioloop::run_coroutine_threadsafe(async move { g.await.unwrap() }, rt.handle()).unwrap();
    /// let early = fut.result(Some(Duration::from_millis(5)));
    /// assert!(matches!(early, Err(ConcurrentError::Timeout(_))));
    /// gate.set_result(9).unwrap();
    /// assert_eq!(fut.result(None).unwrap(), 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn result(&mut self, timeout: Option<Duration>) -> Result<T, ConcurrentError> {
        if !self.task.done()
            && LoopHandle::try_current().is_ok_and(|h| h.id() == self.task.loop_id())
        {
            return Err(ConcurrentError::WouldBlockLoop);
        }
        let deadline = timeout.map(|d| Instant::now() + d);
        let unpark = Arc::new(Unpark {
            thread: thread::current(),
            notified: AtomicBool::new(false),
        });
        let waker = Waker::from(unpark.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if self.task.done() {
                return match self.task.result() {
                    Ok(out) => out.map_err(ConcurrentError::from),
                    Err(e) => Err(ConcurrentError::InvalidState(e)),
                };
            }
            // Registers the waker (the task's join waker) unless the task just finished.
            if let Poll::Ready(out) = Pin::new(&mut self.task).poll(&mut cx) {
                return out.map_err(ConcurrentError::from);
            }
            while !unpark.notified.swap(false, Ordering::Acquire) {
                match deadline {
                    None => thread::park(),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return Err(ConcurrentError::Timeout(TimeoutError));
                        }
                        thread::park_timeout(d - now);
                    }
                }
            }
        }
    }

    /// `concurrent.futures.Future.cancel()`: cancels the task (asyncio's
    /// `Task.cancel()`, rule T3). `false` if it is already done.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut fut = aioloop::run_coroutine_threadsafe(std::future::pending::<()>(), rt.handle()).unwrap();
    /// assert!(fut.cancel());
    /// assert!(matches!(fut.result(None), Err(aioloop::ConcurrentError::Cancelled(_))));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.task.cancel(None)
    }

    /// `true` once the task has finished.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut fut = aioloop::run_coroutine_threadsafe(async {}, rt.handle()).unwrap();
    /// fut.result(None).unwrap();
    /// assert!(fut.done());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        self.task.done()
    }

    /// `true` once the task has ended cancelled.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let fut = aioloop::run_coroutine_threadsafe(async {}, rt.handle()).unwrap();
    /// assert!(!fut.cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.task.cancelled()
    }

    /// The task running the submitted future.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let fut = aioloop::run_coroutine_threadsafe(async {}, rt.handle()).unwrap();
    /// assert!(fut.task_ref().is_builtin());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_ref(&self) -> TaskRef {
        self.task.task_ref()
    }

    /// The [`Task`] itself.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let fut = aioloop::run_coroutine_threadsafe(async { 1 }, rt.handle()).unwrap();
    /// assert_eq!(rt.block_on(fut.into_task()).unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_task(self) -> Task<T> {
        self.task
    }
}

impl<T> Future for ConcurrentFuture<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx)
    }
}

impl<T> fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConcurrentFuture").field(&self.task).finish()
    }
}
