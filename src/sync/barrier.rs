//! asyncio's `Barrier` (rule P6, Python 3.11): `parties` tasks meet; the last to arrive
//! releases them all. Its state machine (filling → draining → filling, with resetting and
//! broken) is asyncio's, kept under one short lock with the waiter list instead of over a
//! `Condition`: every state change is made and its waiters notified in one hold, and each
//! woken task re-checks its own predicate, as asyncio's `wait_for` does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::error::{BrokenBarrierError, InvalidParties};
use super::waiters::{notify_many, WaitList, Waiter};
use crate::shim::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Filling,
    Draining,
    Resetting,
    Broken,
}

struct State {
    phase: Phase,
    /// Tasks inside `wait` that have taken an index and not yet left.
    count: usize,
    /// Rounds released so far. A counted task's outcome is decided when its round is
    /// released, not when it next runs: asyncio's woken waiters re-check the state before
    /// anyone can abort (they queue for the condition's lock ahead of the aborter), so an
    /// abort right after a release never fails the tasks that release let through.
    released: u64,
    waiters: WaitList,
}

/// asyncio's `Barrier`: `wait().await` blocks until `parties` tasks are waiting, then
/// releases them all, each with a distinct index in `0..parties`. `abort()` breaks it
/// ([`BrokenBarrierError`] for everyone waiting and arriving); `reset()` sends the waiting
/// tasks [`BrokenBarrierError`] and makes it usable again.
///
/// ```
/// use std::sync::Arc;
/// use aioloop::sync::Barrier;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let barrier = Arc::new(Barrier::new(3)?);
/// let mut indices: Vec<usize> = rt.block_on(async {
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             aioloop::create_task(async move { b.wait().await.unwrap() })
///         })
///         .collect();
///     let mut out = Vec::new();
///     for t in tasks {
///         out.push(t.await.unwrap());
///     }
///     out
/// });
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    parties: usize,
    state: Mutex<State>,
}

impl Barrier {
    /// A barrier for `parties` tasks; 0 is asyncio's `ValueError('parties must be > 0')`.
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Barrier::new(2)?.parties(), 2);
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn new(parties: usize) -> Result<Barrier, InvalidParties> {
        if parties == 0 {
            return Err(InvalidParties);
        }
        Ok(Barrier {
            parties,
            state: Mutex::new(State {
                phase: Phase::Filling,
                count: 0,
                released: 0,
                waiters: WaitList::new(),
            }),
        })
    }

    /// Waits until `parties` tasks are waiting, then returns this task's index (the order
    /// of arrival, `0..parties`). A barrier broken when the task arrives is
    /// [`BrokenBarrierError::Aborted`]; one aborted or reset while it waits is
    /// [`BrokenBarrierError::AbortedOrReset`]. A task arriving while the previous round is
    /// still leaving waits for it to finish. A task cancelled while waiting leaves the
    /// count, as in asyncio.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let barrier = aioloop::sync::Barrier::new(1)?;
    /// assert_eq!(barrier.wait().await?, 0);
    /// assert_eq!(barrier.wait().await?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            waiter: Waiter::new(),
            queued: false,
            index: None,
        }
    }

    /// Returns the barrier to its empty state; tasks waiting in it get
    /// [`BrokenBarrierError::AbortedOrReset`] (asyncio's `reset()`, which is a coroutine
    /// there only because it takes the condition's lock).
    ///
    /// ```
    /// let barrier = aioloop::sync::Barrier::new(2)?;
    /// barrier.abort();
    /// barrier.reset();
    /// assert!(!barrier.broken());
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn reset(&self) {
        let mut st = self.state.lock();
        if st.count > 0 {
            st.phase = Phase::Resetting;
        } else {
            st.phase = Phase::Filling;
        }
        self.notify_all(st);
    }

    /// Breaks the barrier: tasks waiting and arriving get [`BrokenBarrierError`]
    /// (asyncio's `abort()`).
    ///
    /// ```
    /// let barrier = aioloop::sync::Barrier::new(2)?;
    /// barrier.abort();
    /// assert!(barrier.broken());
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn abort(&self) {
        let mut st = self.state.lock();
        st.phase = Phase::Broken;
        self.notify_all(st);
    }

    /// The number of tasks needed to pass the barrier.
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Barrier::new(5)?.parties(), 5);
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Tasks waiting while the barrier fills (0 while it drains, resets or is broken).
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Barrier::new(2)?.n_waiting(), 0);
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn n_waiting(&self) -> usize {
        let st = self.state.lock();
        if st.phase == Phase::Filling {
            st.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    ///
    /// ```
    /// assert!(!aioloop::sync::Barrier::new(2)?.broken());
    /// # Ok::<(), aioloop::sync::InvalidParties>(())
    /// ```
    pub fn broken(&self) -> bool {
        self.state.lock().phase == Phase::Broken
    }

    fn notify_all(&self, guard: crate::shim::MutexGuard<'_, State>) {
        notify_many(guard, || self.state.lock(), |s| &mut s.waiters, usize::MAX);
    }

    /// A counted task leaves (asyncio's `finally: count -= 1; _exit()`): the last one out
    /// of a draining or resetting round makes the barrier fill again, and waiters re-check.
    fn leave(&self, mut st: crate::shim::MutexGuard<'_, State>) {
        st.count -= 1;
        if st.count == 0 {
            if matches!(st.phase, Phase::Draining | Phase::Resetting) {
                st.phase = Phase::Filling;
            }
            self.notify_all(st);
        }
    }
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Barrier")
            .field("state", &st.phase)
            .field("waiting", &st.count)
            .field("parties", &self.parties)
            .finish()
    }
}

