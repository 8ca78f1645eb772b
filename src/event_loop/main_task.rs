//! The main task: what stands for the future that `block_on` / `run_until_complete` runs,
//! as asyncio wraps the main coroutine in a Task, so that `current_task()` inside it is that
//! task and `all_tasks()` lists it. The calling thread polls the future itself (so it need
//! not be `Send` or `'static`), and a small [`MainTask`] takes part in the task protocol
//! exactly as a third-party task type would — registered, entered and left around every
//! poll, unregistered when done. It is the in-tree proof that the public protocol is enough.
//!
//! Owns: the main task's registration. Used by `runtime::block_on` and
//! `LocalLoop::run_until_complete`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::task::{self, LoopId, TaskLike, TaskRef};

/// The task that stands for a `block_on` future.
struct MainTask {
    id: u64,
    loop_id: LoopId,
    done: AtomicBool,
}

impl TaskLike for MainTask {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        format!("Task-{}", self.id)
    }
    fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
    fn loop_id(&self) -> LoopId {
        self.loop_id
    }
}

/// A registered main task for the duration of one `block_on` / `run_until_complete`: marks
/// it done and unregisters it on drop (also on unwind).
pub(crate) struct MainGuard {
    main: Arc<MainTask>,
    main_ref: TaskRef,
}

impl MainGuard {
    /// Registers a main task of loop `loop_id`.
    pub(crate) fn start(loop_id: LoopId) -> MainGuard {
        let main = Arc::new(MainTask {
            id: task::next_task_id(),
            loop_id,
            done: AtomicBool::new(false),
        });
        let main_ref = TaskRef::new(main.clone());
        task::register_task(&main_ref);
        MainGuard { main, main_ref }
    }

    /// One step of the main future, bracketed by enter/leave of the main task (rule L8).
    pub(crate) fn step<F: Future>(
        &self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let displaced = match task::enter_task(&self.main_ref) {
            Ok(()) => None,
            // Protocol misuse by other code on this thread; step aside for it.
            Err(_) => task::swap_current_task(Some(&self.main_ref)),
        };
        let _step = Step {
            main_ref: &self.main_ref,
            displaced,
        };
        future.poll(cx)
    }
}

impl Drop for MainGuard {
    fn drop(&mut self) {
        self.main.done.store(true, Ordering::Release);
        task::unregister_task(&self.main_ref);
    }
}

/// Leaves the main task after a poll, also on unwind.
struct Step<'a> {
    main_ref: &'a TaskRef,
    /// A task some other code left current on this thread, restored after the poll.
    displaced: Option<TaskRef>,
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        // The poll may have swapped the slot (eager start does); whatever is current is
        // replaced by what was there before the step.
        if task::leave_task(self.main_ref).is_err() {
            task::swap_current_task(None);
        }
        if let Some(t) = self.displaced.take() {
            task::swap_current_task(Some(&t));
        }
    }
}
