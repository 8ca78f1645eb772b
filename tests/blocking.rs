//! The blocking pool and asyncio's executor API: `to_thread` (CPython's
//! `test_asyncio/test_threads.py`), `run_in_executor` and `shutdown_default_executor`
//! (`test_events.py`), `set_default_executor` with a user's executor, the pool's thread cap,
//! keep-alive and shutdown (blocking rules B1–B7 in `src/blocking/mod.rs`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aioloop::contextvars::ContextVar;
use aioloop::{ExecutorError, LocalLoop, Runtime};

/// Polls `cond` every few milliseconds until it holds; fails the test after a generous
/// minute (a lost wake-up or a thread that never exits, not a slow machine).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A one-worker runtime whose blocking pool has a single thread.
fn one_pool_thread() -> Runtime {
    Runtime::builder()
        .workers(1)
        .max_blocking_threads(1)
        .build()
        .unwrap()
}

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// CPython `test_threads.ToThreadTests.test_to_thread`: the value comes back, computed on
/// a thread that is not the loop's.
#[test]
fn test_to_thread() {
    let rt = rt(1);
    let (sum, on) = rt
        .block_on(async {
            aioloop::to_thread(|| ([40, 2].iter().sum::<i32>(), std::thread::current().id())).await
        })
        .unwrap();
    assert_eq!(sum, 42);
    assert_ne!(on, std::thread::current().id());
    let name = rt
        .block_on(aioloop::to_thread(|| {
            std::thread::current().name().map(str::to_owned)
        }))
        .unwrap();
    assert!(name.unwrap().starts_with("aioloop-worker-blocking-"));
    // The future is `Send`: a task of its own can await it on any worker.
    let spawned = rt.block_on(rt.spawn(aioloop::to_thread(|| 7))).unwrap();
    assert_eq!(spawned.unwrap(), 7);
}

/// CPython `test_to_thread_exception`: the closure's panic is the awaiter's error, and the
/// pool thread survives it (rule B6): with one thread, the next job still runs.
#[test]
fn test_to_thread_exception() {
    let rt = one_pool_thread();
    let err = rt
        .block_on(aioloop::to_thread(|| -> u8 { panic!("test") }))
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "the blocking function panicked: test");
    let ExecutorError::Panicked(p) = err else {
        unreachable!()
    };
    assert_eq!(p.message(), Some("test"));
    assert_eq!(rt.block_on(aioloop::to_thread(|| 5)).unwrap(), 5);
    assert_eq!(rt.handle().metrics().blocking.threads, 1);
}

