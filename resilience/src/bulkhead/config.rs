//! The bulkhead's builder.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use tokio::sync::broadcast;

use super::slots::{MAX_PERMITS, Slots};
use super::{Bulkhead, BulkheadMetrics, Shared};
use crate::error::BuildError;
use crate::names::{self, described};

/// Builds a [`Bulkhead`]. Every setter says its default.
///
/// ```
/// use std::time::Duration;
/// use telltale_resilience::Bulkhead;
///
/// let bulkhead = Bulkhead::builder("db")
///     .max_concurrent(8)
///     .max_wait(Duration::from_millis(20))
///     .build()
///     .unwrap();
/// assert_eq!(bulkhead.max_concurrent(), 8);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct BulkheadBuilder {
    pub(crate) name: Arc<str>,
    pub(super) max_concurrent: usize,
    pub(super) max_wait: Duration,
    metric_prefix: Option<Arc<str>>,
}

impl BulkheadBuilder {
    pub(super) fn new(name: impl Into<Arc<str>>) -> Self {
        BulkheadBuilder {
            name: name.into(),
            max_concurrent: 25,
            max_wait: Duration::ZERO,
            metric_prefix: None,
        }
    }

    pub(crate) fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
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

    crate::macros::env_setters!(
        "TELLTALE_BULKHEAD_*",
        "telltale_bulkhead_rejected_calls_total"
    );

    /// Checks the settings and builds the bulkhead.
    pub fn build(self) -> Result<Bulkhead, BuildError> {
        if self.max_concurrent == 0 || self.max_concurrent > MAX_PERMITS {
            return Err(BuildError::invalid(
                "max_concurrent",
                "must be at least 1 and at most 2^61",
            ));
        }
        let p = self.metric_prefix.as_deref();
        let name = self.name.to_string();
        let metrics = BulkheadMetrics {
            available: gauge!(described(p, names::BULKHEAD_AVAILABLE), "name" => name.clone()),
            rejected: counter!(described(p, names::BULKHEAD_REJECTED), "name" => name.clone()),
            wait: histogram!(described(p, names::BULKHEAD_WAIT_DURATION), "name" => name.clone()),
        };
        gauge!(described(p, names::BULKHEAD_MAX_ALLOWED), "name" => name)
            .set(self.max_concurrent as f64);
        metrics.available.set(self.max_concurrent as f64);
        if !self.max_wait.is_zero() {
            // The wait clock calibrates on its first read (once per process,
            // usually 10-20 ms): here, not on the first wait.
            let _ = quanta::Instant::now();
        }
        Ok(Bulkhead {
            inner: Arc::new(Shared {
                events: broadcast::channel(64).0,
                slots: Slots::new(self.max_concurrent),
                max_concurrent: self.max_concurrent,
                max_wait: self.max_wait,
                name: self.name,
                metrics,
                stats: Default::default(),
            }),
        })
    }
}
