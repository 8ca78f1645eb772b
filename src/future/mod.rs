//! `aioloop::Future<T>`: asyncio's `Future`, made by `loop.create_future()` (rules F1–F7, T3).
//!
//! A future is a slot bound to one loop (a runtime or a `LocalLoop`), completed once by
//! [`set_result`](Future::set_result), [`set_exception`](Future::set_exception) or
//! [`cancel`](Future::cancel), and read by any number of awaiters. The handle is an `Arc`;
//! clones share the slot.
//!
//! * **State** (`Inner::state`, one mutex): the outcome, the done-callback registrations in
//!   order, the wakers of pending awaiters (a slab: each awaiting handle keeps its index, so
//!   re-polls replace its waker in place and a dropped awaiter frees its slot), and F6's
//!   "exception not yet retrieved" flag. Completion swaps the outcome in and takes the
//!   callbacks and wakers under the lock, then queues/wakes them after releasing it, so no
//!   user code (callbacks, wakers, drops) runs under the lock.
//! * **Callbacks are never run inline** (rule F5): each registration is queued with its
//!   loop's `call_soon` in registration order; a registration added to a done future is
//!   queued at once. Whoever completes the future or finds it done queues; the lock makes
//!   "taken by the completer" and "queued by the adder" exclusive, so each is queued once.
//! * **Awaiting** (`impl std::future::Future`) yields `Result<T, FutureError>` with a clone
//!   of the value, so `T: Clone`; await a clone of the handle to keep it.
//! * **T3.** A built-in task with an undelivered cancellation request that awaits a pending
//!   future cancels it (`task::cancel::request_to_propagate`, once per request) and stays
//!   pending, exactly as an awaited `Task<T>` does: the request is then delivered to the
//!   task — caught by an enclosing `catch_cancel` scope, or ending the task cancelled.
//! * **F6.** The last handle dropped with a stored error nobody read (`result()`,
//!   `exception()`, an await) reports "Future exception was never retrieved" to the loop's
//!   exception handler, on the dropping thread.
//! * **F7.** An await on a thread that runs another loop resolves to
//!   [`FutureError::DifferentLoop`]. An await on a thread with no loop at all (a plain
//!   executor) is allowed: wakers are thread-safe.

mod error;

mod loop_api;
mod threadsafe;

pub use error::{DifferentLoopError, FutureError, SharedError};
pub use threadsafe::{run_coroutine_threadsafe, ConcurrentError, ConcurrentFuture, SubmitTarget};

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::{CancelledError, InvalidStateError, NoRunningLoop};
use crate::event_loop::context::{self, LoopRef};
use crate::event_loop::exception::ExceptionContext;
use crate::shim::{Arc, Mutex};
use crate::task::LoopId;

type Callback<T> = std::sync::Arc<dyn Fn(&Future<T>) + Send + Sync + 'static>;

/// One `add_done_callback` registration: everything captured when it was added.
struct Registration<T> {
    callback: Callback<T>,
    /// The context current when the callback was added; it runs in it (T12).
    context: crate::contextvars::Context,
}

impl<T> Registration<T> {
    fn is(&self, callback: *const ()) -> bool {
        std::sync::Arc::as_ptr(&self.callback).cast::<()>() == callback
    }
}

enum Outcome<T> {
    Pending,
    Cancelled(CancelledError),
    Value(T),
    Exception(SharedError),
}

struct State<T> {
    outcome: Outcome<T>,
    callbacks: Vec<Registration<T>>,
    /// Pending awaiters' wakers, indexed by `Future::waiter`; `free` lists vacant indices.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// asyncio's `__log_traceback`: an error is stored and nobody has read it (rule F6).
    unretrieved: bool,
}

impl<T> State<T> {
    fn is_pending(&self) -> bool {
        matches!(self.outcome, Outcome::Pending)
    }

