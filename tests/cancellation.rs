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

// rule T6: the task catches the cancellation of its second await and returns a value.
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
                Err(_) => {
                    // Divergence from asyncio (issue 3): there, `except CancelledError:
                    // return 42` finishes the task normally. With our mapping a task whose
                    // future completes while `cancelling() > 0` ends cancelled (rule T5), so
                    // the handler must `uncancel()` to finish normally, as asyncio's docs
                    // require of code that suppresses a cancellation.
                    current_task().unwrap().uncancel();
                    42
                }
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

// rule T6: the task ignores the cancellation of one await and goes on to the next.
#[test]
fn cancel_task_ignoring() {
    let lp = new_loop();
    let (tx1, rx1) = oneshot::channel::<()>();
    let (tx2, rx2) = oneshot::channel::<()>();
    let (tx3, rx3) = oneshot::channel::<i32>();
    let t = lp
        .create_task(async move {
            rx1.await.unwrap();
            if catch_cancel(rx2).await.is_err() {
                // Ignoring needs `uncancel()` too with our mapping (see
                // `cancel_task_catching`); asyncio's `except CancelledError: pass` does not.
                current_task().unwrap().uncancel();
            }
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
                    Err::<(), CancelledError>(e)
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

// rules T5, T6: the divergence from asyncio: a caught cancellation that is *not* uncancelled
// still ends the task cancelled when it returns (its value is dropped).
#[test]
fn caught_without_uncancel_ends_cancelled() {
    let lp = new_loop();
    let t = lp
        .create_task(async { catch_cancel(pending::<()>()).await.is_err() })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.cancel(Some("m")));
    let res = lp.run_until_complete(t).unwrap();
    assert_eq!(cancel_message(res).as_deref(), Some("m"));
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
