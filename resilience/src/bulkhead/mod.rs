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
//! Metrics (prefix configurable): `bulkhead_available_concurrent_calls{name}`,
//! `bulkhead_max_allowed_concurrent_calls{name}`,
//! `bulkhead_rejected_calls_total{name}`, and the histogram
//! `bulkhead_wait_duration_seconds{name}` of calls that had to wait (admitted
//! or rejected; calls admitted at once are not recorded, which keeps the hot
//! path free of allocation in every exporter). A rejection records
//! `resilience.bulkhead.name` and `resilience.rejected` on the current span
//! (when declared) and emits a DEBUG event (target `telltale::bulkhead`).

mod future;
mod layer;
mod service;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use telltale_core::config::EnvSource;
use telltale_core::{BodyEnd, ConfigError, Env, OnEnd};
use tokio::sync::{Semaphore, broadcast};

use future::Wait;
pub use future::{BulkheadCall, ResponseBody, ResponseFuture};
pub use layer::BulkheadLayer;
pub use service::BulkheadService;
pub(crate) use service::call_through;

use crate::breaker::DEFAULT_PREFIX;
use crate::error::{BuildError, BulkheadFull};

/// Builds a [`Bulkhead`]. Every setter says its default.
#[derive(Clone, Debug)]
#[must_use]
pub struct BulkheadBuilder {
    name: Arc<str>,
    max_concurrent: usize,
    max_wait: Duration,
    prefix: Arc<str>,
}

impl BulkheadBuilder {
    pub(crate) fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    pub(crate) fn name_ref(&self) -> &Arc<str> {
        &self.name
    }

    /// Calls allowed at once (1 ..= 2^61). Defaults to 25.
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// Longest wait for a slot; zero rejects at once. Defaults to zero.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Prefix of every metric name. Defaults to `telltale_`.
    pub fn metric_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Reads `TELLTALE_BULKHEAD_MAX_CONCURRENT` and `TELLTALE_BULKHEAD_MAX_WAIT`
    /// from the process environment on top of this builder.
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.from_env_source(&Env::process(), "TELLTALE_BULKHEAD_")
    }

    /// Reads `{prefix}MAX_CONCURRENT` (a number) and `{prefix}MAX_WAIT` (a
    /// duration such as `0`, `50ms`) from `env`.
    ///
    /// ```
    /// use telltale_core::Env;
    /// use telltale_resilience::Bulkhead;
    ///
    /// let env = Env::from_pairs([("B_MAX_CONCURRENT", "8"), ("B_MAX_WAIT", "20ms")]);
    /// let bulkhead = Bulkhead::builder("x").from_env_source(&env, "B_").unwrap().build().unwrap();
    /// assert_eq!(bulkhead.max_concurrent(), 8);
    /// ```
    pub fn from_env_source<S: EnvSource>(
        mut self,
        env: &Env<S>,
        prefix: &str,
    ) -> Result<Self, ConfigError> {
        if let Some(v) = env.number(&format!("{prefix}MAX_CONCURRENT"))? {
            self.max_concurrent = v;
        }
        if let Some(v) = env.duration(&format!("{prefix}MAX_WAIT"))? {
            self.max_wait = v;
        }
        Ok(self)
    }

    /// Checks the settings and builds the bulkhead.
    pub fn build(self) -> Result<Bulkhead, BuildError> {
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(BuildError::invalid(
                "max_concurrent",
                "must be at least 1 and at most 2^61",
            ));
        }
        let p = &self.prefix;
        let name = self.name.to_string();
        let metrics = BulkheadMetrics {
            available: gauge!(format!("{p}bulkhead_available_concurrent_calls"), "name" => name.clone()),
            rejected: counter!(format!("{p}bulkhead_rejected_calls_total"), "name" => name.clone()),
            wait: histogram!(format!("{p}bulkhead_wait_duration_seconds"), "name" => name.clone()),
        };
        gauge!(format!("{p}bulkhead_max_allowed_concurrent_calls"), "name" => name)
            .set(self.max_concurrent as f64);
        metrics.available.set(self.max_concurrent as f64);
        Ok(Bulkhead {
            inner: Arc::new(Inner {
                events: broadcast::channel(64).0,
                semaphore: Semaphore::new(self.max_concurrent),
                max_concurrent: self.max_concurrent,
                max_wait: self.max_wait,
                name: self.name,
                metrics,
            }),
        })
    }
}

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

pub(crate) struct Inner {
    events: broadcast::Sender<BulkheadEvent>,
    name: Arc<str>,
    // Permits are taken with `forget` and given back by `BulkheadPermit`'s
    // drop: a permit then holds one `Arc` (the bulkhead's), not two.
    semaphore: Semaphore,
    max_concurrent: usize,
    max_wait: Duration,
    metrics: BulkheadMetrics,
}

/// A bulkhead: a cheap-to-clone handle on a shared set of slots.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
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
    inner: Arc<Inner>,
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
        self.inner.semaphore.add_permits(1);
        self.inner.metrics.available.increment(1.0);
    }
}

impl OnEnd for BulkheadPermit {
    fn on_end(self, _end: BodyEnd<'_>) {
        drop(self);
    }
}

impl Bulkhead {
    /// Starts a builder; see [`BulkheadBuilder`].
    pub fn builder(name: impl Into<Arc<str>>) -> BulkheadBuilder {
        BulkheadBuilder {
            name: name.into(),
            max_concurrent: 25,
            max_wait: Duration::ZERO,
            prefix: DEFAULT_PREFIX.into(),
        }
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
        self.inner.semaphore.available_permits()
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match self.try_acquire_quiet() {
            Some(p) => Ok(p),
            None => Err(self.inner.reject(Duration::ZERO)),
        }
    }

    pub(crate) fn try_acquire_quiet(&self) -> Option<BulkheadPermit> {
        self.inner.semaphore.try_acquire().ok()?.forget();
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
    pub fn call<F, T, E>(&self, fut: F) -> BulkheadCall<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<telltale_core::BoxError>,
    {
        BulkheadCall::new(self.clone(), fut)
    }

    /// A tower layer sharing this bulkhead's slots.
    pub fn layer(&self) -> BulkheadLayer {
        BulkheadLayer::new(self.clone())
    }
}

impl Inner {
    /// Wraps a permit already taken (and forgotten) from the semaphore.
    fn wrap(self: &Arc<Self>) -> BulkheadPermit {
        self.metrics.available.decrement(1.0);
        BulkheadPermit {
            inner: self.clone(),
        }
    }

    fn reject(&self, waited: Duration) -> BulkheadFull {
        self.metrics.rejected.increment(1);
        let span = tracing::Span::current();
        span.record("resilience.bulkhead.name", &*self.name);
        span.record("resilience.rejected", true);
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