    /// `result()` (rule F3); reading a stored error counts as retrieving it (F6).
    fn result(&mut self) -> Result<T, FutureError>
    where
        T: Clone,
    {
        match &self.outcome {
            Outcome::Pending => Err(FutureError::InvalidState(InvalidStateError::RESULT)),
            Outcome::Cancelled(c) => Err(FutureError::Cancelled(c.clone())),
            Outcome::Value(v) => Ok(v.clone()),
            Outcome::Exception(e) => {
                self.unretrieved = false;
                Err(FutureError::Exception(e.clone()))
            }
        }
    }
}

struct Inner<T> {
    /// The loop it belongs to: where its callbacks are queued and its F6 report goes.
    bound: LoopRef,
    state: Mutex<State<T>>,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        // Rule F6: the last handle is gone and the stored error was never read.
        let st = self.state.lock();
        let Outcome::Exception(e) = &st.outcome else {
            return;
        };
        if !st.unretrieved {
            return;
        }
        let mut ctx = ExceptionContext::new("Future exception was never retrieved");
        ctx.future = Some(Describe(&st.outcome, None).to_string());
        ctx.error = Some(e.clone());
        drop(st);
        self.bound.call_exception_handler(ctx);
    }
}

/// asyncio's `Future` (`loop.create_future()`): a result slot bound to one loop, completed
/// once, awaited by anyone.
///
/// Clones share the slot. Awaiting a handle yields `Ok(value)` (a clone, hence `T: Clone`)
/// or a [`FutureError`]; to await without giving up a handle, await a clone. Done callbacks
/// ([`add_done_callback`](Future::add_done_callback)) run on the future's loop, never
/// inline (rule F5). If the last handle is dropped holding an error nobody read, the loop's
/// exception handler hears "Future exception was never retrieved" (rule F6).
///
/// ```
/// use aioloop::Runtime;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let v = rt.block_on(async {
///     let fut = aioloop::create_future::<u32>();
///     let setter = fut.clone();
///     aioloop::create_task(async move { setter.set_result(42).unwrap() });
///     fut.await
/// });
/// assert_eq!(v.unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Future<T> {
    inner: Arc<Inner<T>>,
    /// This handle's index in `State::wakers` while it awaits.
    waiter: Option<usize>,
}

/// asyncio's `loop.create_future()` on the loop running on this thread (a runtime, inside a
/// task or `block_on`, or a running `LocalLoop`).
///
/// # Panics
/// Outside a running loop ("no running event loop"); see [`try_create_future`].
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let done = lp.run_until_complete(async {
///     let fut = aioloop::create_future::<&str>();
///     fut.set_result("hi").unwrap();
///     fut.done()
/// })?;
/// assert!(done);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_future<T: Send + 'static>() -> Future<T> {
    match try_create_future() {
        Ok(f) => f,
        Err(e) => panic!("{e}: aioloop::create_future() must be called inside a running loop"),
    }
}

/// [`create_future`], returning `Err(NoRunningLoop)` outside a running loop.
///
/// ```
/// assert!(aioloop::try_create_future::<u8>().is_err());
/// ```
pub fn try_create_future<T: Send + 'static>() -> Result<Future<T>, NoRunningLoop> {
    context::current_owner()
        .map(Future::new)
        .ok_or(NoRunningLoop)
}

impl<T> Future<T> {
    pub(crate) fn new(bound: LoopRef) -> Future<T> {
        Future {
            inner: Arc::new(Inner {
                bound,
                state: Mutex::new(State {
                    outcome: Outcome::Pending,
                    callbacks: Vec::new(),
                    wakers: Vec::new(),
                    free: Vec::new(),
                    unretrieved: false,
                }),
            }),
            waiter: None,
        }
    }

    pub(crate) fn bound_to(owner: LoopRef) -> Future<T> {
        Future::new(owner)
    }

