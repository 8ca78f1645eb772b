//! Eager tasks and task factories (rules T9, T10): ports of CPython's
//! `test_eager_task_factory` (`eager_completion`, `block_after_eager_step`, `current_task`,
//! `all_tasks_with_eager_completion`, `context_vars`), plus per-call eager start and a
//! naming factory.

use std::sync::{Arc, Mutex};

use aioloop::contextvars::ContextVar;
use aioloop::task::{eager_task_factory, Builder, TaskFactory};
use aioloop::{all_tasks, yield_now, LocalLoop, Runtime};

mod common;
use common::NO_WAIT;

/// A LocalLoop whose every task starts eagerly.
fn eager_loop() -> LocalLoop {
    let lp = LocalLoop::new().unwrap();
    lp.set_task_factory(Some(eager_task_factory()));
    lp
}

// T9 (eager_completion): a task that finishes in its first step is done when
// `create_task` returns, and was never queued.
#[test]
fn eager_completion() {
    let lp = eager_loop();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let out = lp
        .run_until_complete(async move {
            l.lock().unwrap().push("before");
            let l2 = l.clone();
            let t = aioloop::spawn_local(async move {
                l2.lock().unwrap().push("child ran");
                "done"
            });
            l.lock().unwrap().push("after");
            assert!(t.done(), "finished inside create_task");
            t.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, "done");
    assert_eq!(*log.lock().unwrap(), ["before", "child ran", "after"]);
}

// T9 (block_after_eager_step): a task that suspends in its first step is registered and
// continues on the loop like any other task.
#[test]
fn block_after_eager_step() {
    let lp = eager_loop();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let t = aioloop::spawn_local(async move {
            l2.lock().unwrap().push("step 1");
            yield_now().await;
            l2.lock().unwrap().push("step 2");
        });
        l.lock().unwrap().push("creator resumes");
        assert!(!t.done());
        assert!(
            all_tasks().contains(&t.task_ref()),
            "a suspended eager task is registered"
        );
        t.await.unwrap();
    })
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["step 1", "creator resumes", "step 2"]
    );
}

// T9 + L5 (current_task): inside the eager step the current task is the new task, and the
// creator is current again afterwards.
#[test]
fn current_task() {
    let rt = Runtime::builder().workers(1).eager_tasks().build().unwrap();
    rt.block_on(async {
        let creator = aioloop::current_task().expect("block_on has a main task");
        let t = aioloop::create_task(async { aioloop::current_task().unwrap().id() });
        let child_id = t.id();
        assert_eq!(
            aioloop::current_task().as_ref(),
            Some(&creator),
            "swapped back"
        );
        assert_eq!(
            t.await.unwrap(),
            child_id,
            "the child was current in its step"
        );
    });
}

// T9 (all_tasks_with_eager_completion): tasks that completed eagerly are not in all_tasks.
#[test]
fn all_tasks_with_eager_completion() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let done: Vec<_> = (0..3)
            .map(|i| aioloop::spawn_local(async move { i }))
            .collect();
        let pending = aioloop::spawn_local(std::future::pending::<()>());
        let all = all_tasks();
        for t in &done {
            assert!(t.done());
            assert!(!all.contains(&t.task_ref()));
        }
        assert!(all.contains(&pending.task_ref()));
        pending.cancel(None);
    })
    .unwrap();
}

static CV: ContextVar<&'static str> = ContextVar::with_default("cv", "default");

// T9 + T12 (context_vars): an eager task runs in a copy of its creator's context, in its
// eager step and after; its changes stay its own.
#[test]
fn context_vars() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        CV.set("creator");
        let t = aioloop::spawn_local(async {
            let first = CV.get();
            CV.set("child");
            yield_now().await;
            (first, CV.get())
        });
        assert_eq!(
            CV.get(),
            Some("creator"),
            "the child's set is invisible here"
        );
        assert_eq!(t.await.unwrap(), (Some("creator"), Some("child")));
    })
    .unwrap();
}

