//! `SharedTask`: one task awaited from several places (asyncio lets any number of
//! coroutines `await` the same task; each gets the result).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::shim::Mutex;
use crate::task::done::{DoneCallback, Hook, HookSink, Outcome};
use crate::{Task, TaskError, TaskRef};

/// A cloneable handle to a task that every clone can await: each awaiter gets a clone of
/// the value (`T: Clone`), or of the error — a cancellation with its message, or a panic
/// with its message (the panic's payload itself goes to no one: [`PanicError::message`]
/// is what each copy keeps). asyncio's `await task` from several coroutines.
///
/// Awaiting does **not** pass an awaiter's cancellation on to the task (unlike awaiting
/// a [`Task`], rule T3): the task is shared, and one awaiter being cancelled must not
/// take the result away from the others; the cancelled awaiter's await ends, the task
/// goes on. Cancel the task itself through [`task_ref`](SharedTask::task_ref). A panic
/// nobody awaited is reported as never retrieved when the last clone is dropped (rule
/// T8).
///
/// [`PanicError::message`]: crate::PanicError::message
///
/// ```
/// use aioloop::{Runtime, SharedTask};
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let (a, b) = rt.block_on(async {
///     let shared = SharedTask::new(aioloop::create_task(async { String::from("hi") }));
///     let other = shared.clone();
///     let reader = aioloop::create_task(async move { other.await.unwrap() });
///     (shared.await.unwrap(), reader.await.unwrap())
/// });
/// assert_eq!((a.as_str(), b.as_str()), ("hi", "hi"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SharedTask<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    task_ref: TaskRef,
    state: Mutex<State<T>>,
}

struct State<T> {
    task: Task<T>,
    outcome: Option<Result<T, TaskError>>,
    ended: bool,
    wakers: Vec<Waker>,
}

impl<T: Send + 'static> HookSink for Inner<T> {
    fn task_done(&self, _key: usize, _task: &TaskRef, _outcome: &Outcome) -> bool {
        let wakers = {
            let mut s = self.state.lock();
            s.ended = true;
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
        // Not retrieved here: the first awaiter's read retrieves it.
        false
    }
}

impl<T: Send + 'static> SharedTask<T> {
    /// Shares `task`.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let s = aioloop::SharedTask::new(rt.spawn(async { 1 }));
    /// assert_eq!(rt.block_on(s.clone()).unwrap(), rt.block_on(s).unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(task: Task<T>) -> SharedTask<T> {
        let task_ref = task.task_ref();
        let inner = Arc::new(Inner {
            task_ref: task_ref.clone(),
            state: Mutex::new(State {
                task,
                outcome: None,
                ended: false,
                wakers: Vec::new(),
            }),
        });
        if let Some(raw) = task_ref.raw() {
            raw.add_done(DoneCallback::Hook(Hook::new(inner.clone(), 0)));
        }
        SharedTask { inner }
    }
}

impl<T> SharedTask<T> {
    /// The shared task, e.g. to cancel it or read its name.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(async {});
    /// let id = t.id();
    /// assert_eq!(aioloop::SharedTask::new(t).task_ref().id(), id);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_ref(&self) -> TaskRef {
        self.inner.task_ref.clone()
    }

    /// `true` once the task has finished.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let s = aioloop::SharedTask::new(rt.spawn(std::future::pending::<()>()));
    /// assert!(!s.done());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        self.inner.task_ref.done()
    }
}

/// A copy of a task's outcome for one more reader.
fn copy_outcome<T: Clone>(outcome: &Result<T, TaskError>) -> Result<T, TaskError> {
    match outcome {
        Ok(v) => Ok(v.clone()),
        Err(TaskError::Cancelled(c)) => Err(TaskError::Cancelled(c.clone())),
        Err(TaskError::Panicked(p)) => Err(TaskError::Panicked(p.share())),
    }
}

impl<T: Clone> Future for SharedTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.inner.state.lock();
        if s.outcome.is_none() {
            if s.ended || s.task.done() {
                let out = match s.task.result() {
                    Ok(out) => out,
                    // Only this handle reads the task, once: unreachable in practice.
                    Err(e) => panic!("SharedTask: {e}"),
                };
                s.outcome = Some(out);
            } else {
                if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    s.wakers.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        let out = s.outcome.as_ref().map(copy_outcome);
        Poll::Ready(out.expect("filled above"))
    }
}

impl<T> Clone for SharedTask<T> {
    fn clone(&self) -> Self {
        SharedTask {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Unpin for SharedTask<T> {}

impl<T> std::fmt::Debug for SharedTask<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedTask")
            .field(&self.inner.task_ref)
            .finish()
    }
}

impl<T: Send + 'static> From<Task<T>> for SharedTask<T> {
    fn from(task: Task<T>) -> Self {
        SharedTask::new(task)
    }
}
