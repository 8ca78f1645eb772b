//! The task protocol over one `Cell<F, S>`: poll, complete, cancel, read the output, drop the
//! handle, shut down, free. These are the functions the vtable (raw.rs) points to; each is
//! generic over the future and the scheduler, and each acts only through the accessors of
//! core.rs and the transitions of state.rs, whose numbered rules the `SAFETY` comments cite.
//! The cancellation rules they apply (T3–T5) are numbered in task/cancel.rs.
//!
//! A function that may free the allocation (release the last reference) takes the header
//! pointer, not a `&Cell`: a reference argument is live for the whole call, and memory must
//! not be freed under a live reference. Such functions borrow the cell in an inner scope
//! that ends before the release (`release`).

use std::future::Future;
use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::cancel::{self, AtPoll, AtStart};
use super::core::{Cell, Header};
use super::current;
use super::done::{self, Outcome};
use super::raw::{Notified, RawTask, Schedule, TaskReport};
use super::registry;
use super::state::{TransitionToIdle, TransitionToRunning};
use super::waker;
use super::LoopId;
use crate::contextvars;
use crate::error::{CancelledError, PanicError, TaskError};
use crate::unwind;

/// What one poll of the future came to.
enum PollOutcome<T> {
    /// The future is pending and the task goes on; `true`: it yielded (state.rs rule 7).
    Pending(bool),
    /// The task is done with this output; its future is already dropped (in place).
    Complete(Result<T, TaskError>),
}

/// Runs one step of the task, consuming a `Notified` reference.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header (the vtable dispatched here), and the caller hands
/// over the reference that NOTIFIED stood for (state.rs rule 5).
pub(super) unsafe fn poll<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (the vtable dispatched here for this
    // type), kept alive by the reference we were handed (state.rs rule 1).
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    let first = match cell.header.state.transition_to_running() {
        TransitionToRunning::Success { first } => first,
        TransitionToRunning::Cancelled => {
            // SAFETY: state.rs rule 2: we set RUNNING; we hold the poller's reference.
            unsafe { cancel_and_complete::<F, S>(ptr, 1, None) };
            return;
        }
        TransitionToRunning::Failed => return,
        TransitionToRunning::Dealloc => {
            // SAFETY: state.rs rule 1: our reference was the last.
            unsafe { dealloc::<F, S>(ptr) };
            return;
        }
    };

    // Catchable cancellation (task/cancel.rs): what was pending when this poll began.
    let (extra, mut drop_unpolled) = match cell.header.extra.at_poll() {
        // Rule 7 of task/cancel.rs: a bare request lands as rules 3/4 land a request on a
        // task with no catch scope and no waiter recorded (it has no block).
        AtPoll::TookBare if first => {
            // Rule T4: cancelled before its first step: the body never runs.
            // SAFETY: state.rs rule 2: RUNNING is ours; we hold the poller's reference.
            unsafe { cancel_and_complete::<F, S>(ptr, 1, None) };
            return;
        }
        AtPoll::TookBare => (None, Some(None)),
        AtPoll::Block(extra) => (extra, None),
    };
    let mut at_start = extra.map(|c| c.at_start());
    let mut deliver_at = 0;
    if let (Some(c), Some(a)) = (extra, at_start) {
        if a.pending() {
            // Rule 3 of task/cancel.rs: a request that arrived while the task was suspended
            // lands at the suspension point, before anything is polled: in the innermost
            // scope that enclosed it, or, with none, the future is dropped unpolled (inside
            // the task's bracket below: its destructors run as the task).
            let msg = || c.take_undelivered(a).unwrap_or_else(|| c.message());
            if first {
                // Rule T4: cancelled before its first step: the body never runs.
                // SAFETY: state.rs rule 2: RUNNING is ours; we hold the poller's reference.
                unsafe { cancel_and_complete::<F, S>(ptr, 1, msg()) };
                return;
            }
            if c.forward_stored() {
                // Rule 6 of task/cancel.rs: passed on to what the task is suspended on;
                // it polls normally and waits for that to end.
                at_start = Some(c.at_start());
            } else {
                deliver_at = c.suspended_depth();
                if deliver_at == 0 {
                    drop_unpolled = Some(msg());
                }
            }
        }
    }

    // Rule T12: the task runs in its own context (contextvars.rs).
    let saved = contextvars::enter_task_context(extra.and_then(|c| c.take_context()));
    let outcome = {
        // Rule L8: every poll is bracketed by enter/leave through the task protocol. The
        // future is also *dropped* inside the bracket when the poll ends it, so that its
        // destructors (asyncio's `finally:` blocks) run as the task, in its context.
        let _entered = current::EnterGuard::builtin(ptr);
        let saved = cancel::frame_begin(deliver_at);
        let outcome = match drop_unpolled {
            // SAFETY: state.rs rule 2: RUNNING is ours; the future is still in the stage.
            Some(msg) => PollOutcome::Complete(cancelled(unsafe { cell.drop_future() }, msg)),
            // SAFETY: RUNNING is ours and we hold the poller's reference, which the
            // borrowed waker inside relies on.
            None => unsafe { poll_inner(cell, ptr, at_start) },
        };
        let (depth, waiter) = cancel::frame_end(saved);
        match (&outcome, waiter) {
            // Rules 3 and 6 of task/cancel.rs: where the task is suspended, and on what.
            (PollOutcome::Pending(_), waiter) if depth != 0 || waiter.is_some() => {
                cell.header
                    .extra
                    .get_or_init()
                    .publish_suspension(depth, waiter);
            }
            // Done, or suspended on nothing recorded: no waiter is kept (a finished task
            // holds no reference to what it last awaited).
            _ => {
                if let Some(c) = cell.header.extra.block() {
                    c.publish_suspension(0, None);
                }
            }
        }
        outcome
    };
    if let Some(ctx) = contextvars::leave_task_context(saved) {
        cell.header.extra.get_or_init().put_context(ctx);
    }
    match outcome {
        // SAFETY: RUNNING is ours, and we hold the poller's reference.
        PollOutcome::Pending(yielded) => unsafe { after_pending::<F, S>(ptr, yielded) },
        // SAFETY: RUNNING is ours, the future is gone; we hold the poller's reference.
        PollOutcome::Complete(out) => unsafe { complete::<F, S>(ptr, out, 1) },
    }
}

