//! The process-wide task registry behind `all_tasks()` (rules L1, L2, L7), and the side table
//! of task names.
//!
//! The registry is a concurrent map from task id to [`TaskRef`]: a `dashmap` normally (64
//! shards, each an `RwLock` around a hashbrown table), a loom-mutexed double under
//! `--cfg loom` so that models explore its interleavings. It also serves as each runtime's
//! list of the tasks it owns: a built-in task stays in it from spawn to completion (even if
//! `unregister_task` hides it from `all_tasks`), which is how runtime shutdown finds every
//! unfinished task to drop.
//!
//! Names live in a second map, entered only for tasks that were given a name: a task named by
//! default (`Task-<id>`, rule T1) costs no memory for it.
//!
//! # The listing protocol
//!
//! A snapshot must not hold a shard against registration for longer than a bounded slice:
//! spawning and completion take a shard's write lock on every task, and a walk that kept a
//! shard of thousands of entries read-locked made them wait (and, on a busy machine, give
//! their CPU away). So a snapshot walks each shard by *position* in its table, a bounded
//! number of positions per read-lock hold:
//!
//! 1. **Stable positions.** While a shard is read-locked, no entry moves. Between two holds,
//!    an entry that stays in the map keeps its position unless the table is relocated
//!    (hashbrown moves entries only when it grows or rehashes, which an insert does only if
//!    the table has no growth left, and when it shrinks); removals and other inserts never
//!    move it.
//! 2. **Layout generation.** Each shard has a generation counter, read and written only
//!    under the shard's lock. A writer bumps it, in the same write-lock hold, before any
//!    operation that may relocate entries (an insert into a full table, a shrink) and before
//!    inserting a third-party task, whose id may have been removed and listed earlier in
//!    the same walk. A built-in task's entry is inserted once, at spawn, under a fresh id,
//!    so ordinary spawns bump nothing.
//! 3. **Sliced walk.** A snapshot reads a shard's generation when it first locks it, then
//!    visits positions `0..len` at most [`REGISTRY_SLICE`] per read-lock hold, copying out
//!    (cloning) the entries `keep` accepts. `keep` and the clone run under the read lock and
//!    must only read (the rule below). Clones are dropped only after the lock is released.
//! 4. **Restart.** If a hold finds the generation changed, the walk drops what it copied
//!    from this shard and starts the shard again. After [`REGISTRY_MAX_RESTARTS`] restarts
//!    it takes the shard in one hold: the only unbounded hold, reached only if writers
//!    relocated or re-registered in this shard that many times during one walk.
//! 5. **What a snapshot lists.** What it keeps of a shard comes from the shard's last pass,
//!    which saw one generation from its first hold to its last (or was one hold). By rule 1
//!    every entry present throughout sat at one position during that pass and was visited
//!    exactly once: it is listed once. Two visited positions never hold the same id (an id
//!    changes position only by relocation or by removal and re-insertion, both of which
//!    bump the generation, rule 2), so nothing is listed twice. Every position is read
//!    under the lock, so an entry removed before the snapshot started is never listed.
//!    Entries inserted or removed during the walk may or may not be listed.
//! 6. **Writers.** `insert` and `remove` write-lock one shard for one hashbrown operation,
//!    as dashmap's own methods do; with rule 3 a writer that finds the shard read-locked
//!    waits for at most one slice — if the walk lets it in (rule 7).
//! 7. **Writers first.** dashmap's lock lets readers in while a writer waits, and a waiting
//!    writer yields its CPU and then sleeps: back-to-back slices (or two walks) would keep
//!    it out indefinitely. So a writer that does not get the write lock at once announces
//!    itself in the shard's `waiting` count until it has it, and a walk, before each slice,
//!    yields while that count is non-zero (at most [`REGISTRY_STEP_ASIDE`] times, so a
//!    stream of writers cannot stall a listing either). An uncontended writer pays nothing
//!    (its first try succeeds). The count is a hint: it orders nothing, so it is `Relaxed`.
//!
//! Must not: call into a task's vtable while holding a shard lock with anything but read-only
//! accessors (`done`, `loop_id`), since dropping a task can re-enter the registry.
//!
//! [`REGISTRY_SLICE`]: crate::shim::tuning::REGISTRY_SLICE
//! [`REGISTRY_MAX_RESTARTS`]: crate::shim::tuning::REGISTRY_MAX_RESTARTS
//! [`REGISTRY_STEP_ASIDE`]: crate::shim::tuning::REGISTRY_STEP_ASIDE

