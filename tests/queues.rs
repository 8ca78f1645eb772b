//! `aioloop::queue` (rules Q1–Q8): CPython's `Lib/test/test_asyncio/test_queues.py` (3.13,
//! shutdown included) ported test by test, each named after the CPython test it ports and run
//! on a `LocalLoop` and on a runtime; then what asyncio's single-threaded queue never had to
//! do: a blocking thread that runs no loop feeding tasks, a getter woken on its own loop from
//! another thread, and a cross-worker stress test with cancellations at random points.
//!
//! The ported bodies run where asyncio's ordering holds: on a `LocalLoop`, and inside a task
//! of a one-worker runtime (every child spawned there is queued FIFO on that worker, as on
//! asyncio's loop). `yield_now()` stands for `asyncio.sleep(0)`. asyncio's `q._getters` /
//! `q._putters` lengths are read from the queue's `Debug` (asyncio's `repr`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use aioloop::queue::{
    Fifo, GenericQueue, GetNowaitError, Lifo, LifoQueue, Order, Priority, PriorityQueue,
    PutNowaitError, Queue, QueueEmpty,
};
use aioloop::{catch_cancel, create_task, current_task, yield_now, Task};

mod common;
use common::{guarded, new_loop, runtime, Counted, NoopWake};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Tally};

