//! Timeouts (rules X1, X2): ports of CPython's `test_timeouts` and `test_waitfor`, plus moving
//! the deadline, the misuse errors, the `cancelling()` level, a `LocalLoop` task and the
//! fallback outside a built-in task.
//!
//! Delays are short (`SHORT`) for deadlines meant to pass and very long (`LONG`) for those
//! that must not; no test asserts an upper bound on time (`guarded` only catches hangs).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aioloop::{
    catch_cancel, create_task, current_task, sleep, timeout, timeout_at, wait_for_task, yield_now,
    Timeout, TimeoutError, TimeoutStateError,
};

mod common;
use common::{guarded, new_loop, runtime, Counted, TIMEOUT};

/// A deadline meant to pass.
const SHORT: Duration = Duration::from_millis(10);
/// A deadline (or sleep) that must never be reached while the test runs.
const LONG: Duration = Duration::from_secs(3600);

/// Runs `body` as a built-in task on a 2-worker runtime and returns what it returned.
fn in_task<T, F>(body: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    guarded("the task body", move || {
        let rt = runtime(2);
        rt.block_on(rt.spawn(body))
            .expect("the task finished normally")
    })
}

/// Stores its value in its flag when dropped: Python's `finally: flag = value`.
struct StoreOnDrop(Arc<AtomicBool>, bool);

impl Drop for StoreOnDrop {
    fn drop(&mut self) {
        self.0.store(self.1, SeqCst);
    }
}

/// Checks a misuse error: its variant and asyncio's message.
#[track_caller]
fn assert_misuse(err: TimeoutStateError, expected: TimeoutStateError, message: &str) {
    assert_eq!(err, expected);
    assert_eq!(err.to_string(), message);
}

