//! Task factories (rule T10): a loop-wide hook every `create_task` goes through.
//!
//! asyncio's factory receives the coroutine and returns the task object. A Rust future's
//! type is generic, so a factory cannot build the task itself; what it can do — and what
//! asyncio's factories are used for in practice (`eager_task_factory`, naming, policy) — is
//! decide the options each task is created with. A factory here maps the
//! [`Builder`] of every task created on its loop to the one actually used.

use std::fmt;
use std::sync::Arc;

use super::spawn::SpawnOpts;
use super::Builder;

/// A loop's task factory: sees (and may change) the options of every task created on the
/// loop. Install it with [`runtime::Builder::task_factory`](crate::runtime::Builder::task_factory)
/// or [`LocalLoop::set_task_factory`](crate::LocalLoop::set_task_factory).
///
/// ```
/// use aioloop::task::TaskFactory;
///
/// // Name every unnamed task after the service.
/// let factory = TaskFactory::new(|b| match b.get_name() {
///     Some(_) => b,
///     None => b.name("svc-task"),
/// });
/// let rt = aioloop::Runtime::builder().workers(1).task_factory(factory).build()?;
/// let t = rt.spawn(async {});
/// assert_eq!(t.name(), "svc-task");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskFactory(Arc<dyn Fn(Builder) -> Builder + Send + Sync + 'static>);

impl TaskFactory {
    /// A factory from a function of the task's options.
    ///
    /// ```
    /// let _f = aioloop::task::TaskFactory::new(|b| b.eager(true));
    /// ```
    pub fn new(f: impl Fn(Builder) -> Builder + Send + Sync + 'static) -> TaskFactory {
        TaskFactory(Arc::new(f))
    }

    pub(crate) fn apply(&self, opts: SpawnOpts) -> SpawnOpts {
        let b = (self.0)(Builder {
            name: opts.name,
            eager: opts.eager,
            context: opts.context,
        });
        SpawnOpts {
            name: b.name,
            eager: b.eager,
            hook: opts.hook,
            context: b.context,
        }
    }
}

impl fmt::Debug for TaskFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskFactory")
    }
}

/// asyncio's `eager_task_factory`: every task created on the loop starts eagerly (T9),
/// unless its spawner chose otherwise with [`Builder::eager`]`(false)` (asyncio 3.14:
/// `create_task(..., eager_start=False)` overrides the factory).
///
/// ```
/// let rt = aioloop::Runtime::builder()
///     .workers(1)
///     .task_factory(aioloop::task::eager_task_factory())
///     .build()?;
/// rt.block_on(async {
///     let t = aioloop::create_task(async { 1 });
///     assert!(t.done()); // ran to completion inside create_task
///     let gate = aioloop::create_future::<()>();
///     let g = gate.clone();
///     let lazy = aioloop::task::Builder::new()
///         .eager(false)
///         .spawn(async move { g.await.ok(); 2 });
///     assert!(!lazy.done()); // the explicit choice wins: queued, not run to its await
///     gate.set_result(()).unwrap();
///     assert_eq!(lazy.await.unwrap(), 2);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn eager_task_factory() -> TaskFactory {
    TaskFactory::new(|b| match b.get_eager() {
        Some(_) => b,
        None => b.eager(true),
    })
}