/// Polls the future once and applies the cancellation rules to what it returned; drops the
/// future (in place) whenever the task is done.
///
/// # Safety
/// The caller set RUNNING (state.rs rule 2) and holds the poller's reference.
unsafe fn poll_inner<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    ptr: NonNull<Header>,
    at_start: Option<AtStart>,
) -> PollOutcome<F::Output> {
    // SAFETY: we hold the poller's reference for as long as the waker is used.
    let waker = unsafe { waker::borrowed(ptr) };
    let mut cx = Context::from_waker(&waker);
    let saved = waker::poll_begin(ptr);
    // SAFETY: state.rs rule 2: RUNNING is ours and the stage holds the future.
    let polled = unwind::catch(|| unsafe { cell.poll_future(&mut cx) });
    let yielded = waker::poll_end(saved);
    match polled {
        Ok(Poll::Pending) => {
            // Rule 3 of task/cancel.rs: a request pending since the start of this poll
            // that no catch scope took ends the task.
            let uncaught = at_start
                .zip(cell.header.extra.get())
                .and_then(|(a, c)| c.take_undelivered(a));
            match uncaught {
                // SAFETY: state.rs rule 2: RUNNING is ours; the future is still in the stage.
                Some(msg) => PollOutcome::Complete(cancelled(unsafe { cell.drop_future() }, msg)),
                None => PollOutcome::Pending(yielded),
            }
        }
        Ok(Poll::Ready(output)) => {
            // SAFETY: state.rs rule 2: RUNNING is ours; the future is still in the stage.
            let dropped = unsafe { cell.drop_future() };
            // Rule 5 of task/cancel.rs (T5, mapping point 4): completing with a request
            // still undelivered ends the task cancelled; the value is dropped. A delivered
            // request that the code caught and returned from does not.
            let outstanding = cell.header.extra.get().and_then(|c| c.take_at_completion());
            PollOutcome::Complete(match (dropped, outstanding) {
                (Ok(()), None) => Ok(output),
                (dropped, msg) => {
                    // The value goes too; its own destructor may panic as well.
                    let _ = unwind::drop_caught(output);
                    cancelled(dropped, msg.unwrap_or(None))
                }
            })
        }
        Err(payload) => {
            // SAFETY: state.rs rule 2: RUNNING is ours, and the (poisoned) future is still in
            // the stage: ours to drop.
            let _ = unsafe { cell.drop_future() };
            PollOutcome::Complete(Err(TaskError::Panicked(PanicError::new(payload))))
        }
    }
}

