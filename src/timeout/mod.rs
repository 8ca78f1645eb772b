//! asyncio's `timeout`, `timeout_at` and `Timeout` (rule X1), and `wait_for` (rule X2), built
//! on catchable cancellation exactly as asyncio builds them.
//!
//! A timeout scope ([`TimeoutFuture`]) polls its future inside a [`catch_cancel`] scope.
//! **Expiry** cancels the current task (`TaskRef::cancel`, one more request); the innermost
//! pending catch scope takes the request — ours, or one inside the future, which may clean up
//! and re-raise. On **exit** the scope compares: if *it* expired and `uncancel()` brings the
//! task's `cancelling()` back to (or below) the level it had at entry, the cancellation was its
//! own and becomes `Err(TimeoutError)`; otherwise it re-raises the cancellation
//! ([`CancelledError::reraise`]) so it keeps propagating to the next enclosing scope or ends
//! the task. So an outside cancellation is never mistaken for a timeout, and of nested expired
//! timeouts only the outermost converts (each inner one finds the count still above its
//! entry level).
//!
//! **Where expiry happens.** Only at the *start* of a poll of the scope, which tests its
//! deadline before polling its future: a timer entry (or a `reschedule`) just wakes the task.
//! So nested scopes with the same deadline all expire, top-down, within one poll (as asyncio
//! runs every due timer callback before the task's next step), and the request is already
//! there when the innermost await point returns `Pending` and its catch scope looks for it. The
//! test uses the clock reading the loop took to fire its timers this iteration (or the
//! timeout's creation, if later): never ahead of the real clock, so never early, and the same
//! for every scope of the poll. A deadline found passed on the real clock only *after* the
//! future returned `Pending` wakes the task at once and makes the next poll read the real
//! clock, so the scope expires then.
//!
//! **Threads.** The scope's state lives in one `Arc` shared with the [`Timeout`] handles and
//! with its timer entry (`TimerAction::Target`): the timer may fire, and a handle may
//! `reschedule`, on any thread. Neither changes the scope: both only store and wake the task; every transition that matters (expiring, exiting) happens in the
//! task's own poll. The one lock (around the waker) orders `reschedule` against expiry, so a
//! deadline moved concurrently is either seen by the expiry or refused as "expiring".
//!
//! **Cost when it never expires:** one `Arc` (the timeout's state, which is also the timer
//! entry's payload), one heap entry pushed on the first `Pending` poll (none if the future is
//! ready at once, or ready at the next poll when the task was already woken for it: a yield,
//! a reply that arrived during the poll), one clock read (to fix the deadline; polls test it against the loop's own
//! reading), and on exit an atomic exchange and the waker's release; the dead entry is purged
//! lazily like a dropped `sleep`'s.
//!
//! **Outside a built-in task** (in a third-party task, or polled by a foreign executor;
//! `block_on`'s main task is a built-in one) there is nothing to cancel: at the deadline the scope drops its
//! future and returns `Err(TimeoutError)`. asyncio raises "Timeout should be used inside a
//! task" there instead.
//!
//! [`catch_cancel`]: crate::catch_cancel
//! [`CancelledError::reraise`]: crate::CancelledError::reraise

mod error;
mod wait_for;

pub use error::{TimeoutError, TimeoutStateError};
pub use wait_for::{wait_for, wait_for_task};

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event_loop::clock::{self, NEVER};
use crate::event_loop::context;
use crate::event_loop::timers::{TimerAction, TimerTarget};
use crate::shim::atomic::{AtomicU64, AtomicU8, Ordering};
use crate::shim::Mutex;
use crate::task::cancel::{catch_cancel, CatchCancel};
use crate::task::current;

/// `Timeout` states, asyncio's `_State` (names as its `repr` shows them).
const CREATED: u8 = 0;
const ENTERED: u8 = 1;
const EXPIRING: u8 = 2;
const EXPIRED: u8 = 3;
const EXITED: u8 = 4;