use std::sync::Arc;

use super::TaskRef;
use crate::shim::atomic::{AtomicUsize, Ordering::Relaxed};
use crate::shim::thread;
use crate::shim::tuning::{REGISTRY_MAX_RESTARTS, REGISTRY_SLICE, REGISTRY_STEP_ASIDE};

/// One shard as a snapshot sees it while holding the shard's read lock.
trait ShardView {
    /// The shard's layout generation (rule 2).
    fn layout(&self) -> u64;
    /// Number of positions in the shard's table, occupied or not.
    fn positions(&self) -> usize;
    /// The entry at `pos`, if that position is occupied (`None` past the end).
    fn entry(&self, pos: usize) -> Option<&TaskRef>;
}

/// Takes a shard's write lock the way rule 7 asks: announced in `waiting` if it is not
/// free at once. `try_lock` and `lock` are the lock's own.
fn lock_announced<G>(
    waiting: &AtomicUsize,
    try_lock: impl FnOnce() -> Option<G>,
    lock: impl FnOnce() -> G,
) -> G {
    if let Some(g) = try_lock() {
        return g;
    }
    waiting.fetch_add(1, Relaxed);
    let g = lock();
    waiting.fetch_sub(1, Relaxed);
    g
}

/// Rule 7: before a slice, a snapshot lets the shard's announced writers go first, for at
/// most [`REGISTRY_STEP_ASIDE`] rounds.
///
/// [`REGISTRY_STEP_ASIDE`]: crate::shim::tuning::REGISTRY_STEP_ASIDE
fn step_aside(waiting: &AtomicUsize) {
    for _ in 0..REGISTRY_STEP_ASIDE {
        if waiting.load(Relaxed) == 0 {
            return;
        }
        thread::yield_now();
    }
}

/// Copies the entries of one shard that `keep` accepts into `out`, in slices (rules 3–5).
/// `read` read-locks the shard.
fn collect_shard<V: ShardView>(
    read: impl Fn() -> V,
    keep: &mut dyn FnMut(&TaskRef) -> bool,
    out: &mut Vec<TaskRef>,
) {
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
            let view = read();
            match layout {
                None => layout = Some(view.layout()),
                Some(l) if l != view.layout() => {
                    drop(view);
                    out.truncate(mark);
                    restarts += 1;
                    continue 'walk;
                }
                Some(_) => {}
            }
            let len = view.positions();
            let end = len.min(pos.saturating_add(slice));
            copy_out(&view, pos..end, keep, out);
            drop(view);
            if end == len {
                return;
            }
            pos = end;
        }
    }
}

