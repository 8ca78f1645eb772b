//! The process-wide task registry behind `all_tasks()` (rules L1, L2, L7), and the side table
//! of task names.
//!
//! The registry is a fixed set of shards (64; two under `--cfg loom`), a task's shard being
//! its id modulo their number. A shard is a mutex around a *slab*: a vector of positions,
//! each empty or holding one [`TaskRef`], with a stack of the empty ones. A built-in task
//! records its position in its header ([`RegistryPos`]), so that its completion goes
//! straight to it: spawning and completing a task cost one uncontended lock each and a few
//! stores (what tokio's sharded `OwnedTasks` list costs), where a hash map's probe cost
//! several times that. Third-party tasks, which have no header of ours, are found through
//! a per-shard index by id. The same code runs under loom, whose mutex the shim supplies.
//!
//! The registry also serves as each runtime's list of the tasks it owns: a built-in task
//! stays in it from spawn to completion (even if `unregister_task` hides it from
//! `all_tasks`), which is how runtime shutdown finds every unfinished task to drop.
//!
//! Names live in each shard too, entered only for tasks that were given a name: a task named
//! by default (`Task-<id>`, rule T1) costs no memory for it.
//!
//! # The listing protocol
//!
//! A snapshot must not hold a shard against registration for longer than a bounded slice:
//! spawning and completion lock a shard on every task, and a walk that kept a shard of
//! thousands of entries locked made them wait (and, on a busy machine, give their CPU away).
//! So a snapshot walks each shard by *position*, a bounded number of positions per lock hold:
//!
//! 1. **Stable positions.** An entry never moves while it is in the registry: an insert
//!    takes an empty position (the last one emptied, else a new one at the end), a removal
//!    empties one, and the vector's growth keeps every index. Shrinking (after a runtime
//!    shut down) only cuts empty positions off the end.
//! 2. **Layout generation.** Each shard has a generation counter, read and written only
//!    under the shard's lock. A writer bumps it, in the same hold, before inserting a
//!    third-party task: its id may have been removed and listed earlier in the same walk,
//!    and it may come back at a position the walk has not reached yet. A built-in task's
//!    entry is inserted once, at spawn, under a fresh id, so spawns bump nothing.
//! 3. **Sliced walk.** A snapshot reads a shard's generation when it first locks it, then
//!    visits positions `0..len` at most [`REGISTRY_SLICE`] per lock hold, copying out
//!    (cloning) the entries `keep` accepts. `keep` and the clone run under the lock and must
//!    only read (the rule below). Clones are dropped only after the lock is released.
//! 4. **Restart.** If a hold finds the generation changed, the walk drops what it copied
//!    from this shard and starts the shard again. After [`REGISTRY_MAX_RESTARTS`] restarts
//!    it takes the shard in one hold: the only unbounded hold, reached only if writers
//!    re-registered third-party tasks in this shard that many times during one walk.
//! 5. **What a snapshot lists.** What it keeps of a shard comes from the shard's last pass,
//!    which saw one generation from its first hold to its last (or was one hold). By rule 1
//!    every entry present throughout sat at one position during that pass and was visited
//!    exactly once: it is listed once. Two visited positions never hold the same id (an id
//!    changes position only by removal and re-insertion, which for a built-in task never
//!    happens and for a third-party one bumps the generation, rule 2), so nothing is listed
//!    twice. Every position is read under the lock, so an entry removed before the snapshot
//!    started is never listed. Entries inserted or removed during the walk may or may not
//!    be listed.
//! 6. **Writers.** `insert` and `remove` lock one shard for O(1) work (a third-party task:
//!    a lookup in the shard's id index). A built-in task's [`RegistryPos`] is read and
//!    written only under its shard's lock, and is meaningful only while the task is
//!    registered. With rule 3 a writer that finds the shard locked by a walk waits for at
//!    most one slice — if the walk lets it in (rule 7).
//! 7. **Writers first.** A walk that releases a shard's lock and takes it straight back can
//!    beat a waiting writer to it: back-to-back slices (or two walks) could keep it out
//!    indefinitely. So a writer that does not get the lock at once announces itself in the
//!    shard's `waiting` count until it has it, and a walk, before each slice, waits while
//!    that count is non-zero: [`REGISTRY_STEP_ASIDE_SPINS`] rounds spinning briefly, then
//!    yielding, [`REGISTRY_STEP_ASIDE`] rounds in all (so a stream of writers cannot stall a listing either).
//!    It spins first: on a loaded machine a yield can give the CPU away for a whole time
//!    slice, at every one of a listing's hundreds of slices, and a running writer takes
//!    the lock within the spins; it yields after, so that a writer that is not running
//!    gets a CPU (two walks back to back would otherwise keep the writers out). An
//!    uncontended writer pays nothing (its first try succeeds). The count is a hint: it
//!    orders nothing, so it is `Relaxed`.
//! 8. **Waiting without sleeping.** Every hold is short (one O(1) write, or one slice), so
//!    a thread that finds a shard locked spins, then yields, between tries, and blocks on
//!    the mutex only after `REGISTRY_LOCK_TRIES` of them (`shim::tuning`). A writer that slept instead
//!    would need waking at every unlock and, on a loaded machine, a CPU before it could
//!    take the lock — too late for rule 7's pause; a waiter that stays runnable takes the
//!    lock as soon as it is free, and the unlock wakes nobody.
//!
//! Must not: call into a task's vtable while holding a shard lock with anything but read-only
//! accessors (`done`, `loop_id`), since dropping a task can re-enter the registry. Nor may a
//! `TaskRef` be dropped under a shard lock (its drop may free a task, whose name leaves the
//! registry): removed entries are handed back to the caller, rejected ones dropped after the
//! lock is released.
//!
//! [`REGISTRY_SLICE`]: crate::shim::tuning::REGISTRY_SLICE
//! [`REGISTRY_MAX_RESTARTS`]: crate::shim::tuning::REGISTRY_MAX_RESTARTS
//! [`REGISTRY_STEP_ASIDE`]: crate::shim::tuning::REGISTRY_STEP_ASIDE
//! [`REGISTRY_STEP_ASIDE_SPINS`]: crate::shim::tuning::REGISTRY_STEP_ASIDE_SPINS

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawTask;
use super::TaskRef;
use crate::shim::atomic::{AtomicUsize, Ordering::Relaxed};
#[cfg(not(loom))]
use crate::shim::tuning::REGISTRY_LOCK_TRIES;
use crate::shim::tuning::{
    REGISTRY_MAX_RESTARTS, REGISTRY_SLICE, REGISTRY_STEP_ASIDE, REGISTRY_STEP_ASIDE_SPINS,
};
use crate::shim::{thread, Mutex, MutexGuard, UnsafeCell};

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

