//! A tour of aioloop: a work-stealing runtime whose tasks can be listed and inspected the
//! way asyncio's can.
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! What it shows, in order:
//!
//! 1. A [`Runtime`] with 2 worker threads, each running its own asyncio-shaped loop.
//! 2. A "spawner" task that creates a few thousand *named* tasks (`job-0`, `job-1`, …) with
//!    [`task::Builder`] — asyncio's `create_task(coro, name=...)`. They land on the
//!    spawner's worker, and the other worker steals its share.
//! 3. Every third job waits on a one-shot channel, so it stays pending until released; the
//!    others do a little CPU work and finish.
//! 4. A listing from [`aioloop::all_tasks`] (id, name, state): only unfinished tasks are
//!    listed (rule L7), including the main task that stands for the `block_on` future.
//! 5. [`aioloop::current_task`] seen from inside a task and from the `block_on` future.
//! 6. The held jobs released and awaited, then each worker's counters from
//!    [`Runtime::worker_stats`]: polls run, tasks stolen from the peer, times parked.
//! 7. Timers on the runtime: tasks that [`aioloop::sleep`] concurrently, an
//!    [`aioloop::interval`], and a `call_later` callback on the runtime's [`Handle`].
//! 8. A [`LocalLoop`] on the main thread: a `!Send` task sharing an `Rc<RefCell<…>>` with a
//!    `call_soon` callback and a `call_later` timer, run with `run_until_complete`.
//! 9. asyncio's task semantics: a cancellation caught with [`aioloop::catch_cancel`],
//!    cleaned up after with an `.await`, then re-raised — and another one suppressed with
//!    `uncancel()`; a [`aioloop::TaskGroup`] whose failing child cancels its siblings and
//!    comes back as one error; [`aioloop::timeout`] turning its own cancellation into a
//!    `TimeoutError`; [`aioloop::gather`] with `return_exceptions`; a context
//!    variable that follows each request's tasks; done callbacks.
//! 10. asyncio's synchronization primitives across both workers: a
//!     [`Semaphore`](aioloop::sync::Semaphore) bounding how many jobs run at once, one of
//!     which is cancelled while it waits, and a [`Lock`](aioloop::sync::Lock) guarding a
//!     shared log.
//! 11. asyncio's queues ([`aioloop::queue`]): a blocking thread that runs no loop feeds
//!     worker tasks through `put_nowait`; `join` waits for every `task_done`; a getter
//!     cancelled just after it was woken leaves its item for the next; `shutdown`.
//! 12. A socket round trip: a [`aioloop::net::TcpListener`] accepting in one task, a
//!     [`aioloop::net::TcpStream`] client in another, each read and write trying the
//!     system call first and waiting on its worker's poller only on `EWOULDBLOCK`; then
//!     the same through asyncio's streams (`start_server`, `open_connection`,
//!     `readline`).
//!
//! It exits by itself in well under a second. To look into a running program — call
//! graphs, the task dump, metrics, slow-poll warnings — see `examples/inspect.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aioloop::contextvars::ContextVar;
use aioloop::{catch_cancel, task, Handle, LocalLoop, Runtime, Task, TaskGroup, TaskRef};
use futures_channel::oneshot;

/// How many named jobs the spawner creates.
const JOBS: u64 = 3_000;
/// Every `HOLD_EVERY`-th job waits to be released.
const HOLD_EVERY: u64 = 3;
/// Rows of the `all_tasks()` listing to print.
const ROWS: usize = 8;

/// What one job reports: its result and the worker thread that finished it.
struct Done {
    value: u64,
    thread: String,
}

