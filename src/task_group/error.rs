//! The errors of [`TaskGroup`](crate::TaskGroup): misuse (rule G1) and the group's
//! failure, asyncio's `ExceptionGroup` (rule G4).

use std::error::Error;
use std::fmt;

use crate::error::PanicError;

/// A boxed error, the type a [`TaskGroup`](crate::TaskGroup) body's `Err` is kept as.
///
/// ```
/// let e: aioloop::BoxError = "bad input".into();
/// assert_eq!(e.to_string(), "bad input");
/// ```
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What [`TaskGroup::run`](crate::TaskGroup::run) and
/// [`TaskGroup::create_task`](crate::TaskGroup::create_task) return instead of a value.
///
/// The misuse variants carry asyncio's `RuntimeError` messages (rule G1); [`Failed`] is
/// asyncio's `ExceptionGroup("unhandled errors in a TaskGroup", ...)` (rule G4).
///
/// [`Failed`]: TaskGroupError::Failed
///
/// ```
/// use aioloop::{TaskGroup, TaskGroupError};
///
/// let tg = TaskGroup::new();
/// let err = tg.create_task(async {}).unwrap_err();
/// assert!(matches!(err, TaskGroupError::NotEntered));
/// assert_eq!(err.to_string(), "TaskGroup has not been entered");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskGroupError {
    /// `create_task` on a group whose [`run`](crate::TaskGroup::run) has not begun.
    NotEntered,
    /// `run` called a second time on the same group (asyncio's "entered twice").
    AlreadyEntered,
    /// `create_task` after the group finished (its children are all done and its scope
    /// ended, or is ending).
    Finished,
    /// `create_task` while the group is aborting: a child failed, the body failed, or the
    /// parent was cancelled (rule G3).
    ShuttingDown,
    /// `run` with no current task (outside any loop, or on a thread that runs none): the
    /// group needs a parent task (rule G1).
    NoParentTask,
    /// One or more children (or the body) failed: every failure, in the order they
    /// happened (rule G4).
    Failed(ExceptionGroup),
}

impl TaskGroupError {
    /// The failures, for [`TaskGroupError::Failed`]; `None` for the misuse variants.
    ///
    /// ```
    /// assert!(aioloop::TaskGroupError::Finished.failures().is_none());
    /// ```
    pub fn failures(&self) -> Option<&[Failure]> {
        match self {
            TaskGroupError::Failed(g) => Some(g.failures()),
            _ => None,
        }
    }
}

impl TaskGroupError {
    /// The body's own error, if the group failed with one of type `E` (the body's `Err`,
    /// kept boxed in [`Failure::Body`]): how a body that returns its own error type gets it
    /// back typed.
    ///
    /// ```
    /// use aioloop::{BoxError, Runtime, TaskGroup};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Quota(u32);
    /// impl std::fmt::Display for Quota {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "quota {}", self.0) }
    /// }
    /// impl std::error::Error for Quota {}
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// let err = rt.block_on(rt.spawn(async {
    ///     TaskGroup::new()
    ///         .run(|tg| async move {
    ///             tg.create_task(async {})?;       // `?` on TaskGroupError ...
    ///             Err(Quota(3))?;                   // ... and on the body's own error
    ///             Ok::<_, BoxError>(())
    ///         })
    ///         .await
    ///         .unwrap_err()
    /// }))
    /// .unwrap();
    /// assert_eq!(err.body_error::<Quota>(), Some(&Quota(3)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn body_error<E: Error + 'static>(&self) -> Option<&E> {
        self.failures()?.iter().find_map(|f| match f {
            Failure::Body(e) => e.downcast_ref::<E>(),
            _ => None,
        })
    }
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskGroupError::NotEntered => f.write_str("TaskGroup has not been entered"),
            TaskGroupError::AlreadyEntered => f.write_str("TaskGroup has already been entered"),
            TaskGroupError::Finished => f.write_str("TaskGroup is finished"),
            TaskGroupError::ShuttingDown => f.write_str("TaskGroup is shutting down"),
            TaskGroupError::NoParentTask => f.write_str(
                "TaskGroup cannot determine the parent task: it should be used inside a task",
            ),
            TaskGroupError::Failed(g) => g.fmt(f),
        }
    }
}

impl Error for TaskGroupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TaskGroupError::Failed(g) => Some(g),
            _ => None,
        }
    }
}

/// asyncio's `ExceptionGroup` raised by a task group: every failure, in the order they
/// happened (children as they failed, then the body's own error, as asyncio appends it
/// on exit).
///
/// ```
/// use aioloop::{Runtime, TaskGroup, TaskGroupError};
///
/// let rt = Runtime::builder().workers(1).build()?;
/// let err = rt.block_on(rt.spawn(async {
///     TaskGroup::new()
///         .run(|tg| async move {
///             tg.create_task(async { panic!("boom") })?;
///             Ok::<_, TaskGroupError>(())
///         })
///         .await
///         .unwrap_err()
/// }))
/// .unwrap();
/// let TaskGroupError::Failed(group) = err else { unreachable!() };
/// assert_eq!(group.to_string(), "unhandled errors in a TaskGroup (1 sub-exception)");
/// assert_eq!(group.failures()[0].panic_message(), Some("boom"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ExceptionGroup {
    failures: Vec<Failure>,
}

