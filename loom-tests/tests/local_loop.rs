//! Issue 4, item 7: a `LocalLoop` woken from another thread (`event_loop/local.rs`).
//!
//! The loop is the real `LocalLoop` (its `LoopCore` iteration and `LocalFlavor`), with the
//! loom double of its poller (`runtime/park.rs`: a sticky flag under a mutex and condvar)
//! and of its inbox (`runtime/queue.rs`). A lost wake-up leaves the loop thread parked for
//! good: loom reports a deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aioloop::LocalLoop;
use loom::thread;

/// `call_soon_threadsafe` from another thread racing the loop going to sleep in
/// `run_forever` (inbox push + `Poller::notify` vs. the loop draining its inbox, finding
/// nothing ready and parking). The callback stops the loop, so `run_forever` returns only if
/// the callback ran: the wake-up was not lost.
#[test]
fn call_soon_threadsafe_races_loop_going_to_sleep() {
    loom::model(|| {
        let lp = LocalLoop::new().unwrap();
        let h = lp.handle();
        let ran = Arc::new(AtomicBool::new(false));
        let poster = {
            let ran = ran.clone();
            thread::spawn(move || {
                let stopper = h.clone();
                h.call_soon_threadsafe(move || {
                    ran.store(true, Ordering::SeqCst);
                    stopper.stop();
                })
                .unwrap();
            })
        };
        lp.run_forever().unwrap();
        assert!(
            ran.load(Ordering::SeqCst),
            "run_forever returned before the callback ran"
        );
        poster.join().unwrap();
    });
}

/// `stop()` from another thread (rule S5) while the loop runs or is about to sleep:
/// `run_forever` returns.
#[test]
fn stop_from_another_thread() {
    loom::model(|| {
        let lp = LocalLoop::new().unwrap();
        let h = lp.handle();
        let stopper = thread::spawn(move || h.stop());
        lp.run_forever().unwrap();
        stopper.join().unwrap();
        assert!(!lp.is_running());
    });
}