    /// asyncio's `done()` (rule F1): finished or cancelled.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// assert!(!fut.done());
    /// fut.set_result(1).unwrap();
    /// assert!(fut.done());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        !self.inner.state.lock().is_pending()
    }

    /// asyncio's `cancelled()` (rule F1).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// assert!(fut.cancel(None));
    /// assert!(fut.cancelled() && fut.done());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        matches!(self.inner.state.lock().outcome, Outcome::Cancelled(_))
    }

    /// The loop the future belongs to (asyncio's `get_loop()`).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.create_future::<u8>().loop_id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn loop_id(&self) -> LoopId {
        self.inner.bound.id()
    }

    /// asyncio's `exception()` (rule F3): `Ok(Some(e))` for a stored error (which counts as
    /// retrieving it, rule F6), `Ok(None)` for a value; a cancelled future gives its
    /// [`FutureError::Cancelled`], a pending one [`FutureError::InvalidState`] ("Exception
    /// is not set.").
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// assert_eq!(fut.exception().unwrap_err().to_string(), "InvalidStateError: Exception is not set.");
    /// fut.set_exception("boom").unwrap();
    /// assert_eq!(fut.exception().unwrap().unwrap().to_string(), "boom");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn exception(&self) -> Result<Option<SharedError>, FutureError> {
        let mut st = self.inner.state.lock();
        match &st.outcome {
            Outcome::Pending => Err(FutureError::InvalidState(InvalidStateError::EXCEPTION)),
            Outcome::Cancelled(c) => Err(FutureError::Cancelled(c.clone())),
            Outcome::Value(_) => Ok(None),
            Outcome::Exception(e) => {
                let e = e.clone();
                st.unretrieved = false;
                Ok(Some(e))
            }
        }
    }

    /// A cancellation request, with its message already shared (the T3 path passes the
    /// task's). On a done future it counts as retrieving a stored error (F6: asyncio's
    /// `cancel()` clears `__log_traceback` before it checks the state).
    fn cancel_with(&self, msg: Option<std::sync::Arc<str>>) -> bool
    where
        T: Send + 'static,
    {
        let done = self
            .complete(Outcome::Cancelled(CancelledError::new(msg)))
            .is_err();
        if done {
            self.inner.state.lock().unretrieved = false;
        }
        !done
    }

    /// Moves a pending future to `outcome`, then queues its callbacks and wakes its
    /// awaiters; gives `outcome` back if the future was done.
    fn complete(&self, outcome: Outcome<T>) -> Result<(), Outcome<T>>
    where
        T: Send + 'static,
    {
        let mut st = self.inner.state.lock();
        if !st.is_pending() {
            return Err(outcome);
        }
        st.unretrieved = matches!(outcome, Outcome::Exception(_));
        st.outcome = outcome;
        let callbacks = std::mem::take(&mut st.callbacks);
        let wakers = std::mem::take(&mut st.wakers);
        st.free = Vec::new();
        drop(st);
        for r in callbacks {
            self.schedule(r);
        }
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
        Ok(())
    }

    /// Rule F5: queues one registration on the future's loop (dropped if it is closed).
    fn schedule(&self, r: Registration<T>)
    where
        T: Send + 'static,
    {
        let fut = self.clone();
        self.inner.bound.call_soon(move || {
            let Registration {
                callback,
                mut context,
            } = r;
            context.run(|| callback(&fut))
        });
    }

    fn different_loop(&self, awaiting_loop: LoopId) -> DifferentLoopError {
        DifferentLoopError {
            task: crate::task::current::get().map_or_else(|| "None".to_owned(), |t| t.to_string()),
            future: self.to_string(),
            future_loop: self.loop_id(),
            awaiting_loop,
        }
    }
}

