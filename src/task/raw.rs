//! The task allocation: one heap block per task, and the type-erased functions that act on it.
//!
//! ```text
//!  Cell<F, S>  (#[repr(C)], one Box)
//!  ┌────────────────────────────┐
//!  │ Header                     │  state word · &'static Vtable · id      (24 bytes)
//!  │ scheduler: S               │  where a Notified goes (the runtime handle)
//!  │ join_waker: Option<Waker>  │  the Task<T> handle's waker (JOIN_WAKER protocol)
//!  │ stage: Running(F) |        │  the future, then its output
//!  │        Finished(Result) |  │
//!  │        Consumed            │
//!  └────────────────────────────┘
//! ```
//!
//! Everything outside this file sees only `NonNull<Header>` and calls through the vtable, so
//! handles, wakers, run queues and the registry are not generic over the future. The state
//! protocol that says who may touch which field is at the top of `state.rs`.

use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::cancel::CancelSlot;
use super::current;
use super::done::{self, DoneCallback, Late, Outcome};
use super::registry;
use super::state::{State, TransitionToIdle, TransitionToNotified, TransitionToRunning};
use super::LoopId;
use crate::contextvars;
use crate::error::{CancelledError, PanicError, TaskError};
use crate::sync::UnsafeCell;
use crate::unwind;

/// What a task needs from the loop that runs it — the task layer's whole view of a loop
/// (it names none: ARCHITECTURE.md, layers). Implemented by the runtime handle, a
/// `LocalLoop`'s scheduler and loom's test scheduler.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queue a task to be polled. Called from any thread.
    fn schedule(&self, task: Notified);
    /// The loop (runtime) this scheduler belongs to, for `all_tasks` and `TaskRef::loop_id`.
    fn loop_id(&self) -> LoopId;
    /// asyncio's `call_soon_threadsafe`, for done callbacks (F5): `false` if the loop is
    /// closed, and then `f` is dropped unrun.
    fn call_soon(&self, f: Box<dyn FnOnce() + Send>) -> bool;
    /// Hands `report` about `task` to the loop's exception handler (rules S8, S9).
    fn report(&self, task: super::TaskRef, report: TaskReport);
    /// asyncio's `get_debug()`: whether debug-only reports (T11) are made.
    fn debug(&self) -> bool;
}

/// What a task reports to its loop's exception handler; the loop words it
/// (`ExceptionContext::about_task`).
pub(crate) enum TaskReport {
    /// Rule T8: a panic nobody retrieved.
    Unretrieved(PanicError),
    /// Rule T11 (debug mode): destroyed while pending.
    DestroyedPending,
    /// Invariant 7: the awaiter's waker panicked when the task completed.
    AwaiterWaker(unwind::Payload),
    /// Invariant 7: a completion hook (a waiter's waker) panicked.
    Hook(unwind::Payload),
}

/// The part of every task that is the same whatever its future: read through a
/// `NonNull<Header>` by everything that is not generic.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    pub(crate) id: u64,
    /// Catchable cancellation (task/cancel.rs); null until the first `cancel()`.
    pub(crate) cancel: CancelSlot,
}

// SAFETY: the header's fields are an atomic, a `&'static`, an immutable integer, and the
// cancellation slot (an atomic pointer to a mutex-guarded block).
unsafe impl Send for Header {}
// SAFETY: as above; all mutation goes through atomics or that mutex.
unsafe impl Sync for Header {}

pub(crate) struct Vtable {
    /// Poll the future (consumes a `Notified` reference).
    poll: unsafe fn(NonNull<Header>),
    /// Hand a `Notified` reference to the scheduler.
    schedule: unsafe fn(NonNull<Header>),
    /// Free the allocation (refcount reached zero).
    dealloc: unsafe fn(NonNull<Header>),
    /// Task<T>::poll: write `Poll<Result<T, TaskError>>` to the pointer if complete, else
    /// register the waker.
    try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// Task<T>::drop (consumes the handle's reference).
    drop_join_handle: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: drop the future if nobody runs it (caller keeps its reference).
    shutdown: unsafe fn(NonNull<Header>),
    /// The owning loop.
    loop_id: unsafe fn(NonNull<Header>) -> LoopId,
    /// The task's scheduler, for callbacks and reports (valid while a reference is held).
    scheduler: unsafe fn(NonNull<Header>) -> *const dyn Schedule,
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, TaskError>),
    Consumed,
}

