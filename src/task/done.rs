//! Done callbacks (rule F5) and the crate's completion hooks, run when a task completes.
//!
//! Two kinds share one list, kept in the task's lazily allocated extra block (the same
//! block as its cancellation state, `task/cancel.rs`), so a task nobody watches pays nothing:
//!
//! - **User callbacks** (`add_done_callback`): asyncio's. Never run synchronously: on
//!   completion each is queued with `call_soon` on the task's loop, in registration order,
//!   and runs in the context captured when it was added (T12). Added to a done task, it is
//!   queued at once.
//! - **Hooks**: the crate's own structured-concurrency primitives (task groups, `gather`)
//!   learn of a child's end *synchronously*, on the completing thread, with a summary of
//!   the outcome. A hook is installed before the task is first scheduled, so it can never
//!   miss the end. A hook that returns `true` has *retrieved* a panic (asyncio's
//!   `task.exception()` call in `TaskGroup._on_task_done`): it will not be reported as
//!   "Task exception was never retrieved" (T8).
//!
//! Protocol, on the task's one state word (task/state.rs, flag `WATCHED`): a registering
//! thread takes the list's lock and sets `WATCHED` with a read-modify-write. If the state
//! before was not `COMPLETE`, it pushes the callback; the completing thread's own
//! read-modify-write (publishing `COMPLETE`) comes later in that word's order, sees
//! `WATCHED`, and fires the list under the lock — after the push. If the state was already
//! `COMPLETE` (or the list already fired), the completing thread did not look, and the
//! registrant handles the callback itself (queues it, or calls the hook with the stored
//! outcome). So every callback runs exactly once, after the task is observably done, and a
//! task nobody watches pays nothing at completion: no lock, no fence. (loom:
//! `loom-tests/tests/done.rs`; a first version with a `SeqCst` fence pair on two words lost
//! a callback there.)

use std::sync::Arc;

use super::raw::{Schedule, TaskReport};
use super::TaskRef;
use crate::contextvars::Context;
use crate::error::{CancelledError, PanicError, TaskError};

/// How a task ended, as completion hooks see it (the output itself belongs to the handle).
pub(crate) enum Outcome {
    Finished,
    Cancelled(CancelledError),
    Panicked(PanicError),
}

impl Outcome {
    pub(crate) fn of<T>(output: &Result<T, TaskError>) -> Outcome {
        match output {
            Ok(_) => Outcome::Finished,
            Err(TaskError::Cancelled(c)) => Outcome::Cancelled(c.clone()),
            Err(TaskError::Panicked(p)) => Outcome::Panicked(p.share()),
        }
    }

    /// A copy for a second receiver (a late hook).
    pub(crate) fn duplicate(&self) -> Outcome {
        match self {
            Outcome::Finished => Outcome::Finished,
            Outcome::Cancelled(c) => Outcome::Cancelled(c.clone()),
            Outcome::Panicked(p) => Outcome::Panicked(p.share()),
        }
    }
}

/// Who receives a hook's call: a task group, a `gather`'s or `wait`'s watcher. One sink
/// serves all the tasks it watches, told apart by `key`.
pub(crate) trait HookSink: Send + Sync + 'static {
    /// Task `task` (registered with `key`) ended with `outcome`. Returns `true` if the sink
    /// retrieved a panic (no "never retrieved" report).
    fn task_done(&self, key: usize, task: &TaskRef, outcome: &Outcome) -> bool;
}

/// A hook: a shared sink and a key. Registering one costs a reference count, not an
/// allocation (a task group of 10,000 children shares one sink).
pub(crate) struct Hook {
    sink: Arc<dyn HookSink>,
    key: usize,
}

impl Hook {
    pub(crate) fn new(sink: Arc<dyn HookSink>, key: usize) -> Hook {
        Hook { sink, key }
    }

    fn call(self, task: &TaskRef, outcome: &Outcome) -> bool {
        self.sink.task_done(self.key, task, outcome)
    }
}

/// A user's callback (`Task::add_done_callback`).
pub(crate) type UserFn = Arc<dyn Fn(&TaskRef) + Send + Sync>;

pub(crate) enum DoneCallback {
    User { f: UserFn, ctx: Context },
    Hook(Hook),
}

