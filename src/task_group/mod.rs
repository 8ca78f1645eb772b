//! asyncio's `TaskGroup` (rules G1–G5) as a scope that cannot leak its children.
//!
//! ```text
//! async with TaskGroup() as tg:          TaskGroup::new().run(|tg| async move {
//!     tg.create_task(work())                 tg.create_task(work())?;
//!     await other()                          other().await;
//!                                            Ok::<_, TaskGroupError>(())
//!                                        }).await
//! ```
//!
//! # The protocol (who cancels whom)
//!
//! * **Entry** (`run`): the group records its parent — the current task, which must be a
//!   built-in one, since the group has to be able to cancel it — and runs the body inside a
//!   [`catch_cancel`] scope.
//! * **A child fails** (panics; a child that ends cancelled does not count, G5): its
//!   completion hook, running on the completing thread, records the failure (in failure
//!   order) and marks the panic retrieved. If the group is not already aborting it
//!   *aborts*: every unfinished child is cancelled, and the parent is cancelled once
//!   (`parent_cancel_requested`), so the body's pending await ends in the body scope (G3).
//! * **The body ends** — with a value, an `Err`, a panic, or a cancellation caught by the
//!   body scope. Anything but a value aborts the group if it is not aborting yet (a
//!   cancellation the body scope caught while the group was *not* aborting came from
//!   outside: it is remembered to be propagated).
//! * **Shutdown**: the parent waits, in a catch scope, until every child's hook has run
//!   (G2). A cancellation caught there while not aborting also came from outside: remember
//!   it and abort. One caught while aborting is remembered as *pending* only.
//! * **Exit** (G4): if the group cancelled the parent, it calls `uncancel()` once; if that
//!   leaves no request, nothing is propagated (the only cancellation was the group's own);
//!   otherwise an outside cancellation — the remembered one, else the pending one —
//!   stands. Then: failures win: if any, `run` returns [`TaskGroupError::Failed`], leaving
//!   no undelivered request on the parent (G4: CPython 3.13 re-arms one there, which in Rust
//!   would turn the returned error into a cancellation, mapping point 4). Else an outside
//!   cancellation is re-raised ([`CancelledError::reraise`]) to the enclosing scope or the
//!   task. Else the body's value is returned.
//!
//! So the group tells its own cancellation from an outside one by the count, exactly as
//! asyncio does: it knows it added one request, and a count still above zero after its
//! `uncancel()` means someone else asked too.
//!
//! Dropping the `run` future before it finished (the parent was torn down: runtime
//! shutdown, or an outside cancellation with no scope; or the scope lost a `select`) closes
//! the group, cancels every unfinished child — no child outlives its scope unnoticed — and
//! withdraws the group's own request on the parent, if it made one (G4).

mod error;

pub use error::{BoxError, ExceptionGroup, Failure, TaskGroupError};

use crate::task::observe::{self, AwaitKind};
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Poll, Waker};

use rustc_hash::FxHashMap;

use crate::error::PanicError;
use crate::event_loop::context::{self, LoopRef};
use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::Mutex;
use crate::task::done::{Hook, HookSink, Outcome};
use crate::task::spawn::SpawnOpts;
use crate::unwind;
use crate::{catch_cancel, CancelledError, SharedError, Task, TaskRef};

