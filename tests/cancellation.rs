//! Catchable cancellation (rules T3–T7): ports of CPython's `test_tasks` cancellation tests,
//! plus catch scopes, async clean-up, suppression with `uncancel()` and nesting.
//!
//! Most tests run on a `LocalLoop` stepped with `run_once`, so the order of "task runs" and
//! "test cancels" is exact. Note the mapping: a cancellation is delivered at the task's *next
//! poll*, not synchronously inside `cancel()`, so "the awaited future is cancelled" is checked
//! after the loop has stepped the task.

use std::cell::{Cell, RefCell};
use std::future::pending;
use std::rc::Rc;
use std::sync::mpsc;

use aioloop::{
    catch_cancel, current_task, yield_now, CancelledError, LocalLoop, Task, TaskError, TaskRef,
};
use futures_channel::oneshot;

mod common;
use common::{guarded, new_loop, runtime, NO_WAIT, TIMEOUT};

/// The message of a cancelled task's error; fails the test on anything else.
fn cancel_message<T: std::fmt::Debug>(r: Result<T, TaskError>) -> Option<String> {
    match r {
        Err(TaskError::Cancelled(e)) => e.message().map(str::to_owned),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

/// A task of `lp` that waits on `rx` (ignoring how it resolves), then returns `value`.
fn waiting_on(lp: &LocalLoop, rx: oneshot::Receiver<()>, value: i32) -> Task<i32> {
    lp.create_task(async move {
        let _ = rx.await;
        value
    })
    .unwrap()
}

/// Runs `lp` until `t` finishes and checks that it ended cancelled.
#[track_caller]
fn assert_ends_cancelled<T: std::fmt::Debug + 'static>(lp: &LocalLoop, t: Task<T>) {
    assert!(lp
        .run_until_complete(t)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
}

// rule T3: `cancelling()` counts every request, also repeated ones; the task ends cancelled.
#[test]
fn cancelling() {
    let lp = new_loop();
    let t = lp.create_task(pending::<()>()).unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(t.cancelling(), 0);
    assert!(t.cancel(None));
    assert_eq!(t.cancelling(), 1);
    assert!(t.cancel(Some("foo")), "a repeated cancel returns true too");
    assert_eq!(t.cancelling(), 2);
    assert_ends_cancelled(&lp, t);
    assert!(r.cancelled());
}

// rules T6, T7: a caught and uncancelled cancellation lets the task go on; `uncancel()`
// brings `cancelling()` back to 0; a second request is then delivered normally.
#[test]
fn uncancel_basic() {
    let lp = new_loop();
    let t = lp
        .create_task(async {
            if catch_cancel(pending::<()>()).await.is_err() {
                assert_eq!(current_task().unwrap().uncancel(), 0);
            }
            pending::<()>().await;
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("foo")));
    assert_eq!(t.cancelling(), 1);
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(t.cancelling(), 0, "the handler uncancelled");
    assert!(!t.done(), "the task went on after suppressing");
    assert!(t.cancel(Some("foo")));
    assert_eq!(t.cancelling(), 1);
    let r = lp.run_until_complete(t).unwrap();
    assert_eq!(cancel_message(r).as_deref(), Some("foo"));
}

// rule T7: `uncancel()` down to 0 withdraws a request not yet delivered: the task finishes
// normally.
#[test]
fn uncancel_resets_must_cancel() {
    let lp = new_loop();
    let (tx, rx) = oneshot::channel::<()>();
    let t = lp
        .create_task(async move {
            rx.await.unwrap();
            42
        })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(None));
    assert_eq!(t.cancelling(), 1);
    assert_eq!(t.uncancel(), 0);
    assert_eq!(t.cancelling(), 0);
    lp.run_once(NO_WAIT).unwrap(); // the wake-up from `cancel` finds nothing to deliver
    assert!(!tx.is_canceled(), "the awaited receiver was not dropped");
    tx.send(()).unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 42);
    assert!(!r.cancelled());
}