impl<T: Send + 'static> Future<T> {
    /// asyncio's `set_result(v)` (rule F2): completes a pending future with `v`, queues its
    /// callbacks and wakes its awaiters.
    ///
    /// # Errors
    /// [`InvalidStateError`] ("invalid state") if the future is already done; `v` is
    /// dropped.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// fut.set_result(7).unwrap();
    /// assert_eq!(fut.result().unwrap(), 7);
    /// assert!(fut.set_result(8).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError> {
        self.complete(Outcome::Value(value))
            .map_err(|_| InvalidStateError::SET)
    }

    /// asyncio's `set_exception(e)` (rule F2): completes a pending future with an error,
    /// which every reader then shares (as a [`SharedError`]). Anything that converts into a
    /// `Box<dyn Error + Send + Sync>` will do: an error value, a `String`, a `&str`.
    ///
    /// # Errors
    /// [`InvalidStateError`] ("invalid state") if the future is already done.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// fut.set_exception(std::io::Error::other("disk on fire")).unwrap();
    /// assert_eq!(fut.result().unwrap_err().to_string(), "disk on fire");
    /// assert!(fut.set_exception("again").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_exception(
        &self,
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Result<(), InvalidStateError> {
        let error: SharedError = error.into().into();
        self.complete(Outcome::Exception(error))
            .map_err(|_| InvalidStateError::SET)
    }

    /// asyncio's `cancel(msg)` (rule F4): `false` if the future is done; otherwise it
    /// becomes cancelled with `msg`, its callbacks are queued, its awaiters woken, and it
    /// returns `true`. On a future that failed, the `false` call counts as retrieving the
    /// error: no "Future exception was never retrieved" report follows (F6).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// assert!(fut.cancel(Some("enough")));
    /// assert!(!fut.cancel(None));
    /// assert_eq!(fut.result().unwrap_err().to_string(), "CancelledError: enough");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.cancel_with(msg.map(Into::into))
    }

    /// asyncio's `add_done_callback(cb)` (rule F5): when the future is done, `cb(&future)`
    /// is queued on the future's loop with `call_soon`, in registration order; if it is
    /// already done, `cb` is queued at once. Never called inline. On a multi-worker
    /// runtime, queued callbacks, like tasks, may be run by different workers.
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// let hit = Arc::new(AtomicBool::new(false));
    /// let h = hit.clone();
    /// fut.add_done_callback(Arc::new(move |f: &aioloop::Future<u8>| {
    ///     h.store(f.result().unwrap() == 5, Ordering::SeqCst)
    /// }));
    /// fut.set_result(5).unwrap();
    /// assert!(!hit.load(Ordering::SeqCst)); // queued, not run
    /// lp.run_once(Some(std::time::Duration::ZERO))?;
    /// assert!(hit.load(Ordering::SeqCst));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_done_callback<F>(&self, cb: std::sync::Arc<F>)
    where
        F: Fn(&Future<T>) + Send + Sync + 'static,
    {
        let r = Registration {
            callback: cb,
            context: crate::contextvars::copy_context(),
        };
        let mut st = self.inner.state.lock();
        if st.is_pending() {
            st.callbacks.push(r);
            return;
        }
        drop(st);
        self.schedule(r);
    }

    /// asyncio's `remove_done_callback(cb)` (rule F5): removes every registration of this
    /// very `Arc` (pointer equality) that has not been queued yet and returns how many.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// let cb = Arc::new(|_: &aioloop::Future<u8>| {});
    /// fut.add_done_callback(cb.clone());
    /// fut.add_done_callback(cb.clone());
    /// assert_eq!(fut.remove_done_callback(&cb), 2);
    /// assert_eq!(fut.remove_done_callback(&cb), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_done_callback<F: ?Sized>(&self, cb: &std::sync::Arc<F>) -> usize {
        let target = std::sync::Arc::as_ptr(cb).cast::<()>();
        let mut st = self.inner.state.lock();
        let (keep, removed): (Vec<_>, Vec<_>) = st.callbacks.drain(..).partition(|r| !r.is(target));
        st.callbacks = keep;
        drop(st);
        // The removed closures are dropped here, outside the lock.
        removed.len()
    }
}

