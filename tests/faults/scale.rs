//! Scale faults: a million tasks, a hundred thousand tasks pending when the runtime goes, a
//! million cancellation requests on one task.

use std::future::pending;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aioloop::{create_task, Task, TaskRef};

use crate::alloc_count::net_bytes;
use crate::common::{guarded, new_loop, runtime, wait_until, Counted, NO_WAIT, TIMEOUT};
use crate::support::spawn_suspended;

/// Issue 8 item 6, probe "1M tasks spawned and awaited" (rules T2, L1): a million tasks
/// spawned from a task on a two-worker runtime, 10,000 alive at a time, each awaited; every
/// result is its own task's, and no task is left registered afterwards. (About 6 s in a
/// debug build; several times that under ASan, so the hang guard watches progress rather
/// than the total time.)
#[test]
fn million_tasks_spawned_and_awaited() {
    const TASKS: u64 = 1_000_000;
    const BATCH: u64 = 10_000;
    let rt = runtime(2);
    let awaited = Arc::new(AtomicU64::new(0));
    let progress = awaited.clone();
    let main = rt.spawn(async move {
        let mut sum = 0u64;
        for start in (0..TASKS).step_by(BATCH as usize) {
            let batch: Vec<Task<u64>> = (start..start + BATCH)
                .map(|i| create_task(async move { i * 3 }))
                .collect();
            for (i, t) in (start..).zip(batch) {
                let v = t.await.expect("a plain task succeeds");
                assert_eq!(v, i * 3, "task {i} returned another task's result");
                sum += v;
            }
            progress.store(start + BATCH, SeqCst);
        }
        sum
    });
    let (mut seen, mut since) = (0, Instant::now());
    while !main.done() {
        std::thread::sleep(Duration::from_millis(10));
        let now = awaited.load(SeqCst);
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
        assert!(since.elapsed() < TIMEOUT, "stuck after {seen} tasks");
    }
    let sum = rt.block_on(main).expect("the spawning task succeeds");
    assert_eq!(sum, 3 * (TASKS * (TASKS - 1) / 2));
    assert!(
        rt.all_tasks().is_empty(),
        "finished tasks stay registered (L1)"
    );
}

/// Every handle resolves to a cancellation (shutdown, ARCHITECTURE.md "Shutdown").
fn assert_all_cancelled(tasks: Vec<Task<()>>) {
    for mut t in tasks {
        let r = t.result().expect("done after the runtime is gone");
        assert!(r.expect_err("cancelled").is_cancelled());
    }
}

/// Issue 8 item 6, probe "100k pending tasks at runtime drop" (invariant 3, rule T11's
/// shutdown): 100,000 suspended tasks; dropping the runtime drops each future exactly once
/// (a double drop would count twice, and ASan would see it) and frees every task (LSan).
#[test]
fn suspended_tasks_dropped_exactly_once_at_runtime_drop() {
    const N: usize = 100_000;
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let tasks = guarded("100k suspended tasks at drop", move || {
        let rt = runtime(2);
        let tasks = spawn_suspended(&rt, N, &d);
        assert_eq!(d.load(SeqCst), 0);
        drop(rt);
        tasks
    });
    assert_eq!(drops.load(SeqCst), N);
    assert_all_cancelled(tasks);
    assert_eq!(drops.load(SeqCst), N, "a handle dropped a future again");
}