/// One shard's contents, guarded by its lock.
struct Slab {
    /// The positions (rule 1).
    slots: Vec<Option<TaskRef>>,
    /// Empty positions below `slots.len()`, the last emptied on top.
    free: Vec<u32>,
    /// Third-party tasks' positions by id (they have no header to keep it in).
    foreign: BTreeMap<u64, u32>,
    /// Names given to the shard's tasks (rule T1), by id.
    names: BTreeMap<u64, Arc<str>>,
    /// The layout generation (rule 2).
    layout: u64,
}

impl Slab {
    const fn new() -> Slab {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            foreign: BTreeMap::new(),
            names: BTreeMap::new(),
            layout: 0,
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
        if let Some(g) = self.slab.try_lock() {
            return g;
        }
        self.lock_announced()
    }

    #[cold]
    fn lock_announced(&self) -> MutexGuard<'_, Slab> {
        self.waiting.fetch_add(1, Relaxed);
        let g = self.lock_waiting();
        self.waiting.fetch_sub(1, Relaxed);
        g
    }

    /// Rule 8: takes a lock found held by spinning and then yielding between tries, and
    /// blocks only after `REGISTRY_LOCK_TRIES` of them (under loom it blocks at once: the
    /// model's mutex stands for the waiting).
    fn lock_waiting(&self) -> MutexGuard<'_, Slab> {
        #[cfg(not(loom))]
        for round in 0..REGISTRY_LOCK_TRIES {
            if round < 4 {
                for _ in 0..4 << round {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
            if let Some(g) = self.slab.try_lock() {
                return g;
            }
        }
        self.slab.lock()
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

#[cfg(not(loom))]
fn shards() -> &'static [Shard; SHARDS] {
    static SHARDS_: std::sync::LazyLock<[Shard; SHARDS]> =
        std::sync::LazyLock::new(|| std::array::from_fn(|_| Shard::new()));
    &SHARDS_
}

#[cfg(loom)]
fn shards() -> &'static [Shard; SHARDS] {
    loom::lazy_static! {
        static ref SHARDS_: [Shard; SHARDS] = std::array::from_fn(|_| Shard::new());
    }
    &SHARDS_
}