#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    scheduler: S,
    join_waker: UnsafeCell<Option<Waker>>,
    stage: UnsafeCell<Stage<F>>,
}

/// A non-owning pointer to a task. The owning wrappers (`Notified`, `Task<T>`, `TaskRef`)
/// each hold one reference and release it on drop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

impl RawTask {
    /// Allocates a task with three references (see `state.rs`): the caller must turn them
    /// into a `Task<T>`, a `Notified` and the registry's `TaskRef`.
    pub(crate) fn new<F, S>(future: F, scheduler: S, id: u64) -> RawTask
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        // SAFETY: the future and its output are `Send`: any thread may poll or drop them.
        unsafe { Self::new_local(future, scheduler, id) }
    }

    /// [`RawTask::new`] for a future that need not be `Send` (a `LocalLoop` task).
    ///
    /// # Safety
    /// Unless `F` and `F::Output` are `Send`, `scheduler` must only run the task on the
    /// thread that created it, and that thread must cancel the task (drop its future) before
    /// giving up the loop — which is what a `LocalLoop` does. The registry's reference keeps
    /// the allocation alive until completion, so the future is never dropped by a stray
    /// last reference on another thread; an output that is not `Send` stays with the
    /// `!Send` `Task<T>` handle on the loop's thread.
    pub(crate) unsafe fn new_local<F, S>(future: F, scheduler: S, id: u64) -> RawTask
    where
        F: Future + 'static,
        F::Output: 'static,
        S: Schedule,
    {
        let cell = Box::new(Cell::<F, S> {
            header: Header {
                state: State::new(),
                vtable: vtable::<F, S>(),
                id,
                cancel: CancelSlot::new(),
            },
            scheduler,
            join_waker: UnsafeCell::new(None),
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        RawTask { ptr }
    }

    /// # Safety
    /// `ptr` must point to a live task header.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a `RawTask` is only made for a live task, and it is only used while its
        // holder owns a reference, which keeps the allocation alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn id(self) -> u64 {
        self.header().id
    }

    pub(crate) fn loop_id(self) -> LoopId {
        // SAFETY: live task (see `header`); the vtable matches the allocation.
        unsafe { (self.header().vtable.loop_id)(self.ptr) }
    }

    /// Adds a reference and returns the same pointer (for a new owning wrapper).
    pub(crate) fn ref_inc(self) -> RawTask {
        self.header().state.ref_inc();
        self
    }

    /// Releases one reference, freeing the task if it was the last.
    ///
    /// # Safety
    /// The caller owns the reference it releases and does not use it afterwards.
    pub(crate) unsafe fn ref_dec(self) {
        if self.header().state.ref_dec() {
            // SAFETY: that was the last reference; nobody else can reach the task.
            unsafe { (self.header().vtable.dealloc)(self.ptr) }
        }
    }

    /// # Safety
    /// `dst` must point to a `Poll<Result<T, TaskError>>` where `T` is the task's output
    /// type, and the caller must be the task's join handle.
    pub(crate) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded contract.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// # Safety
    /// The caller is the join handle, giving up its reference.
    pub(crate) unsafe fn drop_join_handle(self) {
        // SAFETY: forwarded contract.
        unsafe { (self.header().vtable.drop_join_handle)(self.ptr) }
    }

    /// asyncio's `cancel(msg)` (task/cancel.rs, rule 1): records a request and wakes the
    /// task so that its next poll delivers it. `false` if the task is already done.
    pub(crate) fn cancel(self, msg: Option<Arc<str>>) -> bool {
        let h = self.header();
        if h.state.load().is_complete() {
            return false;
        }
        h.cancel.get_or_init().request(msg, self.is_polling_here());
        self.wake_for_cancel();
        true
    }

    /// Wakes the task so that its next poll sees a request just recorded (an RMW that
    /// always writes: see task/state.rs, `notify_by_ref`).
    fn wake_for_cancel(self) {
        let h = self.header();
        if h.state.transition_to_notified_for_cancel() == TransitionToNotified::Submit {
            // SAFETY: the transition took a reference for NOTIFIED, which `schedule` takes.
            unsafe { (h.vtable.schedule)(self.ptr) }
        }
    }

    /// A new counted `TaskRef` to this task. The caller holds a reference, so it is live.
    pub(crate) fn task_ref(self) -> super::TaskRef {
        // SAFETY: live (the caller's reference); the new `TaskRef` owns the one taken here.
        unsafe { super::TaskRef::from_raw_builtin(self.ref_inc()) }
    }

    /// The task's scheduler: where done callbacks are queued and reports go.
    pub(crate) fn scheduler(&self) -> &dyn Schedule {
        // SAFETY: live task (see `header`); the vtable matches the allocation, and the
        // scheduler lives in the cell, which outlives the caller's reference.
        unsafe { &*(self.header().vtable.scheduler)(self.ptr) }
    }

    /// Registers a done callback or hook (task/done.rs). Called before the task is first
    /// scheduled (hooks, a context) or at any time (user callbacks).
    pub(crate) fn add_done(self, cb: DoneCallback) {
        let h = self.header();
        let extra = h.cancel.get_or_init();
        let late = extra.with_done(|d| {
            // task/done.rs: WATCHED is set under the list's lock. Not complete before: the
            // completing thread will see WATCHED and fire the list (after this lock).
            // Complete before: it did not look; handle the callback here.
            if d.is_fired() || h.state.set_watched().is_complete() {
                match cb {
                    DoneCallback::Hook(hook) => Err(Late::CallHook(hook, d.outcome())),
                    user => Err(Late::Queue(user)),
                }
            } else {
                d.add(cb)
            }
        });
        if let Err(late) = late {
            let me = self.task_ref();
            let sched = self.scheduler();
            let retrieved = match late {
                Late::Queue(cb) => done::run(&me, sched, None, [cb]),
                Late::CallHook(hook, outcome) => {
                    // Complete: a panic was recorded before COMPLETE was published; else
                    // the state word tells a cancellation from a finish.
                    let outcome = outcome.unwrap_or_else(|| {
                        if h.state.load().is_cancelled_outcome() {
                            Outcome::Cancelled(CancelledError::new(extra.message()))
                        } else {
                            Outcome::Finished
                        }
                    });
                    done::run(&me, sched, Some(&outcome), [DoneCallback::Hook(hook)])
                }
            };
            if retrieved {
                extra.with_done(|d| d.set_retrieved());
            }
        }
    }

    /// asyncio's `add_done_callback(fn)`, capturing the current context (F5, T12).
    pub(crate) fn add_user_callback<F>(self, f: Arc<F>)
    where
        F: Fn(&super::TaskRef) + Send + Sync + 'static,
    {
        self.add_done(DoneCallback::User {
            f,
            ctx: contextvars::copy_context(),
        });
    }

    /// asyncio's `set_name` (T1).
    pub(crate) fn set_name(self, name: Arc<str>) {
        super::registry::set_name(self.id(), name);
        self.header().state.set_named();
    }

    /// asyncio's `remove_done_callback(fn)`: how many registrations of `f` were removed.
    pub(crate) fn remove_done(self, f: *const ()) -> usize {
        self.header()
            .cancel
            .get()
            .map_or(0, |c| c.with_done(|d| d.remove(f)))
    }

    /// Re-raises a caught cancellation on this task (`Cancel::rearm`) and wakes it.
    pub(crate) fn rearm_cancel(self, msg: Option<Arc<str>>) {
        let h = self.header();
        h.cancel.get_or_init().rearm(msg, self.is_polling_here());
        self.wake_for_cancel();
    }

    /// This task is the one being polled on this thread (a request it makes is its own).
    fn is_polling_here(self) -> bool {
        current::with_builtin(|cur| cur == Some(self))
    }

    /// asyncio's `cancelling()`: outstanding cancellation requests.
    pub(crate) fn cancelling(self) -> u32 {
        self.header().cancel.get().map_or(0, |c| c.cancelling())
    }

    /// asyncio's `uncancel()` (rule T7).
    pub(crate) fn uncancel(self) -> u32 {
        self.header().cancel.get().map_or(0, |c| c.uncancel())
    }

    /// asyncio's `cancelled()`: done, and the outcome is a cancellation.
    pub(crate) fn cancelled(self) -> bool {
        self.header().state.load().is_cancelled_outcome()
    }

    /// Runtime shutdown: cancel the task unless it is complete. Drops the future on this
    /// thread if nobody is polling it; a poller that is mid-poll drops it when the poll
    /// returns. The caller keeps its reference.
    pub(crate) fn shutdown(self) {
        // SAFETY: live task (the caller holds a reference); vtable matches.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }
}

/// A reference that stands for "this task is scheduled": exactly one exists while `NOTIFIED`
/// is set and the task is not running. Running it polls the task; dropping it (a run queue
/// drained at shutdown) only releases the reference.
pub(crate) struct Notified(RawTask);

// SAFETY: a `Notified` is a counted reference; moving it between threads touches only the
// atomic state word. Running it polls the future, which for a task whose future is not
// `Send` only happens on its loop's thread (the contract of `RawTask::new_local`: its
// scheduler only queues it where that thread runs it).
unsafe impl Send for Notified {}

impl Notified {
    /// # Safety
    /// The caller transfers one reference that represents the `NOTIFIED` bit.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        Notified(raw)
    }

    /// Poll the task once (on this thread), consuming the reference.
    pub(crate) fn run(self) {
        let raw = self.0;
        mem::forget(self);
        // SAFETY: we own the `Notified` reference, which `poll` consumes.
        unsafe { (raw.header().vtable.poll)(raw.ptr) }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // SAFETY: we own one reference and give it up here.
        unsafe { self.0.ref_dec() }
    }
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle: drop_join_handle::<F, S>,
        shutdown: shutdown::<F, S>,
        loop_id: loop_id::<F, S>,
        scheduler: scheduler::<F, S>,
    }
}

