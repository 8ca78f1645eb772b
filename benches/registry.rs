//! The task registry under listing load (issue 8, item 3): how long `all_tasks()` takes over
//! 100,000 live tasks, and how much a concurrent listing slows spawning.
//!
//! Not a criterion benchmark: a plain `main` (`harness = false`), because the measurements
//! are runs of a workload under different background loads, compared with each other.
//!
//! (a) **Listing.** 100,000 tasks are spawned and left pending; `all_tasks()` is timed
//!     `LIST_REPS` times (median and best printed). Its baseline, in the same run, is cloning
//!     a `Vec` of the same 100,000 `TaskRef`s: the floor for handing out one counted
//!     reference per task, so the ratio is what the registry's walk adds.
//! (b) **Spawning under listing.** One task spawns 100,000 tasks that each tick a countdown
//!     (the `spawn_many_local` shape, ten times larger: every spawn registers, every
//!     completion unregisters); the bench thread waits for zero. Three loads, interleaved
//!     round by round so that drift hits them alike, medians over `ROUNDS` rounds:
//!       - *alone*: nothing else runs (the baseline);
//!       - *one lister*: a thread calls `all_tasks()` and sleeps 1 ms, over and over (a
//!         monitor polling every millisecond; the mean listing time is printed, since a
//!         listing of the tasks alive at that moment is itself CPU the workers lose);
//!       - *two listers*: two threads call `all_tasks()` back to back. On a 2-core machine
//!         they take half the CPU from the two workers, so ~2x is the floor here.
//!     Ratios to *alone* are printed; the goals are ≤ 1.1 and ≤ 3.
//!
//! (c) **Listing under churn** (issue 9, item 9): (a)'s 100,000 pending tasks, while two
//!     threads outside the runtime keep spawning batches of short tasks and waiting for them
//!     (every one registers, runs on a worker and unregisters). `all_tasks()` is timed
//!     `LIST_REPS` times from the bench thread: median, 90th percentile and worst, against
//!     the goal of 5 ms; the churn rate is printed too, so a listing that starves the
//!     spawners shows. Beside the wall times, the lister's CPU time and context switches
//!     (voluntary: it blocked; involuntary: it was preempted, or yielded), which tell a slow
//!     walk from a preempted one. Run a second time (filter `churn-in-task`) with the
//!     listing in a task on the runtime, as asyncio code calls `all_tasks()`.
//!
//! tokio has no stable task listing (its task dump needs `tokio_unstable` and a
//! `current_thread` runtime), so there is no tokio column: the baseline is our own *alone*.
//!
//! Run with `CARGO_TARGET_DIR=... cargo bench --bench registry`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::{aioloop_runtime, Countdown};

/// Live tasks for (a), spawns per run for (b).
const N: usize = 100_000;
/// Timed `all_tasks()` calls in (a).
const LIST_REPS: usize = 30;
/// Rounds of (b) (each runs every load once), unless `REGISTRY_BENCH_ROUNDS` says otherwise:
/// on a shared machine, more rounds steady the medians.
const ROUNDS: usize = 11;

fn rounds() -> usize {
    std::env::var("REGISTRY_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Spawns `N` tasks that never finish, and waits until each has been polled once.
fn spawn_pending(rt: &aioloop::Runtime) -> Vec<aioloop::Task<()>> {
    let polled = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let polled = polled.clone();
            rt.spawn(async move {
                polled.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await
            })
        })
        .collect();
    while polled.load(Ordering::Relaxed) < N {
        thread::sleep(Duration::from_millis(1));
    }
    handles
}

/// (a): `all_tasks()` over `N` pending tasks, against cloning their `TaskRef`s.
fn listing() {
    let rt = aioloop_runtime();
    let handles = spawn_pending(&rt);
    let refs: Vec<_> = handles.iter().map(|h| h.task_ref()).collect();

    let mut list = Vec::with_capacity(LIST_REPS);
    let mut clone = Vec::with_capacity(LIST_REPS);
    for _ in 0..LIST_REPS {
        let t = Instant::now();
        let all = rt.all_tasks();
        list.push(t.elapsed());
        assert_eq!(all.len(), N);
        drop(all);

        let t = Instant::now();
        let copy = refs.clone();
        clone.push(t.elapsed());
        drop(copy);
    }
    if std::env::var_os("REGISTRY_BENCH_VERBOSE").is_some() {
        eprintln!(
            "all_tasks() times (ms): {:?}",
            list.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        );
    }
    let best_list = *list.iter().min().expect("reps");
    let (list, clone) = (median(&mut list), median(&mut clone));
    println!(
        "all_tasks() of {N}: median {:.2} ms (best {:.2} ms); clone of {N} TaskRefs: {:.2} ms; \
         ratio {:.2}",
        ms(list),
        ms(best_list),
        ms(clone),
        list.as_secs_f64() / clone.as_secs_f64()
    );
    drop((refs, handles));
}

