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

/// Interleaved measurement of one workload (the mode `benches/runtime.rs` documents):
/// `rounds` rounds, each timing one aioloop iteration and one tokio iteration back to back,
/// alternating which goes first, after `warm_up` untimed pairs. Prints one markdown row:
/// the median time of each side and the median (p25–p75) of the per-round ratio
/// aioloop/tokio. On a shared machine whose load changes from second to second this pairs
/// the two sides far more tightly than criterion's one-side-then-the-other sampling.
pub fn interleaved_pair(
    name: &str,
    rounds: usize,
    warm_up: usize,
    mut aio: impl FnMut(),
    mut tok: impl FnMut(),
) {
    let time = |f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    for _ in 0..warm_up {
        aio();
        tok();
    }
    let (mut a, mut t, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let (da, dt) = if i % 2 == 0 {
            let da = time(&mut aio);
            (da, time(&mut tok))
        } else {
            let dt = time(&mut tok);
            (time(&mut aio), dt)
        };
        a.push(da);
        t.push(dt);
        r.push(da / dt);
    }
    // Microseconds for short iterations, so that the medians keep their digits.
    let (scale, unit) = if quantile_unsorted(&a, 0.5) < 0.01 {
        (1e6, "µs")
    } else {
        (1e3, "ms")
    };
    println!("{}", summary_row(name, a, t, r, scale, unit));
}

/// The markdown row of an interleaved measurement: the median of the aioloop times `a` and
/// the tokio times `t` (seconds, shown times `scale` in `unit`), and the median (p25–p75)
/// of the per-round ratios `r`.
pub fn summary_row(
    name: &str,
    mut a: Vec<f64>,
    mut t: Vec<f64>,
    mut r: Vec<f64>,
    scale: f64,
    unit: &str,
) -> String {
    for v in [&mut a, &mut t, &mut r] {
        v.sort_by(f64::total_cmp);
    }
    let dp = if unit == "ms" { 2 } else { 0 };
    format!(
        "| {name} | {:.dp$} {unit} | {:.dp$} {unit} | {:.2}× ({:.2}–{:.2}) |",
        quantile(&a, 0.5) * scale,
        quantile(&t, 0.5) * scale,
        quantile(&r, 0.5),
        quantile(&r, 0.25),
        quantile(&r, 0.75)
    )
}

/// The `q` quantile of `v` (nearest rank), on a sorted copy.
fn quantile_unsorted(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    quantile(&v, q)
}

/// The `q` quantile of the sorted `v` (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The rounds asked for by the environment variable `var` (interleaved mode), if any.
pub fn rounds_from_env(var: &str) -> Option<usize> {
    std::env::var(var).ok().and_then(|r| r.parse().ok())
}