impl<T: Clone> Future<T> {
    /// asyncio's `result()` (rule F3): the value (cloned), or the stored error (which counts
    /// as retrieving it, rule F6), or [`FutureError::Cancelled`] with the cancel message;
    /// [`FutureError::InvalidState`] ("Result is not ready.") while pending.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<String>();
    /// assert_eq!(fut.result().unwrap_err().to_string(), "InvalidStateError: Result is not ready.");
    /// fut.set_result("ok".into()).unwrap();
    /// assert_eq!(fut.result().unwrap(), "ok");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn result(&self) -> Result<T, FutureError> {
        self.inner.state.lock().result()
    }
}

impl<T: Clone + Send + 'static> Future<T> {
    /// Awaits the future the way asyncio's `await fut` does inside a task: a cancelled
    /// future raises its `CancelledError` *into the task* (re-raised with
    /// [`CancelledError::raise`], so the next enclosing
    /// [`catch_cancel`](crate::catch_cancel) scope gets it, or the task ends cancelled)
    /// instead of coming back as `Err(FutureError::Cancelled)`. Anything else — the value,
    /// a stored error — is returned, ready for `?`. Awaits a clone: the handle is kept.
    ///
    /// # Panics
    /// If the future was cancelled and this is awaited outside a built-in task (see
    /// [`CancelledError::raise`]).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(async {
    ///     let fut = aioloop::create_future::<u8>();
    ///     fut.cancel(Some("gone"));
    ///     let v = fut.raising().await?; // the task ends cancelled here
    ///     Ok::<u8, aioloop::FutureError>(v)
    /// });
    /// let err = rt.block_on(t).unwrap_err();
    /// assert!(err.is_cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn raising(&self) -> Result<T, FutureError> {
        match self.clone().await {
            Err(FutureError::Cancelled(c)) => c.raise().await,
            other => other,
        }
    }
}

impl<T: Clone + Send + 'static> std::future::Future for Future<T> {
    type Output = Result<T, FutureError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Rule F7: only the future's own loop (or no loop at all) may await it.
        if let Some(here) = context::current_loop_id() {
            if here != this.inner.bound.id() {
                return Poll::Ready(Err(FutureError::DifferentLoop(this.different_loop(here))));
            }
        }
        // Rule T3: a task with an undelivered cancellation request cancels what it awaits,
        // then stays pending so that the request reaches its catch scope (or ends it).
        if !this.done() {
            if let Some(msg) = crate::task::cancel::request_to_propagate() {
                if this.cancel_with(msg) {
                    return Poll::Pending;
                }
            }
        }
        let mut st = this.inner.state.lock();
        if !st.is_pending() {
            if this.waiter.is_some() {
                // O5: the await edge recorded below is over.
                crate::task::observe::done_awaiting_future(Arc::as_ptr(&this.inner) as usize);
            }
            let key = this.key();
            if matches!(st.outcome, Outcome::Cancelled(_)) {
                drop(st);
                // Rule T3 (task/cancel.rs, rule 6): the awaiting task's request was passed on
                // to this future: the cancellation is raised at this await, in the task.
                if crate::task::cancel::raise_if_forwarded(key) {
                    return Poll::Pending;
                }
                st = this.inner.state.lock();
            }
            return Poll::Ready(st.result());
        }
        let old = match this.waiter {
            Some(i) => match &mut st.wakers[i] {
                Some(w) if w.will_wake(cx.waker()) => None,
                slot => slot.replace(cx.waker().clone()),
            },
            None => {
                let w = Some(cx.waker().clone());
                let i = match st.free.pop() {
                    Some(i) => {
                        st.wakers[i] = w;
                        i
                    }
                    None => {
                        st.wakers.push(w);
                        st.wakers.len() - 1
                    }
                };
                this.waiter = Some(i);
                // O5: the call graph's "awaits a Future" edge, once per awaiter.
                crate::task::observe::awaiting_future(Arc::as_ptr(&this.inner) as usize);
                None
            }
        };
        drop(st);
        drop(old); // a waker's drop may run arbitrary code: not under the lock
                   // Rule T3: what a suspended task awaits is where its `cancel()` is passed on to.
        crate::task::cancel::note_waiter(|| {
            crate::task::cancel::Waiter::Future(this.key(), Box::new(this.clone()))
        });
        Poll::Pending
    }
}

