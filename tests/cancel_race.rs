//! A cancel racing the cancelled task's own progress on a multi-worker runtime (rule T3,
//! mapping point 2; issue 10 items 1 and 11): whether it arrives while the task is suspended,
//! while another worker is polling it, or while what it awaits is completing, it is delivered
//! exactly once, at a suspension point — never lost, never twice, never after the code behind
//! the await has run.
//!
//! Shapes: a 64-consumer pipeline (each consumer a `catch_cancel` loop whose `Err` branch is
//! its clean-up) cancelled from the test thread while a producer task completes what the
//! consumers await — an `aioloop::Future` (the cancel is passed on to it), a child `Task`
//! (passed on to the task) and a channel (stored and raised at the await). Nothing here blocks
//! a worker thread: only the test thread waits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use aioloop::{catch_cancel, current_task, yield_now, Runtime, TaskError, TaskRef};
use futures_channel::oneshot;

mod common;
use common::{guarded, runtime, wait_until};

const CONSUMERS: usize = 64;

/// What the producer completes next.
enum Completer {
    Future(aioloop::Future<u64>),
    Channel(oneshot::Sender<u64>),
}

impl Completer {
    fn complete(self, v: u64) {
        match self {
            // A future the consumer's cancel already cancelled refuses the value: fine.
            Completer::Future(f) => drop(f.set_result(v)),
            Completer::Channel(tx) => drop(tx.send(v)),
        }
    }
}

/// The pipeline's shared state.
struct Pipe {
    queue: Mutex<Vec<Completer>>,
    stop: AtomicBool,
    started: AtomicUsize,
    /// Per consumer: how many times its `except CancelledError:` branch ran.
    cleanups: Vec<AtomicUsize>,
    /// Per consumer: awaits that completed *after* its clean-up ran (a second delivery would
    /// show as a second clean-up instead).
    after: Vec<AtomicUsize>,
}

impl Pipe {
    fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            queue: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            cleanups: (0..CONSUMERS).map(|_| AtomicUsize::new(0)).collect(),
            after: (0..CONSUMERS).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    fn push(&self, c: Completer) {
        self.queue.lock().unwrap().push(c);
    }
}

/// One await of consumer `i` (kind `i % 3`): something the producer completes.
async fn next_item(pipe: &Arc<Pipe>, i: usize) -> u64 {
    match i % 3 {
        0 => {
            // Rule T3 (forwarded to a future): `fut.cancel()` when suspended on it.
            let fut = aioloop::create_future::<u64>();
            pipe.push(Completer::Future(fut.clone()));
            fut.await.unwrap_or(0)
        }
        1 => {
            // Rule T3 (forwarded to a task): the child is cancelled and the awaiter waits
            // for it; it ends cancelled, so the cancellation is raised at this await.
            let (tx, rx) = oneshot::channel();
            pipe.push(Completer::Channel(tx));
            let child = aioloop::create_task(async move { rx.await.unwrap_or(0) });
            match child.await {
                Ok(v) => v,
                Err(e) => panic!("the child was cancelled, and so must the awaiter be: {e}"),
            }
        }
        _ => {
            // A channel: the request is stored and raised at the await.
            let (tx, rx) = oneshot::channel();
            pipe.push(Completer::Channel(tx));
            rx.await.unwrap_or(0)
        }
    }
}

/// Consumer `i`: loops over `next_item` in a catch scope; the `Err` branch is the clean-up.
/// After it, the consumer suppresses the cancellation (`uncancel()`) and goes on for a few
/// more awaits (a second delivery of the one request would run the clean-up again), then
/// returns how many items it got.
async fn consumer(pipe: Arc<Pipe>, i: usize) -> u64 {
    pipe.started.fetch_add(1, SeqCst);
    let mut got = 0;
    let mut after_cleanup = None::<u32>;
    loop {
        match catch_cancel(next_item(&pipe, i)).await {
            Ok(_) => {
                got += 1;
                if let Some(n) = after_cleanup.as_mut() {
                    pipe.after[i].fetch_add(1, SeqCst);
                    *n -= 1;
                    if *n == 0 {
                        return got;
                    }
                }
            }
            Err(_) => {
                pipe.cleanups[i].fetch_add(1, SeqCst);
                yield_now().await; // async clean-up
                current_task().unwrap().uncancel();
                after_cleanup.get_or_insert(3);
            }
        }
    }
}

