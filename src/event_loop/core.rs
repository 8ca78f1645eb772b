//! The one loop core: the ready queue, the timers and the iteration, shared by every runtime
//! worker and by [`LocalLoop`](crate::LocalLoop).
//!
//! # The iteration (rule S3)
//!
//! ```text
//!  run_once(flavour, max_wait):
//!    1. flavour.pull_remote     work posted from other threads joins the ready queue
//!                               (a worker: a batch from the injector; a LocalLoop: its
//!                               call_soon_threadsafe inbox), and remote timers join ours
//!    2. if nothing is ready:    flavour.find_work (a worker steals from a peer), else
//!                               flavour.park until the earliest timer (or max_wait) —
//!                               no wait at all if a timer is already due
//!    3. due timers:             call_later callbacks join the ready queue, sleeps wake
//!                               their tasks (which join it too)
//!    4. run exactly the n items ready now (n ≤ MAX_BATCH): what they schedule waits for
//!       the next iteration, so one callback or task cannot starve I/O, timers or others
//! ```
//!
//! What differs between a worker and a `LocalLoop` is only *where remote work comes from*,
//! *whether it can steal*, and *how it sleeps*: the [`Flavor`] trait. The ready queue, the
//! timer heap and the iteration exist once, here.
//!
//! Owns: the ready queue's owner end and the timer heap (both used only from the loop's
//! thread). Must not: block anywhere but in `Flavor::park`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use super::callback::Runnable;
use super::clock;
use super::timers::{TimerAction, TimerQueue};
use crate::event_loop::exception::{ExceptionContext, HandlerSlot};
use crate::event_loop::queue::{self, Local};
use crate::shim::tuning::MAX_BATCH;
use crate::unwind::catch;

/// The parts of an iteration that differ between a runtime worker and a `LocalLoop`.
pub(crate) trait Flavor {
    /// Moves work posted from other threads into `core`.
    fn pull_remote(&mut self, core: &LoopCore);
    /// `core` has nothing ready: find work elsewhere (steal) and put it in `core.ready`.
    fn find_work(&mut self, core: &LoopCore) -> bool;
    /// Sleeps for at most `timeout` (`None`: until woken).
    fn park(&mut self, core: &LoopCore, timeout: Option<Duration>);
    /// Called before each item runs (statistics).
    fn on_run(&mut self) {}
}

/// A loop's ready queue and timers.
pub(crate) struct LoopCore {
    pub(crate) ready: Local<Runnable>,
    timers: RefCell<TimerQueue>,
    /// The clock as last read to fire timers (`i64::MIN` before): never ahead of the real
    /// clock, current while this loop has timers. Timeout scopes test deadlines against it
    /// instead of reading the clock on every poll.
    fired_at: Cell<i64>,
    exceptions: Arc<HandlerSlot>,
}

impl LoopCore {
    pub(crate) fn new(ready: Local<Runnable>, exceptions: Arc<HandlerSlot>) -> LoopCore {
        LoopCore {
            ready,
            timers: RefCell::new(TimerQueue::default()),
            fired_at: Cell::new(i64::MIN),
            exceptions,
        }
    }

    /// One iteration; returns how many items ran.
    pub(crate) fn run_once(&self, flavor: &mut impl Flavor, max_wait: Option<Duration>) -> usize {
        self.run_once_limited(flavor, max_wait, MAX_BATCH)
    }

    /// One iteration running at most `limit` of the items ready when it began (asyncio's
    /// `_run_once` has no limit: `usize::MAX`).
    pub(crate) fn run_once_limited(
        &self,
        flavor: &mut impl Flavor,
        max_wait: Option<Duration>,
        limit: usize,
    ) -> usize {
        flavor.pull_remote(self);
        if self.ready.is_empty() && !flavor.find_work(self) {
            let wait = self.wait_budget(max_wait);
            if wait != Some(Duration::ZERO) {
                flavor.park(self, wait);
                flavor.pull_remote(self);
            }
        }
        self.fire_due_timers();
        let n = self.ready.len().min(limit);
        let mut ran = 0;
        for _ in 0..n {
            // Peers may steal from the other end meanwhile.
            let Some(item) = self.ready.pop() else { break };
            flavor.on_run();
            self.run(item);
            ran += 1;
        }
        ran
    }