// rule T3: cancel a waiting task; it ends cancelled, and a later cancel returns false.
#[test]
fn cancel() {
    let lp = new_loop();
    let (_tx, rx) = oneshot::channel::<()>();
    let t = waiting_on(&lp, rx, 12);
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(!r.cancelled());
    assert!(t.cancel(None));
    assert_ends_cancelled(&lp, t);
    assert!(r.done());
    assert!(r.cancelled());
    assert!(!r.cancel(None), "cancel on a done task returns false");
}

// rule T4: a task cancelled before its first step never runs, and ends cancelled with the
// message.
#[test]
fn cancel_with_message_before_starting_task() {
    let lp = new_loop();
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let t = lp.create_task(async move { ran2.set(true) }).unwrap();
    let r = t.task_ref();
    assert!(t.cancel(Some("my message")));
    let res = lp.run_until_complete(t).unwrap();
    assert_eq!(cancel_message(res).as_deref(), Some("my message"));
    assert!(!ran.get(), "the body never ran");
    assert!(r.cancelled());
}

// rule T3: cancelling a task cancels the future it awaits (here: the receiver is dropped,
// which the sender sees).
#[test]
fn cancel_inner_future() {
    let lp = new_loop();
    let (tx, rx) = oneshot::channel::<()>();
    let t = waiting_on(&lp, rx, 12);
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(!tx.is_canceled());
    assert!(t.cancel(None));
    // Delivered at the task's next poll (asyncio cancels the inner future inside cancel()).
    lp.run_once(NO_WAIT).unwrap();
    assert!(tx.is_canceled(), "the inner future was dropped");
    assert_ends_cancelled(&lp, t);
    assert!(r.cancelled());
}

// rule T6 (corrected; CPython test_tasks.test_cancel_task_catching): the task catches the
// cancellation of its second await and returns a value, which it ends with — no
// `uncancel()` needed, as in asyncio (mapping point 4: the request was delivered).
#[test]
fn cancel_task_catching() {
    let lp = new_loop();
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    let t = lp
        .create_task(async move {
            rx1.await.unwrap();
            match catch_cancel(rx2).await {
                Ok(_) => 0,
                Err(_) => 42, // asyncio: `except CancelledError: return 42`
            }
        })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    tx1.send(()).unwrap();
    lp.run_once(NO_WAIT).unwrap(); // now waiting on rx2
    assert!(!tx2.is_canceled());
    assert!(t.cancel(None));
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 42);
    assert!(tx2.is_canceled(), "the awaited receiver was dropped");
    assert!(!r.cancelled());
}

// rule T6 (corrected; CPython test_tasks.test_cancel_task_ignoring): the task ignores the
// cancellation of one await (`except CancelledError: pass`) and goes on to the next.
#[test]
fn cancel_task_ignoring() {
    let lp = new_loop();
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    let (tx3, rx3) = oneshot::channel::<i32>();
    let t = lp
        .create_task(async move {
            rx1.await.unwrap();
            let _ = catch_cancel(rx2).await; // `except CancelledError: pass`
            rx3.await.unwrap()
        })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    tx1.send(()).unwrap();
    lp.run_once(NO_WAIT).unwrap(); // waiting on rx2
    assert!(t.cancel(None));
    lp.run_once(NO_WAIT).unwrap(); // caught, now waiting on rx3
    assert!(tx2.is_canceled());
    assert!(!t.done());
    tx3.send(42).unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 42);
    assert!(!r.cancelled());
}

// rule T3: a task cancelling itself is cancelled at its next suspension point.
#[test]
fn cancel_current_task() {
    let lp = new_loop();
    let after = Rc::new(Cell::new(false));
    let after2 = after.clone();
    let t = lp
        .create_task(async move {
            let me = current_task().unwrap();
            assert!(me.cancel(None));
            assert_eq!(me.cancelling(), 1);
            pending::<()>().await;
            after2.set(true);
            12
        })
        .unwrap();
    let r = t.task_ref();
    assert!(!r.cancelled());
    assert_ends_cancelled(&lp, t);
    assert!(!after.get(), "nothing ran past the suspension point");
    assert!(r.done());
    assert!(r.cancelled());
    assert!(!r.cancel(None));
}

