//! The loops' clock: asyncio's `loop.time()`, in seconds as `f64`, from one process-wide
//! monotonic epoch so that every loop (each runtime worker, each `LocalLoop`) reads the same
//! clock and a deadline means the same instant wherever it is fired.
//!
//! Internally a deadline is `i64` nanoseconds since the epoch: negative values are allowed
//! (asyncio accepts `call_at` in the past and negative `call_later` delays, rule S2), and
//! [`NEVER`] stands for an infinite delay.

use std::sync::OnceLock;

use crate::error::InvalidDelay;
use std::time::{Duration, Instant};

/// A deadline that is never reached (an infinite delay).
pub(crate) const NEVER: i64 = i64::MAX;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Now, in nanoseconds since the epoch.
pub(crate) fn now() -> i64 {
    // The epoch first: on the very first call it must not be later than our `now`.
    let e = epoch();
    i64::try_from(Instant::now().duration_since(e).as_nanos()).unwrap_or(NEVER - 1)
}

/// The loop clock in seconds (asyncio's `loop.time()`).
pub(crate) fn time() -> f64 {
    now() as f64 / 1e9
}

pub(crate) fn instant_to_nanos(t: Instant) -> i64 {
    let e = epoch();
    match t.checked_duration_since(e) {
        Some(d) => i64::try_from(d.as_nanos()).unwrap_or(NEVER - 1),
        None => -i64::try_from(e.duration_since(t).as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The `Instant` of a deadline (`None` for [`NEVER`], or one the platform cannot represent).
pub(crate) fn nanos_to_instant(n: i64) -> Option<Instant> {
    if n == NEVER {
        return None;
    }
    let e = epoch();
    if n >= 0 {
        e.checked_add(Duration::from_nanos(n as u64))
    } else {
        e.checked_sub(Duration::from_nanos(n.unsigned_abs()))
    }
}

pub(crate) fn nanos_to_secs(n: i64) -> f64 {
    if n == NEVER {
        f64::INFINITY
    } else {
        n as f64 / 1e9
    }
}

/// `now + d`, saturating at [`NEVER`].
pub(crate) fn after(d: Duration) -> i64 {
    after_from(now(), d)
}

/// `from + d`, saturating at [`NEVER`].
pub(crate) fn after_from(from: i64, d: Duration) -> i64 {
    let d = i64::try_from(d.as_nanos()).unwrap_or(NEVER);
    from.saturating_add(d)
}

/// Nanoseconds until `deadline` (zero if it has passed; `None` for [`NEVER`]).
pub(crate) fn until(deadline: i64) -> Option<Duration> {
    if deadline == NEVER {
        return None;
    }
    let left = deadline.saturating_sub(now());
    Some(Duration::from_nanos(left.max(0) as u64))
}

/// Seconds (as asyncio takes them) to nanoseconds. `+inf` is [`NEVER`]; finite values
/// saturate; NaN and `-inf` are errors.
pub(crate) fn secs_to_nanos(secs: f64) -> Result<i64, InvalidDelay> {
    if secs.is_nan() {
        return Err(InvalidDelay::NaN);
    }
    if secs == f64::NEG_INFINITY {
        return Err(InvalidDelay::NegativeInfinity);
    }
    if secs == f64::INFINITY {
        return Ok(NEVER);
    }
    let n = secs * 1e9;
    Ok(if n >= (NEVER - 1) as f64 {
        NEVER - 1
    } else if n <= i64::MIN as f64 {
        i64::MIN
    } else {
        n as i64
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(secs_to_nanos(1.5), Ok(1_500_000_000));
        assert_eq!(secs_to_nanos(-0.25), Ok(-250_000_000));
        assert_eq!(secs_to_nanos(f64::INFINITY), Ok(NEVER));
        assert_eq!(secs_to_nanos(f64::NAN), Err(InvalidDelay::NaN));
        assert_eq!(
            secs_to_nanos(f64::NEG_INFINITY),
            Err(InvalidDelay::NegativeInfinity)
        );
        assert_eq!(secs_to_nanos(1e300), Ok(NEVER - 1));
        assert_eq!(until(NEVER), None);
        assert_eq!(until(i64::MIN), Some(Duration::ZERO));
    }

    #[test]
    fn clock_is_monotonic_and_shared() {
        let a = time();
        let b = time();
        assert!(b >= a);
        let t = Instant::now();
        let n = instant_to_nanos(t);
        assert!(n <= now());
        assert_eq!(nanos_to_instant(n), Some(t));
        assert_eq!(nanos_to_instant(NEVER), None);
    }
}
