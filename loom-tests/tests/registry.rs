//! Model 3 (issue 2, item 7): registry inserts and removes racing an `all_tasks` snapshot
//! (`task/registry.rs`; under loom the map is two mutex-guarded shards, so a snapshot walks
//! shard 0 then shard 1 while inserts and removes land between the two).
//!
//! The snapshot's contract (rule L7, `registry::collect`): a task present for the whole call
//! is always listed; no task is listed twice; tasks added or removed meanwhile may or may
//! not be.

mod common;

use std::sync::Arc as StdArc;

use aioloop::loom_internals::{all_tasks_of, registry_contains, registry_snapshot, TestScheduler};
use aioloop::task::{register_task, unregister_task, LoopId, TaskLike, TaskRef};
use common::{Gate, Probe};
use loom::thread;

/// A third-party task (the public `TaskLike` trait), with an id the model chooses so that
/// runs are deterministic (the registry shard is `id % 2`).
struct Foreign {
    id: u64,
    loop_id: LoopId,
}

impl TaskLike for Foreign {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        format!("foreign-{}", self.id)
    }
    fn done(&self) -> bool {
        false
    }
    fn loop_id(&self) -> LoopId {
        self.loop_id
    }
}

fn foreign(id: u64, loop_id: LoopId) -> TaskRef {
    TaskRef::new(StdArc::new(Foreign { id, loop_id }))
}

fn assert_no_duplicates(snapshot: &[TaskRef]) {
    let mut ids: Vec<u64> = snapshot.iter().map(TaskRef::id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a task listed twice: {snapshot:?}");
}

/// 3(a) Third-party tasks through the public protocol: two threads register the same new
/// task (one of them also unregisters another) while `all_tasks` takes a snapshot. The
/// long-lived tasks (one per shard) are listed exactly once; the new one at most once,
/// even though two threads race to add it; after the threads, the registry holds exactly
/// the expected set.
#[test]
fn register_unregister_race_all_tasks() {
    loom::model(|| {
        let lp = LoopId::new();
        let (a, b) = (foreign(10, lp), foreign(11, lp)); // present throughout, shards 0 and 1
        let added = foreign(13, lp); // shard 1
        let removed = foreign(12, lp); // shard 0
        for t in [&a, &b, &removed] {
            register_task(t);
        }

        let adder = {
            let added = added.clone();
            thread::spawn(move || register_task(&added))
        };
        let adder_remover = {
            let (added, removed) = (added.clone(), removed.clone());
            thread::spawn(move || {
                register_task(&added);
                unregister_task(&removed);
            })
        };

        let snapshot = all_tasks_of(lp);
        assert_no_duplicates(&snapshot);
        assert!(
            snapshot.contains(&a),
            "long-lived task missing: {snapshot:?}"
        );
        assert!(
            snapshot.contains(&b),
            "long-lived task missing: {snapshot:?}"
        );
        assert!(snapshot.iter().all(|t| t.loop_id() == lp));

        adder.join().unwrap();
        adder_remover.join().unwrap();
        let after = all_tasks_of(lp);
        assert_no_duplicates(&after);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(after.contains(&added) && !after.contains(&removed));

        for t in [&a, &b, &added] {
            unregister_task(t);
        }
        assert!(registry_snapshot().is_empty());
    });
}

/// 3(b) Built-in tasks: one completes on another thread (its completion removes the
/// registry entry and releases the registry's reference together with the poller's) and a
/// new one is spawned on a third, while a snapshot clones entries under the shard locks.
/// The snapshot never lists the long-lived task zero or two times; an entry it cloned keeps
/// the completing task's allocation alive, and the snapshot's drop may free it (the handle
/// was detached): no use-after-free (loom's cell checks), no leak (the alive count).
#[test]
fn completion_and_spawn_race_snapshot() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (long_probe, done_probe, new_probe) = (Probe::new(), Probe::new(), Probe::new());
        let long_lived = sched.spawn(2, Gate::new(&long_probe, 0)); // shard 0
        assert!(sched.run_one()); // pending on its gate
        done_probe.open();
        drop(sched.spawn(3, Gate::new(&done_probe, 0))); // shard 1, detached, queued

        let completer = {
            let sched = sched.clone();
            thread::spawn(move || assert!(sched.run_one()))
        };
        let spawner = {
            let (sched, new_probe) = (sched.clone(), new_probe.clone());
            thread::spawn(move || sched.spawn(5, Gate::new(&new_probe, 0)))
        };

        let snapshot = all_tasks_of(sched.loop_id());
        assert_no_duplicates(&snapshot);
        assert!(
            snapshot.iter().any(|t| t.id() == 2),
            "long-lived task missing: {snapshot:?}"
        );
        for t in &snapshot {
            assert!(matches!(t.id(), 2 | 3 | 5));
            assert!(t.is_builtin());
        }
        drop(snapshot); // may drop the last reference to task 3

        completer.join().unwrap();
        let spawned = spawner.join().unwrap();
        assert!(!registry_contains(3), "a completed task stayed registered");
        assert!(registry_contains(2) && registry_contains(5));
        assert_eq!(sched.alive(), 2, "the completed task was not freed");

        // Finish the others: open their gates and run them (task 5 is still queued).
        long_probe.open();
        new_probe.open();
        long_probe.take_waker().unwrap().wake();
        while sched.run_one() {}
        drop((long_lived, spawned));
        assert!(registry_snapshot().is_empty());
        assert_eq!(sched.alive(), 0);
    });
}
