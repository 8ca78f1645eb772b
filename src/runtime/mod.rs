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

pub(crate) mod block_on;
mod idle;
mod io_steal;
pub(crate) mod shared;
pub(crate) mod worker;

use crate::shim::thread::JoinHandle;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::sync::Arc;

use crate::error::InvalidDelay;
use crate::error::{BuildError, NoRunningLoop};
use crate::event_loop::callback::{Handle as CallbackHandle, TimerHandle};
use crate::event_loop::clock;
use crate::event_loop::context::{self, Loop, LoopRef};
use crate::event_loop::core::LoopCore;
use crate::event_loop::exception::ExceptionContext;
use crate::event_loop::timers::TimerAction;
use crate::shim::atomic::Ordering;
use crate::task::raw::{Notified, RawTask, Schedule, TaskReport};
use crate::task::spawn::SpawnOpts;
use crate::task::{self, LoopId, Task, TaskRef};
use shared::Shared;

/// A multi-threaded, work-stealing event loop: asyncio's loop, one per worker thread, with
/// the workers sharing one task set.
///
/// Dropping the runtime shuts it down: workers stop after their current poll, every
/// unfinished task is cancelled (its future is dropped **on the thread that drops the
/// runtime**; awaiting its `Task` then yields `TaskError::Cancelled`), every worker thread
/// is joined, and every task allocation is freed once its last handle is gone.
///
/// Dropped on one of its own workers (moved into one of its tasks or callbacks), the runtime
/// shuts down *detached* rather than deadlock joining the thread it runs on: the drop
/// cancels every other unfinished task (dropping their futures on that worker), joins the
/// other workers and returns. A task that dropped it keeps its value if it completes in the
/// same poll, else it ends cancelled. That worker thread leaves its loop after its current
/// step, releases its queue and exits on its own.
///
/// The blocking pool (the default executor of [`to_thread`](crate::to_thread) and
/// [`Handle::run_in_executor`]) is *detached*, not waited for: jobs still queued are
/// dropped (their awaiters get [`ExecutorError::Shutdown`](crate::ExecutorError)), running
/// closures finish on their own threads, which then exit. To wait for them, as
/// `asyncio.run` does, await [`Handle::shutdown_default_executor`] before the drop.
///
/// ```
/// let rt = aioloop::Runtime::new()?; // one worker per core
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<JoinHandle<LoopCore>>,
    /// What `Builder::on_build` hooks returned (e.g. a signal registration): dropped with
    /// the runtime, after its shutdown.
    _attachments: Vec<Box<dyn Send + Sync>>,
}

/// A function run by `build` with the new runtime's handle; what it returns lives as long
/// as the runtime. How the feature layer (`dump_on_signal`) attaches to a runtime without
/// the runtime naming it.
type BuildHook = Arc<dyn Fn(&Handle) -> io::Result<Box<dyn Send + Sync>> + Send + Sync>;

#[derive(Clone, Default)]
struct BuildHooks(Vec<BuildHook>);

impl fmt::Debug for BuildHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hook(s)", self.0.len())
    }
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
    thread_stack_size: usize,
    task_factory: Option<crate::task::TaskFactory>,
    debug: bool,
    track_tasks: bool,
    hooks: BuildHooks,
    blocking: crate::blocking::Config,
}

