//! Model 2 (issue 2, item 7; split in issue 8, item 5): the park/notify handshake
//! (`runtime/idle.rs`, "the parking protocol"; `Shared::schedule_remote`,
//! `Shared::add_remote_timer`, `Shared::notify_parked`, `Shared::park_worker`, and the
//! worker's search in `runtime/worker.rs`).
//!
//! The workers are the real worker loop (`runtime::worker::run`) run on loom threads, with
//! the loom double of the parker (`runtime/park.rs`: a sticky flag under a mutex and
//! condvar) and of the queues (`runtime/queue.rs`). Each model isolates one race of the
//! protocol and keeps everything else out of it: work is a plain callback (`call_soon`,
//! `call_at`: the same `Runnable` path as a woken task, without the task machinery) where
//! the task machinery is not the point, and the work itself ends the runtime (it sets the
//! shutdown flag), so that the workers' loops stop as soon as the race is decided instead of
//! cycling through more searches. A lost wake-up leaves every worker parked and the model's
//! thread waiting for them: loom reports a deadlock. Every model ends with the rest of the
//! runtime's shutdown order (join the workers, cancel and drain) and checks that nothing is
//! left queued; a task allocation that is never freed keeps the runtime's shared state alive
//! through its scheduler handle, and with it the loom `Arc`s of the queues: loom fails the
//! model with "Arc leaked".
//!
//! All of them run at the preemption bound the environment sets (`.ci/test`: 3).

mod common;

use aioloop::loom_internals::TestRuntime;
use aioloop::Handle;
use common::{join_and_finish, model_spawning, start_workers};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};

/// 2(a) One worker: a task pushed from outside (`Shared::schedule_remote`: injector push,
/// `SeqCst` fence, `worker_to_notify`) racing the worker going to sleep (`park_worker`:
/// announce, fence, re-check the queues, park). Either the worker's re-check sees the task
/// or the pusher sees the worker parked and unparks it; the task runs either way, and its
/// join handle (awaited with loom's `block_on`) is woken.
#[test]
fn remote_push_races_worker_parking() {
    model_spawning(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let task = rt.handle().spawn(async { 7u32 });
        assert_eq!(loom::future::block_on(task).unwrap(), 7);

        rt.begin_shutdown();
        join_and_finish(&rt, workers);
    });
}

/// 2(b) One worker: a timer registered from a thread that runs no iteration
/// (`Shared::add_remote_timer`: inbox push, `has_remote_timers` flag, `SeqCst` fence,
/// `worker_to_notify`) racing the worker going to sleep. The parking re-check looks at the
/// flag (`has_work_for_parker`), so either the worker sees the timer or the registrar sees
/// the worker parked. The timer is already due (`call_at` in the past), and it ends the
/// runtime: the worker's loop returns only if the timer fired.
#[test]
fn remote_timer_races_worker_parking() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let ender = rt.clone();
        rt.handle()
            .call_at(-1.0, move || ender.begin_shutdown())
            .unwrap();

        join_and_finish(&rt, workers);
    });
}

/// 2(c) Two workers, both idle, and a callback pushed from outside: the workers race each
/// other through searching (`transition_worker_to_searching`: at most half search) and
/// parking while the pusher decides whom to wake. Rule 1 says a pusher that sees a searcher
/// wakes nobody, so the searcher must find the callback or, parking as the last searcher,
/// see it on its re-check. The callback ends the runtime, so the model ends only if it ran.
///
/// Checked by mutation (issue 2): without `park_worker`'s re-check, or without the fence
/// in `schedule_remote`, this model deadlocks.
#[test]
fn remote_push_races_two_idle_workers() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(2));
        let workers = start_workers(&rt, 2);

        let ender = rt.clone();
        rt.handle().call_soon(move || ender.begin_shutdown());

        join_and_finish(&rt, workers);
    });
}

/// 2(d) A push to a worker's *local* queue (`call_soon` on a worker: local push, then
/// `notify_parked`) must reach an idle peer. The parent callback, queued before the workers
/// start, schedules a child on its own worker and then keeps that worker busy until the
/// child has run, so only the other worker can run the child: that worker is searching its
/// peers or going to sleep at that moment, and must be woken (or see the child on its
/// re-check) and steal it. The child ends the runtime.
#[test]
fn local_push_wakes_idle_peer() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(2));
        let child_ran = new_flag();
        {
            let (h, rt) = (rt.handle(), rt.clone());
            // Before the workers start: the pusher finds every worker unparked and wakes
            // nobody; whichever worker takes the parent is the busy one.
            h.call_soon(move || {
                let signal = child_ran.clone();
                Handle::current().call_soon(move || {
                    raise(&signal);
                    rt.begin_shutdown();
                });
                wait_for(&child_ran);
            });
        }
        let workers = start_workers(&rt, 2);
        join_and_finish(&rt, workers);
    });
}

