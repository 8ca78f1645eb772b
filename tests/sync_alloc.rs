//! No heap allocation per uncontended acquire/release of `aioloop::sync`'s Lock, Semaphore,
//! BoundedSemaphore and Event wait (issue 12 item 3): a counting global allocator, in its
//! own test binary, counts the allocations of this thread around 1,000 cycles.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aioloop::sync::{BoundedSemaphore, Event, Lock, Semaphore};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Tally};

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

struct PerThread;

impl Tally for PerThread {
    fn add(delta: isize) {
        if delta > 0 {
            // `try_with`: the slot may be gone while the thread exits.
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        }
    }
}

#[global_allocator]
static ALLOC: Counting<PerThread> = Counting::new();

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

/// Polls `f` once with a no-op waker; it must be ready (uncontended).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("uncontended acquire must not wait"),
    }
}

/// Issue 12 item 3: 0 allocations per uncontended cycle.
#[test]
fn uncontended_acquire_release_allocates_nothing() {
    let lock = Lock::new();
    let sem = Semaphore::new(8);
    let bsem = BoundedSemaphore::new(2);
    let ev = Event::new();
    ev.set();
    // Warm up (lazy thread-locals of the first poll).
    drop(ready(lock.acquire()));
    let before = allocs();
    for _ in 0..1000 {
        drop(ready(lock.acquire()));
        drop(ready(sem.acquire()));
        drop(ready(bsem.acquire()));
        ready(ev.wait());
        ready(lock.acquire()).forget();
        lock.release().unwrap();
        ready(bsem.acquire()).forget();
        bsem.release().unwrap();
    }
    assert_eq!(allocs() - before, 0);
}

/// The same inside a task of a `LocalLoop` (the poll path of a real task: current-task
/// slot, cancellation checks), measured within one task step.
#[test]
fn uncontended_in_a_task_allocates_nothing() {
    let lp = aioloop::LocalLoop::new().unwrap();
    let n = lp
        .run_until_complete(async {
            let lock = Lock::new();
            let sem = Semaphore::new(1);
            drop(lock.acquire().await);
            let before = allocs();
            for _ in 0..1000 {
                let g = lock.acquire().await;
                let p = sem.acquire().await;
                drop((g, p));
            }
            allocs() - before
        })
        .unwrap();
    assert_eq!(n, 0);
}
