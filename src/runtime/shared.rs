//! State shared by all workers of one runtime: the injector, every worker's stealer and
//! parker, the idle counters, the shutdown flag, and per-worker statistics.
//!
//! # Shutdown order
//!
//! `Runtime::drop` (1) sets `shutdown` and unparks every worker; (2) joins the worker
//! threads, each of which leaves its loop at the next iteration and hands back its local
//! queue; (3) on the dropping thread, cancels every unfinished task of this runtime found in
//! the registry, dropping its future there; (4) drains the injector and the local queues,
//! releasing the references they hold (which frees the tasks nobody else references). A task
//! spawned after (1) is cancelled on the spawning thread instead of being queued; a task
//! pushed to the injector concurrently with (4) is drained by its pusher (see
//! [`Shared::schedule_remote`]).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::idle::Idle;
use crate::event_loop::callback::{Handle as CallbackHandle, Runnable};
use crate::event_loop::context::{self, Loop};
use crate::event_loop::core;
use crate::event_loop::exception::HandlerSlot;
use crate::event_loop::park::{Park, Parker};
use crate::event_loop::queue::{self, Injector, Local, Stealer};
use crate::event_loop::stats::{self, StatsRef};
use crate::event_loop::timers::TimerAction;
use crate::shim::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::shim::Mutex;
use crate::task::raw::Notified;
use crate::task::LoopId;

pub(crate) struct Shared {
    pub(crate) id: LoopId,
    pub(crate) injector: Injector<Runnable>,
    pub(crate) stealers: Box<[Stealer<Runnable>]>,
    pub(crate) parkers: Box<[Parker]>,
    pub(crate) idle: Idle,
    shutdown: AtomicBool,
    /// Each worker's counters, written by that worker only (event_loop/stats.rs rule 1).
    pub(crate) stats: Box<[StatsRef]>,
    /// Tasks spawned on this runtime from threads that are not its workers (the workers
    /// count theirs in their own `LoopStats`).
    pub(crate) spawned_elsewhere: CachePadded<AtomicU64>,
    /// Timers registered from threads that run no iteration of ours (a `block_on` thread);
    /// the next worker to look takes them into its own heap.
    remote_timers: Mutex<Vec<(i64, TimerAction)>>,
    has_remote_timers: AtomicBool,
    pub(crate) exceptions: Arc<HandlerSlot>,
    /// The runtime's task factory (T10), fixed at build time.
    pub(crate) task_factory: Option<crate::task::TaskFactory>,
    /// The default executor (`to_thread`, `run_in_executor`); `Builder` may replace it
    /// before the runtime starts.
    pub(crate) blocking: crate::blocking::Pool,
}

impl Shared {
    /// A runtime's shared state plus the local queues its workers will own.
    pub(crate) fn new(
        workers: usize,
        task_factory: Option<crate::task::TaskFactory>,
    ) -> std::io::Result<(Shared, Vec<Local<Runnable>>)> {
        let locals: Vec<Local<Runnable>> = (0..workers).map(|_| queue::new_local()).collect();
        let stealers = locals.iter().map(Local::stealer).collect();
        let parkers = (0..workers)
            .map(|_| Parker::new_worker())
            .collect::<std::io::Result<Vec<_>>>()?
            .into_boxed_slice();
        let shared = Shared {
            id: LoopId::new(),
            injector: Injector::new(),
            stealers,
            parkers,
            idle: Idle::new(workers),
            shutdown: AtomicBool::new(false),
            stats: (0..workers).map(stats::new_stats).collect(),
            spawned_elsewhere: CachePadded::new(AtomicU64::new(0)),
            remote_timers: Mutex::new(Vec::new()),
            has_remote_timers: AtomicBool::new(false),
            exceptions: Arc::new(HandlerSlot::default()),
            task_factory,
            blocking: crate::blocking::Pool::new(crate::blocking::Config::default()),
        };
        Ok((shared, locals))
    }

    pub(crate) fn num_workers(&self) -> usize {
        self.parkers.len()
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// A task became ready (spawned or woken). On one of our workers it goes to that
    /// worker's queue (asyncio's `call_soon` on the current loop); anywhere else, to the
    /// injector.
    #[inline]
    pub(crate) fn schedule(&self, task: Notified) {
        self.schedule_runnable(Runnable::Task(task))
    }

    /// A task just spawned: [`Shared::schedule`], counting it for the metrics (in this
    /// worker's counters when pushed locally, in the shared one otherwise).
    #[inline]
    pub(crate) fn schedule_spawned(&self, task: Notified) {
        match context::try_push_spawned(self, Runnable::Task(task)) {
            Ok(true) => self.notify_parked(),
            // In the worker's LIFO slot: not stealable, so no peer to wake (lifo.rs).
            Ok(false) => {}
            Err(item) => {
                self.spawned_elsewhere.fetch_add(1, Ordering::Relaxed);
                self.schedule_remote(item)
            }
        }
    }

    /// Queues a task or a callback (see [`Shared::schedule`]).
    #[inline]
    pub(crate) fn schedule_runnable(&self, item: Runnable) {
        match context::try_push(self, item) {
            Ok(true) => self.notify_parked(),
            // In the worker's LIFO slot: not stealable, so no peer to wake (lifo.rs).
            Ok(false) => {}
            Err(item) => self.schedule_remote(item),
        }
    }

    /// Pushes to the injector and wakes a worker if none is searching.
    pub(crate) fn schedule_remote(&self, item: Runnable) {
        // With `Runtime::drop` (shutdown flag, then drain) and the parking re-check.
        queue::hand_off(
            || self.injector.push(item),
            &self.shutdown,
            || self.drain_injector(),
            || self.notify_parked_after_fence(),
        );
    }

    /// Wakes one parked worker if work is waiting and nobody is searching (idle.rs, rule 1).
    #[inline]
    pub(crate) fn notify_parked(&self) {
        fence(Ordering::SeqCst);
        self.notify_parked_after_fence();
    }

    #[inline]
    fn notify_parked_after_fence(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.parkers[index].unpark();
        }
    }