/// What a [`Timeout`]'s handles, its scope and its timer entry share.
struct Shared {
    state: AtomicU8,
    /// The deadline: `i64` nanoseconds on the loop clock, as bits; `NEVER` for none.
    when: AtomicU64,
    /// The clock when the timeout was made: a lower bound of the clock at the first poll.
    made_at: i64,
    /// The waker of the task inside the scope, taken by whoever wakes it. Its lock also
    /// orders `reschedule` (check state, move the deadline) against expiry (check the
    /// deadline, change state).
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn when(&self) -> i64 {
        self.when.load(Ordering::Acquire) as i64
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn wake(&self, waker: Option<Waker>) {
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl TimerTarget for Shared {
    fn is_cancelled(&self) -> bool {
        self.state() != ENTERED
    }

    fn fire(&self) {
        let waker = self.waker.lock().take();
        self.wake(waker);
    }
}

/// asyncio's `asyncio.Timeout`: a deadline that can be entered once around a future
/// ([`run`](Timeout::run)), queried ([`when`](Timeout::when), [`expired`](Timeout::expired))
/// and moved while inside ([`reschedule`](Timeout::reschedule)).
///
/// A `Timeout` is a cloneable handle: clones refer to the same timeout, so code inside the
/// scope (or another task, or another thread) can move its deadline. [`timeout`] and
/// [`timeout_at`] are the short forms for a timeout nobody needs to reschedule.
///
/// ```
/// use aioloop::{Runtime, Timeout};
/// use std::time::{Duration, Instant};
///
/// let rt = Runtime::builder().workers(1).build()?;
/// let t = Timeout::after(Duration::from_millis(10));
/// let h = t.clone();
/// let scope = t
///     .run(async move {
///         // More time needed: move the deadline (asyncio's `cm.reschedule(...)`).
///         h.reschedule(Some(Instant::now() + Duration::from_secs(60))).unwrap();
///         aioloop::sleep(Duration::from_millis(30)).await;
///         "done"
///     })
///     .unwrap();
/// assert_eq!(rt.block_on(rt.spawn(scope)).unwrap(), Ok("done"));
/// assert!(!t.expired());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Timeout {
    shared: Arc<Shared>,
}

impl Timeout {
    /// A timeout whose deadline is `deadline(now)`.
    fn new(deadline: impl FnOnce(i64) -> i64, state: u8) -> Timeout {
        let made_at = clock::now();
        Timeout {
            shared: Arc::new(Shared {
                state: AtomicU8::new(state),
                when: AtomicU64::new(deadline(made_at) as u64),
                made_at,
                waker: Mutex::new(None),
            }),
        }
    }

    /// A timeout `delay` from now (asyncio's `asyncio.timeout(delay)`); the deadline is fixed
    /// here, not when the timeout is entered. A delay too large for the clock means never.
    ///
    /// ```
    /// let t = aioloop::Timeout::after(std::time::Duration::from_secs(5));
    /// assert!(t.when().unwrap() > std::time::Instant::now());
    /// assert!(!t.expired());
    /// ```
    pub fn after(delay: Duration) -> Timeout {
        Timeout::new(|now| clock::after_from(now, delay), CREATED)
    }

    /// A timeout at `deadline` (asyncio's `asyncio.timeout_at(when)`); one in the past expires
    /// at the future's first suspension.
    ///
    /// ```
    /// let at = std::time::Instant::now() + std::time::Duration::from_secs(1);
    /// assert_eq!(aioloop::Timeout::at(at).when(), Some(at));
    /// ```
    pub fn at(deadline: Instant) -> Timeout {
        Timeout::new(|_| clock::instant_to_nanos(deadline), CREATED)
    }

    /// A timeout with no deadline (asyncio's `asyncio.timeout(None)`), to be set later with
    /// [`reschedule`](Timeout::reschedule).
    ///
    /// ```
    /// assert_eq!(aioloop::Timeout::never().when(), None);
    /// ```
    pub fn never() -> Timeout {
        Timeout::new(|_| NEVER, CREATED)
    }

    /// The deadline, `None` if there is none (asyncio's `when()`).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_millis(50);
    /// let t = aioloop::Timeout::at(at);
    /// assert_eq!(t.when(), Some(at));
    /// ```
    pub fn when(&self) -> Option<Instant> {
        clock::nanos_to_instant(self.shared.when())
    }

    /// `true` once the deadline passed while the scope was active, whether or not the scope
    /// has finished unwinding (asyncio's `expired()`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = aioloop::Timeout::after(Duration::from_millis(5));
    /// let scope = t.run(aioloop::sleep(Duration::from_secs(60))).unwrap();
    /// assert!(rt.block_on(scope).is_err());
    /// assert!(t.expired());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn expired(&self) -> bool {
        matches!(self.shared.state(), EXPIRING | EXPIRED)
    }

    /// Moves the deadline (asyncio's `reschedule(when)`): earlier, later, to `None` (never),
    /// or into the past (the scope expires at once). Allowed from any thread, while the
    /// scope is active only.
    ///
    /// # Errors
    /// [`TimeoutStateError::NotEntered`] before [`run`](Timeout::run);
    /// [`Expiring`](TimeoutStateError::Expiring) / [`Expired`](TimeoutStateError::Expired) once
    /// the deadline passed; [`Finished`](TimeoutStateError::Finished) after the scope ended.
    ///
    /// ```
    /// use aioloop::{Timeout, TimeoutStateError};
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = Timeout::never();
    /// let h = t.clone();
    /// let r = rt.block_on(rt.spawn(async move {
    ///     t.run(async move {
    ///         h.reschedule(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    ///         aioloop::sleep(Duration::from_secs(60)).await;
    ///     })
    ///     .unwrap()
    ///     .await
    /// }));
    /// assert_eq!(r.unwrap(), Err(aioloop::TimeoutError));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reschedule(&self, when: Option<Instant>) -> Result<(), TimeoutStateError> {
        let when = when.map_or(NEVER, clock::instant_to_nanos);
        let s = &self.shared;
        let waker = {
            let mut waker = s.waker.lock();
            match s.state() {
                ENTERED => {}
                CREATED => return Err(TimeoutStateError::NotEntered),
                EXPIRING => return Err(TimeoutStateError::Expiring),
                EXPIRED => return Err(TimeoutStateError::Expired),
                _ => return Err(TimeoutStateError::Finished),
            }
            s.when.store(when as u64, Ordering::Release);
            waker.take()
        };
        s.wake(waker);
        Ok(())
    }

