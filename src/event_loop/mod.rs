//! The event loop proper: one loop core (ready queue, timers, the asyncio-shaped
//! iteration) used by every runtime worker and by [`LocalLoop`], plus the loop API —
//! callbacks ([`Handle`], [`TimerHandle`]), the clock, and `sleep`.

pub(crate) mod callback;
pub(crate) mod clock;
pub(crate) mod context;
pub(crate) mod core;
pub(crate) mod exception;
pub(crate) mod lifo;
pub(crate) mod local;
pub(crate) mod loop_api;
pub(crate) mod main_task;
pub(crate) mod observed;
pub(crate) mod park;
pub(crate) mod queue;
pub(crate) mod reactor;
pub(crate) mod sleep;
pub(crate) mod stats;
pub(crate) mod timers;
pub(crate) mod wheel;

pub use callback::{Handle, TimerHandle};
pub use local::{spawn_local, LocalLoop, LoopHandle};
pub use sleep::{interval, sleep, sleep_secs, sleep_until, Interval, Sleep};
pub use stats::{Metrics, TaskCounts, WorkerMetrics};
