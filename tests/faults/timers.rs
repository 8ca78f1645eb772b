//! Unreachable deadlines (rule X6: a delay the clock cannot reach means "never", with no
//! overflow and no busy loop), and that such timers can still be cancelled.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aioloop::{sleep, sleep_until, timeout, Runtime, Timeout};

use crate::common::{guarded, new_loop, runtime, wait_until, NO_WAIT};
use crate::support::counted_callback;

/// The only worker slept through at least one park with the far timer as its earliest
/// deadline, woke when given work, and runs tasks.
fn assert_worker_parks_and_wakes(rt: &Runtime) {
    let parked = rt.worker_stats()[0].parked;
    // Gives the worker time to go to sleep (not an assertion: either way it must wake).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    wait_until("a park", || rt.worker_stats()[0].parked > parked);
}

/// Issue 8 item 6, probe "`Duration::MAX` timers": `sleep(Duration::MAX)` and
/// `timeout(Duration::MAX, ..)` in tasks on a runtime: no overflow panic, the worker
/// parks with that deadline and wakes for work, a timeout that never expires lets its
/// future finish, and both can be cancelled.
#[test]
fn duration_max_sleep_and_timeout_on_a_runtime() {
    guarded("Duration::MAX timers", || {
        let rt = runtime(1);
        let (tx, started) = mpsc::channel();
        let tx2 = tx.clone();
        let sleeper = rt.spawn(async move {
            tx.send(()).unwrap();
            sleep(Duration::MAX).await;
        });
        let guarded_sleep = rt.spawn(async move {
            tx2.send(()).unwrap();
            timeout(Duration::MAX, sleep(Duration::MAX)).await
        });
        started.recv().unwrap();
        started.recv().unwrap();
        assert_worker_parks_and_wakes(&rt);

        let quick = rt.block_on(rt.spawn(timeout(Duration::MAX, async { 5 })));
        assert_eq!(quick.unwrap(), Ok(5));
        assert_eq!(Timeout::after(Duration::MAX).when(), None, "never");

        assert!(!sleeper.done() && !guarded_sleep.done());
        sleeper.cancel(None);
        guarded_sleep.cancel(None);
        assert!(rt.block_on(sleeper).unwrap_err().is_cancelled());
        assert!(rt.block_on(guarded_sleep).unwrap_err().is_cancelled());
        assert_worker_parks_and_wakes(&rt);
    });
}

/// `sleep_until` an `Instant` far beyond the clock's range, and `sleep(Duration::MAX)` on
/// a `LocalLoop`: the loop reports no finite timeout, and cancelling ends them.
#[test]
fn far_deadlines_on_a_local_loop() {
    let lp = new_loop();
    let far = Instant::now()
        .checked_add(Duration::from_secs(1 << 40))
        .expect("representable");
    let a = lp.create_task(sleep(Duration::MAX)).unwrap();
    let b = lp.create_task(sleep_until(far)).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(!a.done() && !b.done());
    if let Some(t) = lp.next_timeout() {
        assert!(
            t > Duration::from_secs(1 << 30),
            "a far deadline came near: {t:?}"
        );
    }
    a.cancel(None);
    b.cancel(None);
    assert!(lp
        .run_until_complete(a)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
    assert!(lp
        .run_until_complete(b)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
}

/// `call_later` / `call_at` with huge and infinite delays (rule S2, X6), on a runtime and on
/// a `LocalLoop`: accepted without overflow, never run, and cancelling one drops its
/// closure exactly once.
#[test]
fn huge_call_later_delays_are_cancellable() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let delays = [f64::MAX, f64::INFINITY, 1e300, u64::MAX as f64];
    let (d, r) = (drops.clone(), ran.clone());
    guarded("huge call_later on a runtime", move || {
        let rt = runtime(1);
        let h = rt.handle();
        let mut timers = Vec::new();
        for delay in delays {
            timers.push(h.call_later(delay, counted_callback(&d, &r)).unwrap());
            timers.push(h.call_at(delay, counted_callback(&d, &r)).unwrap());
        }
        assert_worker_parks_and_wakes(&rt);
        for t in &timers {
            t.cancel();
            assert!(t.cancelled());
        }
        // The worker drops cancelled entries when they surface or at shutdown.
        drop(rt);
    });
    assert_eq!(drops.load(SeqCst), 2 * delays.len());

    let lp = new_loop();
    let mut timers = Vec::new();
    for delay in delays {
        timers.push(
            lp.call_later(delay, counted_callback(&drops, &ran))
                .unwrap(),
        );
    }
    lp.run_once(NO_WAIT).unwrap();
    for t in &timers {
        t.cancel();
    }
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(lp.next_timeout(), None, "cancelled timers are purged");
    drop(lp);
    assert_eq!(drops.load(SeqCst), 3 * delays.len());
    assert_eq!(ran.load(SeqCst), 0);
}

/// `Duration::MAX` through the other timer users — `wait_for_task`, `wait`, `interval`, and
/// a negative `call_later` of `-f64::MAX` (due at once, rule S2): no overflow, the waits
/// end when their tasks do, the interval's first tick is immediate and its second never
/// comes until cancelled.
#[test]
fn duration_max_in_combinators_and_interval() {
    guarded("Duration::MAX combinators", || {
        let rt = runtime(2);
        let r = rt.block_on(rt.spawn(async {
            let t = aioloop::create_task(async { 3 });
            let waited = aioloop::wait_for_task(t, Duration::MAX).await;
            let t = aioloop::create_task(async { 4 });
            let (done, pending) = aioloop::wait(
                vec![t],
                Some(Duration::MAX),
                aioloop::ReturnWhen::AllCompleted,
            )
            .await
            .unwrap();
            (waited, done.len(), pending.len())
        }));
        let (waited, done, pending) = r.unwrap();
        assert_eq!(waited.unwrap().unwrap(), 3);
        assert_eq!((done, pending), (1, 0));

        let (tx, ticked) = mpsc::channel();
        let ticker = rt.spawn(async move {
            let mut every = aioloop::interval(Duration::MAX);
            every.tick().await;
            tx.send(()).unwrap();
            every.tick().await;
        });
        ticked.recv().unwrap();
        assert!(!ticker.done());
        ticker.cancel(None);
        assert!(rt.block_on(ticker).unwrap_err().is_cancelled());

        let (tx, fired) = mpsc::channel();
        rt.handle()
            .call_later(-f64::MAX, move || tx.send(()).unwrap())
            .unwrap();
        fired.recv().unwrap();
    });
}
