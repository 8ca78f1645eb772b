//! The part of a `LocalLoop` other threads may touch — its inbox and the protocol that
//! wakes its poller — and the loop's side of its tasks (`Loop`, `Schedule`) and iterations
//! (`Flavor`).
//!
//! Waking protocol: everything queued while the loop is not running — from its own thread
//! or another — goes through the one inbox, so it keeps a single FIFO order; while it runs,
//! its own thread pushes straight onto the ready queue. A post from another thread notifies
//! the poller only when the loop sleeps in it (`sleeping`, announced with a `SeqCst` fence
//! before the re-check: Dekker's pattern) or is not running at all (then the notify is what
//! makes the fd readable for the host). A run ends by re-checking its inbox and notifying
//! itself if work arrived while it was busy. Every notify sets `notified`; the next
//! iteration consumes the poller's token before draining the inbox, so the fd is quiet again
//! once the work is done and a host that watches it never spins.

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::event_loop::callback::{Handle, Runnable};
use crate::event_loop::context::{self, Loop};
use crate::event_loop::core::{self, Flavor, LoopCore};
use crate::event_loop::exception::{ExceptionContext, HandlerSlot};
use crate::event_loop::park::{Park, Parker};
use crate::event_loop::queue::{self, Injector};
use crate::event_loop::timers::TimerAction;
use crate::shim::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::task::raw::{Notified, RawTask, Schedule, TaskReport};
use crate::task::spawn::SpawnOpts;
use crate::task::TaskFactory;
use crate::task::{self, LoopId, Task, TaskRef};

/// The part of a `LocalLoop` other threads may touch.
pub(crate) struct LocalShared {
    pub(crate) id: LoopId,
    /// The thread that created the loop (and alone may run it: `LocalLoop` is `!Send`).
    pub(super) thread: crate::shim::thread::ThreadId,
    pub(super) inbox: Injector<Runnable>,
    pub(super) parker: Parker,
    pub(super) stopping: AtomicBool,
    /// The loop thread is in (or about to enter) `Parker::park`.
    pub(super) sleeping: AtomicBool,
    /// A notify may have left a token in the poller (see `LocalShared::notify`).
    pub(super) notified: AtomicBool,
    pub(super) closed: AtomicBool,
    /// `close()` has drained everything the loop's own thread ever queued: from now on the
    /// inbox holds only `Send` work posted by other threads, which they may drop
    /// themselves (see `schedule`).
    pub(super) drained: AtomicBool,
    pub(super) running: AtomicBool,
    pub(super) exceptions: Arc<HandlerSlot>,
    /// The loop's task factory (T10); read at each task creation.
    pub(super) task_factory: crate::shim::Mutex<Option<TaskFactory>>,
    /// `task_factory` is `Some` (a lock-free check on the spawn path).
    pub(super) has_task_factory: AtomicBool,
    /// Tasks spawned on this loop while it was not running on the spawning thread (the
    /// loop's own iterations count theirs in its `LoopStats`).
    pub(super) spawned_elsewhere: AtomicU64,
    /// The loop's default executor; threads start on the first job.
    pub(super) blocking: crate::blocking::Pool,
}

impl LocalShared {
    /// Queues `item` on this loop: straight onto the ready queue on the loop's own thread
    /// while it runs, else into the inbox, waking the loop.
    ///
    /// While the loop is not running, everything — `call_soon`, `create_task`,
    /// `call_soon_threadsafe`, from this thread or another — goes through the inbox, which
    /// the next iteration drains first: one FIFO order for all of it (rules S1, T2).
    pub(super) fn schedule(&self, item: Runnable) {
        self.schedule_counted(item, false)
    }

