//! Hooks for the loom models in `loom-tests/` (compiled only under `--cfg loom`).
//!
//! Everything here is a thin wrapper over the production code, so that the models drive the
//! real task state machine, the real `RawTask` poll/complete/wake/join paths, the real
//! registry and current-task slot, and the real parking protocol. What the models add is a
//! test scheduler ([`TestScheduler`]) whose run queue checks the "one `Notified` per task"
//! invariant and whose per-task handle counts how many task allocations were freed.

#![allow(missing_docs)]

use std::collections::VecDeque;
use std::future::Future;

use crate::event_loop::callback::{Handle as CallbackHandle, Runnable};
use crate::event_loop::context::{Loop, LoopRef};
use crate::event_loop::core::LoopCore;
use crate::event_loop::exception::{ExceptionContext, HandlerSlot};
use crate::event_loop::queue::{self, Local};
use crate::event_loop::timers::TimerAction;
use crate::runtime::shared::Shared;
use crate::runtime::{worker, Handle};
use crate::shim::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::shim::{Arc, Mutex};
use crate::task::raw::{Notified, RawTask, Schedule, TaskReport};
use crate::task::{current, registry, LoopId, Task, TaskRef};

// ---- Model 1: a test scheduler over the real task core ------------------------------------

struct SchedInner {
    loop_id: LoopId,
    /// Queued `Notified`s with the id of their task.
    queue: Mutex<VecDeque<(u64, Notified)>>,
    /// Signalled on every push, for [`TestScheduler::run_until`].
    cv: loom::sync::Condvar,
    /// Task allocations created / freed (a task's scheduler handle is dropped exactly when
    /// its allocation is freed).
    spawned: AtomicUsize,
    freed: AtomicUsize,
    /// Number of `Notified`s ever handed to the scheduler.
    scheduled: AtomicUsize,
}

impl SchedInner {
    fn push(&self, id: u64, task: Notified) {
        let mut q = self.queue.lock();
        // The state protocol: at most one `Notified` per task exists at any time. One still
        // in the queue when another is submitted is a double schedule.
        assert!(
            q.iter().all(|(queued, _)| *queued != id),
            "task {id} scheduled twice (a second Notified while one is queued)"
        );
        q.push_back((id, task));
        self.scheduled.fetch_add(1, SeqCst);
        drop(q);
        self.cv.notify_all();
    }
}

/// A run queue shared by the model's threads. Tasks spawned on it are real aioloop tasks
/// (`RawTask::new`, registered in the registry, driven through their vtable).
#[derive(Clone)]
pub struct TestScheduler {
    inner: Arc<SchedInner>,
}

/// The `Schedule` impl each task owns (stored inside its allocation).
struct TaskSched {
    id: u64,
    inner: Arc<SchedInner>,
}

impl Schedule for TaskSched {
    fn schedule(&self, task: Notified) {
        self.inner.push(self.id, task);
    }
    fn loop_id(&self) -> LoopId {
        self.inner.loop_id
    }
    fn call_soon(&self, f: Box<dyn FnOnce() + Send>) -> bool {
        drop(f);
        false
    }
    fn report(&self, task: TaskRef, report: TaskReport) {
        drop(ExceptionContext::about_task(task, report));
    }
    fn debug(&self) -> bool {
        false
    }
}

impl Drop for TaskSched {
    fn drop(&mut self) {
        // Runs when the task's allocation is freed (`dealloc` drops the whole cell).
        self.inner.freed.fetch_add(1, SeqCst);
    }
}

impl Default for TestScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl TestScheduler {
    pub fn new() -> TestScheduler {
        TestScheduler {
            inner: Arc::new(SchedInner {
                loop_id: LoopId::new(),
                queue: Mutex::new(VecDeque::new()),
                cv: loom::sync::Condvar::new(),
                spawned: AtomicUsize::new(0),
                freed: AtomicUsize::new(0),
                scheduled: AtomicUsize::new(0),
            }),
        }
    }

