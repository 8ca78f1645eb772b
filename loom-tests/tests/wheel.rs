//! Models of the sleep wheel's protocol (`src/event_loop/wheel.rs`, rules 1–6): timer
//! entries live inside `Sleep` futures, linked into their loop's wheel, and may be polled
//! or dropped on another thread than the loop that fires them (a stolen task).
//!
//! Each model races the loop thread (firing, or closing) against a `Sleep`'s owner on
//! another thread (polling with a new waker, or dropping it). loom explores the
//! interleavings of the wheel's mutex and the entry's cell; a waker clone left behind fails
//! the model as "Arc leaked", an entry touched outside the lock as a causality violation.
//!
//! All run at the preemption bound the environment sets (`.ci/test`: 3).

mod common;

use aioloop::loom_internals::WheelModel;
use common::counting_waker;
use loom::sync::Arc;

/// Rules 2, 4, 5: the loop fires an entry due now while its owner drops it on another
/// thread. Either it fired (its waker woken once) or the drop unlinked it first (never
/// woken); the wheel is empty after both, and no waker is leaked.
#[test]
fn fire_races_drop() {
    loom::model(|| {
        let wheel = Arc::new(WheelModel::new());
        let (count, waker) = counting_waker();
        let entry = wheel.register(10, waker);
        let owner = loom::thread::spawn(move || drop(entry));
        let fired = wheel.fire(10);
        owner.join().unwrap();
        assert_eq!(count.wakes(), fired);
        assert!(fired <= 1);
        assert!(wheel.is_empty());
    });
}

/// Rule 4: a poll from another thread with a new waker races the firing. No wake-up is
/// lost: the poll sees the entry fired, or the firing wakes the new waker (and never the
/// old one once replaced after the firing).
#[test]
fn poll_with_new_waker_races_fire() {
    loom::model(|| {
        let wheel = Arc::new(WheelModel::new());
        let (first, w1) = counting_waker();
        let entry = wheel.register(10, w1);
        let (second, w2) = counting_waker();
        let owner = loom::thread::spawn(move || {
            let seen = entry.poll_fired(&w2);
            (seen, entry)
        });
        assert_eq!(wheel.fire(10), 1);
        let (seen, entry) = owner.join().unwrap();
        assert!(
            seen || second.wakes() == 1,
            "a poll that found it pending left the waker the firing woke"
        );
        assert_eq!(first.wakes() + second.wakes(), 1, "woken exactly once");
        assert!(entry.poll_fired(&counting_waker().1));
        drop(entry);
        assert!(wheel.is_empty());
    });
}

/// Rules 2, 6: the loop closes (unlinking every entry without firing) while the owner of
/// one entry drops it and another entry, not due, is polled. Nothing fires, the wakers are
/// released once each (the clear's or the drop's), and the wheel ends empty.
#[test]
fn clear_races_drop_and_poll() {
    loom::model(|| {
        let wheel = Arc::new(WheelModel::new());
        let (c1, w1) = counting_waker();
        let (c2, w2) = counting_waker();
        let a = wheel.register(1 << 40, w1);
        let b = wheel.register(5, w2);
        let owner = loom::thread::spawn(move || {
            drop(a);
            let (_, w3) = counting_waker();
            let fired = b.poll_fired(&w3);
            (fired, b)
        });
        wheel.clear();
        let (fired, b) = owner.join().unwrap();
        assert!(!fired);
        assert_eq!(wheel.fire(i64::MAX), 0);
        drop(b);
        assert_eq!(c1.wakes() + c2.wakes(), 0);
        assert!(wheel.is_empty());
    });
}

/// Rules 1, 2: two owners drop two entries of one slot on two threads while the loop fires
/// a third. A drop moves the slot's last entry into the freed index and writes that
/// entry's node: under the lock, so the other owner's drop (or the firing) finds it where
/// the node says, whatever the order.
#[test]
fn drops_in_one_slot_race_each_other_and_fire() {
    loom::model(|| {
        let wheel = Arc::new(WheelModel::new());
        let (fc, fw) = counting_waker();
        let (ac, aw) = counting_waker();
        let (bc, bw) = counting_waker();
        // Same slot (same tick, far ahead); the fired one is due at once.
        let due = wheel.register(0, fw);
        let a = wheel.register(1 << 40, aw);
        let b = wheel.register((1 << 40) + 1, bw);
        let t1 = loom::thread::spawn(move || drop(a));
        let t2 = loom::thread::spawn(move || drop(b));
        assert_eq!(wheel.fire(0), 1);
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(due.poll_fired(&counting_waker().1));
        drop(due);
        assert!(wheel.is_empty());
        assert_eq!((fc.wakes(), ac.wakes(), bc.wakes()), (1, 0, 0));
    });
}