/// The outcome of a task whose future was dropped because it was cancelled: cancelled,
/// unless the future's destructor panicked.
fn cancelled<T>(dropped: std::thread::Result<()>, msg: Option<Arc<str>>) -> Result<T, TaskError> {
    match dropped {
        Ok(()) => Err(TaskError::Cancelled(CancelledError::new(msg))),
        Err(p) => Err(TaskError::Panicked(PanicError::new(p))),
    }
}

/// The poll returned `Pending` and the task goes on: give the future back; `yielded`: the
/// task asked to run again (state.rs rule 7).
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header; the caller set RUNNING and holds the poller's
/// reference, which this call consumes.
unsafe fn after_pending<F: Future, S: Schedule>(ptr: NonNull<Header>, yielded: bool) {
    // SAFETY: live by the poller's reference (state.rs rule 1); this borrow is not used once
    // that reference is released below.
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    match cell.header.state.transition_to_idle(yielded) {
        TransitionToIdle::Ok => {}
        TransitionToIdle::OkNotified => {
            // SAFETY: state.rs rule 5: the poller's reference now stands for NOTIFIED.
            let notified = unsafe { Notified::from_raw(RawTask::from_raw(ptr)) };
            cell.scheduler.schedule(notified);
        }
        TransitionToIdle::OkDealloc => {
            // SAFETY: state.rs rule 1: the poller's reference was the last.
            unsafe { dealloc::<F, S>(ptr) }
        }
        TransitionToIdle::Cancelled => {
            // SAFETY: state.rs rule 2: still RUNNING, so the future is ours; we hold the
            // poller's reference.
            unsafe { cancel_and_complete::<F, S>(ptr, 1, None) }
        }
    }
}

/// Drops the future and completes the task as cancelled.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header; the caller has set RUNNING (owns the future) and
/// holds `refs` references to release.
unsafe fn cancel_and_complete<F: Future, S: Schedule>(
    ptr: NonNull<Header>,
    refs: usize,
    msg: Option<Arc<str>>,
) {
    // SAFETY: live (the caller's references, state.rs rule 1); RUNNING is the caller's, so
    // the future is ours (rule 2).
    let out = cancelled(unsafe { Cell::<F, S>::from_header(ptr).drop_future() }, msg);
    // SAFETY: RUNNING, the future is gone, and the caller's `refs` references are ours to
    // release (the contract of this function is `complete`'s).
    unsafe { complete::<F, S>(ptr, out, refs) }
}

/// Stores the output, publishes COMPLETE, runs the done callbacks, hands the output to the
/// handle (or drops it), unregisters the task, and releases `refs` references.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header; the caller has set RUNNING, the future is gone
/// (stage `Consumed`), and the caller holds `refs` references that it gives up here.
unsafe fn complete<F: Future, S: Schedule>(
    ptr: NonNull<Header>,
    output: Result<F::Output, TaskError>,
    refs: usize,
) {
    // SAFETY: live by the caller's references (state.rs rule 1); the borrow ends with
    // `finish`, before they are released.
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    // SAFETY: this function's contract is `finish`'s.
    let release = unsafe { finish(cell, output) } + refs;
    // SAFETY: the caller's `refs` and the registry entry's reference are ours to release.
    unsafe { release_refs::<F, S>(ptr, release) }
}