    pub fn loop_id(&self) -> LoopId {
        self.inner.loop_id
    }

    /// Spawns `future` as a built-in task with id `id`, exactly as `Handle::spawn_with` does:
    /// one allocation with three references, turned into the registry's `TaskRef`, the
    /// returned `Task<T>` and the first `Notified` (queued here).
    pub fn spawn<F>(&self, id: u64, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let sched = TaskSched {
            id,
            inner: self.inner.clone(),
        };
        let raw = RawTask::new(future, sched, id);
        self.inner.spawned.fetch_add(1, SeqCst);
        // SAFETY: a new task holds three references; each wrapper takes one.
        let (entry, join, notified) = unsafe {
            (
                TaskRef::from_raw_builtin(raw),
                Task::from_raw(raw),
                Notified::from_raw(raw),
            )
        };
        assert!(registry::insert(entry));
        self.inner.push(id, notified);
        join
    }

    /// Pops one queued task and polls it on this thread. `false` if the queue was empty.
    pub fn run_one(&self) -> bool {
        let next = self.inner.queue.lock().pop_front();
        match next {
            Some((_, task)) => {
                task.run();
                true
            }
            None => false,
        }
    }

    /// Runs queued tasks on this thread until the queue is empty and `done()` holds,
    /// sleeping on the queue's condvar while it is empty. `done` must become true only
    /// through tasks run here (or together with a push), else this never returns: a lost
    /// wake-up shows up as a loom deadlock.
    pub fn run_until(&self, mut done: impl FnMut() -> bool) {
        let mut q = self.inner.queue.lock();
        loop {
            if let Some((_, task)) = q.pop_front() {
                drop(q);
                task.run();
                q = self.inner.queue.lock();
                continue;
            }
            if done() {
                return;
            }
            q = self.inner.cv.wait(q).unwrap();
        }
    }

    /// Tasks currently queued.
    pub fn queued(&self) -> usize {
        self.inner.queue.lock().len()
    }

    /// `Notified`s handed to the scheduler so far (spawn included).
    pub fn scheduled(&self) -> usize {
        self.inner.scheduled.load(SeqCst)
    }

    /// Task allocations spawned and not yet freed.
    pub fn alive(&self) -> usize {
        self.inner.spawned.load(SeqCst) - self.inner.freed.load(SeqCst)
    }
}

/// Registers a completion hook on a built-in task (task/done.rs), as a task group does —
/// but at any time, so that a model can race the registration with completion. `f` gets
/// whether the task was observably done when the hook ran.
pub fn add_done_hook(task: &TaskRef, f: impl FnOnce(bool) + Send + 'static) {
    /// The model's closure, called once.
    type Callback = Box<dyn FnOnce(bool) + Send>;
    /// A one-shot sink around the model's closure.
    struct Once(Mutex<Option<Callback>>);
    impl crate::task::done::HookSink for Once {
        fn task_done(
            &self,
            _key: usize,
            task: &TaskRef,
            _outcome: &crate::task::done::Outcome,
        ) -> bool {
            let f = self.0.lock().take().expect("a hook runs once");
            f(task.done());
            false
        }
    }
    let raw = task.raw().expect("a built-in task");
    let sink = std::sync::Arc::new(Once(Mutex::new(Some(Box::new(f)))));
    raw.add_done(crate::task::done::DoneCallback::Hook(
        crate::task::done::Hook::new(sink, 0),
    ));
}

/// Runtime shutdown for one built-in task (`RawTask::shutdown`, what `Runtime::drop` does
/// to every unfinished task): cancels it unless complete, dropping the future on this
/// thread if nobody polls it. The caller keeps its reference.
pub fn shutdown_task(task: &TaskRef) {
    task.raw().expect("a built-in task").shutdown();
}

// ---- Model 2: the parking protocol ---------------------------------------------------------

