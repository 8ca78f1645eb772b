//! The process-wide task registry behind `all_tasks()` (rules L1, L2, L7), and the side table
//! of task names.
//!
//! It has two parts, because built-in and third-party tasks are registered differently:
//!
//! * **Built-in tasks** live in a fixed set of shards (64; two under `--cfg loom`), a task's
//!   shard being its id modulo their number. A shard is a mutex around a *slab*: a vector
//!   of positions, each empty or holding one [`TaskRef`], with a stack of the empty ones. A
//!   built-in task records its position in its header ([`RegistryPos`]), so that its
//!   completion goes straight to it: spawning and completing a task cost one uncontended
//!   lock each and a few stores (about 150 instructions of registry work per task for both,
//!   counted by callgrind on `spawn_many_local`, where a concurrent hash map's probes cost
//!   about 300). The same code runs under loom, whose mutex the shim supplies.
//! * **Third-party tasks** (the public `TaskLike` protocol: `register_task` /
//!   `unregister_task`) live in a `dashmap` keyed by id: they have no header of ours to keep
//!   a position in, they can leave and come back, and there are few of them. Under loom the
//!   map is a double with the same shape (two mutex-guarded ordered maps, `id % 2`), since
//!   dashmap's own locks are invisible to loom.
//!
//! The slabs also serve as each runtime's list of the tasks it owns: a built-in task stays
//! in them from spawn to completion (even if `unregister_task` hides it from `all_tasks`),
//! which is how runtime shutdown finds every unfinished task to drop.
//!
//! Names live in a second id-keyed map (a `dashmap` too), entered only for tasks that were
//! given a name: a task named by default (`Task-<id>`, rule T1) costs no memory for it. (A
//! named task's spawn and free cost ~290 instructions more than an unnamed one's with it,
//! ~770 with an ordered map per slab shard, by callgrind over 10,000 named spawns.)
//!
//! # The listing protocol
//!
//! A snapshot must not hold a shard against registration for longer than a bounded slice:
//! spawning and completion lock a shard on every task, and a walk that kept a shard of
//! thousands of entries locked made them wait (and, on a busy machine, give their CPU away).
//! So a snapshot walks each slab by *position*, a bounded number of positions per lock hold,
//! then the third-party map:
//!
//! 1. **Stable positions.** An entry never moves while it is in a slab: an insert takes an
//!    empty position (the last one emptied, else a new one at the end), a removal empties
//!    one, and the vector's growth keeps every index. Shrinking (after a runtime shut down)
//!    only cuts empty positions off the end.
//! 2. **Built-in tasks only, once each.** The slabs hold only built-in tasks. A built-in
//!    task's entry is inserted once, at spawn, under a fresh id, and removed once, at
//!    completion: it never comes back, so no task ever occupies two positions, in one walk
//!    or ever. (Third-party tasks, which can be removed and inserted again, are in the map,
//!    rule 4.)
//! 3. **Sliced walk.** A snapshot visits a slab's positions `0..len` at most
//!    [`REGISTRY_SLICE`] per lock hold (reading `len` again in each), copying out (cloning)
//!    the entries `keep` accepts. `keep` and the clone run under the lock and must only read
//!    (the rule below). Clones are dropped only after the lock is released. The slabs are
//!    walked in turns, one slice of each per round, in any order (rule 7): each slab's own
//!    walk still goes up its positions in order, which is all rule 5 needs.
//! 4. **The third-party map.** A snapshot then walks the map one shard at a time (dashmap's
//!    iteration; the double's two mutexes), each shard in one read-lock hold for all of its
//!    entries, with the same `keep`-and-clone as rule 3. That hold is not sliced: a shard
//!    holds a handful of third-party tasks, and a walk takes each shard once, so it keeps a
//!    registering writer waiting for at most one shard's copy (only walks that overlap each
//!    other can extend that, as dashmap lets readers in while a writer waits). The map's
//!    writers (`insert`, `remove`) take one shard's write lock for one hash-map operation.
//! 5. **What a snapshot lists.** In a slab, by rule 1, every entry present throughout the
//!    walk sat at one position and was visited exactly once: it is listed once; two visited
//!    positions never hold the same task (rule 2), so nothing is listed twice. In the map,
//!    an id has one shard and one entry there, and each shard is read in one hold (rule 4),
//!    so a task present throughout is listed once, and one removed and inserted again
//!    during the walk at most once. The two parts hold different tasks (a third-party task
//!    is never in a slab, a built-in one never in the map; ids are process-unique, as
//!    `TaskLike::id` requires). Everything is read under a lock, so an entry removed before
//!    the snapshot started is never listed. Entries inserted or removed during the walk may
//!    or may not be listed.
//! 6. **Slab writers.** `insert_builtin` and `remove_builtin` lock one shard for O(1) work.
//!    A built-in task's [`RegistryPos`] is read and written only under its shard's lock, and
//!    is meaningful only while the task is registered. With rule 3 a writer that finds the
//!    shard locked by a walk waits for at most one slice — if the walk lets it in (rule 7).
//! 7. **Writers first; busy shards later.** A walk that releases a slab's lock and takes it
//!    straight back can beat a waiting writer to it: back-to-back slices (or two walks)
//!    could keep it out indefinitely. So a writer that does not get the lock at once
//!    announces itself in the shard's `waiting` count until it has it. A walk takes a
//!    shard's lock for a slice only if the lock is free and that count is zero; a *busy*
//!    shard (locked, or with writers waiting) is passed over and taken up again in a later
//!    round, after a slice of every other shard still to walk. A walk waits only when every
//!    shard it has left is busy, and then for one of them: first, while its count is
//!    non-zero, [`REGISTRY_STEP_ASIDE_SPINS`] rounds spinning briefly, then yielding,
//!    [`REGISTRY_STEP_ASIDE`] rounds in all (so a stream of writers cannot stall a listing
//!    either), then for the lock (rule 8). Passing over instead of waiting matters on a
//!    loaded machine: a walk that waited at a busy shard yielded at a good part of its
//!    hundreds of slices (measured: ~120 involuntary switches per listing of 100,000
//!    tasks under churn, wall time 3x its CPU time), and a writer preempted while holding
//!    the lock would make it wait for a whole time slice; with 64 shards there is almost
//!    always another one free. Between two slices of one shard a walk takes a slice of
//!    every other one it has left, so a writer is let in there too. An uncontended writer
//!    pays nothing (its first try succeeds). The count is a hint: it orders nothing, so it
//!    is `Relaxed`.
//! 8. **Waiting without sleeping.** Every hold is short (one O(1) write, or one slice), so
//!    a thread that finds a shard locked spins, then yields, between tries (crossbeam's
//!    `Backoff::snooze` schedule), and blocks on the mutex only once that backoff is
//!    spent (`Backoff::is_completed`). A writer that slept instead would need waking at every unlock and, on a loaded machine, a CPU before it could
//!    take the lock — too late for rule 7's pause; a waiter that stays runnable takes the
//!    lock as soon as it is free, and the unlock wakes nobody.
//!
//! Must not: call into a task's vtable while holding a slab lock or a map shard's lock with
//! anything but read-only accessors (`done`, `loop_id`), since dropping a task can re-enter
//! the registry. Nor may a `TaskRef` (or a name) be dropped under such a lock (its drop may
//! free a task, whose name leaves the registry): removed and replaced entries are handed
//! back to the caller, rejected ones dropped after the lock is released.
//!
//! [`REGISTRY_SLICE`]: crate::shim::tuning::REGISTRY_SLICE
//! [`REGISTRY_STEP_ASIDE`]: crate::shim::tuning::REGISTRY_STEP_ASIDE
//! [`REGISTRY_STEP_ASIDE_SPINS`]: crate::shim::tuning::REGISTRY_STEP_ASIDE_SPINS

