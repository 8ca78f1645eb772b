//! asyncio's synchronization primitives (rules P1–P7): [`Lock`], [`Event`], [`Condition`],
//! [`Semaphore`], [`BoundedSemaphore`] and [`Barrier`].
//!
//! All of them are `Send + Sync`, usable from every worker of a runtime and from a
//! [`LocalLoop`](crate::LocalLoop) at the same time (share them with an `Arc`), and wake a
//! waiting task on its own loop. They are not bound to one loop, unlike asyncio's.
//! Waiters are served in FIFO order and are parked on one intrusive list per primitive
//! (`waiters.rs`, whose numbered protocol the `SAFETY` comments cite); the node lives inside
//! the waiting future, so waiting allocates nothing, and the uncontended paths are one
//! atomic compare-and-swap. Cancellation follows asyncio: a waiter cancelled after it was
//! handed the lock, a permit or a notification passes it on.
//!
//! ```
//! use std::sync::Arc;
//! use aioloop::sync::{Lock, Semaphore};
//!
//! let rt = aioloop::Runtime::builder().workers(2).build()?;
//! let (lock, sem) = (Arc::new(Lock::new()), Arc::new(Semaphore::new(4)));
//! rt.block_on(async {
//!     let _permit = sem.acquire().await;
//!     let _held = lock.acquire().await;
//!     assert!(lock.locked());
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod permits;
mod semaphore;
pub(crate) mod waiters;

pub use barrier::{Barrier, BarrierWait};
pub use condition::Condition;
pub use error::{
    BrokenBarrierError, ConditionError, InvalidParties, LockNotAcquired, TooManyReleases,
};
pub use event::{Event, EventWait};
pub use lock::{Lock, LockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit};
