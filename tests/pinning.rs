//! Pin's drop guarantee (issue 8, item 1): a future that was polled is dropped at the address
//! where it was polled, on every path that ends it — completion, cancellation while
//! suspended, cancellation before its first step, a TaskGroup abort, runtime shutdown,
//! `LocalLoop::close`, and inside `catch_cancel`, `timeout`, `shield`, `gather`, `wait` and
//! eager tasks.
//!
//! `Tracked` records its own address on its first poll and checks it in `Drop`. A future that
//! keeps its address in a waiter list (tokio's `Semaphore`, every intrusive-list primitive)
//! would otherwise leave a dangling pointer behind: the last test drives exactly that under
//! AddressSanitizer (CI's asan stage).

mod common;

use std::future::{pending, Future};
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::Duration;

use aioloop::{
    catch_cancel, gather, shield, timeout, wait, LocalLoop, ReturnWhen, TaskError, TaskGroup,
    TaskGroupError,
};
use common::{guarded, runtime, wait_until};

/// What the tracked futures of one test saw.
#[derive(Default)]
struct Seen {
    /// Tracked futures dropped after being polled.
    dropped: AtomicUsize,
    /// ... of which at another address than the one they were polled at.
    moved: AtomicUsize,
    /// Tracked futures polled at least once.
    polled: AtomicUsize,
    /// Tracked futures dropped without ever being polled.
    unpolled_drops: AtomicUsize,
}

impl Seen {
    fn new() -> Arc<Seen> {
        Arc::new(Seen::default())
    }

    /// Waits until `n` tracked futures have been polled.
    fn wait_polled(&self, n: usize) {
        wait_until("tracked futures polled", || {
            self.polled.load(Ordering::SeqCst) == n
        });
    }

    /// Waits until `n` polled tracked futures have been dropped.
    fn wait_dropped(&self, n: usize) {
        wait_until("tracked futures dropped", || {
            self.dropped.load(Ordering::SeqCst) == n
        });
    }

    /// Every tracked future that was polled was dropped, `n` of them, none moved.
    fn assert_all_in_place(&self, n: usize) {
        assert_eq!(
            self.moved.load(Ordering::SeqCst),
            0,
            "a pinned future was moved"
        );
        assert_eq!(self.polled.load(Ordering::SeqCst), n, "polled");
        assert_eq!(
            self.dropped.load(Ordering::SeqCst),
            n,
            "dropped after polling"
        );
    }
}

/// Wraps a future; `!Unpin`, like every `async` block that borrows across an await.
struct Tracked<F> {
    inner: F,
    addr: usize,
    seen: Arc<Seen>,
    _pin: PhantomPinned,
}

fn tracked<F: Future>(seen: &Arc<Seen>, inner: F) -> Tracked<F> {
    Tracked {
        inner,
        addr: 0,
        seen: seen.clone(),
        _pin: PhantomPinned,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned (never moved out); `addr` is plain data.
        let this = unsafe { self.get_unchecked_mut() };
        let here = this as *const Self as usize;
        if this.addr == 0 {
            this.addr = here;
            this.seen.polled.fetch_add(1, Ordering::SeqCst);
        } else if this.addr != here {
            this.seen.moved.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        if self.addr == 0 {
            // Never polled, never pinned: moving it was allowed.
            self.seen.unpolled_drops.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if self.addr != self as *const Self as usize {
            self.seen.moved.fetch_add(1, Ordering::SeqCst);
        }
        self.seen.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that is pending once, then ready: polled at least twice in place.
async fn one_yield() -> u32 {
    aioloop::yield_now().await;
    7
}

#[test]
fn completed_future_is_dropped_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let t = rt.spawn(tracked(&seen, one_yield()));
    assert_eq!(rt.block_on(t).unwrap(), 7);
    seen.assert_all_in_place(1);
}

#[test]
fn completed_future_without_a_handle_is_dropped_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let (tx, rx) = mpsc::channel();
    drop(rt.spawn(tracked(&seen, async move {
        aioloop::yield_now().await;
        tx.send(()).unwrap();
    })));
    rx.recv_timeout(common::TIMEOUT).unwrap();
    seen.wait_dropped(1);
    seen.assert_all_in_place(1);
}

/// Rule T3: a task cancelled while suspended drops its future at its next step.
#[test]
fn cancelled_while_suspended_is_dropped_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let t = rt.spawn(tracked(&seen, pending::<()>()));
    seen.wait_polled(1);
    assert!(t.cancel(None));
    assert!(matches!(rt.block_on(t), Err(TaskError::Cancelled(_))));
    seen.assert_all_in_place(1);
}

/// Rule T4: cancelled before its first step, the future was never pinned.
#[test]
fn cancelled_before_first_step_is_never_polled() {
    let seen = Seen::new();
    let rt = runtime(1);
    let s = seen.clone();
    // Spawned and cancelled inside a task of a one-worker runtime: the child is queued on
    // this worker, which runs nothing else until the parent suspends.
    let out = rt.block_on(rt.spawn(async move {
        let t = aioloop::create_task(tracked(&s, pending::<()>()));
        t.cancel(None);
        t.await
    }));
    assert!(matches!(out, Ok(Err(TaskError::Cancelled(_)))));
    seen.assert_all_in_place(0);
    assert_eq!(
        seen.unpolled_drops.load(Ordering::SeqCst),
        1,
        "dropped, not leaked"
    );
}

/// Runtime shutdown (`drop(Runtime)`) cancels every task: 100 suspended futures.
#[test]
fn runtime_shutdown_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    for _ in 0..100 {
        drop(rt.spawn(tracked(&seen, pending::<()>())));
    }
    seen.wait_polled(100);
    drop(rt);
    seen.assert_all_in_place(100);
}

