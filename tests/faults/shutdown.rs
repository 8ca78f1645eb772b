//! Faults around shutdown: a waker that outlives its loop, destructors that spawn while the
//! runtime goes, and a runtime dropped from inside one of its own tasks.

use std::cell::RefCell;
use std::future::{pending, poll_fn};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Waker};

use aioloop::{Handle, Task};

use crate::common::{guarded, new_loop, runtime, wait_until, Counted, NO_WAIT, TIMEOUT};
use crate::support::{counted_callback, spawn_suspended};

/// A future that stores its task's waker in `slot` and stays pending, holding `guard`.
async fn park_waker(slot: Arc<Mutex<Option<Waker>>>, guard: Counted) {
    let _guard = guard;
    poll_fn(|cx| {
        *slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    })
    .await
}

/// Wakes `waker` every way there is, then drops it.
fn wake_every_way(waker: Waker) {
    waker.wake_by_ref();
    // A clone consumed by `wake`: the by-value path, distinct from `wake_by_ref`.
    #[allow(clippy::waker_clone_wake)]
    waker.clone().wake();
    let other = waker.clone();
    std::thread::spawn(move || other.wake()).join().unwrap();
    waker.wake();
}

/// Issue 8 item 6, probe "a waker kept past the runtime": a task's waker cloned out,
/// the runtime dropped (the future is dropped once, the task ends cancelled), then the
/// waker woken and dropped: nothing runs, nothing crashes, and the task is freed with the
/// last reference (LSan).
#[test]
fn waker_kept_past_the_runtime() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (waker, mut task) = guarded("waker past the runtime", move || {
        let rt = runtime(2);
        let slot = Arc::new(Mutex::new(None));
        let task = rt.spawn(park_waker(slot.clone(), Counted(d)));
        wait_until("the waker", || slot.lock().unwrap().is_some());
        drop(rt);
        let waker = slot.lock().unwrap().take().unwrap();
        (waker, task)
    });
    assert_eq!(drops.load(SeqCst), 1);
    wake_every_way(waker);
    assert!(task.result().unwrap().unwrap_err().is_cancelled());
    assert_eq!(drops.load(SeqCst), 1);
}

/// The same with a `LocalLoop` closed and dropped (its tasks' wakers are `Send`; a wake
/// from another thread after the loop is gone finds nothing to notify).
#[test]
fn waker_kept_past_a_local_loop() {
    let drops = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(Mutex::new(None));
    let lp = new_loop();
    let mut task = lp
        .create_task(park_waker(slot.clone(), Counted(drops.clone())))
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    lp.close().unwrap();
    drop(lp);
    assert_eq!(drops.load(SeqCst), 1);
    let waker = slot.lock().unwrap().take().expect("polled once");
    wake_every_way(waker);
    assert!(task.result().unwrap().unwrap_err().is_cancelled());
    assert_eq!(drops.load(SeqCst), 1);
}

/// A destructor that, while the runtime shuts down, spawns a task holding another such
/// destructor (`depth` levels in all) and queues a callback.
struct SpawnOnDrop {
    handle: Handle,
    depth: usize,
    spawned: mpsc::Sender<Task<()>>,
    dropped: Arc<AtomicUsize>,
    ran: Arc<AtomicUsize>,
}

impl SpawnOnDrop {
    fn child(&self) -> SpawnOnDrop {
        SpawnOnDrop {
            handle: self.handle.clone(),
            depth: self.depth - 1,
            spawned: self.spawned.clone(),
            dropped: self.dropped.clone(),
            ran: self.ran.clone(),
        }
    }
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
        self.handle
            .call_soon(counted_callback(&self.dropped, &self.ran));
        if self.depth > 1 {
            let child = self.child();
            let ran = self.ran.clone();
            let t = self.handle.spawn(async move {
                let _child = child;
                ran.fetch_add(1, SeqCst);
            });
            let _ = self.spawned.send(t);
        }
    }
}

/// Issue 8 item 6, probe "spawning from Drop at shutdown" (ARCHITECTURE.md "Shutdown":
/// tasks spawned after the shutdown flag is set are cancelled on the spawning thread). A
/// pending task's destructor spawns a task whose destructor spawns another, 100 levels,
/// each also queueing a `call_soon`: `drop(Runtime)` returns; no spawned task or callback
/// runs; every spawned future and every callback is dropped exactly once; every spawned
/// `Task` is done and cancelled.
#[test]
fn spawning_from_drop_at_shutdown() {
    const DEPTH: usize = 100;
    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (d, r) = (dropped.clone(), ran.clone());
    let spawned = guarded("spawn from Drop at shutdown", move || {
        let rt = runtime(2);
        let (tx, rx) = mpsc::channel();
        let (started, is_started) = mpsc::channel();
        let root = SpawnOnDrop {
            handle: rt.handle().clone(),
            depth: DEPTH,
            spawned: tx,
            dropped: d,
            ran: r,
        };
        rt.spawn(async move {
            let _root = root;
            started.send(()).unwrap();
            pending::<()>().await
        })
        .detach();
        is_started.recv().unwrap();
        drop(rt);
        rx.iter().collect::<Vec<_>>()
    });
    assert_eq!(spawned.len(), DEPTH - 1);
    assert_eq!(
        ran.load(SeqCst),
        0,
        "something ran after the shutdown began"
    );
    // Each level: its own destructor, and its callback's closure.
    assert_eq!(dropped.load(SeqCst), 2 * DEPTH);
    for mut t in spawned {
        assert!(t.result().unwrap().unwrap_err().is_cancelled());
    }
}