/// Issue 8 item 6, the same with tasks still queued, never polled (rule T4's outcome): the
/// only worker is held in a blocking task while 100,000 tasks queue behind it, and the
/// runtime is dropped then. Each future is dropped exactly once, none runs after the drop
/// began, every task is freed (LSan).
#[test]
fn queued_tasks_dropped_exactly_once_at_runtime_drop() {
    const N: usize = 100_000;
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (d, r) = (drops.clone(), ran.clone());
    let tasks = guarded("100k queued tasks at drop", move || {
        let rt = runtime(1);
        let (release, blocked) = mpsc::channel::<()>();
        let (entered, is_in) = mpsc::channel::<()>();
        let blocker = rt.spawn(async move {
            entered.send(()).unwrap();
            // Blocks the only worker on purpose, so that the tasks below stay queued.
            blocked.recv().unwrap();
        });
        is_in.recv().unwrap();
        let tasks: Vec<Task<()>> = (0..N)
            .map(|_| {
                let guard = Counted(d.clone());
                let r = r.clone();
                rt.spawn(async move {
                    let _guard = guard;
                    r.fetch_add(1, SeqCst);
                })
            })
            .collect();
        let h = rt.handle().clone();
        let dropper = std::thread::spawn(move || drop(rt));
        // A spawn is cancelled on the spot once the shutdown flag is set: wait for that,
        // then let the worker go; it leaves its loop after at most one batch.
        wait_until("the shutdown flag", || h.spawn(async {}).done());
        release.send(()).unwrap();
        dropper.join().expect("drop(Runtime) does not panic");
        drop(blocker);
        tasks
    });
    assert_eq!(drops.load(SeqCst), N);
    let ran = ran.load(SeqCst);
    assert!(ran < N, "the worker went on running after the drop began");
    let mut cancelled = 0;
    for mut t in tasks {
        match t.result().expect("done after the runtime is gone") {
            Ok(()) => {}
            Err(e) => {
                assert!(e.is_cancelled());
                cancelled += 1;
            }
        }
    }
    assert_eq!(cancelled, N - ran, "a task neither ran nor was cancelled");
    assert_eq!(drops.load(SeqCst), N, "a handle dropped a future again");
}

/// Issue 8 item 6, probe "1M cancels of one task" (rules T6, T7): a million `cancel` calls
/// on one suspended task all count (`cancelling() == 1_000_000`), keep no memory per call,
/// and the task then ends cancelled exactly once (one done callback, one outcome).
#[test]
fn million_cancels_of_one_task() {
    const CALLS: u32 = 1_000_000;
    let lp = new_loop();
    let t = lp.create_task(pending::<()>()).unwrap();
    lp.run_once(NO_WAIT).unwrap(); // first step: now suspended
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    t.add_done_callback(Arc::new(move |_: &TaskRef| {
        d.fetch_add(1, SeqCst);
    }));
    let r = t.task_ref();

    // Warm up whatever a first request allocates (the cancellation state, one message).
    assert!(t.cancel(Some("stop")));
    let before = net_bytes();
    for _ in 1..CALLS {
        assert!(t.cancel(Some("stop")));
    }
    let kept = net_bytes() - before;
    assert!(
        kept <= 1024,
        "{CALLS} cancels of one task kept {kept} bytes on this thread"
    );
    assert_eq!(t.cancelling(), CALLS);
    assert!(!t.done());

    let err = lp.run_until_complete(t).unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.to_string(), "CancelledError: stop");
    lp.run_once(NO_WAIT).unwrap(); // done callbacks run on a later iteration (F5)
    assert_eq!(done.load(SeqCst), 1);
    assert!(r.cancelled());
    assert!(!r.cancel(None), "a done task accepts no request");
    assert_eq!(done.load(SeqCst), 1);
}

/// The same on a runtime, racing the task's own completion: every `cancel` that returned
/// `true` was counted, the task ends cancelled once, and later calls return `false`.
#[test]
fn million_cancels_racing_completion_on_a_runtime() {
    const CALLS: u32 = 1_000_000;
    let (accepted, cancelling, callbacks, outcome) = guarded("1M cancels on a runtime", || {
        let rt = runtime(2);
        let (tx, started) = mpsc::channel();
        let t = rt.spawn(async move {
            tx.send(()).unwrap();
            pending::<()>().await
        });
        started.recv().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        t.add_done_callback(Arc::new(move |_: &TaskRef| {
            d.fetch_add(1, SeqCst);
        }));
        let accepted = (0..CALLS).filter(|_| t.cancel(None)).count() as u32;
        let cancelling = t.cancelling();
        let outcome = rt.block_on(t);
        wait_until("the done callback", || done.load(SeqCst) >= 1);
        // A second run of the callback would be queued right after the first.
        rt.block_on(rt.spawn(async {})).unwrap();
        (accepted, cancelling, done.load(SeqCst), outcome)
    });
    assert!(accepted >= 1);
    assert_eq!(cancelling, accepted, "an accepted request was not counted");
    assert_eq!(callbacks, 1);
    assert!(outcome.unwrap_err().is_cancelled());
}
