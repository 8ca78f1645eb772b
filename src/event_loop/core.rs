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
//!       — except, on a runtime worker, the task in the LIFO slot (lifo.rs): after each
//!       item, up to MAX_LIFO_POLLS tasks woken or spawned by the item just run run at once
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
use super::lifo::LifoSlot;
use super::observed;
use super::stats::{self, LoopStats, StatsRef};
use super::timers::{TimerAction, TimerQueue};
use super::wheel::{Due, SleepWheel};
use crate::event_loop::exception::{ExceptionContext, HandlerSlot};
use crate::event_loop::queue::{self, Local};
use crate::event_loop::reactor::Driver;
use crate::shim::tuning::{IO_INTERVAL, MAX_BATCH, MAX_LIFO_POLLS};
use crate::unwind::catch;

/// The parts of an iteration that differ between a runtime worker and a `LocalLoop`.
pub(crate) trait Flavor {
    /// Moves work posted from other threads into `core`.
    fn pull_remote(&mut self, core: &LoopCore);
    /// `core` has nothing ready: find work elsewhere (steal) and put it in `core.ready`.
    fn find_work(&mut self, core: &LoopCore) -> bool;
    /// Sleeps for at most `timeout` (`None`: until woken).
    fn park(&mut self, core: &LoopCore, timeout: Option<Duration>);
    /// The loop queued work behind other queued work, where peers may steal it — a task
    /// spilled from its LIFO slot (lifo.rs, rule 4) or callbacks of fired timers: wake one
    /// if any is idle, or that work waits for this loop while a peer sleeps.
    fn on_stealable_work(&mut self) {}
}

/// A loop's ready queue and timers.
pub(crate) struct LoopCore {
    pub(crate) ready: Local<Runnable>,
    timers: RefCell<TimerQueue>,
    /// The sleeps registered here (wheel.rs), shared with their `Sleep`s.
    sleeps: crate::shim::Arc<SleepWheel>,
    /// The sleeps found due by the last firing, kept for its capacity.
    due_sleeps: RefCell<Vec<Due>>,
    /// The clock as last read to fire timers (`i64::MIN` before): never ahead of the real
    /// clock, current while this loop has timers. Timeout scopes test deadlines against it
    /// instead of reading the clock on every poll.
    fired_at: Cell<i64>,
    pub(super) exceptions: Arc<HandlerSlot>,
    /// This loop's counters (event_loop/stats.rs; written only here and by the flavour).
    pub(crate) stats: StatsRef,
    lifo: LifoSlot,
    /// This loop's reactor (the poller it parks in): sources whose home it is (rule R7).
    io: Arc<Driver>,
    /// Items run since the last harvest of `io` (reactor rule R8).
    since_harvest: Cell<usize>,
}

impl LoopCore {
    /// A core with counters of its own; `lifo_slot`: whether tasks woken by the running
    /// item run next (a runtime worker; lifo.rs), or keep asyncio's FIFO order (a
    /// `LocalLoop`).
    pub(crate) fn new(
        ready: Local<Runnable>,
        exceptions: Arc<HandlerSlot>,
        io: Arc<Driver>,
        lifo_slot: bool,
    ) -> LoopCore {
        LoopCore::with_stats(ready, exceptions, stats::new_stats(0), io, lifo_slot)
    }

    /// A core whose counters someone else reads (a runtime's `Shared` keeps each worker's).
    pub(crate) fn with_stats(
        ready: Local<Runnable>,
        exceptions: Arc<HandlerSlot>,
        stats: StatsRef,
        io: Arc<Driver>,
        lifo_slot: bool,
    ) -> LoopCore {
        LoopCore {
            ready,
            timers: RefCell::new(TimerQueue::default()),
            sleeps: crate::shim::Arc::new(SleepWheel::new()),
            due_sleeps: RefCell::new(Vec::new()),
            fired_at: Cell::new(i64::MIN),
            exceptions,
            stats,
            lifo: LifoSlot::new(lifo_slot),
            io,
            since_harvest: Cell::new(0),
        }
    }

