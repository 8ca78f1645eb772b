//! A user's executor: asyncio's `concurrent.futures.Executor` as a trait. It lives with the
//! pool because a loop's default executor may be one (`set_default_executor`, rule B7).

use super::ExecutorError;

/// A job handed to an [`Executor`]: run it once, on any thread. It catches its closure's
/// panic itself and delivers the outcome to the [`Blocking`](crate::Blocking) future
/// awaiting it; dropping it unrun completes that future with [`ExecutorError::Shutdown`].
///
/// ```
/// let job: aioloop::ExecutorJob = Box::new(|| println!("ran"));
/// job();
/// ```
pub type ExecutorJob = Box<dyn FnOnce() + Send + 'static>;

/// Something `run_in_executor` can hand jobs to besides the loop's own blocking pool:
/// asyncio's `concurrent.futures.Executor` (`submit`, `shutdown`). Pass one per call
/// (`run_in_executor(Some(&ex), f)`) or make it the loop's default executor
/// (`set_default_executor`).
///
/// ```
/// struct NewThreadEach;
/// impl aioloop::Executor for NewThreadEach {
///     fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), aioloop::ExecutorError> {
///         std::thread::spawn(job);
///         Ok(())
///     }
/// }
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let name = rt.block_on(rt.handle().run_in_executor(Some(&NewThreadEach), || {
///     std::thread::current().name().map(str::to_owned)
/// }));
/// assert_eq!(name.unwrap(), None); // an unnamed thread of our own
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Executor: Send + Sync {
    /// Runs `job` once, eventually, on some thread; an error if it never will (the job
    /// is dropped and the awaiter gets this error).
    ///
    /// ```
    /// use aioloop::Executor;
    /// struct Inline;
    /// impl Executor for Inline {
    ///     fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), aioloop::ExecutorError> {
    ///         job();
    ///         Ok(())
    ///     }
    /// }
    /// Inline.execute(Box::new(|| ())).unwrap();
    /// ```
    ///
    /// # Errors
    /// Whatever the executor refuses with; [`ExecutorError::Shutdown`] fits a shut-down
    /// executor.
    fn execute(&self, job: ExecutorJob) -> Result<(), ExecutorError>;

    /// asyncio's `executor.shutdown(wait=True)`: refuse new jobs and return once the
    /// accepted ones have finished. A loop's `shutdown_default_executor` calls it, on a
    /// blocking-pool thread, when this executor is the loop's default, and waits for it
    /// to return (within its timeout). The default does nothing: an executor that owns no
    /// threads has nothing to wait for.
    ///
    /// ```
    /// use aioloop::Executor;
    /// struct Inline;
    /// impl Executor for Inline {
    ///     fn execute(&self, job: aioloop::ExecutorJob) -> Result<(), aioloop::ExecutorError> {
    ///         job();
    ///         Ok(())
    ///     }
    /// }
    /// Inline.shutdown(); // nothing to wait for
    /// ```
    fn shutdown(&self) {}
}
