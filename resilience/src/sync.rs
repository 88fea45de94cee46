//! Atomics, from loom when model-checking the unit tests (`--cfg loom`; loom
//! is a dev-dependency, so only the crate's own test build uses it).

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
