//! The sleep wheel: a loop's timers for `Sleep`, as a hierarchical timing wheel over entries
//! that live inside the `Sleep` futures themselves (intrusive: registering a sleep allocates
//! nothing).
//!
//! # Layout
//!
//! Time is cut into ticks of 2^18 ns (262 µs). Seven levels of 64 slots each cover 64
//! ticks, 64² ticks, … 64⁷ ticks (about 36 years) ahead of the wheel's `elapsed` tick; an
//! entry further out waits in the `far` list until the wheel reaches the next turn of its
//! top level. A slot is a vector of `(deadline, sequence, entry pointer)`, each entry
//! knowing its index (moving entries reads only the vector; their misses overlap where a
//! linked list's would follow one another); `occupied` has one bit per non-empty slot. An entry whose tick the wheel has reached moves to `near`, a queue
//! sorted by `(deadline, sequence)`: so deadlines stay exact to the nanosecond and equal
//! deadlines fire in registration order (rule S2), whatever the tick size. A slot reached
//! by the wheel is sorted as one run and appended (its ticks are later than everything in
//! `near`); a registration whose tick is already reached (a deadline within the current
//! tick) is inserted in place; a dropped entry leaves a tombstone found by binary search.
//! So nothing but the entry itself is touched per entry, no node is written while sorting,
//! and inserting into a slot and unlinking from one are O(1); cascading touches each entry
//! at most once per level. (tokio's time driver is the design reference; its wheel fires a slot's entries in
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
//!    live entry, dereferenced only under the lock (rule 1). (The owner's `&mut Sleep`
//!    while polling does not exclude the wheel's shared access to the node: the node is in
//!    an `UnsafeCell` of a `!Unpin` type, for which `&mut` asserts no uniqueness — the
//!    property every intrusive future, tokio's timer entry included, relies on.)
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
//! 7. **Length hint.** `linked` is stored, under the lock, after every change of the
//!    wheel's entry count; read without the lock it may be stale against a registration by
//!    another thread. Only `next_deadline` reads it so (returning `None` for 0), for
//!    `LocalLoop::next_timeout`, asked once per pass by an embedder: a `LocalLoop`'s sleeps
//!    register on its own thread, so that read is in program order with every change.
//!
//! loom models: loom-tests/tests/wheel.rs.

use std::collections::VecDeque;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::Waker;

use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::{Arc, Mutex, UnsafeCell};

/// log2 of a tick in nanoseconds.
const TICK_BITS: u32 = 18;
/// log2 of the slots per level.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 7;

/// Where an entry is linked: a slot (level, slot, index in it), `far` (index), `near`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loc {
    Off,
    Slot(u8, u8, u32),
    Far(u32),
    Near,
}

/// The part of an entry the wheel reads and writes (rule 1).
struct Node {
    when: i64,
    seq: u64,
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
    /// `Wheel::len`, for an empty wheel's `next_deadline` without the lock (rule 7).
    linked: AtomicUsize,
}

struct Wheel {
    /// The tick up to which every entry is in `near` (ticks are order-preserving maps of
    /// the signed deadlines, see `tick`).
    elapsed: u64,
    seq: u64,
    /// Per level and slot, its entries with their keys: moving a slot's entries reads no
    /// entry (the key is here), so the entries' cache misses overlap instead of following
    /// one another as a linked list's would.
    slots: Box<[[Vec<Item>; SLOTS]; LEVELS]>,
    occupied: [u64; LEVELS],
    far: Vec<Item>,
    /// Entries whose tick is reached, sorted by `(when, seq)`; `None` is a dropped entry's
    /// tombstone.
    near: VecDeque<NearItem>,
    /// The run being sorted by `advance` (kept for its capacity).
    run: Vec<NearItem>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Wheel {
        Wheel {
            elapsed: 0,
            seq: 0,
            slots: Box::new(std::array::from_fn(|_| std::array::from_fn(|_| Vec::new()))),
            occupied: [0; LEVELS],
            far: Vec::new(),
            near: VecDeque::new(),
            run: Vec::new(),
            len: 0,
        }
    }
}

