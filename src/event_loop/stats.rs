//! A loop's counters and the metrics snapshot read from them (`Handle::metrics`,
//! `LocalLoop::metrics`; rule O3).
//!
//! # Protocol
//!
//! 1. Every counter of a [`LoopStats`] is written only by the thread running that loop's
//!    iterations (a worker, or the `LocalLoop`'s thread): a relaxed load and a relaxed store,
//!    no read-modify-write, so the hot path pays two plain moves on a cache line no other
//!    writer touches (`CachePadded` keeps peers' counters off it).
//! 2. Any thread reads them with relaxed loads. A snapshot is a set of independent
//!    readings, not one consistent instant: each counter is monotonic and exact once the
//!    loop is idle.
//! 3. `completed` is derived, not counted: `spawned − live`, where live tasks are counted in
//!    the registry (a built-in task is in it from spawn until completion, invariant 3), so
//!    completion costs nothing. The spawn counter is read first: a task spawned between
//!    the two readings counts as live but not as spawned, which can only make `completed`
//!    low for that snapshot (`saturating_sub` keeps it from going negative).
//!
//! Spawns are counted the same way when they happen on a thread running the loop (the
//! common case: a task creating tasks); a spawn from any other thread adds to the loop's
//! one shared counter with a relaxed RMW (`spawned_elsewhere`).
//!
//! The only hot-path hooks are [`LoopStats::bump`] calls in `LoopCore::run_once` (per item,
//! before it runs; per park; per batch of fired timers), in the worker's steal path and in
//! `context::count_spawn`.

use crossbeam_utils::CachePadded;

use crate::shim::atomic::{AtomicU64, Ordering};
use crate::shim::Arc;
use crate::task::{registry, LoopId};

/// One loop's counters (rule 1: owner-only writes).
#[derive(Default)]
pub(crate) struct LoopStats {
    /// The worker's index (0 for a `LocalLoop`); fixed at creation.
    pub(crate) index: u32,
    pub(crate) polled: AtomicU64,
    /// Tasks spawned from this loop's own thread onto this loop.
    pub(crate) spawned: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) steal_ops: AtomicU64,
    pub(crate) parked: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
    /// Tasks run from the LIFO ("next task") slot.
    pub(crate) lifo_hits: AtomicU64,
}

/// Shared between the loop (writer) and whoever reads metrics.
pub(crate) type StatsRef = Arc<CachePadded<LoopStats>>;

pub(crate) fn new_stats(index: usize) -> StatsRef {
    Arc::new(CachePadded::new(LoopStats {
        index: index as u32,
        ..LoopStats::default()
    }))
}

impl LoopStats {
    /// Adds `n` to `counter`. Rule 1: only the loop's own thread calls this.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        if cfg!(aioloop_unobserved) {
            return; // measurement only: counters stay at zero (benches/observe_cost.sh)
        }
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, index: usize, local_queue_depth: usize) -> WorkerMetrics {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerMetrics {
            index,
            polled: r(&self.polled),
            stolen: r(&self.stolen),
            steal_operations: r(&self.steal_ops),
            parked: r(&self.parked),
            local_queue_depth,
            timers_fired: r(&self.timers_fired),
            lifo_hits: r(&self.lifo_hits),
        }
    }
}

/// A snapshot of a runtime's or a `LocalLoop`'s counters: [`Handle::metrics`] /
/// [`LocalLoop::metrics`] (rule O3). Counters are monotonic; depths and task counts are
/// instantaneous readings.
///
/// [`Handle::metrics`]: crate::Handle::metrics
/// [`LocalLoop::metrics`]: crate::LocalLoop::metrics
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// rt.block_on(async {
///     for _ in 0..10 {
///         aioloop::create_task(async {}).await.unwrap();
///     }
/// });
/// let m = rt.handle().metrics();
/// assert_eq!(m.workers.len(), 2);
/// assert_eq!(m.spawned, 10);
/// assert_eq!(m.completed, 10);
/// assert!(m.workers.iter().map(|w| w.polled).sum::<u64>() >= 10);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// One entry per worker (a `LocalLoop`: one entry, its own thread).
    pub workers: Vec<WorkerMetrics>,
    /// Items waiting in the shared injector (a `LocalLoop`: its cross-thread inbox).
    pub injector_depth: usize,
    /// Unfinished built-in tasks of this loop, by state.
    pub tasks: TaskCounts,
    /// Built-in tasks ever spawned on this loop.
    pub spawned: u64,
    /// Built-in tasks of this loop that finished (`spawned` minus those still alive).
    pub completed: u64,
    /// The loop's blocking pool (default executor): threads and queued jobs.
    pub blocking: crate::blocking::BlockingMetrics,
}