thread_local! {
    // `const` and `Cell`: the allocator may touch it at any time without allocating.
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts the allocations (not frees) made by the current thread.
struct AllocsPerThread;

impl Tally for AllocsPerThread {
    fn add(delta: isize) {
        if delta > 0 {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    }
}

#[global_allocator]
static COUNTING: Counting<AllocsPerThread> = Counting::new();

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `body` on a `LocalLoop`, then as a task of a one-worker runtime.
fn on_both<Fut: Future<Output = ()> + Send + 'static>(name: &str, body: fn() -> Fut) {
    guarded(&format!("{name} on a LocalLoop"), move || {
        let lp = new_loop();
        lp.run_until_complete(body()).unwrap();
        lp.close().unwrap();
    });
    guarded(&format!("{name} on a runtime"), move || {
        let rt = runtime(1);
        rt.block_on(rt.spawn(body())).unwrap();
    });
}

type Shared<T, O> = Arc<GenericQueue<T, O>>;

fn shared<T, O: Order<T>>(maxsize: usize) -> Shared<T, O> {
    Arc::new(GenericQueue::new(maxsize))
}

/// A task doing `q.get()`.
fn get_task<T: Send + 'static, O: Order<T> + 'static>(
    q: &Shared<T, O>,
) -> Task<Result<T, aioloop::queue::QueueShutDown>>
where
    O::Store: Send,
{
    let q = q.clone();
    create_task(async move { q.get().await })
}

/// A task doing `q.put(item)`, returning whether it succeeded.
fn put_task<T: Send + 'static, O: Order<T> + 'static>(q: &Shared<T, O>, item: T) -> Task<bool>
where
    O::Store: Send,
{
    let q = q.clone();
    create_task(async move { q.put(item).await.is_ok() })
}

/// A task doing `q.join()`.
fn join_task<T: Send + 'static, O: Order<T> + 'static>(q: &Shared<T, O>) -> Task<()>
where
    O::Store: Send,
{
    let q = q.clone();
    create_task(async move { q.join().await })
}

fn repr<T: std::fmt::Debug, O: Order<T>>(q: &GenericQueue<T, O>) -> String {
    format!("{q:?}")
}

fn drain<T, O: Order<T>>(q: &GenericQueue<T, O>) -> Vec<T> {
    std::iter::from_fn(|| q.get_nowait().ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// QueueBasicTests (rules Q1, Q2)
// ---------------------------------------------------------------------------------------------

/// CPython `QueueBasicTests.test_repr` / `test_str`: the getters, putters and items show.
/// (`test_generic_alias` has no counterpart: `Queue<T>` is generic by construction.)
async fn repr_body() {
    let q: Shared<i32, Fifo> = shared(0);
    assert!(repr(&q).starts_with("<Queue"));
    let getter = get_task(&q);
    yield_now().await;
    assert!(repr(&q).contains("_getters[1]"), "{}", repr(&q));
    q.put_nowait(0).unwrap();
    assert_eq!(getter.await.unwrap(), Ok(0));

    let q: Shared<i32, Fifo> = shared(1);
    q.put_nowait(1).unwrap();
    let putter = put_task(&q, 2);
    yield_now().await;
    assert!(repr(&q).contains("_putters[1]"), "{}", repr(&q));
    q.get_nowait().unwrap();
    assert!(putter.await.unwrap());

    let q: Shared<i32, Fifo> = shared(0);
    q.put_nowait(1).unwrap();
    assert!(repr(&q).contains("_queue=[1]"));
}

#[test]
fn test_repr() {
    on_both("test_repr", repr_body);
}

/// CPython `QueueBasicTests.test_empty` (rule Q1).
#[test]
fn test_empty() {
    on_both("test_empty", || async {
        let q = Queue::new(0);
        assert!(q.empty());
        q.put(1).await.unwrap();
        assert!(!q.empty());
        assert_eq!(q.get().await, Ok(1));
        assert!(q.empty());
    });
}

/// CPython `QueueBasicTests.test_full` (rule Q1).
#[test]
fn test_full() {
    on_both("test_full", || async {
        let q = Queue::<i32>::new(0);
        assert!(!q.full());
        let q = Queue::new(1);
        q.put(1).await.unwrap();
        assert!(q.full());
    });
}

/// CPython `QueueBasicTests.test_order`, `LifoQueueTests.test_order`,
/// `PriorityQueueTests.test_order` (rule Q2).
#[test]
fn test_order() {
    on_both("test_order", || async {
        let q = Queue::new(0);
        let l = LifoQueue::new(0);
        let p = PriorityQueue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
            l.put(i).await.unwrap();
            p.put(i).await.unwrap();
        }
        let mut got = (vec![], vec![], vec![]);
        for _ in 0..3 {
            got.0.push(q.get().await.unwrap());
            got.1.push(l.get().await.unwrap());
            got.2.push(p.get().await.unwrap());
        }
        assert_eq!(got, (vec![1, 3, 2], vec![2, 3, 1], vec![1, 2, 3]));
    });
}

/// CPython `QueueBasicTests.test_maxsize` (rules Q1, Q4).
#[test]
fn test_maxsize() {
    on_both("test_maxsize", || async {
        let q: Shared<i32, Fifo> = shared(2);
        assert_eq!(q.maxsize(), 2);
        let have_been_put = Arc::new(Mutex::new(vec![]));
        let t = create_task({
            let (q, put) = (q.clone(), have_been_put.clone());
            async move {
                for i in 0..3 {
                    q.put(i).await.unwrap();
                    put.lock().unwrap().push(i);
                }
                true
            }
        });
        for _ in 0..2 {
            yield_now().await;
        }
        // The putter is blocked after putting two items.
        assert_eq!(*have_been_put.lock().unwrap(), [0, 1]);
        assert_eq!(q.get().await, Ok(0));
        // Let the putter resume and put the last item.
        yield_now().await;
        assert_eq!(*have_been_put.lock().unwrap(), [0, 1, 2]);
        assert_eq!(q.get().await, Ok(1));
        assert_eq!(q.get().await, Ok(2));
        assert!(t.done());
        assert!(t.await.unwrap());
    });
}

// ---------------------------------------------------------------------------------------------
// QueueGetTests (rules Q3, Q4, Q5)
// ---------------------------------------------------------------------------------------------

/// CPython `QueueGetTests.test_blocking_get`.
#[test]
fn test_blocking_get() {
    on_both("test_blocking_get", || async {
        let q = Queue::new(0);
        q.put_nowait(1).unwrap();
        assert_eq!(q.get().await, Ok(1));
    });
}

/// CPython `QueueGetTests.test_get_with_putters`: a get frees a slot and wakes the waiting
/// putter (CPython appends a bare future to `_putters`; here it is a real putter).
#[test]
fn test_get_with_putters() {
    on_both("test_get_with_putters", || async {
        let q: Shared<i32, Fifo> = shared(1);
        q.put(1).await.unwrap();
        let putter = put_task(&q, 2);
        yield_now().await;
        assert!(repr(&q).contains("_putters[1]"));
        assert_eq!(q.get().await, Ok(1));
        assert!(putter.await.unwrap());
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

/// CPython `QueueGetTests.test_blocking_get_wait` (`call_later(0.01, q.put_nowait, 1)` is a
/// task that sleeps first).
#[test]
fn test_blocking_get_wait() {
    on_both("test_blocking_get_wait", || async {
        let q: Shared<i32, Fifo> = shared(0);
        let finished = Arc::new(AtomicBool::new(false));
        let getter = create_task({
            let (q, finished) = (q.clone(), finished.clone());
            async move {
                let res = q.get().await;
                finished.store(true, Ordering::SeqCst);
                res
            }
        });
        yield_now().await;
        assert!(!finished.load(Ordering::SeqCst));
        let later = create_task({
            let q = q.clone();
            async move {
                aioloop::sleep(Duration::from_millis(10)).await;
                q.put_nowait(1).unwrap();
            }
        });
        assert_eq!(getter.await.unwrap(), Ok(1));
        assert!(finished.load(Ordering::SeqCst));
        later.await.unwrap();
    });
}

/// CPython `QueueGetTests.test_nonblocking_get` and `test_nonblocking_get_exception`
/// (rule Q3).
#[test]
fn test_nonblocking_get() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Err(GetNowaitError::Empty(QueueEmpty)));
}

/// CPython `QueueGetTests.test_get_cancelled_race` (rule Q5): a getter cancelled while
/// waiting leaves the next getter first in line.
#[test]
fn test_get_cancelled_race() {
    on_both("test_get_cancelled_race", || async {
        let q: Shared<&str, Fifo> = shared(0);
        let t1 = get_task(&q);
        let t2 = get_task(&q);
        yield_now().await;
        t1.cancel(None);
        yield_now().await;
        assert!(t1.done());
        q.put("a").await.unwrap();
        yield_now().await;
        assert_eq!(t2.await.unwrap(), Ok("a"));
        assert!(t1.await.unwrap_err().is_cancelled());
    });
}

/// CPython `QueueGetTests.test_get_with_waiting_putters`.
#[test]
fn test_get_with_waiting_putters() {
    on_both("test_get_with_waiting_putters", || async {
        let q: Shared<&str, Fifo> = shared(1);
        let a = put_task(&q, "a");
        let b = put_task(&q, "b");
        assert_eq!(q.get().await, Ok("a"));
        assert_eq!(q.get().await, Ok("b"));
        assert!(a.await.unwrap() && b.await.unwrap());
    });
}

/// CPython `QueueGetTests.test_why_are_getters_waiting` (rule Q4).
#[test]
fn test_why_are_getters_waiting() {
    on_both("test_why_are_getters_waiting", || async {
        let q: Shared<i32, Fifo> = shared(1);
        let producer = create_task({
            let q = q.clone();
            async move {
                for i in 0..5 {
                    q.put(i).await.unwrap();
                }
            }
        });
        let consumer = create_task({
            let q = q.clone();
            async move {
                for _ in 0..5 {
                    q.get().await.unwrap();
                }
            }
        });
        producer.await.unwrap();
        consumer.await.unwrap();
    });
}

/// CPython `QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters` (rule Q5).
#[test]
fn test_cancelled_getters_not_being_held_in_self_getters() {
    on_both(
        "test_cancelled_getters_not_being_held_in_self_getters",
        || async {
            let q = Queue::<i32>::new(5);
            let r = aioloop::wait_for(q.get(), Duration::from_millis(10)).await;
            assert_eq!(r, Err(aioloop::TimeoutError));
            assert!(!repr(&q).contains("_getters"), "{}", repr(&q));
        },
    );
}

// ---------------------------------------------------------------------------------------------
// QueuePutTests (rules Q3, Q4, Q5)
// ---------------------------------------------------------------------------------------------

/// CPython `QueuePutTests.test_blocking_put` and `test_nonblocking_put`.
#[test]
fn test_blocking_put() {
    on_both("test_blocking_put", || async {
        let q = Queue::new(0);
        q.put(1).await.unwrap(); // no maxsize: does not wait
        assert_eq!(q.get().await, Ok(1));
        q.put_nowait(2).unwrap();
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

/// CPython `QueuePutTests.test_blocking_put_wait`.
#[test]
fn test_blocking_put_wait() {
    on_both("test_blocking_put_wait", || async {
        let q: Shared<i32, Fifo> = shared(1);
        let finished = Arc::new(AtomicBool::new(false));
        let later = create_task({
            let q = q.clone();
            async move {
                aioloop::sleep(Duration::from_millis(10)).await;
                q.get_nowait().unwrap();
            }
        });
        let putter = create_task({
            let (q, finished) = (q.clone(), finished.clone());
            async move {
                q.put(1).await.unwrap();
                q.put(2).await.unwrap();
                finished.store(true, Ordering::SeqCst);
            }
        });
        yield_now().await;
        assert!(!finished.load(Ordering::SeqCst));
        putter.await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
        later.await.unwrap();
    });
}

/// CPython `QueuePutTests.test_get_cancel_drop_one_pending_reader` (rule Q5): a getter woken
/// for item 1 and cancelled before it ran must not drop item 1.
#[test]
fn test_get_cancel_drop_one_pending_reader() {
    on_both("test_get_cancel_drop_one_pending_reader", || async {
        let q: Shared<i32, Fifo> = shared(0);
        let reader = get_task(&q);
        yield_now().await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        reader.cancel(None);
        let result = match reader.await {
            Err(e) if e.is_cancelled() => get_task(&q).await.unwrap(),
            other => other.unwrap(),
        };
        // 2 would mean that 1 got dropped.
        assert_eq!(result, Ok(1));
    });
}

/// CPython `QueuePutTests.test_get_cancel_drop_many_pending_readers` (rule Q5): the
/// cancelled reader's wake-up passes to the third reader.
#[test]
fn test_get_cancel_drop_many_pending_readers() {
    on_both("test_get_cancel_drop_many_pending_readers", || async {
        let q: Shared<i32, Fifo> = shared(0);
        let reader1 = get_task(&q);
        let reader2 = get_task(&q);
        let reader3 = get_task(&q);
        yield_now().await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        reader1.cancel(None);
        assert!(reader1.await.unwrap_err().is_cancelled());
        let got: HashSet<i32> = [reader2.await.unwrap(), reader3.await.unwrap()]
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, HashSet::from([1, 2]));
    });
}

/// CPython `QueuePutTests.test_put_cancel_drop` (rule Q5): a putter woken for a free slot and
/// cancelled before it ran did not put; putting again works.
#[test]
fn test_put_cancel_drop() {
    on_both("test_put_cancel_drop", || async {
        let q: Shared<i32, Fifo> = shared(1);
        q.put_nowait(1).unwrap();
        // Putting a second item has to wait (qsize 1).
        let writer = put_task(&q, 2);
        yield_now().await;
        assert_eq!(q.get_nowait(), Ok(1));
        writer.cancel(None);
        match writer.await {
            Err(e) if e.is_cancelled() => assert!(put_task(&q, 2).await.unwrap()),
            other => assert!(other.unwrap()),
        }
        assert_eq!(q.get_nowait(), Ok(2));
        assert_eq!(q.qsize(), 0);
    });
}

/// CPython `QueuePutTests.test_nonblocking_put_exception` (rule Q3); the item comes back.
/// (`test_float_maxsize` has no counterpart: `maxsize` is a `usize`.)
#[test]
fn test_nonblocking_put_exception() {
    let q = Queue::new(1);
    q.put_nowait(1).unwrap();
    match q.put_nowait(2) {
        Err(PutNowaitError::Full(e)) => assert_eq!(e.into_inner(), 2),
        other => panic!("expected QueueFull, got {other:?}"),
    }
}

/// CPython `QueuePutTests.test_put_cancelled`.
#[test]
fn test_put_cancelled() {
    on_both("test_put_cancelled", || async {
        let q: Shared<i32, Fifo> = shared(0);
        let t = put_task(&q, 1);
        assert_eq!(q.get().await, Ok(1));
        assert!(t.done());
        assert!(t.await.unwrap());
    });
}

/// CPython `QueuePutTests.test_put_cancelled_race` (rule Q5).
#[test]
fn test_put_cancelled_race() {
    on_both("test_put_cancelled_race", || async {
        let q: Shared<&str, Fifo> = shared(1);
        let put_a = put_task(&q, "a");
        let put_b = put_task(&q, "b");
        let put_c = put_task(&q, "X");
        yield_now().await;
        assert!(put_a.done());
        assert!(!put_b.done());
        put_c.cancel(None);
        yield_now().await;
        assert!(put_c.done());
        assert_eq!(q.get_nowait(), Ok("a"));
        yield_now().await;
        assert_eq!(q.get_nowait(), Ok("b"));
        assert!(put_b.await.unwrap());
        assert!(put_c.await.unwrap_err().is_cancelled());
        assert!(put_a.await.unwrap());
    });
}

/// CPython `QueuePutTests.test_put_with_waiting_getters`.
#[test]
fn test_put_with_waiting_getters() {
    on_both("test_put_with_waiting_getters", || async {
        let q: Shared<&str, Fifo> = shared(0);
        let t = get_task(&q);
        yield_now().await;
        q.put("a").await.unwrap();
        assert_eq!(t.await.unwrap(), Ok("a"));
    });
}

/// CPython `QueuePutTests.test_why_are_putters_waiting` (rule Q4).
#[test]
fn test_why_are_putters_waiting() {
    on_both("test_why_are_putters_waiting", || async {
        let q: Shared<i32, Fifo> = shared(2);
        let getter = create_task({
            let q = q.clone();
            async move {
                yield_now().await;
                for _ in 0..q.qsize() {
                    q.get_nowait().unwrap();
                }
            }
        });
        let putters: Vec<_> = (0..4).map(|i| put_task(&q, i)).collect();
        getter.await.unwrap();
        for p in putters {
            assert!(p.await.unwrap());
        }
    });
}

/// CPython `QueuePutTests.test_cancelled_puts_not_being_held_in_self_putters` (rule Q5).
#[test]
fn test_cancelled_puts_not_being_held_in_self_putters() {
    on_both(
        "test_cancelled_puts_not_being_held_in_self_putters",
        || async {
            let q: Shared<i32, Fifo> = shared(1);
            q.put_nowait(1).unwrap();
            let t = put_task(&q, 1);
            yield_now().await;
            assert!(repr(&q).contains("_putters[1]"));
            t.cancel(None);
            assert!(t.await.unwrap_err().is_cancelled());
            assert!(!repr(&q).contains("_putters"), "{}", repr(&q));
        },
    );
}

/// CPython `QueuePutTests.test_cancelled_put_silence_value_error_exception` (rule Q5): a
/// putter notified by `get_nowait`, then cancelled, ends cancelled (and nothing else fails).
#[test]
fn test_cancelled_put_silence_value_error_exception() {
    on_both(
        "test_cancelled_put_silence_value_error_exception",
        || async {
            let q: Shared<i32, Fifo> = shared(1);
            q.put_nowait(1).unwrap();
            let t = put_task(&q, 1);
            yield_now().await;
            q.get_nowait().unwrap();
            t.cancel(None);
            assert!(t.await.unwrap_err().is_cancelled());
            assert!(q.empty());
        },
    );
}

// ---------------------------------------------------------------------------------------------
// _QueueJoinTestMixin, for Queue, LifoQueue and PriorityQueue (rule Q6)
// ---------------------------------------------------------------------------------------------

/// CPython `_QueueJoinTestMixin.test_task_done_underflow`.
fn task_done_underflow<O: Order<i32>>() {
    let q = GenericQueue::<i32, O>::new(0);
    let err = q.task_done().unwrap_err();
    assert_eq!(err.to_string(), "task_done() called too many times");
}

/// CPython `_QueueJoinTestMixin.test_task_done`: two workers, `join` returns once all 100
/// items were processed.
async fn task_done_body<O: Order<i32> + 'static>()
where
    O::Store: Send,
{
    let q: Shared<i32, O> = shared(0);
    for i in 0..100 {
        q.put_nowait(i).unwrap();
    }
    let accumulator = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, acc, running) = (q.clone(), accumulator.clone(), running.clone());
            create_task(async move {
                while running.load(Ordering::SeqCst) {
                    let item = q.get().await.unwrap();
                    acc.fetch_add(item as usize, Ordering::SeqCst);
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    q.join().await;
    assert_eq!(accumulator.load(Ordering::SeqCst), (0..100).sum::<usize>());
    running.store(false, Ordering::SeqCst);
    for _ in &workers {
        q.put_nowait(0).unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
}

/// CPython `_QueueJoinTestMixin.test_join_empty_queue` and `test_format`.
async fn join_empty_body<O: Order<i32>>() {
    let q = GenericQueue::<i32, O>::new(0);
    q.join().await;
    q.join().await;
    assert!(repr(&q).ends_with("maxsize=0>"));
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    drain(&q);
    assert!(repr(&q).ends_with("maxsize=0 tasks=2>"), "{}", repr(&q));
}

#[test]
fn test_task_done_underflow() {
    task_done_underflow::<Fifo>();
    task_done_underflow::<Lifo>();
    task_done_underflow::<Priority>();
}

#[test]
fn test_task_done() {
    on_both("test_task_done (Queue)", task_done_body::<Fifo>);
    on_both("test_task_done (LifoQueue)", task_done_body::<Lifo>);
    on_both("test_task_done (PriorityQueue)", task_done_body::<Priority>);
}

#[test]
fn test_join_empty_queue() {
    on_both("test_join_empty_queue (Queue)", join_empty_body::<Fifo>);
    on_both("test_join_empty_queue (LifoQueue)", join_empty_body::<Lifo>);
    on_both(
        "test_join_empty_queue (PriorityQueue)",
        join_empty_body::<Priority>,
    );
}

// ---------------------------------------------------------------------------------------------
// _QueueShutdownTestMixin (3.13), for Queue, LifoQueue and PriorityQueue (rules Q7, Q8)
// ---------------------------------------------------------------------------------------------

type Str = &'static str;

/// Every operation that must fail on a shut-down queue with nothing left in it.
async fn assert_all_shut_down<O: Order<Str>>(q: &GenericQueue<Str, O>) {
    assert_eq!(q.put("data").await.unwrap_err().into_inner(), "data");
    assert!(q.put_nowait("data").unwrap_err().is_shut_down());
    assert!(q.get().await.is_err());
    assert!(q.get_nowait().unwrap_err().is_shut_down());
}

/// CPython `_QueueShutdownTestMixin.test_format`.
fn shutdown_format<O: Order<Str>>() {
    let q = GenericQueue::<Str, O>::new(0);
    q.shutdown(false);
    assert!(repr(&q).ends_with("maxsize=0 shutdown>"), "{}", repr(&q));
}

/// CPython `_QueueShutdownTestMixin.test_shutdown_empty`.
async fn shutdown_empty_body<O: Order<Str> + 'static>()
where
    O::Store: Send,
{
    let q: Shared<Str, O> = shared(0);
    let get = get_task(&q);
    yield_now().await; // the get is waiting before the shutdown
    q.shutdown(false); // unfinished tasks: 0 -> 0
    assert_eq!(q.qsize(), 0);
    q.join().await;
    yield_now().await;
    assert!(get.done());
    assert!(get.await.unwrap().is_err());
    assert_all_shut_down(&q).await;
}

/// CPython `_QueueShutdownTestMixin.test_shutdown_nonempty`.
async fn shutdown_nonempty_body<O: Order<Str> + 'static>()
where
    O::Store: Send,
{
    let q: Shared<Str, O> = shared(1);
    q.put_nowait("data").unwrap();
    let join = join_task(&q);
    let put = put_task(&q, "data2");
    yield_now().await;
    assert!(!put.done());
    q.shutdown(false); // unfinished tasks: 1 -> 1
    assert_eq!(q.qsize(), 1);
    yield_now().await;
    assert!(put.done());
    assert!(!put.await.unwrap()); // QueueShutDown
    assert_eq!(q.get().await, Ok("data"));
    yield_now().await;
    assert!(!join.done());
    assert_all_shut_down(&q).await;
    q.task_done().unwrap();
    yield_now().await;
    assert!(join.done());
    join.await.unwrap();
    assert!(q.task_done().is_err());
}

/// CPython `_QueueShutdownTestMixin.test_shutdown_immediate`.
async fn shutdown_immediate_body<O: Order<Str> + 'static>()
where
    O::Store: Send,
{
    let q: Shared<Str, O> = shared(0);
    q.put_nowait("data").unwrap();
    let join = join_task(&q);
    q.shutdown(true); // unfinished tasks: 1 -> 0
    assert_eq!(q.qsize(), 0);
    yield_now().await;
    assert!(join.done());
    join.await.unwrap();
    assert_all_shut_down(&q).await;
    assert!(q.task_done().is_err());
}

/// CPython `_QueueShutdownTestMixin.test_shutdown_immediate_with_unfinished`.
async fn shutdown_immediate_with_unfinished_body<O: Order<Str> + 'static>()
where
    O::Store: Send,
{
    let q: Shared<Str, O> = shared(0);
    q.put_nowait("data").unwrap();
    q.put_nowait("data").unwrap();
    let join = join_task(&q);
    assert_eq!(q.get().await, Ok("data"));
    q.shutdown(true); // unfinished tasks: 2 -> 1
    assert_eq!(q.qsize(), 0);
    yield_now().await;
    assert!(!join.done());
    assert_all_shut_down(&q).await;
    q.task_done().unwrap();
    assert!(q.task_done().is_err());
    yield_now().await;
    assert!(join.done());
    join.await.unwrap();
}

#[test]
fn test_shutdown_format() {
    shutdown_format::<Fifo>();
    shutdown_format::<Lifo>();
    shutdown_format::<Priority>();
}

#[test]
fn test_shutdown_empty() {
    on_both("test_shutdown_empty (Queue)", shutdown_empty_body::<Fifo>);
    on_both(
        "test_shutdown_empty (LifoQueue)",
        shutdown_empty_body::<Lifo>,
    );
    on_both(
        "test_shutdown_empty (PriorityQueue)",
        shutdown_empty_body::<Priority>,
    );
}

#[test]
fn test_shutdown_nonempty() {
    on_both(
        "test_shutdown_nonempty (Queue)",
        shutdown_nonempty_body::<Fifo>,
    );
    on_both(
        "test_shutdown_nonempty (LifoQueue)",
        shutdown_nonempty_body::<Lifo>,
    );
    on_both(
        "test_shutdown_nonempty (PriorityQueue)",
        shutdown_nonempty_body::<Priority>,
    );
}

#[test]
fn test_shutdown_immediate() {
    on_both(
        "test_shutdown_immediate (Queue)",
        shutdown_immediate_body::<Fifo>,
    );
    on_both(
        "test_shutdown_immediate (LifoQueue)",
        shutdown_immediate_body::<Lifo>,
    );
    on_both(
        "test_shutdown_immediate (PriorityQueue)",
        shutdown_immediate_body::<Priority>,
    );
}

#[test]
fn test_shutdown_immediate_with_unfinished() {
    on_both(
        "test_shutdown_immediate_with_unfinished (Queue)",
        shutdown_immediate_with_unfinished_body::<Fifo>,
    );
    on_both(
        "test_shutdown_immediate_with_unfinished (LifoQueue)",
        shutdown_immediate_with_unfinished_body::<Lifo>,
    );
    on_both(
        "test_shutdown_immediate_with_unfinished (PriorityQueue)",
        shutdown_immediate_with_unfinished_body::<Priority>,
    );
}

/// Rule Q8 (no CPython counterpart): the items `shutdown(true)` drains are dropped after the
/// queue's lock is released, so an item whose destructor uses the queue does not deadlock.
#[test]
fn shutdown_immediate_drops_items_outside_the_lock() {
    struct UsesQueue(Arc<Queue<UsesQueue>>, Arc<AtomicUsize>);
    impl Drop for UsesQueue {
        fn drop(&mut self) {
            self.1.fetch_add(self.0.qsize() + 1, Ordering::SeqCst);
        }
    }
    guarded("shutdown_immediate_drops_items_outside_the_lock", || {
        let q = Arc::new(Queue::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            q.put_nowait(UsesQueue(q.clone(), dropped.clone())).unwrap();
        }
        q.shutdown(true);
        assert_eq!(dropped.load(Ordering::SeqCst), 3); // each saw an empty queue
    });
}

// ---------------------------------------------------------------------------------------------
// Threads: put_nowait from a thread with no loop, wake-ups on the waiter's own loop
// ---------------------------------------------------------------------------------------------

/// A blocking thread that runs no loop feeds tasks through `put_nowait` (retrying while the
/// queue is full), then shuts the queue down; consumer tasks on a two-worker runtime and on
/// a `LocalLoop` take every item exactly once (rules Q3, Q4, Q7).
#[test]
fn blocking_thread_feeds_tasks_with_put_nowait() {
    const N: u64 = 2000;
    fn feeder(q: Arc<Queue<u64>>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            for i in 0..N {
                let mut item = i;
                loop {
                    match q.put_nowait(item) {
                        Ok(()) => break,
                        Err(PutNowaitError::Full(e)) => {
                            item = e.into_inner();
                            thread::yield_now();
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            }
            q.shutdown(false);
        })
    }
    async fn consume(q: Arc<Queue<u64>>) -> Vec<u64> {
        let mut got = vec![];
        while let Ok(i) = q.get().await {
            got.push(i);
        }
        got
    }
    fn check(mut got: Vec<u64>) {
        got.sort_unstable();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    }

    guarded("feeding a runtime", || {
        let rt = runtime(2);
        let q = Arc::new(Queue::new(16));
        let consumers: Vec<_> = (0..4).map(|_| rt.spawn(consume(q.clone()))).collect();
        let feeder = feeder(q);
        let got = rt.block_on(async move {
            let mut all = vec![];
            for c in consumers {
                all.extend(c.await.unwrap());
            }
            all
        });
        feeder.join().unwrap();
        check(got);
    });
    guarded("feeding a LocalLoop", || {
        let lp = new_loop();
        let q = Arc::new(Queue::new(16));
        let feeder = feeder(q.clone());
        let got = lp
            .run_until_complete(async move {
                let consumers: Vec<_> = (0..3).map(|_| create_task(consume(q.clone()))).collect();
                let mut all = vec![];
                for c in consumers {
                    all.extend(c.await.unwrap());
                }
                all
            })
            .unwrap();
        feeder.join().unwrap();
        check(got);
    });
}

/// On a `LocalLoop` a queue may hold `!Send` items and be shared with `Rc`: the waits are
/// plain futures, nothing requires `Send` unless the queue crosses threads.
#[test]
fn local_loop_queue_of_non_send_items() {
    use std::rc::Rc;
    let lp = new_loop();
    let q: Rc<Queue<Rc<i32>>> = Rc::new(Queue::new(1));
    let sum = lp
        .run_until_complete(async move {
            let consumer = aioloop::spawn_local({
                let q = q.clone();
                async move { *q.get().await.unwrap() + *q.get().await.unwrap() }
            });
            q.put(Rc::new(1)).await.unwrap();
            q.put(Rc::new(2)).await.unwrap(); // waits for the consumer: maxsize 1
            consumer.await.unwrap()
        })
        .unwrap();
    assert_eq!(sum, 3);
    lp.close().unwrap();
}

/// A getter waiting on a `LocalLoop` is woken by a put on a runtime worker and runs on the
/// `LocalLoop`'s own thread.
#[test]
fn getter_wakes_on_its_own_loop() {
    guarded("getter_wakes_on_its_own_loop", || {
        let q = Arc::new(Queue::new(0));
        let rt = runtime(2);
        let lp = new_loop();
        let here = thread::current().id();
        let (q2, q3) = (q.clone(), q.clone());
        let got = lp
            .run_until_complete(async move {
                let getter = create_task(async move {
                    let item = q2.get().await;
                    (item, thread::current().id())
                });
                yield_now().await; // the getter waits
                rt.spawn(async move { q3.put("from a worker").await.unwrap() })
                    .detach();
                getter.await.unwrap()
            })
            .unwrap();
        assert_eq!(got, (Ok("from a worker"), here));
    });
}

// ---------------------------------------------------------------------------------------------
// Cross-worker stress with cancellations (rule Q5)
// ---------------------------------------------------------------------------------------------

/// Withdraws every cancellation request of the current task (the stress tasks suppress the
/// cancellations they catch, T6/T7).
fn uncancel_all() {
    let me = current_task().unwrap();
    while me.uncancel() > 0 {}
}

/// Four producers and four consumers on a two-worker runtime, a bounded queue of 4, and a
/// chaos task cancelling producers and consumers at random points. Every cancelled `put` is
/// retried with the same item, every cancelled `get` is retried; at the end each item was
/// received exactly once: no item lost, none duplicated, however the cancellations fell
/// between being woken and running (rule Q5).
#[test]
fn cross_worker_stress_with_random_cancellations() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 500;
    guarded("cross_worker_stress_with_random_cancellations", || {
        let rt = runtime(2);
        let received = rt.block_on(async {
            let q: Arc<Queue<u64>> = Arc::new(Queue::new(4));
            let cancels = Arc::new(AtomicUsize::new(0));
            // A task cancelled before its first step never runs its body (asyncio's
            // `Task.cancel` before the first `__step`), so a producer cancelled that early
            // would put nothing: chaos starts once every victim is inside its retry loop.
            let started = Arc::new(AtomicUsize::new(0));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (q, started) = (q.clone(), started.clone());
                    create_task(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        for i in 0..PER_PRODUCER {
                            let item = p * PER_PRODUCER + i;
                            loop {
                                match catch_cancel(q.put(item)).await {
                                    Ok(r) => break r.unwrap(),
                                    Err(_) => uncancel_all(),
                                }
                            }
                        }
                    })
                })
                .collect();
            let received = Arc::new(Mutex::new(vec![]));
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let (q, received, started) = (q.clone(), received.clone(), started.clone());
                    create_task(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        loop {
                            match catch_cancel(q.get()).await {
                                Ok(Ok(item)) => received.lock().unwrap().push(item),
                                Ok(Err(_shut_down)) => return,
                                Err(_) => uncancel_all(),
                            }
                        }
                    })
                })
                .collect();
            let victims: Vec<_> = producers
                .iter()
                .map(Task::task_ref)
                .chain(consumers.iter().map(Task::task_ref))
                .collect();
            let stop = Arc::new(AtomicBool::new(false));
            let chaos = create_task({
                let (stop, cancels) = (stop.clone(), cancels.clone());
                async move {
                    while started.load(Ordering::SeqCst) < victims.len() {
                        yield_now().await;
                    }
                    let mut rng = fastrand::Rng::with_seed(12);
                    while !stop.load(Ordering::SeqCst) {
                        let v = &victims[rng.usize(..victims.len())];
                        if v.cancel(None) {
                            cancels.fetch_add(1, Ordering::SeqCst);
                        }
                        for _ in 0..rng.usize(..4) {
                            yield_now().await;
                        }
                    }
                }
            });
            // A task may end cancelled by a request that arrived after its last await
            // (rule 4 of the cancellation mapping); the items tell whether anything was lost.
            for p in producers {
                let _ = p.await;
            }
            // The consumers live until the shutdown below, so chaos can still reach one if
            // the producers were done before it cancelled anything (a loaded machine).
            while cancels.load(Ordering::SeqCst) == 0 {
                yield_now().await;
            }
            stop.store(true, Ordering::SeqCst);
            chaos.await.unwrap();
            q.shutdown(false); // consumers drain what is left, then stop
            for c in consumers {
                let _ = c.await;
            }
            assert!(cancels.load(Ordering::SeqCst) > 0);
            assert!(q.empty());
            let all = received.lock().unwrap().clone();
            all
        });
        let mut sorted = received.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..PRODUCERS * PER_PRODUCER).collect::<Vec<_>>());
    });
}