/// Clones the entries at positions `range` that `keep` accepts into `out`, in three passes
/// per group of 64 positions. A snapshot's cost is the cache misses on the tasks' headers,
/// which are scattered in memory: so first a prefetch of every header (the CPU keeps many
/// in flight), then every `keep` (an indirect call each, on lines now arriving), then every
/// clone (an atomic increment each, which on x86 waits for all earlier loads, so
/// interleaved with them it would serialise the misses).
fn copy_out(
    view: &impl ShardView,
    range: std::ops::Range<usize>,
    keep: &mut dyn FnMut(&TaskRef) -> bool,
    out: &mut Vec<TaskRef>,
) {
    let mut start = range.start;
    while start < range.end {
        let end = range.end.min(start + 64);
        for p in start..end {
            if let Some(raw) = view.entry(p).and_then(TaskRef::raw) {
                prefetch(std::ptr::from_ref(raw.header()).cast());
            }
        }
        let mut kept = 0u64;
        for p in start..end {
            if view.entry(p).is_some_and(&mut *keep) {
                kept |= 1 << (p - start);
            }
        }
        while kept != 0 {
            let p = start + kept.trailing_zeros() as usize;
            kept &= kept - 1;
            out.extend(view.entry(p).cloned());
        }
        start = end;
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

#[cfg(not(loom))]
mod imp {
    use super::{ShardView, TaskRef};
    use crate::shim::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
    use dashmap::{DashMap, RwLock, RwLockReadGuard, RwLockWriteGuard, SharedValue};
    use hashbrown::raw::RawTable;
    use std::hash::{BuildHasherDefault, Hasher};
    use std::sync::{Arc, LazyLock};

    /// log2 of the number of shards.
    const SHARD_BITS: u32 = 6;

    /// The hash of a task id, laid out for how dashmap and hashbrown read it: dashmap picks
    /// the shard from the bits just below the top 7 (here `id % 64`: consecutive spawns go
    /// to different shards, so concurrent spawners rarely share a lock), hashbrown picks
    /// the bucket from the low bits (here `id / 64`: a shard's consecutive ids sit in
    /// neighbouring buckets, so a burst of spawns and completions walks memory in order
    /// instead of missing the cache on every insert), and its 7-bit tag from the top bits
    /// (here the low bits of `id / 64`, so tags in a probe group differ). Ids are unique,
    /// so the layout never costs correctness, only — for other keys — distribution.
    #[derive(Default)]
    pub(super) struct IdHasher(u64);

    impl Hasher for IdHasher {
        fn finish(&self) -> u64 {
            let id = self.0;
            let seq = id >> SHARD_BITS;
            let shard = id & ((1 << SHARD_BITS) - 1);
            seq | (shard << (64 - 7 - SHARD_BITS)) | ((seq & 0x7f) << 57)
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

    type IdBuild = BuildHasherDefault<IdHasher>;

    /// A shard's table as dashmap stores it. The entry is the one-word `TaskRef` alone (8
    /// bytes; the map's value is `()`): the key, the task id, is read through it (a built-in
    /// task's header, which completion has in cache anyway; a third-party task's `id()`,
    /// which `TaskLike` documents as called under a shard lock).
    type Table = RawTable<(TaskRef, SharedValue<()>)>;

    pub(super) struct Maps {
        /// Task entries. Only the shard locks and tables are used (dashmap's `raw-api`), so
        /// that a snapshot can walk a table by position (rules 1, 3); every operation
        /// hashes and picks the shard as dashmap's own methods do.
        tasks: DashMap<TaskRef, (), IdBuild>,
        /// Per shard of `tasks`, by shard index: what the listing protocol adds.
        meta: Box<[Meta]>,
        names: DashMap<u64, Arc<str>, IdBuild>,
    }

    /// A shard's layout generation (rule 2) and its count of writers waiting (rule 7).
    #[derive(Default)]
    struct Meta {
        layout: AtomicU64,
        waiting: AtomicUsize,
    }

    static MAPS: LazyLock<Maps> = LazyLock::new(|| Maps {
        tasks: DashMap::with_hasher_and_shard_amount(IdBuild::default(), 1 << SHARD_BITS),
        meta: (0..1 << SHARD_BITS).map(|_| Meta::default()).collect(),
        names: DashMap::with_hasher(IdBuild::default()),
    });

    pub(super) fn maps() -> &'static Maps {
        &MAPS
    }

    /// A shard read-locked by a snapshot, with the generation read under that lock.
    pub(super) struct View<'a> {
        table: RwLockReadGuard<'a, Table>,
        layout: u64,
    }

    impl ShardView for View<'_> {
        fn layout(&self) -> u64 {
            self.layout
        }
        fn positions(&self) -> usize {
            self.table.buckets()
        }
        fn entry(&self, pos: usize) -> Option<&TaskRef> {
            if pos >= self.table.buckets() {
                return None;
            }
            // SAFETY: `pos` is below the bucket count, as `is_bucket_full` and `bucket`
            // require; a full bucket holds an initialised element, and the read guard we
            // hold keeps the table from being changed while the returned borrow of `self`
            // lives (rule 1).
            unsafe {
                self.table
                    .is_bucket_full(pos)
                    .then(|| &self.table.bucket(pos).as_ref().0)
            }
        }
    }

    impl Maps {
        fn hash(&self, id: u64) -> u64 {
            self.tasks.hash_usize(&id) as u64
        }

        fn shard(&self, hash: u64) -> (&RwLock<Table>, &Meta) {
            let i = self.tasks.determine_shard(hash as usize);
            (&self.tasks.shards()[i], &self.meta[i])
        }

        fn write(&self, hash: u64) -> (RwLockWriteGuard<'_, Table>, &AtomicU64) {
            let (lock, meta) = self.shard(hash);
            let table = super::lock_announced(&meta.waiting, || lock.try_write(), || lock.write());
            (table, &meta.layout)
        }

        pub(super) fn insert(&self, t: TaskRef) -> bool {
            let id = t.id();
            let hash = self.hash(id);
            let (mut table, layout) = self.write(hash);
            // Rule 2: the lookup below grows or rehashes the table only if no growth is
            // left; a third-party id may be one a running snapshot already listed.
            if table.len() == table.capacity() || !t.is_builtin() {
                layout.fetch_add(1, Relaxed);
            }
            match table.find_or_find_insert_slot(hash, |e| e.0.id() == id, |e| self.hash(e.0.id()))
            {
                Ok(_) => {
                    drop(table);
                    drop(t); // a rejected duplicate, dropped after the lock is released
                    false
                }
                Err(slot) => {
                    // SAFETY: `slot` was just returned by `find_or_find_insert_slot` on this
                    // table, and the write guard has kept the table unchanged since.
                    unsafe { table.insert_in_slot(hash, slot, (t, SharedValue::new(()))) };
                    true
                }
            }
        }
        pub(super) fn remove(&self, id: u64) -> Option<TaskRef> {
            let hash = self.hash(id);
            let removed = self.write(hash).0.remove_entry(hash, |e| e.0.id() == id);
            removed.map(|(t, _)| t)
        }
        pub(super) fn contains(&self, id: u64) -> bool {
            let hash = self.hash(id);
            let found = self
                .shard(hash)
                .0
                .read()
                .find(hash, |e| e.0.id() == id)
                .is_some();
            found
        }
        pub(super) fn collect(&self, keep: &mut dyn FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
            let mut out = Vec::new();
            for (lock, meta) in self.tasks.shards().iter().zip(&self.meta[..]) {
                let read = || {
                    super::step_aside(&meta.waiting);
                    let table = lock.read();
                    let layout = meta.layout.load(Relaxed);
                    View { table, layout }
                };
                super::collect_shard(read, keep, &mut out);
            }
            out
        }
        pub(super) fn set_name(&self, id: u64, name: Arc<str>) {
            self.names.insert(id, name);
        }
        pub(super) fn name(&self, id: u64) -> Option<Arc<str>> {
            self.names.get(&id).map(|r| r.value().clone())
        }
        pub(super) fn remove_name(&self, id: u64) {
            self.names.remove(&id);
        }
        pub(super) fn shrink(&self) {
            for (lock, meta) in self.tasks.shards().iter().zip(&self.meta[..]) {
                let mut table = lock.write();
                meta.layout.fetch_add(1, Relaxed); // rule 2: shrinking relocates
                table.shrink_to(0, |e| self.hash(e.0.id()));
            }
            self.names.shrink_to_fit();
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::{ShardView, TaskRef};
    use crate::shim::atomic::AtomicUsize;
    use crate::shim::Mutex;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Positions each shard starts with: a third insert into shard 0 relocates, so models
    /// reach rule 2's growth bump with a handful of tasks; shard 1 has room for a
    /// re-inserted entry to land at a new position without growing.
    const INITIAL_POSITIONS: [usize; 2] = [2, 4];

    /// A shard's table: open addressing by position, like hashbrown's (an entry's home is
    /// `id / 2` modulo the size, then the next free position), growing by relocating every
    /// entry when full. Deterministic, as loom's replays need.
    pub(super) struct Shard {
        slots: Vec<Option<TaskRef>>,
        len: usize,
        layout: u64,
    }

    impl Shard {
        fn new(positions: usize) -> Shard {
            Shard {
                slots: (0..positions).map(|_| None).collect(),
                len: 0,
                layout: 0,
            }
        }

        fn find(&self, id: u64) -> Option<usize> {
            self.slots
                .iter()
                .position(|s| s.as_ref().is_some_and(|t| t.id() == id))
        }

        fn place(slots: &mut [Option<TaskRef>], t: TaskRef) {
            let n = slots.len();
            let home = (t.id() / 2) as usize % n;
            let free = (0..n)
                .map(|k| (home + k) % n)
                .find(|&p| slots[p].is_none())
                .expect("a free position");
            slots[free] = Some(t);
        }

        /// `t`'s id is not present.
        fn insert(&mut self, t: TaskRef) {
            // Rule 2, as the dashmap build applies it.
            if self.len == self.slots.len() || !t.is_builtin() {
                self.layout += 1;
            }
            if self.len == self.slots.len() {
                let old = std::mem::take(&mut self.slots);
                self.slots = (0..2 * old.len()).map(|_| None).collect();
                for e in old.into_iter().flatten() {
                    Self::place(&mut self.slots, e);
                }
            }
            Self::place(&mut self.slots, t);
            self.len += 1;
        }

        fn remove(&mut self, id: u64) -> Option<TaskRef> {
            let pos = self.find(id)?;
            let t = self.slots[pos].take();
            self.len -= 1;
            t
        }
    }

    impl ShardView for loom::sync::MutexGuard<'_, Shard> {
        fn layout(&self) -> u64 {
            self.layout
        }
        fn positions(&self) -> usize {
            self.slots.len()
        }
        fn entry(&self, pos: usize) -> Option<&TaskRef> {
            self.slots.get(pos)?.as_ref()
        }
    }

    /// Two shards (`id % 2`), so that models see inserts and snapshots interleave across
    /// shards. Ordered name map: the same iteration order in every execution.
    pub(super) struct Maps {
        /// Each shard's lock and its count of writers waiting (rule 7).
        shards: [(Mutex<Shard>, AtomicUsize); 2],
        names: Mutex<BTreeMap<u64, Arc<str>>>,
    }

    loom::lazy_static! {
        static ref MAPS: Maps = Maps {
            shards: [
                (Mutex::new(Shard::new(INITIAL_POSITIONS[0])), AtomicUsize::new(0)),
                (Mutex::new(Shard::new(INITIAL_POSITIONS[1])), AtomicUsize::new(0)),
            ],
            names: Mutex::new(BTreeMap::new()),
        };
    }

    pub(super) fn maps() -> &'static Maps {
        &MAPS
    }

    impl Maps {
        fn shard(&self, id: u64) -> &Mutex<Shard> {
            &self.shards[(id % 2) as usize].0
        }
        fn write(&self, id: u64) -> loom::sync::MutexGuard<'_, Shard> {
            let (lock, waiting) = &self.shards[(id % 2) as usize];
            super::lock_announced(waiting, || lock.try_lock(), || lock.lock())
        }
        pub(super) fn insert(&self, t: TaskRef) -> bool {
            let mut s = self.write(t.id());
            if s.find(t.id()).is_some() {
                drop(s);
                drop(t); // a rejected duplicate, dropped after the lock is released
                return false;
            }
            s.insert(t);
            true
        }
        pub(super) fn remove(&self, id: u64) -> Option<TaskRef> {
            let r = self.write(id).remove(id);
            r
        }
        pub(super) fn contains(&self, id: u64) -> bool {
            self.shard(id).lock().find(id).is_some()
        }
        pub(super) fn collect(&self, keep: &mut dyn FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
            let mut out = Vec::new();
            for (lock, waiting) in &self.shards {
                let read = || {
                    super::step_aside(waiting);
                    lock.lock()
                };
                super::collect_shard(read, keep, &mut out);
            }
            out
        }
        pub(super) fn set_name(&self, id: u64, name: Arc<str>) {
            self.names.lock().insert(id, name);
        }
        pub(super) fn name(&self, id: u64) -> Option<Arc<str>> {
            self.names.lock().get(&id).cloned()
        }
        pub(super) fn remove_name(&self, id: u64) {
            self.names.lock().remove(&id);
        }
    }
}

