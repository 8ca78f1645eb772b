//! Combinators (rules X3–X5): ports of CPython's `test_tasks` wait/shield/gather tests and
//! `test_futures`' gather tests, plus `as_completed`, the empty cases and tuple gathers.
//!
//! Mapping notes: CPython's bare futures become tasks waiting on a oneshot channel (set the
//! result = send), `set_exception` a panic, and `fut.cancel()` a task that cancels itself.
//! Order-sensitive tests step a `LocalLoop`; the others use a two-worker runtime.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aioloop::{
    as_completed, catch_cancel, create_task, current_task, gather, gather2, gather3, shield, sleep,
    wait, yield_now, EmptyWaitError, ExceptionContext, LocalLoop, ReturnWhen, Task, TaskError,
    TaskRef,
};
use futures_channel::oneshot;

mod common;
use common::{guarded, new_loop, poll_once, runtime, wait_until, NO_WAIT};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs `fut` on a fresh two-worker runtime (in `block_on`), on a guarded thread.
fn on_runtime<T, F>(what: &str, fut: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    guarded(what, move || runtime(2).block_on(fut))
}

/// A task that sleeps `d` and returns `v`.
fn sleeper(d: Duration, v: i32) -> Task<i32> {
    create_task(async move {
        sleep(d).await;
        v
    })
}

/// CPython's pending future: resolves to the value sent, panics with "exc" on `Err`, ends
/// cancelled (itself) if the sender is dropped.
fn settable() -> (oneshot::Sender<Result<i32, ()>>, BoxFut<i32>) {
    let (tx, rx) = oneshot::channel::<Result<i32, ()>>();
    let fut = Box::pin(async move {
        match rx.await {
            Ok(Ok(v)) => v,
            Ok(Err(())) => panic!("exc"),
            Err(_) => {
                current_task().unwrap().cancel(None);
                pending().await
            }
        }
    });
    (tx, fut)
}

/// Steps `lp` `n` times without waiting.
fn step(lp: &LocalLoop, n: usize) {
    for _ in 0..n {
        lp.run_once(NO_WAIT).unwrap();
    }
}

fn ids<T>(tasks: &[Task<T>]) -> Vec<u64> {
    tasks.iter().map(Task::id).collect()
}

// rule X5: FIRST_COMPLETED returns with the first task done and the other pending.
#[test]
fn wait_first_completed() {
    let (done, pending, a, b) = on_runtime("wait_first_completed", async {
        let a = sleeper(Duration::from_secs(10), 1);
        let b = sleeper(ms(10), 2);
        let (a_id, b_id) = (a.id(), b.id());
        let (done, pending) = wait(vec![b, a], None, ReturnWhen::FirstCompleted)
            .await
            .unwrap();
        let still_running = !pending[0].done();
        pending[0].cancel(None);
        (ids(&done), (ids(&pending), still_running), a_id, b_id)
    });
    assert_eq!(done, [b]);
    assert_eq!(pending, (vec![a], true));
}

// rule X5: FIRST_EXCEPTION returns at the first panic; a cancelled task is not one.
#[test]
fn wait_first_exception() {
    let (done, pending, ids3) = on_runtime("wait_first_exception", async {
        let a = sleeper(Duration::from_secs(10), 1);
        let b = create_task(async {
            sleep(ms(20)).await;
            panic!("ZeroDivisionError")
        });
        let c = create_task(pending::<i32>());
        c.cancel(None); // ends cancelled first; must not end the wait
        let ids3 = (a.id(), b.id(), c.id());
        let (done, pending) = wait(vec![a, b, c], None, ReturnWhen::FirstException)
            .await
            .unwrap();
        for t in &pending {
            t.cancel(None);
        }
        (ids(&done), ids(&pending), ids3)
    });
    let (a, b, c) = ids3;
    assert_eq!(done, [b, c]);
    assert_eq!(pending, [a]);
}