use std::sync::Arc;

use super::raw::RawTask;
use super::TaskRef;
use crate::shim::atomic::{AtomicUsize, Ordering::Relaxed};
use crate::shim::tuning::{REGISTRY_SLICE, REGISTRY_STEP_ASIDE, REGISTRY_STEP_ASIDE_SPINS};
use crate::shim::{thread, Mutex, MutexGuard, UnsafeCell};
use id_map::IdMap;

/// log2 of the number of shards: 64 normally (concurrent spawners rarely share a lock);
/// two under loom, so that models see walks and writers interleave across shards with few
/// tasks.
#[cfg(not(loom))]
const SHARD_BITS: u32 = 6;
#[cfg(loom)]
const SHARD_BITS: u32 = 1;
const SHARDS: usize = 1 << SHARD_BITS;

/// A built-in task's position in its shard (rule 6), kept in its header.
pub(crate) struct RegistryPos(UnsafeCell<u32>);

/// A position no entry has: the task is not registered.
const NO_POS: u32 = u32::MAX;

impl RegistryPos {
    pub(crate) fn new() -> RegistryPos {
        RegistryPos(UnsafeCell::new(NO_POS))
    }

    /// # Safety
    /// The caller holds the lock of the task's shard (rule 6).
    unsafe fn get(&self) -> u32 {
        // SAFETY: rule 6: the field is only accessed under the shard's lock, which the
        // caller holds (this function's contract): no write is concurrent with this read.
        self.0.with(|p| unsafe { *p })
    }

