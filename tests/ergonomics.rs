//! Ergonomics found while porting asyncio code (issue 10, item 9), each against the rule
//! it serves: the running `LocalLoop` from its own tasks (L6's `get_running_loop()`),
//! awaiting a cancelled `Future` raising into the task (T3, F3), `CancelledError::raise`
//! of any type (T6), task-group children failing by returning an error (G3, G4; CPython
//! test_taskgroups test_cancel_children_on_child_error with a raised error), a group body
//! with its own error type and an owned `run` future (G1, G4), and
//! `run_until_complete(&mut task)` (S6).

use std::future::pending;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use aioloop::{
    catch_cancel, sleep, BoxError, Failure, FutureError, LoopHandle, TaskGroup, TaskGroupError,
};

mod common;
use common::{guarded, new_loop, runtime};

/// Rule L6 (asyncio's `get_running_loop()`): a `LocalLoop`'s tasks and callbacks reach it
/// without capturing it; elsewhere `try_current` says there is none.
#[test]
fn l6_running_local_loop_from_its_tasks() {
    assert!(LoopHandle::try_current().is_err());
    let lp = new_loop();
    let id = lp.id();
    let (seen_in_task, seen_in_callback) = lp
        .run_until_complete(async {
            let child = aioloop::spawn_local(async { LoopHandle::current().id() });
            let in_task = child.await.unwrap();
            let fut = aioloop::create_future::<aioloop::task::LoopId>();
            let f = fut.clone();
            LoopHandle::current()
                .call_soon_threadsafe(move || {
                    f.set_result(LoopHandle::current().id()).unwrap();
                })
                .unwrap();
            (in_task, fut.await.unwrap())
        })
        .unwrap();
    assert_eq!((seen_in_task, seen_in_callback), (id, id));
    // A runtime's worker runs no LocalLoop.
    let rt = runtime(1);
    assert!(rt.block_on(async { LoopHandle::try_current().is_err() }));
}

/// Rule L6: the handle found is a real handle: stopping the loop from its own task.
#[test]
fn l6_stop_through_the_running_handle() {
    let lp = new_loop();
    lp.create_task(async {
        sleep(Duration::from_millis(1)).await;
        LoopHandle::current().stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
}

/// Rules T3, F3 (CPython test_cancel_inner_future's awaiting side): `fut.raising().await?`
/// in a task whose awaited future was cancelled ends the task cancelled, with the
/// future's message, and code after the await does not run.
#[test]
fn t3_awaiting_a_cancelled_future_raises_into_the_task() {
    let rt = runtime(1);
    let reached = Arc::new(AtomicBool::new(false));
    let r = reached.clone();
    let t = rt.spawn(async move {
        let fut = aioloop::create_future::<u8>();
        let f = fut.clone();
        aioloop::create_task(async move {
            f.cancel(Some("inner gone"));
        });
        let v = fut.raising().await?;
        r.store(true, Ordering::SeqCst);
        Ok::<_, FutureError>(v)
    });
    let err = rt.block_on(t).unwrap_err();
    assert!(err.is_cancelled());
    assert!(!reached.load(Ordering::SeqCst));
}

/// Rule T6: the cancellation `raising()` raises is catchable by an enclosing scope, like
/// `except CancelledError:` around `await fut`; a value or a stored error comes back as is.
#[test]
fn t6_raising_is_caught_by_an_enclosing_scope() {
    let rt = runtime(1);
    let (caught, value, stored) = rt
        .block_on(rt.spawn(async {
            let fut = aioloop::create_future::<u8>();
            fut.cancel(Some("m"));
            let caught = catch_cancel(async { fut.raising().await }).await;
            let caught = caught.unwrap_err().message().map(str::to_owned);
            let ok = aioloop::create_future::<u8>();
            ok.set_result(4).unwrap();
            let bad = aioloop::create_future::<u8>();
            bad.set_exception("broken").unwrap();
            let stored = bad.raising().await.unwrap_err().to_string();
            (caught, ok.raising().await.unwrap(), stored)
        }))
        .unwrap();
    assert_eq!(caught.as_deref(), Some("m"));
    assert_eq!(value, 4);
    assert_eq!(stored, "broken");
}

/// A handler that cleans up and passes the cancellation on, in a function returning
/// `io::Result<String>`: `cancelled.raise().await` is of that type.
async fn read_line() -> io::Result<String> {
    match catch_cancel(pending::<String>()).await {
        Ok(line) => Ok(line),
        Err(cancelled) => cancelled.raise().await,
    }
}

/// Rule T6: `raise()` re-raises to the next enclosing scope with its message, from a
/// function of any return type.
#[test]
fn t6_raise_of_any_type() {
    let rt = runtime(1);
    let (tx, started) = mpsc::channel();
    let t = rt.spawn(async move {
        let outer = catch_cancel(async {
            tx.send(()).unwrap();
            read_line().await
        })
        .await;
        aioloop::current_task().unwrap().uncancel(); // suppressed here (T6, T7)
        outer.unwrap_err().message().map(str::to_owned)
    });
    started.recv().unwrap();
    t.cancel(Some("shutdown"));
    // The outer scope caught "shutdown" re-raised from inside `read_line`.
    assert_eq!(rt.block_on(t).unwrap().as_deref(), Some("shutdown"));
}

#[derive(Debug, PartialEq)]
struct DivisionByZero;

impl std::fmt::Display for DivisionByZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("division by zero")
    }
}

impl std::error::Error for DivisionByZero {}

