//! The loop methods that every kind of loop answers the same way — asyncio's `time`,
//! `set_debug`/`get_debug`, the exception handler's slot, `all_tasks` — written once and
//! stamped on [`LocalLoop`](crate::LocalLoop) and the runtime's [`Handle`](crate::Handle)
//! by [`shared_loop_api!`]. Each type has a `shared` field whose target implements
//! [`Loop`](super::context::Loop); that is all the methods use.

/// Expands to the shared loop methods inside an `impl` block. `$setup` is the doc-test
/// code that binds `lp` to a value of the type (and `?` may be used in it).
macro_rules! shared_loop_api {
    ($setup:literal) => {
        /// The loop clock in seconds (asyncio's `loop.time()`): monotonic, shared by every
        /// loop in the process.
        ///
        #[doc = concat!("```\n", $setup, "\nassert!(lp.time() >= 0.0);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn time(&self) -> f64 {
            $crate::event_loop::clock::time()
        }

        /// asyncio's `loop.set_debug`: in debug mode, tasks destroyed while pending are
        /// reported to the exception handler (rule T11).
        ///
        #[doc = concat!("```\n", $setup, "\nlp.set_debug(true);\nassert!(lp.get_debug());\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn set_debug(&self, on: bool) {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).set_debug(on)
        }

        /// asyncio's `loop.get_debug`.
        ///
        #[doc = concat!("```\n", $setup, "\nassert!(!lp.get_debug());\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn get_debug(&self) -> bool {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).debug()
        }

        /// asyncio's `loop.set_exception_handler` (`None`: the default, which writes to
        /// stderr). Rules S8, S9.
        ///
        #[doc = concat!("```\n", $setup, "\nlp.set_exception_handler(Some(std::sync::Arc::new(|_ctx: &aioloop::ExceptionContext| {})));\nassert!(lp.exception_handler().is_some());\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn set_exception_handler(&self, handler: Option<$crate::ExceptionHandler>) {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).set(handler)
        }

        /// The custom exception handler, if one is set (asyncio's
        /// `loop.get_exception_handler()`).
        ///
        #[doc = concat!("```\n", $setup, "\nassert!(lp.exception_handler().is_none());\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn exception_handler(&self) -> Option<$crate::ExceptionHandler> {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).get()
        }

        /// asyncio's `loop.slow_callback_duration` (default 100 ms): in debug mode, a task
        /// poll or a callback that holds the loop longer is reported to the exception
        /// handler with the task's name and creation site (rule O6).
        ///
        #[doc = concat!("```\n", $setup, "\nlp.set_slow_callback_duration(std::time::Duration::from_millis(20));\nassert_eq!(lp.slow_callback_duration().as_millis(), 20);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn set_slow_callback_duration(&self, limit: std::time::Duration) {
            $crate::event_loop::context::Loop::exceptions(&*self.shared)
                .set_slow_callback_duration(limit)
        }

        /// The current `slow_callback_duration` (see
        /// [`set_slow_callback_duration`](Self::set_slow_callback_duration)).
        ///
        #[doc = concat!("```\n", $setup, "\nassert_eq!(lp.slow_callback_duration().as_millis(), 100);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn slow_callback_duration(&self) -> std::time::Duration {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).slow_callback_duration()
        }

        /// Task tracking (rule O4): tasks created from now on record their creation site,
        /// poll count, age and last poll for [`dump`](Self::dump) and call graphs. On in
        /// debug mode whatever this says; off by default, when it costs nothing.
        ///
        #[doc = concat!("```\n", $setup, "\nlp.set_track_tasks(true);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn set_track_tasks(&self, on: bool) {
            $crate::event_loop::context::Loop::exceptions(&*self.shared).set_track_tasks(on)
        }

        /// The unfinished, registered tasks of this loop (rule L7), including a running
        /// main task; from any thread.
        ///
        #[doc = concat!("```\n", $setup, "\nassert!(lp.all_tasks().is_empty());\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn all_tasks(&self) -> Vec<$crate::TaskRef> {
            $crate::task::all_tasks_of($crate::event_loop::context::Loop::id(&*self.shared))
        }
    };
}

pub(crate) use shared_loop_api;
