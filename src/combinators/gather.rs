//! `gather` (rule X4): run futures as tasks and collect their results in argument order.

use crate::task::observe::{self, AwaitKind};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::watch::Watch;
use crate::task::spawn::SpawnOpts;
use crate::{Task, TaskError};

/// The state both gather futures share: the children, their results so far, and the
/// watch their hooks report to. Dropped while unfinished, it cancels the children still
/// running (the awaiting task was cancelled: "cancelling the gather cancels its
/// children"); dropped after it finished, it leaves them running (X4: after the first
/// failure the others keep running).
struct Core<T> {
    tasks: Vec<Task<T>>,
    results: Vec<Option<Result<T, TaskError>>>,
    left: usize,
    watch: Arc<Watch>,
    finished: bool,
    /// What a `cancel()` of the awaiting task is passed on to (rule T3, X4: "cancelling the
    /// gather"), made the first time the gather suspends inside a built-in task.
    canceller: Option<Arc<GatherCancel>>,
}

/// The gather as a cancellable awaitable (X4): cancels the unfinished children and answers
/// whether any accepted; the gather then ends cancelled, whatever `return_exceptions` says.
struct GatherCancel {
    children: Vec<crate::TaskRef>,
    requested: std::sync::atomic::AtomicBool,
}

/// A handle to a gather's [`GatherCancel`], as the awaiting task's waiter.
struct GatherHandle(Arc<GatherCancel>);

impl crate::task::cancel::ForwardCancel for GatherHandle {
    fn forward_cancel(&self, msg: Option<Arc<str>>) -> bool {
        // Set first: a child may end, and the gather be polled, before the loop is done.
        self.0
            .requested
            .store(true, std::sync::atomic::Ordering::Release);
        let mut accepted = false;
        for c in &self.0.children {
            if let Some(raw) = c.raw() {
                accepted |= raw.cancel(msg.clone());
            }
        }
        if !accepted {
            self.0
                .requested
                .store(false, std::sync::atomic::Ordering::Release);
        }
        accepted
    }
    fn boxed_clone(&self) -> Box<dyn crate::task::cancel::ForwardCancel> {
        Box::new(GatherHandle(self.0.clone()))
    }
}

