//! One worker: a thread running an event-loop iteration over its own run queue.
//!
//! # The iteration (spec rule S3)
//!
//! ```text
//!  loop {
//!      if the injector has tasks: move a batch of them to the back of the local queue
//!      n = tasks in the local queue now (at most MAX_BATCH)
//!      if n > 0: run exactly n tasks from the front        ← tasks they wake wait for the
//!                                                            next iteration: one task that
//!                                                            keeps yielding cannot starve
//!                                                            the others
//!      else:     take from the injector, else steal a batch from a random peer,
//!                else park in the poller (see idle.rs)
//!  }
//! ```
//!
//! Owns: its local queue (the only thread that pops it; peers steal from the other end), its
//! random victim sequence, and its counters. Must not: touch another worker's queue except
//! through its `Stealer`, or park without going through `Idle` (a lost wake-up otherwise).

use std::sync::Arc;

use super::context::{self, LoopContext};
use super::queue::{self, Local};
use super::shared::Shared;
use super::Handle;
use crate::sync::atomic::Ordering;
use crate::sync::tuning::MAX_BATCH;
use crate::task::raw::Notified;

pub(crate) struct Worker<'a> {
    shared: &'a Shared,
    index: usize,
    local: &'a Local<Notified>,
    rng: fastrand::Rng,
    searching: bool,
    polled: u64,
    stolen: u64,
    parked: u64,
}

/// The body of a worker thread. Returns the local queue so that the thread dropping the
/// runtime can release what is left in it.
pub(crate) fn run(shared: Arc<Shared>, index: usize, local: Local<Notified>) -> Local<Notified> {
    {
        let ctx = LoopContext {
            handle: Handle::from_shared(shared.clone()),
            local: Some(&local),
        };
        let _guard = match context::enter(&ctx) {
            Ok(g) => g,
            Err(_) => unreachable!("a fresh worker thread runs no loop"),
        };
        let mut worker = Worker {
            shared: &shared,
            index,
            local: &local,
            rng: fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15 ^ index as u64),
            searching: false,
            polled: 0,
            stolen: 0,
            parked: 0,
        };
        worker.run();
    }
    local
}

impl Worker<'_> {
    fn run(&mut self) {
        while !self.shared.is_shutdown() {
            if !self.shared.injector.is_empty() && !self.local.is_empty() {
                // Tasks from outside join this iteration's tail (fairness for `spawn` from
                // other threads while the local queue never drains).
                let _ = queue::retry(|| self.shared.injector.steal_batch_and_pop(self.local))
                    .map(|t| self.local.push(t));
            }
            let ready = self.local.len().min(MAX_BATCH);
            if ready > 0 {
                for _ in 0..ready {
                    match self.local.pop() {
                        Some(task) => self.run_task(task),
                        None => break, // peers stole the rest
                    }
                }
                continue;
            }
            match self.find_work() {
                Some(task) => self.run_task(task),
                None => self.park(),
            }
        }
        if self.searching {
            self.searching = false;
            self.shared.idle.transition_worker_from_searching();
        }
    }

    #[inline]
    fn run_task(&mut self, task: Notified) {
        self.polled += 1;
        self.shared.counters[self.index]
            .polled
            .store(self.polled, Ordering::Relaxed);
        task.run();
    }

    /// The local queue is empty: injector first, then peers (only while searching is
    /// allowed, see idle.rs rule 1).
    fn find_work(&mut self) -> Option<Notified> {
        if let Some(t) = queue::retry(|| self.shared.injector.steal_batch_and_pop(self.local)) {
            self.stop_searching();
            return Some(t);
        }
        let n = self.shared.stealers.len();
        if n > 1 {
            if !self.searching {
                if !self.shared.idle.transition_worker_to_searching() {
                    return None;
                }
                self.searching = true;
            }
            let start = self.rng.usize(..n);
            for i in 0..n {
                let victim = (start + i) % n;
                if victim == self.index {
                    continue;
                }
                let before = self.local.len();
                if let Some(t) =
                    queue::retry(|| self.shared.stealers[victim].steal_batch_and_pop(self.local))
                {
                    self.stolen += 1 + (self.local.len().saturating_sub(before)) as u64;
                    self.shared.counters[self.index]
                        .stolen
                        .store(self.stolen, Ordering::Relaxed);
                    self.stop_searching();
                    return Some(t);
                }
            }
        }
        let t = queue::retry(|| self.shared.injector.steal_batch_and_pop(self.local));
        if t.is_some() {
            self.stop_searching();
        }
        t
    }

    fn stop_searching(&mut self) {
        if self.searching {
            self.searching = false;
            if self.shared.idle.transition_worker_from_searching() {
                // We were the last searcher and found work: there may be more, so hand the
                // search on to one parked worker.
                self.shared.notify_parked();
            }
        }
    }

    /// Sleeps until there may be work (idle.rs, rule 2).
    fn park(&mut self) {
        self.searching = self.shared.park_worker(self.index, self.searching);
        self.parked += 1;
        self.shared.counters[self.index]
            .parked
            .store(self.parked, Ordering::Relaxed);
    }
}
