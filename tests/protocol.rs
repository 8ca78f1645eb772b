//! The task lifetime protocol (rules L1–L7) and task identity (T1): the registry behind
//! `all_tasks()`, the current-task slot behind `aioloop::current_task()`, and the ports of CPython's
//! introspection tests (`test__register_task_1`, `test__enter_task_failure`, …).

use std::collections::HashSet;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::task::{self, leave_task, register_task, LoopId};
use aioloop::{
    all_tasks, create_task, try_all_tasks, try_create_task, try_current_task, yield_now,
    NoRunningLoop, Runtime, Task, TaskRef,
};
use futures_channel::oneshot;

mod common;
use common::{current_id, panic_message, runtime, sorted_ids, wait_until, Counted, MetaTask};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A third-party task (see [`MetaTask`]), not yet registered, and its `TaskRef`.
fn fake(name: &str, loop_id: LoopId, done: bool) -> (Arc<MetaTask>, TaskRef) {
    let f = Arc::new(MetaTask::new(name, loop_id, done));
    let r = TaskRef::new(f.clone());
    (f, r)
}

/// Runs `f` on this thread inside a running loop of `rt` but outside any task: the `block_on`
/// main task is stepped aside for the duration (as eager start does, rule L5).
fn outside_any_task<R>(rt: &Runtime, f: impl FnOnce() -> R) -> R {
    rt.block_on(async {
        let main = task::swap_current_task(None);
        assert!(main.is_some(), "block_on runs its future as a main task");
        let r = f();
        task::swap_current_task(main.as_ref());
        r
    })
}

// ---------------------------------------------------------------------------------------------
// Ports of CPython's BaseTaskIntrospectionTests / BaseCurrentLoopTests
// ---------------------------------------------------------------------------------------------

#[test]
fn register_task_1() {
    // rule L1, L7: a registered, unfinished third-party task of the loop is listed.
    let rt = runtime(1);
    let (_f, t) = fake("reg-1", rt.handle().id(), false);
    assert!(rt.all_tasks().is_empty());
    register_task(&t);
    let listed = rt.all_tasks();
    assert_eq!(listed, vec![t.clone()]);
    assert_eq!(listed[0].name(), "reg-1");
    assert!(!listed[0].is_builtin());
    task::unregister_task(&t);
    assert!(rt.all_tasks().is_empty());
}

#[test]
fn register_task_2() {
    // rule L1, L7: same, but the loop is found implicitly (`all_tasks()` inside the running
    // loop) instead of being named; the block_on main task is listed beside it.
    let rt = runtime(1);
    rt.block_on(async {
        let main = aioloop::current_task().expect("main task");
        let (_f, t) = fake("reg-2", task::current_loop_id().unwrap(), false);
        assert_eq!(sorted_ids(&all_tasks()), vec![main.id()]);
        register_task(&t);
        assert_eq!(
            sorted_ids(&all_tasks()),
            sorted_ids(&[main.clone(), t.clone()])
        );
        task::unregister_task(&t);
        assert_eq!(sorted_ids(&all_tasks()), vec![main.id()]);
    });
}

#[test]
fn register_task_3() {
    // rule L7: a registered task that is done is not listed.
    let rt = runtime(1);
    let (f, t) = fake("reg-3", rt.handle().id(), true);
    assert!(rt.all_tasks().is_empty());
    register_task(&t);
    assert!(rt.all_tasks().is_empty());
    // `done` is read at snapshot time: the same task, not done, is listed; done again, not.
    f.done.store(false, Ordering::Release);
    assert_eq!(rt.all_tasks(), vec![t.clone()]);
    f.done.store(true, Ordering::Release);
    assert!(rt.all_tasks().is_empty());
    task::unregister_task(&t);
}

#[test]
fn register_task_twice_is_harmless() {
    // rule L1: registering twice lists the task once; one unregister removes it.
    let rt = runtime(1);
    let (_f, t) = fake("twice", rt.handle().id(), false);
    register_task(&t);
    register_task(&t);
    assert_eq!(rt.all_tasks(), vec![t.clone()]);
    task::unregister_task(&t);
    assert!(rt.all_tasks().is_empty());

    // Same for a built-in task, which the runtime registered already at creation (rule T2).
    let b = rt.spawn(std::future::pending::<()>());
    let r = b.task_ref();
    register_task(&r);
    register_task(&r);
    assert_eq!(rt.all_tasks(), vec![r]);
}

