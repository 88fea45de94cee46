//! The span and log-record processors: a [`Queue`] each, fed from the SDK.

use std::fmt;
use std::time::Duration;

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use telltale_core::BoxError;

use super::diagnostics::Diagnostics;
use super::queue::{Queue, Reporting, Sink};
use super::{BatchConfig, ExportStats};
use crate::metrics::names::{
    LOGS_DROPPED_TOTAL, LOGS_EXPORTED_TOTAL, SPANS_DROPPED_TOTAL, SPANS_EXPORTED_TOTAL,
};
use crate::pipeline::error::ExporterError;

/// The processor methods that go to the queue (the span and log traits
/// have the same three).
macro_rules! queue_methods {
    () => {
        fn force_flush(&self) -> OTelSdkResult {
            self.queue.flush()
        }

        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.queue.shutdown(timeout)
        }

        fn set_resource(&mut self, resource: &Resource) {
            self.queue.set_resource(resource);
        }
    };
}

/// `Debug`, `new` and `stats()` of a processor holding a `queue` that
/// exports through a `$exporter` wrapped in the sink `$sink`, counting into
/// the `$metrics` (dropped, exported) counters.
macro_rules! processor_common {
    ($name:ident, $exporter:ident, $sink:ident, $what:literal, $metrics:expr, $new_doc:literal) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("stats", &self.queue.stats)
                    .field("config", &self.queue.config)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            #[doc = $new_doc]
            pub fn new<E, F>(
                name: &'static str,
                config: BatchConfig,
                make: F,
            ) -> Result<Self, ExporterError>
            where
                E: $exporter + 'static,
                F: FnOnce() -> Result<E, BoxError> + Send + 'static,
            {
                Self::with_reporting(name, config, Reporting::new($what), make)
            }

            /// [`new`](Self::new) with the endpoint and the transport's
            /// cause slot, for the failure lines.
            pub(crate) fn with_reporting<E, F>(
                name: &'static str,
                config: BatchConfig,
                reporting: Reporting,
                make: F,
            ) -> Result<Self, ExporterError>
            where
                E: $exporter + 'static,
                F: FnOnce() -> Result<E, BoxError> + Send + 'static,
            {
                let queue =
                    Queue::start(name, $metrics, config, reporting, move || make().map($sink))?;
                Ok($name { queue })
            }

            /// Where the worker's lines go (set to the pipeline's dispatch
            /// once it is built).
            pub(crate) fn diagnostics(&self) -> Diagnostics {
                self.queue.diagnostics.clone()
            }

            /// A handle on this processor's counts.
            pub fn stats(&self) -> ExportStats {
                self.queue.stats.clone()
            }
        }
    };
}

/// A span processor with a bounded queue and a worker thread.
///
/// The SDK's `BatchSpanProcessor` drops spans when its queue is full but only
/// logs the total at shutdown; telltale needs the count as a metric while the
/// process runs. So this is a small processor of telltale's own:
///
/// - `on_end` does a `try_send` on a bounded tokio channel (capacity = the
///   export queue size). A full queue drops the span and increments
///   `telltale_telemetry_spans_dropped_total{exporter, reason="queue_full"}`.
///   The request path never waits for the exporter.
/// - One worker thread per exporter, with its own current-thread tokio
///   runtime, builds the exporter (so tonic and hyper find a runtime whatever
///   the application does) and exports batches of up to the batch size, after
///   at most the export delay. Each export is bounded by the export timeout; a
///   failed batch is counted with `reason="export_failed"`. The next batch is
///   tried normally, so export resumes on its own when the collector returns.
/// - Failures are logged, never once per batch: the first failure at `WARN`
///   with the endpoint and the cause (connection refused, no answer within
///   the timeout, the collector's certificate not trusted, an HTTP or gRPC
///   status), then at most one `WARN` summary per
///   [`failure_log_interval`](BatchConfig::failure_log_interval) with the
///   count dropped since, and one `INFO` line when an export succeeds again.
///   They have the target `telltale_telemetry::export` and go to the log
///   output of the pipeline (or of the dispatcher current where the
///   processor was created), never to an exporter; so do the OpenTelemetry
///   SDK's internal logs emitted on the worker thread. Everything else the
///   exporter's libraries (hyper, h2, tonic) trace there is dropped.
/// - Flush and shutdown are bounded: the caller waits at most its timeout,
///   whatever the exporter does. Spans still queued when shutdown gives up are
///   counted with `reason="shutdown"`.
///
/// The OTLP exporter's own retries (opentelemetry-otlp retries a refused
/// connection a few times with backoff) happen inside the export timeout.
///
/// Memory is bounded twice: in spans (queue size + one batch in flight) and
/// in bytes ([`BatchConfig::max_queue_bytes`], the spans'
/// [estimated sizes](crate::pipeline::estimated_size) of the queue and the
/// batch in flight together), so that outsized spans behind a stalled
/// collector cannot hold more than the budget. A span that does not fit is
/// dropped and counted with `reason="queue_full"`.
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// use telltale_telemetry::{BatchConfig, BoundedSpanProcessor};
///
/// let exporter = InMemorySpanExporter::default();
/// let seen = exporter.clone();
/// let processor =
///     BoundedSpanProcessor::new("memory", BatchConfig::default(), move || Ok(exporter)).unwrap();
/// let stats = processor.stats();
/// let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
/// provider.tracer("doc").in_span("work", |_| {});
/// provider.force_flush().unwrap();
/// assert_eq!(seen.get_finished_spans().unwrap().len(), 1);
/// assert_eq!((stats.exported(), stats.dropped()), (1, 0));
/// ```
pub struct BoundedSpanProcessor {
    queue: Queue<SpanData>,
}

