//! Bounded batching processors (spans and log records) that never block and
//! count what they drop.
//!
//! See [`BoundedBatchProcessor`] and [`BoundedLogProcessor`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

/// Name of the counter of spans that were never exported.
pub const SPANS_DROPPED_TOTAL: &str = "telltale_telemetry_spans_dropped_total";
/// Name of the counter of spans handed to an exporter successfully.
pub const SPANS_EXPORTED_TOTAL: &str = "telltale_telemetry_spans_exported_total";
/// Name of the counter of log records that were never exported over OTLP.
pub const LOGS_DROPPED_TOTAL: &str = "telltale_telemetry_logs_dropped_total";
/// Name of the counter of log records handed to an exporter successfully.
pub const LOGS_EXPORTED_TOTAL: &str = "telltale_telemetry_logs_exported_total";

/// Sizes and bounds of a [`BoundedBatchProcessor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most spans waiting in the queue.
    pub queue_size: usize,
    /// Largest batch handed to the exporter.
    pub batch_size: usize,
    /// Longest wait before a partial batch is exported.
    pub delay: Duration,
    /// Bound of one export call.
    pub export_timeout: Duration,
    /// Bound of a `force_flush`.
    pub flush_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            queue_size: crate::config::DEFAULT_EXPORT_QUEUE_SIZE,
            batch_size: crate::config::DEFAULT_EXPORT_BATCH_SIZE,
            delay: crate::config::DEFAULT_EXPORT_DELAY,
            export_timeout: crate::config::DEFAULT_EXPORT_TIMEOUT,
            flush_timeout: crate::config::DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    dropped_shutdown: AtomicU64,
    failed_exports: AtomicU64,
}

/// Live counts of one exporter's queue, a cheap-clone handle.
///
/// The same numbers go to the `metrics` counters
/// [`SPANS_DROPPED_TOTAL`] and [`SPANS_EXPORTED_TOTAL`] (for log records
/// [`LOGS_DROPPED_TOTAL`] and [`LOGS_EXPORTED_TOTAL`]); this handle is there
/// for tests and health checks without a metrics recorder.
#[derive(Clone, Debug)]
pub struct ExportStats {
    name: &'static str,
    metrics: (&'static str, &'static str),
    capacity: usize,
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
    /// Spans the exporter accepted.
    pub fn exported(&self) -> u64 {
        self.counters.exported.load(Ordering::Relaxed)
    }
    /// Spans dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full() + self.dropped_export_failed() + self.dropped_shutdown()
    }
    /// Spans dropped because the queue was full.
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

    fn count_dropped(&self, reason: &'static str, n: u64) {
        let counter = match reason {
            "queue_full" => &self.counters.dropped_queue_full,
            "export_failed" => &self.counters.dropped_export_failed,
            _ => &self.counters.dropped_shutdown,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        // Looked up at drop time, not prepared: drops are rare, and the
        // recorder may be installed after telemetry.
        metrics::counter!(self.metrics.0, "exporter" => self.name, "reason" => reason).increment(n);
    }
}

enum Control {
    Resource(Resource),
    Flush(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant),
    Shutdown(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant),
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
/// - Flush and shutdown are bounded: the caller waits at most its timeout,
///   whatever the exporter does. Spans still queued when shutdown gives up are
///   counted with `reason="shutdown"`.
///
/// The OTLP exporter's own retries (opentelemetry-otlp retries a refused
/// connection a few times with backoff) happen inside the export timeout.
///
/// Memory is bounded by queue size + one batch in flight.
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
/// use telltale_telemetry::{BatchConfig, BoundedBatchProcessor};
///
/// let exporter = InMemorySpanExporter::default();
/// let seen = exporter.clone();
/// let processor =
///     BoundedBatchProcessor::new("memory", BatchConfig::default(), move || Ok(exporter)).unwrap();
/// let stats = processor.stats();
/// let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
/// provider.tracer("doc").in_span("work", |_| {});
/// provider.force_flush().unwrap();
/// assert_eq!(seen.get_finished_spans().unwrap().len(), 1);
/// assert_eq!((stats.exported(), stats.dropped()), (1, 0));
/// ```
pub struct BoundedBatchProcessor {
    queue: Queue<SpanData>,
}

impl fmt::Debug for BoundedBatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedBatchProcessor")
            .field("stats", &self.queue.stats)
            .field("config", &self.queue.config)
            .finish_non_exhaustive()
    }
}