// rule T5: a task that cancels itself and then returns without awaiting ends cancelled.
#[test]
fn cancel_at_end() {
    let lp = new_loop();
    let t = lp
        .create_task(async {
            assert!(current_task().unwrap().cancel(None));
            12
        })
        .unwrap();
    let r = t.task_ref();
    assert!(!r.cancelled());
    assert_ends_cancelled(&lp, t);
    assert!(r.done());
    assert!(r.cancelled());
    assert!(!r.cancel(None));
}

// rule T3: a task cancelled while not blocked, which then awaits another task, cancels the
// awaited task too.
#[test]
fn cancel_awaited_task() {
    let lp = new_loop();
    let (tx, rx) = oneshot::channel::<()>();
    let nested_ref: Rc<RefCell<Option<TaskRef>>> = Rc::default();
    let nested_ref2 = nested_ref.clone();
    let t = lp
        .create_task(async move {
            let nested = aioloop::spawn_local(async move {
                let _ = rx.await;
            });
            *nested_ref2.borrow_mut() = Some(nested.task_ref());
            yield_now().await; // let the nested task start
            assert!(current_task().unwrap().cancel(None));
            nested.await
        })
        .unwrap();
    let r = t.task_ref();
    assert_ends_cancelled(&lp, t);
    assert!(r.cancelled());
    let nested = nested_ref
        .borrow()
        .clone()
        .expect("nested task was spawned");
    lp.run_once(NO_WAIT).unwrap();
    assert!(nested.done());
    assert!(nested.cancelled(), "the awaited task was cancelled too");
    assert!(tx.is_canceled());
}

// rule T6: the handler awaits another task (async clean-up), then re-raises: the task ends
// cancelled, and the clean-up task finished normally.
#[test]
fn catch_async_cleanup_then_reraise() {
    let lp = new_loop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let log2 = log.clone();
    let t = lp
        .create_task(async move {
            match catch_cancel(pending::<()>()).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    log2.borrow_mut().push("caught".to_owned());
                    let log3 = log2.clone();
                    let cleanup = aioloop::spawn_local(async move {
                        yield_now().await;
                        log3.borrow_mut().push("cleanup ran".to_owned());
                        7
                    });
                    let v = cleanup.await.expect("clean-up is not cancelled");
                    log2.borrow_mut().push(format!("cleanup gave {v}"));
                    // asyncio's bare `raise`: returning `Err(e)` would be a value (rule T6).
                    e.reraise().await;
                    Ok::<(), CancelledError>(())
                }
            }
        })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("stop")));
    let res = lp.run_until_complete(t).unwrap();
    assert_eq!(cancel_message(res).as_deref(), Some("stop"));
    assert!(r.cancelled());
    assert_eq!(*log.borrow(), ["caught", "cleanup ran", "cleanup gave 7"]);
}

// rule T6: catching and suppressing with `uncancel()` finishes the task normally, after
// async clean-up.
#[test]
fn catch_and_uncancel_finishes_normally() {
    let lp = new_loop();
    let t = lp
        .create_task(async {
            match catch_cancel(pending::<()>()).await {
                Ok(()) => unreachable!(),
                Err(e) => {
                    yield_now().await;
                    let me = current_task().unwrap();
                    assert_eq!(me.cancelling(), 1);
                    assert_eq!(me.uncancel(), 0);
                    yield_now().await; // still runs normally after suppressing
                    format!("suppressed {e}")
                }
            }
        })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("x")));
    assert_eq!(
        lp.run_until_complete(t).unwrap().unwrap(),
        "suppressed CancelledError: x"
    );
    assert!(!r.cancelled());
    assert_eq!(r.cancelling(), 0);
}

// rule T6 (corrected), mapping point 4: a caught cancellation that is *not* uncancelled was
// delivered: the task ends with the value it returns, `cancelled()` false, `cancelling()` 1
// (CPython test_tasks.test_cancel_task_ignoring).
#[test]
fn caught_without_uncancel_ends_with_value() {
    let lp = new_loop();
    let t = lp
        .create_task(async { catch_cancel(pending::<()>()).await.is_err() })
        .unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("m")));
    assert!(
        lp.run_until_complete(t).unwrap().unwrap(),
        "the scope caught it"
    );
    assert!(!r.cancelled());
    assert_eq!(r.cancelling(), 1, "asyncio does not enforce uncancel()");
}

