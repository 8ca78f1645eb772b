//! `sleep`, `sleep_until`, `interval`: futures over the current loop's timers.
//!
//! A `Sleep` registers one timer entry, on its first poll, with the loop running on the
//! polling thread: on a thread that runs the loop's iterations (a runtime worker, a
//! `LocalLoop`), the entry is the `Sleep`'s own [`TimerEntry`], linked into that loop's
//! sleep wheel (wheel.rs: no allocation; the `Sleep` is `!Unpin` for it); from a
//! `block_on` thread, a shared slot goes through the runtime's remote-timer inbox, adopted
//! by a worker's heap. The entry holds the latest waker, so a task that is stolen by another worker after it started sleeping is
//! still woken, wherever it runs next: the worker that holds the entry fires it (its poller
//! timeout is its earliest deadline) and the wake queues the task as any wake does.
//!
//! `sleep(Duration::ZERO)` is asyncio's `sleep(0)`: it yields exactly once (rule X6). A
//! positive sleep never resolves before its deadline: the timer fires only when the clock
//! has reached it, and a first poll after the deadline completes at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::clock;
use super::timers::{SleepSlot, TimerAction};
use super::wheel::TimerEntry;
use crate::error::InvalidDelay;
use crate::event_loop::context;
use crate::shim::atomic::Ordering;

/// Waits until `duration` has passed (asyncio's `await asyncio.sleep(seconds)`).
/// `Duration::ZERO` yields exactly once, like `asyncio.sleep(0)` (rule X6).
///
/// # Panics
/// When first polled on a thread with no running loop ("no running event loop").
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let t0 = std::time::Instant::now();
///     aioloop::sleep(std::time::Duration::from_millis(5)).await;
///     assert!(t0.elapsed() >= std::time::Duration::from_millis(5));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    if duration.is_zero() {
        Sleep::new(State::YieldOnce, 0)
    } else {
        Sleep::new(State::Unregistered, clock::after(duration))
    }
}

/// Waits until `deadline` (completes at once, without yielding, if it has passed).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let at = std::time::Instant::now() + std::time::Duration::from_millis(2);
/// lp.run_until_complete(aioloop::sleep_until(at))?;
/// assert!(std::time::Instant::now() >= at);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(State::Unregistered, clock::instant_to_nanos(deadline))
}

/// `sleep_until` for a deadline the caller has just computed from the clock (hyper's
/// timeouts: `now + 30 s` per request head): its first poll registers without reading the
/// clock again. Should the deadline have passed, the wheel fires the entry at the loop's
/// next timer pass, so the sleep still never ends before its deadline; it only forgoes
/// `sleep_until`'s "completes at once without yielding" for a past deadline.
#[cfg(feature = "hyper")]
pub(crate) fn sleep_until_fresh(deadline: Instant) -> Sleep {
    Sleep::new(State::UnregisteredFresh, clock::instant_to_nanos(deadline))
}

/// `sleep` with the delay in seconds, as asyncio takes it: `<= 0` (minus infinity
/// included) yields once, `+inf` sleeps until cancelled (rule X6).
///
/// # Errors
/// [`InvalidDelay::NaN`] for NaN: "Invalid delay: NaN (not a number)".
///
/// ```
/// assert!(aioloop::sleep_secs(f64::NAN).is_err());
/// assert!(aioloop::sleep_secs(f64::NEG_INFINITY).is_ok()); // yields once
/// assert!(aioloop::sleep_secs(0.5).is_ok());
/// ```
pub fn sleep_secs(secs: f64) -> Result<Sleep, InvalidDelay> {
    if secs == f64::NEG_INFINITY {
        return Ok(Sleep::new(State::YieldOnce, 0));
    }
    let d = clock::secs_to_nanos(secs)?;
    Ok(if d <= 0 {
        Sleep::new(State::YieldOnce, 0)
    } else if d == clock::NEVER {
        Sleep::new(State::Unregistered, clock::NEVER)
    } else {
        Sleep::new(State::Unregistered, clock::now().saturating_add(d))
    })
}

/// The future returned by [`sleep`], [`sleep_until`] and [`sleep_secs`].
///
/// Dropping it before it completes cancels its timer (its entry leaves the loop's wheel
/// at once). It is `!Unpin`: the timer entry lives inside it (pin it with `Box::pin` or
/// `std::pin::pin!` to poll it by hand).
///
/// ```
/// let s = aioloop::sleep(std::time::Duration::from_secs(60));
/// drop(s); // never polled: nothing was registered
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    state: State,
    deadline: i64,
    /// Linked into the loop's sleep wheel in state `Linked` (wheel.rs rule 2: pinned from
    /// then on, unlinked by its own `Drop`).
    entry: TimerEntry,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("state", &self.state)
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[derive(Debug)]
enum State {
    YieldOnce,
    Yielded,
    Unregistered,
    /// As `Unregistered`, but the first poll skips the "deadline passed?" clock read
    /// (`sleep_until_fresh`).
    #[cfg(feature = "hyper")]
    UnregisteredFresh,
    /// The entry is in the wheel of the loop that polled first.
    Linked,
    /// Registered from a thread that runs no iterations (remote inbox), or never due.
    Registered(Arc<SleepSlot>),
    Done,
}