/// # Safety
/// `ptr` is a live `Cell<F, S>` header.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: `Cell` is `repr(C)` with the header first, so the header pointer is the cell
    // pointer; the vtable that dispatched here was built for exactly these `F, S`.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

/// Takes the output out, leaving `Consumed`. Only for a stage that no longer holds the
/// future: an output was never pinned, so moving it is fine; the future must instead go
/// through [`drop_future`].
///
/// # Safety
/// The caller is the one entitled to the output by the state protocol (state.rs: COMPLETE
/// with JOIN_INTEREST for the handle, or the completing thread without it).
unsafe fn take_output<F: Future, S>(cell: &Cell<F, S>) -> Stage<F> {
    // SAFETY: exclusive access per the caller's contract.
    let stage = cell
        .stage
        .with_mut(|p| unsafe { mem::replace(&mut *p, Stage::Consumed) });
    debug_assert!(
        !matches!(stage, Stage::Running(_)),
        "a future moved out of its task"
    );
    stage
}

/// Drops the future where it lies and marks the stage `Consumed`, catching a panic of its
/// destructor.
///
/// Pin's drop guarantee: the future was polled through `Pin::new_unchecked` on its place in
/// the task allocation, so it may have handed out its own address (an intrusive waiter list
/// of a semaphore, a mutex, a channel). Its destructor must run at that same address,
/// which `mem::replace` followed by a drop on the stack would break.
///
/// # Safety
/// RUNNING is set by the caller (state.rs): the future is the caller's alone.
unsafe fn drop_future<F: Future, S>(cell: &Cell<F, S>) -> std::thread::Result<()> {
    cell.stage.with_mut(|p| {
        // SAFETY: RUNNING gives exclusive access to the stage, which holds a valid value;
        // it is dropped exactly once here and overwritten below without a second drop.
        let dropped = unwind::catch(|| unsafe { ptr::drop_in_place(p) });
        // SAFETY: as above; the old value is gone (even if its destructor panicked, the
        // drop glue has run the rest of it), so writing without dropping is what is wanted.
        unsafe { ptr::write(p, Stage::Consumed) };
        dropped
    })
}