/// The shared state of a runtime with `n` workers, without threads: the model starts the
/// workers itself ([`TestRuntime::run_worker`]) on loom threads.
pub struct TestRuntime {
    shared: std::sync::Arc<Shared>,
    /// Each worker's queue before it runs; its loop core (queue and timers) after.
    locals: Mutex<Vec<WorkerSlot>>,
}

enum WorkerSlot {
    Fresh(Local<Runnable>),
    Running,
    Done(LoopCore),
}

impl TestRuntime {
    pub fn new(workers: usize) -> TestRuntime {
        let (shared, locals) = Shared::new(workers, None).expect("loom parkers never fail");
        TestRuntime {
            shared: std::sync::Arc::new(shared),
            locals: Mutex::new(locals.into_iter().map(WorkerSlot::Fresh).collect()),
        }
    }

    /// A handle to spawn through (`Handle::spawn`: registry insert, then
    /// `Shared::schedule`, which goes to the local queue on a worker thread of this
    /// runtime and to the injector, via `schedule_remote`, anywhere else).
    pub fn handle(&self) -> Handle {
        Handle::from_shared(self.shared.clone())
    }

    /// Runs the real worker loop (`runtime::worker::run`) for worker `index` on this
    /// thread until shutdown, then puts its local queue back.
    pub fn run_worker(&self, index: usize) {
        let slot = std::mem::replace(&mut self.locals.lock()[index], WorkerSlot::Running);
        let WorkerSlot::Fresh(local) = slot else {
            panic!("worker started twice")
        };
        let core = worker::run(self.shared.clone(), index, local);
        self.locals.lock()[index] = WorkerSlot::Done(core);
    }

    /// Sets the shutdown flag and unparks every worker (`Shared::begin_shutdown`).
    pub fn begin_shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// After the workers have returned: steps 3 and 4 of the shutdown order (cancel every
    /// unfinished task, drain the injector and the local queues), as `Runtime::drop` does.
    pub fn finish(&self) {
        loop {
            crate::task::spawn::cancel_all_of(self.shared.id);
            crate::shim::atomic::fence(SeqCst);
            self.shared.drain_injector();
            let locals = self.locals.lock();
            let mut empty = true;
            for slot in locals.iter() {
                match slot {
                    WorkerSlot::Fresh(local) => {
                        crate::event_loop::core::drain(
                            || {
                                local
                                    .pop()
                                    .map_or(queue::Steal::Empty, queue::Steal::Success)
                            },
                            &self.shared.exceptions,
                        );
                        empty &= local.is_empty();
                    }
                    WorkerSlot::Done(core) => {
                        core.clear();
                        empty &= core.ready.is_empty();
                    }
                    WorkerSlot::Running => {}
                }
            }
            if self.shared.injector.is_empty() && empty {
                break;
            }
        }
    }

    /// Tasks still queued anywhere (injector or local queues).
    pub fn has_work(&self) -> bool {
        crate::shim::atomic::fence(SeqCst);
        self.shared.has_work()
    }
}

// ---- Models 3 and 4: registry and current-task slot ----------------------------------------

/// `all_tasks()` for loop `id` (`task::all_tasks_of`: a registry snapshot filtered by
/// "listed, not done, of this loop").
pub fn all_tasks_of(id: LoopId) -> Vec<TaskRef> {
    crate::task::all_tasks_of(id)
}

/// Every registry entry, listed or not (`registry::collect`).
pub fn registry_snapshot() -> Vec<TaskRef> {
    registry::collect(|_| true)
}

/// Whether the registry holds an entry for `id`.
pub fn registry_contains(id: u64) -> bool {
    registry::contains(id)
}

/// This thread's current task (`current::get`, what `current_task()` returns inside a
/// running loop).
pub fn current_task() -> Option<TaskRef> {
    current::get()
}

// ---- Model 5: `Future` (future.rs) ----------------------------------------------------------

/// A stand-in loop for `Future`s: records what they queue with `call_soon` (done callbacks)
/// and what they report to the exception handler, and runs the queued callbacks on demand.
#[derive(Clone)]
pub struct CallbackSink {
    inner: std::sync::Arc<SinkInner>,
}

