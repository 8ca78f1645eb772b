//! asyncio's catchable cancellation (rules T3–T7), mapped onto Rust futures.
//!
//! Rust cannot throw into a suspended future, so a cancellation is a *pending request* on the
//! task that the task's own next poll delivers:
//!
//! 1. `cancel(msg)` records the request (`cancelling() += 1`, the message, "must cancel") and
//!    wakes the task. It returns `false` only on a finished task. The wake is a
//!    read-modify-write of the state word that always writes, so the next
//!    `transition_to_running` synchronises with the request (a wake that found `NOTIFIED`
//!    set and wrote nothing gave the poller no happens-before edge: loom's
//!    `cancel_races_completion` found the lost request).
//! 2. **Catch scopes.** [`catch_cancel(fut)`](crate::catch_cancel) polls `fut`; if `fut` is
//!    pending and the current task has an undelivered request, the scope takes it, drops
//!    `fut` (running its destructors — the awaited operation is cancelled), and returns
//!    `Err(CancelledError)`. Inner scopes return first, so the innermost one catches, like
//!    the innermost `try/except CancelledError`. Code in the handler may `.await` freely
//!    (async cleanup) and then propagate (return, `?`) or suppress (`uncancel()`).
//! 3. **Uncaught.** If a poll *began* with an undelivered request and ends `Pending` with the
//!    same request still undelivered, no scope took it: the task's future is dropped and the
//!    task ends cancelled. A request that arrives *during* a poll is left for the next poll
//!    (the request woke the task), so scopes always get their chance. Scopes, too, take
//!    only a request that was there when the poll began — or one the task made itself
//!    during the poll (a timeout expiring, a re-raise), which asyncio would raise at once:
//!    a `cancel()` from another thread landing between an inner scope's look and an outer
//!    one's must still reach the inner scope first. (Passing a request on to an awaited
//!    task or future, rule 6, acts at once: it only asks.)
//! 4. **Before the first step** (rule T4): a request pending at the first poll cancels the
//!    task without running its body.
//! 5. **At the end** (rule T5, and "caught but not uncancelled"): a future that completes
//!    while `cancelling() > 0` ends the task cancelled; its value is dropped.
//! 6. **Awaiting a task** (rule T3): a `Task<T>` awaited by a task with an undelivered request
//!    passes the request on to the awaited task, once per request.
//!
//! The state lives in a lazily allocated [`Extra`] block hung off the task header, so a task
//! that is never cancelled pays one pointer.

use std::ptr;
use std::sync::Arc;

use super::done::DoneList;
use crate::contextvars::Context;
use crate::shim::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use crate::shim::Mutex;

/// The header's pointer to a task's cancellation state (null until first needed).
pub(crate) struct ExtraSlot {
    ptr: AtomicPtr<Extra>,
}

/// One task's extra block: its cancellation state, its done callbacks (task/done.rs) and
/// its context (T12), allocated on first need.
pub(crate) struct Extra {
    inner: Mutex<Inner>,
    /// `Inner::requests`, readable without the lock: a task whose block exists only for a
    /// hook or a context (a task group's child) skips the lock at every poll while nobody
    /// ever cancelled it.
    requests: AtomicU64,
    /// A context was ever stored (`take_context` skips the lock otherwise).
    has_context: AtomicBool,
    /// Await edges and, on a tracking loop, the task's record (task/observe.rs).
    pub(crate) obs: super::observe::Observed,
}

#[derive(Default)]
struct Inner {
    /// Every `cancel()` that returned `true`: a generation number for "the same request".
    requests: u64,
    /// asyncio's `_num_cancels_requested`: requests minus `uncancel()`s.
    cancelling: u32,
    /// An undelivered request is pending (asyncio's `_must_cancel`).
    must_cancel: bool,
    msg: Option<Arc<str>>,
    /// The generation last passed on to an awaited task (rule T3).
    propagated: u64,
    /// `requests` when the current (or last) poll began: catch scopes take only requests
    /// up to it, so one arriving mid-poll waits for the next poll, where the *innermost*
    /// scope gets it first.
    poll_gen: u64,
    /// Done callbacks and hooks (task/done.rs).
    done: DoneList,
    /// The task's context between polls (T12); `None` while empty or while being polled.
    context: Option<Context>,
}

