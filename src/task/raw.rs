//! The type-erased face of a task: [`RawTask`] (a non-owning pointer to its header),
//! [`Notified`] (the reference that stands for "scheduled", state.rs rule 5), the vtable
//! through which every non-generic caller reaches the generic functions of harness.rs, and
//! [`Schedule`], the task core's whole view of a loop. The allocation's layout is in core.rs;
//! the protocol in harness.rs and state.rs.

use std::future::Future;
use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::Waker;

use super::cancel::ExtraSlot;
use super::core::Cell;
pub(crate) use super::core::Header;
use super::current;
use super::done::{self, DoneCallback, Late, Outcome};
use super::harness;
use super::state::{State, TransitionToNotified};
use super::LoopId;
use crate::contextvars;
use crate::error::{CancelledError, PanicError};
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

/// The type-erased operations on one task; built once per `(F, S)` by [`vtable`].
pub(crate) struct Vtable {
    /// Poll the future (consumes a `Notified` reference).
    pub(super) poll: unsafe fn(NonNull<Header>),
    /// Hand a `Notified` reference to the scheduler.
    pub(super) schedule: unsafe fn(NonNull<Header>),
    /// Free the allocation (refcount reached zero).
    pub(super) dealloc: unsafe fn(NonNull<Header>),
    /// Task<T>::poll: write `Poll<Result<T, TaskError>>` to the pointer if complete, else
    /// register the waker.
    pub(super) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// Task<T>::drop (consumes the handle's reference).
    pub(super) drop_join_handle: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: drop the future if nobody runs it (caller keeps its reference).
    pub(super) shutdown: unsafe fn(NonNull<Header>),
    /// The owning loop.
    pub(super) loop_id: unsafe fn(NonNull<Header>) -> LoopId,
    /// The task's scheduler, for callbacks and reports (valid while a reference is held).
    pub(super) scheduler: unsafe fn(NonNull<Header>) -> *const dyn Schedule,
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
        let header = Header {
            state: State::new(),
            vtable: vtable::<F, S>(),
            id,
            extra: ExtraSlot::new(),
            registry_pos: super::registry::RegistryPos::new(),
        };
        let cell = Cell::new(header, scheduler, future);
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        RawTask { ptr }
    }

    /// # Safety
    /// `ptr` must point to a live task header.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    /// The header pointer (for an owning wrapper that stores it in its own form).
    pub(crate) fn as_ptr(self) -> NonNull<Header> {
        self.ptr
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
        // SAFETY: the task is live (the handle's reference, state.rs rule 1), the vtable was
        // built for its cell type, and `dst` and the caller are as `harness::try_read_output`
        // requires (this function's contract).
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// # Safety
    /// The caller is the join handle, giving up its reference.
    pub(crate) unsafe fn drop_join_handle(self) {
        // SAFETY: the task is live (the handle's reference, state.rs rule 1), the vtable was
        // built for its cell type, and the caller is the handle giving up that reference.
        unsafe { (self.header().vtable.drop_join_handle)(self.ptr) }
    }

    /// asyncio's `cancel(msg)` (task/cancel.rs, rule 1): records a request and wakes the
    /// task so that its next poll delivers it. `false` if the task is already done; that
    /// call still counts as retrieving its panic (F6: asyncio clears its log flag in
    /// `cancel()`), so dropping the handle unread reports nothing.
    pub(crate) fn cancel(self, msg: Option<Arc<str>>) -> bool {
        let h = self.header();
        if h.state.load().is_complete() {
            h.extra.get_or_init().with_done(|d| d.set_retrieved());
            return false;
        }
        super::observe::on_cancel_requested(self, msg.as_deref());
        let own = self.is_polling_here();
        if msg.is_none() && !own && h.extra.request_bare() {
            // Rule 7 of task/cancel.rs: recorded without a block; the rest is as for a
            // request stored on a task without a waiter (the `None` arm below).
            if self.lost_to_completion_bare() {
                return false;
            }
            self.wake_for_cancel();
            return true;
        }
        let extra = h.extra.get_or_init();
        if own || h.state.load().is_running() {
            // Running (asyncio: no `_fut_waiter`): stored, raised at its next suspension.
            extra.request(msg, own);
            if !own && self.lost_to_completion(extra) {
                return false;
            }
            self.wake_for_cancel();
            return true;
        }
        // Suspended: passed on to what it awaits, if anything (task/cancel.rs, rule 6).
        match extra.request_suspended(msg.clone()) {
            None => {
                if self.lost_to_completion(extra) {
                    return false;
                }
                self.wake_for_cancel()
            }
            Some((generation, waiter)) => {
                let accepted = waiter.cancel(msg);
                if extra.forward_result(generation, &waiter, accepted) {
                    self.wake_for_cancel();
                }
                drop(waiter); // may release the last reference to a task: no lock held
            }
        }
        true
    }

    /// A request just stored found the task completing with a value: its last poll had
    /// already looked for requests (task/cancel.rs, rule 5) and then finished. asyncio's
    /// `cancel()` on a done task returns `false` and counts nothing, so the request is
    /// withdrawn and `cancel` reports `false` — which is what tells an awaiter that passed
    /// its own request on here to keep it (rule 6; a lost request in the 64-consumer
    /// pipeline of tests/cancel_race.rs). A completion still in progress is not seen here;
    /// the awaiter then sees the request left undelivered on the finished task
    /// ([`RawTask::finished_before_cancel`], read after the outcome: the request's store
    /// precedes this check, which precedes the completion the awaiter observed).
    fn lost_to_completion(self, extra: &super::cancel::Extra) -> bool {
        if !self.finished_before_cancel() {
            return false;
        }
        extra.withdraw_lost();
        true
    }

    /// [`RawTask::lost_to_completion`] for a bare request (task/cancel.rs, rule 7): the
    /// block is inflated only when the task is already finished.
    fn lost_to_completion_bare(self) -> bool {
        let st = self.header().state.load();
        if !st.is_complete() || st.is_cancelled_outcome() {
            return false;
        }
        self.lost_to_completion(self.header().extra.get_or_init())
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
    ///
    /// # Safety
    /// The caller holds a counted reference to the task for as long as it uses the result
    /// (a `RawTask` is `Copy` and counts nothing: the borrow alone does not keep the
    /// allocation alive, state.rs rule 1).
    pub(crate) unsafe fn scheduler<'a>(self) -> &'a dyn Schedule {
        // SAFETY: live while the caller's reference is (this function's contract); the
        // vtable matches the allocation; the scheduler is immutable (state.rs rule 6).
        unsafe { &*(self.header().vtable.scheduler)(self.ptr) }
    }

    /// Registers a done callback or hook (task/done.rs). Called before the task is first
    /// scheduled (hooks, a context) or at any time (user callbacks).
    pub(crate) fn add_done(self, cb: DoneCallback) {
        let h = self.header();
        let extra = h.extra.get_or_init();
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
            // SAFETY: `me` holds a counted reference until the end of this block, past the
            // last use of `sched`.
            let sched = unsafe { self.scheduler() };
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
            .extra
            .get()
            .map_or(0, |c| c.with_done(|d| d.remove(f)))
    }

    /// Re-raises a caught cancellation on this task (`Extra::rearm`) and wakes it.
    pub(crate) fn rearm_cancel(self, msg: Option<Arc<str>>) {
        let h = self.header();
        h.extra.get_or_init().rearm(msg, self.is_polling_here());
        self.wake_for_cancel();
    }

    /// Takes back an undelivered request without delivering it (G4: a task group returning
    /// its failures leaves none behind). The count is unchanged.
    pub(crate) fn withdraw_undelivered(self) {
        if let Some(extra) = self.header().extra.get() {
            let _ = extra.take_at_completion();
        }
    }

    /// This task is the one being polled on this thread (a request it makes is its own).
    fn is_polling_here(self) -> bool {
        current::with_builtin(|cur| cur == Some(self))
    }

    /// asyncio's `cancelling()`: outstanding cancellation requests.
    pub(crate) fn cancelling(self) -> u32 {
        self.header().extra.get().map_or(0, |c| c.cancelling())
    }

    /// asyncio's `uncancel()` (rule T7).
    pub(crate) fn uncancel(self) -> u32 {
        self.header().extra.get().map_or(0, |c| c.uncancel())
    }

    /// A finished task that a request passed on to it never reached (task/cancel.rs,
    /// rule 6): it is done, did not end cancelled, and a `cancel()` that found it still
    /// running was stored after its completion check. For the awaiter, that request was
    /// refused (the awaited task had finished first), so it is raised at the await.
    pub(crate) fn finished_before_cancel(self) -> bool {
        let st = self.header().state.load();
        st.is_complete()
            && !st.is_cancelled_outcome()
            && self.header().extra.get().is_some_and(|e| e.undelivered())
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

    /// The task this reference schedules.
    pub(crate) fn raw(&self) -> RawTask {
        self.0
    }

    /// The task's address: tells one task from another while both are alive (a loop core
    /// compares a scheduled task with the one it is running).
    pub(crate) fn addr(&self) -> *const () {
        self.0.ptr.as_ptr().cast_const().cast()
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
        poll: harness::poll::<F, S>,
        schedule: harness::schedule::<F, S>,
        dealloc: harness::dealloc::<F, S>,
        try_read_output: harness::try_read_output::<F, S>,
        drop_join_handle: harness::drop_join_handle::<F, S>,
        shutdown: harness::shutdown::<F, S>,
        loop_id: harness::loop_id::<F, S>,
        scheduler: harness::scheduler::<F, S>,
    }
}
