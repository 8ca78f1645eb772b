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

use crossbeam_utils::CachePadded;

use super::context;
use super::idle::Idle;
use super::park::{Park, Parker};
use super::queue::{self, Injector, Local, Stealer};
use crate::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::task::raw::Notified;
use crate::task::{registry, LoopId};

/// Per-worker counters, written by their worker only (plain stores, no RMW contention).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) polled: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) parked: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) id: LoopId,
    pub(crate) injector: Injector<Notified>,
    pub(crate) stealers: Box<[Stealer<Notified>]>,
    pub(crate) parkers: Box<[Parker]>,
    pub(crate) idle: Idle,
    shutdown: AtomicBool,
    pub(crate) counters: Box<[CachePadded<Counters>]>,
}

impl Shared {
    /// A runtime's shared state plus the local queues its workers will own.
    pub(crate) fn new(workers: usize) -> std::io::Result<(Shared, Vec<Local<Notified>>)> {
        let locals: Vec<Local<Notified>> = (0..workers).map(|_| queue::new_local()).collect();
        let stealers = locals.iter().map(Local::stealer).collect();
        let parkers = (0..workers)
            .map(|_| Parker::new())
            .collect::<std::io::Result<Vec<_>>>()?
            .into_boxed_slice();
        let shared = Shared {
            id: LoopId::new(),
            injector: Injector::new(),
            stealers,
            parkers,
            idle: Idle::new(workers),
            shutdown: AtomicBool::new(false),
            counters: (0..workers).map(|_| CachePadded::default()).collect(),
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
    pub(crate) fn schedule(&self, task: Notified) {
        match context::try_push_local(self, task) {
            Ok(()) => self.notify_parked(),
            Err(task) => self.schedule_remote(task),
        }
    }

    /// Pushes to the injector and wakes a worker if none is searching.
    pub(crate) fn schedule_remote(&self, task: Notified) {
        self.injector.push(task);
        // Pairs with the fence in `Runtime::drop` (shutdown flag, then drain) and with the
        // parking re-check (idle.rs, rule 2): after this fence, either they see our push or
        // we see their state.
        fence(Ordering::SeqCst);
        if self.is_shutdown() {
            // The runtime is draining, possibly already past the injector: drain it
            // ourselves so our reference is not stranded.
            self.drain_injector();
            return;
        }
        self.notify_parked_after_fence();
    }

    /// Wakes one parked worker if work is waiting and nobody is searching (idle.rs, rule 1).
    pub(crate) fn notify_parked(&self) {
        fence(Ordering::SeqCst);
        self.notify_parked_after_fence();
    }

    fn notify_parked_after_fence(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.parkers[index].unpark();
        }
    }

    /// Any queue a worker could take from is non-empty. The caller has fenced.
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Worker `index`, finding no work, goes to sleep until there may be some (idle.rs,
    /// rule 2). `searching` says whether it was counted as searching; the result says
    /// whether it is counted as searching on return (a notifier woke it).
    pub(crate) fn park_worker(&self, index: usize, searching: bool) -> bool {
        self.idle.transition_worker_to_parked(index, searching);
        loop {
            fence(Ordering::SeqCst);
            if self.is_shutdown() {
                return false;
            }
            if self.has_work() {
                // Found work on the re-check. If a notifier took us off the list first, it
                // counted us as searching.
                return !self.idle.unpark_worker_by_id(index);
            }
            self.parkers[index].park(None);
            if !self.idle.is_parked(index) {
                return true;
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

    /// Cancels every unfinished task of this runtime, on this thread. Repeats while
    /// destructors create new tasks.
    pub(crate) fn cancel_all_tasks(&self) {
        loop {
            let batch = registry::collect(|t| {
                t.raw().is_some_and(|raw| {
                    let s = raw.header().state.load();
                    !s.is_complete() && !s.is_cancelled()
                }) && t.loop_id() == self.id
            });
            if batch.is_empty() {
                return;
            }
            for t in &batch {
                if let Some(raw) = t.raw() {
                    raw.shutdown();
                }
            }
        }
    }

    pub(crate) fn drain_injector(&self) {
        while let Some(task) = queue::retry(|| self.injector.steal()) {
            drop(task);
        }
    }
}
