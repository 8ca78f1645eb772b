//! Issue 4, item 7: a `LocalLoop` woken from another thread (`event_loop/local.rs`).
//!
//! The loop is the real `LocalLoop` (its `LoopCore` iteration and `LocalFlavor`), with the
//! loom double of its poller (`runtime/park.rs`: a sticky flag under a mutex and condvar)
//! and of its inbox (`runtime/queue.rs`). A lost wake-up leaves the loop thread parked for
//! good: loom reports a deadlock.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aioloop::LocalLoop;
use common::{model_spawning, spawn_opener, DropCount, Gate, Probe};
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

/// `run_until_complete`'s main future woken from another thread (`MainWaker`: the `woken`
/// flag, then `LocalShared::notify`, sticky) racing the loop going to sleep after a pending
/// step (`LocalFlavor::park` with no timeout unless the flag is set). The loop must step the
/// future again, so `run_until_complete` returns its value: a lost wake-up is a deadlock.
///
/// This model found a bug, now fixed (issue 8, item 5): `run_until_complete` read `woken`
/// to choose its wait; a wake from another thread landing after that read set `woken` and
/// notified the poller, but the same iteration's `LocalFlavor::pull_remote` consumed the
/// token and `LocalFlavor::park`'s re-check did not look at `woken`, so the loop slept with
/// no timeout while its main future had a wake-up pending. The failing interleaving
/// (`LOOM_MAX_PREEMPTIONS=3`): the first step leaves the waker with the gate and returns
/// `Pending`; the loop reads `woken == false`; the opener opens the gate and wakes; the
/// loop's `pull_remote` consumes the token; `park` re-checks, finds the inbox empty and
/// parks: a deadlock. The fix: the park's re-check counts the main future's wake flag as
/// work (event_loop/local/shared.rs).
#[test]
fn main_future_woken_from_another_thread() {
    // The main task is registered under an id from the process-wide counter.
    model_spawning(|| {
        let lp = LocalLoop::new().unwrap();
        let probe = Probe::new();
        let opener = spawn_opener(&probe);
        let out = lp.run_until_complete(Gate::new(&probe, 9)).unwrap();
        assert_eq!(out.value, 9);
        drop(out);
        opener.join().unwrap();
        probe.assert_all_dropped_once();
    });
}

/// `call_soon_threadsafe` from another thread racing `close()` of a loop that never runs
/// (`LocalShared::schedule`: inbox push, fence, `closed` checked, vs. `close`: `closed` set,
/// fence, inbox drained). The callback is dropped exactly once — refused at the call, drained
/// by `close`, or drained by the poster that saw `closed` — and never left in the inbox of a
/// closed loop.
#[test]
fn call_soon_threadsafe_races_close() {
    loom::model(|| {
        let lp = LocalLoop::new().unwrap();
        let h = lp.handle();
        let (token, drops) = DropCount::new();
        let poster = thread::spawn(move || {
            let _refused_if_closed = h.call_soon_threadsafe(move || drop(token));
        });
        lp.close().unwrap();
        poster.join().unwrap();
        assert_eq!(
            drops.load(loom::sync::atomic::Ordering::SeqCst),
            1,
            "the callback was stranded in a closed loop's inbox (or dropped twice)"
        );
    });
}
