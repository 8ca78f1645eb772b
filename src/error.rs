//! Typed errors. Each `Display` carries the message asyncio gives for the same misuse, so a
//! user coming from Python recognises it, and each is a distinct type so callers can match.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// How a [`Task`](crate::Task) ended without producing its value.
///
/// ```
/// use aioloop::{Runtime, TaskError};
///
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let err = rt
///     .block_on(rt.spawn(async { panic!("boom") }))
///     .unwrap_err();
/// match err {
///     TaskError::Panicked(p) => assert_eq!(p.message(), Some("boom")),
///     TaskError::Cancelled(_) => unreachable!(),
/// }
/// ```
#[derive(Debug)]
pub enum TaskError {
    /// The task was cancelled (asyncio's `CancelledError`): the runtime shut down before it
    /// finished.
    Cancelled(CancelledError),
    /// The task's future panicked (the Rust form of an exception, rule T8).
    Panicked(PanicError),
}

impl TaskError {
    /// `true` for [`TaskError::Cancelled`].
    ///
    /// ```
    /// # use aioloop::{TaskError, CancelledError};
    /// assert!(TaskError::Cancelled(CancelledError::new(None)).is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled(_))
    }

    /// `true` for [`TaskError::Panicked`].
    ///
    /// ```
    /// # use aioloop::{TaskError, CancelledError};
    /// assert!(!TaskError::Cancelled(CancelledError::new(None)).is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled(c) => c.fmt(f),
            TaskError::Panicked(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for TaskError {}

/// asyncio's `CancelledError`, with its optional message.
///
/// ```
/// let e = aioloop::CancelledError::new(Some("stop".into()));
/// assert_eq!(e.message(), Some("stop"));
/// assert_eq!(e.to_string(), "CancelledError: stop");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelledError {
    msg: Option<Arc<str>>,
}

impl CancelledError {
    /// A cancellation with an optional message (asyncio's `cancel(msg)`).
    ///
    /// ```
    /// assert_eq!(aioloop::CancelledError::new(None).message(), None);
    /// ```
    pub fn new(msg: Option<Arc<str>>) -> Self {
        CancelledError { msg }
    }

    /// The message given to `cancel`, if any.
    ///
    /// ```
    /// assert_eq!(aioloop::CancelledError::new(Some("x".into())).message(), Some("x"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        self.msg.as_deref()
    }
}

impl fmt::Display for CancelledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.msg {
            Some(m) => write!(f, "CancelledError: {m}"),
            None => f.write_str("CancelledError"),
        }
    }
}

impl std::error::Error for CancelledError {}

/// A task's panic, caught on the worker (which survives it) and handed to the awaiter.
///
/// ```
/// use aioloop::{Runtime, TaskError};
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let Err(TaskError::Panicked(p)) = rt.block_on(rt.spawn(async { panic!("x{}", 1) })) else {
///     unreachable!()
/// };
/// assert_eq!(p.message(), Some("x1"));
/// ```
pub struct PanicError {
    payload: Box<dyn Any + Send + 'static>,
}

impl PanicError {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        PanicError { payload }
    }

    /// A second error for the same panic, for a second receiver (a task group's error list
    /// beside the task's own result): the payload is the message (or nothing).
    pub(crate) fn share(&self) -> PanicError {
        PanicError {
            payload: match self.message() {
                Some(m) => Box::new(m.to_string()),
                None => Box::new(()),
            },
        }
    }

    /// The panic message, when the payload is a string (as `panic!` makes it).
    ///
    /// ```
    /// # use aioloop::{Runtime, TaskError};
    /// # let rt = Runtime::builder().workers(1).build().unwrap();
    /// let Err(TaskError::Panicked(p)) = rt.block_on(rt.spawn(async { std::panic::panic_any(7u8) }))
    /// else { unreachable!() };
    /// assert_eq!(p.message(), None);
    /// ```
    pub fn message(&self) -> Option<&str> {
        if let Some(s) = self.payload.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.payload.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// The raw payload, e.g. to re-raise it with [`std::panic::resume_unwind`].
    ///
    /// ```
    /// # use aioloop::{Runtime, TaskError};
    /// # let rt = Runtime::builder().workers(1).build().unwrap();
    /// let Err(TaskError::Panicked(p)) = rt.block_on(rt.spawn(async { std::panic::panic_any(7u8) }))
    /// else { unreachable!() };
    /// assert_eq!(*p.into_payload().downcast::<u8>().unwrap(), 7);
    /// ```
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }
}

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PanicError").field(&self.message()).finish()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "task panicked: {m}"),
            None => f.write_str("task panicked"),
        }
    }
}

impl std::error::Error for PanicError {}

