//! Looking into a running program (rules O4–O7): creation sites and poll records, await
//! edges and call graphs, debug-mode slow-poll reports, the task dump and its signal.

use std::future::pending;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use aioloop::{
    AwaitKind, AwaitTarget, ExceptionContext, TaskGroup, TaskGroupError, TaskInfo, TaskState,
};

fn tracked(workers: usize) -> aioloop::Runtime {
    aioloop::Runtime::builder()
        .workers(workers)
        .track_tasks(true)
        .build()
        .unwrap()
}

/// Waits (yielding) until `task` has been polled and is suspended.
async fn until_waiting(task: &aioloop::TaskRef) {
    while TaskInfo::of(task).is_some_and(|i| i.state != TaskState::Waiting) {
        aioloop::sleep(Duration::from_millis(1)).await;
    }
}

/// O4: with task tracking, a task records where it was created (`#[track_caller]`), its
/// poll count and the worker that polled it.
#[test]
fn creation_site_and_poll_record_with_tracking() {
    let rt = tracked(1);
    let (lines, info) = rt
        .block_on(rt.spawn(async {
            let before = line!();
            let t = aioloop::task::Builder::new()
                .name("sleeper")
                .spawn(pending::<()>());
            let after = line!();
            until_waiting(&t.task_ref()).await;
            (before..after, TaskInfo::of(&t.task_ref()).unwrap())
        }))
        .unwrap();
    let site = info.site.expect("tracked");
    assert_eq!(site.file(), file!());
    assert!(lines.contains(&site.line()), "{site} not in {lines:?}");
    assert_eq!(info.polls, Some(1));
    assert_eq!(info.worker, Some(0));
    assert!(info.age.is_some() && info.since_last_poll.is_some());
}

/// O4: without tracking (and outside debug mode) nothing is recorded; debug mode tracks.
#[test]
fn nothing_recorded_without_tracking_debug_mode_tracks() {
    let lp = aioloop::LocalLoop::new().unwrap();
    let plain = lp.create_task(pending::<()>()).unwrap();
    lp.set_debug(true);
    let debug = lp.create_task(pending::<()>()).unwrap();
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    let plain = TaskInfo::of(&plain.task_ref()).unwrap();
    assert_eq!((plain.site, plain.polls), (None, None));
    assert_eq!(plain.state, TaskState::Waiting);
    let debug = TaskInfo::of(&debug.task_ref()).unwrap();
    assert_eq!(debug.site.unwrap().file(), file!());
    assert_eq!(debug.polls, Some(1));
}

/// O4: the state of the task running the inspection is `running`.
#[test]
fn a_task_sees_itself_running() {
    let rt = tracked(1);
    let state = rt
        .block_on(rt.spawn(async {
            TaskInfo::of(&aioloop::current_task().unwrap())
                .unwrap()
                .state
        }))
        .unwrap();
    assert_eq!(state, TaskState::Running);
}

/// O5: `child.await` records the edge parent → child while the child is pending, and
/// forgets it once the await is over.
#[test]
fn join_await_edge_recorded_and_cleared() {
    let rt = tracked(2);
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let graphs = rt
        .block_on(rt.spawn(async move {
            let child = aioloop::task::Builder::new()
                .name("child")
                .spawn(async move {
                    let rx = rx.clone();
                    aioloop::sleep(Duration::from_millis(1)).await;
                    while rx.lock().unwrap().try_recv().is_err() {
                        aioloop::sleep(Duration::from_millis(1)).await;
                    }
                });
            let child_ref = child.task_ref();
            let parent = aioloop::task::Builder::new()
                .name("parent")
                .spawn(async move { child.await.unwrap() });
            until_waiting(&parent.task_ref()).await;
            let during = aioloop::capture_call_graph(&child_ref).unwrap();
            let parent_during = aioloop::capture_call_graph(&parent.task_ref()).unwrap();
            tx.send(()).unwrap();
            parent.await.unwrap();
            (during, parent_during)
        }))
        .unwrap();
    let (during, parent_during) = graphs;
    assert_eq!(during.awaited_by.len(), 1);
    assert_eq!(during.awaited_by[0].kind, AwaitKind::Join);
    assert_eq!(during.awaited_by[0].graph.task.name, "parent");
    assert_eq!(parent_during.awaits[0].graph.task.name, "child");
    assert_eq!(
        parent_during.task.awaiting,
        Some(AwaitTarget::Task(during.task.id))
    );
}

/// O5: after a join completes, the awaiter no longer records it.
#[test]
fn finished_join_leaves_no_edge() {
    let rt = tracked(1);
    let info = rt
        .block_on(rt.spawn(async {
            let child = aioloop::create_task(async {
                aioloop::sleep(Duration::from_millis(1)).await;
            });
            child.await.unwrap();
            TaskInfo::of(&aioloop::current_task().unwrap()).unwrap()
        }))
        .unwrap();
    assert_eq!(info.awaiting, None);
}

