//! `TaskHandle`: what `wait`, `as_completed` and `shield_task` accept, so that a caller can
//! let them watch a task without giving it up (CPython's test_shielded_timeout: after
//! `wait_for(shield(task), d)` times out, `await task` still works).

use crate::{SharedTask, Task, TaskRef};

mod sealed {
    pub trait Sealed {}
}

/// A handle to a built-in task that the combinators can watch: an owned [`Task<T>`], a
/// [`SharedTask<T>`], or a borrowed `&mut Task<T>` / `&Task<T>`, which leaves the task with the caller whatever
/// happens to the combinator (a timeout, a cancellation of the waiter). Watching goes
/// through a completion hook, never by awaiting the task, so it does not pass the
/// waiter's cancellation on to it (rule T3).
///
/// Sealed: implemented by the crate's task handles only.
///
/// ```
/// use aioloop::{wait, ReturnWhen, Runtime};
///
/// let rt = Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let mut a = aioloop::create_task(async { 1 });
///     let mut b = aioloop::create_task(async { 2 });
///     // Borrowed: `a` and `b` stay ours, whatever `wait` does.
///     wait(vec![&mut a, &mut b], None, ReturnWhen::AllCompleted).await.unwrap();
///     assert_eq!(a.try_result().unwrap() + b.try_result().unwrap(), 3);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait TaskHandle: sealed::Sealed {
    /// What the task produces.
    type Output;

    /// The task watched.
    ///
    /// ```
    /// use aioloop::TaskHandle;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(async {});
    /// assert_eq!(TaskHandle::task_ref(&&t).id(), t.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn task_ref(&self) -> TaskRef;

    /// `true` once the task has finished.
    ///
    /// ```
    /// use aioloop::TaskHandle;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert!(!TaskHandle::done(&&t));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn done(&self) -> bool;
}

/// Stamps the trait on each handle type, reading through the type's own methods.
macro_rules! task_handle {
    ($($ty:ty => $via:ident),* $(,)?) => {$(
        impl<T> sealed::Sealed for $ty {}

        impl<T> TaskHandle for $ty {
            type Output = T;
            fn task_ref(&self) -> TaskRef {
                $via::task_ref(self)
            }
            fn done(&self) -> bool {
                $via::done(self)
            }
        }
    )*};
}

task_handle!(
    Task<T> => Task,
    &Task<T> => Task,
    &mut Task<T> => Task,
    SharedTask<T> => SharedTask,
);