    /// The reactor of this loop (reactor rule R7: where sources first waited on here live).
    #[cfg_attr(loom, allow(dead_code))] // its user, `context::io_driver`, serves `aioloop::io`
    pub(crate) fn io(&self) -> &Arc<Driver> {
        &self.io
    }

    /// Counts `n` items an embedding host ran itself (`LocalLoop::run_host_passes`) toward
    /// the next look at the poller, as if this loop had run them; whether that look is due.
    pub(crate) fn host_ran(&self, n: usize) -> bool {
        let since = self.since_harvest.get() + n;
        self.since_harvest.set(since);
        since >= IO_INTERVAL
    }

    /// Makes this loop's next pass look at its poller even while its ready queue is
    /// busy: an embedding host (`LocalLoop::run_host_passes`) harvests I/O on every pass
    /// of its own, as asyncio's `_run_once` selects on every iteration (reactor rule R8).
    pub(crate) fn harvest_on_next_pass(&self) {
        self.since_harvest.set(IO_INTERVAL);
    }

    /// How many sources are registered on this loop's poller.
    pub(crate) fn io_sources(&self) -> usize {
        self.io.source_count()
    }

    /// A busy loop's look at its poller (reactor rule R8): a zero-timeout harvest whose
    /// events wake their tasks onto this loop's ready queue. Skipped when nothing is
    /// registered here (the common CPU-only case pays no system call).
    fn harvest_io(&self) {
        self.since_harvest.set(0);
        if self.io.has_sources() {
            self.io.poll_now();
        }
    }

    /// Queues an item scheduled on this loop's own thread: a task woken or spawned by the
    /// running item goes to the LIFO slot (lifo.rs, rule 1). Returns whether something
    /// joined the stealable ready queue (then the caller may wake an idle peer).
    #[inline]
    pub(crate) fn push_local(&self, item: Runnable) -> bool {
        let item = match item {
            Runnable::Task(task) => match self.lifo.offer(task) {
                Ok(()) => return false,
                Err(task) => Runnable::Task(task),
            },
            callback => callback,
        };
        self.ready.push(item);
        true
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
        if self.ready.is_empty() {
            if flavor.find_work(self) {
                // Our queue drained: our sockets come before the stolen work (R8).
                self.harvest_io();
            } else {
                let wait = self.wait_budget(max_wait);
                if wait != Some(Duration::ZERO) {
                    // Every park harvests and dispatches (R8).
                    self.since_harvest.set(0);
                    flavor.park(self, wait);
                    LoopStats::bump(&self.stats.parked, 1);
                    flavor.pull_remote(self);
                } else {
                    self.harvest_io();
                }
            }
        } else if self.since_harvest.get() >= IO_INTERVAL {
            self.harvest_io();
        }
        self.fire_due_timers(flavor);
        let n = self.ready.len().min(limit);
        let mut ran = 0;
        // Debug mode or task tracking (event_loop/observed.rs): read once per batch.
        let observed = self.exceptions.tracks_tasks();
        for _ in 0..n {
            // Peers may steal from the other end meanwhile.
            let Some(item) = self.ready.pop() else { break };
            // Counted before it runs: whoever the item wakes sees it counted.
            LoopStats::bump(&self.stats.polled, 1);
            self.run_step(item, observed);
            ran += 1 + self.run_lifo_slot(flavor, observed);
        }
        self.since_harvest.set(self.since_harvest.get() + ran);
        ran
    }

    /// Runs one item with the LIFO slot open to what it schedules (lifo.rs, rule 1);
    /// `observed`: timed and recorded (event_loop/observed.rs).
    #[inline]
    fn run_step(&self, item: Runnable, observed: bool) {
        let task = match &item {
            Runnable::Task(t) => t.addr(),
            Runnable::Callback(_) => std::ptr::null(),
        };
        self.lifo.running(task, || {
            if observed {
                observed::run(self, item);
            } else {
                self.run(item);
            }
        });
    }

