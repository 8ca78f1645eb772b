//! Pieces the models share: hand-written futures whose every poll, wake and drop is counted,
//! and a waker whose clones loom tracks (a leaked clone fails the model as "Arc leaked").

#![allow(dead_code)]

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use aioloop::loom_internals::TestRuntime;
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

/// Polls a join handle once with `waker`.
pub fn poll_join<T>(task: &mut Task<T>, waker: &Waker) -> Poll<Result<T, TaskError>> {
    Pin::new(task).poll(&mut Context::from_waker(waker))
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
/// runs the rest of the runtime's shutdown order (cancel, drain) and checks that nothing was
/// left queued.
pub fn join_and_finish(rt: &TestRuntime, workers: Vec<loom::thread::JoinHandle<()>>) {
    for w in workers {
        w.join().unwrap();
    }
    rt.finish();
    assert!(!rt.has_work(), "work left queued after shutdown");
}

/// The whole shutdown order from the model's thread: flag and unpark, join, cancel, drain.
pub fn shut_down(rt: &TestRuntime, workers: Vec<loom::thread::JoinHandle<()>>) {
    rt.begin_shutdown();
    join_and_finish(rt, workers);
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