/// The shard of task `id`.
#[inline]
fn shard(id: u64) -> &'static Shard {
    &shards()[(id % SHARDS as u64) as usize]
}

/// Adds a new built-in task's entry (at spawn: its id is fresh, so it is not present).
pub(crate) fn insert_builtin(raw: RawTask, entry: TaskRef) {
    let h = raw.header();
    let mut slab = shard(h.id).lock();
    let pos = slab.put(entry);
    // SAFETY: rule 6: we hold the lock of the task's shard.
    unsafe { h.registry_pos.set(pos) };
}

/// Adds `task` unless a task with its id is present; `true` if it was added.
pub(crate) fn insert(task: TaskRef) -> bool {
    if let Some(raw) = task.raw() {
        insert_builtin(raw, task);
        return true;
    }
    let id = task.id();
    let mut slab = shard(id).lock();
    if slab.foreign.contains_key(&id) {
        drop(slab);
        drop(task); // a rejected duplicate, dropped after the lock is released
        return false;
    }
    slab.layout += 1; // rule 2
    let pos = slab.put(task);
    slab.foreign.insert(id, pos);
    true
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

/// Removes the third-party task `id` (`unregister_task`).
pub(crate) fn remove(id: u64) -> Option<TaskRef> {
    let mut slab = shard(id).lock();
    let pos = slab.foreign.remove(&id)?;
    slab.take(pos)
}

/// Whether a task with id `id` is registered (a scan of its shard for a built-in one: for
/// the models).
#[cfg(loom)]
pub(crate) fn contains(id: u64) -> bool {
    let slab = shard(id).lock();
    slab.foreign.contains_key(&id) || slab.slots.iter().flatten().any(|t| t.id() == id)
}

/// A snapshot of the entries `keep` accepts. Each task appears at most once; a task present
/// for the whole call is always included; tasks added or removed meanwhile may or may not be.
/// `keep` runs under a shard's lock: it must only read.
pub(crate) fn collect(mut keep: impl FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
    let mut out = Vec::new();
    for s in shards() {
        collect_shard(s, &mut keep, &mut out);
    }
    out
}

/// Copies the entries of one shard that `keep` accepts into `out`, in slices (rules 3–5).
fn collect_shard(shard: &Shard, keep: &mut dyn FnMut(&TaskRef) -> bool, out: &mut Vec<TaskRef>) {
    let mark = out.len();
    let mut restarts = 0;
    'walk: loop {
        let slice = if restarts < REGISTRY_MAX_RESTARTS {
            REGISTRY_SLICE
        } else {
            usize::MAX
        };
        let (mut pos, mut layout) = (0usize, None);
        loop {
            // Room for a whole slice, so that pushes under the lock do not reallocate (but
            // for rule 4's one-hold pass over a shard larger than this).
            out.reserve(slice.min(1 << 16));
            let slab = shard.lock_for_walk();
            match layout {
                None => layout = Some(slab.layout),
                Some(l) if l != slab.layout => {
                    drop(slab);
                    out.truncate(mark);
                    restarts += 1;
                    continue 'walk;
                }
                Some(_) => {}
            }
            let len = slab.slots.len();
            let end = len.min(pos.saturating_add(slice));
            copy_out(&slab.slots[pos.min(len)..end], keep, out);
            drop(slab);
            if end == len {
                return;
            }
            pos = end;
        }
    }
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
    let old = shard(id).lock().names.insert(id, name);
    drop(old); // outside the lock
}

pub(crate) fn name(id: u64) -> Option<Arc<str>> {
    let name = shard(id).lock().names.get(&id).cloned();
    name
}

pub(crate) fn remove_name(id: u64) {
    let old = shard(id).lock().names.remove(&id);
    drop(old); // outside the lock
}

/// Gives back the shards' spare capacity (after a runtime shut down, so that a burst of
/// tasks does not pin its peak registry size for the rest of the process).
#[cfg(not(loom))]
pub(crate) fn shrink() {
    for s in shards() {
        s.lock().shrink();
    }
}
