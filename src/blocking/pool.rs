//! The pool's threads and FIFO job queue (protocol rules B1–B6 in `mod.rs`).

use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::{Executor, ExecutorError};
use crate::shim::{Arc, Condvar, Mutex, MutexGuard};

/// A queued job: the closure with its result slot already bound (see `task::job`).
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long an idle pool thread waits for work before it exits, unless configured
/// otherwise (`Builder::thread_keep_alive`): 10 seconds, as tokio's blocking pool.
///
/// ```
/// assert_eq!(aioloop::DEFAULT_KEEP_ALIVE.as_secs(), 10);
/// ```
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A pool's fixed settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// At most this many threads live at once (at least 1).
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    /// Thread names are `<name>-<n>`.
    pub(crate) name: String,
}

impl Config {
    /// asyncio's default executor size: `min(32, cpus + 4)` threads.
    pub(crate) fn default_max_threads() -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus + 4).min(32)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_threads: Config::default_max_threads(),
            keep_alive: DEFAULT_KEEP_ALIVE,
            name: "aioloop-blocking".to_owned(),
        }
    }
}

/// A snapshot of a loop's blocking pool (part of [`Metrics`](crate::Metrics)).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let b = rt.handle().metrics().blocking;
/// assert_eq!((b.threads, b.queue_depth), (0, 0)); // no thread until the first job
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockingMetrics {
    /// Live pool threads (running a job or idle).
    pub threads: usize,
    /// Of those, idle ones waiting for work.
    pub idle_threads: usize,
    /// Jobs queued, not yet started.
    pub queue_depth: usize,
    /// The most threads the pool may have.
    pub max_threads: usize,
}

struct State {
    queue: VecDeque<Job>,
    /// Live threads (B2: never more than `max_threads`).
    threads: usize,
    /// Threads waiting on `work` (B4).
    idle: usize,
    /// Wake-ups issued to idle threads and not yet consumed (B2, B4: `tokens <= idle`).
    tokens: usize,
    shutdown: bool,
    /// Futures waiting for `threads == 0` after shutdown.
    exit_wakers: Vec<Waker>,
    /// Names the next thread.
    next_index: usize,
    /// The user's executor default jobs go to instead of these threads (B7). A std `Arc`:
    /// the user hands it over as one, and its count is no part of the pool's protocol.
    replacement: Option<std::sync::Arc<dyn Executor>>,
}

struct Inner {
    state: Mutex<State>,
    /// Idle threads wait here (B1).
    work: Condvar,
    /// Blocking shutdown waiters wait here for `threads == 0`.
    exited: Condvar,
    config: Config,
}

