//! Combinators that do not take the caller's tasks away, and the deadline forms asyncio
//! has (issue 10, items 7 and 9): `wait_for(aw, None)` (X2), `as_completed(timeout=)` (X5),
//! `shield` of a task the caller keeps (X3, CPython test_shielded_timeout), `wait` and
//! `as_completed` over borrowed tasks, and one task awaited from several places.

use std::future::pending;
use std::time::Duration;

use aioloop::{
    as_completed, as_completed_with_timeout, shield_task, wait, wait_for, wait_for_task,
    ReturnWhen, SharedTask, TaskError, TimeoutError,
};

mod common;
use common::{guarded, new_loop, runtime};

/// Rule X2; CPython test_waitfor test_wait_for_blocking: `wait_for(coro, timeout=None)` is
/// a plain await.
#[test]
fn x2_wait_for_none_is_a_plain_await() {
    let rt = runtime(1);
    let (a, b, c) = rt
        .block_on(rt.spawn(async {
            let a = wait_for(async { "done" }, None).await;
            let slow = async {
                aioloop::sleep(Duration::from_millis(5)).await;
                1
            };
            let b = wait_for(slow, None).await;
            let t = aioloop::create_task(async { 2 });
            let c = wait_for_task(t, None).await;
            (a, b, c)
        }))
        .unwrap();
    assert_eq!(a, Ok("done"));
    assert_eq!(b, Ok(1));
    assert_eq!(c.unwrap().unwrap(), 2);
}

/// Rule X2: `wait_for(aw, None)` passes an outside cancellation through (it is a plain
/// await, not a timeout): the task ends cancelled, not with a `TimeoutError`.
#[test]
fn x2_wait_for_none_cancelled_from_outside() {
    let rt = runtime(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = rt.spawn(async move {
        tx.send(()).unwrap();
        wait_for(pending::<()>(), None).await
    });
    rx.recv().unwrap();
    t.cancel(None);
    assert!(rt.block_on(t).unwrap_err().is_cancelled());
}

/// Rule X5; CPython test_tasks test_as_completed_with_timeout: the task done before the
/// deadline is yielded; the one still running gives `TimeoutError`, and is not cancelled
/// (here it is handed back by `take_remaining`).
#[test]
fn x5_as_completed_with_timeout() {
    let lp = new_loop();
    let (values, left) = lp
        .run_until_complete(async {
            let a = aioloop::spawn_local(async {
                aioloop::yield_now().await;
                "a"
            });
            let b = aioloop::spawn_local(pending::<&str>());
            let mut values = Vec::new();
            let mut it = as_completed_with_timeout(vec![a, b], Duration::from_millis(10));
            while let Some(item) = it.next().await {
                match item {
                    Ok(t) => values.push(Ok(t.await.unwrap())),
                    Err(e) => values.push(Err(e)),
                }
            }
            (values, it.take_remaining())
        })
        .unwrap();
    assert_eq!(values, [Ok("a"), Err(TimeoutError)]);
    assert_eq!(left.len(), 1);
    assert!(!left[0].done() && !left[0].cancelled());
}

/// Rule X5; CPython test_as_completed_with_unused_timeout: all finish in time, so the
/// deadline never shows.
#[test]
fn x5_as_completed_with_unused_timeout() {
    let rt = runtime(2);
    let got = rt.block_on(async {
        let ts = vec![
            aioloop::create_task(async { 1 }),
            aioloop::create_task(async { 2 }),
        ];
        let mut it = as_completed_with_timeout(ts, Duration::from_secs(3600));
        let mut got = Vec::new();
        while let Some(t) = it.next().await {
            got.push(t.unwrap().await.unwrap());
        }
        got.sort();
        got
    });
    assert_eq!(got, [1, 2]);
}

/// Rule X3; CPython test_shielded_timeout (test_waitfor): after
/// `wait_for(shield(task), d)` times out, the task is not cancelled and the caller can
/// still await it.
#[test]
fn x3_shielded_timeout() {
    let v = guarded("shielded timeout", || {
        let rt = runtime(2);
        rt.block_on(rt.spawn(async {
            let gate = aioloop::create_future::<()>();
            let g = gate.clone();
            let mut task = aioloop::create_task(async move {
                g.await.unwrap();
                "done"
            });
            let r = wait_for(shield_task(&mut task), Duration::from_millis(1)).await;
            assert_eq!(r.unwrap_err(), TimeoutError);
            assert!(!task.done());
            assert_eq!(task.cancelling(), 0);
            gate.set_result(()).unwrap();
            task.await.unwrap()
        }))
        .unwrap()
    });
    assert_eq!(v, "done");
}

/// Rule X3; CPython test_shield_cancel_outer: cancelling the waiter of a shielded task
/// cancels the wait only; the task finishes and its owner reads its value.
#[test]
fn x3_shield_task_cancel_outer() {
    let v = guarded("shield_task cancel outer", || {
        let lp = new_loop();
        let main = lp
            .create_task(async {
                let gate = aioloop::create_future::<u8>();
                let g = gate.clone();
                let mut task = aioloop::spawn_local(async move { g.await.unwrap() + 1 });
                let outer = aioloop::current_task().unwrap();
                aioloop::spawn_local(async move {
                    outer.cancel(None);
                })
                .detach();
                let r = aioloop::catch_cancel(shield_task(&mut task)).await;
                assert!(r.is_err(), "the waiter was cancelled");
                aioloop::current_task().unwrap().uncancel();
                assert!(!task.done() && !task.cancelled());
                gate.set_result(41).unwrap();
                task.await.unwrap()
            })
            .unwrap();
        lp.run_until_complete(main).unwrap().unwrap()
    });
    assert_eq!(v, 42);
}

/// Rule X5: `wait` over borrowed tasks; the wait abandoned by a timeout leaves the tasks
/// with the caller, unfinished and uncancelled.
#[test]
fn x5_wait_on_borrowed_tasks() {
    let rt = runtime(2);
    let r = rt
        .block_on(rt.spawn(async {
            let gate = aioloop::create_future::<()>();
            let g = gate.clone();
            let mut a = aioloop::create_task(async { 1 });
            let mut b = aioloop::create_task(async move {
                g.await.unwrap();
                2
            });
            let all = wait(vec![&mut a, &mut b], None, ReturnWhen::AllCompleted);
            assert!(wait_for(all, Duration::from_millis(1)).await.is_err());
            let (done, pending) = wait(vec![&mut a, &mut b], None, ReturnWhen::FirstCompleted)
                .await
                .unwrap();
            assert_eq!((done.len(), pending.len()), (1, 1));
            gate.set_result(()).unwrap();
            a.try_result().unwrap() + b.await.unwrap()
        }))
        .unwrap();
    assert_eq!(r, 3);
}

/// Rule X5: `as_completed` over borrowed tasks yields them in completion order; each is
/// still the caller's afterwards.
#[test]
fn x5_as_completed_on_borrowed_tasks() {
    let rt = runtime(2);
    let sum = rt.block_on(async {
        let mut a = aioloop::create_task(async { 10 });
        let mut b = aioloop::create_task(async { 5 });
        let mut sum = 0;
        let mut it = as_completed(vec![&mut a, &mut b]);
        while let Some(t) = it.next().await {
            sum += t.try_result().unwrap();
        }
        sum
    });
    assert_eq!(sum, 15);
}

/// Issue 10 item 9 (asyncio: any number of coroutines may `await task`): a `SharedTask`
/// awaited from several tasks gives each the value.
#[test]
fn shared_task_awaited_from_several_places() {
    let rt = runtime(2);
    let got = rt.block_on(async {
        let gate = aioloop::create_future::<()>();
        let g = gate.clone();
        let shared = SharedTask::new(aioloop::create_task(async move {
            g.await.unwrap();
            vec![1, 2]
        }));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let s = shared.clone();
                aioloop::create_task(async move { s.await.unwrap() })
            })
            .collect();
        aioloop::yield_now().await;
        gate.set_result(()).unwrap();
        let mut got = vec![shared.await.unwrap()];
        for r in readers {
            got.push(r.await.unwrap());
        }
        got
    });
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|v| v == &[1, 2]));
}