/// The list in the extra block. The first registration is kept inline: a task usually has
/// at most one (its group's hook), and that should not cost a `Vec` allocation.
#[derive(Default)]
pub(crate) struct DoneList {
    fired: bool,
    first: Option<DoneCallback>,
    list: Vec<DoneCallback>,
    /// The outcome, kept after firing for hooks registered later.
    outcome: Option<Outcome>,
    /// A hook retrieved the task's panic, or `cancel()` was called on the finished task.
    retrieved: bool,
}

/// The callbacks a fired list handed over, in registration order (the inline one first).
pub(crate) struct Fired {
    first: Option<DoneCallback>,
    rest: Vec<DoneCallback>,
}

impl Fired {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }
}

impl IntoIterator for Fired {
    type Item = DoneCallback;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<DoneCallback>, std::vec::IntoIter<DoneCallback>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// What a registration must do itself because the list already fired.
pub(crate) enum Late {
    Queue(DoneCallback),
    CallHook(Hook, Option<Outcome>),
}

impl DoneList {
    pub(crate) fn add(&mut self, cb: DoneCallback) -> Result<(), Late> {
        if !self.fired {
            if self.first.is_none() && self.list.is_empty() {
                self.first = Some(cb);
            } else {
                self.list.push(cb);
            }
            return Ok(());
        }
        Err(match cb {
            DoneCallback::Hook(h) => Late::CallHook(h, self.outcome()),
            user => Late::Queue(user),
        })
    }

    /// asyncio's `remove_done_callback(fn)`: every registration of `f`, counted.
    pub(crate) fn remove(&mut self, f: *const ()) -> usize {
        let keep = |cb: &DoneCallback| match cb {
            DoneCallback::User { f: g, .. } => Arc::as_ptr(g) as *const () != f,
            DoneCallback::Hook(_) => true,
        };
        let mut removed = 0;
        if self.first.as_ref().is_some_and(|cb| !keep(cb)) {
            self.first = None;
            removed += 1;
        }
        let before = self.list.len();
        self.list.retain(keep);
        removed + before - self.list.len()
    }

    /// The completing thread takes the list (after COMPLETE is published).
    pub(crate) fn fire(&mut self, outcome: Option<&Outcome>) -> Fired {
        self.fired = true;
        self.outcome = outcome.map(Outcome::duplicate);
        Fired {
            first: self.first.take(),
            rest: std::mem::take(&mut self.list),
        }
    }

    /// The completing thread records a panic before publishing COMPLETE.
    pub(crate) fn record(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired
    }

    /// The outcome stored when the list fired (for a hook registered late).
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.outcome.as_ref().map(Outcome::duplicate)
    }

    pub(crate) fn set_retrieved(&mut self) {
        self.retrieved = true;
    }

    pub(crate) fn retrieved(&self) -> bool {
        self.retrieved
    }
}

/// Runs callbacks taken from a fired list (or a late registration): hooks now, user
/// callbacks queued on `owner` (F5). Returns `true` if a hook retrieved a panic.
pub(crate) fn run(
    task: &TaskRef,
    sched: &dyn Schedule,
    outcome: Option<&Outcome>,
    callbacks: impl IntoIterator<Item = DoneCallback>,
) -> bool {
    let mut retrieved = false;
    for cb in callbacks {
        match cb {
            DoneCallback::Hook(h) => {
                // Callers pass the outcome whenever the list holds hooks.
                let fallback = Outcome::Finished;
                let o = outcome.unwrap_or(&fallback);
                match crate::unwind::catch(|| h.call(task, o)) {
                    Ok(r) => retrieved |= r,
                    // A hook wakes a waiter whose waker is not ours: report its panic
                    // (invariant 7) and go on with the other callbacks.
                    Err(p) => sched.report(task.clone(), TaskReport::Hook(p)),
                }
            }
            DoneCallback::User { f, ctx } => queue_user(task, sched, f, ctx),
        }
    }
    retrieved
}

/// Queues one user callback on the task's loop; dropped if the loop is closed.
pub(crate) fn queue_user(task: &TaskRef, sched: &dyn Schedule, f: UserFn, ctx: Context) {
    let task = task.clone();
    sched.call_soon(Box::new(move || {
        let mut ctx = ctx;
        ctx.run(|| f(&task))
    }));
}
