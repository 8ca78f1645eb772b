//! A loop's timers: a binary min-heap of `(deadline, sequence)` for callbacks, timeouts and
//! sleeps registered from a `block_on` thread. A `Sleep` polled on a loop thread goes to the
//! loop's sleep wheel instead (wheel.rs, where the measurements below led), and the loop
//! core merges the two by deadline when it fires them ([`TimerQueue::fire_due`]).
//!
//! Why a heap and not a wheel: asyncio's loop uses a heap; it gives exact ordering (rule S2:
//! timers fire in deadline order, ties in scheduling order, negative delays included) with no
//! resolution to round to (tokio's wheel rounds up to the millisecond, which is why its
//! median lateness is about 1.1 ms against aioloop's tens of microseconds in
//! `benches/timer_lateness.rs`). Measured by `benches/loop_api.rs` (100,000 random timers
//! within 100 ms): as `call_later` callbacks the heap takes 0.65× the time of tokio's wheel;
//! with a task sleeping per timer it takes 1.38×, pops being 15% of that profile — a wheel
//! for near deadlines is the known next step.
//!
//! Cancelled entries stay in the heap and are skipped when they surface; when more than
//! half of a large heap is cancelled, it is rebuilt without them (asyncio's purge), so a
//! pattern of "schedule a timeout, cancel it" cannot grow the heap without bound.
//!
//! Owned by one loop thread (`RefCell` in `LoopCore`); other threads reach it only through
//! their loop's remote-timer inbox.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::task::Waker;

use std::iter::Peekable;

use super::callback::Handle;
use super::wheel::Due;
use crate::event_loop::exception::ExceptionContext;
use crate::shim::atomic::{AtomicBool, Ordering as AtomicOrdering};
use crate::shim::Mutex;
use crate::unwind::catch;

/// The shared state of one `Sleep`: the timer sets `fired` and wakes; the future reads it.
pub(crate) struct SleepSlot {
    pub(crate) fired: AtomicBool,
    pub(crate) cancelled: AtomicBool,
    pub(crate) waker: Mutex<Option<Waker>>,
    /// The id of the task that was running when the sleep registered, for the report if
    /// its waker panics (an id, not a reference: a dead entry must not keep a task alive).
    task: Option<u64>,
}

impl SleepSlot {
    pub(crate) fn new(waker: Waker, task: Option<u64>) -> Arc<SleepSlot> {
        Arc::new(SleepSlot {
            fired: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            waker: Mutex::new(Some(waker)),
            task,
        })
    }

    /// Wakes the sleeper. The waker is the sleeper's, not ours: a panic in it is returned
    /// as a report (invariant 7), after `fired` is set, so the sleep itself is over.
    fn fire(&self) -> Result<(), ExceptionContext> {
        self.fired.store(true, AtomicOrdering::Release);
        let w = self.waker.lock().take();
        match w.map(|w| catch(|| w.wake())) {
            Some(Err(p)) => Err(sleep_waker_panicked(self.task, p)),
            _ => Ok(()),
        }
    }
}

/// A timer owner that is neither a callback nor a `Sleep` (a `Timeout`): the entry holds the
/// owner's own `Arc`, so registering a deadline allocates nothing of its own.
pub(crate) trait TimerTarget: Send + Sync {
    /// The entry is dead: skip it when it surfaces, and purge it.
    fn is_cancelled(&self) -> bool;
    /// The deadline was reached (called on the loop thread that holds the entry).
    fn fire(&self);
}

/// What a timer does when due.
pub(crate) enum TimerAction {
    /// `call_later` / `call_at`: the callback joins the ready queue.
    Callback(Handle),
    /// `sleep`: wake the sleeping task.
    Wake(Arc<SleepSlot>),
    /// Anything else with a deadline (`timeout`): tell it.
    Target(Arc<dyn TimerTarget>),
}