/// A few microseconds of CPU work, so that one worker cannot drain the queue alone and the
/// other has something to steal.
fn work(seed: u64) {
    let mut x = seed | 1;
    for _ in 0..2_000 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    std::hint::black_box(x);
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

fn state(t: &TaskRef) -> &'static str {
    if t.done() {
        "finished"
    } else {
        "pending"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (7) Timers on the runtime: sleeping tasks, an interval, a `call_later` callback.
/// (10) A TCP round trip through the per-worker pollers.
fn sockets(rt: &Runtime) {
    println!();
    println!("-- a socket round trip");
    rt.block_on(async {
        let listener = aioloop::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let server = task::Builder::new().name("echo").spawn(async move {
            let (conn, peer) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).await.expect("read");
            conn.write_all(&buf[..n]).await.expect("write");
            format!("served {peer} on {}", thread_name())
        });
        let client = aioloop::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        let t0 = Instant::now();
        client.write_all(b"hello, loop").await.expect("write");
        let mut back = [0u8; 11];
        client.read_exact(&mut back).await.expect("read");
        println!(
            "  {addr}: sent \"hello, loop\", got {:?} back in {:.0} µs",
            String::from_utf8_lossy(&back),
            t0.elapsed().as_secs_f64() * 1e6
        );
        println!("  {}", server.await.expect("echo task"));

        // The same through asyncio's streams: start_server / open_connection, a line
        // echoed by `readline` + `write` + `drain`.
        let server = aioloop::net::streams::start_server(
            |r, w| async move {
                if let Ok(line) = r.readline().await {
                    let _ = w.write(&line);
                    let _ = w.drain().await;
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .expect("start_server");
        let port = server.local_addrs()[0].as_socket().expect("inet").port();
        let (r, w) = aioloop::net::streams::open_connection("127.0.0.1", port)
            .await
            .expect("open_connection");
        w.write(b"hello, streams\n").expect("write");
        let line = r.readline().await.expect("readline");
        println!(
            "  streams: readline() -> {:?}",
            String::from_utf8_lossy(&line)
        );
        w.close();
        server.close();
        server.wait_closed().await;
    });
}

fn timers(rt: &Runtime) {
    println!();
    println!("-- timers on the runtime");
    rt.block_on(async {
        let t0 = Instant::now();
        // call_later on the runtime's handle: the callback runs on some worker.
        let (tx, fired) = oneshot::channel();
        Handle::current()
            .call_later(0.05, move || {
                let _ = tx.send((t0.elapsed(), thread_name()));
            })
            .expect("a finite delay");
        // Three tasks sleep concurrently; they wake in deadline order, not spawn order.
        let woke = Arc::new(Mutex::new(Vec::new()));
        let sleepers: Vec<_> = [30, 10, 20]
            .into_iter()
            .map(|n| {
                let woke = woke.clone();
                task::Builder::new()
                    .name(format!("sleep-{n}ms"))
                    .spawn(async move {
                        aioloop::sleep(Duration::from_millis(n)).await;
                        let me = aioloop::current_task().expect("in a task").name();
                        woke.lock()
                            .unwrap()
                            .push(format!("{me} at {:.1} ms", ms(t0.elapsed())));
                    })
            })
            .collect();
        // An interval in the block_on future itself: the first tick is immediate.
        let mut every = aioloop::interval(Duration::from_millis(10));
        let mut ticks = Vec::new();
        for _ in 0..4 {
            every.tick().await;
            ticks.push(format!("{:.1}", ms(t0.elapsed())));
        }
        for s in sleepers {
            s.await.expect("sleeper");
        }
        println!("  3 tasks sleep() 30, 10 and 20 ms; they wake in deadline order:");
        println!("    {}", woke.lock().unwrap().join(", "));
        println!("  interval(10 ms) ticked at [{}] ms", ticks.join(", "));
        let (after, thread) = fired.await.expect("call_later fired");
        println!(
            "  handle.call_later(0.05, f): f ran after {:.1} ms on {thread}",
            ms(after)
        );
    });
}

/// The request a task works for: a context variable (asyncio's `contextvars`).
static REQUEST: ContextVar<u32> = ContextVar::new("request");

/// (9) Catchable cancellation, task groups, gather, context variables, done callbacks.
fn task_semantics(rt: &Runtime) {
    println!();
    println!("-- asyncio task semantics");
    // The panics below are the point of the demo (they come back as values): keep the
    // default panic hook from printing them.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    rt.block_on(async {
        // A cancellation caught, cleaned up after with an await, and re-raised.
        let (started_tx, started) = oneshot::channel::<()>();
        let worker = task::Builder::new().name("flusher").spawn(async move {
            let _ = started_tx.send(());
            match catch_cancel(std::future::pending::<()>()).await {
                Ok(()) => unreachable!("never completes"),
                Err(cancelled) => {
                    let flushed = aioloop::create_task(async { 3 }).await.unwrap_or(0);
                    println!("  catch_cancel: 'flusher' caught {cancelled},");
                    println!("    awaited a clean-up task (flushed {flushed} buffers), re-raises");
                    cancelled.reraise().await;
                }
            }
        });
        let _ = started.await;
        worker.cancel(Some("shutting down"));
        let ended = worker.await;
        println!("  re-raise: so 'flusher' ended {}", ended.unwrap_err());

        // One suppressed with uncancel(): the task finishes normally.
        let (started_tx, started) = oneshot::channel::<()>();
        let stubborn = aioloop::create_task(async move {
            let _ = started_tx.send(());
            if catch_cancel(std::future::pending::<()>()).await.is_err() {
                let me = aioloop::current_task().expect("inside a task");
                me.uncancel(); // asyncio asks this of code that suppresses a cancellation
            }
            "kept going"
        });
        let _ = started.await;
        stubborn.cancel(None);
        println!(
            "  uncancel: a task that catches it and calls uncancel() goes on: {:?}",
            stubborn.await
        );

        // A task group: the first failing child cancels its siblings; failures come back
        // together.
        let (parked_tx, parked_rx) = std::sync::mpsc::channel();
        let group = aioloop::create_task(async move {
            TaskGroup::new()
                .run(|tg| async move {
                    for i in 0..3 {
                        let parked = parked_tx.clone();
                        tg.create_task_named(format!("sibling-{i}"), async move {
                            let _ = parked.send(());
                            aioloop::sleep(Duration::from_secs(60)).await;
                        })?;
                    }
                    tg.create_task_named("bad-child", async {
                        aioloop::sleep(Duration::from_millis(2)).await;
                        panic!("bad input");
                    })?;
                    Ok::<_, aioloop::TaskGroupError>("body done")
                })
                .await
        });
        let outcome = group.await.expect("the parent task ends normally");
        let parked = parked_rx.try_iter().count();
        match outcome {
            Err(e) => {
                println!("  TaskGroup: {e}; its {parked} sleeping siblings were cancelled");
                for f in e.failures().unwrap_or_default() {
                    println!("    - {f}");
                }
            }
            Ok(v) => println!("  TaskGroup: unexpectedly {v}"),
        }

        // A timeout: it cancels the task at the deadline, catches its own cancellation and
        // turns it into TimeoutError; the task's cancelling() is back where it was.
        let timed = aioloop::create_task(async {
            let started = Instant::now();
            let r = aioloop::timeout(
                Duration::from_millis(5),
                aioloop::sleep(Duration::from_secs(60)),
            )
            .await;
            let me = aioloop::current_task().expect("inside a task");
            (r, started.elapsed(), me.cancelling())
        });
        let (r, took, cancelling) = timed.await.expect("the task itself is not cancelled");
        println!(
            "  timeout(5 ms, sleep(60 s)) -> {:?} after {:.1} ms; cancelling() = {cancelling}",
            r.map(|_| ()),
            ms(took)
        );

        // gather with return_exceptions: every outcome, in argument order.
        let outcomes = aioloop::gather((0..4u32).map(|i| async move {
            aioloop::yield_now().await;
            if i == 2 {
                panic!("job {i} failed");
            }
            i * 10
        }))
        .return_exceptions()
        .await;
        let shown: Vec<String> = outcomes
            .iter()
            .map(|r| match r {
                Ok(v) => v.to_string(),
                Err(e) => format!("Err({e})"),
            })
            .collect();
        println!("  gather(.., return_exceptions): [{}]", shown.join(", "));

        // A context variable follows each request's tasks; done callbacks run in the
        // context captured when they were added.
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let mut handlers = Vec::new();
        for request in [7, 8] {
            REQUEST.set(request);
            let handler = aioloop::create_task(async {
                aioloop::yield_now().await;
                let sub = aioloop::create_task(async { REQUEST.get() }).await;
                (REQUEST.get(), sub.unwrap_or(None))
            });
            let tx = tx.lock().unwrap().clone();
            handler.add_done_callback(Arc::new(move |t: &TaskRef| {
                let _ = tx.send(format!("{} done, in request {:?}", t.name(), REQUEST.get()));
            }));
            handlers.push(handler);
        }
        for h in handlers {
            let (own, sub) = h.await.expect("handler");
            println!("  handler saw request {own:?}, its sub-task saw {sub:?}");
        }
        for line in rx.iter().take(2) {
            println!("  done callback: {line}");
        }
    });
    std::panic::set_hook(hook);
}

/// (10) A Semaphore bounding concurrency on both workers, a Lock around a shared log, and a
/// waiter cancelled in the queue (it never takes a permit).
fn sync_primitives(rt: &Runtime) {
    use aioloop::sync::{Lock, Semaphore};
    use std::sync::atomic::{AtomicUsize, Ordering};
    println!();
    println!("-- aioloop::sync: Semaphore(3) over 12 jobs on 2 workers, a Lock around a log");
    let sem = Arc::new(Semaphore::new(3));
    let lock = Arc::new(Lock::new());
    let log = Arc::new(Mutex::new(Vec::new())); // written only with `lock` held
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    rt.block_on(async {
        let jobs: Vec<Task<()>> = (0..12)
            .map(|i| {
                let (sem, lock, log) = (sem.clone(), lock.clone(), log.clone());
                let (running, peak) = (running.clone(), peak.clone());
                aioloop::create_task(async move {
                    let _permit = sem.acquire().await; // `async with sem:`
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    aioloop::sleep(Duration::from_millis(1)).await;
                    {
                        let _held = lock.acquire().await; // `async with lock:`
                        log.lock()
                            .unwrap()
                            .push(format!("job {i} on {}", thread_name()));
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        aioloop::yield_now().await;
        // Most likely still queued for a permit: it leaves the queue, taking nothing.
        jobs[11].cancel(Some("not needed"));
        for job in jobs {
            let _ = job.await;
        }
    });
    println!(
        "  {} of 12 jobs logged under the lock (job 11 was cancelled), at most {} at once",
        log.lock().unwrap().len(),
        peak.load(Ordering::SeqCst)
    );
    println!(
        "  after: sem.value() = {}, lock.locked() = {}",
        sem.value(),
        lock.locked()
    );
}

/// (8) A `LocalLoop` on this thread: `!Send` state shared by a task and callbacks.
fn local_loop() -> Result<(), Box<dyn std::error::Error>> {
    println!();
    println!("-- a LocalLoop on the main thread");
    let lp = LocalLoop::new()?;
    let log = Rc::new(RefCell::new(Vec::<String>::new())); // !Send: fine on a LocalLoop
    let l = log.clone();
    lp.call_later(0.002, move || {
        l.borrow_mut().push("call_later(0.002) fired".into())
    })?;
    let l = log.clone();
    let task = lp.create_task_named("local", async move {
        let me = aioloop::current_task().expect("in a task").name();
        l.borrow_mut()
            .push(format!("task '{me}' starts, sleeps 5 ms"));
        aioloop::sleep(Duration::from_millis(5)).await;
        l.borrow_mut().push(format!("task '{me}' wakes"));
        l.borrow().len()
    })?;
    let l = log.clone();
    lp.call_soon(move || l.borrow_mut().push("call_soon callback".into()))?;
    println!("  before running: lp.all_tasks() = {:?}", lp.all_tasks());
    let n = lp.run_until_complete(task)??;
    for (i, line) in log.borrow().iter().enumerate() {
        println!("  {}. {line}", i + 1);
    }
    lp.close()?;
    println!("  the task saw {n} log lines; closed={}", lp.is_closed());
    Ok(())
}

/// (10) Queues: a plain thread feeding tasks, `join`/`task_done`, a cancelled getter that
/// loses nothing, `shutdown`.
fn queues(rt: &Runtime) {
    use aioloop::queue::{PriorityQueue, PutNowaitError, Queue};
    println!();
    println!("-- queues (asyncio.Queue, thread-safe)");
    let q = Arc::new(Queue::new(8));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let q = q.clone();
            rt.spawn(async move {
                let mut handled = 0;
                while let Ok(job) = q.get().await {
                    work(job);
                    handled += 1;
                    q.task_done().expect("one task_done per get");
                }
                (w, handled) // get() failed: the queue was shut down and is empty
            })
        })
        .collect();
    let feeder = {
        let q = q.clone();
        std::thread::spawn(move || {
            for job in 0..200u64 {
                let mut job = job;
                while let Err(PutNowaitError::Full(full)) = q.put_nowait(job) {
                    job = full.into_inner(); // 8 queued: let the workers catch up
                    std::thread::yield_now();
                }
            }
        })
    };
    feeder.join().expect("feeder");
    rt.block_on(q.join()); // every job taken and marked done
    println!("  a thread with no loop put 200 jobs with put_nowait; join() returned");
    q.shutdown(false);
    for w in workers {
        let (w, n) = rt.block_on(w).expect("worker");
        println!("  worker {w} handled {n:>3} jobs, then get() said QueueShutDown");
    }

    let (first, kept) = rt
        .block_on(rt.spawn(async {
            let q = Arc::new(PriorityQueue::new(0));
            let getter = aioloop::create_task({
                let q = q.clone();
                async move { q.get().await }
            });
            aioloop::yield_now().await; // the getter waits
            q.put_nowait((2, "low")).unwrap(); // wakes the getter ...
            q.put_nowait((1, "urgent")).unwrap();
            getter.cancel(None); // ... which is cancelled before it runs
            let cancelled = getter.await.unwrap_err().is_cancelled();
            (cancelled, [q.get().await.unwrap(), q.get().await.unwrap()])
        }))
        .expect("priority demo");
    println!("  a getter woken then cancelled (cancelled={first}) took nothing: {kept:?}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let rt = Runtime::builder().workers(2).build()?;
    println!(
        "== aioloop tour: a runtime with {} workers",
        rt.num_workers()
    );
    println!("   (each worker thread runs its own event loop; an idle one steals tasks)");

    let (finished_by, total) = rt.block_on(async {
        // (2) + (3): a task on a worker spawns the jobs into that worker's run queue.
        let spawner = task::Builder::new().name("spawner").spawn(async {
            let mut held = Vec::new();
            let mut quick = Vec::new();
            let mut releases = Vec::new();
            for i in 0..JOBS {
                let name = format!("job-{i}");
                if i % HOLD_EVERY == 0 {
                    let (tx, rx) = oneshot::channel::<u64>();
                    releases.push(tx);
                    held.push(task::Builder::new().name(name).spawn(async move {
                        let extra = rx.await.unwrap_or(0);
                        Done {
                            value: i + extra,
                            thread: thread_name(),
                        }
                    }));
                } else {
                    quick.push(task::Builder::new().name(name).spawn(async move {
                        aioloop::yield_now().await;
                        work(i);
                        Done {
                            value: i,
                            thread: thread_name(),
                        }
                    }));
                }
            }
            (held, quick, releases)
        });
        let (held, quick, releases) = spawner.await.expect("spawner task failed");
        println!(
            "spawned {JOBS} named jobs: {} wait for a release, {} do a little work and finish",
            held.len(),
            quick.len()
        );

        let mut finished_by: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        let one_quick = quick[0].task_ref();
        for t in quick {
            let d = t.await.expect("job failed");
            total += d.value;
            *finished_by.entry(d.thread).or_default() += 1;
        }

        // (4) The listing: unfinished tasks only.
        let mut listing = aioloop::all_tasks();
        listing.sort_by_key(TaskRef::id);
        println!();
        println!(
            "-- all_tasks(): {} unfinished (first {ROWS} by id)",
            listing.len()
        );
        println!("  {:>6}  {:<10}  state", "id", "name");
        for t in listing.iter().take(ROWS) {
            println!("  {:>6}  {:<10}  {}", t.id(), t.name(), state(t));
        }
        let jobs = listing
            .iter()
            .filter(|t| t.name().starts_with("job-"))
            .count();
        println!(
            "  ... {} more: {jobs} held jobs + {} main task",
            listing.len().saturating_sub(ROWS),
            listing.len() - jobs
        );
        println!("  (the main task, Task-1, is the future given to block_on, seen as a task)");
        println!(
            "  a finished job is not listed: {one_quick} listed={}",
            listing.contains(&one_quick)
        );

        // (5) current_task() inside a task, and in the block_on future itself.
        let inspector: Task<String> = task::Builder::new().name("inspector").spawn(async {
            let me = aioloop::current_task().expect("inside a task");
            format!("{me} on thread {}", thread_name())
        });
        println!();
        println!("-- current_task()");
        println!("  inside a task:  {}", inspector.await.expect("inspector"));
        let main = aioloop::current_task().expect("block_on has a main task");
        println!(
            "  in block_on:    {main} on thread {} (the main task)",
            thread_name()
        );

        // (6) Release the held jobs and await them all.
        let n = releases.len();
        for tx in releases {
            let _ = tx.send(1_000_000);
        }
        for t in held {
            let d = t.await.expect("held job failed");
            total += d.value;
            *finished_by.entry(d.thread).or_default() += 1;
        }
        println!();
        println!(
            "-- released {n} held jobs; all_tasks() now lists {} task(s): {:?}",
            aioloop::all_tasks().len(),
            aioloop::all_tasks()
        );
        (finished_by, total)
    });

    let expected: u64 = (0..JOBS).sum::<u64>() + JOBS.div_ceil(HOLD_EVERY) * 1_000_000;
    assert_eq!(total, expected, "every job ran exactly once");
    println!("   all {JOBS} jobs joined; checksum {total} ok");

    println!();
    println!("-- jobs finished per worker thread");
    for (thread, n) in &finished_by {
        println!("  {thread:<18} {n:>5}");
    }
    println!("-- rt.worker_stats()");
    println!("  polled: task polls the worker ran; stolen: tasks it took from the other's");
    println!("  queue; parked: times it went to sleep in its poller");
    println!(
        "  {:>6}  {:>8}  {:>8}  {:>8}",
        "worker", "polled", "stolen", "parked"
    );
    for w in rt.worker_stats() {
        println!(
            "  {:>6}  {:>8}  {:>8}  {:>8}",
            w.index, w.polled, w.stolen, w.parked
        );
    }
    timers(&rt);
    task_semantics(&rt);
    sync_primitives(&rt);
    queues(&rt);
    sockets(&rt);
    drop(rt);
    local_loop()?;
    println!();
    println!("A guide to LocalLoop, TaskGroup and timeouts: cargo doc --no-deps --open.");
    println!(
        "== done in {:.1} ms; the code behind each section is examples/tour.rs",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