/// The future of [`Barrier::wait`].
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// let barrier = aioloop::sync::Barrier::new(1)?;
/// let w: aioloop::sync::BarrierWait<'_> = barrier.wait();
/// assert_eq!(w.await?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    waiter: Waiter,
    queued: bool,
    /// Our index and round once counted in (asyncio's `_count` was incremented for us).
    index: Option<(usize, u64)>,
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize, BrokenBarrierError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out; `waiter` is structurally pinned and dropped in place
        // with the future (invariant 17).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is pinned, hence its field.
        let node = unsafe { Pin::new_unchecked(&this.waiter) };
        let b = this.barrier;
        let mut st = b.state.lock();
        if this.queued {
            // SAFETY: waiters.rs rule 1: our node, the barrier's list, under its lock.
            if !unsafe { st.waiters.take_notified(node, cx.waker()) } {
                return Poll::Pending;
            }
            this.queued = false;
        }
        match this.index {
            // asyncio's `_block`: wait while the previous round drains or resets.
            None => match st.phase {
                Phase::Draining | Phase::Resetting => {}
                Phase::Broken => return Poll::Ready(Err(BrokenBarrierError::Aborted)),
                Phase::Filling => {
                    let index = st.count;
                    st.count += 1;
                    if index + 1 == b.parties {
                        // asyncio's `_release`: the last party releases the round.
                        st.phase = Phase::Draining;
                        st.released += 1;
                        b.notify_all(st);
                        b.leave(b.state.lock());
                        return Poll::Ready(Ok(index));
                    }
                    this.index = Some((index, st.released));
                }
            },
            // asyncio's `_wait`: wait for the end of filling.
            Some((index, round)) => {
                let released = st.released != round;
                if released || st.phase != Phase::Filling {
                    this.index = None;
                    let broken = !released;
                    b.leave(st);
                    return Poll::Ready(if broken {
                        Err(BrokenBarrierError::AbortedOrReset)
                    } else {
                        Ok(index)
                    });
                }
            }
        }
        // SAFETY: waiters.rs rules 1 and 3: under the list's lock; `Drop` removes the node
        // and the future is dropped where pinned (invariant 17).
        unsafe { st.waiters.push(node, cx.waker()) };
        this.queued = true;
        Poll::Pending
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if !self.queued && self.index.is_none() {
            return;
        }
        let mut st = self.barrier.state.lock();
        if self.queued {
            // SAFETY: pinned when pushed, dropped in place (invariant 17).
            let node = unsafe { Pin::new_unchecked(&self.waiter) };
            // Barrier notifications are broadcasts: nothing to pass on.
            // SAFETY: waiters.rs rule 1: our node, our list, under its lock.
            unsafe { st.waiters.remove(node) };
        }
        if self.index.is_some() {
            // Cancelled while counted: asyncio's `finally` still leaves.
            self.barrier.leave(st);
        }
    }
}

impl std::fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarrierWait")
            .field("index", &self.index)
            .finish()
    }
}