unsafe fn poll<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable dispatched here for this cell type, and we own a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    let first = match cell.header.state.transition_to_running() {
        TransitionToRunning::Success { first } => first,
        TransitionToRunning::Cancelled => {
            // SAFETY: we own the future (RUNNING) and hold the poller's reference.
            unsafe { cancel_and_complete(cell, 1, None) };
            return;
        }
        TransitionToRunning::Failed => return,
        TransitionToRunning::Dealloc => {
            // SAFETY: our reference was the last.
            unsafe { dealloc::<F, S>(ptr) };
            return;
        }
    };

    // Catchable cancellation (task/cancel.rs): what was pending when this poll began.
    let cancel = cell.header.cancel.get();
    let at_start = cancel.map(|c| c.at_start());
    if first {
        if let (Some(c), Some(a)) = (cancel, at_start) {
            if a.pending() {
                // Rule T4: cancelled before its first step: the body never runs.
                let msg = c.take_undelivered(a).unwrap_or_else(|| c.message());
                // SAFETY: RUNNING; we hold the poller's reference.
                unsafe { cancel_and_complete(cell, 1, msg) };
                return;
            }
        }
    }

    // A waker that borrows the poller's reference instead of taking one: cloning it takes a
    // real reference, and it is never dropped (ManuallyDrop), so no count changes per poll.
    // SAFETY: the vtable's functions uphold RawWaker's contract for a task header pointer.
    let waker = ManuallyDrop::new(unsafe {
        Waker::from_raw(RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE))
    });
    let mut cx = Context::from_waker(&waker);

    // Rule T12: the task runs in its own context (contextvars.rs).
    let saved = contextvars::enter_task_context(cancel.and_then(|c| c.take_context()));
    let after = {
        // Rule L8: every poll is bracketed by enter/leave through the task protocol. The
        // future is also *dropped* inside the bracket when the poll ends it, so that its
        // destructors (asyncio's `finally:` blocks) run as the task, in its context.
        let _entered = current::EnterGuard::builtin(ptr);
        let result = unwind::catch(|| {
            cell.stage.with_mut(|p| {
                // SAFETY: RUNNING gives us exclusive access to the stage.
                let stage = unsafe { &mut *p };
                let Stage::Running(fut) = stage else {
                    unreachable!("a running task's stage holds its future")
                };
                // SAFETY: the future lives inside the task allocation, which never moves,
                // and stays there until `drop_future` drops it in place.
                let fut = unsafe { Pin::new_unchecked(fut) };
                fut.poll(&mut cx)
            })
        });
        match result {
            Ok(Poll::Pending) => {
                // Rule 3 of task/cancel.rs: a request pending since the start of this poll
                // that no catch scope took ends the task.
                let uncaught = at_start
                    .zip(cell.header.cancel.get())
                    .and_then(|(a, c)| c.take_undelivered(a));
                match uncaught {
                    Some(msg) => {
                        // SAFETY: RUNNING.
                        let out = match unsafe { drop_future(cell) } {
                            Ok(()) => Err(TaskError::Cancelled(CancelledError::new(msg))),
                            Err(p) => Err(TaskError::Panicked(PanicError::new(p))),
                        };
                        After::Complete(out)
                    }
                    None => After::Pending,
                }
            }
            Ok(Poll::Ready(output)) => {
                // SAFETY: RUNNING.
                let dropped = unsafe { drop_future(cell) };
                // Rule 5 of task/cancel.rs (T5): completing with requests outstanding ends
                // the task cancelled; the value is dropped.
                let cancelled = cell
                    .header
                    .cancel
                    .get()
                    .filter(|c| c.cancelling() > 0)
                    .map(|c| c.message());
                After::Complete(match (dropped, cancelled) {
                    (Err(p), _) => {
                        // The value is dropped too; its own destructor may panic as well.
                        let _ = unwind::drop_caught(output);
                        Err(TaskError::Panicked(PanicError::new(p)))
                    }
                    (Ok(()), Some(msg)) => {
                        let _ = unwind::drop_caught(output);
                        Err(TaskError::Cancelled(CancelledError::new(msg)))
                    }
                    (Ok(()), None) => Ok(output),
                })
            }
            Err(payload) => {
                // SAFETY: RUNNING: the (poisoned) future is ours to drop.
                let _ = unsafe { drop_future(cell) };
                After::Complete(Err(TaskError::Panicked(PanicError::new(payload))))
            }
        }
    };
    if let Some(ctx) = contextvars::leave_task_context(saved) {
        cell.header.cancel.get_or_init().put_context(ctx);
    }
    match after {
        // SAFETY: RUNNING, and we hold the poller's reference.
        After::Pending => unsafe { after_pending(cell, ptr) },
        // SAFETY: RUNNING, the future is gone (stage `Consumed`); we hold the poller's
        // reference.
        After::Complete(out) => unsafe { complete(cell, out, 1) },
    }
}