    /// # Safety
    /// The caller holds the lock of the task's shard (rule 6).
    unsafe fn set(&self, pos: u32) {
        // SAFETY: rule 6: as in `get`, the shard's lock makes this access exclusive.
        self.0.with_mut(|p| unsafe { *p = pos })
    }
}

/// One shard's built-in tasks (rule 2), guarded by its lock.
struct Slab {
    /// The positions (rule 1).
    slots: Vec<Option<TaskRef>>,
    /// Empty positions below `slots.len()`, the last emptied on top.
    free: Vec<u32>,
}

impl Slab {
    const fn new() -> Slab {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Puts `t` at an empty position (rule 1) and returns it.
    #[inline]
    fn put(&mut self, t: TaskRef) -> u32 {
        match self.free.pop() {
            Some(pos) => {
                self.slots[pos as usize] = Some(t);
                pos
            }
            None => {
                let pos = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&p| p != NO_POS)
                    .expect("a registry shard holds fewer than 2^32 tasks");
                self.slots.push(Some(t));
                pos
            }
        }
    }

    /// Empties `pos`, handing back its entry.
    fn take(&mut self, pos: u32) -> Option<TaskRef> {
        let t = self.slots.get_mut(pos as usize)?.take();
        if t.is_some() {
            self.free.push(pos);
        }
        t
    }

    /// Gives back spare capacity: empty positions at the end are cut off (rule 1: nothing
    /// moves), then the vectors shrink to what is left.
    #[cfg(not(loom))]
    fn shrink(&mut self) {
        let len = self
            .slots
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |p| p + 1);
        self.slots.truncate(len);
        self.slots.shrink_to_fit();
        self.free.retain(|&p| (p as usize) < len);
        self.free.shrink_to_fit();
    }
}

/// One shard: its slab and its count of writers waiting for the lock (rule 7). Aligned to
/// two cache lines so that writers on two shards never share a line.
#[repr(align(128))]
struct Shard {
    slab: Mutex<Slab>,
    waiting: AtomicUsize,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slab: Mutex::new(Slab::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Takes the lock for one short operation, the way rule 7 asks a writer to: announced
    /// in `waiting` if it is not free at once.
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Slab> {
        let g = match self.slab.try_lock() {
            Some(g) => g,
            None => self.lock_announced(),
        };
        self.held();
        g
    }

    /// Under loom, a point where a model may switch threads while a writer holds the lock,
    /// as the OS may preempt it there: without it a writer's O(1) hold has no scheduling
    /// point, and no model would see a walk meet a busy shard (rule 7). Elsewhere nothing.
    #[inline(always)]
    fn held(&self) {
        #[cfg(loom)]
        self.waiting.load(Relaxed);
    }

    #[cold]
    fn lock_announced(&self) -> MutexGuard<'_, Slab> {
        self.waiting.fetch_add(1, Relaxed);
        let g = self.lock_waiting();
        self.waiting.fetch_sub(1, Relaxed);
        g
    }