impl ExceptionGroup {
    pub(crate) fn new(failures: Vec<Failure>) -> ExceptionGroup {
        ExceptionGroup { failures }
    }

    /// The failures, in the order they happened.
    ///
    /// ```
    /// # use aioloop::{Runtime, TaskGroup, TaskGroupError};
    /// # let rt = Runtime::builder().workers(1).build().unwrap();
    /// let err = rt.block_on(rt.spawn(async {
    ///     TaskGroup::new().run(|_| async { Err::<(), _>("bad input") }).await.unwrap_err()
    /// })).unwrap();
    /// assert_eq!(err.failures().unwrap()[0].to_string(), "bad input");
    /// ```
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The failures, by value (e.g. to downcast a body error).
    ///
    /// ```
    /// # use aioloop::{Runtime, TaskGroup, TaskGroupError, Failure};
    /// # let rt = Runtime::builder().workers(1).build().unwrap();
    /// let err = rt.block_on(rt.spawn(async {
    ///     TaskGroup::new().run(|_| async { Err::<(), _>(std::fmt::Error) }).await.unwrap_err()
    /// })).unwrap();
    /// let TaskGroupError::Failed(g) = err else { unreachable!() };
    /// let Failure::Body(e) = g.into_failures().remove(0) else { unreachable!() };
    /// assert!(e.downcast::<std::fmt::Error>().is_ok());
    /// ```
    pub fn into_failures(self) -> Vec<Failure> {
        self.failures
    }
}

impl fmt::Display for ExceptionGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        let noun = if n == 1 {
            "sub-exception"
        } else {
            "sub-exceptions"
        };
        write!(f, "unhandled errors in a TaskGroup ({n} {noun})")
    }
}

impl Error for ExceptionGroup {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.failures.first().map(|f| f as &(dyn Error + 'static))
    }
}

/// One failure inside an [`ExceptionGroup`]. A panic is kept as its message (the payload
/// itself stays with the child's [`Task`](crate::Task), whose `await` still yields the
/// full [`PanicError`](crate::PanicError)), so that the group error is `Send + Sync` and
/// can travel through `?` as a [`BoxError`].
///
/// ```
/// # use aioloop::{Runtime, TaskGroup, TaskGroupError, Failure};
/// # let rt = Runtime::builder().workers(1).build().unwrap();
/// let err = rt.block_on(rt.spawn(async {
///     TaskGroup::new()
///         .run(|tg| async move {
///             tg.create_task_named("worker", async { panic!("no") })?;
///             Ok::<_, TaskGroupError>(())
///         })
///         .await
///         .unwrap_err()
/// })).unwrap();
/// match &err.failures().unwrap()[0] {
///     Failure::Child { name, .. } => assert_eq!(name, "worker"),
///     other => unreachable!("{other}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A child task panicked (the Rust form of an exception, rule T8).
    Child {
        /// The child's task id.
        id: u64,
        /// The child's name when it failed.
        name: String,
        /// The panic message, when the payload was a string.
        message: Option<String>,
    },
    /// The body returned `Err`.
    Body(BoxError),
    /// A child created with
    /// [`create_task_fallible`](crate::TaskGroup::create_task_fallible) returned `Err`
    /// (asyncio: a child raised an exception). The child's `Task` yields the same error.
    ChildError {
        /// The child's task id.
        id: u64,
        /// The child's name when it failed.
        name: String,
        /// The error the child returned.
        error: crate::SharedError,
    },
    /// The body panicked.
    BodyPanicked {
        /// The panic message, when the payload was a string.
        message: Option<String>,
    },
}

impl Failure {
    pub(crate) fn child(id: u64, name: String, panic: &PanicError) -> Failure {
        Failure::Child {
            id,
            name,
            message: panic.message().map(str::to_owned),
        }
    }

    pub(crate) fn body_panicked(panic: PanicError) -> Failure {
        Failure::BodyPanicked {
            message: panic.message().map(str::to_owned),
        }
    }

    /// The panic message, for the two panic variants (when the payload is a string).
    ///
    /// ```
    /// # use aioloop::{Runtime, TaskGroup, TaskGroupError};
    /// # let rt = Runtime::builder().workers(1).build().unwrap();
    /// let err = rt.block_on(rt.spawn(async {
    ///     let r = TaskGroup::new()
    ///         .run(|_| async {
    ///             if true {
    ///                 panic!("body");
    ///             }
    ///             Ok::<(), TaskGroupError>(())
    ///         })
    ///         .await;
    ///     r.unwrap_err()
    /// })).unwrap();
    /// assert_eq!(err.failures().unwrap()[0].panic_message(), Some("body"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            Failure::Child { message, .. } | Failure::BodyPanicked { message } => {
                message.as_deref()
            }
            Failure::Body(_) | Failure::ChildError { .. } => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (who, message) = match self {
            Failure::Body(e) => return e.fmt(f),
            Failure::ChildError { name, error, .. } => return write!(f, "{name} failed: {error}"),
            Failure::Child { name, message, .. } => (name.as_str(), message),
            Failure::BodyPanicked { message } => ("the TaskGroup body", message),
        };
        match message {
            Some(m) => write!(f, "{who} panicked: {m}"),
            None => write!(f, "{who} panicked"),
        }
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Failure::Body(e) => Some(&**e),
            Failure::ChildError { error, .. } => Some(&**error),
            _ => None,
        }
    }
}