/// asyncio's `TaskGroup`: structured concurrency (rules G1–G5).
///
/// A `TaskGroup` is a cheap, cloneable handle (an `Arc`). [`TaskGroup::run`] enters it
/// (once) and runs a body that receives a clone; children are created with
/// [`create_task`](TaskGroup::create_task), from the body or from anywhere else (a child
/// creating siblings). `run` returns only when every child is done.
///
/// * **The body** is a closure returning a future of `Result<R, E>`, `E` convertible into
///   [`BoxError`] (so `?` works on [`TaskGroupError`] and most errors). Its `Ok(R)` is what
///   `run` returns when nothing failed.
/// * **Failures**: the first child panic aborts the group: unfinished children are
///   cancelled and the parent's pending await in the body is cancelled (G3). A body that
///   returns `Err` or panics aborts it too. `run` then returns
///   [`TaskGroupError::Failed`] listing every failure in the order they happened, the
///   body's own last (G4). A child cancelled by hand is not a failure (G5).
/// * **Cancellation from outside** (the parent task cancelled by someone else) cancels the
///   children, waits for them, and then propagates as a cancellation (the task ends
///   cancelled unless an enclosing [`catch_cancel`] scope takes it), unless failures
///   occurred: those are returned, and the cancellation is re-armed for the parent's next
///   await.
/// * The parent's [`cancelling()`](TaskRef::cancelling) is back at its value at entry when
///   `run` returns (G4).
///
/// ```
/// use aioloop::{Runtime, TaskGroup, TaskGroupError};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let sum = rt.block_on(rt.spawn(async {
///     TaskGroup::new()
///         .run(|tg| async move {
///             let a = tg.create_task(async {
///                 aioloop::sleep(Duration::from_millis(10)).await;
///                 1
///             })?;
///             let b = tg.create_task(async { 2 })?;
///             Ok::<_, TaskGroupError>((a, b))
///         })
///         .await
///         // every child is done here: their results are ready
///         .map(|(mut a, mut b)| a.result().unwrap().unwrap() + b.result().unwrap().unwrap())
/// }))
/// .unwrap()?;
/// assert_eq!(sum, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TaskGroup {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Children whose completion hook has not finished. Incremented under the lock (so
    /// the exit check, also under the lock, cannot miss a child being created), decremented
    /// by the hooks without it.
    live: AtomicUsize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    NotEntered,
    /// The body runs.
    Running,
    /// The body ended; waiting for the children.
    Exiting,
    /// No child left and the scope ended (or its future was dropped).
    Finished,
}