/// 2(e) The search hand-off (idle.rs rule 3: a searcher that finds work and was the last
/// searcher wakes one more worker if more work is in sight). Both workers may be parked
/// when two callbacks are pushed from outside: the first push wakes one worker and counts
/// it as searching, so the second push wakes nobody (rule 1). Each callback waits until both have started, so the model ends
/// only if the two run at the same time on the two workers: the woken worker, having found
/// the first, must wake the other for the second.
///
/// This model found a bug, now fixed (issue 8, item 5): a worker that took itself off the
/// parked list on its parking re-check (`Shared::park_worker`: `has_work_for_parker` true,
/// `Idle::unpark_worker_by_id` succeeding) came back counted as *not* searching. If it was
/// the last searcher when the work was pushed, the pushers saw a searcher and woke nobody
/// (rule 1); it then took one item as a non-searcher, so `stop_searching` handed nothing on,
/// and the rest waited in the injector while the other worker stayed parked. The failing
/// interleaving (`LOOM_MAX_PREEMPTIONS=2`): worker 0 searches, finds nothing, parks; worker
/// 1 starts searching, finds nothing, enters `transition_worker_to_parked`; the model pushes
/// both callbacks and, seeing worker 1 counted as searching, wakes nobody; worker 1 finishes
/// parking, its re-check sees the injector non-empty, it unparks itself unsearching, steals
/// one callback and runs it; the other stays queued and worker 0 parked: a deadlock. The
/// fix: the re-check's self-unpark counts the worker as searching (runtime/idle.rs).
///
/// Also checked by mutation (rule 3): with `WorkerFlavor::stop_searching` never waking a
/// peer, this model deadlocks (as does 2(f)).
#[test]
fn last_searcher_wakes_a_peer() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(2));
        let workers = start_workers(&rt, 2);

        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        for _ in 0..2 {
            let (h, started, rt) = (rt.handle(), started.clone(), rt.clone());
            h.call_soon(move || {
                let mut n = started.0.lock().unwrap();
                *n += 1;
                if *n == 2 {
                    started.1.notify_one();
                    rt.begin_shutdown();
                }
                while *n < 2 {
                    n = started.1.wait(n).unwrap();
                }
            });
        }

        join_and_finish(&rt, workers);
    });
}

/// 2(f) Rule 3 (idle.rs: the last searcher hands the search on only with work in sight),
/// the injector's side: [`second_must_run_on_the_other_worker`] with a second callback
/// pushed from outside. The race that matters: a worker counted as searching (woken by the
/// first push, or searching on its own) takes the first callback while the second is
/// pushed; the second push sees the searcher and wakes nobody (rule 1). The searcher, now
/// the last one, must see the second callback in its `work_in_sight` check (its
/// `transition_worker_from_searching` and the pusher's push are each followed by a
/// `SeqCst` fence and a read of the other's side) and wake the parked peer; or the push
/// came late enough to see nobody searching and woke the peer itself.
///
/// Checked by mutation: with `WorkerFlavor::stop_searching` never waking a peer (the
/// `work_in_sight` branch emptied), this model deadlocks. It does not check the fence in
/// `work_in_sight`: without it the model still passes, since the injector's indices are
/// `SeqCst` atomics in the loom double (a peer's queue, `Release`/`Acquire`, would need a
/// third worker). About 4 s at `LOOM_MAX_PREEMPTIONS=3` (--release, 2 cores, loaded).
#[test]
fn searcher_hands_on_work_pushed_while_it_searched() {
    second_must_run_on_the_other_worker(|h, second| {
        h.call_soon(second);
    });
}