/// `complete` up to the release: returns how many extra references to release with the
/// caller's (the registry entry's, if it was still registered).
///
/// # Safety
/// As `complete`'s.
unsafe fn finish<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    output: Result<F::Output, TaskError>,
) -> usize {
    let cancelled = matches!(output, Err(TaskError::Cancelled(_)));
    super::observe::on_complete(cell.header.id, cancelled);
    // Hooks see an owned summary: once COMPLETE is published the output is the handle's.
    let outcome = Outcome::of(&output); // no allocation unless it is a panic
    if let Outcome::Panicked(_) = &outcome {
        // Kept for hooks registered after completion (`wait`, `as_completed` watch tasks
        // that may be done already): a panic is the one outcome the state word cannot tell.
        let extra = cell.header.extra.get_or_init();
        extra.with_done(|d| d.record(outcome.duplicate()));
    }
    // SAFETY: state.rs rule 3: RUNNING, the future is gone, COMPLETE not yet published.
    unsafe { cell.store_output(output) };
    let prev = cell.header.state.transition_to_complete(cancelled);
    let ptr = NonNull::from(&cell.header);
    let retrieved = prev.is_watched() && fire_done_callbacks(cell, ptr, &outcome);

    if !prev.is_join_interested() {
        // Nobody will read the output: drop it here (the handle is gone).
        // SAFETY: state.rs rule 3: without JOIN_INTEREST the output is ours.
        let out = unsafe { cell.take_output() };
        match out {
            Some(Err(TaskError::Panicked(p))) if !retrieved => {
                report(cell, ptr, TaskReport::Unretrieved(p))
            }
            out => {
                let _ = unwind::drop_caught(out);
            }
        }
    } else if prev.is_join_waker_set() {
        wake_join_handle(cell, ptr);
    }
    let _ = unwind::drop_caught(outcome);
    // Rule L1: a finished task is not kept alive by the registry; the entry's reference is
    // released with the caller's, in one decrement.
    // SAFETY: the completing thread holds a reference (state.rs rule 1).
    match registry::remove_builtin(unsafe { RawTask::from_raw(ptr) }) {
        Some(entry) => {
            mem::forget(entry);
            1
        }
        None => 0,
    }
}

/// Done callbacks (task/done.rs): WATCHED in the state before COMPLETE was published means
/// a callback is (or is being, under the list's lock) registered; fire the list. Returns
/// whether a hook retrieved the task's panic (then nobody reports it, rule T8).
fn fire_done_callbacks<F: Future, S: Schedule>(
    cell: &Cell<F, S>,
    ptr: NonNull<Header>,
    outcome: &Outcome,
) -> bool {
    let Some(extra) = cell.header.extra.get() else {
        return false;
    };
    let (callbacks, mut retrieved) = extra.with_done(|d| (d.fire(Some(outcome)), d.retrieved()));
    if !callbacks.is_empty() {
        // SAFETY: the completing thread holds a reference (state.rs rule 1).
        let me = unsafe { task_ref_of(ptr) };
        if done::run(&me, &cell.scheduler, Some(outcome), callbacks) {
            retrieved = true;
            extra.with_done(|d| d.set_retrieved());
        }
    }
    retrieved
}

/// The completing thread's side of state.rs rule 4: wake the handle's stored waker, then
/// give the field back (or drop the waker if the handle left meanwhile).
fn wake_join_handle<F: Future, S: Schedule>(cell: &Cell<F, S>, ptr: NonNull<Header>) {
    // SAFETY: rule 4: COMPLETE and JOIN_WAKER are set and we are the completing thread.
    if let Err(p) = unsafe { cell.wake_join_waker() } {
        // The awaiter's waker is not ours (a foreign executor's, a combinator's): its panic
        // is reported and the completion goes on (invariant 7).
        report(cell, ptr, TaskReport::AwaiterWaker(p));
    }
    let prev = cell.header.state.unset_waker_after_complete();
    if !prev.is_join_interested() {
        // SAFETY: rule 4: the handle left while we held JOIN_WAKER: the field is ours.
        let old = unsafe { cell.set_join_waker(None) };
        if let Err(p) = unwind::drop_caught(old) {
            report(cell, ptr, TaskReport::AwaiterWaker(p));
        }
    }
}

