//! The queue module's errors, each displaying the name of the asyncio exception it stands
//! for (asyncio raises them without a message) or, for `task_done`, asyncio's message.
//!
//! The errors of the operations that take an item (`put`, `put_nowait`) carry that item back,
//! since Rust cannot leave it with the caller as Python does.

use std::fmt;

/// [`get_nowait`](super::GenericQueue::get_nowait) on an empty queue: asyncio's
/// `QueueEmpty` (rule Q3).
///
/// ```
/// let q = aioloop::queue::Queue::<u8>::new(0);
/// let err = q.get_nowait().unwrap_err();
/// assert!(matches!(err, aioloop::queue::GetNowaitError::Empty(aioloop::queue::QueueEmpty)));
/// assert_eq!(aioloop::queue::QueueEmpty.to_string(), "QueueEmpty");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueEmpty")
    }
}

impl std::error::Error for QueueEmpty {}

/// [`put_nowait`](super::GenericQueue::put_nowait) on a full queue: asyncio's `QueueFull`
/// (rule Q3), holding the item that was not put.
///
/// ```
/// use aioloop::queue::{PutNowaitError, Queue};
///
/// let q = Queue::new(1);
/// q.put_nowait("a").unwrap();
/// let Err(PutNowaitError::Full(full)) = q.put_nowait("b") else { unreachable!() };
/// assert_eq!(full.to_string(), "QueueFull");
/// assert_eq!(full.into_inner(), "b");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueFull<T>(pub(crate) T);

impl<T> QueueFull<T> {
    /// The item that could not be put.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(1);
    /// q.put_nowait(1).unwrap();
    /// let Err(aioloop::queue::PutNowaitError::Full(e)) = q.put_nowait(2) else { panic!() };
    /// assert_eq!(e.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The operation met a queue that was [shut down](super::GenericQueue::shutdown): asyncio's
/// `QueueShutDown` (rules Q7, Q8). For `put` and `put_nowait` it holds the item that was not
/// put; for `get` and `get_nowait` the type parameter is `()`.
///
/// ```
/// use aioloop::queue::{PutNowaitError, Queue};
///
/// let q = Queue::new(0);
/// q.shutdown(false);
/// let Err(PutNowaitError::ShutDown(e)) = q.put_nowait(7) else { unreachable!() };
/// assert_eq!(e.to_string(), "QueueShutDown");
/// assert_eq!(e.into_inner(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueueShutDown<T = ()>(pub(crate) T);

impl<T> QueueShutDown<T> {
    /// The item that could not be put (`()` for a get).
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.shutdown(true);
    /// let Err(aioloop::queue::PutNowaitError::ShutDown(e)) = q.put_nowait('x') else { panic!() };
    /// assert_eq!(e.into_inner(), 'x');
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why [`get_nowait`](super::GenericQueue::get_nowait) returned no item (rule Q3).
///
/// ```
/// use aioloop::queue::{GetNowaitError, Queue};
///
/// let q = Queue::<u8>::new(0);
/// assert_eq!(q.get_nowait(), Err(GetNowaitError::Empty(aioloop::queue::QueueEmpty)));
/// q.shutdown(false);
/// let err = q.get_nowait().unwrap_err();
/// assert!(err.is_shut_down());
/// assert_eq!(err.to_string(), "QueueShutDown");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GetNowaitError {
    /// The queue is empty (asyncio's `QueueEmpty`).
    Empty(QueueEmpty),
    /// The queue is shut down and empty, or was shut down immediately (asyncio's
    /// `QueueShutDown`).
    ShutDown(QueueShutDown),
}

impl GetNowaitError {
    /// Whether this is the `QueueShutDown` case.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::<u8>::new(0);
    /// assert!(!q.get_nowait().unwrap_err().is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        matches!(self, GetNowaitError::ShutDown(_))
    }
}

/// Why [`put_nowait`](super::GenericQueue::put_nowait) did not put the item; either way the
/// item comes back.
///
/// ```
/// use aioloop::queue::{PutNowaitError, Queue};
///
/// let q = Queue::new(1);
/// q.put_nowait(1).unwrap();
/// let err = q.put_nowait(2).unwrap_err();
/// assert!(!err.is_shut_down());
/// assert_eq!(err.to_string(), "QueueFull");
/// assert_eq!(err.into_inner(), 2);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PutNowaitError<T> {
    /// The queue has `maxsize` items (asyncio's `QueueFull`).
    Full(QueueFull<T>),
    /// The queue is shut down (asyncio's `QueueShutDown`), which wins over full.
    ShutDown(QueueShutDown<T>),
}

impl<T> PutNowaitError<T> {
    /// Whether this is the `QueueShutDown` case.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.shutdown(false);
    /// assert!(q.put_nowait(()).unwrap_err().is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        matches!(self, PutNowaitError::ShutDown(_))
    }

    /// The item that was not put.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.shutdown(false);
    /// assert_eq!(q.put_nowait("kept").unwrap_err().into_inner(), "kept");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutNowaitError::Full(QueueFull(item))
            | PutNowaitError::ShutDown(QueueShutDown(item)) => item,
        }
    }
}

/// [`task_done`](super::GenericQueue::task_done) called more times than items were put:
/// asyncio's `ValueError('task_done() called too many times')` (rule Q6).
///
/// ```
/// let q = aioloop::queue::Queue::<u8>::new(0);
/// let err = q.task_done().unwrap_err();
/// assert_eq!(err.to_string(), "task_done() called too many times");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

// The item is user data of any type: Debug must not require `T: Debug`, so that every error
// here is a `std::error::Error` (the way tokio's `SendError` prints).
impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Debug for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown(..)")
    }
}

impl<T> fmt::Debug for PutNowaitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutNowaitError::Full(e) => e.fmt(f),
            PutNowaitError::ShutDown(e) => e.fmt(f),
        }
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull")
    }
}

impl<T> fmt::Display for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown")
    }
}

impl fmt::Display for GetNowaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetNowaitError::Empty(e) => e.fmt(f),
            GetNowaitError::ShutDown(e) => e.fmt(f),
        }
    }
}

impl<T> fmt::Display for PutNowaitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutNowaitError::Full(e) => e.fmt(f),
            PutNowaitError::ShutDown(e) => e.fmt(f),
        }
    }
}

impl<T> std::error::Error for QueueFull<T> {}
impl<T> std::error::Error for QueueShutDown<T> {}
impl std::error::Error for GetNowaitError {}
impl<T> std::error::Error for PutNowaitError<T> {}