struct SinkInner {
    id: LoopId,
    queue: Mutex<VecDeque<CallbackHandle>>,
    queued: AtomicUsize,
    reports: std::sync::Arc<Mutex<Vec<String>>>,
    exceptions: HandlerSlot,
    /// Never started (no model submits to it): only there to answer `blocking_pool`.
    blocking: crate::blocking::Pool,
}

impl Default for CallbackSink {
    fn default() -> Self {
        Self::new()
    }
}

/// The sink is a loop like the others to what is bound to it: it records instead of runs.
impl Loop for SinkInner {
    fn id(&self) -> LoopId {
        self.id
    }

    fn call_soon_handle(&self, h: CallbackHandle) -> bool {
        self.queue.lock().push_back(h);
        self.queued.fetch_add(1, SeqCst);
        true
    }

    fn exceptions(&self) -> &HandlerSlot {
        &self.exceptions
    }

    fn add_remote_timer(&self, _when: i64, action: TimerAction) -> Result<(), TimerAction> {
        Err(action)
    }

    fn io_driver(&self, _fd: i32) -> Option<std::sync::Arc<crate::event_loop::reactor::Driver>> {
        None
    }

    fn blocking_pool(&self) -> &crate::blocking::Pool {
        &self.blocking
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl CallbackSink {
    pub fn new() -> CallbackSink {
        let reports = std::sync::Arc::new(Mutex::new(Vec::new()));
        let exceptions = HandlerSlot::default();
        let log = reports.clone();
        exceptions.set(Some(std::sync::Arc::new(
            move |ctx: &crate::ExceptionContext| log.lock().push(ctx.message.clone()),
        )));
        CallbackSink {
            inner: std::sync::Arc::new(SinkInner {
                id: LoopId::new(),
                queue: Mutex::new(VecDeque::new()),
                queued: AtomicUsize::new(0),
                reports,
                exceptions,
                blocking: crate::blocking::Pool::new(crate::blocking::Config::default()),
            }),
        }
    }

    /// A real `aioloop::Future` bound to this sink instead of a loop.
    pub fn create_future<T: Send + 'static>(&self) -> crate::Future<T> {
        crate::Future::new(LoopRef::new(self.inner.clone()))
    }

    /// Callbacks queued so far (run or not).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(SeqCst)
    }

    /// Runs the queued callbacks on this thread, in order; returns how many ran.
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        loop {
            let next = self.inner.queue.lock().pop_front();
            match next {
                Some(h) => {
                    h.cb.run();
                    n += 1;
                }
                None => return n,
            }
        }
    }

    /// Messages reported to the exception handler.
    pub fn reports(&self) -> Vec<String> {
        self.inner.reports.lock().clone()
    }
}

// ---- Reactor models: the readiness word, the slab and the fake poller ---------------------

/// A runtime worker's driver (reactor rule R11, `reactor/quiet.rs`): with no source it
/// sleeps in a condvar, with one in its (fake) poller.
pub struct WorkerParkModel {
    driver: std::sync::Arc<crate::event_loop::reactor::Driver>,
}

impl Default for WorkerParkModel {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerParkModel {
    pub fn new() -> WorkerParkModel {
        WorkerParkModel {
            driver: std::sync::Arc::new(crate::event_loop::reactor::Driver::new_worker().unwrap()),
        }
    }

    /// The owner sleeps until woken (or spuriously); how many sources it made ready.
    pub fn park(&self) -> usize {
        self.driver.park(None)
    }

    /// Wakes the owner where it sleeps, or leaves it the token.
    pub fn unpark(&self) {
        self.driver.unpark()
    }