// rule X1 (test_timeout_basic): the deadline passes while the future waits: TimeoutError.
#[test]
fn timeout_basic() {
    let (r, expired) = in_task(async {
        let cm = Timeout::after(SHORT);
        let r = cm.run(sleep(LONG)).unwrap().await;
        (r, cm.expired())
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(expired);
}

// rule X1 (test_timeout_at_basic): the same with an absolute deadline, which `when()` reports.
#[test]
fn timeout_at_basic() {
    let deadline = Instant::now() + SHORT;
    let (r, expired, when) = in_task(async move {
        let cm = Timeout::at(deadline);
        let r = cm.run(sleep(LONG)).unwrap().await;
        (r, cm.expired(), cm.when())
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(expired);
    assert_eq!(when, Some(deadline));
    let short_form = in_task(async move { timeout_at(Instant::now() + SHORT, sleep(LONG)).await });
    assert_eq!(short_form, Err(TimeoutError));
}

// rule X1 (test_nested_timeouts): two scopes with the same deadline both expire; the inner one
// lets the cancellation through (a handler around it sees it), only the outermost converts.
#[test]
fn nested_timeouts() {
    let (r, cancelled, expired1, expired2) = in_task(async {
        let deadline = Instant::now() + SHORT;
        let cm1 = Timeout::at(deadline);
        let cm2 = Timeout::at(deadline);
        let cancelled = Arc::new(AtomicBool::new(false));
        let (c2, seen) = (cm2.clone(), cancelled.clone());
        let r = cm1
            .run(async move {
                match catch_cancel(c2.run(sleep(LONG)).unwrap()).await {
                    Ok(inner) => panic!("the inner scope finished: {inner:?}"),
                    Err(e) => {
                        seen.store(true, SeqCst);
                        e.reraise().await;
                    }
                }
            })
            .unwrap()
            .await;
        (r, cancelled.load(SeqCst), cm1.expired(), cm2.expired())
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(cancelled, "the inner scope propagated a cancellation");
    assert!(expired1);
    assert!(expired2);
}

// rule X1 (test_waiter_cancelled): the awaited operation sees the cancellation (and may clean
// up) before the scope turns it into TimeoutError.
#[test]
fn waiter_cancelled() {
    let (r, cancelled) = in_task(async {
        let cancelled = Arc::new(AtomicBool::new(false));
        let seen = cancelled.clone();
        let r = timeout(SHORT, async move {
            if let Err(e) = catch_cancel(sleep(LONG)).await {
                seen.store(true, SeqCst);
                yield_now().await; // async clean-up
                e.reraise().await;
            }
        })
        .await;
        (r, cancelled.load(SeqCst))
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(cancelled);
}

// rule X1 (test_foreign_cancel_doesnt_timeout_if_not_expired): a cancellation from elsewhere
// (here the task cancelling itself) propagates as a cancellation; the timeout did not expire.
#[test]
fn foreign_cancel_doesnt_timeout_if_not_expired() {
    let (res, expired) = guarded("foreign cancel", || {
        let rt = runtime(2);
        let cm = Timeout::after(LONG);
        let c = cm.clone();
        let t = rt.spawn(async move {
            c.run(async {
                current_task().unwrap().cancel(None);
                sleep(LONG).await;
            })
            .unwrap()
            .await
        });
        let res = rt.block_on(t);
        (res, cm.expired())
    });
    assert!(res.unwrap_err().is_cancelled(), "the task ended cancelled");
    assert!(!expired);
}

// rule X1 (test_outer_task_is_not_cancelled): after a timeout converted its own cancellation,
// the task finishes normally.
#[test]
fn outer_task_is_not_cancelled() {
    let (res, done, cancelled) = guarded("outer task", || {
        let rt = runtime(2);
        let t = rt.spawn(async { timeout(Duration::from_millis(1), sleep(LONG)).await });
        let r = t.task_ref();
        let res = rt.block_on(t);
        (res, r.done(), r.cancelled())
    });
    assert_eq!(res.unwrap(), Err(TimeoutError));
    assert!(done);
    assert!(!cancelled);
}

// rule X1 (test_timeout_after_cancellation): a task that caught a cancellation without
// uncancelling (`cancelling() == 1`) still gets TimeoutError from a timeout in its clean-up.
#[test]
fn timeout_after_cancellation() {
    let (caught, r, level) = in_task(async {
        let me = current_task().unwrap();
        me.cancel(None);
        // Work which will be cancelled; `except CancelledError: pass`.
        let caught = catch_cancel(sleep(Duration::from_secs(1))).await.is_err();
        // Some clean-up, under a timeout.
        let r = timeout(Duration::ZERO, sleep(Duration::from_secs(1))).await;
        let level = me.cancelling();
        (caught, r, level)
    });
    assert!(caught);
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(level, 1, "the timeout left the earlier request counted");
}

// rule X1 (test_cancel_in_timeout_after_cancellation): in the same situation, a new
// cancellation inside an unexpired timeout propagates as a cancellation.
#[test]
fn cancel_in_timeout_after_cancellation() {
    let (r, level) = in_task(async {
        let me = current_task().unwrap();
        me.cancel(None);
        assert!(catch_cancel(sleep(Duration::from_secs(1))).await.is_err());
        let r = catch_cancel(timeout(Duration::from_secs(1), async {
            current_task().unwrap().cancel(None);
            sleep(Duration::from_secs(2)).await;
        }))
        .await;
        let level = me.cancelling();
        while me.uncancel() > 0 {}
        (r.map_err(|e| e.to_string()), level)
    });
    assert_eq!(r, Err("CancelledError".to_owned()));
    assert_eq!(level, 2);
}

// rule X1: `cancelling()` is back at its entry level after a scope, expired or not (the
// timeout counterpart of test_taskgroups' cancelling_level_preserved).
#[test]
fn cancelling_level_preserved() {
    let (expired, l1, fine, l2) = in_task(async {
        let me = current_task().unwrap();
        me.cancel(None);
        assert!(catch_cancel(sleep(LONG)).await.is_err());
        assert_eq!(me.cancelling(), 1);
        let expired = timeout(SHORT, sleep(LONG)).await;
        let l1 = me.cancelling();
        let fine = timeout(LONG, yield_now()).await;
        let l2 = me.cancelling();
        me.uncancel();
        (expired, l1, fine, l2)
    });
    assert_eq!(expired, Err(TimeoutError));
    assert_eq!(l1, 1);
    assert_eq!(fine, Ok(()));
    assert_eq!(l2, 1);
}

// rule X1: a future that never waits for anything but keeps yielding (the task is always
// woken again) still times out; so does one that yields once and then waits.
#[test]
fn timeout_busy_and_yield_then_wait() {
    let (busy, yield_then_wait) = in_task(async {
        let busy = timeout(SHORT, async {
            loop {
                yield_now().await;
            }
        })
        .await;
        let yield_then_wait = timeout(SHORT, async {
            yield_now().await;
            sleep(LONG).await;
        })
        .await;
        (busy, yield_then_wait)
    });
    assert_eq!(busy, Err(TimeoutError));
    assert_eq!(yield_then_wait, Err(TimeoutError));
}

// rule X1 (test_reschedule): another thread moves the deadline while the scope waits (later,
// then to never); the task is then cancelled: a cancellation, and the timeout never expired.
#[test]
fn reschedule() {
    let (res, whens, expired) = guarded("reschedule", || {
        let rt = runtime(2);
        let deadline1 = Instant::now() + LONG;
        let deadline2 = deadline1 + Duration::from_secs(20);
        let cm = Timeout::at(deadline1);
        let (entered_tx, entered) = mpsc::channel();
        let c = cm.clone();
        let t = rt.spawn(async move {
            c.run(async move {
                entered_tx.send(()).unwrap();
                sleep(LONG).await;
            })
            .unwrap()
            .await
        });
        entered.recv_timeout(TIMEOUT).unwrap();
        let mut whens = vec![cm.when() == Some(deadline1)];
        cm.reschedule(Some(deadline2)).unwrap();
        whens.push(cm.when() == Some(deadline2));
        cm.reschedule(None).unwrap();
        whens.push(cm.when().is_none());
        t.cancel(None);
        (rt.block_on(t), whens, cm.expired())
    });
    assert!(res.unwrap_err().is_cancelled());
    assert_eq!(whens, [true, true, true]);
    assert!(!expired);
}

// rule X1: moving the deadline earlier from inside the scope makes it expire then.
#[test]
fn reschedule_earlier() {
    let (r, expired, elapsed) = in_task(async {
        let t0 = Instant::now();
        let cm = Timeout::after(LONG);
        let h = cm.clone();
        let r = cm
            .run(async move {
                yield_now().await; // the scope has armed its timer for the first deadline
                h.reschedule(Some(Instant::now() + SHORT)).unwrap();
                sleep(LONG).await;
            })
            .unwrap()
            .await;
        (r, cm.expired(), t0.elapsed())
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(expired);
    assert!(elapsed >= SHORT);
}

// rule X1: moving the deadline later from inside the scope lets the future finish.
#[test]
fn reschedule_later() {
    let (r, expired) = in_task(async {
        let cm = Timeout::after(SHORT);
        let h = cm.clone();
        let r = cm
            .run(async move {
                h.reschedule(Some(Instant::now() + LONG)).unwrap();
                sleep(SHORT * 3).await;
                5
            })
            .unwrap()
            .await;
        (r, cm.expired())
    });
    assert_eq!(r, Ok(5));
    assert!(!expired);
}

// rule X1: a deadline moved into the past expires the scope at once; one set on a timeout
// created without a deadline (`asyncio.timeout(None)`) works too.
#[test]
fn reschedule_into_the_past() {
    let (r, r_never) = in_task(async {
        let cm = Timeout::after(LONG);
        let h = cm.clone();
        let r = cm
            .run(async move {
                yield_now().await;
                h.reschedule(Some(Instant::now())).unwrap();
                sleep(LONG).await;
            })
            .unwrap()
            .await;
        let never = Timeout::never();
        let h = never.clone();
        let r_never = never
            .run(async move {
                sleep(Duration::from_millis(1)).await;
                h.reschedule(Some(Instant::now())).unwrap();
                sleep(LONG).await;
            })
            .unwrap()
            .await;
        (r, r_never)
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(r_never, Err(TimeoutError));
}

// rule X1: moving the deadline once it passed is an error, while the scope unwinds
// ("expiring") and after it ("expired").
#[test]
fn reschedule_after_expiry_error() {
    let (during, after) = in_task(async {
        let cm = Timeout::after(SHORT);
        let h = cm.clone();
        let during = cm
            .run(async move {
                // The expiry's cancellation, caught and suppressed inside the scope: the scope
                // then ends normally (asyncio's behaviour when the block swallows it).
                assert!(catch_cancel(sleep(LONG)).await.is_err());
                h.reschedule(None)
            })
            .unwrap()
            .await;
        (during, cm.reschedule(None))
    });
    assert_misuse(
        during.expect("the body finished").unwrap_err(),
        TimeoutStateError::Expiring,
        "Cannot change state of expiring Timeout",
    );
    assert_misuse(
        after.unwrap_err(),
        TimeoutStateError::Expired,
        "Cannot change state of expired Timeout",
    );
}

// rule X1 (test_timeout_finished): moving the deadline after the scope ended is an error.
#[test]
fn timeout_finished() {
    let err = in_task(async {
        let cm = Timeout::after(LONG);
        cm.run(yield_now()).unwrap().await.unwrap();
        cm.reschedule(Some(Instant::now() + LONG))
    })
    .unwrap_err();
    assert_misuse(
        err,
        TimeoutStateError::Finished,
        "Cannot change state of finished Timeout",
    );
}

// rule X1 (test_timeout_not_entered): moving the deadline before entering is an error.
#[test]
fn timeout_not_entered() {
    let cm = Timeout::after(SHORT);
    let err = cm.reschedule(Some(Instant::now() + LONG)).unwrap_err();
    assert_misuse(
        err,
        TimeoutStateError::NotEntered,
        "Timeout has not been entered",
    );
}

// rule X1 (test_timeout_already_entered): entering a timeout again inside its scope fails.
#[test]
fn timeout_already_entered() {
    let r = in_task(async {
        let cm = Timeout::after(LONG);
        let c = cm.clone();
        cm.run(async move { c.run(async {}).map(drop) })
            .unwrap()
            .await
    });
    let err = r.unwrap().unwrap_err();
    assert_misuse(
        err,
        TimeoutStateError::AlreadyEntered,
        "Timeout has already been entered",
    );
}

// rule X1 (test_timeout_double_enter): entering it again after its scope ended fails too.
#[test]
fn timeout_double_enter() {
    let second = in_task(async {
        let cm = Timeout::after(LONG);
        cm.run(async {}).unwrap().await.unwrap();
        cm.run(async {}).map(drop)
    });
    assert_eq!(second, Err(TimeoutStateError::AlreadyEntered));
}

// rule X1 in a LocalLoop task: `!Send` state, the loop's own timer heap.
#[test]
fn timeout_in_local_loop_task() {
    let (slow, fast, level) = guarded("LocalLoop", || {
        let lp = new_loop();
        let state = Rc::new(Cell::new(0));
        let s = state.clone();
        let t = lp
            .create_task(async move {
                let slow = timeout(SHORT, async {
                    s.set(1);
                    sleep(LONG).await;
                    s.set(2);
                })
                .await;
                let fast = timeout(LONG, async {
                    sleep(Duration::from_millis(1)).await;
                    s.get()
                })
                .await;
                (slow, fast, current_task().unwrap().cancelling())
            })
            .unwrap();
        lp.run_until_complete(t).unwrap().unwrap()
    });
    assert_eq!(slow, Err(TimeoutError));
    assert_eq!(fast, Ok(1));
    assert_eq!(level, 0);
}

// rule X1 directly in `block_on` (and `run_until_complete`): their future runs as a built-in
// main task (issue 10 item 8, as asyncio wraps it in a Task), so the timeout cancels it through
// the request protocol as in any task: the future is cancelled (dropped) at the deadline and
// the scope gives TimeoutError.
#[test]
fn timeout_in_block_on_drops_the_future() {
    let (r, drops, ready, local) = guarded("block_on fallback", || {
        let rt = runtime(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let r = rt.block_on(timeout(SHORT, async move {
            let _c = Counted(d);
            sleep(LONG).await;
        }));
        let ready = rt.block_on(timeout(Duration::ZERO, async { 3 }));
        let lp = new_loop();
        let local = lp.run_until_complete(timeout(SHORT, sleep(LONG))).unwrap();
        (r, drops.load(SeqCst), ready, local)
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(drops, 1, "the future was dropped");
    assert_eq!(ready, Ok(3), "a future ready at once wins");
    assert_eq!(local, Err(TimeoutError));
}

// rule X2 (test_wait_for_blocking): a future that finishes in time gives its output.
#[test]
fn wait_for_blocking() {
    let (a, b) = in_task(async {
        let a = aioloop::wait_for(async { "done" }, LONG).await;
        let b = aioloop::wait_for(
            async {
                sleep(Duration::from_millis(1)).await;
                7
            },
            LONG,
        )
        .await;
        (a, b)
    });
    assert_eq!(a, Ok("done"));
    assert_eq!(b, Ok(7));
}

/// A task that records that it started, then sleeps forever; its `finally:` clears `running`.
fn sleeping_task(running: &Arc<AtomicBool>) -> aioloop::Task<&'static str> {
    let running = running.clone();
    create_task(async move {
        running.store(true, SeqCst);
        let _finally = StoreOnDrop(running, false);
        sleep(LONG).await;
        "done"
    })
}

// rule X2 (test_wait_for): a task that outlives the delay is cancelled and waited for (its
// `finally` ran), then TimeoutError.
#[test]
fn wait_for() {
    let (r, cancelled, running) = in_task(async {
        let running = Arc::new(AtomicBool::new(false));
        let foo = sleeping_task(&running);
        let foo_ref = foo.task_ref();
        let r = wait_for_task(foo, SHORT).await;
        (
            r,
            foo_ref.done() && foo_ref.cancelled(),
            running.load(SeqCst),
        )
    });
    assert_eq!(r.unwrap_err(), TimeoutError);
    assert!(cancelled, "the task was cancelled, and had finished");
    assert!(!running);
}

// rule X2 (test_wait_for_timeout_less_then_0_or_0_future_done): a zero delay on something
// already done gives its result.
#[test]
fn wait_for_timeout_less_then_0_or_0_future_done() {
    let (task, ready) = in_task(async {
        let t = create_task(async { "done" });
        while !t.done() {
            yield_now().await;
        }
        let task = wait_for_task(t, Duration::ZERO).await;
        let ready = aioloop::wait_for(std::future::ready("done"), Duration::ZERO).await;
        (task.map(|r| r.unwrap()), ready)
    });
    assert_eq!(task, Ok("done"));
    assert_eq!(ready, Ok("done"));
}

// rule X2 (test_wait_for_timeout_less_then_0_or_0): a zero delay on a started task that is not
// done cancels it, waits for it, and gives TimeoutError.
#[test]
fn wait_for_timeout_less_then_0_or_0() {
    let (r, cancelled, running) = in_task(async {
        let running = Arc::new(AtomicBool::new(false));
        let foo = sleeping_task(&running);
        while !running.load(SeqCst) {
            yield_now().await;
        }
        let foo_ref = foo.task_ref();
        let r = wait_for_task(foo, Duration::ZERO).await;
        (
            r,
            foo_ref.done() && foo_ref.cancelled(),
            running.load(SeqCst),
        )
    });
    assert_eq!(r.unwrap_err(), TimeoutError);
    assert!(cancelled);
    assert!(!running);
}

// rule X2, divergence (test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started):
// asyncio never starts a coroutine given a zero timeout; a Rust future can only be asked
// whether it is done by polling it, so it runs to its first suspension, and is then cancelled
// (dropped).
#[test]
fn wait_for_timeout_zero_pending_future() {
    let (r, started, drops) = in_task(async {
        let started = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, d) = (started.clone(), drops.clone());
        let r = aioloop::wait_for(
            async move {
                s.store(true, SeqCst);
                let _c = Counted(d);
                sleep(LONG).await;
            },
            Duration::ZERO,
        )
        .await;
        (r, started.load(SeqCst), drops.load(SeqCst))
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(started);
    assert_eq!(drops, 1);
}

/// A task that, when cancelled, cleans up asynchronously and re-raises; `done` is set when it
/// has finished (its `finally:`).
fn slow_to_cancel(done: &Arc<AtomicBool>) -> aioloop::Task<()> {
    let done = done.clone();
    create_task(async move {
        let _finally = StoreOnDrop(done, true);
        if let Err(e) = catch_cancel(sleep(LONG)).await {
            sleep(Duration::from_millis(1)).await;
            e.reraise().await;
        }
    })
}

/// Runs `wait_for_task(slow_to_cancel, delay)` (after letting the task start, if
/// `let_it_start`) and checks that it gave TimeoutError only once the task had finished.
fn assert_waits_for_task_cancellation(delay: Duration, let_it_start: bool) {
    let (r, task_done) = in_task(async move {
        let done = Arc::new(AtomicBool::new(false));
        let inner = slow_to_cancel(&done);
        if let_it_start {
            sleep(Duration::from_millis(1)).await;
        }
        let r = wait_for_task(inner, delay).await;
        (r, done.load(SeqCst))
    });
    assert_eq!(r.unwrap_err(), TimeoutError);
    assert!(task_done, "the task had finished its clean-up");
}

// rule X2 (test_wait_for_waits_for_task_cancellation): wait_for returns only after the
// cancelled task has finished its clean-up.
#[test]
fn wait_for_waits_for_task_cancellation() {
    assert_waits_for_task_cancellation(Duration::from_millis(1), false);
}

// rule X2 (test_wait_for_waits_for_task_cancellation_w_timeout_0): the same with a zero delay.
#[test]
fn wait_for_waits_for_task_cancellation_w_timeout_0() {
    assert_waits_for_task_cancellation(Duration::ZERO, true);
}

// rule X2 (test_wait_for_cancel_suppressed): a future that catches the cancellation and
// returns a value gives that value; the task is not left cancelled.
#[test]
fn wait_for_cancel_suppressed() {
    let (r, level) = in_task(async {
        let r = aioloop::wait_for(
            async {
                match catch_cancel(sleep(LONG)).await {
                    Ok(()) => 0,
                    Err(_) => 42,
                }
            },
            SHORT,
        )
        .await;
        (r, current_task().unwrap().cancelling())
    });
    assert_eq!(r, Ok(42));
    assert_eq!(level, 0);
}

// rule X2: a task that suppresses the cancellation (and uncancels, rule T6) and returns a
// value: wait_for_task gives that value.
#[test]
fn wait_for_task_cancel_suppressed() {
    let r = in_task(async {
        let t = create_task(async {
            match catch_cancel(sleep(LONG)).await {
                Ok(()) => 0,
                Err(_) => {
                    current_task().unwrap().uncancel();
                    42
                }
            }
        });
        wait_for_task(t, SHORT).await
    });
    assert_eq!(r.unwrap().unwrap(), 42);
}

// rule X2 in `block_on`'s main task (a built-in task since issue 10 item 8): the timeout
// cancels the main task, which passes the request on to the awaited task (T3), and waits
// for it.
#[test]
fn wait_for_task_in_block_on() {
    let (r, cancelled, running) = guarded("wait_for_task in block_on", || {
        let rt = runtime(2);
        let running = Arc::new(AtomicBool::new(false));
        rt.block_on(async {
            let foo = sleeping_task(&running);
            let foo_ref = foo.task_ref();
            let r = wait_for_task(foo, SHORT).await;
            (
                r,
                foo_ref.done() && foo_ref.cancelled(),
                running.load(SeqCst),
            )
        })
    });
    assert!(matches!(r, Err(TimeoutError)));
    assert!(cancelled);
    assert!(!running);
}
