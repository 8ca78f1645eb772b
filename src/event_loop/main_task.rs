//! The main task: the future that `block_on` / `run_until_complete` runs, wrapped in a real
//! built-in task, as asyncio wraps the main coroutine in a Task. `current_task()` inside it
//! is that task, `all_tasks()` lists it, and cancellation, `catch_cancel`, `TaskGroup` and
//! `timeout` behave there exactly as in a spawned task (issue 10 item 8).
//!
//! The future need not be `Send` or `'static`, so the task is polled only by the calling
//! thread: its scheduler ([`MainSched`]) does not queue it on the loop, it parks the
//! `Notified` reference in a slot and wakes the caller, which runs it. The future's
//! lifetime is erased to fit the task core's `'static` bound; [`MainTask`]'s `Drop` drops
//! the future (on the calling thread) before the borrow it may hold can end.
//!
//! Owns: the main task. Used by `runtime::block_on` and `LocalLoop::run_until_complete`.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::TaskError;
use crate::shim::{Arc, Mutex};
use crate::task::raw::{Notified, RawTask, Schedule, TaskReport};
use crate::task::spawn::{self, SpawnOpts};
use crate::task::{self, LoopId, Task, TaskRef};

/// Where the main task's scheduler leaves it for the calling thread.
struct MainSlot {
    notified: Mutex<Option<Notified>>,
    /// Wakes the calling thread (or its loop) to run the task.
    waker: Waker,
}

/// The main task's scheduler: the loop's, except that the task runs on the calling thread.
struct MainSched<S> {
    slot: Arc<MainSlot>,
    delegate: S,
}

impl<S: Schedule> Schedule for MainSched<S> {
    fn schedule(&self, task: Notified) {
        let old = self.slot.notified.lock().replace(task);
        drop(old);
        self.slot.waker.wake_by_ref();
    }
    fn loop_id(&self) -> LoopId {
        self.delegate.loop_id()
    }
    fn call_soon(&self, f: Box<dyn FnOnce() + Send>) -> bool {
        self.delegate.call_soon(f)
    }
    fn report(&self, task: TaskRef, report: TaskReport) {
        self.delegate.report(task, report)
    }
    fn debug(&self) -> bool {
        self.delegate.debug()
    }
}

/// A running main task borrowing `'a` data; its future is dropped when this is.
pub(crate) struct MainTask<'a, T> {
    join: Option<Task<()>>,
    raw: RawTask,
    slot: Arc<MainSlot>,
    out: Rc<RefCell<Option<T>>>,
    _borrow: PhantomData<&'a mut ()>,
}

impl<'a, T> MainTask<'a, T> {
    /// Creates the main task of the loop `delegate` schedules for, running `future`; `waker`
    /// is woken whenever the task is to be run ([`MainTask::step`]). Its first step is due.
    pub(crate) fn start<F, S>(delegate: S, waker: Waker, future: F) -> MainTask<'a, T>
    where
        F: Future<Output = T> + 'a,
        T: 'a,
        S: Schedule,
    {
        let out = Rc::new(RefCell::new(None));
        let out2 = out.clone();
        let body: Pin<Box<dyn Future<Output = ()> + 'a>> = Box::pin(async move {
            let v = future.await;
            *out2.borrow_mut() = Some(v);
        });
        // SAFETY: only the lifetime changes (same layout). The future is polled and dropped
        // on this thread only (`MainSched` never queues it), and `MainTask`'s `Drop` drops
        // it before `'a` ends (`RawTask::shutdown` on an unfinished task); what outlives
        // that in the allocation (a `TaskRef` someone kept) is the header and a `()` output.
        let body: Pin<Box<dyn Future<Output = ()> + 'static>> = unsafe {
            std::mem::transmute::<
                Pin<Box<dyn Future<Output = ()> + 'a>>,
                Pin<Box<dyn Future<Output = ()> + 'static>>,
            >(body)
        };
        let slot = Arc::new(MainSlot {
            notified: Mutex::new(None),
            waker,
        });
        let sched = MainSched {
            slot: slot.clone(),
            delegate,
        };
        // SAFETY: the scheduler runs the task only on this thread (see `MainSched`), and
        // `MainTask::drop` cancels it here before the caller returns.
        let raw = unsafe { RawTask::new_local(body, sched, task::next_task_id()) };
        // SAFETY: a fresh task whose output is `()`.
        let (join, notified) = unsafe { spawn::bind::<()>(raw, SpawnOpts::default()) };
        *slot.notified.lock() = Some(notified);
        MainTask {
            join: Some(join),
            raw,
            slot,
            out,
            _borrow: PhantomData,
        }
    }

    /// Runs the task's step if one is due; `Some` once it has finished: its value, or its
    /// cancellation (`Err`). A panic in the future is resumed on the calling thread.
    pub(crate) fn step(&mut self) -> Option<Result<T, crate::CancelledError>> {
        let due = self.slot.notified.lock().take();
        if let Some(n) = due {
            n.run();
        }
        if let Some(v) = self.out.borrow_mut().take() {
            return Some(Ok(v));
        }
        let join = self.join.as_mut()?;
        if !join.done() {
            return None;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(join).poll(&mut cx) {
            Poll::Ready(Err(TaskError::Cancelled(c))) => Some(Err(c)),
            Poll::Ready(Err(TaskError::Panicked(p))) => std::panic::resume_unwind(p.into_payload()),
            // A value is written to `out` before the task completes.
            Poll::Ready(Ok(())) | Poll::Pending => None,
        }
    }
}

impl<T> Drop for MainTask<'_, T> {
    fn drop(&mut self) {
        // The future may borrow `'a` data: drop it now, on this thread (rule T11's
        // "destroyed": the loop is no longer running it).
        if !self.raw.header().state.load().is_complete() {
            self.raw.shutdown();
        }
        let due = self.slot.notified.lock().take();
        drop(due);
        drop(self.join.take());
    }
}

/// asyncio's `run_until_complete` raises the main task's `CancelledError`; `block_on`
/// returns the future's own output type, so an uncaught cancellation of the main task is
/// a panic carrying that error's message.
pub(crate) fn main_cancelled(e: crate::CancelledError) -> ! {
    panic!("the main task was cancelled: {e}")
}