#[derive(Default)]
struct State {
    phase: Phase,
    aborting: bool,
    parent: Option<TaskRef>,
    parent_cancel_requested: bool,
    /// The loop the group spawns on: the parent's, recorded at entry.
    owner: Option<LoopRef>,
    /// Unfinished children, to cancel on abort.
    children: FxHashMap<u64, TaskRef>,
    failures: Vec<Failure>,
    /// The parent waiting for the last child.
    waker: Option<Waker>,
    /// The body's waker, when the parent is not a built-in task (a third-party task)
    /// and so cannot be cancelled through the request protocol: an abort wakes it and the
    /// `run` future drops the body itself.
    body_waker: Option<Waker>,
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl TaskGroup {
    /// A group not yet entered: [`run`](TaskGroup::run) enters it.
    ///
    /// ```
    /// let tg = aioloop::TaskGroup::new();
    /// assert!(tg.create_task(async {}).is_err()); // not entered yet (G1)
    /// ```
    pub fn new() -> TaskGroup {
        TaskGroup {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                live: AtomicUsize::new(0),
            }),
        }
    }

    /// Enters the group, runs `body` with a handle to it, and waits for every child (G2);
    /// asyncio's `async with tg:` block. See [`TaskGroup`] for what is returned when.
    ///
    /// # Errors
    /// [`TaskGroupError::AlreadyEntered`] if this group was entered before (asyncio's
    /// "entered twice": a group's `run` may be called once);
    /// [`TaskGroupError::NoParentTask`] without a current task (the body is not run, and
    /// the group stays not entered). Under a third-party parent task (which cannot be
    /// cancelled through the request protocol) the group works, but an abort drops the
    /// body instead of delivering a cancellation it could catch.
    /// [`TaskGroupError::Failed`] if children or the body failed.
    ///
    /// # Panics
    /// If the `run` future is moved to, and finished by, something other than a built-in
    /// task after a cancellation from outside (there is then no task to re-raise it into).
    ///
    /// ```
    /// use aioloop::{Runtime, TaskGroup, TaskGroupError};
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// rt.block_on(rt.spawn(async {
    ///     let tg = TaskGroup::new();
    ///     tg.run(|_| async { Ok::<_, TaskGroupError>(()) }).await.unwrap();
    ///     let again = tg.run(|_| async { Ok::<_, TaskGroupError>(()) }).await;
    ///     assert!(matches!(again, Err(TaskGroupError::AlreadyEntered)));
    /// }))
    /// .unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// The returned future owns a clone of the group (no borrow of `self`), so
    /// `TaskGroup::new().run(..)` can be stored, moved into a task, or spawned.
    pub fn run<B, Fut, R, E>(&self, body: B) -> impl Future<Output = Result<R, TaskGroupError>>
    where
        B: FnOnce(TaskGroup) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: Into<BoxError>,
    {
        self.clone().run_owned(body)
    }

    async fn run_owned<B, Fut, R, E>(self, body: B) -> Result<R, TaskGroupError>
    where
        B: FnOnce(TaskGroup) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: Into<BoxError>,
    {
        let parent = self.enter()?;
        let mut guard = CloseOnDrop(Some(self.shared.clone()));

        // The body, in a catch scope (so the group's cancellation of the parent ends its
        // pending await) and a panic catcher (a panicking body is a failure of the group).
        let mut scope = Some(Box::pin(catch_cancel(body(self.clone()))));
        let cancellable = parent.is_builtin();
        let ended = poll_fn(|cx| {
            let Some(fut) = scope.as_mut() else {
                return Poll::Pending;
            };
            if !cancellable {
                // G3 for a parent that cannot be cancelled (a third-party task): the
                // abort wakes us, and we drop the body here — what the catch scope does
                // for a built-in parent, minus the body's chance to clean up with awaits.
                let mut s = self.shared.state.lock();
                if s.aborting {
                    drop(s);
                    let dead = scope.take();
                    let _ = unwind::drop_caught(dead);
                    return Poll::Ready(Ok(Err(CancelledError::new(None))));
                }
                s.body_waker = Some(cx.waker().clone());
            }
            match unwind::catch(|| fut.as_mut().poll(cx)) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
                Err(payload) => {
                    let dead = scope.take();
                    let _ = unwind::drop_caught(dead);
                    Poll::Ready(Err(payload))
                }
            }
        })
        .await;
        let (value, body_failure, mut propagate) = match ended {
            Ok(Ok(Ok(v))) => (Some(v), None, None),
            Ok(Ok(Err(e))) => (None, Some(Failure::Body(e.into())), None),
            Ok(Err(cancelled)) => (None, None, Some(cancelled)),
            Err(payload) => (
                None,
                Some(Failure::body_panicked(PanicError::new(payload))),
                None,
            ),
        };
        // The body failed or was cancelled: abort, unless a child failure already did (a
        // cancellation caught then was the group's own, or was joined by an outside one,
        // which the count tells at exit).
        self.shared
            .begin_exit(body_failure.is_some() || propagate.is_some());

        // Shutdown: wait for every child (G2). A cancellation arriving now while not
        // aborting comes from outside: abort, and propagate it at the end.
        let mut pending = None;
        while let Err(cancelled) = catch_cancel(WaitChildren(&self.shared)).await {
            if self.shared.abort_if_not_aborting() {
                propagate = Some(cancelled.clone());
            }
            pending = Some(cancelled);
        }
        guard.0 = None;

        let (requested, mut failures) = {
            let mut s = self.shared.state.lock();
            s.parent = None;
            s.owner = None;
            (s.parent_cancel_requested, std::mem::take(&mut s.failures))
        };
        if requested {
            // G4: withdraw the group's own request. None left: nothing came from outside.
            if parent.uncancel() == 0 {
                propagate = None;
            } else if propagate.is_none() {
                propagate = pending;
            }
        }
        failures.extend(body_failure);
        if !failures.is_empty() {
            // G4: failures win over a cancellation from outside (test_taskgroups 15/16).
            // CPython 3.13 re-arms the parent here when `cancelling() > 0`; a Rust error is
            // a returned value, and an undelivered request would turn it into a
            // cancellation (mapping point 4), so nothing is left undelivered.
            if let Some(raw) = parent.raw() {
                raw.withdraw_undelivered();
            }
            return Err(TaskGroupError::Failed(ExceptionGroup::new(failures)));
        }
        match (value, propagate) {
            (Some(v), None) => Ok(v),
            (_, cancelled) => {
                let cancelled = cancelled.unwrap_or_else(|| CancelledError::new(None));
                let e = cancelled.reraise().await;
                panic!("TaskGroup::run was finished outside its parent task after {e}")
            }
        }
    }

    /// asyncio's `tg.create_task(coro)`: spawns `future` as a child of the group, on the
    /// parent's loop, and returns its [`Task`]. The group waits for it; its panic aborts
    /// the group. Callable from the body, from children, or from any thread.
    ///
    /// # Errors
    /// The future is dropped without running and an error is returned (G1) if the group
    /// has not been entered ([`TaskGroupError::NotEntered`]), has finished
    /// ([`TaskGroupError::Finished`]) or is aborting ([`TaskGroupError::ShuttingDown`]).
    ///
    /// ```
    /// use aioloop::{Runtime, TaskGroup, TaskGroupError};
    ///
    /// let rt = Runtime::builder().workers(2).build()?;
    /// let n = rt.block_on(rt.spawn(async {
    ///     let tg = TaskGroup::new();
    ///     let t = tg
    ///         .run(|tg| async move { tg.create_task(async { 5 }) })
    ///         .await
    ///         .unwrap();
    ///     assert!(matches!(tg.create_task(async { 6 }), Err(TaskGroupError::Finished)));
    ///     t.await.unwrap()
    /// }))
    /// .unwrap();
    /// assert_eq!(n, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future, None)
    }

    /// [`create_task`](TaskGroup::create_task) with a task name (asyncio's
    /// `tg.create_task(coro, name=...)`).
    ///
    /// ```
    /// use aioloop::{Runtime, TaskGroup, TaskGroupError};
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// let name = rt.block_on(rt.spawn(async {
    ///     TaskGroup::new()
    ///         .run(|tg| async move {
    ///             let t = tg.create_task_named("yolo", async {})?;
    ///             Ok::<_, TaskGroupError>(t.name())
    ///         })
    ///         .await
    ///         .unwrap()
    /// }))
    /// .unwrap();
    /// assert_eq!(name, "yolo");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn create_task_named<F>(
        &self,
        name: impl Into<Arc<str>>,
        future: F,
    ) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future, Some(name.into()))
    }

    /// [`create_task`](TaskGroup::create_task) for a child that fails by returning an
    /// error, as an asyncio child fails by raising one: an `Err` aborts the group exactly
    /// as a panic does (G3) and is listed in the group's error as
    /// [`Failure::ChildError`]; the child's own [`Task`] yields the same error, shared
    /// ([`SharedError`](crate::SharedError)). No panic, and no panic hook, is involved.
    ///
    /// # Errors
    /// As [`create_task`](TaskGroup::create_task) (G1).
    ///
    /// ```
    /// use aioloop::{Failure, Runtime, TaskGroup, TaskGroupError};
    ///
    /// #[derive(Debug)]
    /// struct Refused(u16);
    /// impl std::fmt::Display for Refused {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "refused with status {}", self.0)
    ///     }
    /// }
    /// impl std::error::Error for Refused {}
    ///
    /// let rt = Runtime::builder().workers(2).build()?;
    /// let err = rt.block_on(rt.spawn(async {
    ///     TaskGroup::new()
    ///         .run(|tg| async move {
    ///             tg.create_task(aioloop::sleep(std::time::Duration::from_secs(3600)))?; // cancelled
    ///             tg.create_task_fallible(async { Err::<(), _>(Refused(503)) })?;
    ///             Ok::<_, TaskGroupError>(())
    ///         })
    ///         .await
    ///         .unwrap_err()
    /// }))
    /// .unwrap();
    /// let Failure::ChildError { error, .. } = &err.failures().unwrap()[0] else { unreachable!() };
    /// assert_eq!(error.downcast_ref::<Refused>().unwrap().0, 503);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn create_task_fallible<F, T, E>(
        &self,
        future: F,
    ) -> Result<Task<Result<T, SharedError>>, TaskGroupError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        let shared = self.shared.clone();
        self.spawn(
            async move {
                let error: SharedError = match future.await {
                    Ok(v) => return Ok(v),
                    Err(e) => Arc::from(e.into()),
                };
                if let Ok(Some(me)) = crate::try_current_task() {
                    let failure = Failure::ChildError {
                        id: me.id(),
                        name: me.name(),
                        error: error.clone(),
                    };
                    shared.child_failed(&me, failure);
                }
                Err(error)
            },
            None,
        )
    }

    #[track_caller]
    fn spawn<F>(&self, future: F, name: Option<Arc<str>>) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let owner = {
            let s = self.shared.state.lock();
            match s.phase {
                Phase::NotEntered => return Err(TaskGroupError::NotEntered),
                Phase::Finished => return Err(TaskGroupError::Finished),
                Phase::Running | Phase::Exiting => {}
            }
            if s.aborting {
                return Err(TaskGroupError::ShuttingDown);
            }
            self.shared.live.fetch_add(1, Ordering::Relaxed);
            let parent = s.parent.as_ref().map(TaskRef::id);
            (
                s.owner.clone().expect("an entered group has an owner"),
                parent,
            )
        };
        let (owner, parent) = owner;
        let shared = self.shared.clone();
        let hook = Hook::new(shared, 0);
        let opts = SpawnOpts {
            name,
            hook: Some(hook),
            ..SpawnOpts::default()
        };
        let task = crate::create::spawn_on_loop(&owner, future, opts);
        // O5: the parent waits for its children (the call graph's TaskGroup edge).
        observe::set_awaited_by(task.raw_task(), parent, AwaitKind::TaskGroup);
        let child = task.task_ref();
        let cancel_now = {
            let mut s = self.shared.state.lock();
            // A child that already finished (eagerly, or on another worker) ran its hook
            // already: its completion is published before the hook, so `done()` sees it.
            if !child.done() {
                s.children.insert(child.id(), child.clone());
            }
            // The group began aborting while this child was being created (asyncio's
            // gh-155418): the abort did not see it.
            s.aborting
        };
        if cancel_now {
            child.cancel(None);
        }
        Ok(task)
    }

    /// G1: the entry checks, then record the parent and its loop.
    fn enter(&self) -> Result<TaskRef, TaskGroupError> {
        let mut s = self.shared.state.lock();
        if s.phase != Phase::NotEntered {
            return Err(TaskGroupError::AlreadyEntered);
        }
        let parent = match crate::try_current_task() {
            Ok(Some(t)) => t,
            _ => return Err(TaskGroupError::NoParentTask),
        };
        let owner = context::current_owner().ok_or(TaskGroupError::NoParentTask)?;
        s.phase = Phase::Running;
        s.parent = Some(parent.clone());
        s.owner = Some(owner);
        Ok(parent)
    }
}

