//! One runtime worker: a thread running the shared loop core (`event_loop/core.rs`) over its
//! own ready queue, with the work-stealing [`Flavor`]:
//!
//! - **remote work**: when the injector is not empty, this worker's share of it (its length
//!   over the number of workers, at most `REMOTE_BATCH`) joins the back of the local queue
//!   each iteration (fairness for `spawn` from other threads while the local queue never
//!   drains); timers registered from non-worker threads are adopted too;
//! - **finding work** when the local queue is empty: the injector, then half of a random
//!   peer's queue (up to `queue::STEAL_LIMIT`; only while searching is allowed, see idle.rs
//!   rule 1), then the injector again; a searcher that finds nothing parks at once (a spin
//!   before parking took the CPU from the thread that would send the work, on 2 cores);
//! - **sleeping**: `Shared::park_worker`, i.e. the parking protocol of idle.rs with
//!   the earliest timer as the timeout.
//!
//! A searcher that finds work stops searching and, if it was the last and more work is in
//! sight, wakes a peer to search on (idle.rs rule 3).
//!
//! Measured and not kept (README, issue 9 item 6, third pass): returning the found item to
//! run in hand (tokio's order) together with the in-sight hand-on (`wake_one` and the
//! `_block_on` spawn rows gained, `yield_many` lost 8–10%); a spin before parking. The
//! hand-on alone is kept (fifth pass).
//!
//! Owns: its loop core (ready queue and timers), its random victim sequence, and its
//! counters. Must not: touch another worker's queue except through its `Stealer`, or sleep
//! except through `Shared` (a lost wake-up otherwise).

use std::sync::Arc;
use std::time::Duration;

use super::io_steal;
use super::shared::Shared;
use crate::event_loop::callback::Runnable;
use crate::event_loop::context::{self, LoopContext, LoopRef};
use crate::event_loop::core::{Flavor, LoopCore};
use crate::event_loop::queue::{self, Local};
use crate::event_loop::stats::LoopStats;
use crate::shim::tuning::REMOTE_BATCH;

struct WorkerFlavor<'a> {
    shared: &'a Shared,
    index: usize,
    rng: fastrand::Rng,
    searching: bool,
}

/// The body of a worker thread. Returns the loop core so that the thread dropping the
/// runtime can release what is left in it.
pub(crate) fn run(shared: Arc<Shared>, index: usize, local: Local<Runnable>) -> LoopCore {
    let core = LoopCore::with_stats(
        local,
        shared.exceptions.clone(),
        shared.stats[index].clone(),
        shared.parkers[index].driver().clone(),
        true,
    );
    {
        let ctx = LoopContext {
            owner: LoopRef::new(shared.clone()),
            core: Some(&core),
        };
        let _guard = match context::enter(ctx) {
            Ok(g) => g,
            Err(_) => unreachable!("a fresh worker thread runs no loop"),
        };
        let mut flavor = WorkerFlavor {
            shared: &shared,
            index,
            rng: fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15 ^ index as u64),
            searching: false,
        };
        while !shared.is_shutdown() {
            core.run_once(&mut flavor, None);
        }
        if flavor.searching {
            shared.idle.transition_worker_from_searching();
        }
    }
    core
}

impl Flavor for WorkerFlavor<'_> {
    fn pull_remote(&mut self, core: &LoopCore) {
        let shared = self.shared;
        if !core.ready.is_empty() && !shared.injector.is_empty() {
            self.pull_injector(&core.ready);
        }
        for (when, action) in shared.take_remote_timers() {
            core.add_timer(when, action);
        }
    }

    fn find_work(&mut self, core: &LoopCore) -> bool {
        let shared = self.shared;
        let local = &core.ready;
        if self.pull_injector(local) {
            self.stop_searching(core);
            return true;
        }
        let n = shared.stealers.len();
        if n > 1 {
            if !self.searching {
                if !shared.idle.transition_worker_to_searching() {
                    return false;
                }
                self.searching = true;
            }
            let start = self.rng.usize(..n);
            for i in 0..n {
                let victim = (start + i) % n;
                if victim == self.index {
                    continue;
                }
                let before = local.len();
                if let Some(item) = queue::retry(|| {
                    shared.stealers[victim]
                        .steal_batch_with_limit_and_pop(local, queue::STEAL_LIMIT)
                }) {
                    local.push(item);
                    let stats = &core.stats;
                    LoopStats::bump(&stats.stolen, local.len().saturating_sub(before) as u64);
                    LoopStats::bump(&stats.steal_ops, 1);
                    self.stop_searching(core);
                    return true;
                }
            }
        }
        if self.pull_injector(local) {
            self.stop_searching(core);
            return true;
        }
        false
    }

    fn park(&mut self, core: &LoopCore, timeout: Option<Duration>) {
        // Reactor rule R10: a stuck peer's sockets first (their tasks join our queue).
        if io_steal::harvest_stuck_peers(self.shared, self.index) > 0 && !core.ready.is_empty() {
            self.stop_searching(core);
            return;
        }
        let timeout = io_steal::cap_park(self.shared, self.index, timeout);
        self.searching = self.shared.park_worker(self.index, self.searching, timeout);
    }

    fn on_stealable_work(&mut self) {
        self.shared.notify_parked();
    }
}

impl WorkerFlavor<'_> {
    /// Moves this worker's share of the injector to the back of `local`: the injector's
    /// length over the number of workers, plus one, and at most [`REMOTE_BATCH`]; `false`
    /// if it was empty. One crossbeam steal takes at most 32 and never past the end of one
    /// of the injector's 63-slot blocks, so a share takes several. A share rather than a
    /// steal's worth matters when the local queue never drains (tasks that yield): the
    /// injector is pulled once per iteration, and 32 remote tasks per iteration of busy
    /// work made a burst of remote spawns wait behind that work for a hundred iterations
    /// (`spawn_many_remote_busy1`, tokio's shape, was 1.8× tokio).
    ///
    /// [`REMOTE_BATCH`]: crate::shim::tuning::REMOTE_BATCH
    fn pull_injector(&self, local: &Local<Runnable>) -> bool {
        let shared = self.shared;
        let want = (shared.injector.len() / shared.stealers.len() + 1).min(REMOTE_BATCH);
        let mut got = 0;
        while got < want {
            let before = local.len();
            let Some(item) = queue::retry(|| {
                shared
                    .injector
                    .steal_batch_with_limit_and_pop(local, want - got)
            }) else {
                break;
            };
            local.push(item);
            // Peers may steal from `local` meanwhile: the count is a bound on the loop, no
            // more, and counts at least the item in hand.
            got += local.len().saturating_sub(before).max(1);
        }
        got > 0
    }

    fn stop_searching(&mut self, core: &LoopCore) {
        if self.searching {
            self.searching = false;
            if self.shared.idle.transition_worker_from_searching()
                && self.shared.work_in_sight(self.index, &core.ready)
            {
                // We were the last searcher and found work with more in sight: hand the
                // search on to one parked worker (idle.rs rule 3).
                self.shared.notify_parked();
            }
        }
    }
}