impl TimerAction {
    /// Drops an entry that will never fire (a closed loop's), catching what its
    /// destructor runs of the user's: a callback's closure (invariant 7).
    pub(crate) fn discard(self) -> Result<(), ExceptionContext> {
        discard_ref(&self)?;
        crate::unwind::drop_caught(self)
            .map_err(|p| ExceptionContext::panicked("Exception dropping a timer", p))
    }

    fn is_cancelled(&self) -> bool {
        match self {
            TimerAction::Callback(h) => h.cancelled(),
            TimerAction::Wake(s) => s.cancelled.load(AtomicOrdering::Acquire),
            TimerAction::Target(t) => t.is_cancelled(),
        }
    }
}

struct Entry {
    when: i64,
    seq: u64,
    action: TimerAction,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}

/// Purge only heaps at least this large (asyncio uses 100 too).
const PURGE_MIN: usize = 100;

#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// Cancelled entries known to be in the heap (counted when they are found at purge
    /// checks; an estimate that only triggers the rebuild).
    cancelled_seen: usize,
    /// Panics caught in code the loop does not own (a sleeper's waker, a dead callback's
    /// destructor), for the loop to hand to its exception handler once the heap is no
    /// longer borrowed (invariant 7: reported, and no other entry is lost).
    reports: Vec<ExceptionContext>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, when: i64, action: TimerAction) {
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            action,
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest live deadline, dropping cancelled entries from the top.
    pub(crate) fn next_deadline(&mut self) -> Option<i64> {
        while let Some(top) = self.heap.peek() {
            if top.action.is_cancelled() {
                let e = self.heap.pop().expect("peeked");
                self.discard(e.action);
                continue;
            }
            return Some(top.when);
        }
        None
    }

    /// Fires every entry due at `now`, in deadline order: callbacks are handed to `ready`,
    /// sleeps are woken. Cancelled entries are dropped. A panic in code the loop does not
    /// own is kept for [`take_reports`](Self::take_reports) and the firing goes on.
    /// Returns how many entries fired (the loop's `timers_fired` metric).
    ///
    /// `sleeps` are the due sleeps of the loop's wheel (wheel.rs), in deadline order: each
    /// is woken before the heap's entries with a later deadline (on a tie, after them).
    pub(crate) fn fire_due(
        &mut self,
        now: i64,
        sleeps: &mut Peekable<impl Iterator<Item = Due>>,
        mut ready: impl FnMut(Handle),
    ) -> u64 {
        let mut count = 0;
        while let Some(top) = self.heap.peek() {
            if top.when > now {
                break;
            }
            let when = top.when;
            while let Some(d) = sleeps.next_if(|d| d.when < when) {
                count += 1;
                self.reports.extend(wake_due(d).err());
            }
            let e = self.heap.pop().expect("peeked");
            if e.action.is_cancelled() {
                self.discard(e.action);
                continue;
            }
            count += 1;
            let fired = match e.action {
                TimerAction::Callback(h) => {
                    ready(h);
                    Ok(())
                }
                TimerAction::Wake(slot) => slot.fire(),
                TimerAction::Target(t) => catch(|| t.fire()).map_err(|p| {
                    ExceptionContext::panicked(
                        "Exception in a waker woken by a timeout's deadline",
                        p,
                    )
                }),
            };
            if let Err(ctx) = fired {
                self.reports.push(ctx);
            }
        }
        for d in sleeps {
            count += 1;
            self.reports.extend(wake_due(d).err());
        }
        self.maybe_purge();
        count
    }

    /// asyncio's purge: rebuild the heap without cancelled entries when they are the
    /// majority of a large heap.
    fn maybe_purge(&mut self) {
        if self.heap.len() < PURGE_MIN {
            return;
        }
        self.cancelled_seen += 1;
        // Sample cheaply: only every len/4 calls do the O(n) count.
        if self.cancelled_seen < self.heap.len() / 4 {
            return;
        }
        self.cancelled_seen = 0;
        let cancelled = self.heap.iter().filter(|e| e.action.is_cancelled()).count();
        if cancelled * 2 > self.heap.len() {
            // In place: no allocation, and the heap keeps its capacity for what comes next.
            let reports = &mut self.reports;
            self.heap.retain(|e| {
                let dead = e.action.is_cancelled();
                if dead {
                    reports.extend(discard_ref(&e.action).err());
                }
                !dead
            });
        }
    }

    /// Drops every entry (loop shutdown). Callbacks' closures are dropped on this thread.
    pub(crate) fn clear(&mut self) {
        for e in std::mem::take(&mut self.heap) {
            self.discard(e.action);
        }
    }

    /// The panics caught since the last call (see `reports`).
    pub(crate) fn take_reports(&mut self) -> Vec<ExceptionContext> {
        std::mem::take(&mut self.reports)
    }

    fn discard(&mut self, action: TimerAction) {
        self.reports.extend(discard_ref(&action).err());
    }
}