impl std::fmt::Debug for TaskGroup {
    /// asyncio's repr: `<TaskGroup tasks=2 errors=1 cancelling>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.state.lock();
        f.write_str("<TaskGroup")?;
        let live = self.shared.live.load(Ordering::Relaxed);
        if live > 0 {
            write!(f, " tasks={live}")?;
        }
        if !s.failures.is_empty() {
            write!(f, " errors={}", s.failures.len())?;
        }
        if s.aborting {
            f.write_str(" cancelling")?;
        } else if s.phase != Phase::NotEntered {
            f.write_str(" entered")?;
        }
        f.write_str(">")
    }
}

impl HookSink for Shared {
    fn task_done(&self, _key: usize, task: &TaskRef, outcome: &Outcome) -> bool {
        self.child_done(task, outcome)
    }
}

impl Shared {
    /// A child's completion hook, on the completing thread (task/done.rs). Returns `true`
    /// (retrieved) for a panic the group recorded.
    fn child_done(&self, task: &TaskRef, outcome: &Outcome) -> bool {
        let mut retrieved = false;
        let mut abort = None;
        let mut body_waker = None;
        {
            let mut s = self.state.lock();
            s.children.remove(&task.id());
            // A cancelled child is not a failure (G5). A group whose scope was dropped
            // retrieves nothing: the panic is reported as never retrieved.
            if let (Outcome::Panicked(p), true) = (outcome, s.parent.is_some()) {
                retrieved = true;
                (abort, body_waker) =
                    Self::fail_locked(&mut s, Failure::child(task.id(), task.name(), p));
            }
        }
        if let Some(w) = body_waker {
            w.wake();
        }
        if let Some(children) = abort {
            cancel_all(children);
        }
        // Last: the parent may finish the group once this reaches zero, and must by then
        // see the failure and the request above.
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waker = self.state.lock().waker.take();
            if let Some(w) = waker {
                w.wake();
            }
        }
        retrieved
    }

    /// Records `failure` and, unless aborting already, aborts the group (G3). Returns the
    /// children to cancel and the body waker to wake, for after the lock.
    fn fail_locked(s: &mut State, failure: Failure) -> (Option<Vec<TaskRef>>, Option<Waker>) {
        s.failures.push(failure);
        if s.aborting || s.parent_cancel_requested {
            return (None, None);
        }
        // G3: abort, and cancel the parent once — under the lock, together with the flag,
        // so that a scope dropped concurrently (`CloseOnDrop`) sees either no request or
        // one it can withdraw. (Lock order: group, then the task's cancel block; nothing
        // takes them the other way.)
        s.parent_cancel_requested = true;
        let mut body_waker = None;
        if let Some(p) = s.parent.clone() {
            if !p.cancel(None) {
                // Not a built-in task: wake the body so that `run` drops it.
                body_waker = s.body_waker.take();
            }
        }
        (Some(Self::abort_locked(s)), body_waker)
    }

    /// A fallible child returned `Err` (`create_task_fallible`), from inside its own last
    /// step: a failure like a panic (G3). The child leaves the set of children to cancel
    /// first — it is finishing, and a request now would turn its `Err` into a cancellation.
    fn child_failed(&self, child: &TaskRef, failure: Failure) {
        let (abort, body_waker) = {
            let mut s = self.state.lock();
            if s.parent.is_none() {
                // The scope is gone: the error stays the child's own output only.
                return;
            }
            s.children.remove(&child.id());
            Self::fail_locked(&mut s, failure)
        };
        if let Some(w) = body_waker {
            w.wake();
        }
        if let Some(children) = abort {
            cancel_all(children);
        }
    }

    fn abort_locked(s: &mut State) -> Vec<TaskRef> {
        s.aborting = true;
        s.children.values().cloned().collect()
    }

    /// The body ended: the group is exiting; abort if asked and not aborting yet.
    fn begin_exit(&self, abort: bool) {
        let children = {
            let mut s = self.state.lock();
            s.phase = Phase::Exiting;
            if !abort || s.aborting {
                return;
            }
            Self::abort_locked(&mut s)
        };
        cancel_all(children);
    }

    /// Aborts unless aborting already; `true` if this call aborted.
    fn abort_if_not_aborting(&self) -> bool {
        let children = {
            let mut s = self.state.lock();
            if s.aborting {
                return false;
            }
            Self::abort_locked(&mut s)
        };
        cancel_all(children);
        true
    }
}

