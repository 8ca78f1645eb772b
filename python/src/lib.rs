//! aioloop as a Python asyncio event loop: the extension module `aioloop._aioloop`.
//!
//! The Python package `aioloop` (python/aioloop/__init__.py) defines `EventLoop` as a
//! subclass of [`Loop`] and `asyncio.AbstractEventLoop`. The scheduling core — the ready
//! queue, the timers, the iteration, the cross-thread inbox — is aioloop's
//! [`LocalLoop`](aioloop::LocalLoop); Python callbacks are closures on it. [`Task`] is a
//! native task that drives a coroutine with `send`/`throw` and keeps itself visible to
//! `asyncio.all_tasks()`/`current_task()` through asyncio's task-lifetime functions.
//!
//! Nothing here relies on the GIL to protect the loop's own data: the `LocalLoop` is
//! reachable only from its thread (module `thread_bound`), and the state shared with other
//! threads is atomics, mutexes or the loop's `Send` [`LoopHandle`](aioloop::LoopHandle).
//!
//! ```
//! // Building this crate links libpython; the module is registered by `#[pymodule]`.
//! let _ = _aioloop::MODULE_NAME;
//! ```

use pyo3::prelude::*;

mod asyncio;
mod cfunc;
mod cfuture;
mod fastcall;
mod future_new;
mod handle;
mod loop_core;
mod rawmeth;
mod task;
mod task_await;
mod task_gc;
mod thread_bound;
mod timers;
mod transport;
mod transport_bytes;
mod transport_read;
mod transport_write;

pub use handle::{Handle, TimerHandle};
pub use loop_core::Loop;
pub use task::Task;
pub use transport::SocketTransport;

/// The extension module's import name inside the `aioloop` package.
///
/// ```
/// assert_eq!(_aioloop::MODULE_NAME, "aioloop._aioloop");
/// ```
pub const MODULE_NAME: &str = "aioloop._aioloop";

#[pymodule]
fn _aioloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Loop>()?;
    fastcall::install(&m.py().get_type::<Loop>())?;
    rawmeth::install(&m.py().get_type::<Loop>(), &loop_core::RAW_METHODS)?;
    m.add_class::<Handle>()?;
    m.add_class::<TimerHandle>()?;
    handle::install_type(m.py());
    m.add_class::<Task>()?;
    task_gc::install(&m.py().get_type::<Task>())?;
    m.add_class::<task::TaskIter>()?;
    m.add_class::<SocketTransport>()?;
    rawmeth::install(
        &m.py().get_type::<SocketTransport>(),
        &transport::RAW_METHODS,
    )?;
    Ok(())
}