    /// Rule 8: takes a lock found held by spinning and then yielding between tries
    /// (crossbeam's `Backoff`), and blocks only once the backoff is spent (under loom it
    /// blocks at once: the model's mutex stands for the waiting).
    fn lock_waiting(&self) -> MutexGuard<'_, Slab> {
        #[cfg(not(loom))]
        {
            let backoff = crossbeam_utils::Backoff::new();
            while !backoff.is_completed() {
                backoff.snooze();
                if let Some(g) = self.slab.try_lock() {
                    return g;
                }
            }
        }
        self.slab.lock()
    }

    /// Rule 7: the lock for a slice, if it is free and no writer waits for it.
    fn try_lock_for_walk(&self) -> Option<MutexGuard<'_, Slab>> {
        if self.waiting.load(Relaxed) != 0 {
            return None;
        }
        self.slab.try_lock()
    }

    /// Rule 7: before a slice, a snapshot lets the shard's announced writers go first, for
    /// at most [`REGISTRY_STEP_ASIDE`] rounds (spins, then yields); then it takes the lock.
    ///
    /// [`REGISTRY_STEP_ASIDE`]: crate::shim::tuning::REGISTRY_STEP_ASIDE
    fn lock_for_walk(&self) -> MutexGuard<'_, Slab> {
        for round in 0..REGISTRY_STEP_ASIDE {
            if self.waiting.load(Relaxed) == 0 {
                break;
            }
            if round < REGISTRY_STEP_ASIDE_SPINS {
                pause();
            } else {
                thread::yield_now();
            }
        }
        match self.slab.try_lock() {
            Some(g) => g,
            None => self.lock_waiting(),
        }
    }
}

/// A short wait for another thread to act (rule 7): a few spin hints; under loom, a yield
/// (loom's scheduling point: a model must let the other thread run).
#[inline]
fn pause() {
    #[cfg(not(loom))]
    for _ in 0..16 {
        std::hint::spin_loop();
    }
    #[cfg(loom)]
    thread::yield_now();
}

/// The whole registry: the built-in tasks' shards, the third-party tasks (rule 4) and the
/// names (rule T1).
struct Registry {
    shards: [Shard; SHARDS],
    foreign: IdMap<TaskRef>,
    names: IdMap<Arc<str>>,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            shards: std::array::from_fn(|_| Shard::new()),
            foreign: IdMap::new(),
            names: IdMap::new(),
        }
    }
}

#[cfg(not(loom))]
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::new);
    &REGISTRY
}

#[cfg(loom)]
fn registry() -> &'static Registry {
    loom::lazy_static! {
        static ref REGISTRY: Registry = Registry::new();
    }
    &REGISTRY
}

/// The shard of built-in task `id`.
#[inline]
fn shard(id: u64) -> &'static Shard {
    &registry().shards[(id % SHARDS as u64) as usize]
}

/// Adds a new built-in task's entry (at spawn: its id is fresh, so it is not present, and
/// it was never registered before, rule 2).
pub(crate) fn insert_builtin(raw: RawTask, entry: TaskRef) {
    let h = raw.header();
    let mut slab = shard(h.id).lock();
    let pos = slab.put(entry);
    // SAFETY: rule 6: we hold the lock of the task's shard.
    unsafe { h.registry_pos.set(pos) };
}

/// Adds `task` unless a task with its id is present; `true` if it was added. A built-in
/// task goes to the slabs (it must be a new one, rule 2), a third-party one to the map.
pub(crate) fn insert(task: TaskRef) -> bool {
    if let Some(raw) = task.raw() {
        insert_builtin(raw, task);
        return true;
    }
    let id = task.id();
    // A rejected duplicate comes back and is dropped here, after the map's lock is released.
    registry().foreign.insert_new(id, task).is_ok()
}

/// Removes a built-in task's entry (at completion), handing it back (`None` if it was not
/// registered). The caller drops it outside the lock, which is released here.
pub(crate) fn remove_builtin(raw: RawTask) -> Option<TaskRef> {
    let h = raw.header();
    let mut slab = shard(h.id).lock();
    // SAFETY: rule 6: we hold the lock of the task's shard.
    let pos = unsafe { h.registry_pos.get() };
    if pos == NO_POS {
        return None;
    }
    // SAFETY: as above.
    unsafe { h.registry_pos.set(NO_POS) };
    slab.take(pos)
}

/// Removes the third-party task `id` (`unregister_task`), handing it back to be dropped
/// outside the map's lock.
pub(crate) fn remove(id: u64) -> Option<TaskRef> {
    registry().foreign.remove(id)
}

