//! The one notification path the combinators share: completion hooks (task/done.rs) that
//! record "task `i` ended, like this" and wake the single future watching them.
//!
//! Hooks run on the completing thread right after the task is observably done, so the
//! watcher may read the task's result as soon as it sees the index. A hook installed on a
//! task that is already done runs at once, with the task's real outcome (task/done.rs: a
//! panic is recorded before COMPLETE is published; the state word tells the rest). Hooks cannot
//! be removed: a watcher dropped early leaves them to fire into a `Watch` nobody polls,
//! which costs a lock and nothing else.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::shim::Mutex;
use crate::task::done::{DoneCallback, Hook, HookSink, Outcome};
use crate::TaskRef;

/// How a watched task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Finished,
    Cancelled,
    Panicked,
}

impl HookSink for Watch {
    fn task_done(&self, key: usize, _task: &TaskRef, outcome: &Outcome) -> bool {
        let (index, retrieve) = (key >> 1, key & 1 == 1);
        let ended = match outcome {
            Outcome::Finished => Ended::Finished,
            Outcome::Cancelled(_) => Ended::Cancelled,
            Outcome::Panicked(_) => Ended::Panicked,
        };
        let waker = {
            let mut s = self.inner.lock();
            s.ended.push((index, ended));
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        retrieve
    }
}

#[derive(Default)]
pub(crate) struct Watch {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ended: Vec<(usize, Ended)>,
    waker: Option<Waker>,
}

impl Watch {
    pub(crate) fn new() -> Arc<Watch> {
        Arc::new(Watch::default())
    }

    /// A hook reporting task `index`. `retrieve`: the watcher takes responsibility for a
    /// panic (it will not be reported as never retrieved). No allocation: the key carries
    /// the index and the flag.
    pub(crate) fn hook(self: &Arc<Self>, index: usize, retrieve: bool) -> Hook {
        Hook::new(self.clone(), index << 1 | usize::from(retrieve))
    }

    /// Watches an existing task (a late hook: runs now if the task is done).
    pub(crate) fn watch(self: &Arc<Self>, task: &TaskRef, index: usize) {
        if let Some(raw) = task.raw() {
            raw.add_done(DoneCallback::Hook(self.hook(index, false)));
        }
    }

    /// The tasks that ended since the last call, or `Pending` (waker stored) if none.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>) -> Poll<Vec<(usize, Ended)>> {
        let mut s = self.inner.lock();
        if s.ended.is_empty() {
            match &mut s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        } else {
            Poll::Ready(std::mem::take(&mut s.ended))
        }
    }
}
