//! Pieces the models share: hand-written futures whose every poll, wake and drop is counted,
//! and a waker whose clones loom tracks (a leaked clone fails the model as "Arc leaked").

#![allow(dead_code)]

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use aioloop::loom_internals::{TestRuntime, TestScheduler};
use aioloop::{Task, TaskError};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};

/// What a model's future shares with the model: a gate the model opens, the waker the
/// future left behind, and counters.
#[derive(Default)]
pub struct Probe {
    open: AtomicBool,
    slot: Mutex<Option<Waker>>,
    polls: AtomicUsize,
    futures_dropped: AtomicUsize,
    outputs_dropped: AtomicUsize,
}

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }

    /// Opens the gate: the next poll of a [`Gate`] completes.
    pub fn open(&self) {
        self.open.store(true, SeqCst);
    }

    /// Takes the waker the future stored, if any.
    pub fn take_waker(&self) -> Option<Waker> {
        self.slot.lock().unwrap().take()
    }

    /// A clone of the stored waker, if any (the future keeps its own).
    pub fn clone_waker(&self) -> Option<Waker> {
        self.slot.lock().unwrap().clone()
    }

    pub fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }
    pub fn futures_dropped(&self) -> usize {
        self.futures_dropped.load(SeqCst)
    }
    pub fn outputs_dropped(&self) -> usize {
        self.outputs_dropped.load(SeqCst)
    }

    /// Every future and every output made from this probe was dropped exactly once.
    pub fn assert_all_dropped_once(&self) {
        assert_eq!(self.futures_dropped(), 1, "future dropped != once");
        assert_eq!(self.outputs_dropped(), 1, "output dropped != once");
    }
}

/// From another thread: opens `probe`'s gate and wakes the future through the waker it
/// left, if it has polled yet (if not, its first poll finds the gate open).
pub fn spawn_opener(probe: &Arc<Probe>) -> loom::thread::JoinHandle<()> {
    let probe = probe.clone();
    loom::thread::spawn(move || {
        probe.open();
        if let Some(w) = probe.take_waker() {
            w.wake();
        }
    })
}

/// Spawns a [`Gate`] (closed) as task `id` on `sched` and polls it once: the task is idle
/// and pending, and its waker is with the returned probe.
pub fn spawn_pending(sched: &TestScheduler, id: u64, value: u32) -> (Arc<Probe>, Task<Output>) {
    let probe = Probe::new();
    let join = sched.spawn(id, Gate::new(&probe, value));
    assert!(sched.run_one(), "the new task was not queued");
    assert_eq!(probe.polls(), 1);
    (probe, join)
}

/// A task's output: counts its drop, so that a double drop or a leak of the output shows.
pub struct Output {
    probe: Arc<Probe>,
    pub value: u32,
}

impl Drop for Output {
    fn drop(&mut self) {
        self.probe.outputs_dropped.fetch_add(1, SeqCst);
    }
}

/// Completes once the probe's gate is open; until then leaves a clone of its waker in the
/// probe's slot (checking the gate under the slot's lock, so an opener that takes the
/// waker afterwards always finds the one to wake).
pub struct Gate {
    probe: Arc<Probe>,
    value: u32,
}

impl Gate {
    pub fn new(probe: &Arc<Probe>, value: u32) -> Gate {
        Gate {
            probe: probe.clone(),
            value,
        }
    }
}

impl Future for Gate {
    type Output = Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.probe.polls.fetch_add(1, SeqCst);
        let mut slot = self.probe.slot.lock().unwrap();
        if self.probe.open.load(SeqCst) {
            Poll::Ready(Output {
                probe: self.probe.clone(),
                value: self.value,
            })
        } else {
            *slot = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.probe.futures_dropped.fetch_add(1, SeqCst);
    }
}

/// First poll: leaves a clone of its waker in the probe, wakes itself by reference (asyncio's
/// `sleep(0)`) and returns `Pending`. Second poll: completes.
pub struct YieldOnce {
    probe: Arc<Probe>,
    yielded: bool,
}

impl YieldOnce {
    pub fn new(probe: &Arc<Probe>) -> YieldOnce {
        YieldOnce {
            probe: probe.clone(),
            yielded: false,
        }
    }
}