impl std::fmt::Debug for SleepSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SleepSlot")
            .field("fired", &self.fired.load(Ordering::Relaxed))
            .finish()
    }
}

impl Sleep {
    fn new(state: State, deadline: i64) -> Sleep {
        Sleep {
            state,
            deadline,
            entry: TimerEntry::new(),
        }
    }

    /// The deadline, on the loop clock (seconds, as [`LocalLoop::time`](crate::LocalLoop::time)).
    ///
    /// ```
    /// let s = aioloop::sleep_secs(f64::INFINITY).unwrap();
    /// assert_eq!(s.deadline(), f64::INFINITY);
    /// ```
    pub fn deadline(&self) -> f64 {
        clock::nanos_to_secs(self.deadline)
    }

    /// The first poll (state `Unregistered`): completes at once if `check_now` and the
    /// deadline has passed, else registers the entry in this thread's loop wheel, or a slot
    /// through the loop's timer heap from a `block_on` thread.
    ///
    /// # Safety
    /// `self` is pinned (reached through `poll`'s `Pin<&mut Sleep>`): the entry is linked
    /// in place and must not move afterwards (wheel.rs rule 2).
    unsafe fn register(&mut self, cx: &mut Context<'_>, check_now: bool) -> Poll<()> {
        if check_now && self.deadline != clock::NEVER && clock::now() >= self.deadline {
            self.state = State::Done;
            return Poll::Ready(());
        }
        let task = crate::task::current::with_builtin(|raw| raw.map(|r| r.id()));
        if self.deadline != clock::NEVER {
            if let Some(wheel) = context::sleep_wheel() {
                // SAFETY: the entry is pinned with `self` (this function's contract; wheel.rs
                // rule 2).
                let entry = unsafe { Pin::new_unchecked(&mut self.entry) };
                entry.register(wheel, self.deadline, cx.waker().clone(), task);
                self.state = State::Linked;
                return Poll::Pending;
            }
        }
        let slot = SleepSlot::new(cx.waker().clone(), task);
        if self.deadline != clock::NEVER
            && context::add_timer(self.deadline, TimerAction::Wake(slot.clone())).is_err()
        {
            panic!(
                "no running event loop: aioloop::sleep() was awaited outside a runtime \
                 or LocalLoop"
            );
        }
        self.state = State::Registered(slot);
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `entry` is structurally pinned: it is only reached below through
        // `Pin::new_unchecked` or `&`, never moved out, and dropped in place (`Sleep`'s
        // `Drop` does not touch it).
        let this = unsafe { self.get_unchecked_mut() };
        match &this.state {
            State::YieldOnce => {
                this.state = State::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            State::Yielded | State::Done => {
                this.state = State::Done;
                Poll::Ready(())
            }
            #[cfg(feature = "hyper")]
            State::UnregisteredFresh => {
                // SAFETY: `this` comes from the pinned `self` (see above).
                unsafe { this.register(cx, false) }
            }
            State::Unregistered => {
                // SAFETY: as above.
                unsafe { this.register(cx, true) }
            }
            State::Linked => {
                if this.entry.poll_fired(cx.waker()) {
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                Poll::Pending
            }
            State::Registered(slot) => {
                if slot.fired.load(Ordering::Acquire) {
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                {
                    let mut w = slot.waker.lock();
                    match &*w {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                }
                // The timer may have fired between the check and the waker update (it takes
                // the waker under the same lock after setting `fired`).
                if slot.fired.load(Ordering::Acquire) {
                    this.state = State::Done;
                    return Poll::Ready(());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Registered(slot) = &self.state {
            slot.cancelled.store(true, Ordering::Release);
            // The waker goes with the sleep, here (in the dropping task's own context, where
            // a panic of its destructor is the task's): the dead entry the heap keeps until
            // it surfaces must hold no code of the user's (invariant 7).
            let waker = slot.waker.lock().take();
            drop(waker);
        }
    }
}

/// A periodic timer: [`Interval::tick`] completes at `start`, `start + period`, … The first
/// tick completes at once. Ticks missed because the loop was busy are skipped, not bunched.
///
/// # Panics
/// If `period` is zero.
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// lp.run_until_complete(async {
///     let mut every = aioloop::interval(std::time::Duration::from_millis(1));
///     for _ in 0..3 {
///         every.tick().await;
///     }
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period: i64::try_from(period.as_nanos()).unwrap_or(i64::MAX),
        next: clock::now(),
    }
}

/// See [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: i64,
    next: i64,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time on the loop clock (seconds).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let mut iv = aioloop::interval(std::time::Duration::from_millis(2));
    /// let (a, b) = lp.run_until_complete(async { (iv.tick().await, iv.tick().await) })?;
    /// assert!(b - a >= 0.002 - 1e-9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn tick(&mut self) -> f64 {
        let when = self.next;
        Sleep::new(State::Unregistered, when).await;
        let now = clock::now();
        let missed = (now - when) / self.period;
        self.next = when.saturating_add(self.period.saturating_mul(missed + 1));
        clock::nanos_to_secs(when)
    }

    /// The period.
    ///
    /// ```
    /// let iv = aioloop::interval(std::time::Duration::from_millis(3));
    /// assert_eq!(iv.period(), std::time::Duration::from_millis(3));
    /// ```
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period as u64)
    }
}
