//! Which workers are searching for work, which are parked, and whom to wake.
//!
//! # The parking protocol
//!
//! A worker is in one of three states: **running** (has local work), **searching** (its queue
//! is empty and it is stealing from peers or the injector), **parked** (asleep in its poller).
//! One atomic word counts the unparked and the searching workers; the list of parked workers
//! is behind a mutex. Two rules keep wake-ups neither lost nor wasted:
//!
//! 1. **A notifier wakes someone only if nobody is searching and somebody is parked.** A
//!    searching worker will find the new work (or, if it gives up, see rule 2), so waking a
//!    second one would only make two workers fight for one task (no thundering herd). At most
//!    half of the workers search at once.
//! 2. **A worker that parks re-checks every queue after announcing it.** It first moves
//!    itself to the parked list and decrements the counters, then issues a `SeqCst` fence and
//!    looks at the injector and every peer's queue; a notifier pushes its task, issues a
//!    `SeqCst` fence, then reads the counters. This is Dekker's pattern: by the fences'
//!    total order, either the notifier sees the worker counted as parked (and wakes one) or
//!    the worker sees the task (and un-parks itself). A wake-up that arrives between the
//!    re-check and the poller's `wait` is not lost either: `Park::unpark` is sticky.
//!
//! The re-check looks at peers' queues only while nobody searches: a searcher is already
//! responsible for work that notifiers left to it (rule 1), and when the last searcher parks
//! its own re-check sees that work, since by then nobody searches. A worker that is not
//! allowed to search therefore sleeps instead of spinning on a queue it may not steal from.
//!
//! A woken worker is counted as searching by the notifier *before* it runs (the notifier
//! removes it from the parked list and bumps both counters in one step), so while it wakes,
//! further notifiers see a searcher and do not wake more workers.
//!
//! 3. **The last searcher hands the search on only with work in sight.** When a searching
//!    worker finds work it stops searching; if it was the last searcher and, after a `SeqCst`
//!    fence, sees more work than the item it took (a second item in its own queue, the
//!    injector, a remote timer or a peer's queue: `Shared::work_in_sight`), it wakes one more
//!    worker, which is how a burst fans out one worker at a time. Nothing is lost when it
//!    sees nothing more: a notifier that skipped its wake-up because this worker was still
//!    searching pushed, fenced, then read the counters; the searcher decremented them,
//!    fenced, then looked at the queues — rule 2's pattern, so the searcher sees that push
//!    (and wakes a peer for it), or the notifier saw no searcher (and woke one itself).
//!    Work pushed later finds nobody searching and wakes a worker as rule 1 says (loom:
//!    park.rs 2(f) and 2(e), which deadlock without the hand-on). A remote timer counts
//!    as work in sight (`has_remote_timers`), and a timer fired into a worker's queue behind
//!    other work wakes a peer as a spilled LIFO task does (loom: park.rs 2(g)). Handing on
//!    unconditionally woke the parked peer at the start of every spawn chain, and every
//!    single wake-up, for nothing: it searched, found nothing and parked again (two
//!    `futex` calls per round, one on the woken worker's path to its first item).
//!
//! Memory orderings: the counters are only ever read and written with `SeqCst` so that they
//! take part in the fences' total order; the parked list is guarded by its mutex.

use crate::shim::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::shim::Mutex;

const SEARCH_MASK: usize = (1 << 16) - 1;
const UNPARK_SHIFT: usize = 16;
const UNPARK_ONE: usize = 1 << UNPARK_SHIFT;

pub(crate) struct Idle {
    /// Low 16 bits: searching workers. The rest: unparked workers.
    state: AtomicUsize,
    /// Indices of parked workers.
    sleepers: Mutex<Vec<usize>>,
    num_workers: usize,
}

fn searching(s: usize) -> usize {
    s & SEARCH_MASK
}