/// One worker's counters (part of [`Metrics`]).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// // A `call_later` callback always goes through the timer queue (a `sleep` whose
/// // deadline has passed by its first poll completes without one).
/// let fired = std::rc::Rc::new(std::cell::Cell::new(false));
/// let f = fired.clone();
/// lp.call_later(0.001, move || f.set(true))?;
/// while !fired.get() {
///     lp.run_once(None)?;
/// }
/// let w = &lp.metrics().workers[0];
/// assert!(w.timers_fired >= 1);
/// assert_eq!(w.stolen, 0); // a LocalLoop never steals
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// The worker's index (its thread is `<prefix>-<index>`).
    pub index: usize,
    /// Items run: task polls and callbacks.
    pub polled: u64,
    /// Tasks taken from peers' queues.
    pub stolen: u64,
    /// Successful steals (each takes a batch, counted in `stolen`).
    pub steal_operations: u64,
    /// Times the worker went to sleep in its poller.
    pub parked: u64,
    /// Items in its ready queue now.
    pub local_queue_depth: usize,
    /// Timers fired (sleeps woken, `call_later` callbacks queued, timeouts expired).
    pub timers_fired: u64,
    /// Tasks run from the loop's LIFO ("next task") slot: a task woken or spawned by the
    /// running task, run next on the same thread (`event_loop/lifo.rs`).
    pub lifo_hits: u64,
}

/// Unfinished tasks by state (part of [`Metrics`]).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let t = rt.spawn(std::future::pending::<()>());
/// while rt.handle().metrics().tasks.waiting == 0 {
///     std::thread::yield_now(); // until a worker has polled it once
/// }
/// assert_eq!(rt.handle().metrics().tasks.live(), 1);
/// drop(t);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Being polled right now.
    pub running: usize,
    /// Queued to run (woken, or not started).
    pub scheduled: usize,
    /// Suspended, waiting for a wake-up.
    pub waiting: usize,
}

impl TaskCounts {
    /// All unfinished tasks.
    ///
    /// ```
    /// assert_eq!(aioloop::TaskCounts::default().live(), 0);
    /// ```
    pub fn live(&self) -> usize {
        self.running + self.scheduled + self.waiting
    }

    /// Counts the unfinished built-in tasks of `loop_id` in the registry (rule 3: the
    /// caller read its spawn counter first).
    pub(crate) fn of_loop(loop_id: LoopId) -> TaskCounts {
        let mut counts = TaskCounts::default();
        registry::collect(|t| {
            let Some(raw) = t.raw() else { return false };
            let s = raw.header().state.load();
            if t.loop_id() != loop_id || s.is_complete() {
                // Another loop's, or finished and about to leave the registry.
            } else if s.is_running() {
                counts.running += 1;
            } else if s.is_notified() {
                counts.scheduled += 1;
            } else {
                counts.waiting += 1;
            }
            false
        });
        counts
    }
}

impl Metrics {
    /// Assembles a snapshot (rule 3: the spawn counters are read before the registry).
    /// `spawned_elsewhere` is the loop's shared counter of spawns from other threads.
    pub(crate) fn assemble(
        loop_id: LoopId,
        stats: &[&LoopStats],
        spawned_elsewhere: &AtomicU64,
        workers: Vec<WorkerMetrics>,
        injector_depth: usize,
    ) -> Metrics {
        let spawned = stats
            .iter()
            .map(|s| s.spawned.load(Ordering::Relaxed))
            .sum::<u64>()
            + spawned_elsewhere.load(Ordering::Relaxed);
        let tasks = TaskCounts::of_loop(loop_id);
        Metrics {
            workers,
            injector_depth,
            tasks,
            spawned,
            completed: spawned.saturating_sub(tasks.live() as u64),
            blocking: Default::default(),
        }
    }
}
