//! `wait` and `as_completed` (rule X5) over tasks the caller already holds.

use crate::task::observe::{self, AwaitKind};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::handle::TaskHandle;
use super::watch::{Ended, Watch};
use crate::{Sleep, TimeoutError};

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
/// It takes the [`Task`](crate::Task)s themselves (not futures) so that nothing is spawned
/// behind the caller's back, and gives every one of them back — or borrows them
/// (`&mut Task<T>`, `&Task<T>`, see [`TaskHandle`]), so that they stay the caller's even if
/// the `wait` is dropped (a timeout around it, a cancellation). `done` holds every task done at the
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
pub async fn wait<H: TaskHandle>(
    tasks: Vec<H>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Result<(Vec<H>, Vec<H>), EmptyWaitError> {
    if tasks.is_empty() {
        return Err(EmptyWaitError);
    }
    let watch = Watch::new();
    let parent = observe::current_id();
    for (i, t) in tasks.iter().enumerate() {
        let task = t.task_ref();
        watch.watch(&task, i);
        // O5: the call graph's wait edge.
        if let Some(raw) = task.raw() {
            observe::set_awaited_by(raw, parent, AwaitKind::Wait);
        }
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
/// each already done (awaiting it, or [`Task::result`](crate::Task::result), gives its
/// outcome at once).
///
/// It is a [`futures_core::Stream`], and has an inherent [`next`](AsCompleted::next) so
/// that no stream extension trait is needed. Like [`wait`], it takes the tasks themselves
/// (or borrows them: `&mut Task<T>`, see [`TaskHandle`]) and cancels nothing; for a
/// deadline, [`as_completed_with_timeout`].
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
pub fn as_completed<H: TaskHandle>(tasks: Vec<H>) -> AsCompleted<H::Output, H> {
    let watch = Watch::new();
    for (i, t) in tasks.iter().enumerate() {
        watch.watch(&t.task_ref(), i);
    }
    AsCompleted {
        left: tasks.len(),
        tasks: tasks.into_iter().map(Some).collect(),
        ready: VecDeque::new(),
        watch,
        _output: std::marker::PhantomData,
    }
}

/// The stream [`as_completed`] returns: tasks of output `T`, held as `H` (an owned
/// [`Task<T>`](crate::Task) unless borrowed ones were given).
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
pub struct AsCompleted<T, H = crate::Task<T>> {
    tasks: Vec<Option<H>>,
    ready: VecDeque<usize>,
    left: usize,
    watch: Arc<Watch>,
    _output: std::marker::PhantomData<fn() -> T>,
}

impl<T, H> AsCompleted<T, H> {
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
    pub async fn next(&mut self) -> Option<H> {
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

    /// The tasks not yielded yet, taken out of the stream (which then yields nothing), in
    /// the order given: e.g. the unfinished ones after a deadline passed.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let mut it = aioloop::as_completed(vec![aioloop::create_task(std::future::pending::<()>())]);
    ///     let left = it.take_remaining();
    ///     assert_eq!(left.len(), 1);
    ///     assert!(it.next().await.is_none());
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_remaining(&mut self) -> Vec<H> {
        self.left = 0;
        self.ready.clear();
        self.tasks.iter_mut().filter_map(Option::take).collect()
    }

    fn poll_next_task(&mut self, cx: &mut Context<'_>) -> Poll<Option<H>> {
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

impl<T, H> Unpin for AsCompleted<T, H> {}

impl<T, H> futures_core::Stream for AsCompleted<T, H> {
    type Item = H;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<H>> {
        self.poll_next_task(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T, H> fmt::Debug for AsCompleted<T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.left)
            .finish()
    }
}

/// asyncio's `as_completed(aws, timeout=d)` (rule X5): [`as_completed`] with a deadline
/// `timeout` from now. Each item is `Ok(task)` for a task that finished in time, in the
/// order they finish; once the deadline has passed, each task still unfinished yields
/// `Err(TimeoutError)` (asyncio: every remaining `await` raises `TimeoutError`), and the
/// unfinished tasks themselves stay in the stream, for
/// [`take_remaining`](AsCompletedTimeout::take_remaining). Nothing is cancelled.
///
/// ```
/// use aioloop::{as_completed_with_timeout, Runtime, TimeoutError};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let (got, left) = rt.block_on(async {
///     let fast = aioloop::create_task(async { "fast" });
///     let slow = aioloop::create_task(aioloop::sleep(Duration::from_secs(60)));
///     let mut it = as_completed_with_timeout(vec![fast], Duration::from_millis(20));
///     let first = it.next().await.unwrap().unwrap().await.unwrap();
///     let mut it = as_completed_with_timeout(vec![slow], Duration::from_millis(20));
///     assert_eq!(it.next().await.unwrap().unwrap_err(), TimeoutError);
///     assert!(it.next().await.is_none());
///     (first, it.take_remaining())
/// });
/// assert_eq!(got, "fast");
/// assert_eq!(left.len(), 1); // the slow task, still ours
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn as_completed_with_timeout<H: TaskHandle>(
    tasks: Vec<H>,
    timeout: Duration,
) -> AsCompletedTimeout<H::Output, H> {
    AsCompletedTimeout {
        inner: as_completed(tasks),
        deadline: Box::pin(crate::sleep(timeout)),
        timed_out: 0,
        expired: false,
    }
}

/// The stream [`as_completed_with_timeout`] returns.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let n = rt.block_on(async {
///     let t = aioloop::create_task(async { 1 });
///     let mut it: aioloop::AsCompletedTimeout<i32> =
///         aioloop::as_completed_with_timeout(vec![t], std::time::Duration::from_secs(5));
///     it.next().await.unwrap().unwrap().await.unwrap()
/// });
/// assert_eq!(n, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsCompletedTimeout<T, H = crate::Task<T>> {
    inner: AsCompleted<T, H>,
    deadline: Pin<Box<Sleep>>,
    /// How many `Err(TimeoutError)` were yielded since the deadline passed.
    timed_out: usize,
    expired: bool,
}

impl<T, H> AsCompletedTimeout<T, H> {
    /// The next task to finish, `Err(TimeoutError)` once per unfinished task after the
    /// deadline, then `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let t = aioloop::create_task(std::future::pending::<()>());
    ///     let mut it = aioloop::as_completed_with_timeout(vec![t], Duration::from_millis(1));
    ///     assert!(it.next().await.unwrap().is_err());
    ///     assert!(it.next().await.is_none());
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn next(&mut self) -> Option<Result<H, TimeoutError>> {
        poll_fn(|cx| self.poll_next_item(cx)).await
    }

    /// The tasks not yielded as finished (after the deadline: the unfinished ones), taken
    /// out of the stream, in the order given. See [`AsCompleted::take_remaining`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// let mut it = aioloop::as_completed_with_timeout(vec![t], Duration::from_secs(1));
    /// assert_eq!(it.take_remaining().len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_remaining(&mut self) -> Vec<H> {
        self.timed_out = 0;
        self.inner.take_remaining()
    }

    /// How many items are still to be yielded (tasks, or their `TimeoutError`s).
    ///
    /// ```
    /// let it = aioloop::as_completed_with_timeout(Vec::<aioloop::Task<()>>::new(), std::time::Duration::ZERO);
    /// assert_eq!(it.remaining(), 0);
    /// ```
    pub fn remaining(&self) -> usize {
        self.inner.left.saturating_sub(self.timed_out)
    }

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<H, TimeoutError>>> {
        if !self.expired {
            // Tasks that finished in time come first, even if the deadline passed too.
            if let Poll::Ready(t) = self.inner.poll_next_task(cx) {
                return Poll::Ready(t.map(Ok));
            }
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.expired = true;
        }
        if self.timed_out < self.inner.left {
            self.timed_out += 1;
            Poll::Ready(Some(Err(TimeoutError)))
        } else {
            Poll::Ready(None)
        }
    }
}

impl<T, H> futures_core::Stream for AsCompletedTimeout<T, H> {
    type Item = Result<H, TimeoutError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_next_item(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl<T, H> fmt::Debug for AsCompletedTimeout<T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("remaining", &self.remaining())
            .field("expired", &self.expired)
            .finish()
    }
}