    /// [`schedule`](Self::schedule); `spawned`: a new task, counted for the metrics.
    #[inline]
    fn schedule_counted(&self, item: Runnable, spawned: bool) {
        let pushed = if spawned {
            context::try_push_spawned(self, item)
        } else {
            context::try_push(self, item)
        };
        if let Err(item) = pushed {
            if spawned {
                self.spawned_elsewhere.fetch_add(1, Ordering::Relaxed);
            }
            // With `close` (sets `closed`, fences, drains; then sets `drained`, fences and
            // drains once more) and with `LocalFlavor::park`. A post that finds the loop
            // closed reclaims the inbox only once `drained` is set: before that the inbox
            // may still hold the loop's own `!Send` closures, which must be dropped on its
            // thread, and `close` is still to drain it — including our item.
            queue::hand_off(
                || self.inbox.push(item),
                &self.closed,
                || {
                    if self.drained.load(Ordering::SeqCst) {
                        core::drain(|| self.inbox.steal(), &self.exceptions);
                    }
                },
                || {
                    // The loop's own thread is not parked in it: only others wake it.
                    if crate::shim::thread::current().id() != self.thread {
                        self.wake();
                    }
                },
            );
        }
    }

    /// Spawns a `Send` future as a task of this loop (from any thread: `LoopHandle::spawn`,
    /// or `create_task` inside the running loop).
    #[track_caller]
    pub(crate) fn spawn_with<F>(self: &Arc<Self>, future: F, opts: SpawnOpts) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(future, opts, Location::caller())
    }

    /// `spawn_with`, for a task created at `site` (O4).
    pub(crate) fn spawn_at<F>(
        self: &Arc<Self>,
        future: F,
        opts: SpawnOpts,
        site: &'static Location<'static>,
    ) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let raw = RawTask::new(future, LocalScheduler(self.clone()), task::next_task_id());
        // SAFETY: a fresh task whose output is `F::Output`.
        unsafe { self.bind(raw, opts, site) }
    }

    /// # Safety
    /// As `task::spawn::bind`; and a task whose future is not `Send` is bound only on the
    /// loop's own thread.
    pub(crate) unsafe fn bind<T>(
        &self,
        raw: RawTask,
        opts: SpawnOpts,
        site: &'static Location<'static>,
    ) -> Task<T> {
        let opts = self.apply_factory(opts);
        let eager = opts.starts_eagerly();
        // SAFETY: `raw` is a fresh task whose output is `T`, none of its references used
        // (this function's contract, which is `bind`'s).
        let (join, notified) = unsafe { task::spawn::bind(raw, opts) };
        if self.exceptions.tracks_tasks() {
            task::observe::attach(raw, site);
        }
        if self.closed.load(Ordering::SeqCst) {
            task::spawn::reject(notified, raw);
        } else if eager && context::is_thread_of(self) {
            // T9: only while this loop runs on this thread; elsewhere it is queued.
            if !context::count_spawn(self) {
                self.spawned_elsewhere.fetch_add(1, Ordering::Relaxed);
            }
            task::spawn::run_eagerly(notified);
        } else {
            // FIFO with `call_soon` (rule T2), whether or not the loop is running now.
            self.schedule_counted(Runnable::Task(notified), true);
        }
        join
    }

    pub(super) fn apply_factory(&self, opts: SpawnOpts) -> SpawnOpts {
        // The common case, no factory, skips the lock.
        if !self.has_task_factory.load(Ordering::Acquire) {
            return opts;
        }
        let factory = self.task_factory.lock().clone();
        match factory {
            Some(f) => f.apply(opts),
            None => opts,
        }
    }

    /// `call_soon_threadsafe`, for `LoopHandle` and crate-internal callers (done callbacks,
    /// futures): `None` if the loop is closed and `f` was dropped.
    pub(crate) fn call_soon_send(&self, f: impl FnOnce() + Send + 'static) -> Option<Handle> {
        // SAFETY: `f` is `Send`, so it may cross threads.
        let h = unsafe { Handle::new(f) };
        self.call_soon_handle(h.clone()).then_some(h)
    }

    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Wakes the loop unless it is iterating right now. The caller has made its work
    /// visible (inbox push, `stopping`) before. Two Dekker pairs, each a `SeqCst` fence on
    /// both sides: with `LocalFlavor::park` (it announces `sleeping`, then re-checks), and
    /// with the end of a run (`EnteredLoop::drop` clears `running`, then re-checks and
    /// notifies itself, so that a host watching the fd learns of work that arrived during
    /// the run). When the loop is not running at all, the notify is what makes its fd
    /// readable for the host. Skipping it while the loop is busy iterating saves an eventfd
    /// write here and an early return of the loop's next wait (with the `polling` backend, five
    /// system calls).
    pub(super) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) || !self.running.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Wakes the loop's poller (its fd becomes readable), recording that a token may be
    /// pending so that the next iteration consumes it: otherwise the fd would stay readable
    /// after the work is done and a host watching it would spin.
    pub(super) fn notify(&self) {
        self.notified.store(true, Ordering::SeqCst);
        self.parker.unpark();
    }

    /// Work from another thread, or a stop, is waiting.
    pub(super) fn has_remote_work(&self) -> bool {
        !self.inbox.is_empty() || self.stopping.load(Ordering::SeqCst)
    }
}

