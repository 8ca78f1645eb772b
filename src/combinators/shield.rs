//! `shield` (rule X3): wait for a task without passing the waiter's cancellation on to it.

use crate::task::observe::{self, AwaitKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::watch::Watch;
use crate::task::spawn::SpawnOpts;
use crate::{Task, TaskError, TaskRef, TaskResultError};

/// asyncio's `shield(aw)` (rule X3): runs `future` as a task of its own and waits for it,
/// but cancelling the waiter does not cancel it.
///
/// Awaiting a [`Task`] passes the awaiter's cancellation on to the task (rule T3); a
/// `Shield` does not: it learns of the end through a completion hook and never polls the
/// task. When the waiting task is cancelled, its catch scope (or the task's end) drops the
/// `Shield`, which only detaches the inner task: it runs on, and if it later panics, nobody
/// has retrieved the panic, so it is reported to the loop's exception handler ("Task
/// exception was never retrieved", rule T8). The inner task itself can still be cancelled
/// through [`Shield::task_ref`]; the shield then resolves to that cancellation.
///
/// # Panics
/// Outside a runtime, like [`create_task`](crate::create_task).
///
/// ```
/// use aioloop::{catch_cancel, shield, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let waiter = rt.spawn(async move {
///     let inner = shield(async move {
///         aioloop::sleep(Duration::from_millis(20)).await;
///         tx.send("inner finished").unwrap();
///     });
///     catch_cancel(inner).await.is_err() // true: the wait was cancelled, not the inner
/// });
/// std::thread::sleep(Duration::from_millis(5));
/// waiter.cancel(None);
/// assert_eq!(rx.recv().unwrap(), "inner finished");
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn shield<F>(future: F) -> Shield<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let watch = Watch::new();
    let opts = SpawnOpts {
        // Not retrieving: a panic after the waiter left must reach the handler (X3).
        hook: Some(watch.hook(0, false)),
        ..SpawnOpts::default()
    };
    match crate::create::spawn_current(future, opts) {
        Ok(task) => {
            // O5: the call graph's shield edge.
            observe::set_awaited_by(task.raw_task(), observe::current_id(), AwaitKind::Shield);
            Shield { task, watch }
        }
        Err(e) => panic!("{e}: aioloop::shield() must be called inside a runtime"),
    }
}

/// The future [`shield`] returns: the inner task's outcome.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(async {
///     let s: aioloop::Shield<i32> = aioloop::shield(async { 3 });
///     s.await
/// });
/// assert_eq!(r.unwrap(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited (the inner task runs anyway)"]
pub struct Shield<T> {
    task: Task<T>,
    watch: Arc<Watch>,
}

impl<T> Shield<T> {
    /// The inner task, e.g. to cancel it (which the shield then reports).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let r = rt.block_on(async {
    ///     let s = aioloop::shield(std::future::pending::<()>());
    ///     s.task_ref().cancel(None);
    ///     s.await
    /// });
    /// assert!(r.unwrap_err().is_cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_ref(&self) -> TaskRef {
        self.task.task_ref()
    }
}

impl<T> Future for Shield<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.watch.poll_ended(cx).is_pending() {
            return Poll::Pending;
        }
        match self.task.result() {
            Ok(r) => Poll::Ready(r),
            Err(e) => panic!("`Shield` polled after completion: {e}"),
        }
    }
}

impl<T> std::fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Shield").field(&self.task).finish()
    }
}

/// asyncio's `shield(task)` for a task the caller keeps: waits for `task` without passing
/// the waiter's cancellation on to it (rule X3), and **borrows** it, so that when the wait
/// is abandoned — a timeout around it, the waiter cancelled — the task is still the
/// caller's, to await later (CPython's test_shielded_timeout). Resolves to the task's
/// outcome once it is done, taking it out of the task as [`Task::try_result`] does.
///
/// ```
/// use aioloop::{shield_task, wait_for, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let v = rt.block_on(rt.spawn(async {
///     let mut task = aioloop::create_task(async {
///         aioloop::sleep(Duration::from_millis(30)).await;
///         "done"
///     });
///     // The wait times out; the task is not cancelled, and is still ours.
///     assert!(wait_for(shield_task(&mut task), Duration::from_millis(1)).await.is_err());
///     task.await.unwrap()
/// }))
/// .unwrap();
/// assert_eq!(v, "done");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shield_task<T>(task: &mut Task<T>) -> ShieldTask<'_, T> {
    let watch = Watch::new();
    watch.watch(&task.task_ref(), 0);
    ShieldTask { task, watch }
}

/// The future [`shield_task`] returns.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(async {
///     let mut t = aioloop::create_task(async { 3 });
///     let s: aioloop::ShieldTask<'_, i32> = aioloop::shield_task(&mut t);
///     s.await
/// });
/// assert_eq!(r.unwrap(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited (the task runs anyway)"]
pub struct ShieldTask<'a, T> {
    task: &'a mut Task<T>,
    watch: Arc<Watch>,
}

impl<T> Future for ShieldTask<'_, T> {
    type Output = Result<T, TaskResultError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.watch.poll_ended(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.task.try_result())
    }
}

impl<T> std::fmt::Debug for ShieldTask<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShieldTask").field(&self.task).finish()
    }
}