processor_common!(
    BoundedSpanProcessor,
    SpanExporter,
    Spans,
    "spans",
    (SPANS_DROPPED_TOTAL, SPANS_EXPORTED_TOTAL),
    "Starts the worker thread, builds the exporter there with `make` (inside \
     the worker's tokio runtime) and returns once it is built. An error from \
     `make` is returned here."
);

impl SpanProcessor for BoundedSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.queue.push(span);
        }
    }

    queue_methods!();
}

/// The log-record twin of [`BoundedSpanProcessor`]: same bounded queue,
/// worker thread, drop counting (as [`LOGS_DROPPED_TOTAL`](crate::metrics::names::LOGS_DROPPED_TOTAL)) and bounded
/// shutdown, for an OpenTelemetry [`LogExporter`] such as OTLP.
pub struct BoundedLogProcessor {
    queue: Queue<(SdkLogRecord, InstrumentationScope)>,
}

processor_common!(
    BoundedLogProcessor,
    LogExporter,
    Logs,
    "log records",
    (LOGS_DROPPED_TOTAL, LOGS_EXPORTED_TOTAL),
    "Starts the worker thread and builds the exporter there with `make`, as \
     [`BoundedSpanProcessor::new`] does."
);

impl LogProcessor for BoundedLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.queue.push((data.clone(), instrumentation.clone()));
    }

    queue_methods!();
}

/// What a worker exports to: a span or a log exporter.
struct Spans<E>(E);

impl<E: SpanExporter + 'static> Sink for Spans<E> {
    type Item = SpanData;
    fn size(item: &SpanData) -> usize {
        crate::pipeline::estimated_size(item)
    }
    fn export(&mut self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> {
        self.0.export(batch)
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

struct Logs<E>(E);

impl<E: LogExporter + 'static> Sink for Logs<E> {
    type Item = (SdkLogRecord, InstrumentationScope);
    fn size((record, _): &Self::Item) -> usize {
        std::mem::size_of::<Self::Item>()
            + record.body().map_or(0, any_value_size)
            + record
                .attributes_iter()
                .map(|(key, value)| key.as_str().len() + any_value_size(value))
                .sum::<usize>()
    }
    async fn export(&mut self, batch: Vec<Self::Item>) -> OTelSdkResult {
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, s)| (r, s)).collect();
        self.0.export(LogBatch::new(&refs)).await
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// An estimate of the bytes an OpenTelemetry log value holds (strings,
/// bytes and nested values), for the log queue's byte budget.
fn any_value_size(value: &opentelemetry::logs::AnyValue) -> usize {
    use opentelemetry::logs::AnyValue;
    std::mem::size_of::<AnyValue>()
        + match value {
            AnyValue::String(s) => s.as_str().len(),
            AnyValue::Bytes(b) => b.len(),
            AnyValue::ListAny(items) => items.iter().map(any_value_size).sum(),
            AnyValue::Map(map) => map
                .iter()
                .map(|(k, v)| k.as_str().len() + any_value_size(v))
                .sum(),
            _ => 0,
        }
}
