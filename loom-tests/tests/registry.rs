//! Model 3 (issue 2, item 7; issue 8, item 3; issue 9, item 6): registry inserts and removes
//! racing an `all_tasks` snapshot (`task/registry.rs`, the production code). Built-in tasks
//! live in two shards (`id % 2`), each a loom mutex around a slab whose emptied positions
//! are reused last-emptied first; a snapshot walks them one position per lock hold
//! (`REGISTRY_SLICE` = 1), so spawns, completions and position reuse land between any two
//! positions of the walk. A built-in task's position lives in its header in a loom cell, so
//! a model also checks that it is only touched under its shard's lock (the registry's rule
//! 6). Third-party tasks live in the loom double of the registry's dashmap (two loom mutexes
//! around ordered maps, `id % 2`), which a snapshot walks after the slabs, one shard per
//! hold (rule 4): registering, unregistering and registering again land between those
//! holds and between the slab positions before them. A slab writer's hold has a scheduling
//! point under loom, so a walk can meet a busy shard and pass over it (rule 7, 3(h)).
//!
//! The snapshot's contract (rule L7, `registry::collect`, the registry's rule 5): a task
//! present for the whole call is always listed; no task is listed twice; a task removed
//! before the call started is not listed; tasks added or removed meanwhile may or may not
//! be.

mod common;

use std::sync::Arc as StdArc;

use aioloop::loom_internals::{all_tasks_of, registry_contains, registry_snapshot, TestScheduler};
use aioloop::task::{register_task, unregister_task, LoopId, TaskLike, TaskRef};
use common::{spawn_pending, Gate, Probe};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
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

fn ids(snapshot: &[TaskRef]) -> Vec<u64> {
    snapshot.iter().map(TaskRef::id).collect()
}

fn assert_no_duplicates(snapshot: &[TaskRef]) {
    let mut ids: Vec<u64> = snapshot.iter().map(TaskRef::id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a task listed twice: {snapshot:?}");
}

/// Runs every queued task, drops the join `handles`, and checks that the registry ended
/// empty with every task freed.
fn run_out<H>(sched: &TestScheduler, handles: H) {
    while sched.run_one() {}
    drop(handles);
    assert!(registry_snapshot().is_empty());
    assert_eq!(sched.alive(), 0);
}

/// Rule 5: tasks present for the whole walk are listed.
fn assert_listed(snapshot: &[TaskRef], present: &[u64]) {
    for id in present {
        assert!(
            ids(snapshot).contains(id),
            "task {id}, present throughout, not listed: {:?}",
            ids(snapshot)
        );
    }
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
        // Task 2 in shard 0, tasks 3 and 5 in shard 1.
        complete_and_spawn_during_walk([2, 3, 5], |sched| {
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
        });
    });
}

/// The shape of 3(b) and 3(f), with built-in tasks `[long, done, new]`: `long` is spawned
/// and left pending, `done` is queued ready to finish (its handle detached); then one thread
/// completes `done` and another spawns `new` while `walk` runs on this thread. Afterwards the
/// registry holds `long` and `new` and not `done`, which was freed; both are finished and
/// the registry ends empty, with every task freed.
fn complete_and_spawn_during_walk(ids: [u64; 3], walk: impl FnOnce(&TestScheduler)) {
    let [long, done, new] = ids;
    let sched = TestScheduler::new();
    let (long_probe, done_probe, new_probe) = (Probe::new(), Probe::new(), Probe::new());
    let long_lived = sched.spawn(long, Gate::new(&long_probe, 0));
    assert!(sched.run_one()); // pending on its gate
    done_probe.open();
    drop(sched.spawn(done, Gate::new(&done_probe, 0))); // detached, queued

    let completer = {
        let sched = sched.clone();
        thread::spawn(move || assert!(sched.run_one()))
    };
    let spawner = {
        let (sched, new_probe) = (sched.clone(), new_probe.clone());
        thread::spawn(move || sched.spawn(new, Gate::new(&new_probe, 0)))
    };

    walk(&sched);

    completer.join().unwrap();
    let spawned = spawner.join().unwrap();
    assert!(
        !registry_contains(done),
        "a completed task stayed registered"
    );
    assert!(registry_contains(long) && registry_contains(new));
    assert_eq!(sched.alive(), 2, "the completed task was not freed");

    // Finish the others: open their gates and run them (`new` is still queued).
    long_probe.open();
    new_probe.open();
    long_probe.take_waker().unwrap().wake();
    run_out(&sched, (long_lived, spawned));
}

