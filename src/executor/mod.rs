//! asyncio's executor API on aioloop's loops: [`to_thread`](crate::to_thread),
//! `run_in_executor` and `shutdown_default_executor` on [`LocalLoop`](crate::LocalLoop)
//! and the runtime's [`Handle`](crate::Handle), and the [`Executor`](crate::Executor)
//! trait for a user's own executor. The default executor is the loop's blocking pool
//! (`blocking`, rules B1–B6).
//!
//! Owns: nothing but the glue (context copy, submission, waiting for the pool's threads).
//! May import: everything below the feature layer, and `timeout`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::blocking::{self, Blocking, ExecutorError, Pool};
pub use crate::blocking::{Executor, ExecutorJob};
use crate::error::NoRunningLoop;
use crate::event_loop::context;
use crate::{Handle, LocalLoop};

/// Queues `f` on `pool`, or on the user's executor that replaced it as the loop's default
/// (rule B7); a refused submission gives an already-failed future.
pub(crate) fn submit<F, T>(pool: &Pool, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(ex) = pool.replacement() {
        return run_on(&*ex, f);
    }
    let (job, fut) = blocking::job(f);
    match pool.submit(job) {
        Ok(()) => fut,
        Err((job, e)) => {
            drop(job);
            drop(fut);
            Blocking::failed(e)
        }
    }
}

/// Hands `f` to a user's executor.
fn run_on<F, T>(ex: &dyn Executor, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, fut) = blocking::job(f);
    match ex.execute(job) {
        Ok(()) => fut,
        Err(e) => {
            drop(fut);
            Blocking::failed(e)
        }
    }
}

/// Hands `f` to `executor`, or to the loop's default executor (`pool`, or its
/// replacement) for `None`.
pub(crate) fn run_in<F, T>(pool: &Pool, executor: Option<&dyn Executor>, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match executor {
        Some(ex) => run_on(ex, f),
        None => submit(pool, f),
    }
}

/// asyncio's `asyncio.to_thread(func)`: runs `f` on the running loop's blocking pool (its
/// default executor) inside a copy of the caller's context (`contextvars.copy_context().run`),
/// and gives its value. Like asyncio's coroutine, nothing happens until the future is first
/// polled: the context is copied and the job queued then, on the loop polling it.
///
/// Cancelling the task that awaits it does not interrupt `f` (threads cannot be
/// interrupted); its value is dropped when it arrives. A panic in `f` is caught and comes
/// back as [`ExecutorError::Panicked`]; the pool thread keeps serving.
///
/// Polled outside a running loop it fails with [`ExecutorError::NoRunningLoop`].
///
/// ```
/// use aioloop::contextvars::ContextVar;
/// static REQUEST: ContextVar<u32> = ContextVar::new("request");
///
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let seen = rt.block_on(async {
///     REQUEST.set(7);
///     aioloop::to_thread(|| REQUEST.get()).await // the copy travels to the pool thread
/// });
/// assert_eq!(seen.unwrap(), Some(7));
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn to_thread<F, T>(f: F) -> Result<T, ExecutorError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let ctx = crate::contextvars::copy_context();
    let job = context::with_current_owner(|owner| match owner {
        Some(l) => submit(l.blocking_pool(), move || {
            let mut ctx = ctx;
            ctx.run(f)
        }),
        None => Blocking::failed(ExecutorError::NoRunningLoop(NoRunningLoop)),
    });
    job.await
}

/// Waits until every thread of a shut-down pool has exited.
struct Exited<'a>(&'a Pool);

