//! The task API a porter reaches for (issue 10, items 7 and 9): `create_task(..., context=)`
//! and `Task::get_context()` (T12), `Task::exception()` (F3 for tasks), reading a done task's
//! value in one call (`try_result`).
//!
//! Ported from CPython's test_tasks (test_context_4/5/6, test_exception, test_get_context)
//! with the divergence that a `Context` is passed by value: what the task set is read back
//! through `Task::get_context()` rather than through the caller's own `ctx` object.

use std::future::pending;

use aioloop::contextvars::{copy_context, Context, ContextVar};
use aioloop::task::Builder;
use aioloop::TaskResultError;

mod common;
use common::{guarded, new_loop, runtime, wait_until};

static CVAR: ContextVar<u32> = ContextVar::new("cvar");

/// Rule T12; CPython test_context_4/5/6: two tasks created with `context=ctx` in turn each
/// set the variable in that context; the creator sees `None`, then 1, then 2. Here the
/// context travels by value: each task's `get_context()` is handed to the next.
#[test]
fn t12_create_task_with_context_chain() {
    let ret = guarded("context chain", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut ret = Vec::new();
            let mut ctx = copy_context();
            ret.push(ctx.run(|| CVAR.get()));
            let t1 = Builder::new().context(ctx).spawn(async {
                aioloop::yield_now().await;
                CVAR.set(1);
            });
            let ctx1 = {
                let mut t1 = t1;
                (&mut t1).await.unwrap();
                t1.get_context()
            };
            let mut probe = ctx1.clone();
            ret.push(probe.run(|| CVAR.get()));
            let mut t2 = Builder::new().context(ctx1).spawn(async {
                aioloop::yield_now().await;
                CVAR.set(2);
            });
            (&mut t2).await.unwrap();
            ret.push(t2.get_context().run(|| CVAR.get()));
            // The creator's own context never saw the task's sets.
            ret.push(CVAR.get());
            ret
        })
    });
    assert_eq!(ret, [None, Some(1), Some(2), None]);
}

/// Rule T12; CPython test_get_context (3.12): the task runs in the context it was given,
/// not in a copy of its creator's; `get_context()` from inside the task is its current one.
#[test]
fn t12_given_context_replaces_the_creators() {
    let lp = new_loop();
    let mut given = Context::new();
    given.run(|| CVAR.set(10));
    let seen = lp
        .run_until_complete(async move {
            CVAR.set(99); // the creator's value: not inherited
            let t = Builder::new().context(given).spawn(async {
                let inside = aioloop::current_task().unwrap().get_context();
                (CVAR.get(), inside.clone().run(|| CVAR.get()))
            });
            t.await.unwrap()
        })
        .unwrap();
    assert_eq!(seen, (Some(10), Some(10)));
}

/// Rule T12: an empty given context means the task starts with no values, even though its
/// creator has some.
#[test]
fn t12_empty_given_context() {
    let rt = runtime(1);
    let seen = rt.block_on(async {
        CVAR.set(5);
        Builder::new()
            .context(Context::new())
            .spawn(async { CVAR.get() })
            .await
            .unwrap()
    });
    assert_eq!(seen, None);
}

/// Rule T10 with T12: a task factory sees (and keeps) the given context.
#[test]
fn t12_context_survives_task_factory() {
    let lp = new_loop();
    lp.set_task_factory(Some(aioloop::task::TaskFactory::new(|b| {
        b.name("via-factory")
    })));
    let mut given = Context::new();
    given.run(|| CVAR.set(3));
    let (name, v) = lp
        .run_until_complete(async move {
            let t = Builder::new().context(given).spawn(async { CVAR.get() });
            let name = t.name();
            (name, t.await.unwrap())
        })
        .unwrap();
    assert_eq!((name.as_str(), v), ("via-factory", Some(3)));
}

/// Rule F3 (for tasks); CPython test_futures test_exception / test_tasks test_exception:
/// `exception()` while running is InvalidStateError "Exception is not set."; on a task that
/// finished it is `None`; on a panicked one the panic; on a cancelled one CancelledError.
/// It only looks: `result()` still gives the outcome afterwards.
#[test]
fn f3_task_exception() {
    let rt = runtime(2);
    let mut running = rt.spawn(pending::<()>());
    match running.exception() {
        Err(TaskResultError::InvalidState(e)) => assert_eq!(e.message(), "Exception is not set."),
        other => panic!("expected InvalidStateError, got {other:?}"),
    }
    running.cancel(Some("stop"));
    let mut ok = rt.spawn(async { 7 });
    let mut bad = rt.spawn(async { panic!("boom") });
    wait_until("all done", || running.done() && ok.done() && bad.done());

    assert!(ok.exception().unwrap().is_none());
    assert!(ok.exception().unwrap().is_none()); // repeatable
    assert_eq!(ok.try_result().unwrap(), 7);

    assert_eq!(
        bad.exception().unwrap().expect("a panic").message(),
        Some("boom")
    );
    match bad.try_result() {
        Err(TaskResultError::Panicked(p)) => assert_eq!(p.message(), Some("boom")),
        other => panic!("expected the panic, got {other:?}"),
    }

    match running.exception() {
        Err(TaskResultError::Cancelled(c)) => assert_eq!(c.message(), Some("stop")),
        other => panic!("expected CancelledError, got {other:?}"),
    }
    assert!(running.result().unwrap().unwrap_err().is_cancelled());
    // Taken: both readers now say so.
    assert!(matches!(
        running.exception(),
        Err(TaskResultError::InvalidState(e)) if e.message() == "Result has already been retrieved."
    ));
}