impl Future for YieldOnce {
    type Output = Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.probe.polls.fetch_add(1, SeqCst);
        if self.yielded {
            return Poll::Ready(Output {
                probe: self.probe.clone(),
                value: 1,
            });
        }
        self.yielded = true;
        *self.probe.slot.lock().unwrap() = Some(cx.waker().clone());
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for YieldOnce {
    fn drop(&mut self) {
        self.probe.futures_dropped.fetch_add(1, SeqCst);
    }
}

/// Yields once through `aioloop::yield_now` (in a built-in task's poll: the thread-local
/// yield of task/state.rs rule 7), leaving a clone of its waker in the probe, then
/// completes with 1.
pub struct YieldNowOnce {
    probe: Arc<Probe>,
    inner: aioloop::YieldNow,
}

impl YieldNowOnce {
    pub fn new(probe: &Arc<Probe>) -> YieldNowOnce {
        YieldNowOnce {
            probe: probe.clone(),
            inner: aioloop::yield_now(),
        }
    }
}

impl Future for YieldNowOnce {
    type Output = Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.probe.polls.fetch_add(1, SeqCst);
        *self.probe.slot.lock().unwrap() = Some(cx.waker().clone());
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Output {
                probe: self.probe.clone(),
                value: 1,
            }),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for YieldNowOnce {
    fn drop(&mut self) {
        self.probe.futures_dropped.fetch_add(1, SeqCst);
    }
}

/// Polls a join handle once with `waker`.
pub fn poll_join<T>(task: &mut Task<T>, waker: &Waker) -> Poll<Result<T, TaskError>> {
    Pin::new(task).poll(&mut Context::from_waker(waker))
}

/// For a task whose gate never opened and which must have ended cancelled (`pending`
/// describes the bug if it is still pending): its handle reads `Cancelled`; once the handle
/// and the waker its future may have left are dropped, the future was dropped exactly once
/// and no output was made.
pub fn assert_cancelled_and_released(mut task: Task<Output>, probe: &Probe, pending: &str) {
    let (_, w) = counting_waker();
    match poll_join(&mut task, &w) {
        Poll::Ready(Err(TaskError::Cancelled(_))) => {}
        Poll::Ready(Ok(_)) => panic!("the gate never opened"),
        Poll::Ready(Err(e)) => panic!("unexpected {e}"),
        Poll::Pending => panic!("{pending}"),
    }
    drop(task);
    // A poll that found the gate closed left a waker (a task reference) with the probe.
    drop(probe.take_waker());
    assert_eq!(probe.futures_dropped(), 1);
    assert_eq!(probe.outputs_dropped(), 0);
}

// ---- a counting waker tracked by loom ------------------------------------------------------

/// Counts wake-ups. Every waker clone holds a `loom::sync::Arc` to it, so a clone that is
/// never dropped fails the model with "Arc leaked".
#[derive(Default)]
pub struct WakeCounter {
    wakes: AtomicUsize,
}

impl WakeCounter {
    pub fn wakes(&self) -> usize {
        self.wakes.load(SeqCst)
    }
}

pub fn counting_waker() -> (Arc<WakeCounter>, Waker) {
    let counter = Arc::new(WakeCounter::default());
    let raw = RawWaker::new(
        Arc::into_raw(counter.clone()) as *const (),
        &COUNTING_VTABLE,
    );
    // SAFETY: the vtable below treats the data pointer as an owned `Arc<WakeCounter>`.
    (counter, unsafe { Waker::from_raw(raw) })
}

static COUNTING_VTABLE: RawWakerVTable =
    RawWakerVTable::new(cw_clone, cw_wake, cw_wake_by_ref, cw_drop);

unsafe fn cw_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` came from `Arc::into_raw` and the waker being cloned still owns it.
    let arc = ManuallyDrop::new(unsafe { Arc::from_raw(p as *const WakeCounter) });
    let clone: Arc<WakeCounter> = Arc::clone(&arc);
    RawWaker::new(Arc::into_raw(clone) as *const (), &COUNTING_VTABLE)
}

unsafe fn cw_wake(p: *const ()) {
    // SAFETY: as in `cw_clone`; `wake` consumes the waker's Arc.
    let arc = unsafe { Arc::from_raw(p as *const WakeCounter) };
    arc.wakes.fetch_add(1, SeqCst);
}

unsafe fn cw_wake_by_ref(p: *const ()) {
    // SAFETY: as in `cw_clone`.
    let arc = ManuallyDrop::new(unsafe { Arc::from_raw(p as *const WakeCounter) });
    arc.wakes.fetch_add(1, SeqCst);
}

unsafe fn cw_drop(p: *const ()) {
    // SAFETY: as in `cw_clone`; dropping the waker releases its Arc.
    drop(unsafe { Arc::from_raw(p as *const WakeCounter) });
}

// ---- a runtime whose workers run on loom threads ---------------------------------------------

/// Starts workers `0..n` of `rt`, each running the real worker loop on its own loom thread.
pub fn start_workers(rt: &Arc<TestRuntime>, n: usize) -> Vec<loom::thread::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let rt = rt.clone();
            loom::thread::spawn(move || rt.run_worker(i))
        })
        .collect()
}

/// Waits for the workers to leave their loops (after something set the shutdown flag), then
/// runs the rest of the runtime's shutdown order (cancel, drain).
pub fn join_and_drain(rt: &TestRuntime, workers: Vec<loom::thread::JoinHandle<()>>) {
    for w in workers {
        w.join().unwrap();
    }
    rt.finish();
}

/// [`join_and_drain`], then checks that nothing was left queued (for models whose every
/// other thread is done by then).
pub fn join_and_finish(rt: &TestRuntime, workers: Vec<loom::thread::JoinHandle<()>>) {
    join_and_drain(rt, workers);
    assert!(!rt.has_work(), "work left queued after shutdown");
}

/// The whole shutdown order from the model's thread: flag and unpark, join, cancel, drain.
pub fn shut_down(rt: &TestRuntime, workers: Vec<loom::thread::JoinHandle<()>>) {
    rt.begin_shutdown();
    join_and_drain(rt, workers);
}

/// `loom::model` for models that spawn through a runtime `Handle` (or register a loop's main
/// task), whose task ids come from the process-wide counter. The registry's loom double
/// places a task by its id — shard `id % 2`, home position `id / 2` modulo the shard's size
/// — so every execution must see the same ids modulo the largest size a model reaches, or
/// loom's replay diverges ("Is the model fully deterministic?"). Each execution starts at
/// an id that is a multiple of 64 (far above the few positions a model's shards grow to),
/// and models of this kind run one at a time (the counter is shared with the other tests of
/// the binary).
pub fn model_spawning(f: impl Fn() + Sync + Send + 'static) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    loom::model(move || {
        while aioloop::task::next_task_id() % 64 != 63 {}
        f()
    });
}

/// Counts its drops: moved into a callback or a future, it tells whether that closure or
/// future was released exactly once (run and dropped, or discarded).
pub struct DropCount(pub Arc<AtomicUsize>);

impl DropCount {
    pub fn new() -> (DropCount, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        (DropCount(n.clone()), n)
    }
}

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}
