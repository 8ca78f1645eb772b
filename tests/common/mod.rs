//! Helpers shared by the integration tests: timeouts, loop and runtime construction, running a
//! body on a guarded thread, no-op and counting wakers, drop counters, panic payloads, and a
//! minimal third-party `TaskLike` type.
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::task::{self, LoopId, TaskLike};
use aioloop::{LocalLoop, Runtime, TaskRef};

/// Generous bound for anything that waits on another thread; exceeded only if broken.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `run_once` without waiting.
pub const NO_WAIT: Option<Duration> = Some(Duration::ZERO);

/// A fresh `LocalLoop`.
pub fn new_loop() -> LocalLoop {
    LocalLoop::new().expect("LocalLoop::new")
}

/// A runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime builds")
}

/// Runs `f` on a fresh thread and returns its result; fails the test if it panics or has not
/// finished after [`TIMEOUT`] (a hang, e.g. a lost wake-up).
pub fn guarded<T, F>(what: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("timed out after {TIMEOUT:?}: {what}"),
    }
}

/// Sets the soft `RLIMIT_NOFILE` to `n` (for the EMFILE tests, each in its own binary);
/// the previous soft limit.
pub fn set_fd_limit(n: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer for getrlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let new = libc::rlimit {
        rlim_cur: n,
        rlim_max: old.rlim_max,
    };
    // SAFETY: a valid rlimit value for setrlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
    old.rlim_cur
}

/// Lowers the soft descriptor limit to `limit` and opens descriptors until the process is
/// out of them: the hog (drop or shrink it to free some) and the previous limit.
pub fn exhaust_fds(limit: u64) -> (Vec<std::fs::File>, u64) {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let mut hog = Vec::new();
    let old = set_fd_limit(limit);
    while let Ok(f) = devnull.try_clone() {
        hog.push(f);
    }
    hog.push(devnull); // kept open too: closing it would free one
    (hog, old)
}

/// Waits (polling, generous deadline) until `cond` holds; fails the test only on timeout.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Counts its drops in a shared counter.
pub struct Counted(pub Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that does nothing.
pub struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls `fut` once with a waker that does nothing.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWake));
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

/// Counts wake-ups.
#[derive(Default)]
pub struct CountingWake(pub AtomicUsize);

impl Wake for CountingWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The message of a panic payload (`&str` or `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// The id of the current task, if any.
pub fn current_id() -> Option<u64> {
    aioloop::current_task().map(|t| t.id())
}

/// The ids of `tasks`, sorted.
pub fn sorted_ids(tasks: &[TaskRef]) -> Vec<u64> {
    let mut v: Vec<u64> = tasks.iter().map(TaskRef::id).collect();
    v.sort_unstable();
    v
}

/// A minimal third-party task: it runs nothing itself, it only answers the `TaskLike`
/// questions.
pub struct MetaTask {
    pub id: u64,
    pub name: String,
    pub loop_id: LoopId,
    pub done: AtomicBool,
}

impl MetaTask {
    /// A new task named `name` on `loop_id`, with a fresh id from the process-wide counter.
    pub fn new(name: &str, loop_id: LoopId, done: bool) -> MetaTask {
        MetaTask {
            id: task::next_task_id(),
            name: name.to_owned(),
            loop_id,
            done: AtomicBool::new(done),
        }
    }
}

impl TaskLike for MetaTask {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
    fn loop_id(&self) -> LoopId {
        self.loop_id
    }
}