/// Short tasks each churn thread spawns per batch in (c), before it waits for them.
const CHURN_BATCH: usize = 64;

/// Where (c) calls `all_tasks()` from.
#[derive(Clone, Copy)]
enum Lister {
    /// The bench thread, outside the runtime (`Runtime::all_tasks`).
    Thread,
    /// A task on the runtime (`aioloop::all_tasks()`), as asyncio code calls it: the
    /// listing then runs on a worker, beside the churn's tasks on the other one.
    Task,
}

/// Times `LIST_REPS` listings of at least `N` tasks with `list`, each with the calling
/// thread's CPU usage.
fn time_listings(list: impl Fn() -> Vec<aioloop::TaskRef>) -> Vec<(Duration, ThreadUsage)> {
    (0..LIST_REPS)
        .map(|_| {
            let u = ThreadUsage::now();
            let t = Instant::now();
            let all = list();
            let wall = t.elapsed();
            let used = ThreadUsage::now().since(&u);
            // The pending tasks, plus whichever short ones were alive at that moment.
            assert!(all.len() >= N);
            drop(all);
            (wall, used)
        })
        .collect()
}

/// (c): `all_tasks()` over `N` pending tasks while other threads spawn and complete tasks.
fn listing_under_churn(lister: Lister) {
    let rt = aioloop_runtime();
    let pending = spawn_pending(&rt);
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let (h, stop, churned) = (rt.handle().clone(), stop.clone(), churned.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (count, done) = Countdown::new(CHURN_BATCH);
                    for _ in 0..CHURN_BATCH {
                        let count = count.clone();
                        drop(h.spawn(async move { count.tick() }));
                    }
                    done.recv().expect("the batch completed");
                    churned.fetch_add(CHURN_BATCH, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while churned.load(Ordering::Relaxed) == 0 {
        thread::yield_now();
    }

    let (t0, c0) = (Instant::now(), churned.load(Ordering::Relaxed));
    let mut usage = match lister {
        Lister::Thread => time_listings(|| rt.all_tasks()),
        Lister::Task => rt
            .block_on(rt.spawn(async { time_listings(aioloop::all_tasks) }))
            .expect("the listing task"),
    };
    let rate = (churned.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.join().expect("churner");
    }
    let mut list: Vec<_> = usage.iter().map(|(wall, _)| *wall).collect();
    list.sort_unstable();
    let p90 = list[list.len() * 9 / 10];
    let worst = *list.last().expect("reps");
    let med = median(&mut list);
    let from = match lister {
        Lister::Thread => "from a thread",
        Lister::Task => "from a task",
    };
    println!(
        "all_tasks() of {N} under churn, {from}: median {:.2} ms, p90 {:.2} ms, worst {:.2} ms \
         (goal <= 5 ms); churn {:.0} tasks/s meanwhile",
        ms(med),
        ms(p90),
        ms(worst),
        rate
    );
    print_usage(&mut usage);
    drop(pending);
}

/// What the calling thread used of the CPU: its CPU time and its context switches, the
/// voluntary ones (it blocked) and the involuntary ones (it was preempted).
struct ThreadUsage {
    cpu: Duration,
    voluntary: i64,
    preempted: i64,
}

impl ThreadUsage {
    fn now() -> ThreadUsage {
        // SAFETY: both calls only write the zeroed structs handed to them, which outlive
        // the calls.
        unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            ThreadUsage {
                cpu: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                voluntary: ru.ru_nvcsw,
                preempted: ru.ru_nivcsw,
            }
        }
    }

    fn since(&self, before: &ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            cpu: self.cpu.saturating_sub(before.cpu),
            voluntary: self.voluntary - before.voluntary,
            preempted: self.preempted - before.preempted,
        }
    }
}

/// Where the listings' wall time went (issue 9, item 9): the lister's own CPU time against
/// the wall time, and its context switches, for the median listing and the slowest ones.
/// Wall time far above CPU time with involuntary switches is preemption; with voluntary
/// ones, blocking on a lock.
fn print_usage(usage: &mut [(Duration, ThreadUsage)]) {
    usage.sort_unstable_by_key(|(wall, _)| *wall);
    let cpu: Vec<_> = usage.iter().map(|(_, u)| u.cpu).collect();
    let mut sorted_cpu = cpu.clone();
    println!(
        "  lister CPU time: median {:.2} ms; context switches over all listings: {} voluntary, \
         {} involuntary",
        ms(median(&mut sorted_cpu)),
        usage.iter().map(|(_, u)| u.voluntary).sum::<i64>(),
        usage.iter().map(|(_, u)| u.preempted).sum::<i64>(),
    );
    for (wall, u) in usage.iter().rev().take(3) {
        println!(
            "  slow listing: wall {:.2} ms, CPU {:.2} ms, {} voluntary + {} involuntary switches",
            ms(*wall),
            ms(u.cpu),
            u.voluntary,
            u.preempted
        );
    }
}