fn unparked(s: usize) -> usize {
    s >> UNPARK_SHIFT
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        assert!(num_workers > 0 && num_workers < SEARCH_MASK);
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_workers,
        }
    }

    /// Rule 1. The caller has made its work visible and issued a `SeqCst` fence. Returns the
    /// worker to unpark, already counted as unparked and searching.
    ///
    /// Called on every push to a worker's queue (a spawn, a wake, a yield), and nearly always
    /// answered by the first load: everybody runs, or someone searches. The locked part is
    /// kept out of line and cold. Inlining this function itself into the push path (generic
    /// task code) saved 4% of yield_many's instructions but cost 5–7% of its wall-clock time
    /// with 2 workers (A/B, interleaved), so it stays a call.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.notify_should_wakeup() {
            return None;
        }
        self.pop_sleeper()
    }

    /// [`worker_to_notify`](Self::worker_to_notify) past its first check.
    #[cold]
    #[inline(never)]
    fn pop_sleeper(&self) -> Option<usize> {
        let mut sleepers = self.sleepers.lock();
        // Re-check under the lock: another notifier may have woken a searcher meanwhile.
        if !self.notify_should_wakeup() {
            return None;
        }
        let index = sleepers.pop()?;
        self.state.fetch_add(UNPARK_ONE | 1, SeqCst);
        Some(index)
    }

    #[inline]
    fn notify_should_wakeup(&self) -> bool {
        let s = self.state.load(SeqCst);
        searching(s) == 0 && unparked(s) < self.num_workers
    }

    /// A worker with an empty queue asks to search its peers. Refused when half the workers
    /// already search.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let s = self.state.load(SeqCst);
        if 2 * searching(s) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searching worker found work. Returns `true` if it was the last searcher (the caller
    /// then wakes another worker).
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        debug_assert!(searching(prev) >= 1);
        searching(prev) == 1
    }

    /// Rule 2, first half: the worker announces it is parking. The caller then fences and
    /// re-checks the queues before sleeping.
    pub(crate) fn transition_worker_to_parked(&self, index: usize, is_searching: bool) {
        let mut sleepers = self.sleepers.lock();
        let dec = UNPARK_ONE + usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        debug_assert!(unparked(prev) >= 1);
        sleepers.push(index);
    }

    /// The worker found work on its re-check (or was woken by a timer) and takes itself off
    /// the parked list, counted as searching if `as_searching`. `false` if a notifier
    /// already did (the worker is then counted as searching anyway).
    ///
    /// Why a re-check that finds work comes back *searching* (rule 1's other side): pushes
    /// that landed while this worker was still counted as a searcher woke nobody, trusting
    /// it. If it took one item and came back as a plain runner, nobody would be responsible
    /// for the rest — a peer could stay parked beside queued work for as long as that item
    /// runs (found by loom, `park::last_searcher_wakes_a_peer`). Counted as searching, it
    /// hands the search on when it finds work (`transition_worker_from_searching`).
    pub(crate) fn unpark_worker_by_id(&self, index: usize, as_searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        if let Some(pos) = sleepers.iter().position(|&i| i == index) {
            sleepers.swap_remove(pos);
            self.state
                .fetch_add(UNPARK_ONE | usize::from(as_searching), SeqCst);
            true
        } else {
            false
        }
    }

    /// Whether some worker is searching right now (a `SeqCst` read, part of the fences'
    /// total order).
    pub(crate) fn is_anyone_searching(&self) -> bool {
        searching(self.state.load(SeqCst)) > 0
    }

    /// Whether `index` is still on the parked list (after its `park` returned: `false`
    /// means a notifier woke it and counted it as searching).
    pub(crate) fn is_parked(&self, index: usize) -> bool {
        self.sleepers.lock().contains(&index)
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.load(SeqCst);
        (unparked(s), searching(s))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn nobody_is_woken_while_all_run() {
        let idle = Idle::new(2);
        assert_eq!(idle.worker_to_notify(), None);
    }

    #[test]
    fn a_parked_worker_is_woken_once_and_counted_searching() {
        let idle = Idle::new(2);
        idle.transition_worker_to_parked(1, false);
        assert_eq!(idle.counts(), (1, 0));
        assert_eq!(idle.worker_to_notify(), Some(1));
        assert_eq!(idle.counts(), (2, 1));
        assert!(!idle.is_parked(1));
        // While it searches, nobody else is woken.
        idle.transition_worker_to_parked(0, false);
        assert_eq!(idle.worker_to_notify(), None);
        assert!(idle.transition_worker_from_searching());
        assert_eq!(idle.worker_to_notify(), Some(0));
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.transition_worker_to_searching());
        assert!(idle.transition_worker_to_searching());
        assert!(!idle.transition_worker_to_searching());
        assert!(!idle.transition_worker_from_searching());
        assert!(idle.transition_worker_from_searching());
    }

    #[test]
    fn self_unpark_races_with_notifier() {
        let idle = Idle::new(2);
        idle.transition_worker_to_parked(0, false);
        assert!(idle.unpark_worker_by_id(0, false));
        assert!(!idle.unpark_worker_by_id(0, false));
        assert_eq!(idle.counts(), (2, 0));
    }
}