    /// Runs the tasks the last step left in the LIFO slot, at most `MAX_LIFO_POLLS` in a
    /// row; the one after goes to the back of the queue (lifo.rs, rules 4 and 5). Leaves
    /// the slot empty; returns how many ran.
    #[inline]
    fn run_lifo_slot(&self, flavor: &mut impl Flavor, observed: bool) -> usize {
        let mut ran = 0;
        while let Some(task) = self.lifo.take() {
            if ran == MAX_LIFO_POLLS {
                self.ready.push(Runnable::Task(task));
                self.offer_to_peers(flavor);
                break;
            }
            LoopStats::bump(&self.stats.polled, 1);
            LoopStats::bump(&self.stats.lifo_hits, 1);
            self.run_step(Runnable::Task(task), observed);
            ran += 1;
        }
        ran
    }

    /// How long step 2 may sleep: until the earliest timer, capped by `max_wait`.
    fn wait_budget(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let heap = self.timers.borrow_mut().next_deadline();
        let next = min_deadline(heap, self.sleeps.next_wake());
        let until_timer = next.and_then(clock::until);
        match (until_timer, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline of the earliest live timer, on the loop clock (for embedders).
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        let heap = self.timers.borrow_mut().next_deadline();
        min_deadline(heap, self.sleeps.next_deadline())
    }

    /// The wheel of this loop's sleeps (for `Sleep`s polled on this thread).
    pub(crate) fn sleeps(&self) -> &crate::shim::Arc<SleepWheel> {
        &self.sleeps
    }

    fn fire_due_timers(&self, flavor: &mut impl Flavor) {
        let mut timers = self.timers.borrow_mut();
        // Dead entries on top (finished timeouts, dropped sleeps) go first, without reading
        // the clock; with no live entry left there is nothing to fire.
        if timers.next_deadline().is_none() && self.sleeps.is_empty() {
            drop(timers);
            self.report_timer_panics();
            return;
        }
        let mut due = Vec::new();
        let now = clock::now();
        self.fired_at.set(now);
        // The wheel hands its due sleeps out of its lock (wheel.rs rule 5); the heap wakes
        // them in deadline order among its own entries.
        let mut sleeps = self.due_sleeps.borrow_mut();
        self.sleeps.take_due(now, &mut sleeps);
        let fired = timers.fire_due(now, &mut sleeps.drain(..).peekable(), |h| due.push(h));
        drop(sleeps);
        drop(timers);
        LoopStats::bump(&self.stats.timers_fired, fired);
        let queued = !due.is_empty();
        for h in due {
            self.ready.push(Runnable::Callback(h));
        }
        if queued {
            // loom: park.rs 2(g).
            self.offer_to_peers(flavor);
        }
        self.report_timer_panics();
    }

    /// After pushing work a peer may steal: wake one only if the work sits behind other
    /// work. Alone in the queue it is this loop's next item, and a woken peer would find
    /// nothing (lifo.rs rule 4).
    fn offer_to_peers(&self, flavor: &mut impl Flavor) {
        if self.ready.len() > 1 {
            flavor.on_stealable_work();
        }
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
        if let Some(task) = self.lifo.take() {
            drop(task);
        }
        while let Some(item) = self.ready.pop() {
            discard(item, &self.exceptions);
        }
        self.timers.borrow_mut().clear();
        let mut wakers = Vec::new();
        self.sleeps.clear(&mut wakers);
        for w in wakers {
            if let Err(p) = crate::unwind::drop_caught(w) {
                self.exceptions.call(ExceptionContext::panicked(
                    "Exception dropping a sleep's waker",
                    p,
                ));
            }
        }
        self.report_timer_panics();
    }
}

fn min_deadline(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