/// 3(c) A walk across growth (the registry's rules 1, 5): shard 0 holds built-in task 12 at
/// position 0 and 16 at position 1. Another thread spawns task 20 there, which grows the
/// slab (the vector may reallocate: every entry keeps its index, so built-in inserts bump
/// nothing). Meanwhile a snapshot walks the shards one position per hold: 12 and 16 are
/// listed exactly once.
#[test]
fn walk_across_growth() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probes = [Probe::new(), Probe::new(), Probe::new()];
        let first = sched.spawn(12, Gate::new(&probes[0], 0));
        let second = sched.spawn(16, Gate::new(&probes[1], 0));

        let spawner = {
            let (sched, probe) = (sched.clone(), probes[2].clone());
            thread::spawn(move || sched.spawn(20, Gate::new(&probe, 0)))
        };

        let snapshot = all_tasks_of(sched.loop_id());
        assert_no_duplicates(&snapshot);
        assert_listed(&snapshot, &[12, 16]);
        assert!(ids(&snapshot).iter().all(|id| matches!(id, 12 | 16 | 20)));
        drop(snapshot);

        let third = spawner.join().unwrap();
        for p in &probes {
            p.open();
        }
        run_out(&sched, (first, second, third));
    });
}

/// Registers third-party tasks `stays` and `moves`, then starts a thread that unregisters
/// `moves` and registers it again (the shape of 3(d) and 3(g)).
fn stay_and_reregister(
    stays: TaskRef,
    moves: TaskRef,
) -> (TaskRef, TaskRef, thread::JoinHandle<()>) {
    for t in [&stays, &moves] {
        register_task(t);
    }
    let mover = {
        let moves = moves.clone();
        thread::spawn(move || {
            unregister_task(&moves);
            register_task(&moves);
        })
    };
    (stays, moves, mover)
}

/// 3(d) A third-party task unregistered and registered again during a walk (rules 4, 5):
/// map shard 1 holds tasks 17 and 13. One thread unregisters 13 and registers it again;
/// another registers task 21 into the same shard. Both land before, between or after the
/// walk's holds (the slab shards' positions, then map shard 0, then map shard 1). Task 17
/// is listed once and 13 at most once: the walk reads shard 1 in one hold.
#[test]
fn walk_across_reinsert() {
    loom::model(|| {
        let lp = LoopId::new();
        let lands = foreign(21, lp);
        let (stays, moves, mover) = stay_and_reregister(foreign(17, lp), foreign(13, lp));
        let lander = {
            let lands = lands.clone();
            thread::spawn(move || register_task(&lands))
        };

        let snapshot = all_tasks_of(lp);
        assert_no_duplicates(&snapshot);
        assert!(
            snapshot.contains(&stays),
            "task 17, present throughout, not listed: {:?}",
            ids(&snapshot)
        );
        assert!(ids(&snapshot).iter().all(|id| matches!(id, 13 | 17 | 21)));

        mover.join().unwrap();
        lander.join().unwrap();
        let mut after = ids(&all_tasks_of(lp));
        after.sort_unstable();
        assert_eq!(after, [13, 17, 21]);
        for t in [&stays, &moves, &lands] {
            unregister_task(t);
        }
        assert!(registry_snapshot().is_empty());
    });
}

/// 3(e) The other direction of the contract, with a third-party insert into the same map
/// shard under the walk: a task whose removal happened before the snapshot started is not
/// listed (the walk reads every entry under the shard's lock), and one registered
/// throughout still is.
#[test]
fn removed_before_snapshot_not_listed() {
    loom::model(|| {
        let lp = LoopId::new();
        let (a, gone) = (foreign(10, lp), foreign(12, lp)); // shard 0
        let grows = foreign(14, lp);
        for t in [&a, &gone] {
            register_task(t);
        }
        let removed = Arc::new(AtomicBool::new(false));

        let remover = {
            let (gone, removed) = (gone.clone(), removed.clone());
            thread::spawn(move || {
                unregister_task(&gone);
                removed.store(true, SeqCst);
            })
        };
        let grower = {
            let grows = grows.clone();
            thread::spawn(move || register_task(&grows))
        };

        let removed_before = removed.load(SeqCst);
        let snapshot = all_tasks_of(lp);
        assert_no_duplicates(&snapshot);
        assert!(snapshot.contains(&a), "{:?}", ids(&snapshot));
        if removed_before {
            assert!(
                !snapshot.contains(&gone),
                "a task removed before the snapshot was listed: {:?}",
                ids(&snapshot)
            );
        }

        remover.join().unwrap();
        grower.join().unwrap();
        for t in [&a, &grows] {
            unregister_task(t);
        }
        assert!(registry_snapshot().is_empty());
    });
}