// rule X5: `done` holds every task done when `wait` returns, not only the one whose end
// woke it. (CPython's b needs one more step than a and is still caught because asyncio's
// wake-up takes an extra callback hop; hooks wake `wait` without that hop, so here b ends
// in the same loop iteration as a, before `wait` runs again.)
#[test]
fn wait_really_done() {
    let lp = new_loop();
    let a = lp.create_task(yield_now()).unwrap();
    let b = lp.create_task(yield_now()).unwrap();
    let (a_id, b_id) = (a.id(), b.id());
    let w = lp
        .create_task(wait(vec![b, a], None, ReturnWhen::FirstCompleted))
        .unwrap();
    let (done, pending) = lp.run_until_complete(w).unwrap().unwrap().unwrap();
    assert_eq!(ids(&done), [b_id, a_id]);
    assert!(pending.is_empty());
}

// rule X5: a timeout returns what is done so far — no timeout error — and not earlier.
#[test]
fn wait_with_timeout() {
    let (done, pending, a, b, elapsed) = on_runtime("wait_with_timeout", async {
        let a = sleeper(ms(10), 1);
        let b = sleeper(Duration::from_secs(10), 2);
        let (a_id, b_id) = (a.id(), b.id());
        let start = Instant::now();
        let (done, pending) = wait(vec![b, a], Some(ms(50)), ReturnWhen::AllCompleted)
            .await
            .unwrap();
        let elapsed = start.elapsed();
        pending[0].cancel(None);
        (ids(&done), ids(&pending), a_id, b_id, elapsed)
    });
    assert_eq!(done, [a]);
    assert_eq!(pending, [b]);
    assert!(elapsed >= ms(50), "{elapsed:?}");
}

// rule X5: an empty set is an error with asyncio's message.
#[test]
fn wait_empty_is_an_error() {
    let r = on_runtime("wait_empty", async {
        wait(Vec::<Task<()>>::new(), None, ReturnWhen::FirstCompleted).await
    });
    assert_eq!(r.unwrap_err(), EmptyWaitError);
    assert_eq!(EmptyWaitError.to_string(), "Set of Tasks/Futures is empty.");
}

// rule X5: `as_completed` yields in completion order, not argument order.
#[test]
fn as_completed_order() {
    let lp = new_loop();
    let (txs, futs): (Vec<_>, Vec<_>) = (0..3).map(|_| settable()).unzip();
    let tasks: Vec<Task<i32>> = futs
        .into_iter()
        .map(|f| lp.create_task(f).unwrap())
        .collect();
    let order = lp
        .create_task(async move {
            let mut out = Vec::new();
            let mut it = as_completed(tasks);
            while let Some(t) = it.next().await {
                out.push(t.await.unwrap());
            }
            out
        })
        .unwrap();
    step(&lp, 2);
    for (i, tx) in txs.into_iter().enumerate().rev() {
        tx.send(Ok(i as i32)).unwrap();
        step(&lp, 2);
    }
    assert_eq!(lp.run_until_complete(order).unwrap().unwrap(), [2, 1, 0]);
}

// rule X3: cancelling the inner task ends the shield with that cancellation.
#[test]
fn shield_cancel_inner() {
    let r = on_runtime("shield_cancel_inner", async {
        let s = shield(pending::<()>());
        yield_now().await;
        s.task_ref().cancel(None);
        s.await
    });
    assert!(r.unwrap_err().is_cancelled());
}

// rule X3: cancelling the waiter ends the waiter, not the inner task, which finishes.
#[test]
fn shield_cancel_outer() {
    let (inner, finished) = guarded("shield_cancel_outer", || {
        let rt = runtime(2);
        let (ref_tx, ref_rx) = mpsc::channel::<TaskRef>();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let waiter = rt.spawn(async move {
            let s = shield(async move {
                let _ = go_rx.await;
                7
            });
            ref_tx.send(s.task_ref()).unwrap();
            s.await
        });
        let inner = ref_rx.recv().unwrap();
        assert!(waiter.cancel(None));
        assert!(rt.block_on(waiter).unwrap_err().is_cancelled());
        let untouched = !inner.done() && inner.cancelling() == 0;
        go_tx.send(()).unwrap();
        wait_until("the inner task finishes", || inner.done());
        (untouched, !inner.cancelled())
    });
    assert!(
        inner,
        "the waiter's cancellation did not reach the inner task"
    );
    assert!(finished, "the inner task finished normally");
}

