//! What a bulkhead counts for people looking at it: calls waiting for a
//! slot now and calls rejected since it was built.
//!
//! Both are touched off the fast path only: the waiting count when a call
//! finds the bulkhead full and waits, the rejection count when one is
//! rejected.
//!
//! ```
//! use telltale_resilience::Bulkhead;
//!
//! let bulkhead = Bulkhead::builder("reports").max_concurrent(1).build().unwrap();
//! let held = bulkhead.try_acquire().unwrap();
//! assert_eq!(bulkhead.in_use(), 1);
//! assert!(bulkhead.try_acquire().is_err());
//! assert_eq!(bulkhead.rejected(), 1);
//! assert_eq!(bulkhead.waiting(), 0);
//! drop(held);
//! assert_eq!(bulkhead.in_use(), 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Bulkhead;

/// The counters of one bulkhead.
#[derive(Debug, Default)]
pub(super) struct Stats {
    rejected: AtomicU64,
}

impl Stats {
    pub(super) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    /// Slots taken now (`max_concurrent - available`).
    pub fn in_use(&self) -> usize {
        self.inner
            .max_concurrent
            .saturating_sub(self.inner.slots.available())
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.inner.slots.waiting()
    }

    /// Calls rejected because the bulkhead was full, since it was built.
    pub fn rejected(&self) -> u64 {
        self.inner.stats.rejected.load(Ordering::Relaxed)
    }
}

impl Bulkhead {
    /// Whether two handles share the same slots.
    pub fn same_as(&self, other: &Bulkhead) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
