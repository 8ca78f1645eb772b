//! What every loop does with a new task, and with its unfinished tasks when it shuts down.
//! One implementation for the runtime and for `LocalLoop`.

use std::sync::Arc;

use super::done::{DoneCallback, Hook};
use super::raw::{Notified, RawTask};
use super::{registry, LoopId, Task, TaskRef};
use crate::contextvars;

/// How one task is to be created: the public [`Builder`](super::Builder)'s options after
/// the loop's task factory (T10) saw them, plus the crate's own completion hook.
#[derive(Default)]
pub(crate) struct SpawnOpts {
    pub(crate) name: Option<Arc<str>>,
    /// Run the first step inside `create_task` (T9); `None`: not chosen, which the task
    /// factory may decide, and which means queued if it does not.
    pub(crate) eager: Option<bool>,
    /// A completion hook (task/done.rs), installed before the first step.
    pub(crate) hook: Option<Hook>,
    /// The context the task runs in; `None`: a copy of the creator's (T12).
    pub(crate) context: Option<contextvars::Context>,
}

impl SpawnOpts {
    /// Whether the first step runs inside `create_task` (when on the task's own loop).
    pub(crate) fn starts_eagerly(&self) -> bool {
        self.eager == Some(true)
    }

    pub(crate) fn named(name: Option<Arc<str>>) -> SpawnOpts {
        SpawnOpts {
            name,
            ..SpawnOpts::default()
        }
    }
}

/// Runs a new task's first step now, on this thread (T9, asyncio's eager start), with the
/// creating task swapped out of the current-task slot and back in afterwards (L5). A task
/// that finishes there is never queued; one that suspends goes on like any other.
pub(crate) fn run_eagerly(notified: Notified) {
    /// Puts the creator back even if the step unwinds (it cannot: polls catch panics).
    struct Restore(Option<TaskRef>);
    impl Drop for Restore {
        fn drop(&mut self) {
            super::current::swap(self.0.as_ref());
        }
    }
    let _restore = Restore(super::current::swap(None));
    notified.run();
}

/// Splits a freshly allocated task into its three owners (task/state.rs: a new task holds
/// three references): the registry's entry (inserted here, named if a name was given, rule
/// T2: registered at creation), the `Task<T>` handle and the first `Notified`, which the
/// caller queues — or, if its loop is closed, drops after cancelling the task.
///
/// # Safety
/// `raw` was just returned by `RawTask::new`/`new_local` for a future whose output is `T`,
/// and none of its references has been used. (`opts.eager` is the caller's to act on.)
#[inline]
pub(crate) unsafe fn bind<T>(raw: RawTask, opts: SpawnOpts) -> (Task<T>, Notified) {
    if let Some(name) = opts.name {
        registry::set_name(raw.id(), name);
        raw.header().state.set_named();
    }
    // T12: the task runs in the context it was given, else in a copy of its creator's
    // (O(1); none if empty).
    let ctx = match opts.context {
        Some(given) if given.is_empty() => None,
        Some(given) => Some(given),
        None => contextvars::copy_for_task(),
    };
    if let Some(ctx) = ctx {
        raw.header().extra.get_or_init().put_context(ctx);
    }
    if let Some(hook) = opts.hook {
        raw.add_done(DoneCallback::Hook(hook));
    }
    // SAFETY: each wrapper takes exactly one of the three references of a new task.
    let (entry, join, notified) = unsafe {
        (
            TaskRef::from_raw_builtin(raw),
            Task::from_raw(raw),
            Notified::from_raw(raw),
        )
    };
    registry::insert_builtin(raw, entry);
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
