//! `CancelledError::raise`: asyncio's bare `raise` in `except CancelledError:` as a future
//! of any output type, so that a handler can `return cancelled.raise().await` from a
//! function returning anything (no `unreachable!()` after it).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::cancel::reraise_current;

/// The future [`CancelledError::raise`](crate::CancelledError::raise) returns: never
/// resolves inside a built-in task.
///
/// ```
/// use aioloop::{CancelledError, Raise};
/// fn pass_on(e: CancelledError) -> Raise<u32> {
///     e.raise()
/// }
/// let _ = pass_on;
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Raise<T> {
    msg: Option<Option<Arc<str>>>,
    _output: PhantomData<fn() -> T>,
}

impl<T> Future for Raise<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        match self.msg.take() {
            Some(msg) => {
                if reraise_current(msg.clone()) {
                    Poll::Pending
                } else {
                    let e = crate::CancelledError::new(msg);
                    panic!("{e}: CancelledError::raise() outside a built-in task has no task to re-raise into (use reraise())")
                }
            }
            // Already re-raised: the enclosing scope drops us at its next poll.
            None => Poll::Pending,
        }
    }
}

impl<T> std::fmt::Debug for Raise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raise").field("msg", &self.msg).finish()
    }
}

impl crate::CancelledError {
    /// [`reraise`](crate::CancelledError::reraise) with any output type: the caught
    /// cancellation goes back to the next enclosing [`catch_cancel`](crate::catch_cancel)
    /// scope (or ends the task), and the returned future never resolves inside a task —
    /// so it can be the value of a function or branch of any type, as asyncio's bare
    /// `raise` can end any function.
    ///
    /// # Panics
    /// When awaited outside a built-in task (on a foreign executor), where there is no task to re-raise into and no `T` to return; use
    /// [`reraise`](crate::CancelledError::reraise) there, which resolves to the error.
    ///
    /// ```
    /// use aioloop::{catch_cancel, Runtime};
    ///
    /// async fn fetch() -> Result<u32, std::io::Error> {
    ///     match catch_cancel(std::future::pending::<u32>()).await {
    ///         Ok(v) => Ok(v),
    ///         Err(cancelled) => {
    ///             aioloop::yield_now().await; // async clean-up
    ///             cancelled.raise().await     // any type: no unreachable!() needed
    ///         }
    ///     }
    /// }
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// let (tx, started) = std::sync::mpsc::channel();
    /// let t = rt.spawn(async move {
    ///     tx.send(()).unwrap();
    ///     fetch().await
    /// });
    /// started.recv().unwrap();
    /// t.cancel(None);
    /// assert!(rt.block_on(t).unwrap_err().is_cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn raise<T>(self) -> Raise<T> {
        Raise {
            msg: Some(self.message().map(Into::into)),
            _output: PhantomData,
        }
    }
}
