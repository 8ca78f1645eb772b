//! A hand-written third-party task type (rule L8): it polls its own future on the current
//! thread and takes part in the task protocol only through the public functions
//! (`register_task`, `enter_task`, `leave_task`, `unregister_task`, `swap_current_task`), and
//! is then indistinguishable from a built-in task in `all_tasks()` and `current_task()`.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};

use aioloop::task;
use aioloop::{all_tasks, create_task, yield_now, Handle, TaskRef};
use futures_channel::oneshot;

mod common;
use common::{current_id, runtime, sorted_ids, MetaTask};

// ---------------------------------------------------------------------------------------------
// The third-party task type
// ---------------------------------------------------------------------------------------------

/// A tiny task: owns a future and polls it itself, one step at a time, on whatever thread
/// steps it, bracketing every step with enter/leave as a built-in task's poll is.
struct HandTask<R> {
    meta: Arc<MetaTask>,
    me: TaskRef,
    future: Option<Pin<Box<dyn Future<Output = R> + Send>>>,
}

/// Leaves the hand task after its step, also if the step panics.
struct LeaveOnDrop<'a>(&'a TaskRef);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = task::leave_task(self.0) {
            if !thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

impl<R> HandTask<R> {
    /// Creates the task for the loop running on this thread and registers it (rule L1).
    fn new(name: &str, future: impl Future<Output = R> + Send + 'static) -> HandTask<R> {
        let meta = Arc::new(MetaTask::new(
            name,
            task::current_loop_id().expect("created inside a running loop"),
            false,
        ));
        let me = TaskRef::new(meta.clone());
        task::register_task(&me);
        HandTask {
            meta,
            me,
            future: Some(Box::pin(future)),
        }
    }

    fn task_ref(&self) -> TaskRef {
        self.me.clone()
    }

    /// One step: enter (rule L3), poll once, leave (rule L4); on completion mark done and
    /// unregister (rule L2).
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<R> {
        let fut = self.future.as_mut().expect("stepped after completion");
        task::enter_task(&self.me).unwrap_or_else(|e| panic!("{e}"));
        let poll = {
            let _leave = LeaveOnDrop(&self.me);
            fut.as_mut().poll(cx)
        };
        if poll.is_ready() {
            self.future = None;
            self.meta.done.store(true, Ordering::Release);
            task::unregister_task(&self.me);
        }
        poll
    }
}

impl<R> Drop for HandTask<R> {
    fn drop(&mut self) {
        task::unregister_task(&self.me);
    }
}

/// Steps every hand task round-robin until all are done, from inside whatever task is
/// running (the block_on main task or a built-in task), which steps aside for each round
/// exactly as an eager task start does (rule L5). Wake-ups of a hand task wake the caller.
async fn run_hand_tasks<R>(tasks: &mut [HandTask<R>]) -> Vec<R> {
    let mut out: Vec<Option<R>> = tasks.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let outer = task::swap_current_task(None);
        for (t, o) in tasks.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                if let Poll::Ready(v) = t.step(cx) {
                    *o = Some(v);
                }
            }
        }
        task::swap_current_task(outer.as_ref());
        if out.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn hand_task_is_current_task_across_awaits() {
    // rule L6, L8: inside a hand task, current_task() is the hand task before and after each
    // suspension; a built-in child it creates sees itself, not the hand task.
    let rt = runtime(2);
    rt.block_on(async {
        let main = aioloop::current_task().expect("main task");
        let mut hands = vec![HandTask::new("hand-a", async {
            let first = aioloop::current_task().expect("hand task is current");
            yield_now().await;
            let after_yield = current_id();
            let child = create_task(async { current_id() });
            let child_id = child.id();
            let child_saw = child.await.unwrap();
            let after_child = current_id();
            (first, after_yield, child_id, child_saw, after_child)
        })];
        let hand = hands[0].task_ref();
        let (first, after_yield, child_id, child_saw, after_child) =
            run_hand_tasks(&mut hands).await.pop().unwrap();
        assert_eq!(first, hand);
        assert_eq!(first.name(), "hand-a");
        assert!(!first.is_builtin());
        assert_eq!(after_yield, Some(hand.id()));
        assert_eq!(child_saw, Some(child_id));
        assert_ne!(child_id, hand.id());
        assert_eq!(after_child, Some(hand.id()));
        // The main task is back in the slot once the hand tasks are done.
        assert_eq!(aioloop::current_task(), Some(main));
    });
}

#[test]
fn hand_tasks_interleave_on_one_thread() {
    // rule L3, L4, L6, L8: two hand tasks handing control to each other on one thread each
    // see themselves as current on both sides of their await (the port of
    // current_task_with_interleaving_tasks to a third-party task type).
    let rt = runtime(1);
    rt.block_on(async {
        let (tx1, rx1) = oneshot::channel::<()>();
        let (tx2, rx2) = oneshot::channel::<()>();
        type Seen = (Option<u64>, Option<u64>, ThreadId);
        let mut hands: Vec<HandTask<Seen>> = vec![
            HandTask::new("hand-1", async move {
                let before = current_id();
                rx1.await.unwrap();
                let after = current_id();
                tx2.send(()).unwrap();
                (before, after, thread::current().id())
            }),
            HandTask::new("hand-2", async move {
                let before = current_id();
                tx1.send(()).unwrap();
                rx2.await.unwrap();
                let after = current_id();
                (before, after, thread::current().id())
            }),
        ];
        let (id1, id2) = (hands[0].task_ref().id(), hands[1].task_ref().id());
        let seen = run_hand_tasks(&mut hands).await;
        assert_eq!((seen[0].0, seen[0].1), (Some(id1), Some(id1)));
        assert_eq!((seen[1].0, seen[1].1), (Some(id2), Some(id2)));
        assert_eq!(seen[0].2, thread::current().id());
        assert_eq!(seen[1].2, thread::current().id());
    });
}

