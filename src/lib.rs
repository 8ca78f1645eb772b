//! # aioloop
//!
//! A multi-threaded, work-stealing async runtime whose task model is Python asyncio's.
//!
//! - **Per-worker event loops.** Each worker thread owns a run queue and a
//!   `polling::Poller`, runs asyncio-shaped iterations (rule S3), steals from its peers when
//!   idle, and parks inside its poller.
//! - **asyncio's task lifetime protocol**, public: [`task::register_task`],
//!   [`task::unregister_task`], [`task::enter_task`], [`task::leave_task`],
//!   [`task::swap_current_task`]. Built-in tasks use it around every poll, which is what
//!   makes [`all_tasks`] and [`current_task`] work, and a third-party task type
//!   ([`task::TaskLike`]) joins on equal terms.
//!
//! The numbered rules cited throughout (L1–L8, T1, T8, S3, …) are those of
//! `shared/spec/asyncio-semantics.md`.
//!
//! ```
//! use aioloop::Runtime;
//!
//! let rt = Runtime::builder().workers(2).build()?;
//! rt.block_on(async {
//!     let child = aioloop::create_task(async {
//!         aioloop::yield_now().await;                      // asyncio.sleep(0)
//!         aioloop::current_task().unwrap().name()          // "Task-<id>"
//!     });
//!     assert!(aioloop::all_tasks().len() >= 1);            // the main task, maybe the child
//!     assert!(child.await.unwrap().starts_with("Task-"));
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod combinators;
pub mod contextvars;
mod create;
mod error;
mod event_loop;
mod future;
pub mod runtime;
mod sync;
pub mod task;
mod task_group;
mod timeout;
mod unwind;
mod yield_now;

/// asyncio's `events` module: handles to scheduled callbacks.
pub mod events {
    pub use crate::event_loop::{Handle, TimerHandle};
}

pub use combinators::{
    as_completed, gather, gather2, gather3, gather4, shield, wait, AsCompleted, EmptyWaitError,
    Gather, GatherAll, ReturnWhen, Shield,
};
pub use error::{
    BuildError, CancelledError, EnterError, InvalidDelay, InvalidStateError, LeaveError, LoopError,
    NoRunningLoop, PanicError, TaskError,
};
pub use event_loop::exception::{default_exception_handler, ExceptionContext, ExceptionHandler};
pub use event_loop::{
    interval, sleep, sleep_secs, sleep_until, spawn_local, Interval, LocalLoop, LoopHandle, Sleep,
};
pub use future::{
    create_future, try_create_future, DifferentLoopError, Future, FutureError, SharedError,
};
pub use runtime::{Builder, Handle, Runtime, WorkerStats};
pub use task::cancel::{catch_cancel, CatchCancel, Reraise};
pub use task::{all_tasks, current_task, try_all_tasks, try_current_task, Task, TaskRef};
pub use task_group::{BoxError, ExceptionGroup, Failure, TaskGroup, TaskGroupError};
pub use timeout::{
    timeout, timeout_at, wait_for, wait_for_task, Timeout, TimeoutError, TimeoutFuture,
    TimeoutStateError,
};
pub use yield_now::{yield_now, YieldNow};

/// Spawns `future` as a task on the runtime running on this thread: asyncio's
/// `asyncio.create_task`. Call it from inside a task or inside [`Runtime::block_on`].
///
/// The task is registered (it shows in [`all_tasks`]) and queued FIFO on this worker's run
/// queue (rule T2). Dropping the returned [`Task`] detaches it; it still runs.
///
/// # Panics
/// Outside a runtime ("no running event loop"); see [`try_create_task`].
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(2).build().unwrap();
/// let v = rt.block_on(async {
///     let a = aioloop::create_task(async { 1 });
///     let b = aioloop::create_task(async { 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(v, 3);
/// ```
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    task::Builder::new().spawn(future)
}

/// [`create_task`], returning `Err(NoRunningLoop)` outside a runtime instead of panicking.
///
/// ```
/// let err = aioloop::try_create_task(async {}).unwrap_err();
/// assert_eq!(err.to_string(), "no running event loop");
/// ```
pub fn try_create_task<F>(future: F) -> Result<Task<F::Output>, NoRunningLoop>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    task::Builder::new().try_spawn(future)
}

/// Internals for the loom models in `loom-tests/` (built only under `--cfg loom`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals;

/// The README's code examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
