//! The multi-threaded, work-stealing runtime.
//!
//! A [`Runtime`] owns `n` worker threads. Each runs an asyncio-shaped loop over its own
//! run queue, steals from its peers when idle, and sleeps inside its own `polling::Poller`
//! (see `worker.rs` for the iteration, `idle.rs` for the parking protocol, `shared.rs` for
//! the shutdown order).
//!
//! ```
//! use aioloop::Runtime;
//!
//! let rt = Runtime::builder().workers(2).build()?;
//! let total = rt.block_on(async {
//!     let tasks: Vec<_> = (0..10u64).map(|i| aioloop::create_task(async move { i * i })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await.unwrap();
//!     }
//!     sum
//! });
//! assert_eq!(total, 285);
//! # Ok::<(), std::io::Error>(())
//! ```

mod block_on;
pub(crate) mod context;
mod idle;
pub(crate) mod park;
pub(crate) mod queue;
pub(crate) mod shared;
pub(crate) mod worker;

use crate::sync::thread::JoinHandle;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::error::{BuildError, NoRunningLoop};
use crate::task::raw::{Notified, RawTask, Schedule};
use crate::task::{self, registry, LoopId, Task, TaskRef};
use shared::Shared;

/// A multi-threaded, work-stealing event loop: asyncio's loop, one per worker thread, with
/// the workers sharing one task set.
///
/// Dropping the runtime shuts it down: workers stop after their current poll, every
/// unfinished task is cancelled (its future is dropped **on the thread that drops the
/// runtime**; awaiting its `Task` then yields `TaskError::Cancelled`), every worker thread
/// is joined, and every task allocation is freed once its last handle is gone.
///
/// ```
/// let rt = aioloop::Runtime::new()?; // one worker per core
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<JoinHandle<queue::Local<Notified>>>,
}

/// Configures a [`Runtime`].
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(2).thread_name("io").build()?;
/// assert_eq!(rt.num_workers(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: usize,
    thread_name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            thread_name: "aioloop-worker".to_owned(),
        }
    }
}

impl Builder {
    /// Number of worker threads (default: the number of available cores). Zero is refused by
    /// [`build`](Builder::build).
    ///
    /// ```
    /// assert!(aioloop::Runtime::builder().workers(0).build().is_err());
    /// ```
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n;
        self
    }

    /// Prefix of the worker threads' names (`<prefix>-<index>`).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).thread_name("svc").build().unwrap();
    /// let name = rt.block_on(rt.spawn(async { std::thread::current().name().map(str::to_owned) }));
    /// assert_eq!(name.unwrap().as_deref(), Some("svc-0"));
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    /// `InvalidInput` wrapping [`BuildError::ZeroWorkers`] for `workers(0)`; the OS error if
    /// a poller or a thread cannot be created.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(3).build()?;
    /// assert_eq!(rt.num_workers(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<Runtime> {
        if self.workers == 0 {
            return Err(BuildError::ZeroWorkers.into());
        }
        let (shared, locals) = Shared::new(self.workers)?;
        let shared = Arc::new(shared);
        let mut rt = Runtime {
            handle: Handle::from_shared(shared.clone()),
            threads: Vec::with_capacity(self.workers),
        };
        for (index, local) in locals.into_iter().enumerate() {
            let shared = shared.clone();
            let spawned = crate::sync::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || worker::run(shared, index, local));
            match spawned {
                Ok(h) => rt.threads.push(h),
                // Dropping `rt` stops and joins the workers started so far.
                Err(e) => return Err(e),
            }
        }
        Ok(rt)
    }
}