/// Rule F3 (tasks): `exception()` counts as retrieving a panic (T8): no "never retrieved"
/// report when the handle is then dropped without reading the result.
#[test]
fn t8_exception_retrieves_the_panic() {
    use std::sync::{Arc, Mutex};
    let reports = Arc::new(Mutex::new(0));
    let lp = new_loop();
    let r = reports.clone();
    lp.set_exception_handler(Some(Arc::new(move |_: &aioloop::ExceptionContext| {
        *r.lock().unwrap() += 1;
    })));
    let mut t = lp.create_task(async { panic!("seen") }).unwrap();
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    while !t.done() {
        lp.run_once(common::NO_WAIT).unwrap();
    }
    assert!(t.exception().unwrap().is_some());
    drop(t);
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    assert_eq!(*reports.lock().unwrap(), 0);
}

/// Issue 10 item 9: a finished task's value in one call, `?` included.
#[test]
fn try_result_is_one_call() {
    fn read(t: &mut aioloop::Task<u8>) -> Result<u8, TaskResultError> {
        let v = t.try_result()?;
        Ok(v + 1)
    }
    let rt = runtime(1);
    let mut t = rt.spawn(async { 4u8 });
    wait_until("done", || t.done());
    assert_eq!(read(&mut t).unwrap(), 5);
    assert!(matches!(
        read(&mut t),
        Err(TaskResultError::InvalidState(_))
    ));
    let mut p = rt.spawn(pending::<u8>());
    let err = read(&mut p).unwrap_err();
    assert_eq!(err.to_string(), "InvalidStateError: Result is not ready.");
}

/// Rule T12; CPython test_context_6 (`loop.create_task(coro, context=ctx)`) on a
/// `LocalLoop`, with a `!Send` future: `Builder::spawn_local` takes the context.
#[test]
fn t12_local_create_task_with_context() {
    let lp = new_loop();
    let ret = lp
        .run_until_complete(async {
            let mut ret = Vec::new();
            let mut ctx = copy_context();
            ret.push(ctx.run(|| CVAR.get()));
            let mut ctx_out = ctx;
            for val in [1, 2] {
                let local = std::rc::Rc::new(val); // !Send
                let mut t = Builder::new().context(ctx_out).spawn_local(async move {
                    aioloop::yield_now().await;
                    CVAR.set(*local);
                });
                (&mut t).await.unwrap();
                ctx_out = t.get_context();
                ret.push(ctx_out.clone().run(|| CVAR.get()));
            }
            ret
        })
        .unwrap();
    assert_eq!(ret, [None, Some(1), Some(2)]);
}

/// Rule T12 (issue 10): `get_context()` while the task is running. From the task itself it
/// is its current context (what this step set included); from another thread while a worker
/// polls it, a copy as the step in progress began (the divergence table's T12 row: asyncio
/// returns the context object itself); once the step ends, what it set is seen too.
#[test]
fn t12_get_context_mid_poll() {
    guarded("get_context mid-poll", || {
        let rt = runtime(2);
        let (running_tx, running) = std::sync::mpsc::channel();
        let (checked_tx, checked) = std::sync::mpsc::channel::<()>();
        let t = rt.spawn(async move {
            CVAR.set(7);
            aioloop::yield_now().await; // the step that set 7 has ended
            CVAR.set(8);
            let own = aioloop::current_task()
                .unwrap()
                .get_context()
                .run(|| CVAR.get());
            // Holds this worker only until the test thread (not a worker) has looked.
            running_tx.send(own).unwrap();
            checked.recv().unwrap();
        });
        assert_eq!(running.recv().unwrap(), Some(8), "from the task itself");
        assert!(!t.done());
        let mid = t.get_context();
        assert_eq!(mid.clone().run(|| CVAR.get()), Some(7), "as the step began");
        checked_tx.send(()).unwrap();
        wait_until("done", || t.done());
        assert_eq!(t.get_context().run(|| CVAR.get()), Some(8), "as it ended");
        assert_eq!(rt.block_on(t).unwrap(), ());
    });
}

/// Rule T12: the empty cases of `get_context()`: a task that sets nothing (before its first
/// step, mid-poll from another thread, and after), and one given an empty context.
#[test]
fn t12_get_context_empty_cases() {
    guarded("get_context empty", || {
        let rt = runtime(2);
        // Two rendezvous with the test thread (not a worker): it looks in between.
        let steps = std::sync::Arc::new(std::sync::Barrier::new(2));
        let in_task = steps.clone();
        let t = rt.spawn(async move {
            in_task.wait();
            in_task.wait();
        });
        steps.wait();
        assert!(t.get_context().is_empty(), "mid-poll");
        steps.wait();
        wait_until("done", || t.done());
        assert!(t.get_context().is_empty(), "finished");

        let lp = new_loop();
        let given = lp
            .run_until_complete(async {
                CVAR.set(1); // the creator's value is not inherited by a given context
                let t = Builder::new()
                    .context(Context::new())
                    .spawn(pending::<()>());
                let before = t.get_context().is_empty();
                aioloop::yield_now().await;
                (before, t.get_context().is_empty())
            })
            .unwrap();
        assert_eq!(given, (true, true));
    });
}
