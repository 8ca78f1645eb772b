//! Heap bytes per pending task: aioloop against tokio's multi-threaded runtime.
//!
//! Not a criterion benchmark: a plain `main` (`harness = false`) that counts live heap
//! bytes with a `#[global_allocator]` wrapped around `std::alloc::System`.
//!
//! For each runtime (two workers) it:
//! 1. builds the runtime and warms it up (a few tasks spawned and finished, so that lazily
//!    created process-wide state such as aioloop's task registry already exists),
//! 2. allocates the `Vec` that will hold the join handles (so that it is NOT counted: both
//!    runtimes' handles are kept alive in it, and its size is printed separately),
//! 3. reads the live byte count,
//! 4. spawns `N` tasks from the main thread (outside the runtime), each of which increments
//!    a counter and then awaits `std::future::pending::<()>()`,
//! 5. waits until the counter reaches `N` (every task has been polled once and is now
//!    parked forever) and a little longer for the workers to go idle,
//! 6. reads the live byte count again: (after - before) / N is the cost of one pending task.
//!    That includes everything the runtime keeps on the heap for it: the task allocation
//!    (header + future + output slot) and, for aioloop, its entry in the process-wide
//!    task registry (a sharded slab, one word per task), which holds every unfinished task.
//!
//! It then drops the handles and the runtime and prints what is still live, relative to
//! the moment before the runtime was built (memory kept after it is gone, e.g. a registry
//! that does not shrink). aioloop is measured a second time at the end, with the registry
//! already grown, which separates its share from the task allocation itself.
//!
//! Run with `cargo bench -p aioloop-benches --bench memory`.

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Number of pending tasks per runtime.
const N: usize = 100_000;
/// Worker threads of both runtimes.
const WORKERS: usize = 2;

#[path = "../tests/common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Tally};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// Live heap bytes, process-wide, and their peak.
struct Live;

impl Tally for Live {
    fn add(delta: isize) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        if delta > 0 {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Counting<Live> = Counting::new();

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Waits until `polled` reaches `N`, then lets the workers settle. Reports progress every
/// ten seconds if that takes unexpectedly long (it never gives up: a hang is a finding).
fn wait_all_polled(polled: &AtomicUsize) {
    let mut last_report = Instant::now();
    while polled.load(Ordering::Acquire) < N {
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "still waiting: {} of {N} tasks polled",
                polled.load(Ordering::Relaxed)
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
}

struct Measured {
    name: &'static str,
    per_task: f64,
    handle_size: usize,
    peak_over_base: isize,
    retained_after_drop: isize,
}

fn report(m: &Measured) {
    println!(
        "{}: {:.1} B/task\n    peak {:.1} B/task over baseline; join handle {} B each, kept \
         in a pre-allocated Vec, not counted;\n    still live after dropping handles and \
         runtime, relative to before building it: {} B",
        m.name,
        m.per_task,
        m.peak_over_base as f64 / N as f64,
        m.handle_size,
        m.retained_after_drop,
    );
}

/// Spawns `N` tasks through `spawn` (each must count itself in the counter it is given,
/// then stay pending), waits until all have been polled once, and returns the handles, the
/// counter, and the live bytes before and after plus the peak. The caller drops the handles
/// and its runtime afterwards, in that order.
fn spawn_pending<H>(
    mut spawn: impl FnMut(Arc<AtomicUsize>) -> H,
) -> (Vec<H>, Arc<AtomicUsize>, isize, isize, isize) {
    let polled = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(N);
    std::thread::sleep(Duration::from_millis(100));
    let base = live();
    PEAK.store(base, Ordering::SeqCst);
    for _ in 0..N {
        handles.push(spawn(polled.clone()));
    }
    wait_all_polled(&polled);
    let after = live();
    let peak = PEAK.load(Ordering::SeqCst);
    (handles, polled, base, after, peak)
}

fn measure_aioloop(name: &'static str) -> Measured {
    let before_runtime = live();
    let rt = aioloop::Runtime::builder()
        .workers(WORKERS)
        .build()
        .expect("build aioloop runtime");
    // Warm-up: registry, thread-locals, queues.
    rt.block_on(async {
        for _ in 0..64 {
            aioloop::create_task(async { aioloop::yield_now().await })
                .await
                .expect("warm-up task");
        }
    });
    let (handles, polled, base, after, peak) = spawn_pending(|polled| {
        rt.spawn(async move {
            polled.fetch_add(1, Ordering::Release);
            std::future::pending::<()>().await
        })
    });
    drop(handles);
    drop(rt);
    drop(polled);
    Measured {
        name,
        per_task: (after - base) as f64 / N as f64,
        handle_size: std::mem::size_of::<aioloop::Task<()>>(),
        peak_over_base: peak - base,
        retained_after_drop: live() - before_runtime,
    }
}

fn measure_tokio() -> Measured {
    let before_runtime = live();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    rt.block_on(async {
        for _ in 0..64 {
            tokio::spawn(async { tokio::task::yield_now().await })
                .await
                .expect("warm-up task");
        }
    });
    let (handles, polled, base, after, peak) = spawn_pending(|polled| {
        rt.spawn(async move {
            polled.fetch_add(1, Ordering::Release);
            std::future::pending::<()>().await
        })
    });
    drop(handles);
    drop(rt);
    drop(polled);
    Measured {
        name: "tokio",
        per_task: (after - base) as f64 / N as f64,
        handle_size: std::mem::size_of::<tokio::task::JoinHandle<()>>(),
        peak_over_base: peak - base,
        retained_after_drop: live() - before_runtime,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` (which runs every bench once, as a test)
    // passes nothing: then one round each and a one-line summary.
    let measuring = std::env::args().any(|a| a == "--bench");
    if !measuring {
        let (a, t) = (measure_aioloop("aioloop"), measure_tokio());
        println!(
            "memory (test mode): {:.1} B per pending task (aioloop), {:.1} B (tokio); \
             cargo bench -p aioloop-benches --bench memory for the full report",
            a.per_task, t.per_task
        );
        return;
    }
    println!("heap bytes per pending task, {N} tasks, {WORKERS} workers each:");
    let a = measure_aioloop("aioloop");
    report(&a);
    let t = measure_tokio();
    report(&t);
    println!("ratio aioloop/tokio: {:.2}", a.per_task / t.per_task);
    // A second aioloop runtime in the same process finds the process-wide registry already
    // grown to N entries' worth of buckets: what it costs per task is the task allocation
    // alone, and the difference to the first round is the registry's share.
    let again = measure_aioloop("aioloop (2nd runtime, registry already grown)");
    report(&again);
}