/// No event loop runs on this thread (asyncio's `RuntimeError: no running event loop`).
///
/// Returned by the `try_` variants of the functions that need a running loop
/// ([`try_current_task`](crate::try_current_task), [`try_all_tasks`](crate::try_all_tasks),
/// [`try_create_task`](crate::try_create_task)).
///
/// ```
/// let err = aioloop::try_current_task().unwrap_err();
/// assert_eq!(err.to_string(), "no running event loop");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRunningLoop;

impl fmt::Display for NoRunningLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no running event loop")
    }
}

impl std::error::Error for NoRunningLoop {}

/// [`enter_task`](crate::task::enter_task) found another task current on this thread
/// (rule L3). Nothing was changed.
///
/// ```
/// # use aioloop::task::{enter_task, leave_task, TaskLike, TaskRef, LoopId, next_task_id};
/// # use std::sync::Arc;
/// # struct T(u64);
/// # impl TaskLike for T {
/// #     fn id(&self) -> u64 { self.0 }
/// #     fn name(&self) -> String { format!("t{}", self.0) }
/// #     fn done(&self) -> bool { false }
/// #     fn loop_id(&self) -> LoopId { LoopId::new() }
/// # }
/// let a = TaskRef::new(Arc::new(T(next_task_id())));
/// let b = TaskRef::new(Arc::new(T(next_task_id())));
/// enter_task(&a).unwrap();
/// let err = enter_task(&b).unwrap_err();
/// assert!(err.to_string().starts_with("Cannot enter into task"));
/// leave_task(&a).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterError {
    pub(crate) task: String,
    pub(crate) current: String,
}

impl fmt::Display for EnterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot enter into task {} while another task {} is being executed.",
            self.task, self.current
        )
    }
}

impl std::error::Error for EnterError {}

/// [`leave_task`](crate::task::leave_task) was given a task that is not the current one
/// (rule L4). Nothing was changed.
///
/// ```
/// # use aioloop::task::{leave_task, TaskLike, TaskRef, LoopId, next_task_id};
/// # use std::sync::Arc;
/// # struct T(u64);
/// # impl TaskLike for T {
/// #     fn id(&self) -> u64 { self.0 }
/// #     fn name(&self) -> String { "t".into() }
/// #     fn done(&self) -> bool { false }
/// #     fn loop_id(&self) -> LoopId { LoopId::new() }
/// # }
/// let a = TaskRef::new(Arc::new(T(next_task_id())));
/// let err = leave_task(&a).unwrap_err();
/// assert!(err.to_string().ends_with("does not match the current task None."));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveError {
    pub(crate) task: String,
    pub(crate) current: String,
}

impl fmt::Display for LeaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Leaving task {} does not match the current task {}.",
            self.task, self.current
        )
    }
}

impl std::error::Error for LeaveError {}

/// A [`Builder`](crate::runtime::Builder) setting that cannot work. `build()` returns it
/// inside an [`std::io::Error`] of kind `InvalidInput`; `get_ref()` + `downcast_ref` recovers it.
///
/// ```
/// use aioloop::{BuildError, Runtime};
/// let err = Runtime::builder().workers(0).build().unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// let typed = err.get_ref().unwrap().downcast_ref::<BuildError>().unwrap();
/// assert_eq!(*typed, BuildError::ZeroWorkers);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: a runtime needs at least one worker thread.
    ZeroWorkers,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => {
                f.write_str("a runtime needs at least one worker (workers(0))")
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl From<BuildError> for std::io::Error {
    fn from(e: BuildError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// Misuse of a loop's lifecycle or scheduling API (rules S1, S6, S7, X6), each with
/// asyncio's message.
///
/// ```
/// let lp = aioloop::LocalLoop::new().unwrap();
/// lp.close().unwrap();
/// let err = lp.call_soon(|| {}).unwrap_err();
/// assert_eq!(err, aioloop::LoopError::Closed);
/// assert_eq!(err.to_string(), "Event loop is closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopError {
    /// The loop was closed: it accepts no work and cannot run.
    Closed,
    /// `run_*` on a loop that is already running (re-entrantly, from one of its callbacks).
    AlreadyRunning,
    /// `run_*` on a thread where another loop is running.
    AnotherLoopRunning,
    /// `stop()` ended `run_until_complete` before its future finished.
    StoppedBeforeComplete,
    /// `close()` on a running loop.
    CloseRunning,
    /// A NaN or `-inf` delay or time.
    InvalidDelay(InvalidDelay),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Closed => f.write_str("Event loop is closed"),
            LoopError::AlreadyRunning => f.write_str("This event loop is already running"),
            LoopError::AnotherLoopRunning => {
                f.write_str("Cannot run the event loop while another loop is running")
            }
            LoopError::StoppedBeforeComplete => {
                f.write_str("Event loop stopped before Future completed.")
            }
            LoopError::CloseRunning => f.write_str("Cannot close a running event loop"),
            LoopError::InvalidDelay(d) => d.fmt(f),
        }
    }
}

