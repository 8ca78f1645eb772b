//! The fault suite (issue 8): what outside fault probes tried against the runtime, each
//! with its asserted outcome. CI also runs it under AddressSanitizer and LeakSanitizer
//! (`.ci/run`, stage `asan`).
//!
//! - `deep_nesting`: 1,000 nested task groups on a default runtime (issue 8, item 4).

#[path = "../common/mod.rs"]
mod common;

mod deep_nesting;