/// Whether a task with id `id` is registered (a scan of its shard for a built-in one: for
/// the models).
#[cfg(loom)]
pub(crate) fn contains(id: u64) -> bool {
    registry().foreign.contains(id)
        || shard(id)
            .lock()
            .slots
            .iter()
            .flatten()
            .any(|t| t.id() == id)
}

/// A snapshot of the entries `keep` accepts: the built-in tasks' slabs, then the
/// third-party map (rule 5). Each task appears at most once; a task present for the whole
/// call is always included; tasks added or removed meanwhile may or may not be. `keep`
/// runs under a shard's lock: it must only read.
pub(crate) fn collect(mut keep: impl FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
    let reg = registry();
    let mut out = Vec::with_capacity(builtin_estimate(&reg.shards));
    collect_slabs(&reg.shards, &mut keep, &mut out);
    reg.foreign.collect(&mut keep, &mut out);
    out
}

/// About how many built-in tasks are registered: the entries of every shard that is free
/// to read at once (one short hold each; busy shards are not waited for). A snapshot
/// reserves that much up front, rather than growing its vector (a copy of everything so far
/// at each doubling) while it walks.
fn builtin_estimate(shards: &[Shard; SHARDS]) -> usize {
    shards
        .iter()
        .filter_map(|s| s.try_lock_for_walk())
        .map(|slab| slab.slots.len() - slab.free.len())
        .sum()
}

/// Copies the entries of every slab that `keep` accepts into `out`, in slices, the shards
/// taken in turn, one slice each per round (rules 3, 5, 7): a shard that is busy (locked,
/// or with writers waiting for it) is passed over and visited again in a later round, and
/// only when every shard still to walk is busy does the walk wait, for the first of them.
fn collect_slabs(
    shards: &[Shard; SHARDS],
    keep: &mut dyn FnMut(&TaskRef) -> bool,
    out: &mut Vec<TaskRef>,
) {
    // Each shard's next position; `None` once its walk is over.
    let mut next: [Option<usize>; SHARDS] = [Some(0); SHARDS];
    loop {
        let mut walked = false;
        let mut busy = None;
        for (s, pos) in shards.iter().zip(next.iter_mut()) {
            let Some(from) = *pos else { continue };
            // Room for a whole slice, so that pushes under the lock do not reallocate.
            out.reserve(REGISTRY_SLICE);
            match s.try_lock_for_walk() {
                Some(slab) => {
                    *pos = walk_slice(slab, from, keep, out);
                    walked = true;
                }
                None => busy = busy.or(Some((s, pos))),
            }
        }
        match busy {
            None if !walked => return,
            Some((s, pos)) if !walked => {
                out.reserve(REGISTRY_SLICE);
                let from = pos.expect("a shard still to walk");
                *pos = walk_slice(s.lock_for_walk(), from, keep, out);
            }
            _ => {}
        }
    }
}

/// Copies the accepted entries of one slice of `slab`'s positions, from `from` (rule 3),
/// and releases the lock; returns the position the next slice starts at, `None` if this one
/// reached the slab's end.
fn walk_slice(
    slab: MutexGuard<'_, Slab>,
    from: usize,
    keep: &mut dyn FnMut(&TaskRef) -> bool,
    out: &mut Vec<TaskRef>,
) -> Option<usize> {
    let len = slab.slots.len();
    let end = len.min(from.saturating_add(REGISTRY_SLICE));
    copy_out(&slab.slots[from.min(len)..end], keep, out);
    drop(slab);
    (end < len).then_some(end)
}

/// Clones the entries of `slots` that `keep` accepts into `out`, in three passes per group
/// of 64 positions. A snapshot's cost is the cache misses on the tasks' headers, which are
/// scattered in memory: so first a prefetch of every header (the CPU keeps many in
/// flight), then every `keep` (an indirect call each, on lines now arriving), then every
/// clone (an atomic increment each, which on x86 waits for all earlier loads, so
/// interleaved with them it would serialise the misses).
fn copy_out(
    slots: &[Option<TaskRef>],
    keep: &mut dyn FnMut(&TaskRef) -> bool,
    out: &mut Vec<TaskRef>,
) {
    for group in slots.chunks(64) {
        for raw in group.iter().flatten().filter_map(TaskRef::raw) {
            prefetch(std::ptr::from_ref(raw.header()).cast());
        }
        let mut kept = 0u64;
        for (i, t) in group.iter().enumerate() {
            if t.as_ref().is_some_and(&mut *keep) {
                kept |= 1 << i;
            }
        }
        while kept != 0 {
            let i = kept.trailing_zeros() as usize;
            kept &= kept - 1;
            out.extend(group[i].clone());
        }
    }
}