impl std::error::Error for LoopError {}

impl From<InvalidDelay> for LoopError {
    fn from(d: InvalidDelay) -> Self {
        LoopError::InvalidDelay(d)
    }
}

/// A delay or a time given in seconds that no timer can honour (rule X6): NaN, or minus
/// infinity. asyncio fails these with a `ValueError`/`OverflowError` rather than hang or
/// fire at a meaningless moment.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let err = rt.block_on(async { aioloop::sleep_secs(f64::NAN) }).unwrap_err();
/// assert_eq!(err.to_string(), "Invalid delay: NaN (not a number)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidDelay {
    /// The value was NaN.
    NaN,
    /// The value was minus infinity.
    NegativeInfinity,
}

impl fmt::Display for InvalidDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidDelay::NaN => f.write_str("Invalid delay: NaN (not a number)"),
            InvalidDelay::NegativeInfinity => f.write_str("Invalid delay: -inf"),
        }
    }
}

impl std::error::Error for InvalidDelay {}

/// asyncio's `InvalidStateError`: the operation does not fit the future's state (rules F2,
/// F3). [`message`](InvalidStateError::message) is asyncio's text: "invalid state" when
/// setting a done future, "Result is not ready." / "Exception is not set." when reading a
/// pending one.
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let fut = lp.create_future::<u8>();
/// fut.set_result(1).unwrap();
/// let err = fut.set_result(2).unwrap_err();
/// assert_eq!(err.message(), "invalid state");
/// assert_eq!(err.to_string(), "InvalidStateError: invalid state");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidStateError {
    msg: &'static str,
}

impl InvalidStateError {
    pub(crate) const SET: InvalidStateError = InvalidStateError {
        msg: "invalid state",
    };
    pub(crate) const RESULT: InvalidStateError = InvalidStateError {
        msg: "Result is not ready.",
    };
    pub(crate) const EXCEPTION: InvalidStateError = InvalidStateError {
        msg: "Exception is not set.",
    };

    pub(crate) const fn new(msg: &'static str) -> InvalidStateError {
        InvalidStateError { msg }
    }

    /// asyncio's message, without the `InvalidStateError: ` prefix.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// let Err(aioloop::FutureError::InvalidState(e)) = fut.result() else { unreachable!() };
    /// assert_eq!(e.message(), "Result is not ready.");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn message(&self) -> &'static str {
        self.msg
    }
}

impl fmt::Display for InvalidStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvalidStateError: {}", self.msg)
    }
}

impl std::error::Error for InvalidStateError {}

/// What reading a done task's outcome in one call can give instead of its value:
/// everything asyncio's `task.result()` / `task.exception()` can raise — its
/// `CancelledError`, the exception (a panic here, rule T8), or `InvalidStateError`.
/// Returned by [`Task::try_result`](crate::Task::try_result) and
/// [`Task::exception`](crate::Task::exception).
///
/// ```
/// use aioloop::{InvalidStateError, TaskResultError};
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let mut t = rt.spawn(std::future::pending::<()>());
/// let err = t.try_result().unwrap_err();
/// assert!(matches!(err, TaskResultError::InvalidState(_)));
/// assert_eq!(err.to_string(), "InvalidStateError: Result is not ready.");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskResultError {
    /// The task ended cancelled.
    Cancelled(CancelledError),
    /// The task panicked.
    Panicked(PanicError),
    /// The task is not done, or its outcome was already taken.
    InvalidState(InvalidStateError),
}

impl TaskResultError {
    /// `true` for [`TaskResultError::Cancelled`].
    ///
    /// ```
    /// let e = aioloop::TaskResultError::Cancelled(aioloop::CancelledError::new(None));
    /// assert!(e.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskResultError::Cancelled(_))
    }
}

impl From<TaskError> for TaskResultError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Cancelled(c) => TaskResultError::Cancelled(c),
            TaskError::Panicked(p) => TaskResultError::Panicked(p),
        }
    }
}

impl From<InvalidStateError> for TaskResultError {
    fn from(e: InvalidStateError) -> Self {
        TaskResultError::InvalidState(e)
    }
}

impl fmt::Display for TaskResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskResultError::Cancelled(c) => c.fmt(f),
            TaskResultError::Panicked(p) => p.fmt(f),
            TaskResultError::InvalidState(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TaskResultError {}