// rule T3: a task blocked in a `oneshot::Receiver` on a multi-threaded runtime is still
// cancellable from another thread; the receiver is dropped.
#[test]
fn task_blocked_in_oneshot_is_cancellable() {
    guarded("cancel a task blocked in a oneshot receiver", || {
        let rt = runtime(2);
        let (tx, rx) = oneshot::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        let t = rt.spawn(async move {
            started_tx.send(()).unwrap();
            let _ = rx.await;
            1
        });
        let r = t.task_ref();
        started.recv_timeout(TIMEOUT).expect("task started");
        assert!(t.cancel(Some("bye")));
        let res = rt.block_on(t);
        assert_eq!(cancel_message(res).as_deref(), Some("bye"));
        assert!(r.cancelled());
        assert!(tx.is_canceled());
    });
}

// rules T3, T6: nested catch scopes: the innermost pending scope catches; after it, the
// next request is caught by the outer scope.
#[test]
fn nested_catch_scopes_innermost_catches() {
    let lp = new_loop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let log2 = log.clone();
    let t = lp
        .create_task(async move {
            let log3 = log2.clone();
            let outer = catch_cancel(async move {
                if let Err(e) = catch_cancel(pending::<()>()).await {
                    log3.borrow_mut().push(format!("inner: {e}"));
                }
                pending::<()>().await; // inside the outer scope only
            })
            .await;
            if let Err(e) = outer {
                log2.borrow_mut().push(format!("outer: {e}"));
            }
            let me = current_task().unwrap();
            assert_eq!(me.uncancel(), 1);
            assert_eq!(me.uncancel(), 0);
            "done"
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("one")));
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*log.borrow(), ["inner: CancelledError: one"]);
    assert!(t.cancel(Some("two")));
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), "done");
    assert_eq!(
        *log.borrow(),
        ["inner: CancelledError: one", "outer: CancelledError: two"]
    );
}

// rule T3: cancel on a done task returns false and changes nothing.
#[test]
fn cancel_done_task_returns_false() {
    let lp = new_loop();
    let t = lp.create_task(async { 5 }).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.done());
    assert!(!t.cancel(None));
    assert!(!t.task_ref().cancel(Some("late")));
    assert_eq!(t.cancelling(), 0);
    assert!(!t.cancelled());
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 5);
}

