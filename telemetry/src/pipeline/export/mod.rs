//! Bounded batching processors (spans and log records) that never block and
//! count what they drop.
//!
//! See [`BoundedSpanProcessor`] and [`BoundedLogProcessor`]; both run a
//! bounded queue and report through [`ExportStats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) mod diagnostics;
mod processor;
mod queue;
#[cfg(test)]
mod tests;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod transport;

pub use processor::{BoundedLogProcessor, BoundedSpanProcessor};
pub(crate) use queue::Reporting;

use super::settings::{
    DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_EXPORT_DELAY, DEFAULT_EXPORT_QUEUE_MAX_BYTES,
    DEFAULT_EXPORT_QUEUE_SIZE, DEFAULT_EXPORT_TIMEOUT, DEFAULT_FAILURE_LOG_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT,
};

/// Sizes and bounds of a [`BoundedSpanProcessor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most spans waiting in the queue.
    pub queue_size: usize,
    /// Most bytes the spans waiting in the queue and the batch being exported
    /// hold, by their [estimated sizes](crate::pipeline::estimated_size)
    /// (for log records, their body and attributes). A span that does not
    /// fit is dropped and counted as `queue_full`, like one past
    /// [`queue_size`](Self::queue_size).
    pub max_queue_bytes: usize,
    /// Largest batch handed to the exporter.
    pub batch_size: usize,
    /// Longest wait before a partial batch is exported.
    pub delay: Duration,
    /// Bound of one export call.
    pub export_timeout: Duration,
    /// Bound of a `force_flush`.
    pub flush_timeout: Duration,
    /// While exports keep failing, at most one `WARN` line per this interval
    /// (after the first failure's line), with the count dropped since.
    pub failure_log_interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            queue_size: DEFAULT_EXPORT_QUEUE_SIZE,
            max_queue_bytes: DEFAULT_EXPORT_QUEUE_MAX_BYTES,
            batch_size: DEFAULT_EXPORT_BATCH_SIZE,
            delay: DEFAULT_EXPORT_DELAY,
            export_timeout: DEFAULT_EXPORT_TIMEOUT,
            flush_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            failure_log_interval: DEFAULT_FAILURE_LOG_INTERVAL,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    /// Estimated bytes of the queued spans and of the batch being exported.
    queued_bytes: AtomicU64,
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    dropped_shutdown: AtomicU64,
    failed_exports: AtomicU64,
}

/// Live counts of one exporter's queue, a cheap-clone handle.
///
/// The same numbers go to the `metrics` counters
/// [`SPANS_DROPPED_TOTAL`](crate::metrics::names::SPANS_DROPPED_TOTAL) and
/// [`SPANS_EXPORTED_TOTAL`](crate::metrics::names::SPANS_EXPORTED_TOTAL) (for
/// log records [`LOGS_DROPPED_TOTAL`](crate::metrics::names::LOGS_DROPPED_TOTAL)
/// and [`LOGS_EXPORTED_TOTAL`](crate::metrics::names::LOGS_EXPORTED_TOTAL));
/// this handle is there
/// for tests and health checks without a metrics recorder.
#[derive(Clone, Debug)]
pub struct ExportStats {
    name: &'static str,
    /// The names of the dropped and exported counters.
    metrics: Arc<(String, String)>,
    capacity: usize,
    max_bytes: usize,
    counters: Arc<Counters>,
}

impl ExportStats {
    /// The exporter's name (`otlp`, `stdout`, `otlp_logs`, ...).
    pub fn exporter(&self) -> &'static str {
        self.name
    }
    /// Spans waiting in the queue now (at most [`capacity`](Self::capacity)).
    pub fn queued(&self) -> u64 {
        self.counters.queued.load(Ordering::Relaxed)
    }
    /// The queue bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Estimated bytes held now by the queued spans and the batch being
    /// exported (at most the byte budget,
    /// [`BatchConfig::max_queue_bytes`]).
    pub fn queued_bytes(&self) -> u64 {
        self.counters.queued_bytes.load(Ordering::Relaxed)
    }
    /// The byte budget of the queue ([`BatchConfig::max_queue_bytes`]).
    pub fn max_queue_bytes(&self) -> usize {
        self.max_bytes
    }
    /// Spans the exporter accepted.
    pub fn exported(&self) -> u64 {
        self.counters.exported.load(Ordering::Relaxed)
    }
    /// Spans dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full() + self.dropped_export_failed() + self.dropped_shutdown()
    }
    /// Spans dropped because the queue was full, in spans or in bytes.
    pub fn dropped_queue_full(&self) -> u64 {
        self.counters.dropped_queue_full.load(Ordering::Relaxed)
    }
    /// Spans lost in exports that failed or timed out.
    pub fn dropped_export_failed(&self) -> u64 {
        self.counters.dropped_export_failed.load(Ordering::Relaxed)
    }
    /// Spans still queued when shutdown ran out of time.
    pub fn dropped_shutdown(&self) -> u64 {
        self.counters.dropped_shutdown.load(Ordering::Relaxed)
    }
    /// Export calls that failed or timed out.
    pub fn failed_exports(&self) -> u64 {
        self.counters.failed_exports.load(Ordering::Relaxed)
    }

    /// Gives the current recorder the HELP text and unit of both counters.
    /// Once per batch or drop (not per span), so that a recorder installed
    /// after telemetry still gets them.
    fn describe(&self) {
        metrics::with_recorder(|r| crate::metrics::names::describe_exporters(r, &self.metrics));
    }

    fn count_dropped(&self, reason: &'static str, n: u64) {
        let counter = match reason {
            "queue_full" => &self.counters.dropped_queue_full,
            "export_failed" => &self.counters.dropped_export_failed,
            _ => &self.counters.dropped_shutdown,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        self.describe();
        // Looked up at drop time, not prepared: drops are rare, and the
        // recorder may be installed after telemetry.
        metrics::counter!(self.metrics.0.clone(), "exporter" => self.name, "reason" => reason)
            .increment(n);
    }
}