/// 3(f) Position reuse under a walk (issue 9, item 6; the registry's rules 1, 5, 6): shard 0
/// holds built-in tasks 2 (long-lived, position 0) and 4 (position 1, queued to finish). One
/// thread completes 4, emptying position 1 and clearing the position in 4's header; another
/// spawns 6 into the same shard, which takes position 1 if 4 left first (else position 2)
/// and records it in 6's header. A snapshot walks meanwhile. Task 2 is listed exactly once,
/// nothing twice; afterwards 6's completion finds its own entry through its header (whatever
/// position it got) and the registry ends empty, with every task freed.
#[test]
fn position_reuse_under_walk() {
    loom::model(|| {
        complete_and_spawn_during_walk([2, 4, 6], |_| {
            let snapshot = registry_snapshot();
            assert_no_duplicates(&snapshot);
            assert!(
                ids(&snapshot).contains(&2),
                "task 2, present throughout, not listed: {:?}",
                ids(&snapshot)
            );
            assert!(ids(&snapshot).iter().all(|id| matches!(id, 2 | 4 | 6)));
        });
    });
}

/// 3(g) Both parts of the registry in one walk (rules 2, 4, 5): built-in tasks 2
/// (long-lived), 4 (completing) and 6 (being spawned) in slab shard 0, while third-party
/// task 11 is unregistered and registered again in map shard 1, where task 13 stays
/// registered after it. The snapshot lists 2 and 13 exactly once, 11 at most once, and
/// nothing else.
#[test]
fn builtin_and_third_party_in_one_walk() {
    loom::model(|| {
        complete_and_spawn_during_walk([2, 4, 6], |sched| {
            let lp = sched.loop_id();
            let (stays, moves, mover) = stay_and_reregister(foreign(13, lp), foreign(11, lp));

            let snapshot = all_tasks_of(lp);
            assert_no_duplicates(&snapshot);
            assert_listed(&snapshot, &[2, 13]);
            assert!(ids(&snapshot)
                .iter()
                .all(|id| matches!(id, 2 | 4 | 6 | 11 | 13)));
            drop(snapshot);

            mover.join().unwrap();
            assert!(registry_contains(11));
            for t in [&stays, &moves] {
                unregister_task(t);
            }
        });
    });
}

/// 3(h) A walk that meets a busy shard (the registry's rules 3, 7): slab shard 0 holds
/// built-in tasks 2 (position 0, about to finish) and 4 (position 1, long-lived), shard 1
/// holds task 3 (long-lived). Another thread completes 2 while a snapshot walks, one
/// position per hold: the walk may find shard 0 locked by that completion, and then passes
/// over it, walks shard 1 and comes back for the rest of shard 0. Tasks 4 and 3, present
/// throughout, are listed exactly once, and 2 at most once. (A walk that gave up on a busy
/// shard, or started it again from position 0, fails here.)
#[test]
fn walk_passes_over_busy_shard() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (finishing, finish) = spawn_pending(&sched, 2, 0);
        let (probe4, long4) = spawn_pending(&sched, 4, 0);
        let (probe3, long3) = spawn_pending(&sched, 3, 0);
        finishing.open();
        finishing.take_waker().unwrap().wake(); // queued, ready to finish
        drop(finish);

        let completer = {
            let sched = sched.clone();
            thread::spawn(move || assert!(sched.run_one()))
        };

        let snapshot = registry_snapshot();
        assert_no_duplicates(&snapshot);
        assert_listed(&snapshot, &[4, 3]);
        assert!(ids(&snapshot).iter().all(|id| (2..=4).contains(id)));
        drop(snapshot);

        completer.join().unwrap();
        assert!(!registry_contains(2), "a completed task stayed registered");
        for p in [&probe4, &probe3] {
            p.open();
            p.take_waker().unwrap().wake();
        }
        run_out(&sched, (long4, long3));
    });
}