impl<T> Clone for Future<T> {
    /// Another handle to the same future (not awaiting yet).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let a = lp.create_future::<u8>();
    /// let b = a.clone();
    /// a.set_result(3).unwrap();
    /// assert_eq!(b.result().unwrap(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn clone(&self) -> Self {
        Future {
            inner: self.inner.clone(),
            waiter: None,
        }
    }
}

impl<T> Future<T> {
    /// Identifies the shared state (rule T3's "the awaitable a request was passed on to").
    fn key(&self) -> usize {
        crate::task::cancel::future_key(&*self.inner as *const Inner<T>)
    }
}

impl<T: Clone + Send + 'static> crate::task::cancel::ForwardCancel for Future<T> {
    fn forward_cancel(&self, msg: Option<std::sync::Arc<str>>) -> bool {
        self.cancel_with(msg)
    }
    fn boxed_clone(&self) -> Box<dyn crate::task::cancel::ForwardCancel> {
        Box::new(self.clone())
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        // An awaiter that goes away while the future is pending frees its waker slot.
        let Some(i) = self.waiter.take() else {
            return;
        };
        // Rule T3: the awaiting handle goes away while the awaiting task's request, passed on
        // to this future, is unanswered: the task keeps it (task/cancel.rs, `abandoned`).
        crate::task::cancel::abandoned(self.key());
        let mut st = self.inner.state.lock();
        if !st.is_pending() {
            return;
        }
        let old = st.wakers[i].take();
        st.free.push(i);
        drop(st);
        drop(old);
    }
}

/// Formats a future's value (its `Debug`), for [`Describe`].
type ShowValue<'a, T> = &'a dyn Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result;

/// The state part of asyncio's repr, with the value shown by `.1` if given.
struct Describe<'a, T>(&'a Outcome<T>, Option<ShowValue<'a, T>>);

impl<T> fmt::Display for Describe<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Outcome::Pending, _) => f.write_str("<Future pending>"),
            (Outcome::Cancelled(_), _) => f.write_str("<Future cancelled>"),
            (Outcome::Value(v), Some(show)) => {
                f.write_str("<Future finished result=")?;
                show(v, f)?;
                f.write_str(">")
            }
            (Outcome::Value(_), None) => f.write_str("<Future finished>"),
            (Outcome::Exception(e), _) => write!(f, "<Future finished exception={e:?}>"),
        }
    }
}

impl<T> fmt::Display for Future<T> {
    /// asyncio's repr without the value (which may not be `Debug`): `<Future pending>`,
    /// `<Future cancelled>`, `<Future finished>`, `<Future finished exception=..>`.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// assert_eq!(fut.to_string(), "<Future pending>");
    /// fut.set_result(1).unwrap();
    /// assert_eq!(fut.to_string(), "<Future finished>");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        fmt::Display::fmt(&Describe(&st.outcome, None), f)
    }
}

impl<T: fmt::Debug> fmt::Debug for Future<T> {
    /// asyncio's repr: `<Future pending>`, `<Future cancelled>`,
    /// `<Future finished result=..>`, `<Future finished exception=..>`.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// fut.set_result(42).unwrap();
    /// assert_eq!(format!("{fut:?}"), "<Future finished result=42>");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        let show = |v: &T, f: &mut fmt::Formatter<'_>| fmt::Debug::fmt(v, f);
        fmt::Display::fmt(&Describe(&st.outcome, Some(&show)), f)
    }
}