    /// Another thread registers a source on this driver (rule R7's `fd % n` case).
    pub fn register(&self) -> IoModel {
        IoModel::on(self.driver.clone())
    }
}

/// One source registered on one loop's driver (the fake poller of `reactor/mod.rs`), for
/// the reactor models: the real readiness word, waker slots, slab and dispatch.
pub struct IoModel {
    driver: std::sync::Arc<crate::event_loop::reactor::Driver>,
    io: std::sync::Arc<crate::event_loop::reactor::ScheduledIo>,
    key: usize,
    live: Mutex<bool>,
}

/// What a readiness wait saw (reactor rule R2's argument).
#[derive(Clone, Copy, Debug)]
pub struct IoReady(crate::event_loop::reactor::ReadyEvent);

impl IoModel {
    pub fn new() -> IoModel {
        use crate::event_loop::reactor::Driver;
        Self::on(std::sync::Arc::new(Driver::new().unwrap()))
    }

    fn on(driver: std::sync::Arc<crate::event_loop::reactor::Driver>) -> IoModel {
        let io = std::sync::Arc::new(crate::event_loop::reactor::ScheduledIo::default());
        // SAFETY: the fake poller has no descriptors (reactor/mod.rs, loom `sys`).
        let key = unsafe { driver.register(-1, io.clone()).unwrap() };
        IoModel {
            driver,
            io,
            key,
            live: Mutex::new(true),
        }
    }

    /// A second source on the same driver (after `release`, it may reuse the slot).
    pub fn register_another(&self) -> IoModel {
        let io = std::sync::Arc::new(crate::event_loop::reactor::ScheduledIo::default());
        // SAFETY: as in `new`.
        let key = unsafe { self.driver.register(-1, io.clone()).unwrap() };
        IoModel {
            driver: self.driver.clone(),
            io,
            key,
            live: Mutex::new(true),
        }
    }

    /// The kernel reports this source readable (an event in the fake poller's queue).
    /// (After `release`, the event is a stale one: reactor rule R5.)
    pub fn inject_readable(&self) {
        self.driver
            .inject(self.key, crate::event_loop::reactor::READABLE);
    }

    /// The kernel reports the peer's half-close (`EPOLLIN | EPOLLRDHUP`: reactor rule R12).
    pub fn inject_read_closed(&self) {
        use crate::event_loop::reactor::readiness::READ_CLOSED;
        self.driver
            .inject(self.key, crate::event_loop::reactor::READABLE | READ_CLOSED);
    }

    /// Whether this source reuses `other`'s slot (same index, newer generation).
    pub fn reuses_slot_of(&self, other: &IoModel) -> bool {
        self.key != other.key && (self.key & 0xFFFF_FFFF) == (other.key & 0xFFFF_FFFF)
    }

    /// The owning loop parks (`block`) or harvests with a zero timeout; returns how many
    /// sources it made ready.
    pub fn harvest(&self, block: bool) -> usize {
        let timeout = if block {
            None
        } else {
            Some(std::time::Duration::ZERO)
        };
        self.driver.park(timeout)
    }

    /// Wakes the parked owner (the sticky token).
    pub fn unpark(&self) {
        self.driver.unpark()
    }

    /// Rule R3: wait for readability.
    pub fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<IoReady> {
        self.io
            .poll_ready(crate::event_loop::reactor::Direction::Read, cx)
            .map(IoReady)
    }

