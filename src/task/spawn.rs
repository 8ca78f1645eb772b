//! What every loop does with a new task, and with its unfinished tasks when it shuts down.
//! One implementation for the runtime and for `LocalLoop`.

use std::sync::Arc;

use super::raw::{Notified, RawTask};
use super::{registry, LoopId, Task, TaskRef};

/// Splits a freshly allocated task into its three owners (task/state.rs: a new task holds
/// three references): the registry's entry (inserted here, named if a name was given, rule
/// T2: registered at creation), the `Task<T>` handle and the first `Notified`, which the
/// caller queues — or, if its loop is closed, drops after cancelling the task.
///
/// # Safety
/// `raw` was just returned by `RawTask::new`/`new_local` for a future whose output is `T`,
/// and none of its references has been used.
pub(crate) unsafe fn bind<T>(raw: RawTask, name: Option<Arc<str>>) -> (Task<T>, Notified) {
    if let Some(name) = name {
        registry::set_name(raw.id(), name);
        raw.header().state.set_named();
    }
    // SAFETY: each wrapper takes exactly one of the three references of a new task.
    let (entry, join, notified) = unsafe {
        (
            TaskRef::from_raw_builtin(raw),
            Task::from_raw(raw),
            Notified::from_raw(raw),
        )
    };
    registry::insert(entry);
    (join, notified)
}

/// Cancels a task that was never queued because its loop is closed: its future is dropped
/// here, before its first step (rule T4's outcome), and it completes cancelled.
pub(crate) fn reject(notified: Notified, join_raw: RawTask) {
    join_raw.shutdown();
    drop(notified);
}

/// Cancels every unfinished built-in task of `loop_id` on this thread, dropping their
/// futures here. A task being polled elsewhere is marked and dropped by its poller. Repeats
/// while destructors create new tasks.
pub(crate) fn cancel_all_of(loop_id: LoopId) {
    loop {
        let batch = registry::collect(|t| {
            t.raw().is_some_and(|raw| {
                let s = raw.header().state.load();
                !s.is_complete() && !s.is_cancelled()
            }) && t.loop_id() == loop_id
        });
        if batch.is_empty() {
            return;
        }
        for t in &batch {
            if let Some(raw) = t.raw() {
                raw.shutdown();
            }
        }
    }
}