/// Wakes a sleep of the wheel: a panic of its waker (the sleeper's code) is returned as a
/// report (invariant 7); the sleep itself is over either way.
fn wake_due(d: Due) -> Result<(), ExceptionContext> {
    match d.waker.map(|w| catch(|| w.wake())) {
        Some(Err(p)) => Err(sleep_waker_panicked(d.task, p)),
        _ => Ok(()),
    }
}

fn sleep_waker_panicked(task: Option<u64>, p: crate::unwind::Payload) -> ExceptionContext {
    let who = task.map_or_else(|| "outside any task".to_string(), crate::task::name_of);
    ExceptionContext::panicked(
        format!("Exception in the waker of a sleep woken by its timer (task {who})"),
        p,
    )
}

/// Drops a dead callback's closure now, on the loop thread (the entry may outlive it).
fn discard_ref(action: &TimerAction) -> Result<(), ExceptionContext> {
    match action {
        TimerAction::Callback(h) => h.discard(),
        _ => Ok(()),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn none() -> Peekable<std::iter::Empty<Due>> {
        std::iter::empty().peekable()
    }

    fn cb(log: &Rc<RefCell<Vec<i64>>>, v: i64) -> Handle {
        let log = log.clone();
        // SAFETY: run on this thread only.
        unsafe { Handle::new(move || log.borrow_mut().push(v)) }
    }

    #[test]
    fn fires_in_deadline_then_sequence_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut q = TimerQueue::default();
        q.push(30, TimerAction::Callback(cb(&log, 30)));
        q.push(-5, TimerAction::Callback(cb(&log, -5)));
        q.push(10, TimerAction::Callback(cb(&log, 10)));
        q.push(10, TimerAction::Callback(cb(&log, 11)));
        assert_eq!(q.next_deadline(), Some(-5));
        let mut ready = Vec::new();
        q.fire_due(10, &mut none(), |h| ready.push(h));
        ready.iter().for_each(|h| h.cb.run());
        assert_eq!(*log.borrow(), vec![-5, 10, 11]);
        assert_eq!(q.next_deadline(), Some(30));
    }

    #[test]
    fn cancelled_entries_never_fire_and_are_purged() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut q = TimerQueue::default();
        let hs: Vec<_> = (0..400).map(|i| cb(&log, i)).collect();
        for (i, h) in hs.iter().enumerate() {
            q.push(1000 + i as i64, TimerAction::Callback(h.clone()));
        }
        for h in &hs[..300] {
            h.cancel();
        }
        for _ in 0..200 {
            q.fire_due(0, &mut none(), |_| unreachable!());
        }
        assert!(
            q.len() <= 100,
            "purged down to the live entries, got {}",
            q.len()
        );
        let mut ready = Vec::new();
        q.fire_due(i64::MAX - 1, &mut none(), |h| ready.push(h));
        assert_eq!(ready.len(), 100);
    }
}