/// What runs beside a spawn run in (b).
#[derive(Clone, Copy)]
enum Load {
    Alone,
    OneEveryMs,
    TwoBackToBack,
    /// Control: two threads that only burn CPU (what halving the workers' share costs).
    TwoSpinners,
}

/// Burns CPU for `d`.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One run of (b) under `load`: the time from the first spawn to the last completion, how
/// many listings ran meanwhile, and how long they took together.
fn spawn_run(rt: &aioloop::Runtime, load: Load) -> (Duration, usize, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let listings = Arc::new(AtomicUsize::new(0));
    let listing_ns = Arc::new(AtomicUsize::new(0));
    let listers: Vec<_> = match load {
        Load::Alone => vec![],
        Load::OneEveryMs => vec![(Some(true), rt.handle().clone())],
        Load::TwoBackToBack => vec![(Some(false), rt.handle().clone()); 2],
        Load::TwoSpinners => vec![(None, rt.handle().clone()); 2],
    }
    .into_iter()
    .map(|(paced, h)| {
        let (stop, listings, listing_ns) = (stop.clone(), listings.clone(), listing_ns.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match paced {
                    Some(_) => {
                        let t = Instant::now();
                        drop(h.all_tasks());
                        listing_ns.fetch_add(t.elapsed().as_nanos() as usize, Ordering::Relaxed);
                    }
                    None => spin(Duration::from_micros(100)),
                }
                listings.fetch_add(1, Ordering::Relaxed);
                if paced == Some(true) {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        })
    })
    .collect();
    // Let the listers get going before the clock starts.
    if !listers.is_empty() {
        while listings.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
    }

    let (count, rx) = Countdown::new(N);
    let before = listings.load(Ordering::Relaxed);
    let ns_before = listing_ns.load(Ordering::Relaxed);
    let t = Instant::now();
    drop(rt.spawn(async move {
        for _ in 0..N {
            let count = count.clone();
            drop(aioloop::create_task(async move { count.tick() }));
        }
    }));
    rx.recv().expect("countdown reached zero");
    let took = t.elapsed();
    let listed = listings.load(Ordering::Relaxed) - before;
    let listing = listing_ns.load(Ordering::Relaxed) - ns_before;

    stop.store(true, Ordering::Relaxed);
    for l in listers {
        l.join().expect("lister");
    }
    (took, listed, Duration::from_nanos(listing as u64))
}

/// (b): spawns alone, beside one paced lister, beside two back-to-back listers.
fn spawning() {
    let rt = aioloop_runtime();
    spawn_run(&rt, Load::Alone); // warm-up: registry and queues at their working size
    let loads = [
        Load::Alone,
        Load::OneEveryMs,
        Load::TwoBackToBack,
        Load::TwoSpinners,
    ];
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut listed = [0usize; 4];
    let mut listing = [Duration::ZERO; 4];
    let rounds = rounds();
    for _ in 0..rounds {
        for (i, &load) in loads.iter().enumerate() {
            let (took, n, d) = spawn_run(&rt, load);
            times[i].push(took);
            listed[i] += n;
            listing[i] += d;
        }
    }
    let [alone, one, two, spinners] = times.map(|mut v| median(&mut v));
    println!("{N} spawns+completions, median of {rounds}:");
    println!("  alone:                    {:8.2} ms", ms(alone));
    for (i, name, d) in [
        (1, "one lister, 1 ms apart", one),
        (2, "two listers back to back", two),
        (3, "control: two CPU burners", spinners),
    ] {
        print!(
            "  {name:<25}{:8.2} ms  ratio {:5.2}",
            ms(d),
            d.as_secs_f64() / alone.as_secs_f64(),
        );
        if !listing[i].is_zero() {
            print!(
                "  ({:.0} listings/run, {:.1} us each)",
                listed[i] as f64 / rounds as f64,
                listing[i].as_secs_f64() * 1e6 / listed[i] as f64
            );
        }
        println!();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter `listing` or `spawning` runs only that part.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |part: &str| filter.as_deref().is_none_or(|f| part.contains(f));
    if run("listing") {
        listing();
    }
    if run("spawning") {
        spawning();
    }
    if run("churn") {
        listing_under_churn(Lister::Thread);
    }
    if run("churn-in-task") {
        listing_under_churn(Lister::Task);
    }
}