// rule T3: the cancel message reaches a task awaiting the cancelled one.
#[test]
fn cancel_message_reaches_awaiter() {
    let lp = new_loop();
    let victim = lp.create_task(pending::<()>()).unwrap();
    let victim_ref = victim.task_ref();
    let awaiter = lp
        .create_task(async move {
            match victim.await {
                Err(TaskError::Cancelled(e)) => e.message().map(str::to_owned),
                other => panic!("expected a cancellation, got {other:?}"),
            }
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(victim_ref.cancel(Some("the message")));
    assert_eq!(
        lp.run_until_complete(awaiter).unwrap().unwrap().as_deref(),
        Some("the message")
    );
}

// rules T3, T7: `cancelled()` after completion: false for a normal finish, true for a
// cancelled one, and `uncancel()` on a finished task changes neither.
#[test]
fn cancelled_after_completion() {
    let lp = new_loop();
    let ok = lp.create_task(async { 1 }).unwrap();
    let ok_ref = ok.task_ref();
    let gone = lp.create_task(pending::<()>()).unwrap();
    let gone_ref = gone.task_ref();
    assert!(!ok_ref.cancelled() && !gone_ref.cancelled(), "not done yet");
    lp.run_once(NO_WAIT).unwrap();
    assert!(gone.cancel(None));
    assert!(!gone_ref.cancelled(), "requested but not yet delivered");
    assert_eq!(lp.run_until_complete(ok).unwrap().unwrap(), 1);
    assert_ends_cancelled(&lp, gone);
    assert!(ok_ref.done() && !ok_ref.cancelled());
    assert!(gone_ref.done() && gone_ref.cancelled());
    ok_ref.uncancel();
    gone_ref.uncancel();
    assert!(!ok_ref.cancelled());
    assert!(
        gone_ref.cancelled(),
        "uncancel on a finished task keeps it cancelled"
    );
}

// rules T3/T6: a cancel arriving from another thread *during* a poll, after the inner scope
// had looked and before the outer one does, is not taken by the outer scope: it waits for
// the next poll, where the innermost scope catches it, as the innermost `except` does.
#[test]
fn innermost_scope_catches_a_cancel_arriving_mid_poll() {
    use std::future::{poll_fn, Future};
    use std::pin::pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let rt = runtime(1);
    let inner_caught = Arc::new(AtomicBool::new(false));
    let ic = inner_caught.clone();
    let t = rt.spawn(async move {
        let me = current_task().unwrap();
        let outer = catch_cancel(async move {
            let mut inner = pin!(async move {
                if catch_cancel(pending::<()>()).await.is_err() {
                    ic.store(true, Ordering::SeqCst);
                    current_task().unwrap().uncancel();
                }
            });
            let mut sent = false;
            poll_fn(move |cx| {
                let r = inner.as_mut().poll(cx);
                if !sent {
                    sent = true;
                    // The inner scope has just returned Pending; cancel from elsewhere now.
                    let me = me.clone();
                    std::thread::spawn(move || me.cancel(Some("x")))
                        .join()
                        .unwrap();
                }
                r
            })
            .await
        })
        .await;
        outer.is_err()
    });
    let outer_caught = rt.block_on(t).unwrap();
    assert!(inner_caught.load(Ordering::SeqCst), "the inner handler ran");
    assert!(!outer_caught, "the outer scope did not take it");
}

// rules T3, T12, L6: a task's clean-up on an uncaught cancellation (its destructors, the
// Rust form of `finally:`) runs as the task: `current_task()` is the task and its context
// variables are visible.
#[test]
fn cleanup_of_uncaught_cancel_runs_in_the_task() {
    use aioloop::contextvars::ContextVar;
    static V: ContextVar<u32> = ContextVar::new("v");
    struct Guard(mpsc::Sender<(Option<u32>, Option<u64>)>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send((V.get(), current_task().map(|t| t.id())));
        }
    }
    let rt = runtime(1);
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let t = rt.spawn(async move {
        V.set(7);
        let _g = Guard(tx);
        started_tx.send(()).unwrap();
        pending::<()>().await;
    });
    let id = t.id();
    started.recv().unwrap();
    t.cancel(None);
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), (Some(7), Some(id)));
}

// ---- Where a cancellation lands (mapping point 2, rule T3; issue 10 item 1) ----

/// The task of the issue: `{ fut.await; reached = true; sleep(10 s).await }`.
async fn await_then_mark(
    fut: aioloop::Future<()>,
    reached: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let _ = fut.await;
    reached.store(true, std::sync::atomic::Ordering::SeqCst);
    aioloop::sleep(std::time::Duration::from_secs(10)).await;
}

/// A task of `lp` running [`await_then_mark`], stepped to its await.
fn suspended_marker(
    lp: &LocalLoop,
) -> (
    Task<()>,
    aioloop::Future<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let fut = lp.create_future::<()>();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = lp
        .create_task(await_then_mark(fut.clone(), reached.clone()))
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    (t, fut, reached)
}

// rule T3 (stored request, thrown at the await): the awaited future completed, then the
// task was cancelled before it ran again: no code after the await runs (asyncio's
// `__step` throws CancelledError into the coroutine at its await).
#[test]
fn cancel_after_awaited_future_completed_lands_at_the_await_local_loop() {
    let lp = new_loop();
    let (t, fut, reached) = suspended_marker(&lp);
    fut.set_result(()).unwrap();
    assert!(t.cancel(Some("late")));
    let res = lp.run_until_complete(t).unwrap();
    assert_eq!(cancel_message(res).as_deref(), Some("late"));
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
}

