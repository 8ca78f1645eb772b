//! Context variables (rule T12): a task runs in a copy of its creator's context; values it
//! sets are invisible to its creator and its siblings; done callbacks run in the context
//! captured when they were added; tokens undo a `set` and refuse misuse.

use std::sync::{Arc, Mutex};

use aioloop::contextvars::{copy_context, Context, ContextVar, ContextVarError};
use aioloop::{yield_now, TaskRef};

mod common;
use common::{new_loop, runtime, NO_WAIT};

static REQUEST: ContextVar<u64> = ContextVar::new("request");
static USER: ContextVar<String> = ContextVar::with_default("user", String::new());

// T12: the child sees the creator's value at creation, not later changes; its own changes
// stay in its copy.
#[test]
fn task_runs_in_a_copy_of_the_creators_context() {
    let rt = runtime(2);
    rt.block_on(async {
        REQUEST.set(1);
        let child = aioloop::create_task(async {
            let at_start = REQUEST.get();
            yield_now().await;
            let after_yield = REQUEST.get();
            REQUEST.set(99);
            (at_start, after_yield, REQUEST.get())
        });
        REQUEST.set(2); // after creation: not seen by the child
        assert_eq!(child.await.unwrap(), (Some(1), Some(1), Some(99)));
        assert_eq!(
            REQUEST.get(),
            Some(2),
            "the child's set is invisible to its creator"
        );
    });
}

// T12: siblings do not see each other's values, even when polled alternately on one thread.
#[test]
fn siblings_are_isolated() {
    let lp = new_loop();
    let a = lp
        .create_task(async {
            USER.set("a".into());
            yield_now().await;
            yield_now().await;
            USER.get()
        })
        .unwrap();
    let b = lp
        .create_task(async {
            yield_now().await;
            let seen = USER.get();
            USER.set("b".into());
            yield_now().await;
            (seen, USER.get())
        })
        .unwrap();
    assert_eq!(
        lp.run_until_complete(a).unwrap().unwrap().as_deref(),
        Some("a")
    );
    let (seen, own) = lp.run_until_complete(b).unwrap().unwrap();
    assert_eq!(seen.as_deref(), Some(""), "the default, not a's value");
    assert_eq!(own.as_deref(), Some("b"));
    assert_eq!(
        USER.get().as_deref(),
        Some(""),
        "nothing leaked to the loop's thread"
    );
}