thread_local! {
    /// Dropped (disconnecting the receiver) when the thread exits.
    static ON_EXIT: RefCell<Option<mpsc::Sender<()>>> = const { RefCell::new(None) };
}

/// Where the runtime is dropped from.
#[derive(Clone, Copy)]
enum DropSite {
    /// A task, which then awaits once more if `suspend_after`.
    Task { suspend_after: bool },
    /// A `call_soon` callback.
    Callback,
}

/// Drops a two-worker runtime from inside itself, and returns the dropping task's outcome
/// (`None` from a callback), after checking what holds either way: the drop returns on the
/// worker with the ten other tasks cancelled (futures dropped once), the worker thread
/// exits after that step, and a later spawn is cancelled at once.
fn drop_runtime_inside(from: DropSite) -> Option<Result<u32, aioloop::TaskError>> {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (outcome, returned, late_spawn) = guarded("drop(Runtime) inside itself", move || {
        let rt = runtime(2);
        let h = rt.handle().clone();
        let others = spawn_suspended(&rt, 10, &d);

        let slot = Arc::new(Mutex::new(Some(rt)));
        let (exit_tx, worker_exited) = mpsc::channel::<()>();
        let (ret_tx, ret_rx) = mpsc::channel();
        let d = d.clone();
        let drop_it = move || {
            ON_EXIT.with(|e| *e.borrow_mut() = Some(exit_tx));
            let rt = slot.lock().unwrap().take().expect("the runtime");
            drop(rt);
            // Back inside the runtime: the others are gone already.
            ret_tx.send(d.load(SeqCst)).unwrap();
        };
        let dropper = match from {
            DropSite::Task { suspend_after } => Some(h.spawn(async move {
                drop_it();
                if suspend_after {
                    aioloop::yield_now().await;
                }
                7
            })),
            DropSite::Callback => {
                h.call_soon(drop_it);
                None
            }
        };
        let returned = ret_rx
            .recv_timeout(TIMEOUT)
            .expect("drop(Runtime) returned");
        assert!(
            worker_exited.recv_timeout(TIMEOUT).is_err(),
            "the worker thread exits"
        );
        for mut t in others {
            assert!(t.result().unwrap().unwrap_err().is_cancelled());
        }
        let late = h.spawn(async {});
        let late_spawn = late.done() && late.cancelled();
        let outcome = dropper.map(|mut t| {
            wait_until("the dropping task done", || t.done());
            t.result().unwrap()
        });
        (outcome, returned, late_spawn)
    });
    assert_eq!(
        returned, 10,
        "drop(Runtime) returned before dropping the others"
    );
    assert_eq!(drops.load(SeqCst), 10);
    assert!(late_spawn, "a spawn after the drop is cancelled at once");
    outcome
}

/// Issue 8 item 6, probe "dropping the runtime from inside its own task" (defined in
/// `Runtime`'s docs: a detached shutdown, no deadlock, no panic). A task that completes in
/// the poll that dropped the runtime keeps its value.
#[test]
fn runtime_dropped_inside_its_own_task() {
    let outcome = drop_runtime_inside(DropSite::Task {
        suspend_after: false,
    });
    assert_eq!(outcome.unwrap().unwrap(), 7);
}

/// The same, the task awaiting after the drop: there is no loop left to resume it, so it
/// ends cancelled (its future dropped by the worker that was running it).
#[test]
fn runtime_dropped_inside_its_own_task_which_then_awaits() {
    let outcome = drop_runtime_inside(DropSite::Task {
        suspend_after: true,
    });
    assert!(outcome.unwrap().unwrap_err().is_cancelled());
}

/// The same from a `call_soon` callback running on a worker.
#[test]
fn runtime_dropped_inside_its_own_callback() {
    assert!(drop_runtime_inside(DropSite::Callback).is_none());
}

/// Invariant 8: a `LocalLoop`'s own `!Send` closures are dropped only on its thread, even
/// when `close()` races another thread posting to it (found by review: a post that saw the
/// loop closed drained the whole inbox on its own thread, `Rc`s included). 20 rounds of
/// 2,000 `Rc`-holding callbacks queued while the loop is not running, closed while another
/// thread posts without pause.
#[test]
fn close_racing_a_foreign_post_drops_local_closures_on_the_loop_thread() {
    static FOREIGN: AtomicUsize = AtomicUsize::new(0);
    /// Counts a drop on any thread but the one it was made on.
    struct HomeOnly {
        home: std::thread::ThreadId,
        _rc: std::rc::Rc<()>,
    }
    impl Drop for HomeOnly {
        fn drop(&mut self) {
            if std::thread::current().id() != self.home {
                FOREIGN.fetch_add(1, SeqCst);
            }
        }
    }
    for _round in 0..20 {
        let lp = new_loop();
        let home = std::thread::current().id();
        let rc = std::rc::Rc::new(());
        for _ in 0..2000 {
            let d = HomeOnly {
                home,
                _rc: rc.clone(),
            };
            lp.call_soon(move || drop(d)).unwrap();
        }
        let h = lp.handle();
        let (started_tx, started) = mpsc::channel();
        let poster = std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            while h.call_soon_threadsafe(|| {}).is_ok() {}
            for _ in 0..100 {
                let _ = h.call_soon_threadsafe(|| {});
            }
        });
        started.recv_timeout(TIMEOUT).unwrap();
        lp.close().unwrap();
        poster.join().unwrap();
        assert_eq!(std::rc::Rc::strong_count(&rc), 1, "every closure dropped");
    }
    assert_eq!(
        FOREIGN.load(SeqCst),
        0,
        "closures dropped off the loop's thread"
    );
}
