//! Harness code shared by the `runtime` and `loop_api` benchmarks: how the runtimes under
//! comparison are built, the criterion settings, and runtime-agnostic completion signals
//! (each only stores and wakes a `Waker`, or sends on a std channel, so both runtimes pay
//! the same for "tell me when everything ran").
#![allow(dead_code)]

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::Duration;

use criterion::Criterion;

/// Worker threads of the multi-thread runtimes (aioloop and tokio alike).
pub const WORKERS: usize = 2;

/// [`WORKERS`], or `BENCH_WORKERS` from the environment (one worker each: the wall-clock
/// counterpart of `benches/instr_vs_tokio.sh`, without the cross-worker effects).
pub fn workers() -> usize {
    std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(WORKERS)
}

/// An aioloop runtime with [`workers()`] workers.
pub fn aioloop_runtime() -> aioloop::Runtime {
    aioloop::Runtime::builder()
        .workers(workers())
        .build()
        .expect("build aioloop runtime")
}

/// A multi-thread tokio runtime with [`workers()`] workers.
pub fn tokio_multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("build tokio runtime")
}

/// A current-thread tokio runtime.
pub fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio current-thread runtime")
}

/// Criterion with 20 samples and the given warm-up and measurement times.
pub fn criterion_config(warm_up: Duration, measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(warm_up)
        .measurement_time(measurement)
}

/// A thread-safe countdown shared by a set of tasks: the tick that reaches zero sends on
/// `done`.
pub struct Countdown {
    left: AtomicUsize,
    done: mpsc::SyncSender<()>,
}

impl Countdown {
    /// A countdown from `n`, and the receiver its last tick sends on.
    pub fn new(n: usize) -> (Arc<Countdown>, mpsc::Receiver<()>) {
        let (done, rx) = mpsc::sync_channel(1);
        let c = Countdown {
            left: AtomicUsize::new(n),
            done,
        };
        (Arc::new(c), rx)
    }

    /// Counts one down; the last one signals.
    pub fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.send(()).expect("bench thread is waiting");
        }
    }
}

/// A single-threaded countdown: the tick that reaches zero wakes whoever awaits `wait`.
pub struct LocalCountdown {
    left: Cell<usize>,
    waker: Cell<Option<Waker>>,
}

impl LocalCountdown {
    /// A countdown from `n`.
    pub fn new(n: usize) -> Rc<LocalCountdown> {
        Rc::new(LocalCountdown {
            left: Cell::new(n),
            waker: Cell::new(None),
        })
    }

    /// Counts one down; the last one wakes the waiter, if any.
    pub fn tick(&self) {
        let left = self.left.get() - 1;
        self.left.set(left);
        if left == 0 {
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    /// Whether the countdown reached zero.
    pub fn is_done(&self) -> bool {
        self.left.get() == 0
    }

    /// Completes once the countdown is zero.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.is_done() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