// T12: a task's values survive being stolen by another worker between polls.
#[test]
fn context_follows_the_task_across_workers() {
    let rt = runtime(2);
    let out = rt.block_on(async {
        let tasks: Vec<_> = (0..64u64)
            .map(|i| {
                aioloop::create_task(async move {
                    REQUEST.set(i);
                    for _ in 0..10 {
                        yield_now().await;
                        assert_eq!(REQUEST.get(), Some(i));
                    }
                    REQUEST.get()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(out, (0..64).map(Some).collect::<Vec<_>>());
}

// T12 + F5: a done callback runs in the context captured when it was added.
#[test]
fn done_callback_runs_in_captured_context() {
    let lp = new_loop();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let t = lp.create_task(async { yield_now().await }).unwrap();
    let mut ctx = Context::new();
    ctx.run(|| {
        USER.set("registrar".into());
        let s = seen.clone();
        t.add_done_callback(Arc::new(move |_: &TaskRef| {
            s.lock().unwrap().push(USER.get().unwrap());
        }));
    });
    USER.set("loop thread".into());
    lp.run_until_complete(t).unwrap().unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["registrar"]);
}

// T12: Context::run keeps the changes made inside it, and restores the caller's context.
#[test]
fn context_run_keeps_its_changes() {
    let mut ctx = copy_context();
    ctx.run(|| REQUEST.set(7));
    assert_eq!(REQUEST.get(), None);
    assert_eq!(ctx.run(|| REQUEST.get()), Some(7));
    let snapshot = ctx.run(copy_context);
    ctx.run(|| REQUEST.set(8));
    let mut snapshot = snapshot;
    assert_eq!(
        snapshot.run(|| REQUEST.get()),
        Some(7),
        "a copy is a snapshot"
    );
}

// T12: Context::run restores the outer context even if the closure panics.
#[test]
fn context_run_restores_on_panic() {
    let mut ctx = Context::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.run(|| {
            REQUEST.set(5);
            panic!("inside");
        })
    }));
    assert!(r.is_err());
    assert_eq!(REQUEST.get(), None);
}

// Tokens: reset restores the previous value (or absence); misuse gets asyncio's errors.
#[test]
fn tokens_reset_and_refuse_misuse() {
    let v: ContextVar<i32> = ContextVar::new("v");
    let w: ContextVar<i32> = ContextVar::new("w");
    let t1 = v.set(1);
    let t2 = v.set(2);
    v.reset(t2).unwrap();
    assert_eq!(v.get(), Some(1));
    v.reset(t1).unwrap();
    assert_eq!(v.get(), None);

    let t = v.set(3);
    assert_eq!(w.reset(t), Err(ContextVarError::DifferentVar));

    let mut other = Context::new();
    let token = other.run(|| v.set(4));
    assert_eq!(v.reset(token), Err(ContextVarError::DifferentContext));
    assert_eq!(
        ContextVarError::DifferentVar.to_string(),
        "<Token> was created by a different ContextVar"
    );
}

// Values are per variable and typed; a default applies only while unset.
#[test]
fn defaults_and_names() {
    static LEVEL: ContextVar<u8> = ContextVar::with_default("level", 3);
    assert_eq!(LEVEL.name(), "level");
    assert_eq!(LEVEL.get(), Some(3));
    let mut ctx = Context::new();
    ctx.run(|| {
        LEVEL.set(9);
        assert_eq!(LEVEL.get(), Some(9));
    });
    assert_eq!(LEVEL.get(), Some(3));
    assert!(!ctx.is_empty());
    assert!(Context::new().is_empty());
}

// T12 + F5: a Future's done callback also runs in the context captured when it was added.
#[test]
fn future_callback_runs_in_captured_context() {
    let lp = new_loop();
    let fut = lp.create_future::<u8>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ctx = Context::new();
    ctx.run(|| {
        USER.set("future registrar".into());
        let s = seen.clone();
        fut.add_done_callback(Arc::new(move |_: &aioloop::Future<u8>| {
            s.lock().unwrap().push(USER.get().unwrap());
        }));
    });
    fut.set_result(1).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["future registrar"]);
}

// `reset` drops the value it replaces outside the thread-local borrow: a value whose `Drop`
// reads a context variable must not panic ("already mutably borrowed").
#[test]
fn reset_drops_the_replaced_value_outside_the_borrow() {
    static OTHER: ContextVar<u8> = ContextVar::new("other");
    struct ReadsOnDrop;
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            let _ = OTHER.get();
        }
    }
    static V: ContextVar<Arc<ReadsOnDrop>> = ContextVar::new("v");
    let token = V.set(Arc::new(ReadsOnDrop));
    V.reset(token).unwrap();
    assert!(V.get().is_none());
}

static NAME: ContextVar<&'static str> = ContextVar::with_default("name", "foo");

/// A handler that records what `NAME` reads while it runs, per report message.
fn name_recording_handler() -> (Arc<Mutex<Vec<String>>>, aioloop::ExceptionHandler) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let handler: aioloop::ExceptionHandler = Arc::new(move |ctx: &aioloop::ExceptionContext| {
        let name = NAME.get().unwrap_or("unset");
        s.lock().unwrap().push(format!("{}|{name}", ctx.message));
    });
    (seen, handler)
}

// T12 + T8 (port of test_tasks.test_task_exc_handler_correct_context, CPython 3.12+,
// gh-96704): the exception handler hearing that a task's panic was never retrieved runs in
// that task's context, and sees the value the task set — on a LocalLoop (the report at
// completion of a detached task) and on a runtime (the report when the unread handle is
// dropped on the block_on thread, whose own value differs).
#[test]
fn exception_handler_runs_in_the_tasks_context() {
    let lp = new_loop();
    let (seen, handler) = name_recording_handler();
    lp.set_exception_handler(Some(handler));
    let t = lp
        .create_task(async {
            NAME.set("bar");
            panic!("1/0");
        })
        .unwrap();
    t.detach();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["Task exception was never retrieved|bar"]
    );
    assert_eq!(
        NAME.get(),
        Some("foo"),
        "the loop thread's context is untouched"
    );

    let rt = runtime(1);
    let (seen, handler) = name_recording_handler();
    rt.handle().set_exception_handler(Some(handler));
    // Created from a thread with an empty context: the handler sees the default, not the
    // value current where the report is made.
    let empty = rt.spawn(async { panic!("no context") });
    rt.block_on(async {
        NAME.set("main");
        let r = empty.task_ref();
        while !r.done() {
            yield_now().await;
        }
        drop(empty);
        let t = aioloop::create_task(async {
            NAME.set("bar");
            panic!("1/0");
        });
        let r = t.task_ref();
        while !r.done() {
            yield_now().await;
        }
        drop(t);
        assert_eq!(
            NAME.get(),
            Some("main"),
            "the dropping task's context is back"
        );
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "Task exception was never retrieved|foo",
            "Task exception was never retrieved|bar"
        ]
    );
}