    /// Enters the timeout around `future` (asyncio's `async with timeout:`): the returned
    /// scope resolves to `Ok(output)`, or `Err(TimeoutError)` if the deadline passed first. A
    /// timeout can be entered once.
    ///
    /// # Errors
    /// [`TimeoutStateError::AlreadyEntered`] if `run` was called before (asyncio's "Timeout
    /// has already been entered").
    ///
    /// # Panics
    /// The scope panics when it must arm its timer on a thread with no running loop.
    ///
    /// ```
    /// use aioloop::{Timeout, TimeoutStateError};
    /// use std::time::Duration;
    ///
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = Timeout::after(Duration::from_secs(10));
    /// assert_eq!(rt.block_on(t.run(async { 7 }).unwrap()), Ok(7));
    /// assert_eq!(t.run(async { 8 }).unwrap_err(), TimeoutStateError::AlreadyEntered);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run<F: IntoFuture>(
        &self,
        future: F,
    ) -> Result<TimeoutFuture<F::IntoFuture>, TimeoutStateError> {
        self.shared
            .state
            .compare_exchange(CREATED, ENTERED, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| TimeoutStateError::AlreadyEntered)?;
        Ok(TimeoutFuture::new(self.clone(), future.into_future()))
    }
}

impl fmt::Debug for Timeout {
    /// asyncio's `repr`: `<Timeout [active] when=12.5>` (loop-clock seconds), `<Timeout
    /// [expired]>`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.shared.state() {
            CREATED => "created",
            ENTERED => "active",
            EXPIRING => "expiring",
            EXPIRED => "expired",
            _ => "finished",
        };
        write!(f, "<Timeout [{state}]")?;
        if matches!(self.shared.state(), CREATED | ENTERED) {
            match self.shared.when() {
                NEVER => f.write_str(" when=None")?,
                w => write!(f, " when={:.3}", clock::nanos_to_secs(w))?,
            }
        }
        f.write_str(">")
    }
}