impl Future for Exited<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.poll_exited(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// asyncio's `shutdown_default_executor(timeout)` on `pool` (and, through the pool's last
/// job, on the user's executor that replaced it: B7).
pub(crate) async fn shutdown_pool(
    pool: &Pool,
    timeout: Option<Duration>,
) -> Result<(), ExecutorError> {
    pool.shutdown(false);
    match timeout {
        None => {
            Exited(pool).await;
            Ok(())
        }
        Some(t) => crate::timeout(t, Exited(pool))
            .await
            .map_err(|_| ExecutorError::JoinTimeout(t)),
    }
}

/// Expands to the executor methods of a loop type with a `loop_ref()`.
/// `$setup` binds `lp`; `$open`/`$close` run an `async` block on that loop.
macro_rules! executor_loop_api {
    ($setup:literal, $open:literal, $close:literal) => {
        /// asyncio's `loop.run_in_executor(executor, func)`: runs `f` on `executor`, or on
        /// this loop's default executor (its blocking pool) for `None`, and gives a future
        /// of its value. The job is submitted at the call, as asyncio does; unlike
        /// [`to_thread`](crate::to_thread), the caller's context is not copied (neither
        /// does asyncio). A panic in `f` becomes [`ExecutorError::Panicked`]; after
        /// [`shutdown_default_executor`](Self::shutdown_default_executor) the default
        /// executor refuses with [`ExecutorError::Shutdown`] ("Executor shutdown has been
        /// called").
        ///
        #[doc = concat!("```\n", $setup, "\nlet v = ", $open, "lp.run_in_executor(None, || 40 + 2)", $close, ";\nassert_eq!(v.unwrap(), 42);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn run_in_executor<F, T>(
            &self,
            executor: Option<&dyn Executor>,
            f: F,
        ) -> Blocking<T>
        where
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            run_in(self.loop_ref().blocking_pool(), executor, f)
        }

        /// asyncio's `loop.set_default_executor(executor)`: from now on `run_in_executor(None,
        /// …)`, [`to_thread`](crate::to_thread) and host-name resolution hand their jobs to
        /// `executor` instead of this loop's blocking pool, and
        /// [`shutdown_default_executor`](Self::shutdown_default_executor) calls its
        /// [`Executor::shutdown`] and waits for it. Setting another replaces it.
        ///
        /// # Errors
        /// [`ExecutorError::Shutdown`] after `shutdown_default_executor` (asyncio accepts
        /// the executor there, but then refuses every job with that error).
        ///
        #[doc = concat!("```\nstruct Inline;\nimpl aioloop::Executor for Inline {\n    fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), aioloop::ExecutorError> {\n        job();\n        Ok(())\n    }\n}\n", $setup, "\nlp.set_default_executor(std::sync::Arc::new(Inline))?;\nlet here = std::thread::current().id();\nlet ran_on = ", $open, "lp.run_in_executor(None, || std::thread::current().id())", $close, ";\nassert_eq!(ran_on.unwrap(), here); // Inline ran it on the caller's thread\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn set_default_executor(
            &self,
            executor: std::sync::Arc<dyn Executor>,
        ) -> Result<(), ExecutorError> {
            self.loop_ref().blocking_pool().set_replacement(executor)
        }

        /// asyncio's `loop.shutdown_default_executor(timeout)`: the default executor
        /// refuses new jobs from now on, runs those already queued, and this waits until
        /// all its threads have exited — at most `timeout` (`None`: no limit). On timeout
        /// the jobs keep running and this returns [`ExecutorError::JoinTimeout`] (asyncio
        /// warns with the same words). Calling it again is harmless.
        ///
        /// # Errors
        /// [`ExecutorError::JoinTimeout`].
        ///
        #[doc = concat!("```\n", $setup, "\nlet r = ", $open, "async {\n    lp.run_in_executor(None, || ()).await.unwrap();\n    lp.shutdown_default_executor(None).await?;\n    Ok::<_, aioloop::ExecutorError>(lp.run_in_executor(None, || ()).await)\n}", $close, "?;\nassert!(matches!(r, Err(aioloop::ExecutorError::Shutdown)));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn shutdown_default_executor(
            &self,
            timeout: Option<Duration>,
        ) -> Result<(), ExecutorError> {
            let lp = self.loop_ref();
            shutdown_pool(lp.blocking_pool(), timeout).await
        }
    };
}

impl LocalLoop {
    executor_loop_api!(
        "let lp = aioloop::LocalLoop::new()?;",
        "lp.run_until_complete(",
        ")?"
    );
}

impl Handle {
    executor_loop_api!(
        "let rt = aioloop::Runtime::builder().workers(1).build()?;\nlet lp = rt.handle();",
        "rt.block_on(",
        ")"
    );
}
