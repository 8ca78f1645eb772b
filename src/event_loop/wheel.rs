//! The sleep wheel: a loop's timers for `Sleep`, as a hierarchical timing wheel over entries
//! that live inside the `Sleep` futures themselves (intrusive: registering a sleep allocates
//! nothing).
//!
//! # Layout
//!
//! Time is cut into ticks of 2^20 ns (about 1 ms). Six levels of 64 slots each cover 64
//! ticks, 64² ticks, … 64⁶ ticks (about 2.3 years) ahead of the wheel's `elapsed` tick; an
//! entry further out waits in the `far` list until the wheel reaches the next turn of its
//! top level. A slot is an intrusive doubly linked list of entries; `occupied` has one bit
//! per non-empty slot. An entry whose tick the wheel has reached moves to `near`, a binary
//! heap ordered by `(deadline, sequence)`: so deadlines stay exact to the nanosecond and
//! equal deadlines fire in registration order (rule S2), whatever the tick size. Only
//! `near` is ever sorted, and it holds about one tick's worth of entries; inserting into a
//! slot and unlinking from one are O(1), and cascading touches each entry at most once per
//! level. (tokio's time driver is the design reference; its wheel fires a slot's entries in
//! list order, rounded to the millisecond.)
//!
//! Callbacks (`call_later`) and timeouts stay in the heap of timers.rs; the loop core merges
//! the two by deadline when it fires them.
//!
//! # Protocol
//!
//! The wheel is shared by the loop that fires it and by every `Sleep` registered in it,
//! which may be polled or dropped on another thread (a task stolen by another worker).
//! Hence a mutex around the wheel, and these rules:
//!
//! 1. **One lock.** Every field of an entry's [`Node`] is read and written only while the
//!    lock of the wheel the entry is registered with is held (before registration, only
//!    by the entry's owner, through `Pin<&mut>`).
//! 2. **Linked means pinned and alive.** The wheel holds a pointer to an entry only while
//!    the node's `loc` is not `Off`. An entry is linked only through `Pin<&mut TimerEntry>`
//!    (it is `!Unpin`), so it does not move while linked; its `Drop` takes the lock and
//!    unlinks it before the memory is released. So every pointer the wheel holds is to a
//!    live entry, dereferenced only under the lock (rule 1).
//! 3. **Registered once, with one wheel.** An entry keeps an `Arc` of the wheel it was
//!    registered with (the wheel outlives every entry in it) and is never registered again.
//! 4. **Fired is final.** Firing unlinks the entry, sets `fired` and takes its waker, all
//!    under the lock; nothing links it again (rule 3). A poll that reads `fired` under the
//!    lock and finds it clear stores its waker in the same hold, so a firing after it finds
//!    that waker: no wake-up is lost.
//! 5. **No foreign code under the lock.** Wakers are woken and dropped only after the lock
//!    is released (a waker's wake or drop may free a task whose future holds a `Sleep` of
//!    this wheel, whose drop takes the lock), and cloned only outside it.
//! 6. **Closed.** When the loop closes, `clear` unlinks every entry without firing it; a
//!    `Sleep` left behind stays pending forever, as with any timer of a closed loop.
//!
//! loom models: loom-tests/tests/wheel.rs.

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::Waker;

use crate::shim::{Arc, Mutex, UnsafeCell};

/// log2 of a tick in nanoseconds.
const TICK_BITS: u32 = 20;
/// log2 of the slots per level.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;

/// Where an entry is linked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loc {
    Off,
    Slot(u8, u8),
    Far,
    Near(usize),
}

/// The part of an entry the wheel reads and writes (rule 1).
struct Node {
    when: i64,
    seq: u64,
    prev: Option<NonNull<TimerEntry>>,
    next: Option<NonNull<TimerEntry>>,
    loc: Loc,
    fired: bool,
    waker: Option<Waker>,
    /// The id of the task that registered, for the report if its waker panics.
    task: Option<u64>,
}

/// A timer entry, embedded in the future that waits on it (a `Sleep`).
pub(crate) struct TimerEntry {
    wheel: Option<Arc<SleepWheel>>,
    node: UnsafeCell<Node>,
    _pinned: PhantomPinned,
}

