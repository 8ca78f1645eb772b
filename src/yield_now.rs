//! `yield_now()`: asyncio's `await asyncio.sleep(0)`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Suspends the current task for exactly one loop iteration (rule X6, `sleep(0)`): the task
/// is re-queued at the back of its worker's run queue, so every task that was ready before
/// it runs first.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     for _ in 0..3 {
///         aioloop::yield_now().await;
///     }
/// });
/// ```
#[inline]
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    // Inlined into the awaiting future: a yield is the cheapest hop there is, and a call
    // across crates would cost it a frame of its own.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // In a built-in task's own poll, its poller re-queues it at the back when this poll
        // returns, told through a thread-local rather than an atomic wake (task/state.rs
        // rule 7). Anywhere else, waking while running marks the task notified, with the
        // same effect.
        if !crate::task::yield_polled_task(cx.waker()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
