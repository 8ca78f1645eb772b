//! The fault suite (issue 8, item 6): what outside fault probes tried against the runtime,
//! each with its asserted outcome. CI also runs it under AddressSanitizer and
//! LeakSanitizer (`.ci/run`, stage `asan`), which is what turns "every future dropped
//! exactly once" and "nothing leaks" into checked claims.
//!
//! - `scale`: a million tasks; 100,000 tasks pending at runtime drop; a million cancels of
//!   one task.
//! - `panics`: destructors and done callbacks that panic (invariant 7, rule S8).
//! - `shutdown`: a waker kept past its runtime, spawning from a destructor during shutdown,
//!   dropping the runtime from inside one of its own tasks.
//! - `timers`: `Duration::MAX` and other unreachable deadlines (rule X6).
//! - `deep_nesting`: 1,000 nested task groups on a default runtime (issue 8, item 4).

#[path = "../common/mod.rs"]
mod common;

mod alloc_count;
mod deep_nesting;
mod panics;
mod scale;
mod shutdown;
mod support;
mod timers;