/// Starts loading the two cache lines at `p` (a task's header and what follows it: the
/// state `keep` reads and the scheduler `loop_id` reads) without waiting for them.
#[cfg(all(target_arch = "x86_64", not(loom)))]
#[allow(unused_unsafe)] // `_mm_prefetch` is a safe function since Rust 1.87, unsafe before
fn prefetch(p: *const u8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint that never faults and never changes memory, whatever the
    // address (the second line may lie past the task's allocation); SSE, which it needs, is
    // part of x86_64.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
    }
}

/// Elsewhere (and under loom, whose cells must not be read behind its back): nothing.
#[cfg(not(all(target_arch = "x86_64", not(loom))))]
fn prefetch(_: *const u8) {}

pub(crate) fn set_name(id: u64, name: Arc<str>) {
    // A name replaced comes back and is dropped here, after the map's lock is released.
    drop(registry().names.replace(id, name));
}

pub(crate) fn name(id: u64) -> Option<Arc<str>> {
    registry().names.get(id)
}

pub(crate) fn remove_name(id: u64) {
    drop(registry().names.remove(id)); // outside the lock, as above
}

/// Gives back the registry's spare capacity (after a runtime shut down, so that a burst of
/// tasks does not pin its peak registry size for the rest of the process).
#[cfg(not(loom))]
pub(crate) fn shrink() {
    let reg = registry();
    for s in &reg.shards {
        s.lock().shrink();
    }
    reg.foreign.shrink();
    reg.names.shrink();
}

/// A concurrent map keyed by task id, for the third-party tasks (rule 4) and the names:
/// `dashmap` normally, a double of the same shape under loom. Every method hands values
/// that leave the map back to its caller, so none is dropped under a shard's lock (the
/// module's "Must not").
#[cfg(not(loom))]
mod id_map {
    use dashmap::mapref::entry::Entry;
    use dashmap::DashMap;
    use std::hash::{BuildHasherDefault, Hasher};

    /// The hash of a task id: the id times an odd constant (Fibonacci hashing). dashmap
    /// picks the shard from the bits just below the top 7 and hashbrown its 7-bit tag from
    /// the top 7, which the multiplication mixes from every bit of the id; hashbrown picks
    /// the bucket from the low bits, which for an odd multiplier are a permutation of the
    /// id's own low bits, so consecutive ids never collide there. Cheaper than the default
    /// SipHash, and ids are not attacker-chosen keys.
    #[derive(Default)]
    pub(super) struct IdHasher(u64);

    impl Hasher for IdHasher {
        fn finish(&self) -> u64 {
            self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }

        fn write(&mut self, bytes: &[u8]) {
            // Only `u64` keys are hashed here; fold anything else in, FNV-style.
            for &b in bytes {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }

        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }

    pub(super) struct IdMap<V>(DashMap<u64, V, BuildHasherDefault<IdHasher>>);

    impl<V: Clone> IdMap<V> {
        pub(super) fn new() -> IdMap<V> {
            IdMap(DashMap::with_hasher(BuildHasherDefault::default()))
        }

        /// Adds `v` under `id` unless `id` is present; else hands `v` back.
        pub(super) fn insert_new(&self, id: u64, v: V) -> Result<(), V> {
            match self.0.entry(id) {
                Entry::Occupied(_) => Err(v),
                Entry::Vacant(e) => {
                    e.insert(v);
                    Ok(())
                }
            }
        }

        /// Sets `id`'s value, handing back the one it replaces.
        pub(super) fn replace(&self, id: u64, v: V) -> Option<V> {
            self.0.insert(id, v)
        }

        pub(super) fn remove(&self, id: u64) -> Option<V> {
            self.0.remove(&id).map(|(_, v)| v)
        }