// SAFETY: the wheel's pointers are to entries that are `Send + Sync` and only dereferenced
// under the mutex that owns the wheel (rules 1, 2).
unsafe impl Send for Wheel {}

/// An entry of a slot: its key and the entry.
type Item = (i64, u64, NonNull<TimerEntry>);

/// An entry of `near`: its key and, unless dropped since, the entry.
type NearItem = (i64, u64, Option<NonNull<TimerEntry>>);

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
    /// Links the entry of `item` (its node's `loc` is `Off`) where its tick says.
    ///
    /// # Safety
    /// Lock held; the entry is live and pinned (rule 2).
    unsafe fn link(&mut self, item: Item) {
        let (when, seq, e) = item;
        let t = tick(when);
        let loc = if t <= self.elapsed {
            self.near_insert((when, seq, Some(e)));
            Loc::Near
        } else {
            let bit = 63 - (self.elapsed ^ t).leading_zeros();
            let level = (bit / SLOT_BITS) as usize;
            if level >= LEVELS {
                self.far.push(item);
                Loc::Far((self.far.len() - 1) as u32)
            } else {
                let slot = ((t >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
                let v = &mut self.slots[level][slot];
                v.push(item);
                self.occupied[level] |= 1 << slot;
                Loc::Slot(level as u8, slot as u8, (v.len() - 1) as u32)
            }
        };
        // SAFETY: this function's contract.
        unsafe { with_node(e, |n| n.loc = loc) };
    }

    /// Unlinks `e` from wherever it is (nothing if `Off`).
    ///
    /// # Safety
    /// Lock held; `e` and every linked entry are live (rule 2).
    unsafe fn unlink(&mut self, e: NonNull<TimerEntry>) {
        // SAFETY: this function's contract.
        let (loc, key) = unsafe {
            with_node(e, |n| {
                let loc = n.loc;
                n.loc = Loc::Off;
                (loc, (n.when, n.seq))
            })
        };
        match loc {
            Loc::Off => {}
            Loc::Near => {
                let i = self
                    .near
                    .binary_search_by(|it| (it.0, it.1).cmp(&key))
                    .expect("an entry marked near is in near");
                self.near[i].2 = None;
            }
            Loc::Far(i) => {
                // SAFETY: as above.
                unsafe { swap_remove(&mut self.far, i as usize, Loc::Far) };
            }
            Loc::Slot(l, s, i) => {
                let v = &mut self.slots[l as usize][s as usize];
                // SAFETY: as above.
                unsafe { swap_remove(v, i as usize, |i| Loc::Slot(l, s, i)) };
                if v.is_empty() {
                    self.occupied[l as usize] &= !(1 << s);
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
        (!self.far.is_empty()).then(|| (None, (self.elapsed | turn) + 1))
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
            let mut items = match at {
                Some((l, s)) => {
                    self.occupied[l] &= !(1 << s);
                    std::mem::take(&mut self.slots[l][s])
                }
                None => std::mem::take(&mut self.far),
            };
            let mut run = std::mem::take(&mut self.run);
            for &item in &items {
                if tick(item.0) <= self.elapsed {
                    // SAFETY: lock held (`&mut self` comes from the guard); the entry was
                    // linked, so it is live and pinned (rule 2).
                    unsafe { with_node(item.2, |n| n.loc = Loc::Near) };
                    run.push((item.0, item.1, Some(item.2)));
                } else {
                    // SAFETY: as above. It goes to a lower level (or back to `far`, whose
                    // vector was taken): never into `items`.
                    unsafe { self.link(item) };
                }
            }
            // Every tick in `near` is before `elapsed`, every tick of the run is `elapsed`:
            // the sorted run goes at the end.
            run.sort_unstable_by_key(|it| (it.0, it.1));
            self.near.extend(run.drain(..));
            self.run = run;
            // Keep the emptied vector's capacity for the slot's next turn.
            items.clear();
            let home = match at {
                Some((l, s)) => &mut self.slots[l][s],
                None => &mut self.far,
            };
            if home.is_empty() {
                *home = items;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
    }

    /// Inserts into `near` in order: at the end for a deadline not before the last one
    /// (the common case), else at its place.
    fn near_insert(&mut self, item: NearItem) {
        let key = (item.0, item.1);
        match self.near.back() {
            Some(b) if (b.0, b.1) > key => {
                let i = self.near.partition_point(|it| (it.0, it.1) < key);
                self.near.insert(i, item);
            }
            _ => self.near.push_back(item),
        }
    }

    /// The first live item of `near`, tombstones before it dropped.
    fn near_front(&mut self) -> Option<(i64, NonNull<TimerEntry>)> {
        while let Some(&(when, _, e)) = self.near.front() {
            match e {
                Some(e) => return Some((when, e)),
                None => {
                    self.near.pop_front();
                }
            }
        }
        None
    }
}

/// Removes item `i` of `v` by moving the last one into its place, and tells the moved
/// entry its new index (`loc(i)`).
///
/// # Safety
/// Lock held; every entry in `v` is live (rule 2).
unsafe fn swap_remove(v: &mut Vec<Item>, i: usize, loc: impl Fn(u32) -> Loc) {
    v.swap_remove(i);
    if let Some(&(.., moved)) = v.get(i) {
        // SAFETY: this function's contract.
        unsafe { with_node(moved, |n| n.loc = loc(i as u32)) };
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
        let mut w = self.inner.lock();
        if let Some((when, _)) = w.near_front() {
            return Some(when);
        }
        w.next_expiration().map(|(_, t)| tick_start(t))
    }

    /// The earliest deadline in the wheel, exactly (for embedders: `next_timeout`). The
    /// slots hold disjoint, ordered tick ranges, so it is in `near` or in the next slot to
    /// expire, whose keys this scans.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        if self.linked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut w = self.inner.lock();
        if let Some((when, _)) = w.near_front() {
            return Some(when);
        }
        let (at, _) = w.next_expiration()?;
        let items = match at {
            Some((l, s)) => &w.slots[l][s],
            None => &w.far,
        };
        items.iter().map(|it| it.0).min()
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
            // Empty: the wheel may jump to now, so that the next registrations are placed
            // relative to the present (a fresh wheel starts at tick 0, which would send
            // them all to `far` and walk them up turn by turn); tombstones go too.
            w.elapsed = w.elapsed.max(tick(now));
            w.near.clear();
            return;
        }
        w.advance(tick(now));
        while let Some((when, e)) = w.near_front() {
            if when > now {
                break;
            }
            w.near.pop_front();
            w.len -= 1;
            // SAFETY: lock held; a live item of `near` is a linked, live entry (rule 2);
            // rule 4: unlinked and fired under the lock, waker taken.
            let (waker, task) = unsafe {
                with_node(e, |n| {
                    n.loc = Loc::Off;
                    n.fired = true;
                    (n.waker.take(), n.task)
                })
            };
            out.push(Due { when, waker, task });
        }
        self.linked.store(w.len, Ordering::Relaxed);
    }

    /// Loop shutdown (rule 6): unlinks every entry without firing it and hands their
    /// wakers to `out`, to be dropped outside the lock (rule 5).
    pub(crate) fn clear(&self, out: &mut Vec<Waker>) {
        let mut w = self.inner.lock();
        let w = &mut *w;
        let near = std::mem::take(&mut w.near)
            .into_iter()
            .filter_map(|it| it.2);
        let slots = w
            .slots
            .iter_mut()
            .flatten()
            .chain(std::iter::once(&mut w.far));
        let linked = slots.flat_map(|v| std::mem::take(v).into_iter().map(|it| it.2));
        for e in near.chain(linked) {
            // SAFETY: lock held; a linked entry is live (rule 2).
            out.extend(unsafe {
                with_node(e, |n| {
                    n.loc = Loc::Off;
                    n.waker.take()
                })
            });
        }
        w.occupied = [0; LEVELS];
        w.len = 0;
        self.linked.store(0, Ordering::Relaxed);
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
        unsafe { w.link((when, seq, e)) };
        w.len += 1;
        wheel.linked.store(w.len, Ordering::Relaxed);
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
            wheel.linked.store(w.len, Ordering::Relaxed);
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

    /// Entries registered at `deadlines`, each with its index as its task id.
    fn register_all(wheel: &Arc<SleepWheel>, deadlines: &[i64]) -> Vec<Pin<Box<TimerEntry>>> {
        let mut es: Vec<_> = deadlines
            .iter()
            .map(|_| Box::pin(TimerEntry::new()))
            .collect();
        for (i, (e, &d)) in es.iter_mut().zip(deadlines).enumerate() {
            e.as_mut()
                .register(wheel.clone(), d, waker(), Some(i as u64));
        }
        es
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
        let es = register_all(&wheel, &deadlines);
        let mut out = Vec::new();
        let mut now = -10;
        let mut order = Vec::new();
        while !wheel.is_empty() {
            let next = wheel.next_wake().expect("entries left");
            assert!(wheel.next_deadline().expect("entries left") >= next);
            now = next.max(now);
            wheel.take_due(now, &mut out);
            order.extend(out.drain(..).map(|d| (d.when, d.task)));
        }
        let mut expected: Vec<(i64, Option<u64>)> = (0..deadlines.len())
            .map(|i| (deadlines[i], Some(i as u64)))
            .collect();
        expected.sort_by_key(|&(d, _)| d); // stable: ties keep registration order
        assert_eq!(order, expected);
        assert!(es.iter().all(|e| e.poll_fired(&waker())));
    }

    /// Random registrations (some within the tick already reached, out of order), drops
    /// (in slots and in `near`) and firings, against a sorted reference.
    #[test]
    fn matches_a_sorted_reference_under_random_operations() {
        let wheel = Arc::new(SleepWheel::new());
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let mut live: std::collections::BTreeMap<(i64, u64), Pin<Box<TimerEntry>>> =
            Default::default();
        let (mut now, mut seq, mut out) = (1_000_000i64, 0u64, Vec::new());
        for _ in 0..5_000 {
            match next(10) {
                0..=4 => {
                    let span = if next(2) == 0 { 300_000 } else { 1 << 30 };
                    let when = now + next(span) as i64;
                    seq += 1;
                    let mut e = Box::pin(TimerEntry::new());
                    e.as_mut().register(wheel.clone(), when, waker(), Some(seq));
                    live.insert((when, seq), e);
                }
                5 | 6 if !live.is_empty() => {
                    let k = *live.keys().nth(next(live.len() as u64) as usize).unwrap();
                    live.remove(&k);
                }
                _ => {
                    now += next(400_000) as i64;
                    wheel.take_due(now, &mut out);
                    let due: Vec<_> = live.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                    let got: Vec<_> = out.drain(..).map(|d| (d.when, d.task.unwrap())).collect();
                    assert_eq!(got, due);
                    for k in due {
                        assert!(live.remove(&k).unwrap().poll_fired(&waker()));
                    }
                    let exact = live.keys().next().map(|k| k.0);
                    assert_eq!(wheel.next_deadline(), exact);
                    assert!(wheel.next_wake() <= exact);
                }
            }
        }
    }

    #[test]
    fn clear_unlinks_without_firing() {
        let wheel = Arc::new(SleepWheel::new());
        let deadlines: Vec<i64> = (0..10).map(|i| i * 1_000_000_000).collect();
        let es = register_all(&wheel, &deadlines);
        let mut out = Vec::new();
        wheel.take_due(0, &mut Vec::new());
        wheel.clear(&mut out);
        assert_eq!(out.len(), 9);
        assert!(wheel.is_empty());
        assert_eq!(es.iter().filter(|e| e.poll_fired(&waker())).count(), 1);
    }
}