impl ExtraSlot {
    pub(crate) fn new() -> ExtraSlot {
        ExtraSlot {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The state, if any request was ever made.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Extra> {
        // Acquire: pairs with the Release of the publishing CAS below, so the block's
        // initialisation is visible.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `get_or_init` and is freed
        // only when the slot is dropped, which needs `&mut self`.
        unsafe { p.as_ref() }
    }

    pub(crate) fn get_or_init(&self) -> &Extra {
        if let Some(c) = self.get() {
            return c;
        }
        let fresh = Box::into_raw(Box::new(Extra {
            inner: Mutex::new(Inner::default()),
            requests: AtomicU64::new(0),
            has_context: AtomicBool::new(false),
            obs: super::observe::Observed::default(),
        }));
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: we just published `fresh`; it lives as long as the slot (see `get`).
            Ok(_) => unsafe { &*fresh },
            Err(existing) => {
                // SAFETY: `fresh` was never shared: we still own it.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: a non-null pointer in the slot came from `Box::into_raw` and lives
                // until the slot is dropped, which needs `&mut self`.
                unsafe { &*existing }
            }
        }
    }
}

impl Drop for ExtraSlot {
    fn drop(&mut self) {
        // Exclusive access (`&mut self`), so a relaxed load suffices (`get_mut` is not in
        // loom's atomics).
        let p = self.ptr.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: the task is being freed (`&mut self`): nobody else can reach the block,
            // which came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// What the poller saw before polling (rule 3 compares it with the state after).
#[derive(Clone, Copy)]
pub(crate) struct AtStart {
    generation: u64,
    pending: bool,
}

impl AtStart {
    pub(crate) fn pending(self) -> bool {
        self.pending
    }
}

impl Extra {
    /// `cancel(msg)`.
    ///
    /// `own_poll`: the request is made by the task itself, during its own poll (a timeout
    /// expiring, a task group cancelling its parent from the body): scopes may take it in
    /// this very poll, as asyncio raises at once. A request from anywhere else waits for
    /// the next poll (see `poll_gen`).
    pub(crate) fn request(&self, msg: Option<Arc<str>>, own_poll: bool) {
        self.arm(msg, own_poll, 1);
    }

    /// A new undelivered request (one more generation), counted `counted` times in
    /// `cancelling()`: once for a `cancel()`, not at all for a re-raise.
    fn arm(&self, msg: Option<Arc<str>>, own_poll: bool, counted: u32) {
        let mut s = self.inner.lock();
        s.requests += 1;
        // Release, under the lock: `at_start` reading a non-zero count takes the lock.
        self.requests.store(s.requests, Ordering::Release);
        s.cancelling = s.cancelling.saturating_add(counted);
        s.must_cancel = true;
        s.msg = msg;
        if own_poll {
            s.poll_gen = s.requests;
        }
    }

    pub(crate) fn at_start(&self) -> AtStart {
        if self.requests.load(Ordering::Acquire) == 0 {
            // Never cancelled: nothing pending, and `poll_gen` is still 0. (A request
            // landing right after this load is one that arrived during the poll.)
            return AtStart {
                generation: 0,
                pending: false,
            };
        }
        let mut s = self.inner.lock();
        s.poll_gen = s.requests;
        AtStart {
            generation: s.requests,
            pending: s.must_cancel,
        }
    }

    /// Rule 3: the request pending at the start of the poll is still undelivered, and no
    /// newer one came: take it (the caller ends the task cancelled).
    pub(crate) fn take_undelivered(&self, at_start: AtStart) -> Option<Option<Arc<str>>> {
        if !at_start.pending {
            return None;
        }
        let mut s = self.inner.lock();
        if at_start.pending && s.must_cancel && s.requests == at_start.generation {
            s.must_cancel = false;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    /// Rule 2: a catch scope takes the undelivered request — one that was already there
    /// when this poll began, or that the task made itself during it. A request another
    /// thread made during the poll woke the task; the next poll offers it to the
    /// innermost scope first (otherwise an outer scope could take it just after the inner
    /// one had looked, depending on thread timing).
    pub(crate) fn take(&self) -> Option<Option<Arc<str>>> {
        let mut s = self.inner.lock();
        if s.must_cancel && s.requests <= s.poll_gen {
            s.must_cancel = false;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    /// Rule 6: the request to pass on to an awaited task, once per request.
    pub(crate) fn to_propagate(&self) -> Option<Option<Arc<str>>> {
        let mut s = self.inner.lock();
        if s.must_cancel && s.propagated != s.requests {
            s.propagated = s.requests;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    pub(crate) fn cancelling(&self) -> u32 {
        self.inner.lock().cancelling
    }

    /// Re-raise: a scope that caught a request and decided it is not its own (a timeout
    /// that did not expire, a task group cancelled from outside) puts it back as a new,
    /// undelivered request, without counting it again: the next enclosing scope — or the
    /// task itself (rule 3) — receives it at the next poll, exactly as a `raise` inside an
    /// `except CancelledError:` block hands the error to the next handler up the stack.
    /// `own_poll` as for [`Extra::request`]: a re-raise inside the task's poll reaches the
    /// enclosing scope in the same poll.
    pub(crate) fn rearm(&self, msg: Option<Arc<str>>, own_poll: bool) {
        self.arm(msg, own_poll, 0);
    }

    /// `uncancel()` (rule T7): one fewer request; at zero an undelivered one is withdrawn.
    pub(crate) fn uncancel(&self) -> u32 {
        let mut s = self.inner.lock();
        s.cancelling = s.cancelling.saturating_sub(1);
        if s.cancelling == 0 {
            s.must_cancel = false;
        }
        s.cancelling
    }

    pub(crate) fn message(&self) -> Option<Arc<str>> {
        self.inner.lock().msg.clone()
    }

    /// Runs `f` on the done list under the block's lock.
    pub(crate) fn with_done<R>(&self, f: impl FnOnce(&mut DoneList) -> R) -> R {
        f(&mut self.inner.lock().done)
    }

    /// The poller takes the task's context before a poll (T12).
    pub(crate) fn take_context(&self) -> Option<Context> {
        // Acquire: pairs with the Release in `put_context` (a task that never had a context
        // skips the lock).
        if !self.has_context.load(Ordering::Acquire) {
            return None;
        }
        self.inner.lock().context.take()
    }

    /// A copy of the task's context between polls, for running code "in the task's
    /// context" without taking it from a poller that may want it next (`None`: the task has
    /// none, or it is out being polled).
    pub(crate) fn context_snapshot(&self) -> Option<Context> {
        // Acquire: as in `take_context`.
        if !self.has_context.load(Ordering::Acquire) {
            return None;
        }
        self.inner.lock().context.as_ref().map(Context::snapshot)
    }

    /// The poller (or `create_task`) stores the task's context.
    pub(crate) fn put_context(&self, ctx: Context) {
        let mut s = self.inner.lock();
        s.context = Some(ctx);
        self.has_context.store(true, Ordering::Release);
    }
}

/// Runs `future` as a catch scope for cancellation: asyncio's
/// `try: await fut / except CancelledError:` (rules T3, T6).
///
/// If the current task is cancelled while `future` is pending, the scope drops `future`
/// (cancelling what it was waiting on) and returns `Err(CancelledError)` with the message
/// given to `cancel`. The caller may then `.await` cleanup and either propagate the
/// cancellation (return an error; the task ends cancelled, since `cancelling() > 0`) or
/// suppress it with [`Task::uncancel`](crate::Task::uncancel) /
/// [`TaskRef::uncancel`](crate::TaskRef::uncancel) on the current task. Outside a built-in
/// task the scope simply awaits `future`.
///
/// ```
/// use aioloop::{catch_cancel, Runtime};
/// use std::future::pending;
///
/// let rt = Runtime::builder().workers(1).build()?;
/// let (started_tx, started) = std::sync::mpsc::channel();
/// let t = rt.spawn(async move {
///     started_tx.send(()).unwrap();
///     match catch_cancel(pending::<()>()).await {
///         Ok(()) => unreachable!(),
///         Err(e) => {
///             aioloop::yield_now().await; // async clean-up is allowed here
///             aioloop::current_task().unwrap().uncancel(); // suppress: finish normally
///             format!("cleaned up after {e}")
///         }
///     }
/// });
/// started.recv().unwrap(); // cancelled before its first step, it would never run (T4)
/// assert!(t.cancel(Some("shutdown")));
/// assert_eq!(rt.block_on(t).unwrap(), "cleaned up after CancelledError: shutdown");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn catch_cancel<F: std::future::Future>(future: F) -> CatchCancel<F> {
    CatchCancel {
        future: Some(future),
    }
}

/// The future returned by [`catch_cancel`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CatchCancel<F> {
    future: Option<F>,
}

impl<F: std::future::Future> std::future::Future for CatchCancel<F> {
    type Output = Result<F::Output, crate::CancelledError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        // SAFETY: structural pinning of `future`: it is never moved out, only polled in
        // place and dropped in place (`Pin::set`).
        let mut slot = unsafe { self.map_unchecked_mut(|s| &mut s.future) };
        let Some(fut) = slot.as_mut().as_pin_mut() else {
            panic!("`CatchCancel` polled after completion")
        };
        if let Poll::Ready(v) = fut.poll(cx) {
            slot.set(None);
            return Poll::Ready(Ok(v));
        }
        // Rule 2: the innermost pending scope takes an undelivered request.
        let taken = super::current::with_builtin(|raw| {
            let raw = raw?;
            let taken = raw.header().extra.get().and_then(Extra::take);
            if taken.is_some() {
                super::observe::on_cancel_delivered(raw);
            }
            taken
        });
        match taken {
            Some(msg) => {
                slot.set(None);
                Poll::Ready(Err(crate::CancelledError::new(msg)))
            }
            None => Poll::Pending,
        }
    }
}

/// Puts a caught cancellation back on the current built-in task (see [`Extra::rearm`]) and
/// wakes it. The caller must then stay pending: the next poll hands the request to the
/// enclosing scope. Returns `false` (and does nothing) outside a built-in task.
pub(crate) fn reraise_current(msg: Option<Arc<str>>) -> bool {
    super::current::with_builtin(|raw| match raw {
        Some(raw) => {
            raw.rearm_cancel(msg);
            true
        }
        None => false,
    })
}

/// The future returned by [`CancelledError::reraise`](crate::CancelledError::reraise):
/// asyncio's bare `raise` inside `except CancelledError:`.
///
/// It puts the caught request back on the current task and never completes, so the next
/// enclosing [`catch_cancel`] scope receives it at the task's next poll — or, if there is
/// none, the task ends cancelled. Outside a built-in task there is nobody to re-raise to:
/// it resolves at once to the error, for the caller to return.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Reraise {
    msg: Option<Option<Arc<str>>>,
}

impl Reraise {
    fn new(err: crate::CancelledError) -> Reraise {
        Reraise {
            msg: Some(err.message().map(Into::into)),
        }
    }
}

impl std::future::Future for Reraise {
    type Output = crate::CancelledError;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<crate::CancelledError> {
        match self.msg.take() {
            Some(msg) => {
                if reraise_current(msg.clone()) {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(crate::CancelledError::new(msg))
                }
            }
            // Already re-raised: the enclosing scope drops us at its next poll.
            None => std::task::Poll::Pending,
        }
    }
}

impl crate::CancelledError {
    /// Re-raises this cancellation from inside the handler that caught it (asyncio's bare
    /// `raise` in `except CancelledError:`): the next enclosing [`catch_cancel`] scope gets
    /// it, or the task ends cancelled. Await the returned future; inside a task it never
    /// resolves (its scope is dropped instead).
    ///
    /// ```
    /// use aioloop::{catch_cancel, Runtime};
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// let (tx, started) = std::sync::mpsc::channel();
    /// let t = rt.spawn(async move {
    ///     let outer = catch_cancel(async move {
    ///         tx.send(()).unwrap();
    ///         if let Err(e) = catch_cancel(std::future::pending::<()>()).await {
    ///             aioloop::yield_now().await; // async clean-up
    ///             e.reraise().await;          // hand it to the outer scope
    ///         }
    ///     })
    ///     .await;
    ///     outer.unwrap_err().to_string()
    /// });
    /// started.recv().unwrap();
    /// t.cancel(Some("stop"));
    /// // The outer scope caught it too; the task did not uncancel, so it ends cancelled.
    /// assert!(rt.block_on(t).unwrap_err().is_cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reraise(self) -> Reraise {
        Reraise::new(self)
    }
}

/// Rule 6 (T3): the request the current built-in task should pass on to what it awaits
/// (a `Task<T>`, an `aioloop::Future`), once per request; `None` if there is none.
pub(crate) fn request_to_propagate() -> Option<Option<Arc<str>>> {
    super::current::with_builtin(|raw| {
        raw.and_then(|r| r.header().extra.get().and_then(Extra::to_propagate))
    })
}

/// Rule 6: a `Task<T>` being awaited by a task with an undelivered cancellation request
/// receives that request (once per request).
pub(crate) fn propagate_to(awaited: super::raw::RawTask) {
    let msg = super::current::with_builtin(|raw| {
        raw.filter(|r| *r != awaited)
            .and_then(|r| r.header().extra.get().and_then(Extra::to_propagate))
    });
    if let Some(msg) = msg {
        awaited.cancel(msg);
    }
}