fn cancel_all(children: Vec<TaskRef>) {
    for c in children {
        c.cancel(None);
    }
}

/// Resolves once no child is left, moving the group to `Finished` under the same lock as
/// `create_task`'s check, so no child can be created after the last one was seen to end.
struct WaitChildren<'a>(&'a Shared);

impl Future for WaitChildren<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut s = self.0.state.lock();
        // Acquire: pairs with the hooks' AcqRel decrement, so their failures are visible.
        if self.0.live.load(Ordering::Acquire) == 0 {
            s.phase = Phase::Finished;
            s.waker = None;
            return Poll::Ready(());
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Closes the group if `run` is dropped before it finished: no more children, and the
/// unfinished ones are cancelled (they cannot be awaited from a destructor).
struct CloseOnDrop(Option<Arc<Shared>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let Some(shared) = self.0.take() else { return };
        let (children, parent) = {
            let mut s = shared.state.lock();
            s.phase = Phase::Finished;
            let parent = s.parent.take().filter(|_| s.parent_cancel_requested);
            s.owner = None;
            (Shared::abort_locked(&mut s), parent)
        };
        cancel_all(children);
        // G4 also when the scope is dropped early (it lost a race in a `select`, say): the
        // group's own request on its parent is withdrawn, so the parent is not left
        // cancelled by a group that no longer exists.
        if let Some(parent) = parent {
            parent.uncancel();
        }
    }
}