/// The default size of a worker thread's stack, 16 MiB (see [`Builder::thread_stack_size`]
/// for the reasoning and the per-level costs it was chosen from).
///
/// ```
/// assert_eq!(aioloop::runtime::DEFAULT_THREAD_STACK_SIZE, 16 * 1024 * 1024);
/// ```
pub const DEFAULT_THREAD_STACK_SIZE: usize = 16 << 20;

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            thread_name: "aioloop-worker".to_owned(),
            thread_stack_size: DEFAULT_THREAD_STACK_SIZE,
            task_factory: None,
            debug: false,
            track_tasks: false,
            hooks: BuildHooks::default(),
            blocking: crate::blocking::Config::default(),
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

    /// Size in bytes of each worker thread's stack (default
    /// [`DEFAULT_THREAD_STACK_SIZE`], 16 MiB).
    ///
    /// A task's future is polled on a worker's stack, so futures nested inside one task
    /// (`async` calls, combinators, [`TaskGroup`](crate::TaskGroup)s run inside a
    /// group's body) stack their `poll` frames one on top of the other; so do eager tasks
    /// (rule T9) spawned from eager tasks, whose first step runs inside the spawner's poll.
    /// A task awaiting an ordinary (lazy) spawned task does not: each task is polled from
    /// the worker's loop. Measured by `examples/stack_depth.rs` (x86-64 Linux, Rust 1.95;
    /// the slope of the deepest nesting that fits between 1 and 16 MiB stacks):
    ///
    /// | one nesting level of … | debug build | release build |
    /// |---|---|---|
    /// | `TaskGroup::run` inside the body of the group above | 4.6 KiB | 0.8 KiB |
    /// | eager `spawn(..).await` inside an eager task | 3.5 KiB | 1.0 KiB |
    /// | `Box::pin(async { next.await })` | 224 B | 80 B |
    /// | lazy `spawn(..).await` chain | 0 (200,000 levels fit in 1 MiB) | 0 |
    ///
    /// So a 2 MiB stack (std's default for spawned threads, and tokio's) holds about 450
    /// nested task groups in a debug build and 2,500 in a release build. A debug build under
    /// AddressSanitizer (which CI runs) needs more, about 8 KiB a group: 8 MiB holds 1,130
    /// there, 16 MiB 2,060.
    ///
    /// The 16 MiB default is the smallest power of two that holds 1,000 nested task groups
    /// with room to spare (2× or more) in every build CI tests: 3,580 in a debug build,
    /// 2,060 under AddressSanitizer. The memory is reserved, not committed: only the pages a
    /// worker actually touches are backed, so an unused stack costs address space only. A
    /// stack overflow aborts the whole process, so size this for the deepest nesting a
    /// program can reach. [`Runtime::block_on`]'s future runs on the calling thread and a
    /// `LocalLoop` on its owner's thread: their depth is bounded by that thread's stack,
    /// not by this setting.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder()
    ///     .workers(1)
    ///     .thread_stack_size(64 << 20)
    ///     .build()?;
    /// // 100,000 futures nested inside one task: 16 MiB holds about 75,000 in a debug build.
    /// fn nest(n: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send>> {
    ///     Box::pin(async move { if n == 0 { 0 } else { nest(n - 1).await + 1 } })
    /// }
    /// assert_eq!(rt.block_on(rt.spawn(nest(100_000))).unwrap(), 100_000);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.thread_stack_size = bytes;
        self
    }

    /// Installs a task factory (asyncio's `loop.set_task_factory`, rule T10): every task
    /// created on the runtime goes through it.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder()
    ///     .workers(1)
    ///     .task_factory(aioloop::task::TaskFactory::new(|b| b.name("worker")))
    ///     .build()?;
    /// assert_eq!(rt.spawn(async {}).name(), "worker");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_factory(mut self, factory: crate::task::TaskFactory) -> Builder {
        self.task_factory = Some(factory);
        self
    }

    /// Every task starts eagerly (rule T9): shorthand for
    /// `task_factory(aioloop::task::eager_task_factory())`.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).eager_tasks().build()?;
    /// rt.block_on(async { assert!(aioloop::create_task(async {}).done()) });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn eager_tasks(self) -> Builder {
        self.task_factory(crate::task::eager_task_factory())
    }

    /// asyncio's debug mode (`loop.set_debug(True)`): also reports tasks destroyed while
    /// pending (rule T11) to the exception handler. Can be changed later with
    /// [`Handle::set_debug`].
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).debug(true).build()?;
    /// assert!(rt.handle().get_debug());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = on;
        self
    }

    /// Task tracking (rule O4) from the start: every task records its creation site, poll
    /// count, age and last poll, which [`Handle::dump`] and the call graph show. Implied
    /// by debug mode. Off by default: then a task records nothing but await edges.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).track_tasks(true).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert!(rt.handle().dump().contains(file!()));
    /// drop(t);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn track_tasks(mut self, on: bool) -> Builder {
        self.track_tasks = on;
        self
    }

    /// The most threads the runtime's blocking pool (its default executor:
    /// [`to_thread`](crate::to_thread), [`Handle::run_in_executor`]) may run at once.
    /// Default: asyncio's `min(32, cpus + 4)`. Zero counts as one.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).max_blocking_threads(2).build()?;
    /// assert_eq!(rt.handle().metrics().blocking.max_threads, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.blocking.max_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for another job before it exits
    /// (default [`DEFAULT_KEEP_ALIVE`](crate::DEFAULT_KEEP_ALIVE), 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = aioloop::Runtime::builder()
    ///     .workers(1)
    ///     .thread_keep_alive(Duration::from_millis(50))
    ///     .build()?;
    /// rt.block_on(aioloop::to_thread(|| ())).unwrap();
    /// while rt.handle().metrics().blocking.threads > 0 {
    ///     std::thread::sleep(Duration::from_millis(10)); // the idle thread expires
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_keep_alive(mut self, keep_alive: std::time::Duration) -> Builder {
        self.blocking.keep_alive = keep_alive;
        self
    }

    /// Runs `hook` in `build` once the workers run; what it returns is kept until the
    /// runtime is dropped. An error fails `build` (the runtime is shut down).
    #[cfg_attr(any(not(unix), loom), allow(dead_code))]
    pub(crate) fn on_build(
        mut self,
        hook: impl Fn(&Handle) -> io::Result<Box<dyn Send + Sync>> + Send + Sync + 'static,
    ) -> Builder {
        self.hooks.0.push(Arc::new(hook));
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
        let (mut shared, locals) = Shared::new(self.workers, self.task_factory)?;
        shared.blocking = crate::blocking::Pool::new(crate::blocking::Config {
            name: format!("{}-blocking", self.thread_name),
            ..self.blocking.clone()
        });
        shared.exceptions.set_debug(self.debug);
        shared.exceptions.set_track_tasks(self.track_tasks);
        let shared = Arc::new(shared);
        let mut rt = Runtime {
            handle: Handle::from_shared(shared.clone()),
            threads: Vec::with_capacity(self.workers),
            _attachments: Vec::new(),
        };
        for (index, local) in locals.into_iter().enumerate() {
            let shared = shared.clone();
            let spawned = crate::shim::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .stack_size(self.thread_stack_size)
                .spawn(move || worker::run(shared, index, local));
            match spawned {
                Ok(h) => rt.threads.push(h),
                // Dropping `rt` stops and joins the workers started so far.
                Err(e) => return Err(e),
            }
        }
        for hook in &self.hooks.0 {
            let attachment = hook(&rt.handle)?;
            rt._attachments.push(attachment);
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
    #[track_caller]
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
        self.handle
            .metrics()
            .workers
            .iter()
            .map(|w| WorkerStats {
                index: w.index,
                polled: w.polled,
                stolen: w.stolen,
                parked: w.parked,
            })
            .collect()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        shared.begin_shutdown();
        // The blocking pool is detached, not joined: queued jobs are dropped (their
        // awaiters see `ExecutorError::Shutdown`), running closures finish on their own
        // threads (their results are dropped there) and those threads then exit. To wait
        // for them, call `Handle::shutdown_default_executor` first, as `asyncio.run` does.
        shared.blocking.shutdown(true);
        let me = crate::shim::thread::current().id();
        let mut cores = Vec::with_capacity(self.threads.len());
        for t in self.threads.drain(..) {
            if t.thread().id() == me {
                // Dropped from inside one of our own tasks: that worker cannot be joined
                // from itself. It leaves its loop after this poll and releases its queue.
                continue;
            }
            // A worker never panics (task panics are caught), so `Err` cannot happen; if it
            // did, its queue is gone with its stack and there is nothing left to release.
            if let Ok(core) = t.join() {
                cores.push(core);
            }
        }
        // Steps 3 and 4 of the shutdown order (shared.rs). Releasing a queued reference can
        // run a destructor that spawns or wakes: repeat until our queues stay empty. (A
        // worker that was not joined, see above, releases its own queue when it exits.)
        let cores: Vec<&LoopCore> = cores.iter().collect();
        crate::event_loop::core::shut_down(
            shared.id,
            &cores,
            || shared.drain_injector(),
            || shared.injector.is_empty(),
        );
        #[cfg(not(loom))]
        crate::task::registry::shrink();
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
    crate::event_loop::loop_api::shared_loop_api!(
        "let rt = aioloop::Runtime::builder().workers(1).build()?;\nlet lp = rt.handle();"
    );

    /// This runtime's counters (rule O3): per worker, polls, steals, parks, queue depth,
    /// timers fired; runtime-wide, the injector's depth, live tasks by state, tasks spawned
    /// and completed. Reading costs a walk of the task registry; the workers' hot paths
    /// only write their own counters.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// let m = rt.handle().metrics();
    /// assert_eq!(m.workers.len(), 2);
    /// assert_eq!(m.spawned, 1);
    /// assert_eq!(m.tasks.live(), 1);
    /// drop(t);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> crate::Metrics {
        let shared = &self.shared;
        let stats: Vec<&crate::event_loop::stats::LoopStats> =
            shared.stats.iter().map(|s| &***s).collect();
        let workers = stats
            .iter()
            .zip(shared.stealers.iter())
            .enumerate()
            .map(|(i, (s, q))| s.snapshot(i, q.len()))
            .collect();
        let mut m = crate::Metrics::assemble(
            shared.id,
            &stats,
            &shared.spawned_elsewhere,
            workers,
            shared.injector.len(),
        );
        m.blocking = shared.blocking.metrics();
        m
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Handle {
        Handle { shared }
    }

    /// This runtime as a loop of either kind.
    pub(crate) fn loop_ref(&self) -> LoopRef {
        LoopRef::new(self.shared.clone())
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
        context::current_owner()
            .and_then(|l| l.downcast::<Shared>())
            .map(Handle::from_shared)
            .ok_or(NoRunningLoop)
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
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, SpawnOpts::default())
    }

    /// asyncio's `loop.call_soon(f)`: runs `f` once, in FIFO order with the other ready
    /// callbacks and tasks of the worker it lands on (rule S1).
    ///
    /// Called on a worker, the callback joins *that worker's* ready queue and runs there
    /// unless an idle peer steals it; called from any other thread it goes to the shared
    /// injector and runs on whichever worker takes it. A panic in `f` goes to the exception
    /// handler (rule S8); the worker keeps running.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().call_soon(move || tx.send(1).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_soon<F: FnOnce() + Send + 'static>(&self, f: F) -> CallbackHandle {
        // SAFETY: `F: Send`, so the callback may run on any worker.
        let h = unsafe { CallbackHandle::new(f) };
        self.shared.call_soon_handle(h.clone());
        h
    }

    /// asyncio's `loop.call_soon_threadsafe(f)`. On a runtime every `call_soon` is already
    /// thread-safe (it wakes a parked worker when needed); this is the same call, named for
    /// code ported from asyncio.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let h = rt.handle().clone();
    /// std::thread::spawn(move || h.call_soon_threadsafe(move || tx.send(2).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(&self, f: F) -> CallbackHandle {
        self.call_soon(f)
    }

    /// asyncio's `loop.call_later(delay, f)`: `call_at(time() + delay)` (rule S2), so the
    /// timer's `when()` is that sum. The delay is in seconds and may be negative (due at
    /// once, ordered before later ones).
    ///
    /// # Errors
    /// [`InvalidDelay`] for NaN or minus infinity (`+inf` never fires).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().call_later(0.01, move || tx.send(()).unwrap()).unwrap();
    /// rx.recv().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_later<F: FnOnce() + Send + 'static>(
        &self,
        delay: f64,
        f: F,
    ) -> Result<TimerHandle, InvalidDelay> {
        self.call_at(clock::time() + delay, f)
    }

    /// asyncio's `loop.call_at(when, f)`, `when` on the loop clock ([`Handle::time`]).
    ///
    /// # Errors
    /// [`InvalidDelay`] for NaN or minus infinity.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let h = rt.handle();
    /// h.call_at(h.time() + 0.01, move || tx.send(()).unwrap()).unwrap();
    /// rx.recv().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_at<F: FnOnce() + Send + 'static>(
        &self,
        when: f64,
        f: F,
    ) -> Result<TimerHandle, InvalidDelay> {
        let nanos = clock::secs_to_nanos(when)?;
        // SAFETY: `F: Send`, so the callback may run on any worker.
        let handle = unsafe { CallbackHandle::new(f) };
        let timer = TimerHandle {
            handle: handle.clone(),
            when,
        };
        if self.shared.is_shutdown() {
            handle.cb.discard();
            return Ok(timer);
        }
        let action = TimerAction::Callback(handle);
        if let Err(action) = context::add_timer_for(&*self.shared, nanos, action) {
            self.shared.add_remote_timer(nanos, action);
        }
        Ok(timer)
    }

    #[track_caller]
    pub(crate) fn spawn_with<F>(&self, future: F, opts: SpawnOpts) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(future, opts, Location::caller())
    }

    /// `spawn_with`, for a task created at `site` (O4).
    #[inline]
    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        opts: SpawnOpts,
        site: &'static Location<'static>,
    ) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let opts = match &self.shared.task_factory {
            Some(factory) => factory.apply(opts),
            None => opts,
        };
        let eager = opts.starts_eagerly();
        let raw = RawTask::new(future, self.clone(), task::next_task_id());
        // SAFETY: a fresh task whose output is `F::Output`.
        let (join, notified) = unsafe { task::spawn::bind(raw, opts) };
        if self.shared.exceptions.tracks_tasks() {
            task::observe::attach(raw, site);
        }
        if self.shared.is_shutdown() {
            // The runtime is gone or going: the task is cancelled before its first step
            // instead of being queued on a dead loop.
            task::spawn::reject(notified, raw);
        } else if eager && context::current_loop_id() == Some(self.shared.id) {
            // T9: only from inside this runtime; elsewhere an eager request is queued.
            if !context::count_spawn(&*self.shared) {
                self.shared
                    .spawned_elsewhere
                    .fetch_add(1, Ordering::Relaxed);
            }
            task::spawn::run_eagerly(notified);
        } else {
            self.shared.schedule_spawned(notified);
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

    fn call_soon(&self, f: Box<dyn FnOnce() + Send>) -> bool {
        // SAFETY: the closure is `Send`: it may run on any worker.
        self.shared
            .call_soon_handle(unsafe { CallbackHandle::new(f) })
    }

    fn report(&self, task: TaskRef, report: TaskReport) {
        self.shared
            .exceptions
            .call(ExceptionContext::about_task(task, report));
    }

    fn debug(&self) -> bool {
        self.shared.exceptions.debug()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.id()).finish()
    }
}