/// Completes whatever the consumers wait on, round after round, until told to stop.
async fn producer(pipe: Arc<Pipe>) {
    let mut n = 0;
    while !pipe.stop.load(SeqCst) {
        let batch = std::mem::take(&mut *pipe.queue.lock().unwrap());
        for c in batch {
            n += 1;
            c.complete(n);
        }
        yield_now().await;
    }
}

/// One round of the pipeline on `rt`; panics on a lost, doubled or skipped clean-up.
fn pipeline_round(rt: &Runtime, round: usize) {
    let pipe = Pipe::new();
    let prod = rt.spawn(producer(pipe.clone()));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| rt.spawn(consumer(pipe.clone(), i)))
        .collect();
    let refs: Vec<TaskRef> = consumers.iter().map(|t| t.task_ref()).collect();
    // Rule T4: a consumer cancelled before its first step would never run its body (nor its
    // clean-up): cancel only once all have started.
    wait_until("every consumer started", || {
        pipe.started.load(SeqCst) == CONSUMERS
    });
    for (i, r) in refs.iter().enumerate() {
        assert!(
            r.cancel(Some("stop")),
            "round {round}: consumer {i} ended early"
        );
        if i % 8 == 0 {
            std::thread::yield_now(); // let some cancels land mid-poll, others while suspended
        }
    }
    let results: Vec<Result<u64, TaskError>> = rt.block_on(async move {
        let mut out = Vec::new();
        for t in consumers {
            out.push(t.await);
        }
        out
    });
    pipe.stop.store(true, SeqCst);
    rt.block_on(prod).unwrap();
    for (i, r) in results.iter().enumerate() {
        let cleanups = pipe.cleanups[i].load(SeqCst);
        assert_eq!(
            cleanups,
            1,
            "round {round}: consumer {i} (kind {}) ran its clean-up {cleanups} times; ended {r:?}",
            i % 3
        );
        // Caught and returned: the task ends with its value (rule T6, mapping point 4).
        assert!(r.is_ok(), "round {round}: consumer {i} ended {r:?}");
        assert_eq!(pipe.after[i].load(SeqCst), 3, "round {round}: consumer {i}");
    }
}

// rules T3, T6 (issue 10 item 1: "in a 64-consumer pipeline 0–10 consumers skipped their
// cleanup per run"): every consumer's clean-up runs exactly once, whether its cancel arrived
// while it was suspended, while a worker was polling it, or while what it awaited completed.
#[test]
fn pipeline_of_64_consumers_each_cleans_up_exactly_once() {
    guarded("64-consumer pipeline", || {
        let rt = runtime(2);
        for round in 0..30 {
            pipeline_round(&rt, round);
        }
    });
}

/// One round of the mid-poll test: the target awaits a future (or, `via_task`, a child task
/// awaiting it) 200 times in a catch scope; a peer task on the other worker completes each
/// future and cancels the target once, a few rounds after it started.
fn mid_poll_round(rt: &Runtime, round: u32, via_task: bool) {
    let caught = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(Mutex::new(None::<aioloop::Future<()>>));
    let started = Arc::new(AtomicBool::new(false));
    let (c2, f2, s2) = (caught.clone(), slot.clone(), started.clone());
    let target = rt.spawn(async move {
        // Rule T4: cancelled before its first step it would never run: the peer starts
        // counting once this is set.
        s2.store(true, SeqCst);
        let mut got = 0u32;
        for _ in 0..200 {
            let f = aioloop::create_future::<()>();
            *f2.lock().unwrap() = Some(f.clone());
            let r = if via_task {
                let child = aioloop::create_task(async move { f.await.is_ok() });
                catch_cancel(async move { child.await.unwrap_or(false) }).await
            } else {
                catch_cancel(async move { f.await.is_ok() }).await
            };
            match r {
                Ok(_) => got += 1,
                Err(_) => {
                    c2.fetch_add(1, SeqCst);
                    current_task().unwrap().uncancel();
                }
            }
        }
        got
    });
    let tr = target.task_ref();
    let peer = rt.spawn(async move {
        let mut i = 0u32;
        while !tr.done() {
            if let Some(f) = slot.lock().unwrap().take() {
                let _ = f.set_result(());
            }
            if started.load(SeqCst) {
                i += 1;
                if i == 5 + round % 40 {
                    assert!(tr.cancel(None));
                }
            }
            yield_now().await;
        }
    });
    rt.block_on(peer).unwrap();
    let r = rt.block_on(target);
    assert!(r.is_ok(), "round {round} (via_task {via_task}): {r:?}");
    assert_eq!(
        caught.load(SeqCst),
        1,
        "round {round} (via_task {via_task})"
    );
}