#[test]
fn local_loop_close_drops_in_place() {
    let seen = Seen::new();
    let lp = LocalLoop::new().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(lp.create_task(tracked(&seen, pending::<()>())).unwrap());
    }
    lp.run_once(common::NO_WAIT).unwrap();
    assert_eq!(seen.polled.load(Ordering::SeqCst), 10);
    lp.close().unwrap();
    drop(tasks);
    seen.assert_all_in_place(10);
}

#[test]
fn local_loop_cancel_drops_in_place() {
    let seen = Seen::new();
    let lp = LocalLoop::new().unwrap();
    let t = lp.create_task(tracked(&seen, pending::<()>())).unwrap();
    lp.run_once(common::NO_WAIT).unwrap();
    t.cancel(None);
    assert!(matches!(
        lp.run_until_complete(t).unwrap(),
        Err(TaskError::Cancelled(_))
    ));
    seen.assert_all_in_place(1);
}

/// Rule G3: a failing child aborts the group; the others are cancelled where they wait.
#[test]
fn task_group_abort_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let r = rt.block_on(rt.spawn(async move {
        TaskGroup::new()
            .run(|tg| async move {
                for _ in 0..8 {
                    tg.create_task(tracked(&s, pending::<()>()))?;
                }
                tg.create_task(async {
                    aioloop::sleep(Duration::from_millis(5)).await;
                    panic!("child fails");
                })?;
                tracked(&s, pending::<()>()).await; // the body is cancelled too
                Ok::<_, TaskGroupError>(())
            })
            .await
    }));
    assert!(matches!(r, Ok(Err(TaskGroupError::Failed(_)))));
    seen.assert_all_in_place(9);
}

/// The same abort with the group directly in `block_on` (the body is dropped, not cancelled).
#[test]
fn task_group_abort_in_block_on_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let r = rt.block_on(async move {
        TaskGroup::new()
            .run(|tg| async move {
                for _ in 0..4 {
                    tg.create_task(tracked(&s, pending::<()>()))?;
                }
                tg.create_task(async {
                    aioloop::sleep(Duration::from_millis(5)).await;
                    panic!("child fails");
                })?;
                tracked(&s, pending::<()>()).await;
                Ok::<_, TaskGroupError>(())
            })
            .await
    });
    assert!(matches!(r, Err(TaskGroupError::Failed(_))));
    seen.assert_all_in_place(5);
}

/// Rule T5 through a catch scope: the scope drops its inner future where it was polled.
#[test]
fn catch_cancel_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let t = rt.spawn(async move {
        let caught = catch_cancel(tracked(&s, pending::<()>())).await.is_err();
        aioloop::current_task().unwrap().uncancel();
        caught
    });
    seen.wait_polled(1);
    t.cancel(None);
    assert!(rt.block_on(t).unwrap());
    seen.assert_all_in_place(1);
}

/// Rule X1: an expired timeout drops its future in place, in a task and in `block_on`.
#[test]
fn timeout_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let in_task = rt.spawn(async move {
        timeout(Duration::from_millis(5), tracked(&s, pending::<()>()))
            .await
            .is_err()
    });
    assert!(rt.block_on(in_task).unwrap());
    let s = seen.clone();
    let in_block_on = rt.block_on(async move {
        timeout(Duration::from_millis(5), tracked(&s, pending::<()>()))
            .await
            .is_err()
    });
    assert!(in_block_on);
    seen.assert_all_in_place(2);
}

