//! The `bytes` objects the socket transports hand to `protocol.data_received`, recycled.
//!
//! Every read used to allocate a fresh `bytes`; above 512 bytes CPython takes those from
//! the C allocator (`malloc`/`free` of ~1 KiB per message, the largest single cost of a
//! read after the system calls). Most protocols drop the object before `data_received`
//! returns — they copy it (asyncio's `StreamReader` extends a `bytearray`) or only pass it
//! on (`transport.write(data)` sends or copies it) — so it goes back to a small per-thread
//! pool of *spares*, and a later read of the same length (on any transport of this
//! thread) copies its bytes into a spare instead of allocating: for steady traffic of
//! equal messages (an echo, a request/response protocol) no allocation at all. The pool
//! is bounded ([`POOL`] objects of at most [`MAX_LEN`] bytes per thread), so idle
//! connections hold nothing.
//!
//! Protocol (what makes writing into an existing `bytes` sound):
//! 1. A spare is pooled only when its reference count is 1: the pool's reference is the
//!    only one, so no Python code can see the object — it is not interned (CPython shares
//!    only the empty and the one-byte `bytes`, never pooled: see [`MIN_LEN`]) and a
//!    `bytes` cannot be weakly referenced. It leaves the pool only through [`take`].
//! 2. Before it is handed out again its cached hash is reset (`ob_shash = -1`), as
//!    `_PyBytes_Resize` does, so that `hash()` is computed from the new content.
//! 3. Only while the GIL is on: with the GIL disabled (a free-threaded build running
//!    without it) a count of 1 does not exclude another thread still using a borrowed
//!    reference, so there nothing is pooled (every read allocates, as before).

use std::cell::RefCell;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyBytes;

/// Shorter reads are not worth recycling: CPython's small-object allocator serves them
/// cheaply, and the one-byte `bytes` are shared singletons (rule 1).
const MIN_LEN: usize = 64;
/// Longer ones are not kept: what the pool may hold stays small.
const MAX_LEN: usize = 64 * 1024;
/// Spares per thread: enough for the two ends of a connection served by one loop, and a
/// few message sizes.
const POOL: usize = 4;

thread_local! {
    static SPARES: RefCell<Vec<Py<PyBytes>>> = const { RefCell::new(Vec::new()) };
}

/// A `bytes` holding `data`: a pooled spare of that length, overwritten, if there is one;
/// otherwise a new object.
pub(crate) fn take(py: Python<'_>, data: &[u8]) -> Py<PyBytes> {
    let spare = SPARES.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|b| len_of(py, b) == data.len())?;
        Some(s.swap_remove(i))
    });
    let Some(b) = spare else {
        return PyBytes::new(py, data).unbind();
    };
    let p = b.as_ptr().cast::<ffi::PyBytesObject>();
    // SAFETY: rule 1 — the spare was pooled with a reference count of 1 and nobody can
    // have obtained it since (it left the pool only here), so writing its content bytes
    // (`data.len()` of them: its length, checked above) is unobservable; rule 2 resets
    // the cached hash. `data` (the receive buffer) and the object do not overlap.
    unsafe {
        let content = std::ptr::addr_of_mut!((*p).ob_sval).cast::<u8>();
        std::ptr::copy_nonoverlapping(data.as_ptr(), content, data.len());
        reset_hash(p);
    }
    b
}

/// Called once the protocol returned: pools `b` if nobody else refers to it (rule 1) and
/// the pool has room; otherwise just drops this reference.
pub(crate) fn give_back(py: Python<'_>, b: Py<PyBytes>) {
    // SAFETY: the GIL is held (`py`) and `b` is a live object we hold a reference to.
    let sole = unsafe { ffi::Py_REFCNT(b.as_ptr()) } == 1;
    let len = len_of(py, &b);
    if !sole || !(MIN_LEN..=MAX_LEN).contains(&len) || !gil_enabled(py) {
        return;
    }
    let rest = SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < POOL {
            s.push(b);
            None
        } else {
            Some(b)
        }
    });
    drop(rest);
}

fn len_of(_py: Python<'_>, b: &Py<PyBytes>) -> usize {
    // SAFETY: the GIL is held (`_py`); `b` is a live `bytes`, a variable-size object whose
    // `ob_size` is its length.
    unsafe { ffi::Py_SIZE(b.as_ptr()) as usize }
}

/// Whether the GIL is on (rule 3): always below 3.13; `sys._is_gil_enabled()` after.
fn gil_enabled(py: Python<'_>) -> bool {
    static ON: GILOnceCell<bool> = GILOnceCell::new();
    *ON.get_or_init(py, || {
        py.import("sys")
            .and_then(|sys| match sys.getattr("_is_gil_enabled") {
                Ok(f) => f.call0()?.is_truthy(),
                Err(_) => Ok(true),
            })
            .unwrap_or(false)
    })
}

/// Rule 2: the next `hash()` recomputes.
///
/// # Safety
/// `p` is a live `bytes` object that only the caller can see (rule 1); the GIL is held.
#[allow(deprecated)] // `ob_shash`: deprecated for readers, still the cache CPython keeps
unsafe fn reset_hash(p: *mut ffi::PyBytesObject) {
    // SAFETY: per this function's contract `p` points to a `PyBytesObject`.
    unsafe { (*p).ob_shash = -1 };
}