// rule T3: the same on a multi-threaded runtime. The single worker is held busy by a blocker
// task while the future completes and the cancel arrives, so both land before the task
// runs again.
#[test]
fn cancel_after_awaited_future_completed_lands_at_the_await_runtime() {
    guarded("cancel lands at the await on the runtime", || {
        let rt = runtime(1);
        let fut = rt.handle().create_future::<()>();
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started) = mpsc::channel();
        let f2 = fut.clone();
        let r2 = reached.clone();
        let t = rt.spawn(async move {
            started_tx.send(()).unwrap();
            await_then_mark(f2, r2).await
        });
        started.recv_timeout(TIMEOUT).unwrap();
        let (busy_tx, busy) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        rt.spawn(async move {
            busy_tx.send(()).unwrap();
            release.recv().unwrap();
        })
        .detach();
        busy.recv_timeout(TIMEOUT).unwrap();
        fut.set_result(()).unwrap();
        assert!(t.cancel(None));
        release_tx.send(()).unwrap();
        assert!(rt.block_on(t).unwrap_err().is_cancelled());
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    });
}

// rules T3, T9: the same for an eagerly started task (its first step ran inside
// `create_task`; the cancel lands at the await it suspended on).
#[test]
fn cancel_after_awaited_future_completed_lands_at_the_await_eager() {
    let lp = new_loop();
    lp.set_task_factory(Some(aioloop::task::eager_task_factory()));
    let fut = lp.create_future::<()>();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f2, r2) = (fut.clone(), reached.clone());
    let t = lp
        .run_until_complete(async move {
            let t = aioloop::spawn_local(await_then_mark(f2, r2));
            assert!(!t.done(), "suspended in its eager step");
            Some(t)
        })
        .unwrap()
        .unwrap();
    fut.set_result(()).unwrap();
    assert!(t.cancel(None));
    assert_ends_cancelled(&lp, t);
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
}