/// Dropping counted items: a queue dropped with items in it drops each once.
#[test]
fn dropping_the_queue_drops_its_items() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Queue::new(0);
    for _ in 0..3 {
        q.put_nowait(Counted(drops.clone())).unwrap();
    }
    drop(q);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Issue 12 item 3 ("no allocation per uncontended operation", measured): once a bounded
/// queue exists, `put_nowait`/`get_nowait`, an uncontended `put().await`/`get().await`, and
/// even a `get` that parks and is woken by a `put_nowait` allocate nothing — the waiter node
/// lives in the future, the storage was reserved by `new`.
#[test]
fn queue_operations_do_not_allocate() {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let q = Queue::new(16);
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let before = ALLOCS.with(|n| n.get());
    for i in 0..1000u64 {
        q.put_nowait(i).unwrap();
        assert_eq!(q.get_nowait(), Ok(i));
        assert!(pin!(q.put(i)).poll(&mut cx).is_ready());
        assert_eq!(pin!(q.get()).poll(&mut cx), Poll::Ready(Ok(i)));
        let mut waiting = pin!(q.get());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        q.put_nowait(i).unwrap();
        assert_eq!(waiting.poll(&mut cx), Poll::Ready(Ok(i)));
        q.task_done().unwrap();
        q.task_done().unwrap();
        q.task_done().unwrap();
    }
    assert_eq!(
        ALLOCS.with(|n| n.get()) - before,
        0,
        "allocations in queue operations"
    );
}