/// What a poll left to do once the task has left the current-task slot.
enum After<T> {
    Pending,
    Complete(Result<T, TaskError>),
}

/// The poll returned `Pending` and the task goes on: give the future back.
///
/// # Safety
/// The caller set RUNNING and holds the poller's reference.
unsafe fn after_pending<F: Future, S: Schedule>(cell: &Cell<F, S>, ptr: NonNull<Header>) {
    match cell.header.state.transition_to_idle() {
        TransitionToIdle::Ok => {}
        TransitionToIdle::OkNotified => {
            // SAFETY: the poller's reference now stands for NOTIFIED.
            let notified = unsafe { Notified::from_raw(RawTask { ptr }) };
            cell.scheduler.schedule(notified);
        }
        TransitionToIdle::OkDealloc => {
            // SAFETY: the poller's reference was the last.
            unsafe { dealloc::<F, S>(ptr) }
        }
        TransitionToIdle::Cancelled => {
            // SAFETY: still RUNNING, so the future is ours; we hold the poller's ref.
            unsafe { cancel_and_complete(cell, 1, None) }
        }
    }
}

/// Drops the future and completes the task as cancelled.
///
/// # Safety
/// The caller has set RUNNING (owns the future) and holds `refs` references to release.
unsafe fn cancel_and_complete<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    refs: usize,
    msg: Option<Arc<str>>,
) {
    // SAFETY: RUNNING: the future is ours.
    let out = match unsafe { drop_future(cell) } {
        Ok(()) => Err(TaskError::Cancelled(CancelledError::new(msg))),
        Err(p) => Err(TaskError::Panicked(PanicError::new(p))),
    };
    // SAFETY: forwarded.
    unsafe { complete(cell, out, refs) }
}