/// Releases `n` references, freeing the task if they were the last.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller holds `n` references that it gives up
/// here; no reference to the cell is alive across this call (see the module docs).
unsafe fn release_refs<F: Future, S: Schedule>(ptr: NonNull<Header>, n: usize) {
    // SAFETY: live by the references being released (state.rs rule 1); the `&Header` is a
    // temporary that ends with the decrement.
    let last = unsafe { ptr.as_ref() }.state.ref_dec_by(n);
    if last {
        // SAFETY: state.rs rule 1: those were the last references.
        unsafe { dealloc::<F, S>(ptr) }
    }
}

/// Sends `report` about the task at `ptr` to its loop's exception handler. The caller
/// holds a reference to the task.
fn report<F: Future, S: Schedule>(cell: &Cell<F, S>, ptr: NonNull<Header>, report: TaskReport) {
    // SAFETY: the caller holds a reference (state.rs rule 1).
    cell.scheduler.report(unsafe { task_ref_of(ptr) }, report);
}

/// A new counted `TaskRef` to the task at `ptr`.
///
/// # Safety
/// `ptr` is a live task header and the caller holds a reference to it (state.rs rule 1).
unsafe fn task_ref_of(ptr: NonNull<Header>) -> super::TaskRef {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (this function's contract: the vtable
    // dispatched here for this type) and a reference keeps it alive (state.rs rule 1).
    unsafe { RawTask::from_raw(ptr) }.task_ref()
}

/// Whether a task group (a hook) or a `cancel()` after completion retrieved this task's
/// panic.
fn panic_retrieved(header: &Header) -> bool {
    header
        .extra
        .get()
        .is_some_and(|c| c.with_done(|d| d.retrieved()))
}

/// Hands a `Notified` reference to the task's scheduler.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller transfers the reference NOTIFIED
/// stands for (state.rs rule 5).
pub(super) unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (this function's contract: the vtable
    // dispatched here for this type) and a reference keeps it alive (state.rs rule 1).
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    // SAFETY: rule 5: the reference we were given stands for NOTIFIED.
    let notified = unsafe { Notified::from_raw(RawTask::from_raw(ptr)) };
    cell.scheduler.schedule(notified);
}

/// Frees the allocation.
///
/// # Safety
/// `ptr` is a `Cell<F, S>` header whose reference count just reached zero (state.rs rule
/// 1): this is the only access left.
pub(super) unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the count reached zero (state.rs rule 1), so this is the only access, and the
    // pointer came from `Box::leak` in `RawTask::new` for this `Cell<F, S>`.
    let cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    if cell.header.state.load().is_named() {
        registry::remove_name(cell.header.id);
    }
    // A future or output still here is dropped now, in place inside the box; a panic in it
    // must not escape into whichever thread released the last reference.
    let _ = unwind::drop_caught(cell);
}

/// `Task<T>::poll`: writes the output to `dst` if the task is complete, else stores the
/// waker (state.rs rule 4).
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header, the caller is its join handle, and `dst` points to
/// a `Poll<Result<F::Output, TaskError>>`.
pub(super) unsafe fn try_read_output<F: Future, S>(
    ptr: NonNull<Header>,
    dst: *mut (),
    waker: &Waker,
) {
    // SAFETY: `ptr` is a live `Cell<F, S>` header, kept alive by the handle's reference
    // (state.rs rule 1).
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    if can_read_output(cell, waker) {
        // SAFETY: state.rs rule 3: COMPLETE with JOIN_INTEREST: the output is the handle's.
        let Some(out) = (unsafe { cell.take_output() }) else {
            panic!("`Task` polled after it returned its output")
        };
        // SAFETY: the caller promises `dst` is a `Poll<Result<F::Output, TaskError>>`.
        unsafe { *(dst as *mut Poll<Result<F::Output, TaskError>>) = Poll::Ready(out) };
    }
}