impl<T: Send + 'static> Core<T> {
    #[track_caller]
    fn spawn<I, F>(futures: I) -> Core<T>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = T> + Send + 'static,
    {
        let watch = Watch::new();
        let parent = observe::current_id();
        // O4: each member was created where `gather` was called (a closure would report
        // itself).
        let site = std::panic::Location::caller();
        let tasks: Vec<Task<T>> = futures
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let opts = SpawnOpts {
                    // The gather retrieves every child's panic, as asyncio's
                    // `_done_callback` calls `fut.exception()` on each.
                    hook: Some(watch.hook(i, true)),
                    ..SpawnOpts::default()
                };
                match crate::create::spawn_current_at(f, opts, site) {
                    Ok(t) => {
                        // O5: the call graph's gather edge.
                        observe::set_awaited_by(t.raw_task(), parent, AwaitKind::Gather);
                        t
                    }
                    Err(e) => panic!("{e}: aioloop::gather() must be called inside a runtime"),
                }
            })
            .collect();
        let n = tasks.len();
        Core {
            tasks,
            results: (0..n).map(|_| None).collect(),
            left: n,
            watch,
            finished: n == 0,
            canceller: None,
        }
    }

    /// [`Core::poll`], plus rule T3: a pending gather is the awaiting task's waiter, and a
    /// gather cancelled through it stays pending while the cancellation is raised.
    fn step(&mut self, cx: &mut Context<'_>, stop_on_error: bool) -> Poll<Result<(), TaskError>> {
        let r = self.poll(cx, stop_on_error);
        if r.is_pending() {
            self.note_waiter();
            return Poll::Pending;
        }
        if self.raise_if_cancelled() {
            return Poll::Pending;
        }
        r
    }

    /// The gather suspends: inside a built-in task, it is what a `cancel()` is passed on to.
    fn note_waiter(&mut self) {
        let tasks = &self.tasks;
        let c = self.canceller.get_or_insert_with(|| {
            Arc::new(GatherCancel {
                children: tasks.iter().map(Task::task_ref).collect(),
                requested: std::sync::atomic::AtomicBool::new(false),
            })
        });
        let key = crate::task::cancel::future_key(Arc::as_ptr(c));
        let c = c.clone();
        crate::task::cancel::note_waiter(move || {
            crate::task::cancel::Waiter::Future(key, Box::new(GatherHandle(c)))
        });
    }

    /// X4: the gather was cancelled (the awaiting task's request passed on to it): it ends
    /// cancelled, which raises at the await in the awaiting task. `true`: stay pending.
    fn raise_if_cancelled(&self) -> bool {
        match &self.canceller {
            Some(c) if c.requested.load(std::sync::atomic::Ordering::Acquire) => {
                crate::task::cancel::raise_if_forwarded(crate::task::cancel::future_key(
                    Arc::as_ptr(c),
                ))
            }
            _ => false,
        }
    }

    /// Collects what ended; `stop_on_error` ends at the first failure with it.
    fn poll(&mut self, cx: &mut Context<'_>, stop_on_error: bool) -> Poll<Result<(), TaskError>> {
        while self.left > 0 {
            let Poll::Ready(ended) = self.watch.poll_ended(cx) else {
                return Poll::Pending;
            };
            for (i, _) in ended {
                let r = match self.tasks[i].result() {
                    Ok(r) => r,
                    Err(e) => unreachable!("a child's hook ran before it was done: {e}"),
                };
                self.left -= 1;
                match r {
                    Err(e) if stop_on_error => {
                        self.finished = true;
                        return Poll::Ready(Err(e));
                    }
                    r => self.results[i] = Some(r),
                }
            }
        }
        self.finished = true;
        Poll::Ready(Ok(()))
    }

    fn take_results(&mut self) -> impl Iterator<Item = Result<T, TaskError>> + '_ {
        self.results
            .iter_mut()
            .map(|r| r.take().expect("every child ended"))
    }
}

impl<T> Drop for Core<T> {
    fn drop(&mut self) {
        if !self.finished {
            for t in &self.tasks {
                t.cancel(None);
            }
        }
    }
}

/// The future [`gather`] returns: `Ok` with every result in argument order, or the first
/// failure (in completion order).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(async {
///     let g: aioloop::Gather<u8> = aioloop::gather([async { 1u8 }]);
///     g.await
/// });
/// assert_eq!(r.unwrap(), [1]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited (the tasks run anyway)"]
pub struct Gather<T> {
    core: Core<T>,
}

/// The future [`Gather::return_exceptions`] returns: every outcome, in argument order.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(async {
///     let g: aioloop::GatherAll<u8> = aioloop::gather([async { 1u8 }]).return_exceptions();
///     g.await
/// });
/// assert_eq!(*r[0].as_ref().unwrap(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited (the tasks run anyway)"]
pub struct GatherAll<T> {
    core: Core<T>,
}

/// asyncio's `gather(*aws)` (rule X4): spawns every future as a task now, and resolves to
/// their results in argument order.
///
/// The first child to fail (panic, or end cancelled) completes the gather with that error;
/// the other children keep running. For every outcome in place instead, use
/// [`.return_exceptions()`](Gather::return_exceptions). If the task awaiting the gather is
/// cancelled, the gather is dropped and cancels the children still running. An empty
/// gather resolves at once to an empty `Vec`.
///
/// # Panics
/// Outside a runtime (with at least one future), like [`create_task`](crate::create_task).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let v = rt.block_on(async {
///     let futs = (1..=3).map(|i| async move {
///         aioloop::yield_now().await;
///         i * 10
///     });
///     aioloop::gather(futs).await
/// });
/// assert_eq!(v.unwrap(), [10, 20, 30]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn gather<I, F>(futures: I) -> Gather<F::Output>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Gather {
        core: Core::spawn(futures),
    }
}