/// Runs `future` with a deadline `delay` from now: asyncio's `async with
/// asyncio.timeout(delay): return await fut` (rule X1). Resolves to `Ok(output)`, or
/// `Err(TimeoutError)` if the deadline passed first.
///
/// Inside a task, expiry cancels the task and the scope turns its own cancellation into the
/// error (see [`Timeout`] and the module notes in ARCHITECTURE.md); catch scopes inside
/// `future` see the cancellation and may clean up. Outside a built-in task (a third-party
/// task), the future is dropped at the deadline.
///
/// # Panics
/// When polled (and pending) on a thread with no running loop.
///
/// ```
/// use std::time::Duration;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let r = rt.block_on(rt.spawn(async {
///     let fast = aioloop::timeout(Duration::from_secs(10), async { 1 }).await;
///     let slow = aioloop::timeout(
///         Duration::from_millis(10),
///         aioloop::sleep(Duration::from_secs(60)),
///     )
///     .await;
///     (fast, slow)
/// }));
/// assert_eq!(r.unwrap(), (Ok(1), Err(aioloop::TimeoutError)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn timeout<F: IntoFuture>(delay: Duration, future: F) -> TimeoutFuture<F::IntoFuture> {
    TimeoutFuture::new(
        Timeout::new(|now| clock::after_from(now, delay), ENTERED),
        future.into_future(),
    )
}

/// A scope that never expires around `future`: `wait_for(aw, None)`, a plain await (X2).
pub(crate) fn never<F: IntoFuture>(future: F) -> TimeoutFuture<F::IntoFuture> {
    TimeoutFuture::new(Timeout::new(|_| NEVER, ENTERED), future.into_future())
}

/// Runs `future` with the deadline `deadline`: asyncio's `asyncio.timeout_at(when)`
/// (rule X1). A deadline in the past expires at the future's first suspension.
///
/// # Panics
/// When polled (and pending) on a thread with no running loop.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let lp = aioloop::LocalLoop::new()?;
/// let t = lp.create_task(aioloop::timeout_at(
///     Instant::now() + Duration::from_millis(10),
///     aioloop::sleep(Duration::from_secs(60)),
/// ))?;
/// assert_eq!(lp.run_until_complete(t)?.unwrap(), Err(aioloop::TimeoutError));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> TimeoutFuture<F::IntoFuture> {
    TimeoutFuture::new(
        Timeout::new(|_| clock::instant_to_nanos(deadline), ENTERED),
        future.into_future(),
    )
}

/// Whether this thread is polling a built-in task: the timeout then works through
/// cancellation; otherwise it drops its future at the deadline.
pub(crate) fn in_builtin_task() -> bool {
    current::with_builtin(|raw| raw.is_some())
}

/// Whether the built-in task being polled on this thread was woken during this poll (it is
/// then queued again as soon as the poll returns).
fn current_task_woken() -> bool {
    current::with_builtin(|raw| raw.is_some_and(|r| r.header().state.load().is_notified()))
}

/// Where a scope is in its life.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Entered ([`Timeout::run`]) but not polled yet.
    Unpolled,
    /// Inside the built-in task `task`, whose `cancelling()` was `cancelling` at entry.
    Builtin { task: u64, cancelling: u32 },
    /// Outside a built-in task: expiry drops the future.
    Fallback,
    /// A foreign cancellation (or one an outer timeout owns) was re-raised; the enclosing
    /// scope drops us at the task's next poll.
    Reraised,
    /// Resolved.
    Done,
}