/// Rule X3: the shielded future runs on after its waiter is cancelled, and is dropped in
/// place when it completes.
#[test]
fn shield_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let (tx, rx) = mpsc::channel();
    let waiter = rt.spawn(async move {
        let inner = shield(tracked(&s, async move {
            aioloop::sleep(Duration::from_millis(10)).await;
            tx.send(()).unwrap();
        }));
        catch_cancel(tracked(&s, inner)).await.is_err()
    });
    seen.wait_polled(2);
    waiter.cancel(None);
    rx.recv_timeout(common::TIMEOUT).unwrap();
    rt.block_on(waiter).ok();
    seen.wait_dropped(2);
    seen.assert_all_in_place(2);
}

/// Rule X4: a cancelled gather cancels its children, each dropped where it waits.
#[test]
fn gather_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    let t = rt.spawn(async move {
        let children = (0..6).map(|_| tracked(&s, pending::<()>()));
        let _ = gather(children).await;
    });
    seen.wait_polled(6);
    t.cancel(None);
    assert!(rt.block_on(t).is_err());
    seen.wait_dropped(6);
    seen.assert_all_in_place(6);
}

/// Rule X5: `wait` leaves the pending tasks running; cancelling them drops them in place.
#[test]
fn wait_drops_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    rt.block_on(async move {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                aioloop::create_task(tracked(&s, async move {
                    if i == 0 {
                        aioloop::yield_now().await;
                    } else {
                        pending::<()>().await;
                    }
                }))
            })
            .collect();
        let (done, pending) = wait(tasks, None, ReturnWhen::FirstCompleted).await.unwrap();
        assert_eq!(done.len(), 1);
        for t in &pending {
            t.cancel(None);
        }
        for t in pending {
            assert!(t.await.is_err());
        }
    });
    // A pending task may be cancelled before its first step (never pinned): every future
    // is dropped once, and none that was polled moved.
    let polled = seen.polled.load(Ordering::SeqCst);
    seen.assert_all_in_place(polled);
    assert_eq!(polled + seen.unpolled_drops.load(Ordering::SeqCst), 4);
}

/// Rule T9: an eager task's first step runs inside `spawn`; its future stays where it was
/// first polled, whether it finishes there, later, or is cancelled.
#[test]
fn eager_tasks_drop_in_place() {
    let seen = Seen::new();
    let rt = runtime(2);
    let s = seen.clone();
    rt.block_on(rt.spawn(async move {
        let eager = || aioloop::task::Builder::new().eager(true);
        let at_once = eager().spawn(tracked(&s, async { 1 }));
        assert!(at_once.done());
        let later = eager().spawn(tracked(&s, one_yield()));
        let parked = eager().spawn(tracked(&s, pending::<()>()));
        assert_eq!(at_once.await.unwrap(), 1);
        assert_eq!(later.await.unwrap(), 7);
        parked.cancel(None);
        assert!(parked.await.is_err());
    }))
    .unwrap();
    seen.assert_all_in_place(3);
}

/// A real intrusive waiter list: tokio's `Semaphore` keeps each queued `acquire()` future's
/// address in its wait list, and unlinks it in that future's `Drop`. 64 acquirers queue, half
/// are cancelled (dropped where they wait), then permits are added: the semaphore walks its
/// list, which must hold no freed node. Moving a future before dropping it is a
/// use-after-free here, which ASan reports (CI runs this file under it).
#[test]
fn cancelled_semaphore_waiters_leave_no_dangling_node() {
    guarded("semaphore waiters", || {
        for _round in 0..5 {
            let rt = runtime(2);
            let sem = Arc::new(tokio::sync::Semaphore::new(0));
            let acquired = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let sem = sem.clone();
                    let acquired = acquired.clone();
                    rt.spawn(async move {
                        let _permit = sem.acquire().await.unwrap();
                        acquired.fetch_add(1, Ordering::SeqCst);
                        aioloop::yield_now().await;
                    })
                })
                .collect();
            // tokio's Semaphore has no waiter count: wait for the tasks to have run (each
            // either queued or, never, acquired) by checking they are all pending.
            wait_until("every acquirer has queued", || {
                rt.worker_stats().iter().map(|w| w.polled).sum::<u64>() >= 64
            });
            let mut cancelled = Vec::new();
            let mut waiting = Vec::new();
            for (i, t) in tasks.into_iter().enumerate() {
                if i % 2 == 0 {
                    t.cancel(None);
                    cancelled.push(t);
                } else {
                    waiting.push(t);
                }
            }
            for t in cancelled {
                assert!(matches!(rt.block_on(t), Err(TaskError::Cancelled(_))));
            }
            sem.add_permits(8);
            for t in waiting {
                rt.block_on(t).unwrap();
            }
            assert_eq!(acquired.load(Ordering::SeqCst), 32);
            assert_eq!(sem.available_permits(), 8);
        }
    });
}
