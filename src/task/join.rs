//! `Task<T>`: the handle `spawn` / `create_task` return.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::raw::RawTask;
use super::{LoopId, TaskRef};
use crate::error::{InvalidStateError, PanicError, TaskError, TaskResultError};
use std::sync::Arc;

/// A spawned task, and the way to get its result.
///
/// Awaiting a `Task<T>` yields `Ok(value)` when the task's future finished, or a
/// [`TaskError`] telling a cancellation from a panic. Dropping a `Task` **detaches** it: the
/// task keeps running, as an asyncio task does when nobody holds it (the runtime owns it
/// until it finishes or the runtime shuts down).
///
/// ```
/// use aioloop::Runtime;
///
/// let rt = Runtime::builder().workers(2).build().unwrap();
/// let task = rt.spawn(async { 6 * 7 });
/// println!("spawned {}", task.name()); // Task-<id>
/// assert_eq!(rt.block_on(task).unwrap(), 42);
/// ```
///
/// `&mut Task<T>` is a future too, with the same output: awaiting it (or passing it to
/// `LocalLoop::run_until_complete` / `Runtime::block_on`) leaves the handle with you, for
/// [`cancelled`](Task::cancelled), [`get_context`](Task::get_context) and the like
/// afterwards. Once its outcome was taken, it may not be awaited again (use
/// [`try_result`](Task::try_result), which says so with an error).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let mut task = lp.create_task(async { 5 })?;
/// assert_eq!(lp.run_until_complete(&mut task)?.unwrap(), 5); // asyncio's run_until_complete(task)
/// assert!(task.done() && !task.cancelled());
/// assert!(task.try_result().is_err()); // already retrieved
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Task<T> {
    raw: RawTask,
    /// The output was moved out by `result()` (or a completed poll).
    taken: bool,
    /// The output read out of the cell by [`Task::exception`], which only looks at it:
    /// the next `result()`/`.await` takes it from here. Dropped by hand in `Drop` (only
    /// when there is one: the drop glue of an empty one is a call per handle).
    kept: ManuallyDrop<Option<Box<Result<T, TaskError>>>>,
    /// This handle recorded an await edge from the current task (task/observe.rs).
    edge: bool,
    /// This handle was polled while its task ran: only then can it have been what a task
    /// was suspended on, or been passed a request (task/cancel.rs, rule 6).
    awaited: bool,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves a `T` out of the task (needs `T: Send`) and otherwise uses
// the atomic state word.
unsafe impl<T: Send> Send for Task<T> {}
// SAFETY: `&Task<T>` gives access to no `T` at all (only id, name, done), so sharing is fine.
unsafe impl<T> Sync for Task<T> {}

impl<T> Unpin for Task<T> {}

impl<T> Task<T> {
    /// # Safety
    /// `raw` is a task whose output type is `T`, and the caller transfers the reference
    /// (and `JOIN_INTEREST`) reserved for the handle.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Task<T> {
        Task {
            raw,
            taken: false,
            kept: ManuallyDrop::new(None),
            edge: false,
            awaited: false,
            _output: PhantomData,
        }
    }

    /// The task's id: unique for the life of the process (rule T1).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let a = rt.spawn(async {});
    /// let b = rt.spawn(async {});
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.raw.id()
    }

    /// The task's name: the one given at spawn, else `Task-<id>` (rule T1).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = aioloop::task::Builder::new().name("fetch").spawn_on(rt.handle(), async {});
    /// assert_eq!(t.name(), "fetch");
    /// ```
    pub fn name(&self) -> String {
        self.task_ref().name()
    }

    /// `true` once the task has finished (value, panic or cancellation): asyncio's `done()`.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(async {});
    /// while !t.done() { std::thread::yield_now(); }
    /// assert!(rt.block_on(t).is_ok());
    /// ```
    pub fn done(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The loop (runtime) that owns the task.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.spawn(async {}).loop_id(), rt.handle().id());
    /// ```
    pub fn loop_id(&self) -> LoopId {
        self.raw.loop_id()
    }

    /// A [`TaskRef`] to this task, the handle the task protocol and `all_tasks()` use.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert!(rt.all_tasks().contains(&t.task_ref()));
    /// ```
    pub fn task_ref(&self) -> TaskRef {
        self.raw.task_ref()
    }

    /// asyncio's `cancel(msg)`: asks the task to stop. The request is delivered at the task's
    /// next suspension point, where a [`catch_cancel`](crate::catch_cancel) scope may catch
    /// it; otherwise the task ends cancelled. Returns `false` if the task is already done;
    /// `true` otherwise, also when called again (each call counts, see
    /// [`cancelling`](Task::cancelling)). A task cancelled before its first step never runs.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert!(t.cancel(Some("bye")));
    /// let err = rt.block_on(t).unwrap_err();
    /// assert_eq!(err.to_string(), "CancelledError: bye");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.raw.cancel(msg.map(Into::into))
    }

    /// asyncio's `cancelling()`: cancellation requests not yet withdrawn by `uncancel()`.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// t.cancel(None);
    /// t.cancel(None);
    /// assert!(t.cancelling() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancelling(&self) -> u32 {
        self.raw.cancelling()
    }

    /// asyncio's `uncancel()`: withdraws one request and returns how many remain; at zero an
    /// undelivered request is withdrawn too (rule T7).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert_eq!(t.uncancel(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn uncancel(&self) -> u32 {
        self.raw.uncancel()
    }

    /// asyncio's `cancelled()`: the task is done and ended cancelled.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// let r = t.task_ref();
    /// t.cancel(None);
    /// assert!(rt.block_on(t).unwrap_err().is_cancelled());
    /// assert!(r.cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.raw.cancelled()
    }

    /// Renames the task (asyncio's `set_name`, rule T1).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(std::future::pending::<()>());
    /// t.set_name("poller");
    /// assert_eq!(t.name(), "poller");
    /// ```
    pub fn set_name(&self, name: impl Into<Arc<str>>) {
        self.raw.set_name(name.into());
    }

    /// asyncio's `add_done_callback(fn)` (rule F5): `f` runs once the task is done — never
    /// synchronously: it is queued with `call_soon` on the task's loop, after the callbacks
    /// registered before it, and runs in the context current now (T12). On a done task it
    /// is queued at once. The same `Arc` may be registered more than once.
    ///
    /// ```
    /// use std::sync::{mpsc, Arc};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let t = rt.spawn(async { 7 });
    /// t.add_done_callback(Arc::new(move |task: &aioloop::TaskRef| {
    ///     tx.lock().unwrap().send(task.done()).unwrap();
    /// }));
    /// assert!(rx.recv().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_done_callback<F>(&self, f: Arc<F>)
    where
        F: Fn(&TaskRef) + Send + Sync + 'static,
    {
        self.raw.add_user_callback(f);
    }

    /// asyncio's `remove_done_callback(fn)`: removes every registration of `f` (the same
    /// `Arc`) not yet run, and returns how many there were.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(std::future::pending::<()>());
    /// let cb = Arc::new(|_: &aioloop::TaskRef| {});
    /// t.add_done_callback(cb.clone());
    /// t.add_done_callback(cb.clone());
    /// assert_eq!(t.remove_done_callback(&cb), 2);
    /// ```
    pub fn remove_done_callback<F>(&self, f: &Arc<F>) -> usize
    where
        F: Fn(&TaskRef) + Send + Sync + 'static,
    {
        self.raw.remove_done(Arc::as_ptr(f) as *const ())
    }

    /// asyncio's `result()`, without waiting: the outcome of a done task, moved out of it.
    ///
    /// # Errors
    /// [`InvalidStateError`] "Result is not ready." while the task runs, and "Result has
    /// already been retrieved." once the outcome was taken (by this call or an `.await`).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut t = rt.spawn(async { 2 });
    /// while !t.done() { std::thread::yield_now(); }
    /// assert_eq!(t.result().unwrap().unwrap(), 2);
    /// assert!(t.result().is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn result(&mut self) -> Result<Result<T, TaskError>, InvalidStateError> {
        if self.taken {
            return Err(InvalidStateError::new("Result has already been retrieved."));
        }
        if !self.done() {
            return Err(InvalidStateError::new("Result is not ready."));
        }
        // The task is complete, so the output is read now and the waker is not stored.
        match self.read_output(std::task::Waker::noop()) {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => Err(InvalidStateError::new("Result is not ready.")),
        }
    }

    /// The output if the task is complete (then marked taken), else `Pending` with `waker`
    /// stored to be woken on completion.
    fn read_output(&mut self, waker: &std::task::Waker) -> Poll<Result<T, TaskError>> {
        if let Some(kept) = self.kept.take() {
            self.taken = true;
            return Poll::Ready(*kept);
        }
        let mut out: Poll<Result<T, TaskError>> = Poll::Pending;
        // SAFETY: `out` has the task's output type, and we are its join handle.
        unsafe {
            self.raw
                .try_read_output(&mut out as *mut _ as *mut (), waker)
        };
        self.taken = out.is_ready();
        out
    }

    /// asyncio's `exception()`: the panic a done task ended with (`Ok(Some(..))`), or
    /// `Ok(None)` if it finished with a value. Only looks: the outcome stays in the handle
    /// for a later [`result`](Task::result), [`try_result`](Task::try_result) or `.await`.
    /// Reading it counts as retrieving the panic (no "never retrieved" report, rule T8).
    ///
    /// # Errors
    /// As asyncio raises them: [`TaskResultError::Cancelled`] for a cancelled task,
    /// [`TaskResultError::InvalidState`] "Exception is not set." while it runs, and "Result
    /// has already been retrieved." once the outcome was taken.
    ///
    /// ```
    /// use aioloop::TaskResultError;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut ok = rt.spawn(async { 1 });
    /// let mut bad = rt.spawn(async { panic!("boom") });
    /// let mut gone = rt.spawn(std::future::pending::<()>());
    /// assert!(matches!(gone.exception(), Err(TaskResultError::InvalidState(_)))); // running
    /// gone.cancel(Some("bye"));
    /// while !(ok.done() && bad.done() && gone.done()) { std::thread::yield_now(); }
    /// assert!(ok.exception().unwrap().is_none());
    /// assert_eq!(bad.exception().unwrap().unwrap().message(), Some("boom"));
    /// assert!(matches!(gone.exception(), Err(TaskResultError::Cancelled(_))));
    /// assert_eq!(ok.try_result().unwrap(), 1); // the value is still there
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn exception(&mut self) -> Result<Option<&PanicError>, TaskResultError> {
        if self.kept.is_none() {
            if self.taken {
                return Err(InvalidStateError::new("Result has already been retrieved.").into());
            }
            if !self.done() {
                return Err(InvalidStateError::EXCEPTION.into());
            }
            match self.read_output(std::task::Waker::noop()) {
                Poll::Ready(r) => {
                    *self.kept = Some(Box::new(r));
                    self.taken = false;
                }
                Poll::Pending => return Err(InvalidStateError::EXCEPTION.into()),
            }
        }
        match self.kept.as_deref() {
            Some(Ok(_)) => Ok(None),
            Some(Err(TaskError::Panicked(p))) => Ok(Some(p)),
            Some(Err(TaskError::Cancelled(c))) => Err(TaskResultError::Cancelled(c.clone())),
            None => unreachable!("kept was filled above"),
        }
    }

    /// The value of a done task in one call: asyncio's `task.result()`, with the three
    /// ways it can raise folded into one error (`?` works in a function returning
    /// `Result<_, TaskResultError>` or a boxed error).
    ///
    /// # Errors
    /// [`TaskResultError::Cancelled`], [`TaskResultError::Panicked`], or
    /// [`TaskResultError::InvalidState`] while the task runs ("Result is not ready.") or once
    /// its outcome was taken ("Result has already been retrieved.").
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut t = rt.spawn(async { 2 });
    /// while !t.done() { std::thread::yield_now(); }
    /// assert_eq!(t.try_result()?, 2);
    /// assert!(t.try_result().is_err()); // already retrieved
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_result(&mut self) -> Result<T, TaskResultError> {
        Ok(self.result()??)
    }

    /// The context the task runs in (asyncio's `task.get_context()`, rule T12): a copy of
    /// it, as the task left it at its last suspension (or end). See
    /// [`TaskRef::get_context`].
    ///
    /// ```
    /// use aioloop::contextvars::{copy_context, ContextVar};
    /// static USER: ContextVar<&str> = ContextVar::new("user");
    ///
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut ctx = copy_context();
    /// ctx.run(|| USER.set("alice"));
    /// let t = aioloop::task::Builder::new().context(ctx).spawn_on(rt.handle(), async {
    ///     USER.set("bob");
    /// });
    /// while !t.done() { std::thread::yield_now(); }
    /// assert_eq!(t.get_context().run(|| USER.get()), Some("bob"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_context(&self) -> crate::contextvars::Context {
        self.task_ref().get_context()
    }

    /// Drops the handle, leaving the task running (same as `drop(task)`, named for clarity).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// rt.spawn(async { /* runs to completion on its own */ }).detach();
    /// ```
    pub fn detach(self) {
        drop(self)
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.taken {
            panic!("`Task` polled after its result was taken");
        }
        if !self.done() {
            self.awaited = true;
            let awaiter = super::current::with_builtin(|cur| cur);
            // Rule F7: a task awaiting its own handle would wait forever; asyncio raises
            // RuntimeError in it, the Rust form of which is a panic (the task ends with it).
            if awaiter == Some(self.raw) {
                panic!("Task cannot await on itself: {}", self.task_ref());
            }
            // O5: the await edge, for call graphs (task/observe.rs).
            if let Some(awaiter) = awaiter {
                super::observe::awaiting_task(awaiter, self.raw);
                self.edge = true;
            }
            // Rule T3: a cancelled awaiter cancels what it awaits (task/cancel.rs, rule 6).
            super::cancel::propagate_to(self.raw);
        }
        let key = super::cancel::task_key(self.raw);
        let out = self.read_output(cx.waker());
        let Poll::Ready(res) = out else {
            let raw = self.raw;
            super::cancel::note_waiter(|| super::cancel::Waiter::Task(raw.task_ref()));
            return Poll::Pending;
        };
        // Rule T3 (task/cancel.rs, rule 6): the awaiter's request was passed on to this task,
        // which ended cancelled — or finished before the request reached it (the request
        // found it in its last poll, too late to count): the cancellation is raised at this
        // await, in the awaiter. Decided on the outcome already read (checking before the
        // read raced a completion landing in between, and the request was lost); the outcome
        // stays in the handle, unread.
        let raise = match &res {
            Err(TaskError::Cancelled(_)) => true,
            Ok(_) => self.raw.finished_before_cancel(),
            Err(_) => false,
        };
        if raise && super::cancel::raise_if_forwarded(key) {
            *self.kept = Some(Box::new(res));
            self.taken = false;
            return Poll::Pending;
        }
        // The task ended otherwise (a value: it suppressed a request passed on to it).
        super::cancel::answered(key);
        if self.edge {
            self.forget_edge();
        }
        Poll::Ready(res)
    }
}

impl<T> Task<T> {
    /// The task behind this handle (for the crate's await edges, task/observe.rs).
    pub(crate) fn raw_task(&self) -> RawTask {
        self.raw
    }

    /// The await this handle recorded is over (O5): the current task, if it is the awaiter,
    /// forgets the edge.
    fn forget_edge(&mut self) {
        self.edge = false;
        let word = super::observe::join_word(self.raw);
        super::current::with_builtin(|cur| {
            if let Some(cur) = cur {
                super::observe::done_awaiting(cur, word);
            }
        });
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if self.edge {
            self.forget_edge();
        }
        if self.awaited && !self.taken && self.kept.is_none() {
            // Rule T3: dropped unread by an awaiter whose request was passed on to this task.
            // (A handle never polled while its task ran was neither noted as a waiter nor
            // passed a request: both happen in that branch of `poll`.)
            super::cancel::abandoned(super::cancel::task_key(self.raw));
        }
        // SAFETY: we are the handle and give up its reference exactly once.
        unsafe { self.raw.drop_join_handle() }
        // Last, as the field's drop glue would: a panic in the output's destructor leaks
        // nothing of the task's.
        if self.kept.is_some() {
            drop(self.kept.take());
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.task_ref(), f)
    }
}