impl<T: Send + 'static> Gather<T> {
    /// asyncio's `gather(..., return_exceptions=True)`: waits for every child and returns
    /// each outcome in place — values, panics and cancellations alike.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let v = rt.block_on(async {
    ///     let a: std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>> =
    ///         Box::pin(async { 1 });
    ///     let b: std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>> =
    ///         Box::pin(async { panic!("bad") });
    ///     aioloop::gather(vec![a, b]).return_exceptions().await
    /// });
    /// assert_eq!(*v[0].as_ref().unwrap(), 1);
    /// assert!(v[1].as_ref().unwrap_err().is_panic());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn return_exceptions(self) -> GatherAll<T> {
        GatherAll { core: self.core }
    }
}

impl<T: Send + 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = &mut self.core;
        match core.step(cx, true) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => Poll::Ready(core.take_results().collect()),
        }
    }
}

impl<T: Send + 'static> Future for GatherAll<T> {
    type Output = Vec<Result<T, TaskError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = &mut self.core;
        match core.step(cx, false) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(core.take_results().collect()),
        }
    }
}

impl<T> std::fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("left", &self.core.left)
            .finish()
    }
}

impl<T> std::fmt::Debug for GatherAll<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatherAll")
            .field("left", &self.core.left)
            .finish()
    }
}

// The results are never pinned: they are moved out by value.
impl<T> Unpin for Gather<T> {}
impl<T> Unpin for GatherAll<T> {}

type Erased = Pin<Box<dyn Future<Output = Box<dyn Any + Send>> + Send>>;

fn erase<F>(f: F) -> Erased
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Box::pin(async move { Box::new(f.await) as Box<dyn Any + Send> })
}

fn unerase<T: 'static>(v: Option<Box<dyn Any + Send>>) -> T {
    *v.and_then(|v| v.downcast::<T>().ok())
        .expect("gather keeps argument order and types")
}

macro_rules! gather_tuple {
    ($(#[$doc:meta])* $name:ident: $($f:ident $v:ident),+) => {
        $(#[$doc])*
        ///
        /// # Panics
        /// Outside a runtime, like [`create_task`](crate::create_task).
        pub fn $name<$($f),+>($($v: $f),+)
            -> impl Future<Output = Result<($($f::Output,)+), TaskError>> + Send
        where
            $($f: Future + Send + 'static, $f::Output: Send + 'static,)+
        {
            let all = gather(vec![$(erase($v)),+]);
            async move {
                let mut it = all.await?.into_iter();
                Ok(($(unerase::<$f::Output>(it.next()),)+))
            }
        }
    };
}

gather_tuple!(
    /// [`gather`] over two futures of different types: `Ok((a, b))` in argument order, or
    /// the first failure (rule X4).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let (n, s) = rt.block_on(async { aioloop::gather2(async { 1 }, async { "one" }).await })
    ///     .unwrap();
    /// assert_eq!((n, s), (1, "one"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    gather2: A a, B b
);
gather_tuple!(
    /// [`gather`] over three futures of different types (see [`gather2`]).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let r = rt.block_on(async { aioloop::gather3(async { 1 }, async { 'b' }, async { 3.0 }).await });
    /// assert_eq!(r.unwrap(), (1, 'b', 3.0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    gather3: A a, B b, C c
);
gather_tuple!(
    /// [`gather`] over four futures of different types (see [`gather2`]).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let r = rt.block_on(async {
    ///     aioloop::gather4(async { 1 }, async { 2u8 }, async { "3" }, async { () }).await
    /// });
    /// assert_eq!(r.unwrap(), (1, 2u8, "3", ()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    gather4: A a, B b, C c, D d
);
