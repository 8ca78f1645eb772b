//! The thread-local current-task slot (rules L3–L6).
//!
//! One loop runs per thread, so "the current task of loop L" is "the current task of this
//! thread". The slot holds either nothing, a task entered through the public protocol (an
//! owned [`TaskRef`]), or a built-in task being polled by its worker, which is held *borrowed*:
//! the poller owns a reference for the whole poll and always leaves before releasing it, so
//! entering a built-in task costs no reference-count traffic. Reading the slot
//! (`current_task()`) turns either form into an owned `TaskRef`.

use std::cell::Cell;
use std::ptr::NonNull;

use super::raw::{Header, RawTask};
use super::{LoopId, TaskRef};
use crate::error::{EnterError, LeaveError};

enum Slot {
    Empty,
    /// A built-in task being polled; the poller holds the reference.
    Borrowed(NonNull<Header>),
    Owned(TaskRef),
}

crate::shim::thread_local! {
    static CURRENT: Cell<Slot> = Cell::new(Slot::Empty);
}

crate::shim::thread_local! {
    /// The loop running on this thread, set by the loop layer when it enters one
    /// (event_loop/context.rs): the task layer answers "which loop is running here?"
    /// (rules L6, L7) without naming any loop.
    static RUNNING_LOOP: Cell<Option<LoopId>> = Cell::new(None);
}

/// Records the loop now running on this thread (`None`: none).
pub(crate) fn set_running_loop(id: Option<LoopId>) {
    RUNNING_LOOP.with(|l| l.set(id));
}

/// [`set_running_loop(None)`](set_running_loop) that never panics (a fork handler's: the
/// thread-local may be gone on a thread that is exiting).
#[cfg(all(unix, not(loom)))]
pub(crate) fn forget_running_loop() {
    let _ = RUNNING_LOOP.try_with(|l| l.set(None));
}

/// The loop running on this thread, if any.
pub(crate) fn running_loop() -> Option<LoopId> {
    RUNNING_LOOP.with(Cell::get)
}

impl Slot {
    fn id(&self) -> Option<u64> {
        match self {
            Slot::Empty => None,
            // SAFETY: a borrowed entry is only in the slot while its poller holds a reference.
            Slot::Borrowed(p) => Some(unsafe { RawTask::from_raw(*p) }.id()),
            Slot::Owned(t) => Some(t.id()),
        }
    }

    fn to_task_ref(&self) -> Option<TaskRef> {
        match self {
            Slot::Empty => None,
            Slot::Borrowed(p) => {
                // SAFETY: a borrowed entry is in the slot only while its poller holds a reference
                // (state.rs rule 1), so the task is live; the new `TaskRef` takes its own.
                let raw = unsafe { RawTask::from_raw(*p) }.ref_inc();
                // SAFETY: we just took the reference the `TaskRef` owns.
                Some(unsafe { TaskRef::from_raw_builtin(raw) })
            }
            Slot::Owned(t) => Some(t.clone()),
        }
    }

    /// asyncio's `repr` of the current task, `None` when there is none.
    fn repr(&self) -> String {
        match self.to_task_ref() {
            Some(t) => t.to_string(),
            None => "None".to_owned(),
        }
    }
}

/// Runs `f` with the slot's value moved out, then puts back what `f` returns. User code
/// (drops of `TaskRef`s) never runs while the value is out.
fn with_slot<R>(f: impl FnOnce(Slot) -> (Slot, R)) -> R {
    CURRENT.with(|c| {
        let (back, r) = f(c.replace(Slot::Empty));
        c.set(back);
        r
    })
}

pub(crate) fn enter(task: &TaskRef) -> Result<(), EnterError> {
    with_slot(|cur| match cur {
        Slot::Empty => (Slot::Owned(task.clone()), Ok(())),
        cur => {
            let err = EnterError {
                task: task.to_string(),
                current: cur.repr(),
            };
            (cur, Err(err))
        }
    })
}

pub(crate) fn leave(task: &TaskRef) -> Result<(), LeaveError> {
    let left = with_slot(|cur| {
        if cur.id() == Some(task.id()) {
            (Slot::Empty, Ok(cur))
        } else {
            let err = LeaveError {
                task: task.to_string(),
                current: cur.repr(),
            };
            (cur, Err(err))
        }
    })?;
    drop(left); // outside the slot access: may release the last reference
    Ok(())
}

pub(crate) fn swap(task: Option<&TaskRef>) -> Option<TaskRef> {
    let new = match task {
        Some(t) => Slot::Owned(t.clone()),
        None => Slot::Empty,
    };
    let prev = with_slot(|cur| (new, cur));
    match prev {
        Slot::Owned(t) => Some(t),
        other => other.to_task_ref(),
    }
}

pub(crate) fn get() -> Option<TaskRef> {
    with_slot(|cur| {
        let r = cur.to_task_ref();
        (cur, r)
    })
}

/// Brackets one poll of a built-in task: enter on creation, leave on drop (also when the
/// poll panics). This is the enter/leave of rule L8 specialised to a borrowed slot entry.
///
/// If the slot is not empty on entry, third-party code broke the protocol on this worker
/// (entered a task outside any poll and never left it). A built-in poll cannot fail, so the
/// stale entry is set aside for the duration of the poll and put back afterwards, exactly as
/// `swap_current_task` would.
pub(crate) struct EnterGuard {
    prev: Option<Slot>,
}

impl EnterGuard {
    #[inline]
    pub(crate) fn builtin(ptr: NonNull<Header>) -> EnterGuard {
        let prev = CURRENT.with(|c| c.replace(Slot::Borrowed(ptr)));
        EnterGuard {
            prev: match prev {
                Slot::Empty => None,
                other => Some(other),
            },
        }
    }
}

impl Drop for EnterGuard {
    #[inline]
    fn drop(&mut self) {
        let back = self.prev.take().unwrap_or(Slot::Empty);
        let left = CURRENT.with(|c| c.replace(back));
        // Normally our own borrowed entry comes back; if the task swapped in something else
        // and did not restore it, that is released here, outside the slot access.
        drop(left);
    }
}

/// The built-in task current on this thread, if any: the one being polled, or one entered
/// through the public protocol. Catch scopes and awaited `Task`s find their task here.
pub(crate) fn with_builtin<R>(f: impl FnOnce(Option<RawTask>) -> R) -> R {
    let raw = with_slot(|cur| {
        let raw = match &cur {
            Slot::Empty => None,
            // SAFETY: a borrowed entry is only in the slot while its poller holds a reference.
            Slot::Borrowed(p) => Some(unsafe { RawTask::from_raw(*p) }),
            Slot::Owned(t) => t.raw(),
        };
        (cur, raw)
    });
    // The slot keeps the task alive for as long as it is current, and `f` runs on this
    // thread before anything could leave it.
    f(raw)
}
