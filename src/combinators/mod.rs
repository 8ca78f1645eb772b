//! asyncio's combinators over tasks: `gather` (X4), `shield` (X3), `wait` and
//! `as_completed` (X5).
//!
//! All of them learn of a task's end through completion hooks (`watch.rs`, task/done.rs)
//! rather than by polling the `Task<T>`s, for two reasons: awaiting a `Task` passes the
//! awaiter's cancellation on to it (rule T3), which `shield` and `wait` must not do and
//! `gather` does for all children rather than one; and a hook names the task that ended,
//! so collecting n results costs O(n), not O(n²).

mod gather;
mod handle;
mod shared_task;
mod shield;
mod wait;
mod watch;

pub use gather::{gather, gather2, gather3, gather4, Gather, GatherAll};
pub use handle::TaskHandle;
pub use shared_task::SharedTask;
pub use shield::{shield, shield_task, Shield, ShieldTask};
pub use wait::{
    as_completed, as_completed_with_timeout, wait, AsCompleted, AsCompletedTimeout, EmptyWaitError,
    ReturnWhen,
};