/// One loop's blocking pool. Threads start on the first submission; the pool is shut down
/// by its owner (B5). Dropping a `Pool` without shutting it down leaves idle threads to
/// expire on their keep-alive.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Pool {
        let config = Config {
            max_threads: config.max_threads.max(1),
            ..config
        };
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    tokens: 0,
                    shutdown: false,
                    exit_wakers: Vec::new(),
                    next_index: 0,
                    replacement: None,
                }),
                work: Condvar::new(),
                exited: Condvar::new(),
                config,
            }),
        }
    }

    /// Queues `job` (B2). On failure the job is handed back, unrun, with the reason.
    pub(crate) fn submit(&self, job: Job) -> Result<(), (Job, ExecutorError)> {
        let st = self.inner.state.lock();
        if st.shutdown {
            return Err((job, ExecutorError::Shutdown));
        }
        self.enqueue(st, job)
    }

    /// Queues `job` for the pool's threads (B2), under the caller's lock.
    fn enqueue(&self, mut st: MutexGuard<'_, State>, job: Job) -> Result<(), (Job, ExecutorError)> {
        st.queue.push_back(job);
        if st.idle > st.tokens {
            st.tokens += 1;
            drop(st);
            self.inner.work.notify_one();
            return Ok(());
        }
        if st.threads < self.inner.config.max_threads {
            st.threads += 1;
            let index = st.next_index;
            st.next_index += 1;
            let inner = self.inner.clone();
            let spawned = crate::shim::thread::Builder::new()
                .name(format!("{}-{index}", self.inner.config.name))
                .spawn(move || run(inner));
            match spawned {
                // Detached: a pool thread is never joined, it exits by itself (B4, B5).
                Ok(handle) => drop(handle),
                Err(e) => {
                    st.threads -= 1;
                    if st.threads == 0 {
                        // Nobody would ever run it: hand it back.
                        let job = st.queue.pop_back().expect("the job pushed above");
                        return Err((job, ExecutorError::Spawn(e)));
                    }
                    // A live thread takes it when its current job ends (B3).
                }
            }
        }
        Ok(())
    }

    /// B5: refuses new jobs from now on and tells idle threads to exit. With `discard`, the
    /// queued jobs are dropped (here, outside the lock: their awaiters see `Shutdown`);
    /// without, the threads run them first.
    /// A user's default executor is dropped unshut when `discard`ing (the loop is going
    /// away), and otherwise shut down by the pool's last job (B7).
    pub(crate) fn shutdown(&self, discard: bool) {
        let dropped = {
            let mut st = self.inner.state.lock();
            st.shutdown = true;
            let replacement = st.replacement.take();
            if discard {
                (std::mem::take(&mut st.queue), replacement)
            } else {
                if let Some(ex) = replacement {
                    let last: Job = Box::new(move || ex.shutdown());
                    // No thread could be started: run it here rather than never.
                    if let Err((last, _)) = self.enqueue(st, last) {
                        let _ = crate::unwind::catch(last);
                    }
                }
                (VecDeque::new(), None)
            }
        };
        self.inner.work.notify_all();
        // A closure's destructor may panic; the owner is shutting down and must not unwind.
        for job in dropped.0 {
            let _ = crate::unwind::drop_caught(job);
        }
        let _ = crate::unwind::drop_caught(dropped.1);
    }

    /// B7: makes `executor` the default executor. Refused once the pool is shut down
    /// (asyncio would accept it, then refuse every job: the same outcome, said earlier).
    pub(crate) fn set_replacement(
        &self,
        executor: std::sync::Arc<dyn Executor>,
    ) -> Result<(), ExecutorError> {
        let mut st = self.inner.state.lock();
        if st.shutdown {
            return Err(ExecutorError::Shutdown);
        }
        let old = st.replacement.replace(executor);
        drop(st);
        let _ = crate::unwind::drop_caught(old);
        Ok(())
    }

    /// B7: the user's executor default jobs go to, while the pool is open.
    pub(crate) fn replacement(&self) -> Option<std::sync::Arc<dyn Executor>> {
        self.inner.state.lock().replacement.clone()
    }

    /// Whether every thread has exited after a shutdown; if not, `waker` is woken when the
    /// last one does.
    pub(crate) fn poll_exited(&self, waker: &Waker) -> bool {
        let mut st = self.inner.state.lock();
        if st.threads == 0 {
            return true;
        }
        if !st.exit_wakers.iter().any(|w| w.will_wake(waker)) {
            st.exit_wakers.push(waker.clone());
        }
        false
    }

    /// Blocks until every thread has exited after a shutdown (the loom models' way to
    /// wait; the loops wait with `poll_exited`).
    #[cfg(loom)]
    pub(crate) fn wait_exited(&self) {
        let mut st = self.inner.state.lock();
        while st.threads > 0 {
            st = self.inner.exited.wait(st);
        }
    }

    pub(crate) fn metrics(&self) -> BlockingMetrics {
        let st = self.inner.state.lock();
        BlockingMetrics {
            threads: st.threads,
            idle_threads: st.idle,
            queue_depth: st.queue.len(),
            max_threads: self.inner.config.max_threads,
        }
    }
}

/// A pool thread's life (B3, B4, B6).
fn run(inner: Arc<Inner>) {
    let mut st = inner.state.lock();
    'serve: loop {
        // B3: drain the queue, FIFO, running each job outside the lock.
        while let Some(job) = st.queue.pop_front() {
            drop(st);
            // B6: the job catches its closure's panic itself (`task::job`); this catch is
            // for the slot's own code, so that nothing can end the thread early.
            let _ = crate::unwind::catch(job);
            st = inner.state.lock();
        }
        if st.shutdown {
            break;
        }
        // B4: idle until a token, a shutdown or the keep-alive's end.
        st.idle += 1;
        let deadline = Instant::now().checked_add(inner.config.keep_alive);
        loop {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            let (guard, timed_out) = inner.work.wait_timeout(&inner.state, st, left);
            st = guard;
            if st.tokens > 0 {
                st.tokens -= 1;
                st.idle -= 1;
                continue 'serve;
            }
            if st.shutdown || timed_out {
                st.idle -= 1;
                // No token was issued to us (tokens == 0 here), but a job may have been
                // queued when every thread looked busy: serve it rather than leave it.
                if !st.queue.is_empty() {
                    continue 'serve;
                }
                break 'serve;
            }
            // A spurious wake-up: wait out the rest of the keep-alive.
        }
    }
    st.threads -= 1;
    let wakers = if st.threads == 0 {
        std::mem::take(&mut st.exit_wakers)
    } else {
        Vec::new()
    };
    let last = st.threads == 0;
    drop(st);
    if last {
        inner.exited.notify_all();
    }
    for w in wakers {
        w.wake();
    }
}