/// Stores the output, publishes COMPLETE, wakes the awaiter, unregisters the task, and
/// releases `refs` references held by the caller.
///
/// # Safety
/// The caller has set RUNNING and the stage is `Consumed` (the future is gone).
unsafe fn complete<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    output: Result<F::Output, TaskError>,
    refs: usize,
) {
    let cancelled = matches!(output, Err(TaskError::Cancelled(_)));
    let panicked = matches!(output, Err(TaskError::Panicked(_)));
    // Hooks see an owned summary: once COMPLETE is published the output is the handle's.
    // Only a task with an extra block can have hooks (they are installed before its first
    // step), so a plain task skips this.
    let outcome = Outcome::of(&output); // no allocation unless it is a panic
    if let Outcome::Panicked(_) = &outcome {
        // Kept for hooks registered after completion (`wait`, `as_completed` watch tasks
        // that may be done already): a panic is the one outcome the state word cannot tell.
        let extra = cell.header.cancel.get_or_init();
        extra.with_done(|d| d.record(outcome.duplicate()));
    }
    // SAFETY: RUNNING: nobody else reads the stage until COMPLETE is published.
    cell.stage
        .with_mut(|p| unsafe { *p = Stage::Finished(output) });
    let prev = cell.header.state.transition_to_complete(cancelled);
    let ptr = NonNull::from(&cell.header);

    // Done callbacks (task/done.rs): WATCHED in the state before our transition means a
    // callback is (or is being, under the list's lock) registered; fire the list.
    let mut retrieved = false;
    let watched = prev
        .is_watched()
        .then(|| cell.header.cancel.get())
        .flatten();
    if let Some(extra) = watched {
        let (callbacks, was_retrieved) =
            extra.with_done(|d| (d.fire(Some(&outcome)), d.retrieved()));

        retrieved = was_retrieved;
        if !callbacks.is_empty() {
            let me = RawTask { ptr }.task_ref(); // we hold the poller's reference
            if done::run(&me, &cell.scheduler, Some(&outcome), callbacks) {
                retrieved = true;
                extra.with_done(|d| d.set_retrieved());
            }
        }
    }

    if !prev.is_join_interested() {
        // Nobody will read the output: drop it here (the handle is gone).
        // SAFETY: without JOIN_INTEREST the output is ours.
        let old = unsafe { take_output(cell) };
        if panicked && !retrieved {
            report_unretrieved(cell, ptr, old);
        } else {
            let _ = unwind::drop_caught(old);
        }
    } else if prev.is_join_waker_set() {
        // SAFETY: COMPLETE and JOIN_WAKER are set: the handle does not write the field, we
        // may read it.
        let woken = cell.join_waker.with(|w| {
            // SAFETY: shared read access, as just argued.
            match unsafe { &*w } {
                Some(w) => unwind::catch(|| w.wake_by_ref()),
                None => Ok(()),
            }
        });
        if let Err(p) = woken {
            // The awaiter's waker is not ours (a foreign executor's, a combinator's):
            // its panic is reported and the completion goes on (invariant 7).
            report(cell, ptr, TaskReport::AwaiterWaker(p));
        }
        let prev = cell.header.state.unset_waker_after_complete();
        if !prev.is_join_interested() {
            // SAFETY: the handle left while we held JOIN_WAKER: the field is ours to clear.
            cell.join_waker.with_mut(|w| unsafe { *w = None });
        }
    }
    let mut release = refs;
    if let Some(entry) = registry::remove_builtin(cell.header.id) {
        // The registry's reference is released together with the caller's below.
        mem::forget(entry);
        release += 1;
    }
    if cell.header.state.ref_dec_by(release) {
        // SAFETY: those were the last references.
        unsafe { dealloc::<F, S>(NonNull::from(&cell.header)) }
    }
}

