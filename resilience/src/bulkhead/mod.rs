//! Bulkheads: at most `max_concurrent` calls at once, a bounded wait for a
//! slot, and permits held until the response body ends.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::{Bulkhead, Error};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bulkhead = Bulkhead::builder("reports")
//!     .max_concurrent(1)
//!     .max_wait(Duration::ZERO) // reject at once when full
//!     .build()
//!     .unwrap();
//! let held = bulkhead.try_acquire().unwrap();
//! let r = bulkhead.call(async { Ok::<_, std::io::Error>(()) }).await;
//! assert!(matches!(r, Err(Error::Full(_))));
//! drop(held);
//! assert!(bulkhead.call(async { Ok::<_, std::io::Error>(()) }).await.is_ok());
//! # }
//! ```
//!
//! The tower service acquires in `call` (an uncontended acquire is one atomic
//! operation, with no allocation); when the bulkhead is full the response
//! future waits up to the max wait for a slot and only then calls the inner
//! service (a clone of the ready service is left in its place, as axum does).
//! Acquiring in `poll_ready` would make a keyed bulkhead impossible (the key is
//! in the request) and would let a wait outlive the max wait.
//!
//! Waiting calls queue first in, first out. A wait allocates nothing and arms
//! no timer of its own: one background task per bulkhead (spawned on the
//! tokio runtime of the first call that waits, again on another runtime if
//! that one shuts down) rejects the calls whose max wait is over. Outside a
//! tokio runtime (or in one without timers) the max wait cannot be timed: a
//! call that finds the bulkhead full is rejected at once.
//!
//! Metrics (names in [`names`](crate::names), an optional prefix):
//! `telltale_bulkhead_available_concurrent_calls{name}`,
//! `telltale_bulkhead_max_allowed_concurrent_calls{name}`,
//! `telltale_bulkhead_rejected_calls_total{name}`, and the histogram
//! `telltale_bulkhead_wait_duration_seconds{name}` of every admitted call's
//! wait for a slot (0 when admitted at once; rejected calls are counted by
//! the rejected counter, not here). A wait is timed from the call's arrival
//! to its resumption with the slot, on `quanta`'s clock (the CPU's time-stamp
//! counter, calibrated against the OS clock, which it falls back to where the
//! counter is unreliable; cheaper to read than the OS clock). A rejection records
//! `resilience.bulkhead.name` and `resilience.rejected` on the current span
//! (when declared) and emits a DEBUG event (target `telltale::bulkhead`).

mod config;
pub mod env;
mod future;
mod layer;
mod service;
mod slots;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use telltale_core::{BodyEnd, OnEnd};
use tokio::sync::broadcast;

pub use config::BulkheadBuilder;
use future::Wait;
pub use future::{Call, ResponseBody, ResponseFuture};
pub use layer::BulkheadLayer;
pub use service::BulkheadService;
pub(crate) use service::call_through;

use crate::error::BulkheadFull;

struct BulkheadMetrics {
    available: Gauge,
    rejected: Counter,
    wait: Histogram,
}

/// A rejection, as handed to [`Bulkhead::subscribe`]rs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call was rejected.
    Rejected(BulkheadFull),
}

/// The state shared by the clones of one bulkhead (and its permits).
pub(crate) struct Shared {
    events: broadcast::Sender<BulkheadEvent>,
    name: Arc<str>,
    // Given back by `BulkheadPermit`'s drop: a permit holds one `Arc` (the
    // bulkhead's).
    slots: slots::Slots,
    max_concurrent: usize,
    max_wait: Duration,
    metrics: BulkheadMetrics,
    stats: stats::Stats,
}

/// A bulkhead: a cheap-to-clone handle on a shared set of slots.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Shared>,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("available", &self.available())
            .field("max_wait", &self.inner.max_wait)
            .finish()
    }
}

/// A slot in a [`Bulkhead`], released when dropped.
pub struct BulkheadPermit {
    inner: Arc<Shared>,
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit")
            .field("bulkhead", &self.inner.name)
            .finish()
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.inner.slots.release();
        self.inner.metrics.available.increment(1.0);
    }
}

