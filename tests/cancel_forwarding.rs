//! Where a cancel of a task goes when the task awaits a combinator (rule T3, mapping point 2;
//! issue 10 item 11): asyncio passes `task.cancel()` on to the future the task awaits. For
//! `shield`, `wait` and `as_completed` that future is an internal one (the shield's outer
//! future, `wait`'s waiter): cancelling it ends the *awaiting* task's await with
//! `CancelledError` and leaves the shielded or awaited tasks alone. aioloop stores the request
//! and raises it at that await, which is the same outcome; these tests pin it down, including
//! when the awaited task finishes in the same loop iteration as the cancel (the cancel still
//! lands at the await). A gather is the other case: the cancel is passed on to its children
//! (X4, tests/combinators.rs).
//!
//! All on a `LocalLoop` stepped with `run_once`, so the order of events is exact.

use aioloop::{
    as_completed, catch_cancel, current_task, shield, shield_task, wait, LocalLoop, ReturnWhen,
    Task,
};
use futures_channel::oneshot;

mod common;
use common::{new_loop, NO_WAIT};

/// A task of `lp` that waits for `rx` and returns `v` (its value when `rx` fires).
fn gated(lp: &LocalLoop, v: i32) -> (oneshot::Sender<()>, Task<i32>) {
    let (tx, rx) = oneshot::channel::<()>();
    let t = lp
        .create_task(async move {
            let _ = rx.await;
            v
        })
        .unwrap();
    (tx, t)
}

fn step(lp: &LocalLoop, n: usize) {
    for _ in 0..n {
        lp.run_once(NO_WAIT).unwrap();
    }
}

/// The outcome of a task awaiting `wait(&mut a, &mut b)` in a catch scope and cancelled:
/// `finish_first` makes `a` finish in the iteration that also carries the cancel.
/// Returns (the scope caught it, a's value read afterwards, b untouched before its gate).
fn wait_then_cancel(finish_first: bool) -> (bool, i32, bool) {
    let lp = new_loop();
    let (ga, mut a) = gated(&lp, 1);
    let mut ga = Some(ga);
    let (gb, mut b) = gated(&lp, 2);
    let (a_ref, b_ref) = (a.task_ref(), b.task_ref());
    let (out_tx, out) = std::sync::mpsc::channel();
    let waiter = lp
        .create_task(async move {
            let caught = catch_cancel(wait(vec![&mut a, &mut b], None, ReturnWhen::FirstCompleted))
                .await
                .is_err();
            current_task().unwrap().uncancel();
            // The tasks are still the caller's: read them.
            out_tx.send(caught).unwrap();
            a.await.unwrap() + 10 * b.await.unwrap()
        })
        .unwrap();
    step(&lp, 2); // every task suspended
    if finish_first {
        ga.take().unwrap().send(()).unwrap();
        step(&lp, 1); // `a` finishes; the waiter is woken but has not run yet
        assert!(a_ref.done());
    }
    assert!(waiter.cancel(None));
    step(&lp, 1);
    let caught = out.try_recv().expect("the waiter ran its handler");
    let b_untouched = !b_ref.done() && b_ref.cancelling() == 0 && a_ref.cancelling() == 0;
    if let Some(ga) = ga {
        ga.send(()).unwrap();
    }
    gb.send(()).unwrap();
    let v = lp.run_until_complete(waiter).unwrap().unwrap();
    (caught, v, b_untouched)
}

// rules T3, X5: a cancel of the task awaiting `wait` ends that await with the cancellation;
// the awaited tasks are not cancelled and remain the caller's to await.
#[test]
fn cancel_of_a_task_awaiting_wait_leaves_the_awaited_tasks() {
    assert_eq!(wait_then_cancel(false), (true, 21, true));
}

// rules T3, X5: the same when one awaited task finished in the iteration that carries the
// cancel (wait would have returned): the cancel still lands at the await.
#[test]
fn cancel_of_a_task_awaiting_wait_lands_even_when_wait_was_ready() {
    assert_eq!(wait_then_cancel(true), (true, 21, true));
}

// rules T3, X5: cancelling the task iterating `as_completed` ends its `next()` await; the
// tasks not yet yielded are untouched and stay with the caller.
#[test]
fn cancel_of_a_task_in_as_completed_leaves_the_remaining_tasks() {
    let lp = new_loop();
    let (ga, a) = gated(&lp, 1);
    let (gb, b) = gated(&lp, 2);
    let (a_ref, b_ref) = (a.task_ref(), b.task_ref());
    let waiter = lp
        .create_task(async move {
            let mut it = as_completed(vec![a, b]);
            let caught = catch_cancel(it.next()).await.is_err();
            current_task().unwrap().uncancel();
            let mut sum = 0;
            for t in it.take_remaining() {
                sum += t.await.unwrap();
            }
            (caught, sum)
        })
        .unwrap();
    step(&lp, 2);
    assert!(waiter.cancel(None));
    step(&lp, 1);
    assert_eq!(a_ref.cancelling() + b_ref.cancelling(), 0);
    assert!(!a_ref.done() && !b_ref.done());
    ga.send(()).unwrap();
    gb.send(()).unwrap();
    assert_eq!(lp.run_until_complete(waiter).unwrap().unwrap(), (true, 3));
}