/// The handle's side of state.rs rule 4: `true` if the output can be read now; otherwise
/// `waker` is stored to be woken on completion.
fn can_read_output<F: Future, S>(cell: &Cell<F, S>, waker: &Waker) -> bool {
    let snapshot = cell.header.state.load();
    if snapshot.is_complete() {
        return true;
    }
    if snapshot.is_join_waker_set() {
        // SAFETY: rule 4: JOIN_WAKER is set, so nobody writes the field.
        if unsafe { cell.join_waker_will_wake(waker) } {
            return false;
        }
        if cell.header.state.unset_join_waker().is_err() {
            return true; // completed meanwhile
        }
    }
    // SAFETY: state.rs rule 4: JOIN_WAKER and COMPLETE are clear, so only the handle touches
    // the field. (The old waker, if any, is dropped on the handle's own thread.)
    drop(unsafe { cell.set_join_waker(Some(waker.clone())) });
    if cell.header.state.set_join_waker().is_err() {
        // Completed before we published it.
        // SAFETY: state.rs rule 4: COMPLETE was set while JOIN_WAKER was still clear, so the
        // completing thread did not look at the field: it is still the handle's.
        drop(unsafe { cell.set_join_waker(None) });
        return true;
    }
    false
}

/// `Drop for Task<T>`: gives up the handle's interest and reference; drops the output (and
/// reports an unretrieved panic, rule T8) if the task is complete.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller is its join handle, giving up its
/// reference here.
pub(super) unsafe fn drop_join_handle<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (this function's contract: the vtable
    // dispatched here for this type) and a reference keeps it alive (state.rs rule 1).
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    /// Releases the handle's reference even if dropping the output panics.
    struct Release(NonNull<Header>);
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: state.rs rule 1: the handle's reference, given up exactly once here.
            unsafe { RawTask::from_raw(self.0).ref_dec() }
        }
    }
    let _release = Release(ptr);
    let d = cell.header.state.transition_to_join_handle_dropped();
    if d.drop_waker {
        // SAFETY: state.rs rule 4: the transition gave the field back to the handle.
        drop(unsafe { cell.set_join_waker(None) });
    }
    if d.drop_output {
        // SAFETY: state.rs rule 3: COMPLETE was set while we had JOIN_INTEREST.
        match unsafe { cell.take_output() } {
            Some(Err(TaskError::Panicked(p))) if !panic_retrieved(&cell.header) => {
                report(cell, ptr, TaskReport::Unretrieved(p))
            }
            out => drop(out),
        }
    }
}

/// Runtime shutdown: cancels the task now unless it is complete or being polled (its poller
/// then drops the future when the poll returns). The caller keeps its reference.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller holds a reference.
pub(super) unsafe fn shutdown<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (this function's contract: the vtable
    // dispatched here for this type) and a reference keeps it alive (state.rs rule 1).
    let cell = unsafe { Cell::<F, S>::from_header(ptr) };
    if cell.header.state.transition_to_shutdown() {
        // Rule T11: reported (in debug mode, asyncio's "debug level") before the future goes.
        if cell.scheduler.debug() {
            report(cell, ptr, TaskReport::DestroyedPending);
        }
        // SAFETY: state.rs rule 2: the transition set RUNNING for us; we release no
        // reference of our own (the caller keeps its reference, so this frees nothing).
        unsafe { cancel_and_complete::<F, S>(ptr, 0, None) }
    }
}

/// The task's loop.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller holds a reference.
pub(super) unsafe fn loop_id<F: Future, S: Schedule>(ptr: NonNull<Header>) -> LoopId {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (a reference is held, state.rs rule 1);
    // the scheduler is immutable (rule 6).
    unsafe { Cell::<F, S>::from_header(ptr) }
        .scheduler
        .loop_id()
}

/// The task's scheduler, valid while the caller's reference is.
///
/// # Safety
/// `ptr` is a live `Cell<F, S>` header and the caller holds a reference.
pub(super) unsafe fn scheduler<F: Future, S: Schedule>(
    ptr: NonNull<Header>,
) -> *const dyn Schedule {
    // SAFETY: `ptr` is a live `Cell<F, S>` header (a reference is held, state.rs rule 1);
    // the scheduler is immutable (rule 6).
    let s: &dyn Schedule = &unsafe { Cell::<F, S>::from_header(ptr) }.scheduler;
    s
}