/// The future returned by [`timeout`], [`timeout_at`], [`wait_for`] and [`Timeout::run`]:
/// an active timeout scope around a future.
///
/// Dropping it before it resolves leaves the scope as asyncio's `__aexit__` would: the
/// timeout is finished (or expired, and then its own cancellation is withdrawn).
///
/// ```
/// use std::time::Duration;
/// let lp = aioloop::LocalLoop::new()?;
/// let scope: aioloop::TimeoutFuture<_> = aioloop::timeout(Duration::from_secs(1), async { 3 });
/// assert_eq!(lp.run_until_complete(scope)?, Ok(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct TimeoutFuture<F> {
    timeout: Timeout,
    /// Structurally pinned: polled and dropped in place, never moved.
    inner: Option<CatchCancel<F>>,
    phase: Phase,
    /// The earliest deadline this scope has a timer entry for that it does not know to have
    /// fired: a later deadline needs no new entry until that one fires.
    armed: Option<i64>,
    /// The next deadline test must read the real clock (the loop's reading may lag).
    recheck: bool,
    /// The first `Pending` went without a timer entry, the task being already woken.
    deferred: bool,
    /// A waker was published in the shared state (exit takes it back).
    published: bool,
}

impl<F: Future> TimeoutFuture<F> {
    fn new(timeout: Timeout, future: F) -> TimeoutFuture<F> {
        TimeoutFuture {
            timeout,
            inner: Some(catch_cancel(future)),
            phase: Phase::Unpolled,
            armed: None,
            recheck: false,
            deferred: false,
            published: false,
        }
    }
}

impl<F> TimeoutFuture<F> {
    /// First poll: find the task the scope runs in (asyncio's `__aenter__`).
    fn enter(&mut self) {
        self.phase = current::with_builtin(|raw| match raw {
            Some(raw) => Phase::Builtin {
                task: raw.id(),
                cancelling: raw.cancelling(),
            },
            None => Phase::Fallback,
        });
    }

    /// Before polling the future: a clock reading (none if there is no deadline to test)
    /// and whether the deadline has passed by it. The real clock after `arm` asked for it;
    /// otherwise a lower bound of it, taken for free: the loop's last timer reading, or the
    /// timeout's creation. A lower bound never expires a scope early; if it lags, `arm` reads
    /// the real clock before relying on a timer entry.
    fn check_deadline(&mut self) -> (Option<i64>, bool) {
        let s = &*self.timeout.shared;
        let when = s.when();
        if s.state() != ENTERED || when == NEVER {
            return (None, false);
        }
        let now = if self.recheck {
            self.recheck = false;
            clock::now()
        } else {
            context::timer_clock().map_or(s.made_at, |t| t.max(s.made_at))
        };
        (Some(now), now >= when)
    }

    /// ENTERED → EXPIRING, unless a concurrent `reschedule` moved the deadline.
    fn try_expire(&self) -> bool {
        let s = &*self.timeout.shared;
        let _order = s.waker.lock();
        let when = s.when();
        if s.state() != ENTERED || when == NEVER || clock::now() < when {
            return false;
        }
        s.state.store(EXPIRING, Ordering::Release);
        true
    }

