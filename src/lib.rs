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
//! - **asyncio's task semantics**: cancellation a task can catch, clean up after and re-raise
//!   or suppress; [`TaskGroup`]; [`timeout`]s that never take an outside cancellation for
//!   their own; [`gather`], [`shield`], [`wait`], [`as_completed`]; [`Future`].
//! - **The same loop on your own thread**: [`LocalLoop`], for a host (GUI, game, plugin
//!   host) that drives it one iteration at a time.
//! - **Network I/O on the per-worker pollers**: [`net`]'s TCP, UDP and Unix sockets,
//!   [`io::Async`] for any non-blocking descriptor, and asyncio's `add_reader` and `sock_*`
//!   loop methods on [`LocalLoop`] and [`Handle`].
//!
//! The numbered rules cited throughout (L1–L8, T1, T8, S3, …) are defined in the
//! repository's `docs/asyncio-semantics.md`; where aioloop departs from asyncio,
//! `ARCHITECTURE.md` says how and why. `examples/tour.rs` runs through all of the below
//! (`cargo run --release --example tour`).
//!
//! The sections below are a guide, one runnable example each.
//!
//! ## A runtime and its tasks
//!
//! [`Runtime::block_on`] is `asyncio.run`: it runs a future on the calling thread as the
//! runtime's *main task*. [`create_task`] (or [`task::Builder`] for a name) spawns a task onto
//! the workers; awaiting its [`Task`] gives `Result<T, TaskError>`.
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
//!     let named = aioloop::task::Builder::new().name("worker").spawn(async { 2 });
//!     assert!(aioloop::all_tasks().len() >= 1);            // the main task, maybe the children
//!     assert!(child.await.unwrap().starts_with("Task-"));
//!     assert_eq!(named.await.unwrap(), 2);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Cancellation: catch, clean up, re-raise or suppress
//!
//! [`Task::cancel`] asks a task to stop (rule T3). The request is delivered at the task's
//! next await: the innermost [`catch_cancel`] scope around that await receives it as
//! `Err(CancelledError)` — asyncio's `except CancelledError:` — after dropping the future it
//! wrapped. The handler may `.await` (async clean-up), then either pass the cancellation on
//! with [`CancelledError::reraise`] (the task ends cancelled) or keep going, which requires
//! [`TaskRef::uncancel`] (the count that timeouts and task groups read goes back down).
//! Without any scope the task's future is dropped and the task ends cancelled.
//!
//! ```
//! use std::future::pending;
//! use std::sync::mpsc;
//!
//! let rt = aioloop::Runtime::builder().workers(1).build()?;
//!
//! // Cleans up, then re-raises: the task ends cancelled.
//! let (started, wait) = mpsc::channel();
//! let flusher = rt.spawn(async move {
//!     started.send(()).unwrap();
//!     if let Err(cancelled) = aioloop::catch_cancel(pending::<()>()).await {
//!         aioloop::yield_now().await; // an await in the handler: async clean-up
//!         cancelled.reraise().await;  // asyncio's bare `raise`
//!     }
//! });
//! wait.recv().unwrap();
//! flusher.cancel(Some("shutting down"));
//! let err = rt.block_on(flusher).unwrap_err();
//! assert!(err.is_cancelled());
//!
//! // Suppresses it: uncancel(), then return a value.
//! let (started, wait) = mpsc::channel();
//! let stubborn = rt.spawn(async move {
//!     started.send(()).unwrap();
//!     if aioloop::catch_cancel(pending::<()>()).await.is_err() {
//!         aioloop::current_task().unwrap().uncancel();
//!     }
//!     "kept going"
//! });
//! wait.recv().unwrap();
//! stubborn.cancel(None);
//! assert_eq!(rt.block_on(stubborn).unwrap(), "kept going");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Task groups
//!
//! [`TaskGroup::run`] is `async with asyncio.TaskGroup() as tg:`. The scope ends when every
//! child has finished. The first child that fails (panics) cancels the others and the body;
//! the failures come back together as [`TaskGroupError::Failed`] (rules G1–G5).
//!
//! ```
//! use std::time::Duration;
//! use aioloop::{TaskGroup, TaskGroupError};
//!
//! let rt = aioloop::Runtime::builder().workers(2).build()?;
//! let outcome = rt.block_on(rt.spawn(async {
//!     TaskGroup::new()
//!         .run(|tg| async move {
//!             tg.create_task(aioloop::sleep(Duration::from_secs(3600)))?; // cancelled
//!             tg.create_task_named("bad", async { panic!("bad input") })?;
//!             aioloop::sleep(Duration::from_secs(3600)).await;          // cancelled too
//!             Ok::<_, TaskGroupError>(())
//!         })
//!         .await
//! }));
//! let err = outcome.unwrap().unwrap_err();          // the group failed ...
//! assert_eq!(err.failures().unwrap().len(), 1);     // ... with one failure: "bad"
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Timeouts
//!
//! [`timeout`] (and [`timeout_at`], [`wait_for`]) runs a future with a deadline. At the
//! deadline it cancels its own task, catches exactly that cancellation and turns it into
//! [`TimeoutError`] (rule X1); a cancellation from anywhere else passes through untouched.
//! [`Timeout`] is the form whose deadline can be read and moved.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = aioloop::Runtime::builder().workers(1).build()?;
//! let (fast, slow) = rt.block_on(rt.spawn(async {
//!     let fast = aioloop::timeout(Duration::from_secs(10), async { 1 }).await;
//!     let nap = aioloop::sleep(Duration::from_secs(60));
//!     let slow = aioloop::wait_for(nap, Duration::from_millis(5)).await;
//!     (fast, slow)
//! }))
//! .unwrap();
//! assert_eq!(fast, Ok(1));
//! assert_eq!(slow, Err(aioloop::TimeoutError));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Embedding a loop: `LocalLoop`
//!
//! A [`LocalLoop`] is one event loop on a thread you own. It runs `!Send` tasks and
//! callbacks; a host with its own main loop calls [`LocalLoop::run_once`] once per frame,
//! asking [`LocalLoop::next_timeout`] how long it may wait, and can watch
//! [`LocalLoop::as_raw_fd`] in its own poller: the fd becomes readable when another thread
//! posts work through the loop's [`LoopHandle`].
//!
//! ```
//! use std::{cell::Cell, rc::Rc, time::Duration};
//!
//! let lp = aioloop::LocalLoop::new()?;
//! let frames_seen = Rc::new(Cell::new(0));                 // !Send state is fine here
//! let seen = frames_seen.clone();
//! lp.create_task(async move {
//!     aioloop::sleep(Duration::from_millis(2)).await;
//!     seen.set(seen.get() + 1);
//! })?;
//! let handle = lp.handle();                                // Send: for other threads
//! let poster = std::thread::spawn(move || handle.call_soon_threadsafe(|| ()).is_ok());
//! let _fd = lp.as_raw_fd();                                // for the host's own poller
//! while frames_seen.get() == 0 {
//!     // One iteration per frame, waiting at most a frame (less if a timer is due).
//!     lp.run_once(Some(Duration::from_millis(16)))?;
//! }
//! assert!(poster.join().unwrap());
//! lp.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/embed.rs` is a complete host: a 60 Hz frame loop watching the loop's fd.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod blocking;
mod combinators;
pub mod compat;
pub mod contextvars;
mod create;
mod error;
mod event_loop;
mod executor;
mod future;
mod inspect;
#[cfg(not(loom))]
pub mod io;
mod macro_support;
#[cfg(not(loom))]
pub mod net;
pub mod queue;
pub mod runtime;
mod shim;
#[cfg(all(unix, not(loom)))]
pub mod signal;
pub mod sync;
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
pub use combinators::{
    as_completed_with_timeout, shield_task, AsCompletedTimeout, SharedTask, ShieldTask, TaskHandle,
};
pub use error::TaskResultError;
pub use error::{
    BuildError, CancelledError, EnterError, InvalidDelay, InvalidStateError, LeaveError, LoopError,
    NoRunningLoop, PanicError, TaskError,
};
pub use event_loop::exception::{default_exception_handler, ExceptionContext, ExceptionHandler};
pub use event_loop::{
    interval, sleep, sleep_secs, sleep_until, spawn_local, Interval, LocalLoop, LoopHandle, Sleep,
};
pub use event_loop::{Metrics, TaskCounts, WorkerMetrics};
pub use future::{
    create_future, try_create_future, DifferentLoopError, Future, FutureError, SharedError,
};
pub use future::{run_coroutine_threadsafe, ConcurrentError, ConcurrentFuture, SubmitTarget};
pub use inspect::{
    capture_call_graph, dump, format_call_graph, print_call_graph, AwaitTarget, CallGraph,
    CallGraphEdge, TaskInfo, TaskState,
};
pub use runtime::{Builder, Handle, Runtime, WorkerStats};
pub use task::cancel::{catch_cancel, CatchCancel, Reraise};
pub use task::observe::AwaitKind;
pub use task::Raise;
pub use task::{all_tasks, current_task, try_all_tasks, try_current_task, Task, TaskRef};
pub use task_group::{BoxError, ExceptionGroup, Failure, TaskGroup, TaskGroupError};
pub use timeout::{
    timeout, timeout_at, wait_for, wait_for_task, Timeout, TimeoutError, TimeoutFuture,
    TimeoutStateError,
};
pub use yield_now::{yield_now, YieldNow};

