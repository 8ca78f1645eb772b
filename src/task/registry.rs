//! The process-wide task registry behind `all_tasks()` (rules L1, L2, L7), and the side table
//! of task names.
//!
//! The registry is a concurrent map from task id to [`TaskRef`]: a `dashmap` normally,
//! a loom-mutexed map under `--cfg loom` so that models explore its interleavings. It also
//! serves as each runtime's list of the tasks it owns: a built-in task stays in it from spawn
//! to completion (even if `unregister_task` hides it from `all_tasks`), which is how runtime
//! shutdown finds every unfinished task to drop.
//!
//! Names live in a second map, entered only for tasks that were given a name: a task named by
//! default (`Task-<id>`, rule T1) costs no memory for it.
//!
//! Must not: call into a task's vtable while holding a shard lock with anything but read-only
//! accessors (`done`, `loop_id`), since dropping a task can re-enter the registry.

use std::sync::Arc;

use super::TaskRef;

#[cfg(not(loom))]
mod imp {
    use super::TaskRef;
    use dashmap::DashMap;
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

    pub(super) struct Maps {
        pub(super) tasks: DashMap<u64, TaskRef, IdBuild>,
        pub(super) names: DashMap<u64, Arc<str>, IdBuild>,
    }

    static MAPS: LazyLock<Maps> = LazyLock::new(|| Maps {
        tasks: DashMap::with_hasher_and_shard_amount(IdBuild::default(), 1 << SHARD_BITS),
        names: DashMap::with_hasher(IdBuild::default()),
    });

    pub(super) fn maps() -> &'static Maps {
        &MAPS
    }

    impl Maps {
        pub(super) fn insert(&self, t: TaskRef) -> bool {
            // A rejected duplicate is dropped after the shard lock is released.
            let mut t = Some(t);
            let added = match self.tasks.entry(t.as_ref().map_or(0, TaskRef::id)) {
                dashmap::Entry::Occupied(_) => false,
                dashmap::Entry::Vacant(v) => {
                    v.insert(t.take().expect("present"));
                    true
                }
            };
            drop(t);
            added
        }
        pub(super) fn remove(&self, id: u64) -> Option<TaskRef> {
            self.tasks.remove(&id).map(|(_, t)| t)
        }
        pub(super) fn contains(&self, id: u64) -> bool {
            self.tasks.contains_key(&id)
        }
        pub(super) fn collect(&self, keep: &mut dyn FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
            self.tasks
                .iter()
                .filter(|r| keep(r.value()))
                .map(|r| r.value().clone())
                .collect()
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
            self.tasks.shrink_to_fit();
            self.names.shrink_to_fit();
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::TaskRef;
    use crate::sync::Mutex;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Two shards, so that models see inserts and snapshots interleave across shards.
    /// Ordered maps: a snapshot visits entries in the same order in every execution, as
    /// loom needs (a `HashMap`'s random iteration order would make replays diverge).
    pub(super) struct Maps {
        shards: [Mutex<BTreeMap<u64, TaskRef>>; 2],
        names: Mutex<BTreeMap<u64, Arc<str>>>,
    }

    loom::lazy_static! {
        static ref MAPS: Maps = Maps {
            shards: [Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())],
            names: Mutex::new(BTreeMap::new()),
        };
    }

    pub(super) fn maps() -> &'static Maps {
        &MAPS
    }

    impl Maps {
        fn shard(&self, id: u64) -> &Mutex<BTreeMap<u64, TaskRef>> {
            &self.shards[(id % 2) as usize]
        }
        pub(super) fn insert(&self, t: TaskRef) -> bool {
            let id = t.id();
            let mut rejected = None;
            let added = {
                let mut s = self.shard(id).lock();
                match s.entry(id) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        rejected = Some(t);
                        false
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(t);
                        true
                    }
                }
            };
            drop(rejected); // after the lock is released
            added
        }
        pub(super) fn remove(&self, id: u64) -> Option<TaskRef> {
            let r = self.shard(id).lock().remove(&id);
            r
        }
        pub(super) fn contains(&self, id: u64) -> bool {
            self.shard(id).lock().contains_key(&id)
        }
        pub(super) fn collect(&self, keep: &mut dyn FnMut(&TaskRef) -> bool) -> Vec<TaskRef> {
            let mut out = Vec::new();
            for shard in &self.shards {
                let s = shard.lock();
                out.extend(s.values().filter(|t| keep(t)).cloned());
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