#[test]
fn registry_does_not_keep_finished_task_alive() {
    // rule L1: once a (detached) built-in task finishes, its future and its unread output are
    // released even though the registry listed it.
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<()>();
    let in_future = Counted(drops.clone());
    let output = Counted(drops.clone());
    let t = rt.spawn(async move {
        let _held = in_future;
        rx.await.unwrap();
        output
    });
    let r = t.task_ref();
    assert!(rt.all_tasks().contains(&r));
    t.detach();
    tx.send(()).unwrap();
    wait_until(
        "the finished task's future and output to be dropped",
        || drops.load(Ordering::SeqCst) == 2,
    );
    assert!(r.done());
    assert!(!rt.all_tasks().contains(&r));
}

#[test]
fn unregister_task() {
    // rule L2: unregistering removes the task from all_tasks(); for a built-in task,
    // registering it again makes it visible again.
    let rt = runtime(1);
    let (_f, t) = fake("unreg", rt.handle().id(), false);
    register_task(&t);
    task::unregister_task(&t);
    assert!(rt.all_tasks().is_empty());

    let b = rt.spawn(std::future::pending::<()>());
    let r = b.task_ref();
    assert_eq!(rt.all_tasks(), vec![r.clone()]);
    task::unregister_task(&r);
    assert!(rt.all_tasks().is_empty());
    register_task(&r);
    assert_eq!(rt.all_tasks(), vec![r]);
}

#[test]
fn unregister_task_not_registered() {
    // rule L2: unregistering an unknown task is a no-op, never an error.
    let rt = runtime(1);
    let (_f, t) = fake("never-registered", rt.handle().id(), false);
    task::unregister_task(&t);
    task::unregister_task(&t);
    assert!(rt.all_tasks().is_empty());
    // A registered task of the same loop is unaffected by it.
    let (_g, u) = fake("registered", rt.handle().id(), false);
    register_task(&u);
    task::unregister_task(&t);
    assert_eq!(rt.all_tasks(), vec![u.clone()]);
    task::unregister_task(&u);
}

#[test]
fn enter_task() {
    // rule L3, L4, L6: enter makes the task current; leave clears the slot.
    let rt = runtime(1);
    let (_f, t) = fake("enter", rt.handle().id(), false);
    outside_any_task(&rt, || {
        assert_eq!(aioloop::current_task(), None);
        task::enter_task(&t).unwrap();
        let cur = aioloop::current_task().expect("entered task is current");
        assert_eq!(cur, t);
        assert_eq!(cur.name(), "enter");
        leave_task(&t).unwrap();
        assert_eq!(aioloop::current_task(), None);
    });
}

#[test]
fn enter_task_failure() {
    // rule L3: entering while another task is current fails with asyncio's message and leaves
    // the current task unchanged.
    let rt = runtime(1);
    let (_f1, t1) = fake("first", rt.handle().id(), false);
    let (_f2, t2) = fake("second", rt.handle().id(), false);
    outside_any_task(&rt, || {
        task::enter_task(&t1).unwrap();
        let err = task::enter_task(&t2).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Cannot enter into task <Task pending name='second' id={}> while another task \
                 <Task pending name='first' id={}> is being executed.",
                t2.id(),
                t1.id()
            )
        );
        assert_eq!(aioloop::current_task(), Some(t1.clone()));
        leave_task(&t1).unwrap();
        assert_eq!(aioloop::current_task(), None);
    });
}

#[test]
fn enter_task_while_main_task_is_current() {
    // rule L3, L6: inside block_on the main task is current, so entering another task fails
    // naming the main task.
    let rt = runtime(1);
    let (_f, t) = fake("intruder", rt.handle().id(), false);
    rt.block_on(async {
        let main = aioloop::current_task().expect("main task");
        let err = task::enter_task(&t).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Cannot enter into task <Task pending name='intruder' id={}> while another task \
                 <Task pending name='Task-{}' id={}> is being executed.",
                t.id(),
                main.id(),
                main.id()
            )
        );
        assert_eq!(aioloop::current_task(), Some(main));
    });
}