#[test]
fn hand_task_listed_in_all_tasks_while_pending() {
    // rule L7, L8: a pending hand task is listed by all_tasks() — from inside itself, from a
    // built-in task on a worker thread, and from a thread outside the runtime — next to the
    // built-in tasks of the same loop, and leaves the listing when it finishes.
    let rt = runtime(2);
    let (hand, hand_id) = rt.block_on(async {
        let main = aioloop::current_task().unwrap();
        let mut hands = vec![HandTask::new("hand-listed", async {
            let me = aioloop::current_task().unwrap();
            let from_inside = all_tasks();
            let from_worker = create_task(async { sorted_ids(&all_tasks()) });
            let worker_child = from_worker.id();
            let from_worker = from_worker.await.unwrap();
            let h = Handle::current();
            let (tx, rx) = oneshot::channel();
            thread::spawn(move || tx.send(h.all_tasks()).unwrap());
            let from_thread = rx.await.unwrap();
            (me, from_inside, worker_child, from_worker, from_thread)
        })];
        let hand = hands[0].task_ref();
        assert_eq!(
            hand.to_string(),
            format!("<Task pending name='hand-listed' id={}>", hand.id())
        );
        let (me, from_inside, worker_child, from_worker, from_thread) =
            run_hand_tasks(&mut hands).await.pop().unwrap();
        assert_eq!(me, hand);
        // Inside: the hand task and the (stepped-aside, unfinished) main task.
        assert_eq!(
            sorted_ids(&from_inside),
            sorted_ids(&[main.clone(), hand.clone()])
        );
        let listed = from_inside.iter().find(|t| **t == hand).unwrap();
        assert_eq!(listed.name(), "hand-listed");
        assert_eq!(listed.loop_id(), aioloop::task::current_loop_id().unwrap());
        // On a worker: main, hand, and the built-in child itself.
        let mut want = vec![main.id(), hand.id(), worker_child];
        want.sort_unstable();
        assert_eq!(from_worker, want);
        // From a plain thread, through the handle.
        assert_eq!(
            sorted_ids(&from_thread),
            sorted_ids(&[main.clone(), hand.clone()])
        );
        // Done: gone from the listing, and shown as finished.
        assert!(hand.done());
        assert_eq!(all_tasks(), vec![main]);
        let id = hand.id();
        (hand, id)
    });
    assert_eq!(
        hand.to_string(),
        format!("<Task finished name='hand-listed' id={hand_id}>")
    );
    assert!(rt.all_tasks().is_empty());
}

#[test]
fn hand_task_driven_inside_builtin_task() {
    // rule L5, L8: a built-in task on a worker can step aside (swap_current_task) to drive a
    // hand task; the hand task is current while it runs, the built-in task stays listed, and
    // is current again afterwards.
    let rt = runtime(2);
    // The result comes back through a channel rather than block_on, so that no main task
    // of this loop exists meanwhile and the listing below is exact.
    let (tx, rx) = std::sync::mpsc::channel();
    let outer = rt.spawn(async move {
        let me = aioloop::current_task().unwrap();
        let mut hands = vec![HandTask::new("hand-in-worker", async {
            let cur = aioloop::current_task().unwrap();
            yield_now().await;
            (cur, current_id(), sorted_ids(&all_tasks()))
        })];
        let hand = hands[0].task_ref();
        let (cur, after, listed) = run_hand_tasks(&mut hands).await.pop().unwrap();
        let back = aioloop::current_task();
        tx.send((me, hand, cur, after, listed, back)).unwrap();
    });
    let outer_id = outer.id();
    let (me, hand, cur, after, listed, back) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("outer task finished");
    assert_eq!(me.id(), outer_id);
    assert!(me.is_builtin());
    assert_eq!(cur, hand);
    assert_eq!(cur.name(), "hand-in-worker");
    assert_eq!(after, Some(hand.id()));
    let mut want = vec![outer_id, hand.id()];
    want.sort_unstable();
    assert_eq!(listed, want);
    assert_eq!(back, Some(me));
    rt.block_on(outer).unwrap();
    assert!(rt.all_tasks().is_empty());
}

#[test]
fn builtin_task_poll_is_bracketed_by_enter_leave() {
    // rule L8, L3, L4: while a built-in task is polled it occupies the same current-task slot
    // the protocol uses: entering a hand task fails naming it, and leaving a hand task fails
    // naming it as current.
    let rt = runtime(2);
    let t = rt.spawn(async {
        let foreign = Arc::new(MetaTask::new(
            "outsider",
            task::current_loop_id().unwrap(),
            false,
        ));
        let r = TaskRef::new(foreign);
        let enter = task::enter_task(&r).unwrap_err().to_string();
        yield_now().await;
        let leave = task::leave_task(&r).unwrap_err().to_string();
        (r.id(), enter, leave, current_id())
    });
    let id = t.id();
    let (other, enter, leave, still) = rt.block_on(t).unwrap();
    let me = format!("<Task pending name='Task-{id}' id={id}>");
    let outsider = format!("<Task pending name='outsider' id={other}>");
    assert_eq!(
        enter,
        format!("Cannot enter into task {outsider} while another task {me} is being executed.")
    );
    assert_eq!(
        leave,
        format!("Leaving task {outsider} does not match the current task {me}.")
    );
    assert_eq!(still, Some(id));
}
