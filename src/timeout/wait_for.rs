//! asyncio's `wait_for` (rule X2): a timeout around awaiting one future, for any future and,
//! with asyncio's "cancel it and wait for it to finish", for a [`Task`].

use std::future::IntoFuture;
use std::time::Duration;

use super::{in_builtin_task, never, timeout, TimeoutError, TimeoutFuture};
use crate::{Task, TaskError};

/// Awaits `future` for at most `delay`: asyncio's `asyncio.wait_for(fut, timeout)` (rule
/// X2), which is [`timeout`] around the await. `delay` is a `Duration`, or an
/// `Option<Duration>` where `None` is asyncio's `timeout=None`: a plain await that never
/// times out.
///
/// `Duration::ZERO` is asyncio's `timeout <= 0`: the future is checked once — ready at its
/// first poll → its output; otherwise it is cancelled and `Err(TimeoutError)`. A Rust future
/// is cancelled by dropping it, which also runs its clean-up to the end, so "cancel it and
/// wait for it" is the drop; inside a task the cancellation is first delivered *into* the
/// future, so a [`catch_cancel`](crate::catch_cancel) scope in it can clean up
/// asynchronously — and if it suppresses the cancellation and returns a value, that value is
/// the result, as in asyncio.
///
/// For a [`Task`], use [`wait_for_task`]: dropping a `Task` handle only detaches it, while
/// asyncio cancels the task and waits until it has finished.
///
/// Divergence: asyncio wraps a coroutine in a task that a zero timeout cancels before its
/// first step; a Rust future can only be asked whether it is done by polling it, so its body
/// runs up to its first suspension.
///
/// ```
/// use std::time::Duration;
///
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(rt.spawn(async {
///     assert_eq!(aioloop::wait_for(async { 5 }, Duration::from_secs(1)).await, Ok(5));
///     assert_eq!(aioloop::wait_for(async { 5 }, Duration::ZERO).await, Ok(5)); // already done
///     let slow = aioloop::sleep(Duration::from_secs(60));
///     assert!(aioloop::wait_for(slow, Duration::from_millis(10)).await.is_err());
///     assert_eq!(aioloop::wait_for(async { 6 }, None).await, Ok(6)); // no deadline
/// }))
/// .unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_for<F, D>(future: F, delay: D) -> TimeoutFuture<F::IntoFuture>
where
    F: IntoFuture,
    D: Into<Option<Duration>>,
{
    match delay.into() {
        Some(d) => timeout(d, future),
        None => never(future),
    }
}

/// [`wait_for`] for a task, with asyncio's semantics (`delay` may be `None`, asyncio's
/// `timeout=None`: the task is simply awaited): if `delay` passes (or is zero and the
/// task is not done), the task is cancelled ([`Task::cancel`]) and **awaited until it has
/// finished**; then the result is `Err(TimeoutError)` if it ended cancelled, or what it
/// ended with otherwise (a task that suppresses the cancellation and returns a value gives
/// `Ok(Ok(value))`; a panic gives `Ok(Err(TaskError::Panicked(..)))`).
///
/// Inside a task the cancellation reaches the awaited task as asyncio's does: the timeout
/// cancels the waiting task, which passes the request on to the task it awaits (rule T3);
/// outside one (a third-party task) it is cancelled explicitly at the deadline.
///
/// ```
/// use std::time::Duration;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let (quick, slow) = rt.block_on(async {
///     let quick = aioloop::create_task(async { 1 });
///     let slow = aioloop::create_task(aioloop::sleep(Duration::from_secs(60)));
///     let slow_ref = slow.task_ref();
///     let q = aioloop::wait_for_task(quick, Duration::from_secs(10)).await;
///     let s = aioloop::wait_for_task(slow, Duration::from_millis(10)).await;
///     assert!(slow_ref.cancelled()); // it has finished: cancelled, and waited for
///     (q, s)
/// });
/// assert_eq!(quick.unwrap().unwrap(), 1);
/// assert_eq!(slow.unwrap_err(), aioloop::TimeoutError);
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn wait_for_task<T>(
    mut task: Task<T>,
    delay: impl Into<Option<Duration>>,
) -> Result<Result<T, TaskError>, TimeoutError> {
    let Some(delay) = delay.into() else {
        return Ok(task.await);
    };
    let inside_task = in_builtin_task();
    match timeout(delay, &mut task).await {
        Ok(ended) => Ok(ended),
        Err(TimeoutError) => {
            if !inside_task {
                task.cancel(None);
            }
            match task.await {
                Err(TaskError::Cancelled(_)) => Err(TimeoutError),
                ended => Ok(ended),
            }
        }
    }
}