    /// Any queue a worker could take from is non-empty, or remote timers wait to be
    /// adopted. The caller has fenced.
    #[cfg_attr(not(loom), allow(dead_code))] // the loom models' end-of-run check
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self.has_remote_timers.load(Ordering::SeqCst)
            || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Whether a worker that just stopped searching, holding the one item it found in its
    /// queue `local`, sees more work: a second item there, the injector, a remote timer or
    /// a peer's queue (idle.rs rule 3). Fences first: the caller's
    /// `transition_worker_from_searching` and a notifier's push are each followed by a
    /// `SeqCst` fence and a read of the other's side (rule 2's pattern), so a push that
    /// skipped its wake-up because we were still searching is seen here.
    pub(crate) fn work_in_sight(&self, index: usize, local: &Local<Runnable>) -> bool {
        fence(Ordering::SeqCst);
        local.len() > 1
            || !self.injector.is_empty()
            || self.has_remote_timers.load(Ordering::SeqCst)
            || self
                .stealers
                .iter()
                .enumerate()
                .any(|(i, s)| i != index && !s.is_empty())
    }

    /// The parking re-check (idle.rs, rule 2): the injector and remote timers always; peers'
    /// queues only while nobody searches (a searcher is responsible for those). The caller
    /// has fenced.
    fn has_work_for_parker(&self) -> bool {
        !self.injector.is_empty()
            || self.has_remote_timers.load(Ordering::SeqCst)
            || (!self.idle.is_anyone_searching() && self.stealers.iter().any(|s| !s.is_empty()))
    }

    /// A timer from a thread that runs none of our iterations (see `context::add_timer`).
    pub(crate) fn add_remote_timer(&self, when: i64, action: TimerAction) {
        queue::hand_off(
            || {
                self.remote_timers.lock().push((when, action));
                self.has_remote_timers.store(true, Ordering::SeqCst);
            },
            &self.shutdown,
            || self.discard_remote_timers(),
            || self.notify_parked_after_fence(),
        );
    }

    /// Drops the remote timers unfired (shutdown), reporting destructors' panics.
    fn discard_remote_timers(&self) {
        for (_, action) in self.take_remote_timers() {
            if let Err(ctx) = action.discard() {
                self.exceptions.call(ctx);
            }
        }
    }

    /// Takes the remote timers (a worker adopting them into its heap; or shutdown).
    pub(crate) fn take_remote_timers(&self) -> Vec<(i64, TimerAction)> {
        if !self.has_remote_timers.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let mut timers = self.remote_timers.lock();
        self.has_remote_timers.store(false, Ordering::SeqCst);
        std::mem::take(&mut *timers)
    }

    /// Worker `index`, finding no work, goes to sleep until there may be some (idle.rs,
    /// rule 2), or until `timeout` has passed (its earliest timer is due). `searching` says
    /// whether it was counted as searching; the result says whether it is counted as
    /// searching on return (a notifier woke it).
    pub(crate) fn park_worker(
        &self,
        index: usize,
        searching: bool,
        timeout: Option<Duration>,
    ) -> bool {
        self.idle.transition_worker_to_parked(index, searching);
        loop {
            fence(Ordering::SeqCst);
            if self.is_shutdown() {
                return false;
            }
            if self.has_work_for_parker() {
                // Found work on the re-check: leave counted as searching either way (we took
                // ourselves off the list as a searcher, or a notifier did; idle.rs).
                self.idle.unpark_worker_by_id(index, true);
                return true;
            }
            let io_ready = self.parkers[index].park(timeout);
            if !self.idle.is_parked(index) {
                return true;
            }
            if timeout.is_some() || io_ready > 0 {
                // Our timer may be due, or the harvest woke tasks (onto our own queue,
                // reactor rule R7): leave (unless a notifier claimed us meanwhile).
                return !self.idle.unpark_worker_by_id(index, false);
            }
            // Spurious (or a stale sticky token): re-check and sleep again.
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for p in self.parkers.iter() {
            p.unpark();
        }
    }

    /// Releases everything in the injector and the remote-timer inbox, on this thread.
    pub(crate) fn drain_injector(&self) {
        core::drain(|| self.injector.steal(), &self.exceptions);
        self.discard_remote_timers();
    }
}

impl Loop for Shared {
    fn id(&self) -> LoopId {
        self.id
    }

    fn call_soon_handle(&self, h: CallbackHandle) -> bool {
        if self.is_shutdown() {
            if let Err(ctx) = h.discard() {
                self.exceptions.call(ctx);
            }
            return false;
        }
        self.schedule_runnable(Runnable::Callback(h));
        true
    }

    fn exceptions(&self) -> &HandlerSlot {
        &self.exceptions
    }

    fn add_remote_timer(&self, when: i64, action: TimerAction) -> Result<(), TimerAction> {
        Shared::add_remote_timer(self, when, action);
        Ok(())
    }

    fn blocking_pool(&self) -> &crate::blocking::Pool {
        &self.blocking
    }

    fn io_driver(&self, fd: i32) -> Option<Arc<crate::event_loop::reactor::Driver>> {
        let n = self.parkers.len();
        Some(
            self.parkers[fd.unsigned_abs() as usize % n]
                .driver()
                .clone(),
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