// SAFETY: the node is only touched under the wheel's mutex (rule 1) or through the owner's
// exclusive `Pin<&mut>` before registration; its raw pointers are the wheel's links.
unsafe impl Send for TimerEntry {}
// SAFETY: shared access (`poll_fired` through `&self`, the wheel through its pointers)
// goes through the wheel's mutex (rule 1).
unsafe impl Sync for TimerEntry {}

/// A due entry, handed out of the lock to be woken (rule 5).
pub(crate) struct Due {
    pub(crate) when: i64,
    pub(crate) waker: Option<Waker>,
    pub(crate) task: Option<u64>,
}

/// One loop's sleep wheel (see the module doc), shared with its entries.
#[derive(Default)]
pub(crate) struct SleepWheel {
    inner: Mutex<Wheel>,
}

struct Wheel {
    /// The tick up to which every entry is in `near` (ticks are order-preserving maps of
    /// the signed deadlines, see `tick`).
    elapsed: u64,
    seq: u64,
    slots: [[Option<NonNull<TimerEntry>>; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    far: Option<NonNull<TimerEntry>>,
    /// Entries whose tick is reached: a binary min-heap by `(when, seq)`.
    near: Vec<(i64, u64, NonNull<TimerEntry>)>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Wheel {
        Wheel {
            elapsed: 0,
            seq: 0,
            slots: [[None; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            far: None,
            near: Vec::new(),
            len: 0,
        }
    }
}

// SAFETY: the wheel's pointers are to entries that are `Send + Sync` and only dereferenced
// under the mutex that owns the wheel (rules 1, 2).
unsafe impl Send for Wheel {}

/// The tick of a deadline: the signed nanoseconds mapped onto `u64` in order, then cut.
fn tick(when: i64) -> u64 {
    ((when as u64) ^ (1 << 63)) >> TICK_BITS
}

/// The first nanosecond of tick `t` (inverse of `tick`).
fn tick_start(t: u64) -> i64 {
    ((t << TICK_BITS) ^ (1 << 63)) as i64
}

/// Runs `f` on the node of `e`.
///
/// # Safety
/// `e` is a live entry and the caller holds the lock its node belongs to (rules 1, 2).
unsafe fn with_node<R>(e: NonNull<TimerEntry>, f: impl FnOnce(&mut Node) -> R) -> R {
    // SAFETY: live entry (this function's contract, rule 2).
    let entry = unsafe { e.as_ref() };
    // SAFETY: rule 1: the lock is held, so nobody else touches the node.
    entry.node.with_mut(|n| f(unsafe { &mut *n }))
}

impl Wheel {
    /// Links `e` (whose node has `when`, `seq` set and `loc == Off`).
    ///
    /// # Safety
    /// Lock held; `e` is live and pinned (rule 2).
    unsafe fn link(&mut self, e: NonNull<TimerEntry>) {
        // SAFETY: this function's contract.
        let (when, seq) = unsafe { with_node(e, |n| (n.when, n.seq)) };
        let t = tick(when);
        if t <= self.elapsed {
            // SAFETY: as above.
            unsafe { self.near_push(when, seq, e) };
            return;
        }
        let bit = 63 - (self.elapsed ^ t).leading_zeros();
        let level = (bit / SLOT_BITS) as usize;
        if level >= LEVELS {
            // SAFETY: as above.
            unsafe { push_front(&mut self.far, e, Loc::Far) };
            return;
        }
        let slot = ((t >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
        // SAFETY: as above.
        unsafe {
            push_front(
                &mut self.slots[level][slot],
                e,
                Loc::Slot(level as u8, slot as u8),
            )
        };
        self.occupied[level] |= 1 << slot;
    }

    /// Unlinks `e` from wherever it is (nothing if `Off`).
    ///
    /// # Safety
    /// Lock held; `e` is live (rule 2).
    unsafe fn unlink(&mut self, e: NonNull<TimerEntry>) {
        // SAFETY: this function's contract.
        let loc = unsafe { with_node(e, |n| n.loc) };
        match loc {
            Loc::Off => {}
            Loc::Near(i) => {
                // SAFETY: as above.
                unsafe { self.near_remove(i) };
            }
            Loc::Far => {
                // SAFETY: as above; `e` is in `far`.
                unsafe { remove_from(&mut self.far, e) };
            }
            Loc::Slot(l, s) => {
                let (l, s) = (l as usize, s as usize);
                // SAFETY: as above; `e` is in that slot.
                unsafe { remove_from(&mut self.slots[l][s], e) };
                if self.slots[l][s].is_none() {
                    self.occupied[l] &= !(1 << s);
                }
            }
        }
    }

    /// The next slot to expire (the `far` list after the last turn) and its first tick.
    fn next_expiration(&self) -> Option<(Option<(usize, usize)>, u64)> {
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let cur = (self.elapsed >> shift) as usize & (SLOTS - 1);
            // Entries of a level are always in slots after the current one (see `advance`).
            let later = occ & (!0u64).checked_shl(cur as u32 + 1).unwrap_or(0);
            debug_assert!(later != 0, "a wheel entry behind the wheel");
            let slot = later.trailing_zeros() as usize;
            let base = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
            return Some((Some((level, slot)), base + ((slot as u64) << shift)));
        }
        let turn = (1u64 << (SLOT_BITS * LEVELS as u32)) - 1;
        self.far.map(|_| (None, (self.elapsed | turn) + 1))
    }

    /// Moves the wheel to `now_tick`: every slot that starts by then is emptied, its
    /// entries linked again relative to the new `elapsed` (into `near` once their tick is
    /// reached). Invariant kept: an entry of level `l` sits in a slot after `elapsed`'s
    /// slot of that level, in the same turn of level `l + 1`; so the lowest non-empty level
    /// holds the earliest slot, and jumping `elapsed` to any tick before that slot skips
    /// nothing.
    fn advance(&mut self, now_tick: u64) {
        while let Some((at, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = start;
            let mut list = match at {
                Some((l, s)) => {
                    self.occupied[l] &= !(1 << s);
                    self.slots[l][s].take()
                }
                None => self.far.take(),
            };
            while let Some(e) = list {
                // SAFETY: lock held (we are inside it: `&mut self` comes from the guard);
                // `e` was linked, so it is live and pinned (rule 2).
                list = unsafe {
                    with_node(e, |n| {
                        n.loc = Loc::Off;
                        n.prev = None;
                        n.next.take()
                    })
                };
                // SAFETY: as above.
                unsafe { self.link(e) };
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
    }

    // ---- near: a binary heap whose entries know their index ----

    /// # Safety
    /// Lock held; `e` is live and pinned (rule 2).
    unsafe fn near_push(&mut self, when: i64, seq: u64, e: NonNull<TimerEntry>) {
        self.near.push((when, seq, e));
        let i = self.near.len() - 1;
        // SAFETY: this function's contract.
        unsafe { self.sift_up(i) };
    }

    /// # Safety
    /// Lock held; every entry in `near` is live (rule 2).
    unsafe fn near_remove(&mut self, i: usize) -> NonNull<TimerEntry> {
        let last = self.near.len() - 1;
        self.near.swap(i, last);
        let (_, _, e) = self.near.pop().expect("non-empty");
        // SAFETY: this function's contract.
        unsafe { with_node(e, |n| n.loc = Loc::Off) };
        if i < self.near.len() {
            // SAFETY: as above.
            unsafe {
                self.sift_down(i);
                self.sift_up(i);
            }
        }
        e
    }

    /// # Safety
    /// As `near_remove`.
    unsafe fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if key(&self.near[parent]) <= key(&self.near[i]) {
                break;
            }
            self.near.swap(parent, i);
            // SAFETY: this function's contract.
            unsafe { self.set_index(i) };
            i = parent;
        }
        // SAFETY: as above.
        unsafe { self.set_index(i) };
    }

    /// # Safety
    /// As `near_remove`.
    unsafe fn sift_down(&mut self, mut i: usize) {
        let len = self.near.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < len && key(&self.near[l]) < key(&self.near[min]) {
                min = l;
            }
            if r < len && key(&self.near[r]) < key(&self.near[min]) {
                min = r;
            }
            if min == i {
                break;
            }
            self.near.swap(min, i);
            // SAFETY: this function's contract.
            unsafe { self.set_index(i) };
            i = min;
        }
        // SAFETY: as above.
        unsafe { self.set_index(i) };
    }

    /// # Safety
    /// As `near_remove`.
    unsafe fn set_index(&mut self, i: usize) {
        let e = self.near[i].2;
        // SAFETY: this function's contract.
        unsafe { with_node(e, |n| n.loc = Loc::Near(i)) };
    }
}

fn key(item: &(i64, u64, NonNull<TimerEntry>)) -> (i64, u64) {
    (item.0, item.1)
}

/// Pushes `e` at the front of the list `head`.
///
/// # Safety
/// Lock held; `e` and every entry of the list are live (rule 2).
unsafe fn push_front(head: &mut Option<NonNull<TimerEntry>>, e: NonNull<TimerEntry>, loc: Loc) {
    let old = head.replace(e);
    // SAFETY: this function's contract.
    unsafe {
        with_node(e, |n| {
            n.prev = None;
            n.next = old;
            n.loc = loc;
        })
    };
    if let Some(old) = old {
        // SAFETY: as above.
        unsafe { with_node(old, |n| n.prev = Some(e)) };
    }
}

/// Removes `e` from the list `head` it is in.
///
/// # Safety
/// As `push_front`, and `e` is in that list.
unsafe fn remove_from(head: &mut Option<NonNull<TimerEntry>>, e: NonNull<TimerEntry>) {
    // SAFETY: this function's contract.
    let (prev, next) = unsafe {
        with_node(e, |n| {
            n.loc = Loc::Off;
            (n.prev.take(), n.next.take())
        })
    };
    match prev {
        // SAFETY: as above.
        Some(p) => unsafe { with_node(p, |n| n.next = next) },
        None => *head = next,
    }
    if let Some(nx) = next {
        // SAFETY: as above.
        unsafe { with_node(nx, |n| n.prev = prev) };
    }
}

impl SleepWheel {
    /// A new, empty wheel.
    pub(crate) fn new() -> SleepWheel {
        SleepWheel::default()
    }

    /// When the loop must wake for the wheel: the earliest deadline if it is in `near`,
    /// else a lower bound of it, the first nanosecond of the next slot to expire (waking
    /// then moves that slot's entries towards `near`). O(1).
    pub(crate) fn next_wake(&self) -> Option<i64> {
        let w = self.inner.lock();
        if let Some(&(when, ..)) = w.near.first() {
            return Some(when);
        }
        w.next_expiration().map(|(_, t)| tick_start(t))
    }

    /// The earliest deadline in the wheel, exactly (for embedders: `next_timeout`). The
    /// slots hold disjoint, ordered tick ranges, so it is in `near` or in the next slot to
    /// expire, which this scans.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        let w = self.inner.lock();
        if let Some(&(when, ..)) = w.near.first() {
            return Some(when);
        }
        let (at, _) = w.next_expiration()?;
        let mut e = match at {
            Some((l, s)) => w.slots[l][s],
            None => w.far,
        };
        let mut min = i64::MAX;
        while let Some(cur) = e {
            // SAFETY: lock held; a linked entry is live (rules 1, 2).
            e = unsafe {
                with_node(cur, |n| {
                    min = min.min(n.when);
                    n.next
                })
            };
        }
        Some(min)
    }

    /// Whether no entry is linked.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.lock().len == 0
    }

    /// Unlinks every entry due at `now` and appends them to `out` in `(deadline, sequence)`
    /// order, fired (rule 4). The caller wakes them after this returns (rule 5).
    pub(crate) fn take_due(&self, now: i64, out: &mut Vec<Due>) {
        let mut w = self.inner.lock();
        if w.len == 0 {
            return;
        }
        w.advance(tick(now));
        while let Some(&(when, ..)) = w.near.first() {
            if when > now {
                break;
            }
            // SAFETY: lock held; entries in `near` are live (rule 2).
            let e = unsafe { w.near_remove(0) };
            w.len -= 1;
            // SAFETY: as above; rule 4: fired under the lock, waker taken.
            let (waker, task) = unsafe {
                with_node(e, |n| {
                    n.fired = true;
                    (n.waker.take(), n.task)
                })
            };
            out.push(Due { when, waker, task });
        }
    }

    /// Loop shutdown (rule 6): unlinks every entry without firing it and hands their
    /// wakers to `out`, to be dropped outside the lock (rule 5).
    pub(crate) fn clear(&self, out: &mut Vec<Waker>) {
        let mut w = self.inner.lock();
        let w = &mut *w;
        while let Some(&(.., e)) = w.near.last() {
            // SAFETY: lock held; entries in `near` are live (rule 2).
            unsafe { w.unlink(e) };
            // SAFETY: as above.
            out.extend(unsafe { with_node(e, |n| n.waker.take()) });
        }
        let heads = w
            .slots
            .iter_mut()
            .flatten()
            .chain(std::iter::once(&mut w.far));
        for head in heads {
            while let Some(e) = *head {
                // SAFETY: lock held; `e` heads this list, so it is live (rule 2).
                unsafe { remove_from(head, e) };
                // SAFETY: as above.
                out.extend(unsafe { with_node(e, |n| n.waker.take()) });
            }
        }
        w.occupied = [0; LEVELS];
        w.len = 0;
    }
}

impl TimerEntry {
    /// An entry not registered anywhere.
    pub(crate) fn new() -> TimerEntry {
        TimerEntry {
            wheel: None,
            node: UnsafeCell::new(Node {
                when: 0,
                seq: 0,
                prev: None,
                next: None,
                loc: Loc::Off,
                fired: false,
                waker: None,
                task: None,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// Links the entry into `wheel` at `when`, with `waker` to wake (rule 3: once).
    pub(crate) fn register(
        self: Pin<&mut Self>,
        wheel: Arc<SleepWheel>,
        when: i64,
        waker: Waker,
        task: Option<u64>,
    ) {
        // SAFETY: the entry is not moved out of the pin: only its fields are written, and it
        // is linked in place (rule 2: it stays pinned until its `Drop` unlinks it).
        let this = unsafe { self.get_unchecked_mut() };
        assert!(this.wheel.is_none(), "a timer entry is registered once");
        let mut w = wheel.inner.lock();
        w.seq += 1;
        let seq = w.seq;
        this.node.with_mut(|n| {
            // SAFETY: rule 1: not yet linked, so only we (through `&mut`) touch the node.
            let n = unsafe { &mut *n };
            n.when = when;
            n.seq = seq;
            n.waker = Some(waker);
            n.task = task;
        });
        let e = NonNull::from(&*this);
        // SAFETY: the lock is held; the entry is live and pinned (this `Pin`, rule 2).
        unsafe { w.link(e) };
        w.len += 1;
        drop(w);
        this.wheel = Some(wheel);
    }

    /// Whether the entry fired; if not, makes `waker` the one its firing wakes (rule 4).
    /// An entry never registered has not fired.
    pub(crate) fn poll_fired(&self, waker: &Waker) -> bool {
        let Some(wheel) = &self.wheel else {
            return false;
        };
        let w = wheel.inner.lock();
        let (fired, same) = self.node.with(|n| {
            // SAFETY: rule 1: the lock of the wheel the entry is registered with is held.
            let n = unsafe { &*n };
            (
                n.fired,
                n.waker.as_ref().is_some_and(|o| o.will_wake(waker)),
            )
        });
        if fired || same {
            return fired;
        }
        drop(w);
        let new = waker.clone(); // rule 5: foreign code outside the lock
        let w = wheel.inner.lock();
        let (fired, old) = self.node.with_mut(|n| {
            // SAFETY: rule 1: the lock is held again.
            let n = unsafe { &mut *n };
            if n.fired {
                (true, None)
            } else {
                (false, n.waker.replace(new))
            }
        });
        drop(w);
        drop(old);
        fired
    }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        let Some(wheel) = self.wheel.take() else {
            return;
        };
        let mut w = wheel.inner.lock();
        let e = NonNull::from(&*self);
        // SAFETY: rule 1: lock held; rule 2: the entry is live (we are dropping it, and the
        // memory is released only after this returns).
        let linked = unsafe { with_node(e, |n| n.loc != Loc::Off) };
        if linked {
            // SAFETY: as above.
            unsafe { w.unlink(e) };
            w.len -= 1;
        }
        // SAFETY: as above.
        let waker = unsafe { with_node(e, |n| n.waker.take()) };
        drop(w);
        // Rule 5: the waker (code of the sleeper's) is dropped outside the lock, in the
        // dropping task's own context.
        drop(waker);
    }
}

/// Deterministic tests of the wheel's ordering and cascading (the models of its protocol
/// are loom-tests/tests/wheel.rs).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::task::{Wake, Waker};

    struct Flag;
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {}
    }

    fn waker() -> Waker {
        Waker::from(std::sync::Arc::new(Flag))
    }

    fn entries(n: usize) -> Vec<Pin<Box<TimerEntry>>> {
        (0..n).map(|_| Box::pin(TimerEntry::new())).collect()
    }

    /// Rule S2: deadline order, ties in registration order, across levels and cascades.
    #[test]
    fn fires_in_deadline_then_registration_order_across_levels() {
        let wheel = Arc::new(SleepWheel::new());
        let deadlines: Vec<i64> = vec![
            5_000_000_000,
            3,
            1 << 20,
            (1 << 20) + 1,
            1 << 26,
            3,
            -7,
            70_000_000_000_000,
            (1 << 32) + 5,
            (1 << 20) + 1,
        ];
        let mut es = entries(deadlines.len());
        for (e, &d) in es.iter_mut().zip(&deadlines) {
            e.as_mut()
                .register(wheel.clone(), d, waker(), Some(d as u64));
        }
        let mut out = Vec::new();
        let mut now = -10;
        let mut order = Vec::new();
        while !wheel.is_empty() {
            let next = wheel.next_wake().expect("entries left");
            assert!(wheel.next_deadline().expect("entries left") >= next);
            assert!(next >= now.min(next));
            now = next.max(now);
            wheel.take_due(now, &mut out);
            order.extend(out.drain(..).map(|d| (d.when, d.task)));
        }
        let mut expected: Vec<(i64, Option<u64>)> =
            deadlines.iter().map(|&d| (d, Some(d as u64))).collect();
        expected.sort_by_key(|&(d, _)| d); // stable: ties keep registration order
        assert_eq!(order, expected);
        assert!(es.iter().all(|e| e.poll_fired(&waker())));
    }

    #[test]
    fn dropped_entries_never_fire_and_unlink() {
        let wheel = Arc::new(SleepWheel::new());
        let mut es = entries(300);
        for (i, e) in es.iter_mut().enumerate() {
            e.as_mut()
                .register(wheel.clone(), (i as i64) << 18, waker(), Some(i as u64));
        }
        let mut out = Vec::new();
        wheel.take_due(1 << 24, &mut out); // some in near, the rest in slots
        let fired = out.len();
        let kept: Vec<_> = es
            .drain(..)
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .collect();
        out.clear();
        wheel.take_due(i64::MAX, &mut out);
        let expected = kept.iter().filter(|(i, _)| *i >= fired).count();
        assert_eq!(out.len(), expected);
        assert!(out.iter().all(|d| d.task.unwrap() % 2 == 0));
        assert!(wheel.is_empty());
    }

    #[test]
    fn clear_unlinks_without_firing() {
        let wheel = Arc::new(SleepWheel::new());
        let mut es = entries(10);
        for (i, e) in es.iter_mut().enumerate() {
            e.as_mut()
                .register(wheel.clone(), i as i64 * 1_000_000_000, waker(), None);
        }
        let mut out = Vec::new();
        wheel.take_due(0, &mut Vec::new());
        wheel.clear(&mut out);
        assert_eq!(out.len(), 9);
        assert!(wheel.is_empty());
        assert_eq!(es.iter().filter(|e| e.poll_fired(&waker())).count(), 1);
    }
}