/// Rules G3, G4; CPython test_cancel_children_on_child_error with the children *raising*
/// (returning `Err`), not panicking: the siblings and the body's await are cancelled, and
/// the errors come back typed, in the group's error and in each failing child's `Task`.
#[test]
fn g3_child_fails_by_returning_an_error() {
    let t2_cancel = Arc::new(AtomicBool::new(false));
    let runner_cancel = Arc::new(AtomicBool::new(false));
    let (t2c, rc) = (t2_cancel.clone(), runner_cancel.clone());
    let r = guarded("child error", move || {
        let rt = runtime(2);
        rt.block_on(rt.spawn(async move {
            TaskGroup::new()
                .run(|g| async move {
                    for _ in 0..3 {
                        g.create_task_fallible(async {
                            sleep(Duration::from_millis(5)).await;
                            Err::<(), _>(DivisionByZero)
                        })?;
                    }
                    g.create_task(async move {
                        if let Err(e) = catch_cancel(sleep(Duration::from_secs(5))).await {
                            t2c.store(true, Ordering::SeqCst);
                            e.reraise().await;
                        }
                    })?;
                    if let Err(e) = catch_cancel(sleep(Duration::from_secs(10))).await {
                        rc.store(true, Ordering::SeqCst);
                        e.reraise().await;
                    }
                    Ok::<_, TaskGroupError>(())
                })
                .await
        }))
        .unwrap()
    });
    let err = r.unwrap_err();
    let failures = err.failures().unwrap();
    assert!((1..=3).contains(&failures.len()), "{failures:?}");
    for f in failures {
        match f {
            Failure::ChildError { error, .. } => {
                assert_eq!(
                    error.downcast_ref::<DivisionByZero>(),
                    Some(&DivisionByZero)
                );
            }
            other => panic!("expected a child error, got {other}"),
        }
    }
    assert!(t2_cancel.load(Ordering::SeqCst));
    assert!(runner_cancel.load(Ordering::SeqCst));
}

/// Rule G5 (the other side): a fallible child that succeeds is no failure, and its `Task`
/// yields `Ok(Ok(v))`; the failing child's `Task` yields the shared error.
#[test]
fn g3_fallible_child_outputs() {
    let lp = new_loop();
    let main = lp
        .create_task(async {
            let mut ok = None;
            let r = TaskGroup::new()
                .run(|g| {
                    let ok = &mut ok;
                    async move {
                        *ok = Some(g.create_task_fallible(async { Ok::<_, io::Error>(5) })?);
                        Ok::<_, TaskGroupError>(())
                    }
                })
                .await;
            assert!(r.is_ok());
            ok.unwrap().await.unwrap().unwrap()
        })
        .unwrap();
    assert_eq!(lp.run_until_complete(main).unwrap().unwrap(), 5);

    let main = lp
        .create_task(async {
            let mut bad = None;
            let r = TaskGroup::new()
                .run(|g| {
                    let bad = &mut bad;
                    async move {
                        *bad = Some(g.create_task_fallible(async {
                            Err::<(), _>(io::Error::other("refused"))
                        })?);
                        Ok::<_, TaskGroupError>(())
                    }
                })
                .await;
            let from_group = r.unwrap_err().failures().unwrap()[0].to_string();
            let from_task = bad.unwrap().await.unwrap().unwrap_err().to_string();
            (from_group, from_task)
        })
        .unwrap();
    let (from_group, from_task) = lp.run_until_complete(main).unwrap().unwrap();
    assert!(from_group.ends_with("failed: refused"), "{from_group}");
    assert_eq!(from_task, "refused");
}

#[derive(Debug)]
enum AppError {
    Group(TaskGroupError),
    Quota(u32),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Group(e) => e.fmt(f),
            AppError::Quota(n) => write!(f, "quota {n}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<TaskGroupError> for AppError {
    fn from(e: TaskGroupError) -> Self {
        AppError::Group(e)
    }
}

/// Rules G1, G4: a body returns its own error type — a boxed error built from a string,
/// or an application enum — while using `?` on `create_task`; the group's error gives it
/// back typed (`body_error`). And `run` yields an owned future: built from a temporary
/// group, stored, then spawned.
#[test]
fn g4_body_with_its_own_error_type_and_owned_run() {
    let rt = runtime(2);
    let (boxed, typed) = rt
        .block_on(rt.spawn(async {
            let boxed = TaskGroup::new()
                .run(|tg| async move {
                    tg.create_task(async {})?;
                    Err("boom")?;
                    Ok::<_, BoxError>(())
                })
                .await
                .unwrap_err();
            let typed = TaskGroup::new()
                .run(|tg| async move {
                    tg.create_task(async {})?;
                    Err(AppError::Quota(3))?;
                    Ok::<_, AppError>(())
                })
                .await
                .unwrap_err();
            (boxed, typed)
        }))
        .unwrap();
    assert_eq!(boxed.failures().unwrap()[0].to_string(), "boom");
    assert!(matches!(
        typed.body_error::<AppError>(),
        Some(AppError::Quota(3))
    ));

    // An owned future: no borrow of the temporary group.
    let scope = TaskGroup::new().run(|tg| async move {
        let t = tg.create_task(async { 20 })?;
        Ok::<_, TaskGroupError>(t)
    });
    let t = rt.block_on(rt.spawn(scope)).unwrap().unwrap();
    assert_eq!(rt.block_on(t).unwrap(), 20);
}

/// Rule S6: `run_until_complete(&mut task)` runs the loop until the task is done and
/// leaves the handle with the caller.
#[test]
fn s6_run_until_complete_of_a_borrowed_task() {
    let lp = new_loop();
    let mut task = lp
        .create_task(async {
            aioloop::yield_now().await;
            "v"
        })
        .unwrap();
    assert_eq!(lp.run_until_complete(&mut task).unwrap().unwrap(), "v");
    assert!(task.done() && !task.cancelled());
    assert!(task.try_result().is_err());
}
