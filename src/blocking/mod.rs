//! The blocking pool: threads that run closures which would stall an event loop (file
//! I/O, host-name resolution, CPU-heavy or foreign blocking calls). asyncio's default
//! executor (`loop.run_in_executor(None, f)`, `asyncio.to_thread`), one per loop: each
//! runtime and each `LocalLoop` owns a [`Pool`], created empty; its threads start on demand.
//!
//! Owns: the pool threads, the job queue, and the one-shot slot through which a job's
//! result reaches the future awaiting it ([`Blocking`]). May import: the base layer (the
//! sync shim, `unwind`, `error`). The loop API that submits to it (`to_thread`,
//! `run_in_executor`, `shutdown_default_executor`) is the feature module `executor`.
//!
//! # Pool protocol (rules B1–B6; `pool.rs` cites them)
//!
//! - **B1** All pool state (queue, live/idle thread counts, wake tokens, the shutdown flag)
//!   sits behind one mutex; a condvar wakes idle threads, another wakes shutdown waiters.
//! - **B2** A submission takes, in this order: a wake token for an idle thread that has
//!   none (`idle > tokens`: one token, one `notify_one`), else a new thread if fewer than
//!   `max_threads` live, else nothing — the job waits in the FIFO queue for a busy thread.
//! - **B3** A thread drains the queue (FIFO) before it idles, re-checking under the lock,
//!   so a job queued while every thread was busy is taken by the first one to finish.
//! - **B4** An idle thread leaves its wait by consuming a token (then drains, B3), or on
//!   shutdown, or when its keep-alive expires with no token for it; it then exits. A
//!   token is never left behind for a thread that exited: tokens ≤ idle threads always.
//! - **B5** After shutdown a submission fails (asyncio's "Executor shutdown has been
//!   called"). Threads drain what is queued, unless the shutdown discards the queue (the
//!   owning loop is going away), then exit; the last one to exit wakes the waiters.
//! - **B6** A job runs outside the lock and its panic is caught, so no job can stop a pool
//!   thread or poison the pool; the job's result goes through its own slot (`task.rs`),
//!   whose receiver may be gone (the awaiting task was cancelled): the result is then
//!   dropped on the pool thread when it arrives.
//! - **B7** A loop's default executor may be replaced by a user's [`Executor`]
//!   (`set_default_executor`), kept in the pool's state: while the pool is open, default
//!   jobs go to it instead of the pool's threads. Shutting the pool down takes it out
//!   under the same lock and queues its `shutdown` as the pool's last job, so waiting for
//!   the pool's threads to exit also waits for the user's executor to drain (asyncio's
//!   `executor.shutdown(wait=True)` on a helper thread).

mod error;
mod executor;
mod pool;
mod task;

pub use error::ExecutorError;
pub use executor::{Executor, ExecutorJob};
pub use pool::{BlockingMetrics, DEFAULT_KEEP_ALIVE};
pub(crate) use pool::{Config, Job, Pool};
pub(crate) use task::job;
pub use task::Blocking;
