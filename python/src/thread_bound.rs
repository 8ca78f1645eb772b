//! A value usable only on the thread that created it, checked on every access.
//!
//! `LocalLoop` is `!Send`. PyO3's `unsendable` classes enforce that with a panic; the loop
//! object must instead answer a wrong-thread call with asyncio's `RuntimeError`, and its
//! `call_soon_threadsafe` must work from any thread. So the Python class is `Send + Sync`
//! and holds the loop in a `ThreadBound`, whose `get` checks the thread.
//!
//! Protocol: (1) the value is created on thread `owner`; (2) it is borrowed only through
//! `get`, which returns it only on `owner`; (3) it is dropped only on `owner` — dropped
//! elsewhere (a Python object freed by another thread) it is leaked instead.

use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;

thread_local! {
    /// This thread's id, read without `thread::current()`'s reference count traffic (the
    /// check runs on every call into the loop).
    static THIS_THREAD: ThreadId = thread::current().id();
}

fn this_thread() -> ThreadId {
    THIS_THREAD
        .try_with(|id| *id)
        .unwrap_or_else(|_| thread::current().id())
}

pub(crate) struct ThreadBound<T> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

// SAFETY: the value is only ever touched on `owner` (protocol rules 2 and 3), so moving or
// sharing the wrapper between threads never moves or shares the value's use.
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: as for Send: `get` hands out references on `owner` only (rule 2).
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    pub(crate) fn new(value: T) -> Self {
        ThreadBound {
            owner: this_thread(),
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, on its own thread; asyncio's error elsewhere.
    pub(crate) fn get(&self) -> PyResult<&T> {
        if this_thread() == self.owner {
            Ok(&self.value)
        } else {
            Err(PyRuntimeError::new_err(
                "Non-thread-safe operation invoked on an event loop other than the current one",
            ))
        }
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if this_thread() == self.owner {
            // SAFETY: dropped once, here, on the owner thread (rule 3).
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}