// rule T3: a cancel made from another worker while the task is being polled (or just woken,
// or suspended) is delivered at its next suspension point, exactly once: the target's catch
// scope runs once and the task ends with its value. The target awaits a future (the cancel
// is passed on to it when suspended) or a child task (passed on to the child, raised at the
// await when the child ends cancelled or finished first).
#[test]
fn cancel_from_another_worker_mid_poll_is_delivered_once() {
    guarded("mid-poll cancel", || {
        let rt = runtime(2);
        for round in 0..400u32 {
            mid_poll_round(&rt, round, round % 2 == 1);
        }
    });
}

/// Polls `inner`; when it is pending, runs `hook` once, still inside the task's poll.
struct ThenHook<F, H> {
    inner: F,
    hook: Option<H>,
}

impl<F: std::future::Future + Unpin, H: FnOnce() + Unpin> std::future::Future for ThenHook<F, H> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let r = std::pin::Pin::new(&mut self.inner).poll(cx);
        if r.is_pending() {
            if let Some(h) = self.hook.take() {
                h();
            }
        }
        r
    }
}

// rule T3 ("a running task has the next future it awaits cancelled at once"; mapping
// point 2): a cancel made from another thread while a worker polls the task, after the poll
// got past the awaited child's `Pending`, is passed on to that child (asyncio passes a stored
// request to the future the step yields): the child suppresses it and the awaiter receives
// its value — its catch scope does not fire and the child is not left running detached.
#[test]
fn cancel_arriving_mid_poll_is_passed_on_to_the_awaited_task() {
    guarded("mid-poll cancel passed on", || {
        let rt = runtime(2);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (cancelled_tx, cancelled) = std::sync::mpsc::channel::<()>();
        let (child_started_tx, child_started) = std::sync::mpsc::channel::<()>();
        let child = rt.spawn(async move {
            child_started_tx.send(()).unwrap();
            match catch_cancel(std::future::pending::<()>()).await {
                Ok(()) => 0,
                Err(_) => {
                    current_task().unwrap().uncancel();
                    42
                }
            }
        });
        let child_ref = child.task_ref();
        let parent = rt.spawn(async move {
            let waited = ThenHook {
                inner: child,
                hook: Some(move || {
                    // Inside the poll, after the child's `Pending`: the test thread (not a
                    // worker) cancels the parent now.
                    tx.send(()).unwrap();
                    cancelled.recv().unwrap();
                }),
            };
            catch_cancel(waited).await.map(|r| r.unwrap())
        });
        // Rule T4: a child cancelled before its first step would never run its body.
        child_started.recv().unwrap();
        rx.recv().unwrap();
        assert!(parent.cancel(Some("mid")));
        cancelled_tx.send(()).unwrap();
        let got = rt.block_on(parent).unwrap();
        assert_eq!(got.unwrap(), 42, "the child's value");
        assert_eq!(
            child_ref.cancelling(),
            0,
            "the child took and suppressed it"
        );
        assert!(child_ref.done() && !child_ref.cancelled());
    });
}

// rules T3, T7 ("cancel() on a done task returns false" and counts nothing): a cancel racing
// the task's last step from another thread either reaches it (it ends cancelled, or — when
// the step was already finishing — keeps its value with the request counted), or reports
// `false` and leaves `cancelling()` at 0, as on a task that was already done.
#[test]
fn cancel_racing_completion_returns_false_only_for_a_done_task() {
    guarded("cancel vs completion", || {
        let rt = runtime(2);
        let (mut refused, mut cancelled) = (0, 0);
        for _ in 0..2000 {
            let t = rt.spawn(async { 7 });
            let r = t.task_ref();
            let accepted = r.cancel(None);
            let out = rt.block_on(t);
            if accepted {
                if out.is_err() {
                    cancelled += 1;
                }
            } else {
                refused += 1;
                assert_eq!(out.unwrap(), 7);
                assert_eq!(r.cancelling(), 0, "a refused cancel counts nothing");
            }
        }
        assert!(refused + cancelled > 0);
    });
}
