//! `wait` and `as_completed` (rule X5) over tasks the caller already holds.

use crate::task::observe::{self, AwaitKind};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::watch::{Ended, Watch};
use crate::Task;

/// When [`wait`] returns: asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`.
///
/// ```
/// assert_ne!(aioloop::ReturnWhen::FirstCompleted, aioloop::ReturnWhen::AllCompleted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any task ends (however it ends).
    FirstCompleted,
    /// As soon as any task panics, or when all have ended. A cancelled task is not an
    /// exception here.
    FirstException,
    /// When every task has ended.
    AllCompleted,
}

/// [`wait`] was given no task: asyncio's `ValueError("Set of Tasks/Futures is empty.")`.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(aioloop::wait(Vec::<aioloop::Task<()>>::new(), None, aioloop::ReturnWhen::AllCompleted));
/// assert_eq!(r.unwrap_err().to_string(), "Set of Tasks/Futures is empty.");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyWaitError;

impl fmt::Display for EmptyWaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Set of Tasks/Futures is empty.")
    }
}

impl std::error::Error for EmptyWaitError {}

/// asyncio's `wait(aws, timeout=, return_when=)` (rule X5): waits until `return_when` holds
/// or `timeout` passes, then hands the tasks back split as `(done, pending)`, each in the
/// order given. Never a timeout error: on timeout the unfinished tasks are simply in
/// `pending`.
///
/// It takes the [`Task`]s themselves (not futures) so that nothing is spawned behind the
/// caller's back, and gives every one of them back. `done` holds every task done at the
/// moment `wait` returns, not only those whose end woke it. `wait` does not cancel
/// anything: if the waiting task is cancelled, the tasks are detached and keep running.
///
/// # Errors
/// [`EmptyWaitError`] for an empty `tasks`.
///
/// ```
/// use aioloop::{wait, ReturnWhen, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let (done, pending) = rt.block_on(async {
///     let fast = aioloop::create_task(async { 1 });
///     let slow = aioloop::create_task(async {
///         aioloop::sleep(Duration::from_secs(10)).await;
///         2
///     });
///     let tasks = vec![slow, fast];
///     wait(tasks, Some(Duration::from_millis(20)), ReturnWhen::FirstCompleted).await.unwrap()
/// });
/// assert_eq!(done.len(), 1);
/// assert_eq!(pending.len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn wait<T>(
    tasks: Vec<Task<T>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Result<(Vec<Task<T>>, Vec<Task<T>>), EmptyWaitError> {
    if tasks.is_empty() {
        return Err(EmptyWaitError);
    }
    let watch = Watch::new();
    let parent = observe::current_id();
    for (i, t) in tasks.iter().enumerate() {
        watch.watch(t, i);
        // O5: the call graph's wait edge.
        observe::set_awaited_by(t.raw_task(), parent, AwaitKind::Wait);
    }
    let mut left = tasks.len();
    let mut sleep = pin!(timeout.map(crate::sleep));
    poll_fn(|cx| {
        while let Poll::Ready(ended) = watch.poll_ended(cx) {
            left -= ended.len();
            let hit = match return_when {
                ReturnWhen::FirstCompleted => true,
                ReturnWhen::FirstException => ended.iter().any(|(_, e)| *e == Ended::Panicked),
                ReturnWhen::AllCompleted => false,
            };
            if hit || left == 0 {
                return Poll::Ready(());
            }
        }
        match sleep.as_mut().as_pin_mut() {
            Some(s) => s.poll(cx),
            None => Poll::Pending,
        }
    })
    .await;
    Ok(tasks.into_iter().partition(|t| t.done()))
}

/// asyncio's `as_completed(aws)` (rule X5): yields the tasks in the order they finish,
/// each already done (awaiting it, or [`Task::result`], gives its outcome at once).
///
/// It is a [`futures_core::Stream`], and has an inherent [`next`](AsCompleted::next) so
/// that no stream extension trait is needed. Like [`wait`], it takes the tasks themselves
/// and cancels nothing; for a deadline, use [`wait`] with a timeout.
///
/// ```
/// use aioloop::{as_completed, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let order = rt.block_on(async {
///     let slow = aioloop::create_task(async {
///         aioloop::sleep(Duration::from_millis(30)).await;
///         "slow"
///     });
///     let fast = aioloop::create_task(async { "fast" });
///     let mut order = Vec::new();
///     let mut it = as_completed(vec![slow, fast]);
///     while let Some(t) = it.next().await {
///         order.push(t.await.unwrap());
///     }
///     order
/// });
/// assert_eq!(order, ["fast", "slow"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn as_completed<T>(tasks: Vec<Task<T>>) -> AsCompleted<T> {
    let watch = Watch::new();
    for (i, t) in tasks.iter().enumerate() {
        watch.watch(t, i);
    }
    AsCompleted {
        left: tasks.len(),
        tasks: tasks.into_iter().map(Some).collect(),
        ready: VecDeque::new(),
        watch,
    }
}

/// The stream [`as_completed`] returns.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let n = rt.block_on(async {
///     let mut it: aioloop::AsCompleted<i32> =
///         aioloop::as_completed(vec![aioloop::create_task(async { 1 })]);
///     assert_eq!(it.remaining(), 1);
///     it.next().await.unwrap().await.unwrap()
/// });
/// assert_eq!(n, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<T> {
    tasks: Vec<Option<Task<T>>>,
    ready: VecDeque<usize>,
    left: usize,
    watch: Arc<Watch>,
}

impl<T> AsCompleted<T> {
    /// The next task to finish, or `None` once every task was yielded.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let n = rt.block_on(async {
    ///     let mut it = aioloop::as_completed(vec![aioloop::create_task(async { 4 })]);
    ///     let first = it.next().await.unwrap().await.unwrap();
    ///     assert!(it.next().await.is_none());
    ///     first
    /// });
    /// assert_eq!(n, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn next(&mut self) -> Option<Task<T>> {
        poll_fn(|cx| self.poll_next_task(cx)).await
    }

    /// How many tasks are still to be yielded.
    ///
    /// ```
    /// let it = aioloop::as_completed(Vec::<aioloop::Task<()>>::new());
    /// assert_eq!(it.remaining(), 0);
    /// ```
    pub fn remaining(&self) -> usize {
        self.left
    }

    fn poll_next_task(&mut self, cx: &mut Context<'_>) -> Poll<Option<Task<T>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if self.ready.is_empty() {
            match self.watch.poll_ended(cx) {
                Poll::Ready(ended) => self.ready.extend(ended.into_iter().map(|(i, _)| i)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let i = self.ready.pop_front().expect("a task ended");
        self.left -= 1;
        Poll::Ready(self.tasks[i].take())
    }
}

impl<T> futures_core::Stream for AsCompleted<T> {
    type Item = Task<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Task<T>>> {
        self.poll_next_task(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.left)
            .finish()
    }
}