impl BoundedBatchProcessor {
    /// Starts the worker thread, builds the exporter there with `make` (inside
    /// the worker's tokio runtime) and returns once it is built. An error from
    /// `make` is returned here.
    pub fn new<E, F>(name: &'static str, config: BatchConfig, make: F) -> Result<Self, String>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        let queue = Queue::start(
            name,
            (SPANS_DROPPED_TOTAL, SPANS_EXPORTED_TOTAL),
            config,
            move || make().map(Spans),
        )?;
        Ok(BoundedBatchProcessor { queue })
    }

    /// A handle on this processor's counts.
    pub fn stats(&self) -> ExportStats {
        self.queue.stats.clone()
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.queue.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.queue.set_resource(resource);
    }
}

/// The log-record twin of [`BoundedBatchProcessor`]: same bounded queue,
/// worker thread, drop counting (as [`LOGS_DROPPED_TOTAL`]) and bounded
/// shutdown, for an OpenTelemetry [`LogExporter`] such as OTLP.
pub struct BoundedLogProcessor {
    queue: Queue<(SdkLogRecord, InstrumentationScope)>,
}

impl fmt::Debug for BoundedLogProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedLogProcessor")
            .field("stats", &self.queue.stats)
            .field("config", &self.queue.config)
            .finish_non_exhaustive()
    }
}

impl BoundedLogProcessor {
    /// Starts the worker thread and builds the exporter there with `make`,
    /// as [`BoundedBatchProcessor::new`] does.
    pub fn new<E, F>(name: &'static str, config: BatchConfig, make: F) -> Result<Self, String>
    where
        E: LogExporter + 'static,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        let queue = Queue::start(
            name,
            (LOGS_DROPPED_TOTAL, LOGS_EXPORTED_TOTAL),
            config,
            move || make().map(Logs),
        )?;
        Ok(BoundedLogProcessor { queue })
    }

    /// A handle on this processor's counts.
    pub fn stats(&self) -> ExportStats {
        self.queue.stats.clone()
    }
}

impl LogProcessor for BoundedLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.queue.push((data.clone(), instrumentation.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.queue.set_resource(resource);
    }
}

/// What a worker exports to: a span or a log exporter.
trait Sink: 'static {
    type Item: Send + 'static;
    fn export(&mut self, batch: Vec<Self::Item>) -> impl Future<Output = OTelSdkResult>;
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult;
    fn set_resource(&mut self, resource: &Resource);
}

struct Spans<E>(E);

impl<E: SpanExporter + 'static> Sink for Spans<E> {
    type Item = SpanData;
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

/// The shared part: bounded channel, control channel, counts.
struct Queue<T> {
    tx: mpsc::Sender<T>,
    control: mpsc::UnboundedSender<Control>,
    stats: ExportStats,
    config: BatchConfig,
    is_shutdown: AtomicBool,
}