// rules T3, X3 (CPython test_shield_effect, the inner future done in the same iteration): the
// inner task finishes and the awaiter is cancelled before it runs again: the awaiter ends
// cancelled (no code after the await runs), the inner task ends with its value.
#[test]
fn shield_inner_done_in_the_cancelled_iteration() {
    let lp = new_loop();
    let (go, rx) = oneshot::channel::<()>();
    let (ref_tx, inner_ref) = std::sync::mpsc::channel();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = reached.clone();
    let outer = lp
        .create_task(async move {
            let s = shield(async move {
                let _ = rx.await;
                5
            });
            ref_tx.send(s.task_ref()).unwrap();
            let v = s.await;
            r2.store(true, std::sync::atomic::Ordering::SeqCst);
            v
        })
        .unwrap();
    step(&lp, 2);
    let inner = inner_ref.try_recv().unwrap();
    go.send(()).unwrap();
    step(&lp, 1); // the inner task finishes; the awaiter is woken, not yet run
    assert!(inner.done() && !inner.cancelled());
    assert!(outer.cancel(None));
    let res = lp.run_until_complete(outer).unwrap();
    assert!(res.unwrap_err().is_cancelled());
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(inner.cancelling(), 0);
}

// rules T3, X3 (CPython test_shield_cancel_outer with the caller keeping the task): a
// cancel of the task awaiting `shield_task(&mut t)` while `t` runs ends that await only; `t`
// is not cancelled and its value is read by the same task afterwards.
#[test]
fn shield_task_cancelled_awaiter_keeps_the_task() {
    let lp = new_loop();
    let (go, mut t) = gated(&lp, 9);
    let t_ref = t.task_ref();
    let outer = lp
        .create_task(async move {
            let caught = catch_cancel(shield_task(&mut t)).await.is_err();
            current_task().unwrap().uncancel();
            (caught, t.await.unwrap())
        })
        .unwrap();
    step(&lp, 2);
    assert!(outer.cancel(Some("outer only")));
    step(&lp, 1);
    assert_eq!(t_ref.cancelling(), 0);
    assert!(!t_ref.done());
    go.send(()).unwrap();
    assert_eq!(lp.run_until_complete(outer).unwrap().unwrap(), (true, 9));
}

/// A child that takes its cancellation and cleans up until the returned sender fires.
fn slow_cleanup_child(lp: &LocalLoop) -> (oneshot::Sender<()>, Task<i32>) {
    let (tx, release) = oneshot::channel::<()>();
    let body = async move {
        if catch_cancel(std::future::pending::<()>()).await.is_err() {
            let _ = release.await;
        }
        1
    };
    (tx, lp.create_task(body).unwrap())
}

/// The first of two futures to finish (a minimal `select`): polls `a`, then `b`.
struct First<A, B>(A, B);

impl<A, B> std::future::Future for First<A, B>
where
    A: std::future::Future + Unpin,
    B: std::future::Future + Unpin,
{
    type Output = Result<A::Output, B::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if let Poll::Ready(v) = std::pin::Pin::new(&mut self.0).poll(cx) {
            return Poll::Ready(Ok(v));
        }
        std::pin::Pin::new(&mut self.1).poll(cx).map(Err)
    }
}

// rule T3, mapping point 2 (delivered exactly once): a cancel passed on to the awaited child
// task is not lost when the awaiter, woken by something else, abandons the child unread (a
// `select` taking its other branch): the request is put back on the awaiter and raised at
// its next await, so no code after that await runs. (asyncio cannot show this shape — a task
// is only woken by what it awaits — so the request simply must not vanish.)
#[test]
fn cancel_passed_on_to_an_abandoned_child_is_raised_at_the_next_await() {
    let lp = new_loop();
    let (release_tx, child) = slow_cleanup_child(&lp);
    let child_ref = child.task_ref();
    let (other_tx, other) = oneshot::channel::<()>();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = reached.clone();
    let t = lp
        .create_task(async move {
            let won = First(child, other).await;
            assert!(won.is_err(), "the other branch won");
            r2.store(1, std::sync::atomic::Ordering::SeqCst);
            aioloop::yield_now().await; // the request lands here
            r2.store(2, std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap();
    step(&lp, 2);
    assert!(t.cancel(Some("abandoned")));
    assert_eq!(child_ref.cancelling(), 1, "passed on to the child");
    step(&lp, 1); // the child takes it and waits in its clean-up
    other_tx.send(()).unwrap();
    let res = lp.run_until_complete(t).unwrap();
    assert_eq!(
        res.unwrap_err().to_string(),
        "CancelledError: abandoned",
        "raised at the next await"
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
    release_tx.send(()).unwrap();
    step(&lp, 2);
    assert!(child_ref.done());
}
