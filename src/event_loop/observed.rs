//! Running one ready item with observation on (debug mode, task tracking, or the
//! `tracing` feature): the loop's one hook into the poll path for inspection.
//!
//! `LoopCore::run_once` calls [`run`] instead of `LoopCore::run` when its loop observes
//! (decided once per batch); otherwise nothing here runs. Around the item it
//! - updates a tracked task's record (poll count, last poll, worker: task/observe.rs, O4);
//! - enters the task's tracing span (feature `tracing`, O8);
//! - in debug mode, times the item and reports one that held the loop longer than the
//!   loop's `slow_callback_duration` (asyncio's default: 100 ms) to the exception handler,
//!   with the task (its name) and its creation site (rule O6).

use std::time::Instant;

use super::callback::Runnable;
use super::core::LoopCore;
use super::exception::ExceptionContext;
use crate::task::observe;

/// Runs `item` on `core` as `LoopCore::run` does, observed.
pub(crate) fn run(core: &LoopCore, item: Runnable) {
    let debug = core.exceptions.debug();
    let mut subject = None;
    let mut site = None;
    #[cfg(feature = "tracing")]
    let mut span = None;
    if let Runnable::Task(t) = &item {
        let raw = t.raw();
        site = observe::on_poll(raw, core.stats.index);
        #[cfg(feature = "tracing")]
        {
            span = observe::span_of(raw);
        }
        if debug {
            // A reference of our own: the poll may complete and free the task.
            subject = Some(Subject::Task(raw.task_ref()));
        }
    } else if let (Runnable::Callback(h), true) = (&item, debug) {
        subject = Some(Subject::Callback(h.clone()));
    }
    #[cfg(feature = "tracing")]
    let _entered = span.as_ref().map(tracing::Span::enter);
    let start = debug.then(Instant::now);
    core.run(item);
    let (Some(start), Some(subject)) = (start, subject) else {
        return;
    };
    let took = start.elapsed();
    if took < core.exceptions.slow_callback_duration() {
        return;
    }
    let secs = took.as_secs_f64();
    let ctx = match subject {
        Subject::Task(t) => {
            let created = site.map_or_else(String::new, |s| format!(" (created at {s})"));
            let mut ctx =
                ExceptionContext::new(format!("Executing {t}{created} took {secs:.3} seconds"));
            ctx.task = Some(t);
            ctx
        }
        Subject::Callback(h) => {
            let mut ctx = ExceptionContext::new(format!("Executing {h:?} took {secs:.3} seconds"));
            ctx.handle = Some(h);
            ctx
        }
    };
    core.exceptions.call(ctx);
}

enum Subject {
    Task(crate::task::TaskRef),
    Callback(super::callback::Handle),
}