impl<T: Send + 'static> Queue<T> {
    fn start<S, F>(
        name: &'static str,
        metrics: (&'static str, &'static str),
        config: BatchConfig,
        make: F,
    ) -> Result<Self, String>
    where
        S: Sink<Item = T>,
        F: FnOnce() -> Result<S, String> + Send + 'static,
    {
        let config = BatchConfig {
            queue_size: config.queue_size.max(1),
            batch_size: config.batch_size.clamp(1, config.queue_size.max(1)),
            ..config
        };
        let (tx, rx) = mpsc::channel(config.queue_size);
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = ExportStats {
            name,
            metrics,
            capacity: config.queue_size,
            counters: Arc::default(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name(format!("telltale-export-{name}"))
            .spawn(move || {
                // The exporter's own tracing (hyper, tonic, the SDK) must not
                // become spans or logs that are exported again.
                let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let exporter = {
                    let _enter = runtime.enter();
                    match make() {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                };
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(
                    Worker {
                        exporter,
                        rx,
                        control: control_rx,
                        config,
                        stats: worker_stats,
                        batch: Vec::with_capacity(config.batch_size),
                    }
                    .run(),
                );
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| "export worker stopped while starting".to_owned())??;
        Ok(Queue {
            tx,
            control,
            stats,
            config,
            is_shutdown: AtomicBool::new(false),
        })
    }

    fn push(&self, item: T) {
        if self.is_shutdown.load(Ordering::Relaxed) {
            self.stats.count_dropped("shutdown", 1);
            return;
        }
        // Counted before sending so the worker's decrement never underflows.
        self.stats.counters.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.counters.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.count_dropped("queue_full", 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.counters.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.count_dropped("shutdown", 1);
            }
        }
    }

    fn flush(&self) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.request(Control::Flush, self.config.flush_timeout)
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.request(Control::Shutdown, timeout)
    }

    fn set_resource(&self, resource: &Resource) {
        let _ = self.control.send(Control::Resource(resource.clone()));
    }

    fn request(
        &self,
        make: impl FnOnce(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (reply, wait) = std::sync::mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        if self.control.send(make(reply, deadline)).is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match wait.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }
}

struct Worker<S: Sink> {
    exporter: S,
    rx: mpsc::Receiver<S::Item>,
    control: mpsc::UnboundedReceiver<Control>,
    config: BatchConfig,
    stats: ExportStats,
    batch: Vec<S::Item>,
}

impl<S: Sink> Worker<S> {
    async fn run(mut self) {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let room = self.config.batch_size - self.batch.len();
            tokio::select! {
                biased;
                msg = self.control.recv() => match msg {
                    Some(Control::Resource(resource)) => self.exporter.set_resource(&resource),
                    Some(Control::Flush(reply, until)) => {
                        let result = self.drain(until).await;
                        deadline = None;
                        let _ = reply.send(result);
                    }
                    Some(Control::Shutdown(reply, until)) => {
                        let mut result = self.drain(until).await;
                        let left = until.saturating_duration_since(Instant::now());
                        if result.is_ok() {
                            result = self.exporter.shutdown(left);
                        }
                        let _ = reply.send(result);
                        return;
                    }
                    None => return,
                },
                n = self.rx.recv_many(&mut self.batch, room) => {
                    if n == 0 {
                        return;
                    }
                    self.stats.counters.queued.fetch_sub(n as u64, Ordering::Relaxed);
                    if self.batch.len() >= self.config.batch_size {
                        self.export(self.config.export_timeout).await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.config.delay);
                    }
                }
                () = sleep_until(deadline) => {
                    self.export(self.config.export_timeout).await;
                    deadline = None;
                }
            }
        }
    }

    /// Exports the current batch and everything queued, until `until`.
    async fn drain(&mut self, until: Instant) -> OTelSdkResult {
        let mut failed = false;
        loop {
            while self.batch.len() < self.config.batch_size {
                match self.rx.try_recv() {
                    Ok(span) => {
                        self.stats.counters.queued.fetch_sub(1, Ordering::Relaxed);
                        self.batch.push(span);
                    }
                    Err(_) => break,
                }
            }
            if self.batch.is_empty() {
                return match failed {
                    false => Ok(()),
                    true if Instant::now() >= until => Err(OTelSdkError::Timeout(Duration::ZERO)),
                    true => Err(OTelSdkError::InternalFailure(
                        "some batches could not be exported".to_owned(),
                    )),
                };
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let n = self.batch.len() as u64 + self.stats.queued();
                self.batch.clear();
                self.stats.count_dropped("shutdown", n);
                return Err(OTelSdkError::Timeout(Duration::ZERO));
            }
            failed |= !self.export(left.min(self.config.export_timeout)).await;
        }
    }

    /// Exports the current batch; `false` when the exporter failed or timed out.
    async fn export(&mut self, timeout: Duration) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.config.batch_size));
        let n = batch.len() as u64;
        match tokio::time::timeout(timeout, self.exporter.export(batch)).await {
            Ok(Ok(())) => {
                self.stats.counters.exported.fetch_add(n, Ordering::Relaxed);
                metrics::counter!(self.stats.metrics.1, "exporter" => self.stats.name).increment(n);
                true
            }
            Ok(Err(_)) | Err(_) => {
                self.stats
                    .counters
                    .failed_exports
                    .fetch_add(1, Ordering::Relaxed);
                self.stats.count_dropped("export_failed", n);
                false
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use std::sync::Mutex;

    /// An exporter that waits until released, to fill the queue.
    #[derive(Debug, Clone)]
    struct Gate {
        open: Arc<tokio::sync::Semaphore>,
        seen: Arc<Mutex<usize>>,
    }

    impl SpanExporter for Gate {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let _permit = self
                .open
                .acquire()
                .await
                .map_err(|_| OTelSdkError::AlreadyShutdown)?;
            *self.seen.lock().unwrap() += batch.len();
            Ok(())
        }
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let gate = Gate {
            open: Arc::new(tokio::sync::Semaphore::new(0)),
            seen: Arc::default(),
        };
        let exporter = gate.clone();
        let config = BatchConfig {
            queue_size: 4,
            batch_size: 2,
            delay: Duration::from_millis(1),
            export_timeout: Duration::from_secs(30),
            flush_timeout: Duration::from_secs(5),
        };
        let processor = BoundedBatchProcessor::new("gate", config, move || Ok(exporter)).unwrap();
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let started = Instant::now();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..100 {
                tracer.in_span("s", |_| {});
            }
        });
        assert!(started.elapsed() < Duration::from_secs(1));
        // At most one batch in the exporter plus the queue.
        assert!(stats.queued() <= 4, "{}", stats.queued());
        assert!(stats.dropped_queue_full() >= 100 - 4 - 2, "{stats:?}");
        let dropped: u64 = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == SPANS_DROPPED_TOTAL)
            .map(|(.., value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum();
        assert_eq!(dropped, stats.dropped_queue_full());
        gate.open.add_permits(1000);
        provider.force_flush().unwrap();
        assert_eq!(
            *gate.seen.lock().unwrap() as u64 + stats.dropped(),
            100,
            "{stats:?}"
        );
        assert_eq!(stats.exported() + stats.dropped(), 100);
        provider.shutdown().unwrap();
    }

    #[test]
    fn shutdown_is_bounded_when_the_exporter_hangs() {
        let gate = Gate {
            open: Arc::new(tokio::sync::Semaphore::new(0)),
            seen: Arc::default(),
        };
        let exporter = gate.clone();
        let config = BatchConfig {
            export_timeout: Duration::from_secs(3600),
            ..BatchConfig::default()
        };
        let processor = BoundedBatchProcessor::new("hang", config, move || Ok(exporter)).unwrap();
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        provider.tracer("t").in_span("s", |_| {});
        let started = Instant::now();
        let result = provider.shutdown_with_timeout(Duration::from_millis(200));
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(stats.exported(), 0);
    }

    #[test]
    fn failed_exports_are_counted_and_later_batches_still_go() {
        #[derive(Debug)]
        struct Flaky {
            fail: Arc<AtomicBool>,
            inner: InMemorySpanExporter,
        }
        impl SpanExporter for Flaky {
            async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
                if self.fail.load(Ordering::SeqCst) {
                    return Err(OTelSdkError::InternalFailure("down".into()));
                }
                self.inner.export(batch).await
            }
        }
        let fail = Arc::new(AtomicBool::new(true));
        let memory = InMemorySpanExporter::default();
        let exporter = Flaky {
            fail: fail.clone(),
            inner: memory.clone(),
        };
        let processor =
            BoundedBatchProcessor::new("flaky", BatchConfig::default(), move || Ok(exporter))
                .unwrap();
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        tracer.in_span("lost", |_| {});
        assert!(provider.force_flush().is_err());
        assert_eq!(stats.dropped_export_failed(), 1);
        assert_eq!(stats.failed_exports(), 1);
        fail.store(false, Ordering::SeqCst);
        tracer.in_span("kept", |_| {});
        provider.force_flush().unwrap();
        let names: Vec<_> = memory
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["kept"]);
        assert_eq!(stats.exported(), 1);
    }

    #[test]
    fn exporter_build_errors_surface() {
        let err = BoundedBatchProcessor::new("bad", BatchConfig::default(), || {
            Err::<InMemorySpanExporter, _>("no".to_owned())
        })
        .unwrap_err();
        assert_eq!(err, "no");
    }
}