    /// The future is pending: publish the waker and make sure a timer entry wakes the task
    /// by the deadline. Returns `true` if the deadline has already passed. `polled_at` is the
    /// clock reading taken before the poll, if any.
    fn arm(&mut self, cx: &Context<'_>, polled_at: Option<i64>) -> bool {
        let s = &self.timeout.shared;
        self.published = true;
        {
            let mut w = s.waker.lock();
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        let when = s.when();
        if s.state() != ENTERED || when == NEVER {
            return false;
        }
        // With an entry registered, read the clock after publishing the waker: an entry that
        // fired before that found no waker, and then this reading is past its deadline.
        // Without one, no wake-up can have been lost and the lower bound serves (if it lags,
        // the entry is registered with a deadline already passed and fires at once).
        let now = match (self.armed, polled_at) {
            (None, Some(now)) => now,
            _ => clock::now(),
        };
        if now >= when {
            return true;
        }
        match self.armed {
            // An entry fires by the deadline and has not fired yet.
            Some(a) if a <= when && a > now => {}
            _ => {
                let target: Arc<dyn TimerTarget> = s.clone();
                if context::add_timer(when, TimerAction::Target(target)).is_err() {
                    panic!(
                        "no running event loop: an aioloop timeout was awaited outside a \
                         runtime or LocalLoop"
                    );
                }
                self.armed = Some(when);
            }
        }
        false
    }

    /// Leaves the scope (asyncio's `__aexit__`). Returns `true` if it expired and the
    /// cancellation is its own: `uncancel()` brought the task back to its entry level.
    fn exit(&mut self) -> bool {
        let s = &*self.timeout.shared;
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let expired = s
            .state
            .compare_exchange(ENTERED, EXITED, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        if expired {
            s.state.store(EXPIRED, Ordering::Release);
        }
        if self.published {
            // A dead timer entry (or a `Timeout` handle) keeps the shared state: not the task.
            drop(s.waker.lock().take());
        }
        if !expired {
            return false;
        }
        match phase {
            Phase::Builtin { task, cancelling } => current::with_builtin(|raw| match raw {
                Some(raw) if raw.id() == task => raw.uncancel() <= cancelling,
                // Dropped away from its task (the task is being torn down): nothing to undo.
                _ => true,
            }),
            _ => true,
        }
    }
}

impl<F: Future> Future for TimeoutFuture<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: below it is only polled through a pinned
        // reference made in place, and dropped in place (assigning `None` drops the old value
        // where it lies); nothing moves it out. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        match this.phase {
            Phase::Unpolled => this.enter(),
            Phase::Builtin { .. } | Phase::Fallback => {}
            Phase::Reraised => return Poll::Pending,
            Phase::Done => panic!("`TimeoutFuture` polled after completion"),
        }
        let builtin = matches!(this.phase, Phase::Builtin { .. });

        // 1. Expiry, before the future runs, so that the request is there when its innermost
        //    await point returns `Pending` (outside a task, the deadline is checked after the
        //    poll instead, so a future that is ready at once still wins).
        let mut polled_at = None;
        if builtin {
            let (now, due) = this.check_deadline();
            polled_at = now;
            if due && this.try_expire() {
                // The current task is running (we are in its poll): `cancel` cannot fail.
                current::with_builtin(|raw| raw.map(|raw| raw.cancel(None)));
            }
        }

        // 2. The future, in a catch scope.
        let inner = this
            .inner
            .as_mut()
            .expect("a running scope holds its future");
        // SAFETY: see above; `inner` is not moved while pinned.
        match unsafe { Pin::new_unchecked(inner) }.poll(cx) {
            Poll::Ready(Ok(v)) => {
                this.inner = None;
                this.exit();
                return Poll::Ready(Ok(v));
            }
            Poll::Ready(Err(cancelled)) => {
                this.inner = None;
                if this.exit() {
                    return Poll::Ready(Err(TimeoutError));
                }
                // Not ours (or an outer timeout's too): re-raise, stay pending; the next
                // enclosing scope takes it at the next poll.
                this.phase = Phase::Reraised;
                let mut reraise = cancelled.reraise();
                return match Pin::new(&mut reraise).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => {
                        unreachable!("a catch scope caught a cancellation outside a task")
                    }
                };
            }
            Poll::Pending => {}
        }

        // 3. Still pending: be woken by the deadline. A task that was woken during this poll
        //    is polled again at once, so its first suspension needs no timer entry yet: a
        //    scope around a quick operation usually ends on that next poll and never touches
        //    the timer heap. Once only, so that a task that is always busy still arms.
        if builtin && !this.deferred && this.armed.is_none() && current_task_woken() {
            this.deferred = true;
            return Poll::Pending;
        }
        if this.arm(cx, polled_at) {
            if builtin {
                // Expire at the start of the next poll (see 1), reading the real clock.
                this.recheck = true;
                cx.waker().wake_by_ref();
            } else if this.try_expire() {
                this.inner = None;
                this.exit();
                return Poll::Ready(Err(TimeoutError));
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for TimeoutFuture<F> {
    fn drop(&mut self) {
        if matches!(
            self.phase,
            Phase::Unpolled | Phase::Builtin { .. } | Phase::Fallback
        ) {
            self.exit();
        }
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