/// A task whose catch scope's inner future (a oneshot) becomes ready in the same step that
/// carries the cancel; returns whether the scope's `Err` branch (the clean-up) ran.
fn scope_ready_with_cancel(cancel_first: bool) -> bool {
    let lp = new_loop();
    let (tx, rx) = oneshot::channel::<()>();
    let t = lp
        .create_task(async move {
            // `Err`: the `except CancelledError:` branch ran.
            catch_cancel(rx).await.is_err()
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    if cancel_first {
        assert!(t.cancel(None));
        tx.send(()).unwrap();
    } else {
        tx.send(()).unwrap();
        assert!(t.cancel(None));
    }
    let r = t.task_ref();
    let cleaned = lp.run_until_complete(t).unwrap().unwrap();
    assert!(
        !r.cancelled(),
        "caught, then returned: its value (mapping point 4)"
    );
    cleaned
}

// rules T3, T6: a catch scope whose inner future became ready in the step that also carries
// the cancel returns `Err` (its `except CancelledError:` clean-up runs), in either order.
#[test]
fn catch_scope_ready_in_the_cancelled_step_returns_err() {
    assert!(scope_ready_with_cancel(false), "ready, then cancelled");
    assert!(scope_ready_with_cancel(true), "cancelled, then ready");
}

// rules T3, G1, G3: in a TaskGroup, a child whose awaited future completed but which was
// cancelled (by a sibling's failure) before it ran again does not go on to `create_task`.
#[test]
fn cancelled_group_child_does_not_go_on_to_create_task() {
    use aioloop::{TaskGroup, TaskGroupError};
    let lp = new_loop();
    let fut = lp.create_future::<()>();
    let (fail_tx, fail_rx) = oneshot::channel::<()>();
    let went_on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f2, w2) = (fut.clone(), went_on.clone());
    let t = lp
        .create_task(async move {
            TaskGroup::new()
                .run(|tg| async move {
                    let tg2 = tg.clone();
                    tg.create_task(async move {
                        let _ = f2.await;
                        w2.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = tg2.create_task(async {});
                    })?;
                    tg.create_task(async move {
                        let _ = fail_rx.await;
                        panic!("boom");
                    })?;
                    Ok::<_, TaskGroupError>(())
                })
                .await
        })
        .unwrap();
    for _ in 0..3 {
        lp.run_once(NO_WAIT).unwrap();
    }
    fail_tx.send(()).unwrap(); // the failing child is woken first
    fut.set_result(()).unwrap(); // then the waiting one
    let r = lp.run_until_complete(t).unwrap().unwrap();
    match r {
        Err(TaskGroupError::Failed(g)) => assert_eq!(g.failures().len(), 1, "{g:?}"),
        other => panic!("expected the group's failure, got {other:?}"),
    }
    assert!(!went_on.load(std::sync::atomic::Ordering::SeqCst));
}

// rule T3 (forwarded), mapping point 2: a cancel of a task suspended on another task is
// passed on; the awaited task suppresses it, and the awaiter gets its value and goes on
// (CPython test_tasks.test_cancel_awaited_task's suppressing variant).
#[test]
fn cancel_forwarded_to_a_suppressing_task_gives_its_value() {
    let lp = new_loop();
    let child = lp
        .create_task(async {
            match catch_cancel(pending::<()>()).await {
                Ok(()) => 0,
                Err(_) => {
                    current_task().unwrap().uncancel();
                    42
                }
            }
        })
        .unwrap();
    let child_ref = child.task_ref();
    let parent = lp
        .create_task(async move { child.await.unwrap() + 1 })
        .unwrap();
    let parent_ref = parent.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(parent.cancel(Some("fwd")));
    assert_eq!(child_ref.cancelling(), 1, "passed on at once");
    assert_eq!(lp.run_until_complete(parent).unwrap().unwrap(), 43);
    assert!(!parent_ref.cancelled());
    assert_eq!(parent_ref.cancelling(), 1);
}

// rule T3 (forwarded): the awaited task ends cancelled: the cancellation is raised at the
// awaiter's await, where its catch scope takes it.
#[test]
fn cancel_forwarded_to_a_task_that_ends_cancelled_is_raised_at_the_await() {
    let lp = new_loop();
    let child = lp.create_task(pending::<()>()).unwrap();
    let child_ref = child.task_ref();
    let parent = lp
        .create_task(async move {
            catch_cancel(child)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(parent.cancel(Some("fwd")));
    let r = lp.run_until_complete(parent).unwrap().unwrap();
    assert_eq!(r.unwrap_err(), "CancelledError: fwd");
    assert!(child_ref.cancelled());
}

// rule T3 (CPython test_tasks.test_cancel_both_task_and_inner_future): the task and the future
// it awaits are both cancelled before it runs: the task ends cancelled, the future is
// cancelled, and no code after the await runs.
#[test]
fn cancel_both_task_and_inner_future() {
    let lp = new_loop();
    let (t, fut, reached) = suspended_marker(&lp);
    assert!(!t.done());
    assert!(fut.cancel(None));
    assert!(t.cancel(None));
    assert!(fut.cancelled());
    assert_ends_cancelled(&lp, t);
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
}

// ---- block_on / run_until_complete run their future as a real task (issue 10 item 8) ----

// rules T3, T6 (asyncio wraps run_until_complete's coroutine in a Task): the main future of
// `block_on` can be cancelled through the request protocol, and a catch scope in it takes it.
#[test]
fn block_on_main_task_catches_a_cancel() {
    guarded("block_on's main task is cancellable", || {
        let rt = runtime(1);
        let r = rt.block_on(async {
            let me = current_task().unwrap();
            assert!(me.is_builtin());
            aioloop::create_task(async move { me.cancel(Some("from a task")) }).detach();
            match catch_cancel(pending::<()>()).await {
                Ok(()) => unreachable!(),
                Err(e) => {
                    yield_now().await; // async clean-up in the main task
                    e.to_string()
                }
            }
        });
        assert_eq!(r, "CancelledError: from a task");
    });
}

// rules G3, T6: a TaskGroup directly in `run_until_complete`: a child's failure cancels the
// body's await through the main task, and the body cleans up with awaits before the group
// returns its failure (no more "drop the body" special case).
#[test]
fn run_until_complete_task_group_body_cleans_up() {
    use aioloop::{TaskGroup, TaskGroupError};
    let lp = new_loop();
    let cleaned = lp
        .run_until_complete(async {
            let cleaned = Rc::new(Cell::new(false));
            let c2 = cleaned.clone();
            let r = TaskGroup::new()
                .run(|tg| async move {
                    tg.create_task(async { panic!("child failed") })?;
                    if catch_cancel(pending::<()>()).await.is_err() {
                        yield_now().await;
                        c2.set(true);
                    }
                    Ok::<_, TaskGroupError>(())
                })
                .await;
            assert!(matches!(r, Err(TaskGroupError::Failed(_))));
            assert_eq!(current_task().unwrap().cancelling(), 0, "G4: uncancelled");
            cleaned.get()
        })
        .unwrap();
    assert!(cleaned);
}

// rule X1: a timeout directly in `run_until_complete` expires through the main task's
// cancellation (delivered into the body, which sees it in a catch scope) and leaves
// `cancelling()` at 0.
#[test]
fn run_until_complete_timeout_cancels_through_the_main_task() {
    let lp = new_loop();
    let (saw_cancel, level) = lp
        .run_until_complete(async {
            let r = aioloop::timeout(std::time::Duration::from_millis(5), async {
                catch_cancel(pending::<()>()).await.is_err()
            })
            .await;
            (r.unwrap(), current_task().unwrap().cancelling())
        })
        .unwrap();
    assert!(saw_cancel, "the expiry was delivered into the body");
    assert_eq!(level, 0);
}

// rule T3: an uncaught cancellation of the main task ends `block_on` with a panic carrying
// the `CancelledError` (asyncio: run_until_complete raises it); no code after the await runs.
#[test]
fn block_on_main_task_uncaught_cancel_panics_with_the_error() {
    let rt = runtime(1);
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = reached.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            current_task().unwrap().cancel(Some("bye"));
            yield_now().await;
            r2.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    }));
    let payload = r.expect_err("the main task was cancelled");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("CancelledError: bye"), "{msg}");
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
}