// T9 per call: `Builder::eager(true)` on a loop without an eager factory.
#[test]
fn eager_per_call() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(async {
        let lazy = aioloop::create_task(async { 1 });
        let eager = Builder::new().eager(true).spawn(async { 2 });
        assert!(eager.done());
        assert_eq!(lazy.await.unwrap() + eager.await.unwrap(), 3);
    });
}

// T9 (explicit choice over the factory): `Builder::eager(false)` wins over an eager task
// factory, as asyncio 3.14's `create_task(..., eager_start=False)` does; a builder that
// leaves the choice unset lets the factory decide. After CPython 3.14's
// test_eager_task_factory case for `eager_start=False` (the task is not done and its body
// has not run when `create_task` returns).
#[test]
fn explicit_lazy_overrides_eager_factory() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let ran = Arc::new(Mutex::new(None));
        let r = ran.clone();
        let t = Builder::new()
            .name("example")
            .eager(false)
            .spawn(async move {
                *r.lock().unwrap() = Some(aioloop::current_task().unwrap().name());
            });
        assert!(!t.done(), "queued, not run inside create_task");
        assert_eq!(*ran.lock().unwrap(), None);
        t.await.unwrap();
        assert_eq!(ran.lock().unwrap().as_deref(), Some("example"));
        let unset = Builder::new().name("unset").spawn(async {});
        assert!(
            unset.done(),
            "no explicit choice: the factory made it eager"
        );
    })
    .unwrap();

    // On a runtime a queued task may finish on a worker before `done()` is asked, so the
    // tell is where the first step ran: an eager one runs on the spawning thread.
    let rt = Runtime::builder().workers(1).eager_tasks().build().unwrap();
    rt.block_on(async {
        let here = std::thread::current().id();
        let step = || async { std::thread::current().id() };
        let lazy = Builder::new().eager(false).spawn(step());
        let eager = Builder::new().spawn(step());
        assert!(eager.done());
        assert_eq!(eager.await.unwrap(), here);
        assert_ne!(lazy.await.unwrap(), here, "queued: run by the worker");
    });
}

// T9: eager start only applies inside the task's own loop; from another thread the task
// is queued as usual.
#[test]
fn eager_request_from_outside_is_queued() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = Builder::new()
        .eager(true)
        .spawn_on(rt.handle(), async move {
            rx.recv().unwrap();
            std::thread::current().name().map(str::to_owned)
        });
    tx.send(()).unwrap();
    assert_eq!(rt.block_on(t).unwrap().as_deref(), Some("aioloop-worker-0"));
}

// T10: a task factory sees every task's options; here it names unnamed tasks and leaves
// named ones alone.
#[test]
fn task_factory_names_tasks() {
    let seen = Arc::new(Mutex::new(0));
    let s = seen.clone();
    let factory = TaskFactory::new(move |b: Builder| {
        *s.lock().unwrap() += 1;
        if b.get_name().is_some() {
            b
        } else {
            b.name("from-factory")
        }
    });
    let rt = Runtime::builder()
        .workers(1)
        .task_factory(factory)
        .build()
        .unwrap();
    assert_eq!(rt.spawn(async {}).name(), "from-factory");
    assert_eq!(
        Builder::new()
            .name("mine")
            .spawn_on(rt.handle(), async {})
            .name(),
        "mine"
    );
    rt.block_on(async {
        assert_eq!(aioloop::create_task(async {}).name(), "from-factory");
    });
    assert_eq!(*seen.lock().unwrap(), 3);
}

// T10 on a LocalLoop: set, read back, and unset.
#[test]
fn local_loop_task_factory_can_be_removed() {
    let lp = eager_loop();
    assert!(lp.get_task_factory().is_some());
    let t = lp.create_task(async {}).unwrap();
    assert!(
        !t.done(),
        "created from outside the running loop: queued, not eager"
    );
    lp.set_task_factory(None);
    assert!(lp.get_task_factory().is_none());
    lp.run_until_complete(async {
        assert!(!aioloop::spawn_local(async {}).done());
    })
    .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.done());
}