pub use blocking::{Blocking, BlockingMetrics, ExecutorError, DEFAULT_KEEP_ALIVE};
pub use executor::{to_thread, Executor, ExecutorJob};

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
#[track_caller]
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
#[track_caller]
pub fn try_create_task<F>(future: F) -> Result<Task<F::Output>, NoRunningLoop>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    task::Builder::new().try_spawn(future)
}

/// `#[aioloop::main]`: runs `async fn main` on a new runtime (`asyncio.run(main())`).
/// Options: `workers = N`, `local` (a [`LocalLoop`] on the main thread), `debug`.
///
/// ```
/// #[aioloop::main(workers = 2)]
/// async fn main() {
///     let t = aioloop::create_task(async { 40 + 2 });
///     assert_eq!(t.await.unwrap(), 42);
/// }
/// ```
#[cfg(feature = "macros")]
pub use aioloop_macros::main;

/// `#[aioloop::test]`: an `async fn` test on a new runtime; the options of
/// [`macro@main`], plus `timeout = "5s"` (past it the test fails instead of hanging).
///
/// ```
/// #[aioloop::test(local, timeout = "5s")]
/// async fn on_a_local_loop() {
///     aioloop::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// # fn main() {}
/// ```
#[cfg(feature = "macros")]
pub use aioloop_macros::test;

/// What the attribute macros expand to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::{run, MacroOptions};
}

/// Internals for the loom models in `loom-tests/` (built only under `--cfg loom`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals;

/// The README's code examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
