//! Cross-worker stress of `aioloop::sync` (rules P1, P4): many tasks on 2 workers contend
//! for a Semaphore and a Lock while a canceller cancels random tasks at random points. At
//! the end: every permit is back (none lost to a cancelled waiter, none duplicated), the
//! lock is free, and mutual exclusion held throughout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aioloop::sync::{Lock, Semaphore};
use aioloop::Task;

mod common;
use common::{guarded, runtime};

const PERMITS: usize = 4;
const TASKS: usize = 400;
const ROUNDS: usize = 50;

/// Counts a task inside a guarded region; a cancellation (drop) inside it leaves it too.
struct Inside<'a>(&'a AtomicUsize);

impl<'a> Inside<'a> {
    fn enter(c: &'a AtomicUsize) -> (Self, usize) {
        (Inside(c), c.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Rules P1 and P4 under random cancellations: no permit lost or duplicated.
#[test]
fn semaphore_and_lock_under_random_cancellation() {
    guarded("semaphore_and_lock_under_random_cancellation", || {
        let rt = runtime(2);
        let sem = Arc::new(Semaphore::new(PERMITS));
        let lock = Arc::new(Lock::new());
        let in_sem = Arc::new(AtomicUsize::new(0));
        let in_lock = Arc::new(AtomicUsize::new(0));
        let max_in_sem = Arc::new(AtomicUsize::new(0));
        let done_rounds = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks: Vec<Task<()>> = (0..TASKS)
                .map(|i| {
                    let (sem, lock) = (sem.clone(), lock.clone());
                    let (in_sem, in_lock) = (in_sem.clone(), in_lock.clone());
                    let (max_in_sem, done_rounds) = (max_in_sem.clone(), done_rounds.clone());
                    aioloop::create_task(async move {
                        for r in 0..ROUNDS {
                            let _p = sem.acquire().await;
                            let (_in, n) = Inside::enter(&in_sem);
                            max_in_sem.fetch_max(n, Ordering::SeqCst);
                            if (i + r) % 3 == 0 {
                                aioloop::yield_now().await;
                            }
                            {
                                let _g = lock.acquire().await;
                                let (_held, n) = Inside::enter(&in_lock);
                                assert_eq!(n, 1, "two holders of the lock");
                                if (i + r) % 2 == 0 {
                                    aioloop::yield_now().await;
                                }
                            }
                            done_rounds.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // Cancel a random third of the tasks, at random moments.
            let mut rng = fastrand::Rng::with_seed(0x5eed);
            for _ in 0..TASKS / 3 {
                for _ in 0..rng.usize(0..4) {
                    aioloop::yield_now().await;
                }
                tasks[rng.usize(0..TASKS)].cancel(None);
            }
            let mut cancelled = 0;
            for t in tasks {
                match t.await {
                    Ok(()) => {}
                    Err(e) if e.is_cancelled() => cancelled += 1,
                    Err(e) => panic!("task failed: {e}"),
                }
            }
            assert!(cancelled > 0, "the canceller reached some tasks");
        });
        assert!(
            max_in_sem.load(Ordering::SeqCst) <= PERMITS,
            "a permit was duplicated"
        );
        assert_eq!(in_sem.load(Ordering::SeqCst), 0);
        assert_eq!(sem.value(), PERMITS, "a permit was lost");
        assert!(!sem.locked());
        assert!(!lock.locked(), "the lock was lost");
        assert!(done_rounds.load(Ordering::SeqCst) > 0);
    });
}
