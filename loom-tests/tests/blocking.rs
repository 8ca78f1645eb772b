//! Models of the blocking pool's job queue and idle-thread protocol (`src/blocking/`,
//! rules B1–B7): the real `Pool` on loom threads, its mutex and condvars loom's doubles.
//! A job that no thread ever takes leaves `block_on` waiting forever: loom reports the
//! deadlock. Every model ends with a shutdown and waits until the pool has no thread left.
//!
//! All of them run at the preemption bound the environment sets (`.ci/test`: 3).

use aioloop::loom_internals::TestPool;
use aioloop::ExecutorError;
use loom::future::block_on;
use loom::sync::Arc;

/// B2/B4: a job submitted while the pool's only thread finishes its previous job, idles
/// and expires (zero keep-alive) is taken either by that thread (a token) or by a new one
/// (the old one exited first); never lost, and never two live threads.
#[test]
fn submit_races_keep_alive_expiry() {
    loom::model(|| {
        let pool = TestPool::new(1, true);
        let a = pool.submit(|| 1u8);
        let b = pool.submit(|| 2u8);
        assert!(pool.metrics().threads <= 1);
        assert_eq!(block_on(a).unwrap(), 1);
        let c = pool.submit(|| 3u8);
        assert_eq!(block_on(b).unwrap(), 2);
        assert_eq!(block_on(c).unwrap(), 3);
        pool.shutdown(false);
        pool.wait_exited();
        assert_eq!(pool.metrics().threads, 0);
    });
}

/// B5: a submission racing a shutdown either runs (it got in first; a shutdown without
/// discard lets the threads finish the queue) or is refused with `Shutdown`; the pool
/// always ends with no thread.
#[test]
fn submit_races_shutdown() {
    loom::model(|| {
        let pool = Arc::new(TestPool::new(1, false));
        let first = pool.submit(|| 1u8);
        let p = pool.clone();
        let stopper = loom::thread::spawn(move || p.shutdown(false));
        let second = pool.submit(|| 2u8);
        stopper.join().unwrap();
        assert_eq!(block_on(first).unwrap(), 1);
        match block_on(second) {
            Ok(v) => assert_eq!(v, 2),
            Err(e) => assert!(matches!(e, ExecutorError::Shutdown)),
        }
        pool.wait_exited();
        assert_eq!(pool.metrics().threads, 0);
    });
}

/// B2/B3: two submitters race on an empty pool that allows two threads: each job gets a
/// thread of its own, or waits in the queue for the other's thread (which drains it
/// before it idles), or wakes that thread idling (a token). (A third job, submitted before
/// the race, made this model take minutes on a loaded machine; `submit_races_keep_alive_
/// expiry` covers a submission racing an idling thread.)
#[test]
fn two_submitters_race() {
    loom::model(|| {
        let pool = Arc::new(TestPool::new(2, false));
        let p = pool.clone();
        let other = loom::thread::spawn(move || p.submit(|| 1u8));
        let two = pool.submit(|| 2u8);
        let one = other.join().unwrap();
        assert_eq!(block_on(one).unwrap(), 1);
        assert_eq!(block_on(two).unwrap(), 2);
        assert!(pool.metrics().threads <= 2);
        pool.shutdown(true);
        pool.wait_exited();
    });
}

/// A user's executor that runs each job on the submitting thread and refuses jobs once
/// its `shutdown` has run; counts its shutdowns.
struct Inline {
    shut: loom::sync::atomic::AtomicUsize,
}

impl aioloop::Executor for Inline {
    fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), ExecutorError> {
        if self.shut.load(loom::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(ExecutorError::Shutdown);
        }
        job();
        Ok(())
    }

    fn shutdown(&self) {
        self.shut.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
    }
}

/// B7: a default job racing the shutdown of a pool whose default executor is a user's
/// runs there (it took the executor first) or is refused with `Shutdown`, never runs on
/// the closed pool's threads; the user's `shutdown` runs exactly once, as the pool's last
/// job, and the pool ends with no thread.
#[test]
fn default_job_races_shutdown_of_a_replaced_pool() {
    loom::model(|| {
        let pool = Arc::new(TestPool::new(1, false));
        let ex = std::sync::Arc::new(Inline {
            shut: loom::sync::atomic::AtomicUsize::new(0),
        });
        pool.set_default_executor(ex.clone()).unwrap();
        let p = pool.clone();
        let stopper = loom::thread::spawn(move || p.shutdown(false));
        // `Inline` runs the job on this thread; a pool thread would be another.
        let here = loom::thread::current().id();
        let job = pool.submit(|| loom::thread::current().id());
        stopper.join().unwrap();
        match block_on(job) {
            Ok(ran_on) => assert_eq!(ran_on, here, "ran on the closed pool's thread"),
            Err(e) => assert!(matches!(e, ExecutorError::Shutdown)),
        }
        pool.wait_exited();
        assert_eq!(ex.shut.load(loom::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.metrics().threads, 0);
    });
}