#[test]
fn leave_task_failure1() {
    // rule L4: leaving a task that is not the current one fails and changes nothing.
    let rt = runtime(1);
    let (_f1, t1) = fake("current-one", rt.handle().id(), false);
    let (_f2, t2) = fake("other-one", rt.handle().id(), false);
    outside_any_task(&rt, || {
        task::enter_task(&t1).unwrap();
        let err = leave_task(&t2).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Leaving task <Task pending name='other-one' id={}> does not match the current \
                 task <Task pending name='current-one' id={}>.",
                t2.id(),
                t1.id()
            )
        );
        assert_eq!(aioloop::current_task(), Some(t1.clone()));
        leave_task(&t1).unwrap();
        assert_eq!(aioloop::current_task(), None);
    });
}

#[test]
fn leave_task_failure2() {
    // rule L4: leaving with no current task fails, showing the current task as None.
    let rt = runtime(1);
    let (_f, t) = fake("lonely", rt.handle().id(), false);
    outside_any_task(&rt, || {
        let err = leave_task(&t).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Leaving task <Task pending name='lonely' id={}> does not match the current \
                 task None.",
                t.id()
            )
        );
        assert_eq!(aioloop::current_task(), None);
    });
}

#[test]
fn swap_current_task() {
    // rule L5: swap sets the slot and returns the previous value; it never fails.
    let rt = runtime(1);
    let (_f1, t1) = fake("swap-1", rt.handle().id(), false);
    let (_f2, t2) = fake("swap-2", rt.handle().id(), false);
    outside_any_task(&rt, || {
        assert_eq!(task::swap_current_task(Some(&t1)), None);
        assert_eq!(aioloop::current_task(), Some(t1.clone()));
        // Also while another task is current, where enter_task would fail.
        assert_eq!(task::swap_current_task(Some(&t2)), Some(t1.clone()));
        assert_eq!(aioloop::current_task(), Some(t2.clone()));
        // The swapped-in task can be left through the protocol.
        leave_task(&t2).unwrap();
        assert_eq!(task::swap_current_task(None), None);
        assert_eq!(aioloop::current_task(), None);
    });
}

// CPython test_tasks: test_current_task_no_running_loop and
// test_current_task_no_running_loop_implicit (`asyncio.current_task()` with no loop argument).
#[test]
fn current_task_no_running_loop() {
    // rule L6: with no running loop on this thread, aioloop::current_task() is "no running event loop".
    assert_eq!(try_current_task(), Err(NoRunningLoop));
    let payload = catch_unwind(aioloop::current_task).unwrap_err();
    let msg = panic_message(&*payload);
    assert!(msg.contains("no running event loop"), "{msg}");

    // A runtime that exists but is not running on this thread changes nothing…
    let rt = runtime(1);
    assert_eq!(try_current_task(), Err(NoRunningLoop));
    // …and after block_on returns there is no running loop again.
    rt.block_on(async { assert!(try_current_task().unwrap().is_some()) });
    assert_eq!(try_current_task(), Err(NoRunningLoop));
    assert_eq!(task::current_loop_id(), None);
}

#[test]
fn all_tasks_and_create_task_no_running_loop() {
    // rule L6, L7, T2: the other loop-bound functions fail the same way outside a runtime.
    assert_eq!(try_all_tasks().unwrap_err(), NoRunningLoop);
    let msg = panic_message(&*catch_unwind(all_tasks).unwrap_err());
    assert!(msg.contains("no running event loop"), "{msg}");

    let err = try_create_task(async {}).unwrap_err();
    assert_eq!(err, NoRunningLoop);
    assert_eq!(err.to_string(), "no running event loop");
    let msg = panic_message(&*catch_unwind(|| create_task(async {})).unwrap_err());
    assert!(msg.contains("no running event loop"), "{msg}");

    // An explicit runtime can still be asked from outside (asyncio's all_tasks(loop)).
    let rt = runtime(1);
    assert!(rt.all_tasks().is_empty());
}

