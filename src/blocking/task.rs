//! The one-shot slot between a blocking job and the future awaiting it (rule B6).
//!
//! The pool thread stores the result and wakes the awaiter; the awaiter takes it. Either
//! side may be gone first: a dropped [`Blocking`] (its task was cancelled) marks the slot
//! abandoned and the result is dropped on the pool thread as it arrives; a job dropped
//! unrun (its pool discarded its queue at shutdown) stores `ExecutorError::Shutdown`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::ExecutorError;
use crate::error::PanicError;
use crate::shim::{Arc, Mutex};

enum Slot<T> {
    /// Not finished; the awaiter's waker, once it polled.
    Waiting(Option<Waker>),
    Done(Result<T, ExecutorError>),
    /// The awaiter took the result, or dropped the future.
    Closed,
}

/// The future of a job submitted to an executor: what `run_in_executor` returns (and
/// what `to_thread` awaits). Awaiting it gives the closure's value, or why there is none.
///
/// Dropping it (cancelling the task that awaits it) does not stop the closure, which runs
/// to the end on its pool thread; its value is then dropped there (asyncio: cancelling the
/// awaiting task does not interrupt the thread).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let job: aioloop::Blocking<i32> = rt.handle().run_in_executor(None, || 6 * 7);
/// let v = rt.block_on(job);
/// assert_eq!(v.unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "the job runs anyway; await this for its value"]
pub struct Blocking<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// The pool side of a [`Blocking`]: completes it once, or with `Shutdown` if dropped.
pub(crate) struct Completer<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Blocking<T> {
    /// A future and its completer.
    pub(crate) fn pair() -> (Blocking<T>, Completer<T>) {
        let slot = Arc::new(Mutex::new(Slot::Waiting(None)));
        (
            Blocking { slot: slot.clone() },
            Completer { slot: Some(slot) },
        )
    }

    /// A future already finished with `err` (a submission that failed).
    pub(crate) fn failed(err: ExecutorError) -> Blocking<T> {
        Blocking {
            slot: Arc::new(Mutex::new(Slot::Done(Err(err)))),
        }
    }
}

impl<T> Completer<T> {
    pub(crate) fn complete(mut self, result: Result<T, ExecutorError>) {
        if let Some(slot) = self.slot.take() {
            finish(&slot, result);
        }
    }
}

/// Stores `result` unless the awaiter is gone (then it is dropped here, outside the
/// lock), and wakes the awaiter outside the lock.
fn finish<T>(slot: &Mutex<Slot<T>>, result: Result<T, ExecutorError>) {
    let mut s = slot.lock();
    match std::mem::replace(&mut *s, Slot::Closed) {
        Slot::Waiting(waker) => {
            *s = Slot::Done(result);
            drop(s);
            if let Some(w) = waker {
                w.wake();
            }
        }
        other => {
            *s = other;
            drop(s);
            drop(result);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            finish(&slot, Err(ExecutorError::Shutdown));
        }
    }
}

impl<T> Future for Blocking<T> {
    type Output = Result<T, ExecutorError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock();
        match std::mem::replace(&mut *s, Slot::Closed) {
            Slot::Done(r) => Poll::Ready(r),
            Slot::Waiting(w) => {
                let w = match w {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *s = Slot::Waiting(Some(w));
                Poll::Pending
            }
            Slot::Closed => panic!("a Blocking future was polled after it completed"),
        }
    }
}

impl<T> Drop for Blocking<T> {
    fn drop(&mut self) {
        // A result already stored is dropped with the slot's last reference; one still to
        // come is dropped by `finish` as it arrives.
        let old = std::mem::replace(&mut *self.slot.lock(), Slot::Closed);
        drop(old);
    }
}

impl<T> std::fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.slot.lock() {
            Slot::Waiting(_) => "running",
            Slot::Done(_) => "done",
            Slot::Closed => "closed",
        };
        f.debug_struct("Blocking").field("state", &state).finish()
    }
}

/// Binds `f` to a new slot: the job for a pool and the future for its awaiter. The job
/// catches `f`'s panic into `ExecutorError::Panicked` (B6).
pub(crate) fn job<F, T>(f: F) -> (super::Job, Blocking<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (fut, done) = Blocking::pair();
    let job: super::Job = Box::new(move || {
        let r = crate::unwind::catch(f).map_err(|p| ExecutorError::Panicked(PanicError::new(p)));
        done.complete(r);
    });
    (job, fut)
}