/// Rules T8, F3: every awaiter of a shared task that panicked gets the panic's message;
/// of a cancelled one, the cancellation with its message.
#[test]
fn shared_task_errors_reach_every_awaiter() {
    let rt = runtime(1);
    let (p1, p2, c1) = rt.block_on(async {
        let bad = SharedTask::new(aioloop::create_task(async { panic!("boom") }));
        let p1 = bad.clone().await.unwrap_err();
        let p2 = bad.await.unwrap_err();
        let gone = SharedTask::new(aioloop::create_task(pending::<()>()));
        gone.task_ref().cancel(Some("bye"));
        (p1, p2, gone.await.unwrap_err())
    });
    for p in [p1, p2] {
        match p {
            TaskError::Panicked(p) => assert_eq!(p.message(), Some("boom")),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    match c1 {
        TaskError::Cancelled(c) => assert_eq!(c.message(), Some("bye")),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

/// Rule X5: `wait` and `as_completed` over `SharedTask`s, which stay awaitable afterwards.
#[test]
fn x5_wait_on_shared_tasks() {
    let rt = runtime(2);
    let v = rt.block_on(async {
        let a = SharedTask::new(aioloop::create_task(async { 1 }));
        let b = SharedTask::new(aioloop::create_task(async { 2 }));
        let (done, pending) = wait(vec![a.clone(), b.clone()], None, ReturnWhen::AllCompleted)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (2, 0));
        let mut it = as_completed(vec![a.clone()]);
        let first = it.next().await.unwrap().await.unwrap();
        first + a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(v, 4);
}

/// Rule T3 (divergence, ARCHITECTURE.md): a cancelled awaiter of a `SharedTask` ends its
/// own await only; the task goes on and the other awaiters get its value.
#[test]
fn t3_cancelled_awaiter_leaves_the_shared_task() {
    let v = guarded("shared task cancel", || {
        let rt = runtime(2);
        rt.block_on(rt.spawn(async {
            let gate = aioloop::create_future::<()>();
            let g = gate.clone();
            let shared = SharedTask::new(aioloop::create_task(async move {
                g.await.unwrap();
                7
            }));
            let s = shared.clone();
            let (tx, rx) = futures_channel::oneshot::channel();
            let awaiter = aioloop::create_task(async move {
                tx.send(()).unwrap();
                s.await
            });
            rx.await.unwrap();
            awaiter.cancel(None);
            let awaiter_result = awaiter.await;
            assert!(awaiter_result.unwrap_err().is_cancelled());
            assert!(!shared.done());
            gate.set_result(()).unwrap();
            shared.await.unwrap()
        }))
        .unwrap()
    });
    assert_eq!(v, 7);
}