#[test]
fn create_task_no_running_loop_drops_the_coroutine_once() {
    // rule L7: create_task with no running loop fails, and the future it was given is
    // dropped there, once (asyncio closes the coroutine), never polled.
    let drops = Arc::new(AtomicUsize::new(0));
    let held = Counted(drops.clone());
    let err = try_create_task(async move {
        let _held = held;
        unreachable!("never polled");
    })
    .unwrap_err();
    assert_eq!(err, NoRunningLoop);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn current_task() {
    // rule L6: inside a task aioloop::current_task() is that task, across awaits; in block_on it is
    // the main task, which is not the child.
    let rt = runtime(2);
    let child = rt.spawn(async {
        let before = current_id();
        yield_now().await;
        let after = current_id();
        (before, after)
    });
    let child_id = child.id();
    assert_eq!(
        rt.block_on(child).unwrap(),
        (Some(child_id), Some(child_id))
    );

    let (main_id, inner, after) = rt.block_on(async {
        let main = aioloop::current_task().expect("main task");
        let t = create_task(async { current_id() });
        let t_id = t.id();
        let inner = t.await.unwrap();
        assert_eq!(inner, Some(t_id));
        (main.id(), inner, current_id())
    });
    assert_ne!(inner, Some(main_id));
    assert_eq!(after, Some(main_id));
}

#[test]
fn current_task_outside_any_task_is_none() {
    // rule L6: in a running loop but outside any task, aioloop::current_task() is None (not an error).
    let rt = runtime(1);
    let (cur, listed) = outside_any_task(&rt, || (try_current_task(), try_all_tasks()));
    assert_eq!(cur, Ok(None));
    // The main task is only stepped aside, not finished: still listed.
    assert_eq!(listed.unwrap().len(), 1);
}

#[test]
fn current_task_with_interleaving_tasks() {
    // rule L6: two tasks handing control to each other each see themselves as current before
    // and after their await — on one worker (same thread) and on two.
    for workers in [1, 2] {
        let rt = runtime(workers);
        let (tx1, rx1) = oneshot::channel::<()>();
        let (tx2, rx2) = oneshot::channel::<()>();
        let t1 = rt.spawn(async move {
            let before = current_id();
            rx1.await.unwrap();
            let after = current_id();
            tx2.send(()).unwrap();
            (before, after)
        });
        let t2 = rt.spawn(async move {
            let before = current_id();
            tx1.send(()).unwrap();
            rx2.await.unwrap();
            let after = current_id();
            (before, after)
        });
        let (id1, id2) = (t1.id(), t2.id());
        let (main, r1, r2) = rt.block_on(async {
            let r1 = t1.await.unwrap();
            let r2 = t2.await.unwrap();
            (current_id(), r1, r2)
        });
        assert_eq!(r1, (Some(id1), Some(id1)), "workers={workers}");
        assert_eq!(r2, (Some(id2), Some(id2)), "workers={workers}");
        assert!(main.is_some() && main != Some(id1) && main != Some(id2));
    }
}

// ---------------------------------------------------------------------------------------------
// all_tasks() (rule L7)
// ---------------------------------------------------------------------------------------------

#[test]
fn all_tasks_two_runtimes_side_by_side() {
    // rule L7: each runtime lists only its own unfinished tasks, even while both run a
    // block_on main task at the same time.
    let rt_a = runtime(1);
    let rt_b = runtime(1);
    let a_pending: Vec<Task<()>> = (0..3).map(|_| rt_a.spawn(std::future::pending())).collect();
    let b_pending: Vec<Task<()>> = (0..2).map(|_| rt_b.spawn(std::future::pending())).collect();
    let a_done = rt_a.spawn(async { 1 });
    let a_done_ref = a_done.task_ref();
    assert_eq!(rt_a.block_on(a_done).unwrap(), 1);
    let (tx, rx) = oneshot::channel::<()>();
    let a_later = rt_a.spawn(async move { rx.await.unwrap() });
    let a_later_ref = a_later.task_ref();

    let a_ids: Vec<u64> = a_pending.iter().map(Task::id).collect();
    let b_ids: Vec<u64> = b_pending.iter().map(Task::id).collect();
    let mut expect_a = a_ids.clone();
    expect_a.push(a_later_ref.id());
    expect_a.sort_unstable();
    assert_eq!(sorted_ids(&rt_a.all_tasks()), expect_a);
    assert!(!rt_a.all_tasks().contains(&a_done_ref));
    assert_eq!(sorted_ids(&rt_b.all_tasks()), b_ids);

    // Both block_on mains alive at once, each listed only by its own runtime.
    let barrier = Barrier::new(2);
    let (seen_a, seen_b) = thread::scope(|s| {
        let ha = s.spawn(|| {
            rt_a.block_on(async {
                barrier.wait();
                let snap = (current_id().unwrap(), sorted_ids(&all_tasks()));
                barrier.wait();
                snap
            })
        });
        let hb = s.spawn(|| {
            rt_b.block_on(async {
                barrier.wait();
                let snap = (current_id().unwrap(), sorted_ids(&all_tasks()));
                barrier.wait();
                snap
            })
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let mut want_a = expect_a.clone();
    want_a.push(seen_a.0);
    want_a.sort_unstable();
    let mut want_b = b_ids.clone();
    want_b.push(seen_b.0);
    want_b.sort_unstable();
    assert_eq!(seen_a.1, want_a);
    assert_eq!(seen_b.1, want_b);

    // A task that finishes leaves the listing.
    tx.send(()).unwrap();
    rt_a.block_on(a_later).unwrap();
    assert_eq!(sorted_ids(&rt_a.all_tasks()), a_ids);
    assert_eq!(sorted_ids(&rt_b.all_tasks()), b_ids);
}

#[test]
fn all_tasks_includes_block_on_main_task() {
    // rule L7: the block_on main task is listed while block_on runs, and only then.
    let rt = runtime(2);
    let (main, listed, from_child, from_outside) = rt.block_on(async {
        let main = aioloop::current_task().expect("main task");
        let listed = all_tasks();
        let from_child = create_task(async { sorted_ids(&all_tasks()) })
            .await
            .unwrap();
        (main, listed, from_child, rt.all_tasks())
    });
    assert_eq!(listed, vec![main.clone()]);
    // Issue 10 item 8: a real built-in task, as asyncio wraps the main coroutine in a Task.
    assert!(main.is_builtin());
    assert_eq!(main.name(), format!("Task-{}", main.id()));
    assert_eq!(main.loop_id(), rt.handle().id());
    // Seen from a worker, the main task and the child itself are listed.
    assert_eq!(from_child.len(), 2);
    assert!(from_child.contains(&main.id()));
    assert_eq!(sorted_ids(&from_outside), vec![main.id()]);
    assert!(main.done());
    assert!(rt.all_tasks().is_empty());
}

fn check_snapshot(snap: &[TaskRef], long: &HashSet<u64>, loop_id: LoopId) -> Result<(), String> {
    let mut seen = HashSet::with_capacity(snap.len());
    for t in snap {
        if t.loop_id() != loop_id {
            return Err(format!("{t} of another loop listed"));
        }
        if !seen.insert(t.id()) {
            return Err(format!("{t} listed twice"));
        }
    }
    match long.iter().find(|id| !seen.contains(id)) {
        Some(id) => Err(format!("long-lived task {id} missing from a snapshot")),
        None => Ok(()),
    }
}

#[test]
fn all_tasks_under_concurrent_spawning() {
    // rule L7: snapshots taken while 4 threads spawn 5,000 short tasks each never crash,
    // always contain every long-lived task, never list a task twice, and list only this
    // runtime's tasks.
    const SPAWNERS: u64 = 4;
    const PER_SPAWNER: u64 = 5_000;
    const LONG_LIVED: usize = 64;

    let rt = runtime(2);
    let other = runtime(1);
    let loop_id = rt.handle().id();
    let long: Vec<Task<()>> = (0..LONG_LIVED)
        .map(|_| rt.spawn(std::future::pending()))
        .collect();
    let long_ids: Arc<HashSet<u64>> = Arc::new(long.iter().map(Task::id).collect());
    // Tasks of another runtime churn in the same registry meanwhile.
    let _other_long: Vec<Task<()>> = (0..8)
        .map(|_| other.spawn(std::future::pending()))
        .collect();

    // A snapshotter inside the runtime, on a worker.
    let stop = Arc::new(AtomicBool::new(false));
    let inner = {
        let stop = stop.clone();
        let long_ids = long_ids.clone();
        rt.spawn(async move {
            let mut n = 0usize;
            loop {
                check_snapshot(&all_tasks(), &long_ids, loop_id)?;
                n += 1;
                if stop.load(Ordering::SeqCst) {
                    return Ok::<usize, String>(n);
                }
                yield_now().await;
            }
        })
    };

    let spawners: Vec<thread::JoinHandle<Vec<Task<u64>>>> = (0..SPAWNERS)
        .map(|k| {
            let h = if k == 0 {
                other.handle().clone()
            } else {
                rt.handle().clone()
            };
            let h_rt = rt.handle().clone();
            thread::spawn(move || {
                let mut out = Vec::with_capacity(PER_SPAWNER as usize);
                for i in 0..PER_SPAWNER {
                    // One spawner also feeds the other runtime every other time.
                    if k == 0 && i % 2 == 0 {
                        h.spawn(async { yield_now().await }).detach();
                    }
                    out.push(h_rt.spawn(async move {
                        if i % 3 == 0 {
                            yield_now().await;
                        }
                        i
                    }));
                }
                out
            })
        })
        .collect();

    // Snapshots from a thread outside the runtime, until the spawners are done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut outside = 0usize;
    while !spawners.iter().all(|h| h.is_finished()) || outside < 20 {
        check_snapshot(&rt.all_tasks(), &long_ids, loop_id).unwrap();
        outside += 1;
        assert!(Instant::now() < deadline, "spawner threads did not finish");
    }
    let short: Vec<Task<u64>> = spawners
        .into_iter()
        .flat_map(|h| h.join().expect("spawner thread"))
        .collect();
    assert_eq!(short.len() as u64, SPAWNERS * PER_SPAWNER);

    let (sum, inner_snapshots, final_inside) = rt.block_on(async {
        let mut sum = 0u64;
        for t in short {
            sum += t.await.unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        let n = inner.await.unwrap();
        (sum, n, sorted_ids(&all_tasks()))
    });
    assert_eq!(sum, SPAWNERS * (PER_SPAWNER * (PER_SPAWNER - 1) / 2));
    let inner_snapshots = inner_snapshots.unwrap_or_else(|e| panic!("inside snapshot: {e}"));
    assert!(inner_snapshots >= 1);
    // Quiet again: exactly the long-lived tasks (plus the main task while block_on ran).
    assert_eq!(final_inside.len(), LONG_LIVED + 1);
    let final_ids: HashSet<u64> = rt.all_tasks().iter().map(TaskRef::id).collect();
    assert_eq!(final_ids, *long_ids);
    assert_eq!(rt.all_tasks().len(), LONG_LIVED);
}

// ---------------------------------------------------------------------------------------------
// Task identity (rule T1)
// ---------------------------------------------------------------------------------------------

fn autogenerated_number(repr: &str) -> u64 {
    let rest = repr
        .strip_prefix("<Task pending name='Task-")
        .unwrap_or_else(|| panic!("unexpected repr {repr}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert!(rest[digits.len()..].starts_with('\''), "{repr}");
    digits.parse().unwrap()
}

#[test]
fn task_repr_autogenerated() {
    // rule T1: default names are Task-N with increasing N; the repr shows them.
    let rt = runtime(1);
    let (tx, rx) = oneshot::channel::<()>();
    let t1 = rt.spawn(async move {
        rx.await.unwrap();
        123
    });
    let t2 = rt.spawn(async { 123 });
    let r1 = format!("{:?}", t1);
    let r2 = t1.task_ref().to_string();
    assert_eq!(r1, r2);
    let n1 = autogenerated_number(&r1);
    assert_eq!(n1, t1.id());
    assert_eq!(r1, format!("<Task pending name='Task-{n1}' id={n1}>"));
    let t1_ref = t1.task_ref();

    // t2 may already have finished: its repr is then "finished", so build the pending one
    // from a second pending task instead.
    let (tx3, rx3) = oneshot::channel::<()>();
    let t3 = rt.spawn(async move {
        rx3.await.unwrap();
        123
    });
    let r3 = t3.task_ref().to_string();
    assert_ne!(r1, r3);
    let n3 = autogenerated_number(&r3);
    assert!(n1 < n3, "autogenerated numbers increase: {n1} then {n3}");
    assert!(t1.id() < t2.id() && t2.id() < t3.id());
    assert_eq!(t2.name(), format!("Task-{}", t2.id()));

    tx.send(()).unwrap();
    tx3.send(()).unwrap();
    assert_eq!(rt.block_on(t1).unwrap(), 123);
    assert_eq!(rt.block_on(t2).unwrap(), 123);
    assert_eq!(rt.block_on(t3).unwrap(), 123);
    assert_eq!(
        t1_ref.to_string(),
        format!("<Task finished name='Task-{n1}' id={n1}>")
    );
}

#[test]
fn task_ids_unique_across_threads() {
    // rule T1: ids are unique process-wide, also when tasks are created on several threads at
    // once (and by both runtimes and third-party tasks).
    let rt = runtime(2);
    let per_thread = 2_000;
    let all: Vec<u64> = thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let h = rt.handle().clone();
                s.spawn(move || {
                    (0..per_thread)
                        .map(|_| {
                            if k == 3 {
                                task::next_task_id()
                            } else {
                                let t = h.spawn(async {});
                                assert_eq!(t.name(), format!("Task-{}", t.id()));
                                t.id()
                            }
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
    assert!(!unique.contains(&0));
}

#[test]
fn builder_names_a_task() {
    // rule T1: a task created with a name carries it everywhere a task is shown.
    let rt = runtime(2);
    let (tx, rx) = oneshot::channel::<()>();
    let t = task::Builder::new()
        .name("x")
        .spawn_on(rt.handle(), async move {
            rx.await.unwrap();
            aioloop::current_task().map(|c| c.name())
        });
    assert_eq!(t.name(), "x");
    let r = t.task_ref();
    assert_eq!(
        r.to_string(),
        format!("<Task pending name='x' id={}>", t.id())
    );
    let listed = rt.all_tasks();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name(), "x");
    tx.send(()).unwrap();
    assert_eq!(rt.block_on(t).unwrap().as_deref(), Some("x"));
    assert_eq!(r.name(), "x");

    // From inside the loop, through create_task's builder form.
    let (name, default_name, id) = rt.block_on(async {
        let named = task::Builder::new()
            .name("inner")
            .spawn(async { aioloop::current_task().unwrap().name() });
        let plain = create_task(async { aioloop::current_task().unwrap().name() });
        let id = plain.id();
        (named.await.unwrap(), plain.await.unwrap(), id)
    });
    assert_eq!(name, "inner");
    assert_eq!(default_name, format!("Task-{id}"));
}

// rule L6 (CPython test_tasks.test_current_task, `asyncio.current_task(loop=...)`): with an
// explicit loop the call never fails: None before the task runs and after it finished, the
// task while it runs (across an await), and None when asked about a loop other than the one
// running on this thread — on a LocalLoop and on a runtime.
#[test]
fn current_task_with_explicit_loop() {
    use aioloop::task::current_task_of;
    let lp = aioloop::LocalLoop::new().unwrap();
    let id = lp.id();
    assert!(
        current_task_of(id).is_none(),
        "no loop running: None, not an error"
    );
    let t = lp
        .create_task(async move {
            let me = aioloop::current_task().unwrap();
            assert_eq!(current_task_of(id), Some(me.clone()));
            yield_now().await;
            assert_eq!(current_task_of(id), Some(me));
            let other = runtime(1);
            assert!(
                current_task_of(other.handle().id()).is_none(),
                "another loop"
            );
            drop(other);
        })
        .unwrap();
    assert!(current_task_of(id).is_none());
    lp.run_until_complete(t).unwrap().unwrap();
    assert!(current_task_of(id).is_none(), "after the task finished");

    let rt = runtime(2);
    let rid = rt.handle().id();
    let inside = rt.block_on(rt.spawn(async move {
        let me = aioloop::current_task().unwrap();
        current_task_of(rid) == Some(me) && current_task_of(id).is_none()
    }));
    assert!(inside.unwrap());
    assert!(current_task_of(rid).is_none());
}