/// Adds `task` unless a task with its id is present; `true` if it was added.
pub(crate) fn insert(task: TaskRef) -> bool {
    imp::maps().insert(task)
}

/// Removes the entry for `id` (the built-in completion path and `unregister_task`).
pub(crate) fn remove_builtin(id: u64) -> Option<TaskRef> {
    imp::maps().remove(id)
}

pub(crate) fn remove(id: u64) -> Option<TaskRef> {
    imp::maps().remove(id)
}

pub(crate) fn contains(id: u64) -> bool {
    imp::maps().contains(id)
}

/// A snapshot of the entries `keep` accepts. Each task appears at most once; a task present
/// for the whole call is always included; tasks added or removed meanwhile may or may not be.
/// `keep` runs under a shard's read lock: it must only read.
pub(crate) fn collect(mut keep: impl FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
    imp::maps().collect(&mut keep)
}

pub(crate) fn set_name(id: u64, name: Arc<str>) {
    imp::maps().set_name(id, name)
}

pub(crate) fn name(id: u64) -> Option<Arc<str>> {
    imp::maps().name(id)
}

pub(crate) fn remove_name(id: u64) {
    imp::maps().remove_name(id)
}

/// Gives back the tables' spare capacity (after a runtime shut down, so that a burst of
/// tasks does not pin its peak registry size for the rest of the process).
#[cfg(not(loom))]
pub(crate) fn shrink() {
    imp::maps().shrink()
}