// rule T7 (corrected): `uncancel()` to zero withdraws a *stored* request, but one already
// passed on to an awaited task is not recalled: that task ends cancelled and the
// cancellation is raised at the awaiter's await.
#[test]
fn uncancel_does_not_recall_a_forwarded_request() {
    let lp = new_loop();
    let child = lp.create_task(pending::<()>()).unwrap();
    let child_ref = child.task_ref();
    let parent = lp
        .create_task(async move { catch_cancel(child).await.is_err() })
        .unwrap();
    let parent_ref = parent.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(parent.cancel(None));
    assert_eq!(parent_ref.uncancel(), 0);
    assert!(
        lp.run_until_complete(parent).unwrap().unwrap(),
        "still raised at the await"
    );
    assert!(child_ref.cancelled());
}

// rule T3, "repeated requests before delivery produce one cancellation": which message it
// carries, checked against CPython 3.13.0 (not the rule's "the first message", which holds
// only for a request passed on): `cancel()` stores `_cancel_message = msg` on every stored
// request, so a task cancelled twice before its first step, or twice by itself while
// running, ends with the *last* message; a task suspended on a future passes the first on
// (`fut.cancel(msg)`), the second finds the future done and is merged into it: the *first*.
#[test]
fn repeated_requests_carry_cpythons_message() {
    let lp = new_loop();
    let t = lp.create_task(pending::<()>()).unwrap();
    assert!(t.cancel(Some("a")) && t.cancel(Some("b")));
    assert_eq!(
        cancel_message(lp.run_until_complete(t).unwrap()).as_deref(),
        Some("b"),
        "stored before its first step"
    );

    let fut = lp.create_future::<()>();
    let f2 = fut.clone();
    let t = lp
        .create_task(async move {
            let _ = f2.raising().await;
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("a")) && t.cancel(Some("b")));
    assert_eq!(
        cancel_message(lp.run_until_complete(t).unwrap()).as_deref(),
        Some("a"),
        "passed on to the awaited future"
    );
    assert!(fut.cancelled());

    let t = lp
        .create_task(async {
            let me = current_task().unwrap();
            me.cancel(Some("a"));
            me.cancel(Some("b"));
            yield_now().await;
        })
        .unwrap();
    assert_eq!(
        cancel_message(lp.run_until_complete(t).unwrap()).as_deref(),
        Some("b"),
        "stored by the running task itself"
    );
}