        pub(super) fn get(&self, id: u64) -> Option<V> {
            self.0.get(&id).map(|r| r.value().clone())
        }

        /// Rule 4: clones the values `keep` accepts into `out`, one shard at a time, each
        /// in one read-lock hold (dashmap's iterator holds a shard's read lock while it
        /// yields that shard's entries, and releases it before taking the next).
        pub(super) fn collect(&self, keep: &mut dyn FnMut(&V) -> bool, out: &mut Vec<V>) {
            for r in &self.0 {
                if keep(r.value()) {
                    out.push(r.value().clone());
                }
            }
        }

        pub(super) fn shrink(&self) {
            self.0.shrink_to_fit();
        }
    }
}

/// The loom double of the dashmap build: two shards (`id % 2`), each a loom mutex around
/// an ordered map (the same iteration order in every execution, as loom's replays need),
/// walked one shard per hold as dashmap's iterator does.
#[cfg(loom)]
mod id_map {
    use crate::shim::Mutex;
    use std::collections::BTreeMap;

    pub(super) struct IdMap<V>([Mutex<BTreeMap<u64, V>>; 2]);

    impl<V: Clone> IdMap<V> {
        pub(super) fn new() -> IdMap<V> {
            IdMap([Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())])
        }

        fn shard(&self, id: u64) -> &Mutex<BTreeMap<u64, V>> {
            &self.0[(id % 2) as usize]
        }

        pub(super) fn insert_new(&self, id: u64, v: V) -> Result<(), V> {
            let mut m = self.shard(id).lock();
            if m.contains_key(&id) {
                return Err(v);
            }
            m.insert(id, v);
            Ok(())
        }

        pub(super) fn replace(&self, id: u64, v: V) -> Option<V> {
            self.shard(id).lock().insert(id, v)
        }

        pub(super) fn remove(&self, id: u64) -> Option<V> {
            self.shard(id).lock().remove(&id)
        }

        pub(super) fn get(&self, id: u64) -> Option<V> {
            self.shard(id).lock().get(&id).cloned()
        }

        pub(super) fn contains(&self, id: u64) -> bool {
            self.shard(id).lock().contains_key(&id)
        }

        pub(super) fn collect(&self, keep: &mut dyn FnMut(&V) -> bool, out: &mut Vec<V>) {
            for shard in &self.0 {
                let m = shard.lock();
                out.extend(m.values().filter(|v| keep(v)).cloned());
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Rule L7 through the registry's rules 5 and 7, on the real locks: with shard 0 held by
    /// another thread (as by a writer preempted inside its hold), a snapshot passes over it
    /// and walks the other shards first, then comes back and lists shard 0's tasks too,
    /// each task once.
    #[test]
    fn snapshot_passes_over_a_held_shard() {
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        // Enough pending tasks for every shard to hold some (ids are consecutive per
        // spawner, though other tests spawn meanwhile).
        let tasks: Vec<_> = (0..4 * SHARDS)
            .map(|_| rt.spawn(std::future::pending::<()>()))
            .collect();
        let lp = tasks[0].task_ref().loop_id();
        let mut ours: Vec<u64> = tasks.iter().map(|t| t.id()).collect();
        ours.sort_unstable();
        assert!(ours.iter().any(|id| id % SHARDS as u64 == 0));

        let held = shard(0).slab.lock();
        let (seen_tx, seen) = mpsc::channel();
        let walker = std::thread::spawn(move || {
            let listed = collect(|t| {
                let mine = t.loop_id() == lp;
                if mine {
                    // Only a send: `keep` runs under a shard's lock and must not re-enter.
                    let _ = seen_tx.send(t.id());
                }
                mine
            });
            listed.iter().map(TaskRef::id).collect::<Vec<_>>()
        });
        // A walk that waited at shard 0 would list nothing until it is released: the
        // deadline only turns such a hang into a failure.
        let first = seen
            .recv_timeout(Duration::from_secs(60))
            .expect("the snapshot walked no other shard while shard 0 was held");
        assert_ne!(first % SHARDS as u64, 0, "shard 0 was walked while held");
        drop(held);

        let mut listed = walker.join().unwrap();
        listed.sort_unstable();
        assert_eq!(listed, ours, "each task listed exactly once");
        drop(tasks);
    }
}