    /// How long step 2 may sleep: until the earliest timer, capped by `max_wait`.
    fn wait_budget(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let next = self.timers.borrow_mut().next_deadline();
        let until_timer = next.and_then(clock::until);
        match (until_timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline of the earliest live timer, on the loop clock (for embedders).
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.timers.borrow_mut().next_deadline()
    }

    fn fire_due_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        // Dead entries on top (finished timeouts, dropped sleeps) go first, without reading
        // the clock; with no live entry left there is nothing to fire.
        if timers.next_deadline().is_none() {
            drop(timers);
            self.report_timer_panics();
            return;
        }
        let mut due = Vec::new();
        let now = clock::now();
        self.fired_at.set(now);
        timers.fire_due(now, |h| due.push(h));
        drop(timers);
        for h in due {
            self.ready.push(Runnable::Callback(h));
        }
        self.report_timer_panics();
    }

    /// Hands the panics the timer heap caught to the handler: user code that may add
    /// timers, so called once the heap is no longer borrowed.
    fn report_timer_panics(&self) {
        let reports = self.timers.borrow_mut().take_reports();
        for ctx in reports {
            self.exceptions.call(ctx);
        }
    }

    /// The clock reading of the last timer check (see `fired_at`): a lower bound of now.
    pub(crate) fn fired_at(&self) -> i64 {
        self.fired_at.get()
    }

    pub(crate) fn add_timer(&self, when: i64, action: TimerAction) {
        self.timers.borrow_mut().push(when, action);
    }

    /// Runs one ready item on this thread. A panicking callback goes to the exception
    /// handler (rule S8); task panics are caught inside the task, and so are panics of the
    /// code a completing task calls (its awaiter's waker, its hooks): a panic escaping a
    /// task's step would be a bug of the task core, reported here all the same so that the
    /// worker and everything queued on it survive (invariant 7).
    pub(crate) fn run(&self, item: Runnable) {
        match item {
            Runnable::Task(task) => {
                if let Err(p) = catch(|| task.run()) {
                    self.exceptions.call(ExceptionContext::panicked(
                        "Exception escaped a task's step (an aioloop bug)",
                        p,
                    ));
                }
            }
            Runnable::Callback(handle) => {
                if let Err(p) = catch(|| handle.cb.run()) {
                    let mut ctx =
                        ExceptionContext::panicked(format!("Exception in callback {handle:?}"), p);
                    ctx.handle = Some(handle);
                    self.exceptions.call(ctx);
                }
            }
        }
    }

    /// Drops everything queued here (loop shutdown), on this thread: callbacks' closures
    /// are dropped, tasks' references released; destructors' panics are reported.
    pub(crate) fn clear(&self) {
        while let Some(item) = self.ready.pop() {
            discard(item, &self.exceptions);
        }
        self.timers.borrow_mut().clear();
        self.report_timer_panics();
    }
}

/// Releases a queued item without running it; a callback's destructor that panics is
/// reported to `exceptions`.
pub(crate) fn discard(item: Runnable, exceptions: &HandlerSlot) {
    match item {
        Runnable::Task(task) => drop(task),
        Runnable::Callback(h) => {
            if let Err(ctx) = h.discard() {
                exceptions.call(ctx);
            }
        }
    }
}

/// The end of a loop, the same for both kinds, on the thread that closes it: cancel every
/// unfinished task of `loop_id` (their futures are dropped here, rule T11's "destroyed"),
/// then release everything still queued — remote work (`drain_remote`) and each core's
/// ready queue and timers. Repeated until nothing is queued: a destructor may spawn or wake.
/// The caller has set its closed flag and fenced (`queue::hand_off`'s other side).
pub(crate) fn shut_down(
    loop_id: crate::task::LoopId,
    cores: &[&LoopCore],
    drain_remote: impl Fn(),
    remote_is_empty: impl Fn() -> bool,
) {
    loop {
        crate::task::spawn::cancel_all_of(loop_id);
        crate::shim::atomic::fence(crate::shim::atomic::Ordering::SeqCst);
        drain_remote();
        for core in cores {
            core.clear();
        }
        if remote_is_empty() && cores.iter().all(|c| c.ready.is_empty()) {
            return;
        }
    }
}

/// Drains a steal source, discarding everything.
pub(crate) fn drain(mut next: impl FnMut() -> queue::Steal<Runnable>, exceptions: &HandlerSlot) {
    while let Some(item) = queue::retry(&mut next) {
        discard(item, exceptions);
    }
}