impl OnEnd for BulkheadPermit {
    fn on_end(self, _end: BodyEnd<'_>) {
        drop(self);
    }
}

impl Bulkhead {
    crate::macros::env_constructors!(BulkheadBuilder, "TELLTALE_BULKHEAD_*");

    /// An unlimited bulkhead (2^61 slots: it never rejects) with no metric
    /// series registered, so that a preset can hold a bulkhead in every
    /// position and only the configured ones show in the exposition.
    ///
    /// ```
    /// use telltale_resilience::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::unlimited("server");
    /// assert!(bulkhead.try_acquire().is_ok());
    /// ```
    pub fn unlimited(name: impl Into<Arc<str>>) -> Self {
        crate::names::unregistered(|| {
            Self::builder(name)
                .max_concurrent(slots::MAX_PERMITS)
                .build()
                .expect("2^61 slots are valid")
        })
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Calls allowed at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The max wait for a slot.
    pub fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    /// Subscribes to rejections (64 buffered per subscriber before it lags).
    pub fn subscribe(&self) -> broadcast::Receiver<BulkheadEvent> {
        self.inner.events.subscribe()
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        self.inner.slots.available()
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match self.try_acquire_quiet() {
            Some(p) => Ok(p),
            None => Err(self.inner.reject(Duration::ZERO)),
        }
    }

    pub(crate) fn try_acquire_quiet(&self) -> Option<BulkheadPermit> {
        if !self.inner.slots.try_acquire() {
            return None;
        }
        // Admitted at once: a wait of 0, so the histogram counts every
        // admitted call.
        self.inner.metrics.wait.record(0.0);
        Some(self.inner.wrap())
    }

    /// Takes a slot, waiting up to the max wait.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if let Some(p) = self.try_acquire_quiet() {
            return Ok(p);
        }
        if self.inner.max_wait.is_zero() {
            return Err(self.inner.reject(Duration::ZERO));
        }
        self.wait().await
    }

    /// The slow path: wait up to the max wait (not zero) for a slot.
    pub(crate) fn wait(&self) -> Wait {
        Wait::new(self.inner.clone())
    }

    /// Runs `fut` holding a slot (waiting up to the max wait for one); the slot
    /// is released when `fut` finishes or is dropped.
    pub fn call<F, T, E>(&self, fut: F) -> Call<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<telltale_core::BoxError>,
    {
        Call::new(self.clone(), fut)
    }

    /// A tower layer sharing this bulkhead's slots.
    pub fn layer(&self) -> BulkheadLayer {
        BulkheadLayer::new(self.clone())
    }
}

impl Shared {
    /// Wraps a permit already taken from the slots.
    fn wrap(self: &Arc<Self>) -> BulkheadPermit {
        Self::wrap_owned(self.clone())
    }

    /// Like [`wrap`](Self::wrap), with the permit's `Arc` given.
    fn wrap_owned(self: Arc<Self>) -> BulkheadPermit {
        self.metrics.available.decrement(1.0);
        BulkheadPermit { inner: self }
    }

    fn reject(&self, waited: Duration) -> BulkheadFull {
        self.stats.rejected();
        self.metrics.rejected.increment(1);
        let span = tracing::Span::current();
        span.record("resilience.bulkhead.name", &*self.name);
        span.record("resilience.rejected", true);
        span.record(
            "resilience.bulkhead.waited_ms",
            u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        );
        tracing::debug!(
            target: "telltale::bulkhead",
            bulkhead = %self.name,
            max_concurrent = self.max_concurrent,
            waited_ms = waited.as_millis() as u64,
            "bulkhead full"
        );
        let full = BulkheadFull {
            name: self.name.clone(),
            max_concurrent: self.max_concurrent,
            waited,
        };
        let _ = self.events.send(BulkheadEvent::Rejected(full.clone()));
        full
    }
}