// rule X3 (CPython test_tasks.test_shield_effect): cancelling the task awaiting a shield
// ends that task cancelled — no code after the await runs — and does not affect the inner
// one, which finishes when its future completes.
#[test]
fn shield_effect() {
    let lp = new_loop();
    let proof = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<()>();
    let (p1, p2) = (proof.clone(), proof.clone());
    let f = lp
        .create_task(async move {
            let _ = shield(async move {
                let _ = rx.await;
                p1.fetch_add(1, Ordering::SeqCst);
            })
            .await;
            p2.fetch_add(100, Ordering::SeqCst);
        })
        .unwrap();
    step(&lp, 2);
    assert!(f.cancel(None));
    assert!(lp
        .run_until_complete(f)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
    tx.send(()).unwrap();
    step(&lp, 2);
    assert_eq!(proof.load(Ordering::SeqCst), 1);
}

// rules X3, T8: the inner task's panic after the waiter left is reported, exactly once.
#[test]
fn shield_cancel_outer_exception() {
    let reports = guarded("shield_cancel_outer_exception", || {
        let rt = runtime(2);
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        rt.handle()
            .set_exception_handler(Some(Arc::new(move |ctx: &ExceptionContext| {
                seen2.lock().unwrap().push(ctx.message.clone());
            })));
        let (ref_tx, ref_rx) = mpsc::channel::<TaskRef>();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let waiter = rt.spawn(async move {
            let s = shield(async move {
                let _ = go_rx.await;
                panic!("foo")
            });
            ref_tx.send(s.task_ref()).unwrap();
            s.await
        });
        let inner = ref_rx.recv().unwrap();
        waiter.cancel(None);
        assert!(rt.block_on(waiter).unwrap_err().is_cancelled());
        go_tx.send(()).unwrap();
        wait_until("the panic is reported", || !seen.lock().unwrap().is_empty());
        assert!(inner.done());
        std::thread::sleep(ms(20)); // room for a wrong second report
        let v = seen.lock().unwrap().clone();
        v
    });
    assert_eq!(reports, ["Task exception was never retrieved"]);
}

// rule X4, T3: a cancellation of the gathering task that arrives after every child is done.
// CPython's test_cancel_gather_1 cancels the gathering *future*, whose `cancel()` then
// returns False and which finishes with [42]; aioloop has no separate gathering future, so
// this is asyncio's *task awaiting* that gather: its `cancel()` finds nothing left to pass
// on to, stores the request, and it is raised at the await (the catch scope gets `Err`
// before the gather is polled again, rule 3 of the mapping); the task then returns, and
// having caught a delivered cancellation it ends with its value (mapping point 4).
#[test]
fn cancel_gather_1() {
    let lp = new_loop();
    let (tx, fut) = settable();
    let (out_tx, out_rx) = mpsc::channel();
    let gather_task = lp
        .create_task(async move {
            let r = catch_cancel(gather(vec![fut])).await;
            out_tx
                .send(r.map(|v| v.map_err(|e| e.to_string())))
                .unwrap();
            "returned"
        })
        .unwrap();
    step(&lp, 2);
    tx.send(Ok(42)).unwrap();
    step(&lp, 1); // the child finishes; the gathering task is woken, not yet run
    assert!(gather_task.cancel(None));
    let r = lp.run_until_complete(gather_task).unwrap();
    assert_eq!(
        r.unwrap(),
        "returned",
        "a delivered cancellation: the value stands"
    );
    assert!(out_rx.try_recv().unwrap().is_err(), "raised at the await");
}

// rules X4, T3 (corrected): a cancel of the task awaiting a gather is passed on to the gather:
// its unfinished children are cancelled and the awaiter waits for them; a child that
// suppresses the cancellation does not save the gather, which ends cancelled whatever
// `return_exceptions` says, raised at the awaiter's await.
#[test]
fn cancel_passed_on_to_gather_waits_for_children_and_ends_cancelled() {
    let lp = new_loop();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let suppressing = async move {
        match catch_cancel(pending::<()>()).await {
            Ok(()) => 0,
            Err(_) => {
                yield_now().await; // async clean-up the awaiter must wait for
                aioloop::current_task().unwrap().uncancel();
                l1.lock().unwrap().push("child cleaned up");
                1
            }
        }
    };
    let t = lp
        .create_task(async move {
            let r = catch_cancel(
                gather(vec![Box::pin(suppressing) as BoxFut<i32>]).return_exceptions(),
            )
            .await;
            l2.lock().unwrap().push("awaiter resumed");
            r.is_err()
        })
        .unwrap();
    step(&lp, 3);
    assert!(t.cancel(None));
    assert!(
        lp.run_until_complete(t).unwrap().unwrap(),
        "raised at the await"
    );
    assert_eq!(
        *log.lock().unwrap(),
        ["child cleaned up", "awaiter resumed"]
    );
}

// rule X4: cancelling the task awaiting a gather cancels the children.
#[test]
fn cancel_gather_cancels_children() {
    let cancelled = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (c2, s2) = (cancelled.clone(), started.clone());
    guarded("cancel_gather_cancels_children", move || {
        let rt = runtime(2);
        let t = rt.spawn(async move {
            let futs = (0..3).map(|_| {
                let (c, s) = (c2.clone(), s2.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    if catch_cancel(pending::<()>()).await.is_err() {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            gather(futs).await
        });
        // Cancelled before their first step, children would never run (T4).
        wait_until("every child started", || {
            started.load(Ordering::SeqCst) == 3
        });
        t.cancel(None);
        assert!(rt.block_on(t).unwrap_err().is_cancelled());
        wait_until("every child saw its cancellation", || {
            cancelled.load(Ordering::SeqCst) == 3
        });
    });
}

/// Five settable children gathered by a task of `lp`; returns the senders and the task.
fn gather_five<T: 'static>(
    lp: &LocalLoop,
    with: impl FnOnce(Vec<BoxFut<i32>>) -> Pin<Box<dyn Future<Output = T>>>,
) -> (Vec<oneshot::Sender<Result<i32, ()>>>, Task<T>) {
    let (txs, futs): (Vec<_>, Vec<_>) = (0..5).map(|_| settable()).unzip();
    let t = lp.create_task(with(futs)).unwrap();
    step(lp, 2);
    (txs, t)
}

// rule X4: without return_exceptions the first failure completes the gather with it; the
// other children keep running (they still finish normally afterwards).
#[test]
fn one_exception() {
    let lp = new_loop();
    let finished = Arc::new(AtomicUsize::new(0));
    let f2 = finished.clone();
    let (mut txs, t) = gather_five(&lp, |futs| {
        Box::pin(async move {
            let futs = futs.into_iter().map(move |f| {
                let f2 = f2.clone();
                async move {
                    let v = f.await;
                    f2.fetch_add(1, Ordering::SeqCst);
                    v
                }
            });
            gather(futs).await
        })
    });
    let mut txs = txs.drain(..);
    txs.next().unwrap().send(Ok(1)).unwrap();
    txs.next().unwrap().send(Err(())).unwrap();
    let r = lp.run_until_complete(t).unwrap().unwrap();
    match r {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), Some("exc")),
        other => panic!("expected b's panic, got {other:?}"),
    }
    // "Does nothing" to the finished gather; c still runs to its end.
    txs.next().unwrap().send(Ok(3)).unwrap();
    drop(txs); // d and e end cancelled
    step(&lp, 3);
    assert_eq!(finished.load(Ordering::SeqCst), 2, "a and c finished");
}

// rule X4: with return_exceptions every outcome comes back in argument order.
#[test]
fn return_exceptions() {
    let lp = new_loop();
    let (txs, t) = gather_five(&lp, |futs| {
        Box::pin(async move { gather(futs).return_exceptions().await })
    });
    let mut txs = txs.into_iter();
    txs.next().unwrap().send(Ok(1)).unwrap();
    txs.next().unwrap().send(Err(())).unwrap();
    txs.next().unwrap().send(Ok(3)).unwrap();
    drop(txs.next()); // d: cancelled
    txs.next().unwrap().send(Err(())).unwrap();
    let r = lp.run_until_complete(t).unwrap().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(*r[0].as_ref().unwrap(), 1);
    assert!(r[1].as_ref().unwrap_err().is_panic());
    assert_eq!(*r[2].as_ref().unwrap(), 3);
    assert!(r[3].as_ref().unwrap_err().is_cancelled());
    assert!(r[4].as_ref().unwrap_err().is_panic());
}

// rule X4: a cancelled child completes the gather with a cancellation *error*; the
// gathering task itself is not cancelled.
#[test]
fn one_cancellation() {
    let lp = new_loop();
    let (txs, t) = gather_five(&lp, |futs| Box::pin(async move { gather(futs).await }));
    let mut txs = txs.into_iter();
    txs.next().unwrap().send(Ok(1)).unwrap();
    drop(txs.next()); // b: cancelled
    let r = lp.run_until_complete(t).unwrap();
    let inner = r.expect("the gathering task finished normally");
    assert!(inner.unwrap_err().is_cancelled());
    // Does nothing: the rest run on.
    txs.next().unwrap().send(Ok(3)).unwrap();
    drop(txs);
    step(&lp, 3);
}

// rule X4: an empty gather is an empty result at once (no loop needed).
#[test]
fn empty_gather() {
    let mut g = gather(Vec::<BoxFut<i32>>::new());
    assert!(matches!(poll_once(&mut g), std::task::Poll::Ready(Ok(v)) if v.is_empty()));
    let mut all = gather(Vec::<BoxFut<i32>>::new()).return_exceptions();
    assert!(matches!(poll_once(&mut all), std::task::Poll::Ready(v) if v.is_empty()));
}

// rule X4: tuple gathers keep argument order and types, and fail like `gather`.
#[test]
fn tuple_gather() {
    let (ok, failed) = on_runtime("tuple_gather", async {
        let ok = gather3(
            async {
                sleep(ms(20)).await;
                1
            },
            async { "two" },
            async {
                yield_now().await;
                3.0
            },
        )
        .await
        .unwrap();
        let failed = gather2(async { 1 }, async {
            yield_now().await;
            panic!("second")
        })
        .await;
        (ok, failed.map(|_| ()))
    });
    assert_eq!(ok, (1, "two", 3.0));
    assert!(failed.unwrap_err().is_panic());
}

// rule X5: FIRST_EXCEPTION counts a task that panicked *before* `wait` was called (its
// completion hook is registered late and must still see the panic). With no timeout, a
// missed panic would make this wait forever (the guard fails the test).
#[test]
fn wait_first_exception_sees_task_that_already_panicked() {
    let (done, pending) = guarded("wait(FIRST_EXCEPTION) on an already-panicked task", || {
        let rt = runtime(1);
        rt.handle()
            .set_exception_handler(Some(Arc::new(|_: &aioloop::ExceptionContext| {})));
        rt.block_on(async {
            let bad = aioloop::create_task(async { panic!("boom") });
            let slow = aioloop::create_task(pending::<()>());
            while !bad.done() {
                aioloop::yield_now().await;
            }
            let (done, pending) = wait(vec![bad, slow], None, ReturnWhen::FirstException)
                .await
                .unwrap();
            for t in &pending {
                t.cancel(None);
            }
            (done.len(), pending.len())
        })
    });
    assert_eq!((done, pending), (1, 1));
}