/// 2(g) Rule 3, a remote timer's side: [`second_must_run_on_the_other_worker`] with the
/// second piece of work a timer registered from outside (`Shared::add_remote_timer`: inbox
/// push, `has_remote_timers` flag, `SeqCst` fence, `worker_to_notify`), already due. A
/// registrar that sees a searcher wakes nobody (rule 1), so the searcher that took the
/// callback must hand the search on for the timer too, or have adopted and fired the timer
/// itself without leaving it stuck behind the callback.
///
/// It found two liveness gaps (now fixed; with neither fix it deadlocks at
/// `LOOM_MAX_PREEMPTIONS=1` already, with either one alone at 3):
///
/// 1. Rule 3 did not look at remote timers (a regression of the in-sight hand-on). Both
///    workers search, find nothing and park (0, then 1); the model pushes the callback,
///    sees nobody searching and wakes worker 1, counted as searching. Worker 1 leaves
///    `park`, its `pull_remote` finds no timer, and in its next iteration `find_work` takes
///    the callback from the injector. Now the model registers the timer, sees worker 1
///    still counted as searching and wakes nobody. Worker 1 stops searching as the last
///    searcher; `work_in_sight` looked at its queue, the injector and worker 0's queue, not
///    at `has_remote_timers`, and handed nothing on. The callback blocks worker 1, the
///    timer stays in the inbox, worker 0 stays parked. Fix: `work_in_sight` reads
///    `has_remote_timers` too (`SeqCst`, after its fence; the registrar's flag store, fence
///    and counter read are rule 2's other side).
/// 2. A timer fired into a worker's queue woke no peer (older than rule 3). As above up to
///    the registration, but the timer is registered between worker 1's two iterations:
///    worker 1's `pull_remote` adopts it, `find_work` takes the callback, and
///    `fire_due_timers` pushes the timer's callback behind it; the callback blocks worker 1
///    and nobody wakes worker 0 to steal the timer's. Fix: `fire_due_timers` calls the
///    flavor's `on_stealable_work` (a `notify_parked`) when what it queued sits behind
///    other work.
#[test]
fn searcher_hands_on_a_remote_timer() {
    second_must_run_on_the_other_worker(|h, second| {
        h.call_at(-1.0, second).unwrap();
    });
}

/// 2(h) A pull that leaves work behind (`runtime/worker.rs`, `pull_injector`: a worker takes
/// its share of the injector, at most `REMOTE_BATCH`, which is two under loom). One worker
/// and three callbacks pushed from outside, racing its search and its parking: when all
/// three are in the injector at a pull, the pull takes two and the third stays behind while
/// the worker has work queued. It must still be taken — by the next iteration's
/// `pull_remote`, or by `find_work` once the queue drains — and not wait behind a park (the
/// worker's parking re-check looks at the injector). The third callback to run ends the
/// runtime, so the model ends only if all three ran.
#[test]
fn pull_leaves_work_in_the_injector() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (h, ran, rt) = (rt.handle(), ran.clone(), rt.clone());
            h.call_soon(move || {
                if ran.fetch_add(1, SeqCst) == 2 {
                    rt.begin_shutdown();
                }
            });
        }

        join_and_finish(&rt, workers);
    });
}

/// A flag one callback waits on and another raises.
type Flag = Arc<(Mutex<bool>, Condvar)>;

fn new_flag() -> Flag {
    Arc::new((Mutex::new(false), Condvar::new()))
}

fn raise(flag: &Flag) {
    *flag.0.lock().unwrap() = true;
    flag.1.notify_one();
}

fn wait_for(flag: &Flag) {
    let mut up = flag.0.lock().unwrap();
    while !*up {
        up = flag.1.wait(up).unwrap();
    }
}

/// Models 2(f) and 2(g): two workers, started idle. A callback pushed from outside blocks
/// its worker until a second piece of work has run, which `push_second` queues from
/// outside right after it (`second` raises the flag and ends the runtime). The model ends
/// only if the second runs on the *other* worker, which must be awake for it.
fn second_must_run_on_the_other_worker(push_second: fn(&Handle, Box<dyn FnOnce() + Send>)) {
    loom::model(move || {
        let rt = Arc::new(TestRuntime::new(2));
        let workers = start_workers(&rt, 2);

        let second_ran = new_flag();
        let signal = second_ran.clone();
        rt.handle().call_soon(move || wait_for(&signal));
        let ender = rt.clone();
        push_second(
            &rt.handle(),
            Box::new(move || {
                raise(&second_ran);
                ender.begin_shutdown();
            }),
        );

        join_and_finish(&rt, workers);
    });
}
