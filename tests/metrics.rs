//! `Handle::metrics()` / `LocalLoop::metrics()` (rule O3): per-worker counters and the
//! runtime-wide task counts.

use std::future::pending;
use std::sync::mpsc;
use std::time::Duration;

/// O3: spawned/completed and polls are counted; live tasks are seen by state.
#[test]
fn runtime_counts_spawns_completions_and_polls() {
    let rt = aioloop::Runtime::builder().workers(2).build().unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|i| aioloop::create_task(async move { i }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let m = rt.handle().metrics();
    assert_eq!(m.spawned, 50);
    assert_eq!(m.completed, 50);
    assert_eq!(m.tasks.live(), 0);
    assert!(m.workers.iter().map(|w| w.polled).sum::<u64>() >= 50);
    assert_eq!(m.workers.len(), 2);
    assert_eq!(m.workers[1].index, 1);
}

/// O3: a task stuck on a future counts as waiting, not completed.
#[test]
fn a_pending_task_is_live_and_waiting() {
    let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let stuck = rt.spawn(async move {
        tx.send(()).unwrap();
        pending::<()>().await
    });
    rx.recv().unwrap();
    // The send happens inside the poll: wait for the poll to end.
    while rt.handle().metrics().tasks.running != 0 {
        std::thread::yield_now();
    }
    let m = rt.handle().metrics();
    assert_eq!(m.tasks.waiting, 1);
    assert_eq!((m.spawned, m.completed), (1, 0));
    stuck.cancel(None);
    assert!(rt.block_on(stuck).unwrap_err().is_cancelled());
    assert_eq!(rt.handle().metrics().completed, 1);
}

/// O3: a worker running the task itself sees it as running; a queued one is scheduled.
#[test]
fn running_and_scheduled_states() {
    let lp = aioloop::LocalLoop::new().unwrap();
    let lp_ref = &lp;
    let (running, scheduled) = lp
        .run_until_complete(async {
            let queued = aioloop::create_task(async {});
            let me = aioloop::create_task(async { 1 });
            let _ = me.await;
            queued.await.unwrap();
            let probe = aioloop::create_task(async {});
            let m = lp_ref.metrics();
            probe.await.unwrap();
            (m.tasks.running, m.tasks.scheduled)
        })
        .unwrap();
    // `run_until_complete`'s future is itself a running task (rule S6: asyncio wraps it in a
    // Task), so the probe sees one running task, and the queued probe as scheduled.
    assert_eq!((running, scheduled), (1, 1));
    let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    let probe_running = rt
        .block_on(rt.spawn(async { aioloop::Handle::current().metrics().tasks.running }))
        .unwrap();
    assert_eq!(probe_running, 1);
}

/// O3: timers fired and parks are counted on the loop that owns the timer.
#[test]
fn timers_fired_and_parks() {
    let lp = aioloop::LocalLoop::new().unwrap();
    // call_later callbacks, not sleeps: a sleep first polled after its deadline (a
    // preempted thread on a loaded machine) completes without the timer queue.
    let fired = std::rc::Rc::new(std::cell::Cell::new(0));
    for i in 1..=3 {
        let f = fired.clone();
        lp.call_later(0.001 * f64::from(i), move || f.set(f.get() + 1))
            .unwrap();
    }
    while fired.get() < 3 {
        lp.run_once(None).unwrap();
    }
    let w = lp.metrics().workers[0];
    assert!(w.timers_fired >= 3, "{w:?}");
    assert!(w.parked >= 1, "{w:?}");
    assert_eq!(w.lifo_hits, 0);
}

/// O3: with two workers and a burst of work on one, the other steals.
#[test]
fn idle_worker_steals() {
    let rt = aioloop::Runtime::builder().workers(2).build().unwrap();
    for _ in 0..20 {
        rt.block_on(rt.spawn(async {
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    aioloop::create_task(async {
                        std::thread::sleep(Duration::from_micros(20));
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }))
        .unwrap();
        let m = rt.handle().metrics();
        if m.workers.iter().any(|w| w.stolen > 0) {
            let w = m.workers.iter().find(|w| w.stolen > 0).unwrap();
            assert!(w.steal_operations >= 1 && w.steal_operations <= w.stolen);
            return;
        }
    }
    panic!("no steal in 20 bursts of 200 tasks");
}

/// O3: `worker_stats` (the older view) agrees with `metrics`.
#[test]
fn worker_stats_agrees_with_metrics() {
    let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(rt.spawn(async {})).unwrap();
    let before = rt.handle().metrics().workers[0].polled;
    let polled = rt.worker_stats()[0].polled;
    let after = rt.handle().metrics().workers[0].polled;
    assert!(before >= 1 && before <= polled && polled <= after);
}

/// O3: eager tasks (T9) and tasks spawned from outside the runtime are counted too.
#[test]
fn eager_and_remote_spawns_are_counted() {
    let rt = aioloop::Runtime::builder()
        .workers(1)
        .eager_tasks()
        .build()
        .unwrap();
    rt.block_on(rt.spawn(async {
        for _ in 0..3 {
            aioloop::create_task(async {}).await.unwrap();
        }
    }))
    .unwrap();
    let m = rt.handle().metrics();
    assert_eq!((m.spawned, m.completed), (4, 4));
    let lp = aioloop::LocalLoop::new().unwrap();
    let t = lp.create_task(async {}).unwrap(); // before the loop runs: via its inbox
    lp.run_until_complete(async move {
        t.await.unwrap();
        aioloop::create_task(async {}).await.unwrap(); // from inside the loop
    })
    .unwrap();
    assert_eq!((lp.metrics().spawned, lp.metrics().completed), (2, 2));
}