impl Runtime {
    /// A runtime with one worker per available core.
    ///
    /// # Errors
    /// The OS error if a poller or a thread cannot be created.
    ///
    /// ```
    /// let rt = aioloop::Runtime::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Runtime> {
        Builder::default().build()
    }

    /// A [`Builder`] with default settings.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs `future` to completion on this thread while the workers run the tasks: asyncio's
    /// `run_until_complete` (and `asyncio.run`). The future need not be `Send`.
    ///
    /// Inside it there is a running loop: `create_task`, `current_task` (a main task that
    /// stands for the future, as asyncio wraps the main coroutine in a Task) and `all_tasks`
    /// work.
    ///
    /// # Panics
    /// If this thread already runs a loop (inside another `block_on`, or on a worker):
    /// "Cannot run the event loop while another loop is running" (rule S6).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let v = rt.block_on(async { aioloop::create_task(async { 5 }).await.unwrap() });
    /// assert_eq!(v, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on::block_on(&self.handle, future)
    }

    /// Spawns a task from any thread (asyncio's `loop.create_task`, or
    /// `run_coroutine_threadsafe` from another thread).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let t = rt.spawn(async { "hi" });
    /// assert_eq!(rt.block_on(t).unwrap(), "hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// A cloneable, `Send` handle to this runtime.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let h = rt.handle().clone();
    /// let t = std::thread::spawn(move || h.spawn(async { 1 })).join().unwrap();
    /// assert_eq!(rt.block_on(t).unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The unfinished, registered tasks of this runtime (rule L7), from any thread.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert_eq!(rt.all_tasks(), vec![t.task_ref()]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.handle.all_tasks()
    }

    /// Number of worker threads.
    ///
    /// ```
    /// assert_eq!(aioloop::Runtime::builder().workers(2).build()?.num_workers(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn num_workers(&self) -> usize {
        self.handle.shared.num_workers()
    }

    /// Per-worker counters: polls run, tasks stolen from peers, times parked.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// rt.block_on(rt.spawn(async {})).unwrap();
    /// let polled: u64 = rt.worker_stats().iter().map(|w| w.polled).sum();
    /// assert!(polled >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        use crate::sync::atomic::Ordering::Relaxed;
        self.handle
            .shared
            .counters
            .iter()
            .enumerate()
            .map(|(index, c)| WorkerStats {
                index,
                polled: c.polled.load(Relaxed),
                stolen: c.stolen.load(Relaxed),
                parked: c.parked.load(Relaxed),
            })
            .collect()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        shared.begin_shutdown();
        let me = crate::sync::thread::current().id();
        let mut locals = Vec::with_capacity(self.threads.len());
        for t in self.threads.drain(..) {
            if t.thread().id() == me {
                // Dropped from inside one of our own tasks: that worker cannot be joined
                // from itself. It leaves its loop after this poll and releases its queue.
                continue;
            }
            // A worker never panics (task panics are caught), so `Err` cannot happen; if it
            // did, its queue is gone with its stack and there is nothing left to release.
            if let Ok(local) = t.join() {
                locals.push(local);
            }
        }
        // Steps 3 and 4 of the shutdown order (shared.rs). Releasing a queued reference can
        // run a destructor that spawns or wakes: repeat until our queues stay empty. (A
        // worker that was not joined, see above, releases its own queue when it exits.)
        loop {
            shared.cancel_all_tasks();
            crate::sync::atomic::fence(crate::sync::atomic::Ordering::SeqCst);
            shared.drain_injector();
            for local in &locals {
                while let Some(task) = local.pop() {
                    drop(task);
                }
            }
            if shared.injector.is_empty() && locals.iter().all(|l| l.is_empty()) {
                break;
            }
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.handle.id())
            .field("workers", &self.num_workers())
            .finish()
    }
}

/// A snapshot of one worker's counters ([`Runtime::worker_stats`]).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// assert_eq!(rt.worker_stats()[0].index, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index (its thread is `<prefix>-<index>`).
    pub index: usize,
    /// Task polls run on this worker.
    pub polled: u64,
    /// Tasks this worker stole from its peers.
    pub stolen: u64,
    /// Times this worker went to sleep in its poller.
    pub parked: u64,
}

/// A cloneable, `Send + Sync` reference to a runtime, for spawning from anywhere.
///
/// A handle does not keep the workers running: once the [`Runtime`] is dropped, tasks
/// spawned through a handle are cancelled at once.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let h = rt.handle().clone();
/// let inside = rt.block_on(async { aioloop::Handle::current().id() });
/// assert_eq!(inside, h.id());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Handle {
        Handle { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The handle of the runtime running on this thread.
    ///
    /// # Panics
    /// Outside a runtime ("no running event loop"); see [`Handle::try_current`].
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async { aioloop::Handle::current(); });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}: aioloop::Handle::current() was called outside a runtime"),
        }
    }

    /// The handle of the runtime running on this thread, or `Err(NoRunningLoop)`.
    ///
    /// ```
    /// assert!(aioloop::Handle::try_current().is_err());
    /// ```
    pub fn try_current() -> Result<Handle, NoRunningLoop> {
        context::current_handle().ok_or(NoRunningLoop)
    }

    /// The runtime's loop id (what [`TaskRef::loop_id`] returns for its tasks).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// assert_eq!(rt.handle().id(), rt.handle().clone().id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// Spawns a task on this runtime from any thread.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.handle().spawn(async { 9 });
    /// assert_eq!(rt.block_on(t).unwrap(), 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, None)
    }

    /// The unfinished, registered tasks of this runtime (rule L7).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// assert!(rt.handle().all_tasks().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        task::all_tasks_of(self.shared.id)
    }

    pub(crate) fn spawn_with<F>(&self, future: F, name: Option<Arc<str>>) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = task::next_task_id();
        let raw = RawTask::new(future, self.clone(), id);
        if let Some(name) = name {
            registry::set_name(id, name);
            raw.header().state.set_named();
        }
        // A new task holds three references (task/state.rs): one each for the registry, the
        // handle and the first `Notified`.
        // SAFETY: each wrapper below takes exactly one of those three references.
        let (entry, join, notified) = unsafe {
            (
                TaskRef::from_raw_builtin(raw),
                Task::from_raw(raw),
                Notified::from_raw(raw),
            )
        };
        registry::insert(entry); // rule T2: registered at creation
        if self.shared.is_shutdown() {
            // The runtime is gone or going: the task is cancelled before its first step
            // (its future is dropped here) instead of being queued on a dead loop.
            raw.shutdown();
            drop(notified);
        } else {
            self.shared.schedule(notified);
        }
        join
    }
}

impl Schedule for Handle {
    #[inline]
    fn schedule(&self, task: Notified) {
        self.shared.schedule(task)
    }

    fn loop_id(&self) -> LoopId {
        self.shared.id
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.id()).finish()
    }
}

/// Whether this thread is one of `handle`'s workers.
#[allow(dead_code)]
pub(crate) fn on_worker_of(handle: &Handle) -> bool {
    context::is_worker_of(&handle.shared)
}