/// O5: a task group's children are awaited by the group's parent; a child blocked on an
/// `aioloop::Future` shows it. The formatted graph is asyncio's shape.
#[test]
fn task_group_and_future_edges() {
    let rt = tracked(2);
    let (tx, rx) = mpsc::channel();
    let sup = rt.spawn(async move {
        TaskGroup::new()
            .run(|tg| async move {
                let fut = aioloop::create_future::<u8>();
                tg.create_task_named("stuck", async move {
                    let _ = fut.await;
                })?;
                let stuck = aioloop::all_tasks()
                    .into_iter()
                    .find(|t| t.name() == "stuck")
                    .unwrap();
                until_waiting(&stuck).await;
                tx.send(aioloop::format_call_graph(&stuck).unwrap())
                    .unwrap();
                pending::<()>().await;
                Ok::<_, TaskGroupError>(())
            })
            .await
    });
    let text = rx.recv().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("* Task(name='stuck'"), "{text}");
    assert!(lines[1].starts_with("+ awaits: Future 0x"), "{text}");
    assert_eq!(lines[2], "+ awaited by:", "{text}");
    assert!(lines[3].contains("[TaskGroup] Task(name='Task-"), "{text}");
    sup.cancel(None);
    assert!(rt.block_on(sup).unwrap_err().is_cancelled());
}

/// O5: gather's members are awaited by the task that called gather.
#[test]
fn gather_edges() {
    let rt = tracked(1);
    let (kind, parent_is_caller) = rt
        .block_on(rt.spawn(async {
            let me = aioloop::current_task().unwrap().id();
            // Every task alive before the gather (`block_on`'s main task among them).
            let before: Vec<u64> = aioloop::all_tasks().iter().map(|t| t.id()).collect();
            let g = aioloop::gather(vec![pending::<()>(), pending::<()>()]);
            aioloop::yield_now().await;
            let member = aioloop::all_tasks()
                .into_iter()
                .find(|t| t.is_builtin() && !before.contains(&t.id()))
                .unwrap();
            let graph = aioloop::capture_call_graph(&member).unwrap();
            drop(g); // cancels the members
            let up = &graph.awaited_by[0];
            (up.kind, up.graph.task.id == me)
        }))
        .unwrap();
    assert_eq!(kind, AwaitKind::Gather);
    assert!(parent_is_caller);
}

fn collecting(lp_set: impl FnOnce(aioloop::ExceptionHandler)) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    lp_set(Arc::new(move |ctx: &ExceptionContext| {
        s.lock().unwrap().push(format!(
            "{} | task={}",
            ctx.message,
            ctx.task.as_ref().map_or_else(String::new, |t| t.name())
        ))
    }));
    seen
}

/// O6 (asyncio's slow_callback_duration): in debug mode a poll that holds the loop longer
/// is reported with the task's name and creation site.
#[test]
fn slow_poll_reported_in_debug_mode() {
    let lp = aioloop::LocalLoop::new().unwrap();
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::from_millis(5));
    let seen = collecting(|h| lp.set_exception_handler(Some(h)));
    let blocker = async { std::thread::sleep(Duration::from_millis(20)) };
    let (t, line) = (lp.create_task_named("blocker", blocker).unwrap(), line!());
    lp.run_until_complete(t).unwrap().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("Executing <Task"), "{seen:?}");
    assert!(seen[0].contains("name='blocker'"), "{seen:?}");
    assert!(
        seen[0].contains(&format!("created at {}:{line}", file!())),
        "{seen:?}"
    );
    assert!(seen[0].ends_with("| task=blocker"), "{seen:?}");
}

/// O6: a slow callback is reported too; nothing is reported outside debug mode.
#[test]
fn slow_callback_reported_only_in_debug_mode() {
    let lp = aioloop::LocalLoop::new().unwrap();
    lp.set_slow_callback_duration(Duration::from_millis(5));
    let seen = collecting(|h| lp.set_exception_handler(Some(h)));
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(20)))
        .unwrap();
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(1)))
        .unwrap();
    assert!(seen.lock().unwrap().is_empty());
    lp.set_debug(true);
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(20)))
        .unwrap();
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(1)))
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("Executing <Handle"), "{seen:?}");
}

/// O7: the dump lists a loop's tasks (and only its own), a table then an await tree.
#[test]
fn dump_lists_tasks_of_one_loop() {
    let rt = tracked(1);
    let other = tracked(1);
    let a = aioloop::task::Builder::new()
        .name("alpha")
        .spawn_on(rt.handle(), pending::<()>());
    let b = aioloop::task::Builder::new()
        .name("beta")
        .spawn_on(other.handle(), pending::<()>());
    let text = rt.handle().dump();
    assert!(
        text.starts_with("aioloop task dump: 1 live task(s), loop "),
        "{text}"
    );
    assert!(text.contains("alpha") && !text.contains("beta"), "{text}");
    assert!(text.contains(&format!("{}:", file!())), "{text}");
    assert!(
        text.contains("await tree:\n└── Task(name='alpha'"),
        "{text}"
    );
    let all = aioloop::dump();
    assert!(all.contains("alpha") && all.contains("beta"));
    drop((a, b));
}

/// O7: `dump_on_signal` writes the dump to stderr when the signal arrives. Runs itself as
/// a child process (the dump goes to the child's stderr, which the test reads).
#[cfg(unix)]
#[test]
fn dump_on_signal_writes_to_stderr() {
    if std::env::var_os("AIOLOOP_DUMP_CHILD").is_some() {
        let rt = aioloop::Runtime::builder()
            .workers(1)
            .dump_on_signal(libc::SIGUSR1)
            .build()
            .unwrap();
        let t = aioloop::task::Builder::new()
            .name("waiting-for-godot")
            .spawn_on(rt.handle(), pending::<()>());
        // SAFETY: raising a signal whose handler was installed above.
        unsafe { libc::raise(libc::SIGUSR1) };
        // Dropping the runtime joins the dump thread after its pending dump.
        drop(rt);
        drop(t);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dump_on_signal_writes_to_stderr", "--nocapture"])
        .env("AIOLOOP_DUMP_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("aioloop task dump:"), "{stderr}");
}
