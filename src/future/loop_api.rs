//! asyncio's `loop.create_future()` on each kind of loop. The methods live with
//! [`Future`] rather than with the loops: a loop names no feature above it (ARCHITECTURE.md,
//! layers).

use super::Future;
use crate::event_loop::{LocalLoop, LoopHandle};
use crate::runtime::Handle;

impl LocalLoop {
    /// asyncio's `loop.create_future()`: a [`Future`](crate::Future) bound to this loop
    /// (its done callbacks run on this thread, in the loop's iterations).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<&str>();
    /// let setter = fut.clone();
    /// lp.call_soon(move || setter.set_result("set").unwrap())?;
    /// assert_eq!(lp.run_until_complete(fut)?.unwrap(), "set");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_future<T: Send + 'static>(&self) -> Future<T> {
        Future::bound_to(self.loop_ref())
    }
}

impl LoopHandle {
    /// asyncio's `loop.create_future()`, from any thread: a [`Future`](crate::Future)
    /// bound to this loop (its done callbacks run on the loop's thread).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// let fut = std::thread::spawn(move || h.create_future::<u8>()).join().unwrap();
    /// assert_eq!(fut.loop_id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_future<T: Send + 'static>(&self) -> Future<T> {
        Future::bound_to(self.loop_ref())
    }
}

impl Handle {
    /// asyncio's `loop.create_future()`: a [`Future`] bound to this runtime
    /// (its done callbacks run on the runtime's workers), from any thread.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let fut = rt.handle().create_future::<u8>();
    /// let setter = fut.clone();
    /// rt.spawn(async move { setter.set_result(9).unwrap() });
    /// assert_eq!(rt.block_on(fut).unwrap(), 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_future<T: Send + 'static>(&self) -> Future<T> {
        Future::bound_to(self.loop_ref())
    }
}