impl Loop for LocalShared {
    fn id(&self) -> LoopId {
        self.id
    }

    fn call_soon_handle(&self, h: Handle) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            // Dropped here, unrun (a done callback of a task cancelled by `close`); its
            // destructor's panic is reported, not unwound into `close` (invariant 7).
            if let Err(ctx) = h.discard() {
                self.exceptions.call(ctx);
            }
            return false;
        }
        self.schedule(Runnable::Callback(h));
        true
    }

    fn exceptions(&self) -> &HandlerSlot {
        &self.exceptions
    }

    fn add_remote_timer(&self, _when: i64, action: TimerAction) -> Result<(), TimerAction> {
        // Only a `block_on` thread registers remote timers; a `LocalLoop` has none.
        Err(action)
    }

    fn blocking_pool(&self) -> &crate::blocking::Pool {
        &self.blocking
    }

    fn io_driver(&self, _fd: i32) -> Option<Arc<crate::event_loop::reactor::Driver>> {
        Some(self.parker.driver().clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// A local task's scheduler: its loop.
pub(super) struct LocalScheduler(pub(super) Arc<LocalShared>);

impl Schedule for LocalScheduler {
    fn schedule(&self, task: Notified) {
        self.0.schedule(Runnable::Task(task))
    }

    fn loop_id(&self) -> LoopId {
        self.0.id
    }

    fn call_soon(&self, f: Box<dyn FnOnce() + Send>) -> bool {
        // SAFETY: the closure is `Send`: it may cross threads.
        self.0.call_soon_handle(unsafe { Handle::new(f) })
    }

    fn report(&self, task: TaskRef, report: TaskReport) {
        self.0
            .exceptions
            .call(ExceptionContext::about_task(task, report));
    }

    fn debug(&self) -> bool {
        self.0.exceptions.debug()
    }
}

pub(super) struct LocalFlavor<'a> {
    pub(super) shared: &'a LocalShared,
    /// `run_until_complete`'s main-future wake flag: work like the inbox's, which the
    /// sleeping re-check must see too.
    pub(super) main_woken: Option<&'a AtomicBool>,
}

impl Flavor for LocalFlavor<'_> {
    fn pull_remote(&mut self, core: &LoopCore) {
        if self.shared.notified.swap(false, Ordering::SeqCst) {
            // Consume the token first (a zero-timeout wait), then drain: a post that lands
            // after the drain re-arms the fd (or is seen by the end-of-run re-check).
            self.shared.parker.park(Some(Duration::ZERO));
        }
        while let Some(item) = queue::retry(|| self.shared.inbox.steal()) {
            core.ready.push(item);
        }
    }

    fn find_work(&mut self, _core: &LoopCore) -> bool {
        false
    }

    fn park(&mut self, _core: &LoopCore, timeout: Option<Duration>) {
        let shared = self.shared;
        shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // asyncio: a stopping loop finishes its iteration without waiting. The re-check
        // after announcing `sleeping` pairs with `LocalShared::wake`.
        // The main future's wake counts as work: its waker sets the flag, then notifies the
        // poller — a token this iteration's `pull_remote` may already have consumed, so
        // only this re-check stands between that wake and a sleep with no timeout (found by
        // loom, `local_loop::main_future_woken_from_another_thread`).
        let main_woken = self.main_woken.is_some_and(|w| w.load(Ordering::SeqCst));
        if !shared.has_remote_work() && !main_woken {
            // The wait consumes any token; one that arrives after this store sets the flag
            // again and is consumed by the next iteration.
            shared.notified.store(false, Ordering::SeqCst);
            shared.parker.park(timeout);
        }
        shared.sleeping.store(false, Ordering::SeqCst);
    }
}