/// Rule T8 (F6 for tasks): a panic nobody retrieved (the handle is gone or was dropped
/// unread, and no task group took it) goes to the loop's exception handler.
fn report_unretrieved<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    ptr: NonNull<Header>,
    stage: Stage<F>,
) {
    let Stage::Finished(Err(TaskError::Panicked(p))) = stage else {
        let _ = unwind::drop_caught(stage);
        return;
    };
    report(cell, ptr, TaskReport::Unretrieved(p));
}

/// Sends `report` about the task at `ptr` to its loop's exception handler. The caller
/// holds a reference to the task.
fn report<F: Future, S: Schedule>(cell: &Cell<F, S>, ptr: NonNull<Header>, report: TaskReport) {
    cell.scheduler.report(RawTask { ptr }.task_ref(), report);
}

/// Whether a task group (a hook) retrieved this task's panic.
fn panic_retrieved(header: &Header) -> bool {
    header
        .cancel
        .get()
        .is_some_and(|c| c.with_done(|d| d.retrieved()))
}

unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: dispatched for this cell type; the caller transfers a NOTIFIED reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: as above: the reference we were given stands for NOTIFIED.
    let notified = unsafe { Notified::from_raw(RawTask { ptr }) };
    cell.scheduler.schedule(notified);
}

unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: dispatched for this cell type; the refcount reached zero, so this is the only
    // access, and the pointer came from `Box::leak` in `RawTask::new`.
    let cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    if cell.header.state.load().is_named() {
        registry::remove_name(cell.header.id);
    }
    // A future or output still here is dropped now; a panic in it must not escape into
    // whichever thread released the last reference.
    let _ = unwind::drop_caught(cell);
}

unsafe fn try_read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker) {
    // SAFETY: dispatched for this cell type; the caller is the join handle.
    let cell = unsafe { cell::<F, S>(ptr) };
    if can_read_output(cell, waker) {
        // SAFETY: COMPLETE with JOIN_INTEREST: the output is the handle's.
        let stage = unsafe { take_output(cell) };
        let out = match stage {
            Stage::Finished(out) => out,
            _ => panic!("`Task` polled after it returned its output"),
        };
        // SAFETY: the caller promises `dst` is a `Poll<Result<F::Output, TaskError>>`.
        unsafe { *(dst as *mut Poll<Result<F::Output, TaskError>>) = Poll::Ready(out) };
    }
}

/// The handle's side of the JOIN_WAKER protocol: `true` if the output can be read now;
/// otherwise `waker` is stored to be woken on completion.
fn can_read_output<F: Future, S>(cell: &Cell<F, S>, waker: &Waker) -> bool {
    let snapshot = cell.header.state.load();
    if snapshot.is_complete() {
        return true;
    }
    if snapshot.is_join_waker_set() {
        // SAFETY: JOIN_WAKER set: nobody writes the field; shared reads are fine.
        let same = cell
            .join_waker
            .with(|w| unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(waker)));
        if same {
            return false;
        }
        if cell.header.state.unset_join_waker().is_err() {
            return true; // completed meanwhile
        }
    }
    // JOIN_WAKER is clear and the task is not complete: the field is ours.
    // SAFETY: per the protocol above, only the handle touches the field now.
    cell.join_waker
        .with_mut(|w| unsafe { *w = Some(waker.clone()) });
    if cell.header.state.set_join_waker().is_err() {
        // Completed before we published it: the field is still ours; clear it.
        // SAFETY: as above.
        cell.join_waker.with_mut(|w| unsafe { *w = None });
        return true;
    }
    false
}

