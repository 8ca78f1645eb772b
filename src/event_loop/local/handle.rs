//! `LoopHandle`, the `Send` side of a `LocalLoop` for other threads, and `spawn_local`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::shared::{LocalScheduler, LocalShared};
use crate::error::LoopError;
use crate::event_loop::callback::Handle;
use crate::event_loop::context::{self, LoopRef};
use crate::shim::atomic::Ordering;
use crate::task::raw::RawTask;
use crate::task::spawn::SpawnOpts;
use crate::task::{self, LoopId, Task};

/// A `Send + Clone` handle to a [`LocalLoop`](crate::LocalLoop), for other threads: `call_soon_threadsafe`,
/// `spawn` (of `Send` futures), `stop`.
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let h = lp.handle();
/// let t = std::thread::spawn(move || h.call_soon_threadsafe(|| println!("hi")));
/// t.join().unwrap()?;
/// lp.run_once(Some(std::time::Duration::from_secs(1)))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(super) shared: Arc<LocalShared>,
}

impl LoopHandle {
    /// The loop's id.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.handle().id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// asyncio's `call_soon_threadsafe(f)`: queues `f` from any thread and wakes the loop
    /// (its poller's fd becomes readable).
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.call_soon_threadsafe(move || tx.send(3).unwrap()).unwrap());
    /// while rx.try_recv().is_err() {
    ///     lp.run_once(Some(std::time::Duration::from_millis(10)))?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<Handle, LoopError> {
        self.shared.call_soon_send(f).ok_or(LoopError::Closed)
    }

    /// Spawns a `Send` future as a task of the loop, from any thread.
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// let t = std::thread::spawn(move || h.spawn(async { 4 })).join().unwrap()?;
    /// assert_eq!(lp.run_until_complete(t)?.unwrap(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(LoopError::Closed);
        }
        Ok(self.shared.spawn_with(future, SpawnOpts::default()))
    }

    /// asyncio's `stop()`, from any thread.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.stop());
    /// lp.run_forever()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop()
    }

    /// Whether the loop was closed.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// drop(lp);
    /// assert!(h.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Spawns a future that need not be `Send` on the [`LocalLoop`](crate::LocalLoop) running on this thread.
///
/// # Panics
/// If no `LocalLoop` is running on this thread (a runtime's workers cannot run `!Send`
/// tasks: use [`create_task`](crate::create_task) there).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let v = lp.run_until_complete(async {
///     let rc = std::rc::Rc::new(1);
///     aioloop::spawn_local(async move { *rc + 1 }).await.unwrap()
/// })?;
/// assert_eq!(v, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_local_with(future, SpawnOpts::default(), std::panic::Location::caller())
}

impl task::Builder {
    /// [`spawn_local`] with these options (name, eager start, context): asyncio's
    /// `loop.create_task(coro, name=..., context=...)` for a future that need not be `Send`.
    ///
    /// # Panics
    /// As [`spawn_local`]: if no `LocalLoop` is running on this thread.
    ///
    /// ```
    /// use aioloop::contextvars::{Context, ContextVar};
    /// static V: ContextVar<u8> = ContextVar::new("v");
    /// let lp = aioloop::LocalLoop::new()?;
    /// let (name, v) = lp.run_until_complete(async {
    ///     let mut ctx = Context::new();
    ///     ctx.run(|| V.set(1));
    ///     let rc = std::rc::Rc::new(()); // !Send is fine
    ///     let t = aioloop::task::Builder::new()
    ///         .name("ui")
    ///         .context(ctx)
    ///         .spawn_local(async move { let _rc = rc; V.get() });
    ///     (t.name(), t.await.unwrap())
    /// })?;
    /// assert_eq!((name.as_str(), v), ("ui", Some(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_local_with(future, self.opts(), std::panic::Location::caller())
    }
}

fn spawn_local_with<F>(
    future: F,
    opts: SpawnOpts,
    site: &'static std::panic::Location<'static>,
) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::current_owner().and_then(|l| l.downcast::<LocalShared>()) {
        Some(shared) if context::is_thread_of(&*shared) => {
            // SAFETY: this thread runs that loop right now (checked above), and a
            // `LocalLoop` runs its tasks only on its own thread and cancels them there.
            let raw = unsafe {
                RawTask::new_local(future, LocalScheduler(shared.clone()), task::next_task_id())
            };
            // SAFETY: a fresh task whose output is `F::Output`, bound on the loop's own
            // thread (checked above).
            unsafe { shared.bind(raw, opts, site) }
        }
        _ => panic!(
            "no running event loop: aioloop::spawn_local() must be called inside a running LocalLoop"
        ),
    }
}

impl LoopHandle {
    /// The handle of the [`LocalLoop`](crate::LocalLoop) running on this thread: asyncio's
    /// `get_running_loop()` from inside one of its tasks or callbacks, without capturing
    /// the loop by hand.
    ///
    /// # Panics
    /// If no `LocalLoop` runs on this thread ("no running event loop"); see
    /// [`LoopHandle::try_current`]. (On a runtime, use [`Handle::current`](crate::Handle::current).)
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let id = lp.id();
    /// lp.run_until_complete(async move {
    ///     let running = aioloop::LoopHandle::current();
    ///     assert_eq!(running.id(), id);
    ///     let t = running.spawn(async { 1 }).unwrap();
    ///     assert_eq!(t.await.unwrap(), 1);
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn current() -> LoopHandle {
        match LoopHandle::try_current() {
            Ok(h) => h,
            Err(e) => panic!(
                "{e}: aioloop::LoopHandle::current() must be called inside a running LocalLoop"
            ),
        }
    }

    /// [`LoopHandle::current`], or `Err(NoRunningLoop)` when no `LocalLoop` runs on this
    /// thread (none at all, or a runtime's).
    ///
    /// ```
    /// assert!(aioloop::LoopHandle::try_current().is_err());
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert!(lp.run_until_complete(async { aioloop::LoopHandle::try_current().is_ok() })?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_current() -> Result<LoopHandle, crate::error::NoRunningLoop> {
        context::current_owner()
            .and_then(|l| l.downcast::<LocalShared>())
            .filter(|shared| context::is_thread_of(&**shared))
            .map(|shared| LoopHandle { shared })
            .ok_or(crate::error::NoRunningLoop)
    }

    /// The loop behind this handle, as a loop of either kind.
    pub(crate) fn loop_ref(&self) -> LoopRef {
        LoopRef::new(self.shared.clone())
    }
}