/// CPython `test_to_thread_once` and `test_to_thread_concurrent`: ten calls, each run
/// exactly once.
#[test]
fn test_to_thread_concurrent() {
    let rt = rt(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    rt.block_on(async move {
        let futs: Vec<_> = (0..10)
            .map(|_| {
                let c = c.clone();
                aioloop::to_thread(move || c.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        for f in futs {
            f.await.unwrap();
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

/// CPython `test_to_thread_contextvars`: the caller's context is copied to the pool
/// thread; a set there does not leak back (it ran in the copy).
#[test]
fn test_to_thread_contextvars() {
    static TEST_CTX: ContextVar<&'static str> = ContextVar::new("test_ctx");
    let rt = rt(1);
    let (seen, after) = rt.block_on(async {
        TEST_CTX.set("parrot");
        let seen = aioloop::to_thread(|| {
            let seen = TEST_CTX.get();
            TEST_CTX.set("changed in the thread");
            seen
        })
        .await
        .unwrap();
        (seen, TEST_CTX.get())
    });
    assert_eq!(seen, Some("parrot"));
    assert_eq!(after, Some("parrot"));
}

/// The same on a `LocalLoop`, whose pool is its own (one implementation, rule B1–B6).
#[test]
fn test_to_thread_on_local_loop() {
    static V: ContextVar<u32> = ContextVar::new("v");
    let lp = LocalLoop::new().unwrap();
    let got = lp
        .run_until_complete(async {
            V.set(3);
            aioloop::to_thread(|| V.get().map(|v| v * 2)).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(6));
    assert_eq!(lp.metrics().blocking.threads, 1);
}

/// CPython `test_events.test_run_in_executor`: a different thread runs it.
#[test]
fn test_run_in_executor() {
    let lp = LocalLoop::new().unwrap();
    let f2 = lp.run_in_executor(None, || ("yo", std::thread::current().id()));
    let (res, thread_id) = lp.run_until_complete(f2).unwrap().unwrap();
    assert_eq!(res, "yo");
    assert_ne!(thread_id, std::thread::current().id());
}

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// CPython `test_events.test_run_in_executor_cancel`, and the issue's "cancelling the
/// awaiting task never interrupts the closure": the task awaiting the job is cancelled while
/// the closure runs; the closure runs to its end and its value is dropped when it arrives.
#[test]
fn test_run_in_executor_cancel() {
    let rt = rt(1);
    let (release_tx, release) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (f, d) = (finished.clone(), dropped.clone());
    let h = rt.handle().clone();
    let task = rt.spawn(async move {
        h.run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            release.recv().unwrap();
            f.store(true, Ordering::SeqCst);
            Counted(d)
        })
        .await
    });
    started.recv().unwrap();
    task.cancel(None);
    assert!(rt.block_on(task).unwrap_err().is_cancelled());
    assert!(!finished.load(Ordering::SeqCst));
    release_tx.send(()).unwrap();
    eventually("the cancelled job's value is dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    });
    assert!(finished.load(Ordering::SeqCst));
}

/// The thread cap (B2): 64 jobs that block until released, on a pool of 4; exactly 4 run,
/// 60 wait in the queue; released, all 64 finish.
#[test]
fn thread_cap_holds_and_the_queue_is_fifo() {
    const CAP: usize = 4;
    let rt = Runtime::builder()
        .workers(1)
        .max_blocking_threads(CAP)
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let futs: Vec<_> = (0..64)
        .map(|i| {
            let (running, most, release) = (running.clone(), most.clone(), release.clone());
            rt.handle().run_in_executor(None, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    eventually("the pool fills up", || {
        let m = rt.handle().metrics().blocking;
        m.threads == CAP && m.queue_depth == 64 - CAP && running.load(Ordering::SeqCst) == CAP
    });
    assert_eq!(rt.handle().metrics().blocking.max_threads, CAP);
    release.store(true, Ordering::SeqCst);
    let got = rt.block_on(async {
        let mut got = Vec::new();
        for f in futs {
            got.push(f.await.unwrap());
        }
        got
    });
    assert_eq!(got, (0..64).collect::<Vec<_>>());
    assert!(most.load(Ordering::SeqCst) <= CAP);
}

/// B3: the queue is FIFO. With one thread, busy, ten jobs queue up and then run in the
/// order they were submitted.
#[test]
fn the_queue_is_fifo() {
    let rt = one_pool_thread();
    let (tx, rx) = mpsc::channel::<()>();
    let blocker = rt
        .handle()
        .run_in_executor(None, move || rx.recv().unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let futs: Vec<_> = (0..10)
        .map(|i| {
            let order = order.clone();
            rt.handle()
                .run_in_executor(None, move || order.lock().unwrap().push(i))
        })
        .collect();
    eventually("the blocker starts", || {
        rt.handle().metrics().blocking.queue_depth == 10
    });
    tx.send(()).unwrap();
    rt.block_on(async {
        blocker.await.unwrap();
        for f in futs {
            f.await.unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// asyncio's default executor size: `min(32, cpus + 4)`.
#[test]
fn default_cap_is_asyncios() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        rt(1).handle().metrics().blocking.max_threads,
        (cpus + 4).min(32)
    );
    assert_eq!(
        LocalLoop::new().unwrap().metrics().blocking.max_threads,
        (cpus + 4).min(32)
    );
}

/// B4: an idle thread exits after its keep-alive; a later job starts a new one.
#[test]
fn idle_threads_exit_after_keep_alive() {
    let rt = Runtime::builder()
        .workers(1)
        .thread_keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    rt.block_on(aioloop::to_thread(|| ())).unwrap();
    eventually("the idle thread exits", || {
        rt.handle().metrics().blocking.threads == 0
    });
    assert_eq!(rt.block_on(aioloop::to_thread(|| 1)).unwrap(), 1);
}

/// A long keep-alive keeps one thread for consecutive jobs (a token wakes the idle one,
/// B2, rather than a new thread starting).
#[test]
fn an_idle_thread_is_reused() {
    let rt = rt(1);
    let first = rt
        .block_on(aioloop::to_thread(|| std::thread::current().id()))
        .unwrap();
    eventually("the thread idles", || {
        rt.handle().metrics().blocking.idle_threads == 1
    });
    let second = rt
        .block_on(aioloop::to_thread(|| std::thread::current().id()))
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(rt.handle().metrics().blocking.threads, 1);
}

/// asyncio's `shutdown_default_executor()`: waits for the running job, then refuses new
/// ones with "Executor shutdown has been called" (B5).
#[test]
fn shutdown_default_executor_waits_then_refuses() {
    let rt = rt(1);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let h = rt.handle().clone();
    let refused = rt.block_on(async move {
        let job = h.run_in_executor(None, move || {
            std::thread::sleep(Duration::from_millis(20));
            d.store(true, Ordering::SeqCst);
        });
        h.shutdown_default_executor(None).await.unwrap();
        assert!(
            done.load(Ordering::SeqCst),
            "shutdown returned before the job ended"
        );
        job.await.unwrap();
        h.shutdown_default_executor(None).await.unwrap(); // again: harmless
        aioloop::to_thread(|| ()).await
    });
    let err = refused.unwrap_err();
    assert!(matches!(err, ExecutorError::Shutdown));
    assert_eq!(err.to_string(), "Executor shutdown has been called");
    assert_eq!(rt.handle().metrics().blocking.threads, 0);
}

/// `shutdown_default_executor(timeout)` gives up on a job that outlives the timeout with
/// asyncio's words; the job keeps running and still delivers.
#[test]
fn shutdown_default_executor_times_out() {
    let lp = LocalLoop::new().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let job = lp.run_in_executor(None, move || rx.recv().is_ok());
    let err = lp
        .run_until_complete(lp.shutdown_default_executor(Some(Duration::from_millis(10))))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ExecutorError::JoinTimeout(_)));
    assert_eq!(
        err.to_string(),
        "The executor did not finishing joining its threads within 0.01 seconds."
    );
    tx.send(()).unwrap();
    assert!(lp.run_until_complete(job).unwrap().unwrap());
}

fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Dropping the runtime detaches its pool (documented on `Runtime`): the running job
/// finishes and delivers, the queued one is dropped unrun and its awaiter sees `Shutdown`.
#[test]
fn runtime_drop_detaches_running_and_drops_queued_jobs() {
    let rt = one_pool_thread();
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let ran_second = Arc::new(AtomicBool::new(false));
    let r = ran_second.clone();
    let mut first = rt.handle().run_in_executor(None, move || {
        started_tx.send(()).unwrap();
        rx.recv().is_ok()
    });
    let mut second = rt
        .handle()
        .run_in_executor(None, move || r.store(true, Ordering::SeqCst));
    started.recv().unwrap();
    drop(rt);
    assert!(matches!(
        poll_once(&mut second),
        Poll::Ready(Err(ExecutorError::Shutdown))
    ));
    tx.send(()).unwrap();
    eventually("the detached job delivers", || {
        matches!(poll_once(&mut first), Poll::Ready(Ok(true)))
    });
    assert!(!ran_second.load(Ordering::SeqCst));
}

/// `to_thread` with no running loop: asyncio's "no running event loop", as an error.
#[test]
fn to_thread_outside_a_loop_fails() {
    let mut f = Box::pin(aioloop::to_thread(|| 1));
    let Poll::Ready(Err(err)) = poll_once(&mut f) else {
        panic!("expected an error")
    };
    assert!(matches!(err, ExecutorError::NoRunningLoop(_)));
    assert_eq!(err.to_string(), "no running event loop");
}

/// A user executor that refuses: its error is the awaiter's, and the closure never runs.
#[test]
fn a_refusing_executor_fails_the_future() {
    struct Closed;
    impl aioloop::Executor for Closed {
        fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), ExecutorError> {
            drop(job);
            Err(ExecutorError::Shutdown)
        }
    }
    let rt = rt(1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let out = rt.block_on(
        rt.handle()
            .run_in_executor(Some(&Closed), move || r.store(true, Ordering::SeqCst)),
    );
    assert!(matches!(out, Err(ExecutorError::Shutdown)));
    assert!(!ran.load(Ordering::SeqCst));
}

/// Issue 11 item 3: host names are resolved on the blocking pool; a literal address never
/// starts a pool thread.
#[test]
fn host_names_resolve_on_the_pool() {
    let rt = rt(1);
    rt.block_on(async {
        let l = aioloop::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        assert_eq!(aioloop::Handle::current().metrics().blocking.threads, 0);
        let port = l.local_addr().unwrap().port();
        let c = aioloop::net::TcpStream::connect(("localhost", port)).await;
        // "localhost" may resolve to ::1 first; some address of it accepts.
        assert!(c.is_ok(), "{c:?}");
    });
    assert_eq!(rt.handle().metrics().blocking.threads, 1);
}

/// Resolving an unknown host (`.invalid` never resolves, RFC 2606) is a typed `io::Error`,
/// not a panic, for `connect`, `bind` and `getaddrinfo` alike.
#[test]
fn an_unknown_host_is_an_io_error() {
    let rt = rt(1);
    let h = rt.handle().clone();
    let (c, b, g) = rt.block_on(async move {
        (
            aioloop::net::TcpStream::connect("no-such-host.invalid:80")
                .await
                .err(),
            aioloop::net::UdpSocket::bind(("no-such-host.invalid", 0))
                .await
                .err(),
            h.getaddrinfo("no-such-host.invalid", 80).await.err(),
        )
    });
    for e in [c, b, g] {
        let e = e.expect("an unknown host resolved");
        // The resolver's own error: `Other` would be the pool's `ExecutorError`.
        assert_ne!(e.kind(), std::io::ErrorKind::Other, "{e}");
    }
}

/// asyncio's `loop.getaddrinfo` on a `LocalLoop`: names go to the pool, literal addresses
/// come back as they are.
#[test]
fn getaddrinfo_on_a_local_loop() {
    let lp = LocalLoop::new().unwrap();
    let addrs = lp
        .run_until_complete(lp.getaddrinfo("localhost", 8080))
        .unwrap()
        .unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 8080));
    let literal = lp
        .run_until_complete(lp.getaddrinfo("::1", 1))
        .unwrap()
        .unwrap();
    assert_eq!(literal, vec!["[::1]:1".parse().unwrap()]);
}

/// A malformed "host:port" string is `InvalidInput`, as std says.
#[test]
fn a_malformed_address_is_invalid_input() {
    let rt = rt(1);
    let e = rt
        .block_on(aioloop::net::TcpListener::bind("no port here"))
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

/// A user's executor with threads of its own: counts what it ran, and its `shutdown`
/// waits for them (asyncio's `ThreadPoolExecutor.shutdown(wait=True)`).
#[derive(Default)]
struct Counting {
    ran: Arc<AtomicUsize>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    shut: AtomicBool,
}

impl aioloop::Executor for Counting {
    fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), ExecutorError> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(ExecutorError::Shutdown);
        }
        let ran = self.ran.clone();
        let t = std::thread::Builder::new()
            .name("user-executor".into())
            .spawn(move || {
                job();
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        self.threads.lock().unwrap().push(t);
        Ok(())
    }

    fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        for t in self.threads.lock().unwrap().drain(..) {
            t.join().unwrap();
        }
    }
}

/// asyncio's `loop.set_default_executor(executor)` (`test_events.py`
/// `test_set_default_executor`): `run_in_executor(None, …)`, `to_thread` and host-name
/// resolution then run on it, not on the loop's pool (blocking rule B7).
#[test]
fn test_set_default_executor() {
    let rt = rt(1);
    let ex = Arc::new(Counting::default());
    rt.handle().set_default_executor(ex.clone()).unwrap();
    let h = rt.handle().clone();
    let names = rt.block_on(async move {
        let a = h
            .run_in_executor(None, || std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        let b = aioloop::to_thread(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        let addrs = h.getaddrinfo("localhost", 80).await.unwrap();
        assert!(!addrs.is_empty());
        (a, b)
    });
    assert_eq!(names.0.as_deref(), Some("user-executor"));
    assert_eq!(names.1.as_deref(), Some("user-executor"));
    // The count goes up after the job delivered its value: wait for the last one.
    eventually("the lookup ran there too", || {
        ex.ran.load(Ordering::SeqCst) == 3
    });
    assert_eq!(
        rt.handle().metrics().blocking.threads,
        0,
        "the loop's own pool started no thread"
    );
}

/// `shutdown_default_executor` on a replaced default executor calls its `shutdown` and
/// waits for it to return (B7); afterwards the default executor refuses jobs, and
/// setting another is refused with the same error.
#[test]
fn shutdown_default_executor_shuts_the_users_executor() {
    let lp = LocalLoop::new().unwrap();
    let ex = Arc::new(Counting::default());
    lp.set_default_executor(ex.clone()).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let job = lp.run_in_executor(None, move || rx.recv().is_ok());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(()).unwrap();
    });
    lp.run_until_complete(lp.shutdown_default_executor(None))
        .unwrap()
        .unwrap();
    assert!(ex.shut.load(Ordering::SeqCst), "its shutdown was called");
    assert_eq!(
        ex.ran.load(Ordering::SeqCst),
        1,
        "shutdown returned before the user's executor drained"
    );
    assert!(lp.run_until_complete(job).unwrap().unwrap());
    releaser.join().unwrap();
    let refused = lp
        .run_until_complete(lp.run_in_executor(None, || ()))
        .unwrap();
    assert!(matches!(refused, Err(ExecutorError::Shutdown)));
    let again = lp.set_default_executor(Arc::new(Counting::default()));
    assert!(matches!(again, Err(ExecutorError::Shutdown)));
}

/// A user's executor whose `shutdown` outlives the timeout: asyncio's timeout error, and
/// the executor still finishes on its own.
#[test]
fn shutdown_default_executor_times_out_on_the_users_executor() {
    let rt = rt(1);
    let ex = Arc::new(Counting::default());
    rt.handle().set_default_executor(ex.clone()).unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let job = rt.handle().run_in_executor(None, move || rx.recv().is_ok());
    let h = rt.handle().clone();
    let err = rt
        .block_on(async move {
            h.shutdown_default_executor(Some(Duration::from_millis(10)))
                .await
        })
        .unwrap_err();
    assert!(matches!(err, ExecutorError::JoinTimeout(_)));
    tx.send(()).unwrap();
    assert!(rt.block_on(job).unwrap());
    eventually("the user's executor finishes its shutdown", || {
        ex.threads.lock().unwrap().is_empty() && ex.ran.load(Ordering::SeqCst) == 1
    });
}