unsafe fn drop_join_handle<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: dispatched for this cell type; the caller is the handle giving up its ref.
    let cell = unsafe { cell::<F, S>(ptr) };
    /// Releases the handle's reference even if dropping the output panics.
    struct Release(NonNull<Header>);
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: the handle's reference, given up exactly once here.
            unsafe { RawTask { ptr: self.0 }.ref_dec() }
        }
    }
    let _release = Release(ptr);
    let d = cell.header.state.transition_to_join_handle_dropped();
    if d.drop_waker {
        // SAFETY: the transition gave the field to us.
        cell.join_waker.with_mut(|w| unsafe { *w = None });
    }
    if d.drop_output {
        // SAFETY: COMPLETE was set while we had JOIN_INTEREST: the output is ours.
        let stage = unsafe { take_output(cell) };
        if matches!(stage, Stage::Finished(Err(TaskError::Panicked(_))))
            && !panic_retrieved(&cell.header)
        {
            report_unretrieved(cell, ptr, stage);
        } else {
            drop(stage);
        }
    }
}

unsafe fn shutdown<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: dispatched for this cell type; the caller holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    if cell.header.state.transition_to_shutdown() {
        // Rule T11: reported (in debug mode, asyncio's "debug level") before the future goes.
        if cell.scheduler.debug() {
            report(cell, ptr, TaskReport::DestroyedPending);
        }
        // SAFETY: we set RUNNING; we release no reference of our own.
        unsafe { cancel_and_complete(cell, 0, None) }
    }
}

unsafe fn loop_id<F: Future, S: Schedule>(ptr: NonNull<Header>) -> LoopId {
    // SAFETY: dispatched for this cell type; the scheduler is immutable.
    unsafe { cell::<F, S>(ptr) }.scheduler.loop_id()
}

unsafe fn scheduler<F: Future, S: Schedule>(ptr: NonNull<Header>) -> *const dyn Schedule {
    // SAFETY: dispatched for this cell type; the scheduler is immutable.
    let s: &dyn Schedule = &unsafe { cell::<F, S>(ptr) }.scheduler;
    s
}

// ---- Waker -------------------------------------------------------------------------------

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn header_of<'a>(ptr: *const ()) -> &'a Header {
    // SAFETY: wakers are only built from live task header pointers and hold (or borrow) a
    // reference for as long as they exist.
    unsafe { &*(ptr as *const Header) }
}

unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
    header_of(ptr).state.ref_inc();
    RawWaker::new(ptr, &WAKER_VTABLE)
}

unsafe fn waker_wake(ptr: *const ()) {
    let header = header_of(ptr);
    // SAFETY: `ptr` is a non-null header pointer.
    let nn = unsafe { NonNull::new_unchecked(ptr as *mut Header) };
    match header.state.transition_to_notified_by_val() {
        TransitionToNotified::DoNothing => {}
        // SAFETY: our reference became the NOTIFIED one, which `schedule` takes.
        TransitionToNotified::Submit => unsafe { (header.vtable.schedule)(nn) },
        // SAFETY: ours was the last reference.
        TransitionToNotified::Dealloc => unsafe { (header.vtable.dealloc)(nn) },
    }
}

unsafe fn waker_wake_by_ref(ptr: *const ()) {
    let header = header_of(ptr);
    if header.state.transition_to_notified_by_ref() == TransitionToNotified::Submit {
        // SAFETY: the transition took a new reference for NOTIFIED; `schedule` takes it.
        unsafe { (header.vtable.schedule)(NonNull::new_unchecked(ptr as *mut Header)) }
    }
}

unsafe fn waker_drop(ptr: *const ()) {
    // SAFETY: the waker owned one reference.
    unsafe { RawTask::from_raw(NonNull::new_unchecked(ptr as *mut Header)).ref_dec() }
}