    /// Rule R3: wait for writability.
    pub fn poll_writable(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<IoReady> {
        self.io
            .poll_ready(crate::event_loop::reactor::Direction::Write, cx)
            .map(IoReady)
    }

    /// Rule R2: the syscall said `EWOULDBLOCK`.
    pub fn clear(&self, ev: IoReady) {
        self.io.clear_readiness(ev.0)
    }

    /// Rule R12: a read shorter than its buffer emptied the socket.
    pub fn clear_drained(&self, ev: IoReady) {
        self.io.clear_drained(ev.0)
    }

    /// Whether the word says readable.
    pub fn is_readable(&self) -> bool {
        self.io.readiness() & crate::event_loop::reactor::READABLE != 0
    }

    /// Deregisters the source (rule R6).
    pub fn release(&self) {
        let mut live = self.live.lock();
        if *live {
            *live = false;
            self.driver.deregister(-1, self.key);
        }
    }
}

impl Default for IoModel {
    fn default() -> Self {
        IoModel::new()
    }
}

// ---- Model: the sleep wheel (event_loop/wheel.rs) ------------------------------------------

/// A loop's sleep wheel, driven by hand: the models register entries, fire, clear, and poll
/// or drop entries from other threads (wheel.rs rules 1–6).
pub struct WheelModel(Arc<crate::event_loop::wheel::SleepWheel>);

/// A timer entry as a `Sleep` embeds it (`!Unpin`, so it lives in a `Pin<Box<_>>` here).
pub struct WheelEntry(crate::event_loop::wheel::TimerEntry);

impl WheelModel {
    pub fn new() -> WheelModel {
        WheelModel(Arc::new(crate::event_loop::wheel::SleepWheel::new()))
    }

    /// A new entry registered at `when` with `waker`, as a `Sleep`'s first poll does.
    pub fn register(&self, when: i64, waker: std::task::Waker) -> std::pin::Pin<Box<WheelEntry>> {
        let mut e = Box::pin(WheelEntry(crate::event_loop::wheel::TimerEntry::new()));
        // SAFETY: a pin projection onto the only field; it is never moved out.
        let entry = unsafe { e.as_mut().map_unchecked_mut(|w| &mut w.0) };
        entry.register(self.0.clone(), when, waker, None);
        e
    }

    /// The loop's firing at `now`: due entries are taken under the lock and woken after it
    /// (rule 5). Returns how many fired.
    pub fn fire(&self, now: i64) -> usize {
        let mut due = Vec::new();
        self.0.take_due(now, &mut due);
        let n = due.len();
        for d in due {
            if let Some(w) = d.waker {
                w.wake();
            }
        }
        n
    }

    /// The loop's shutdown (rule 6). Returns how many wakers it dropped.
    pub fn clear(&self) -> usize {
        let mut wakers = Vec::new();
        self.0.clear(&mut wakers);
        wakers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for WheelModel {
    fn default() -> Self {
        WheelModel::new()
    }
}

impl WheelEntry {
    /// A `Sleep`'s later poll: whether it fired; if not, `waker` is the one to wake.
    pub fn poll_fired(&self, waker: &std::task::Waker) -> bool {
        self.0.poll_fired(waker)
    }
}

// ---- Model: the blocking pool (blocking rules B1–B7) ---------------------------------------

/// The real blocking pool, for `loom-tests/tests/blocking.rs`.
pub struct TestPool(crate::blocking::Pool);

impl TestPool {
    /// A pool of at most `max_threads`; with `expire_at_once`, an idle thread's keep-alive
    /// ends as soon as it starts waiting (the shim's zero-duration wait).
    pub fn new(max_threads: usize, expire_at_once: bool) -> TestPool {
        TestPool(crate::blocking::Pool::new(crate::blocking::Config {
            max_threads,
            keep_alive: if expire_at_once {
                std::time::Duration::ZERO
            } else {
                std::time::Duration::from_secs(3600)
            },
            name: "loom-blocking".to_owned(),
        }))
    }

    /// `run_in_executor(None, f)` on this pool.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> crate::Blocking<T> {
        crate::executor::submit(&self.0, f)
    }

    pub fn shutdown(&self, discard: bool) {
        self.0.shutdown(discard)
    }

    /// `set_default_executor(executor)` on this pool (B7).
    pub fn set_default_executor(
        &self,
        executor: std::sync::Arc<dyn crate::Executor>,
    ) -> Result<(), crate::ExecutorError> {
        self.0.set_replacement(executor)
    }

    /// Blocks until every pool thread has exited (after `shutdown`).
    pub fn wait_exited(&self) {
        self.0.wait_exited()
    }

    pub fn metrics(&self) -> crate::BlockingMetrics {
        self.0.metrics()
    }
}
