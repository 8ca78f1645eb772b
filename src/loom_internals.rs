//! loom internals
