use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};

use super::*;
use crate::metrics::names::SPANS_DROPPED_TOTAL;
use crate::pipeline::error::ExporterError;

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
        ..BatchConfig::default()
    };
    let processor = BoundedSpanProcessor::new("gate", config, move || Ok(exporter)).unwrap();
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
    let processor = BoundedSpanProcessor::new("hang", config, move || Ok(exporter)).unwrap();
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
        BoundedSpanProcessor::new("flaky", BatchConfig::default(), move || Ok(exporter)).unwrap();
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
    let err = BoundedSpanProcessor::new("bad", BatchConfig::default(), || {
        Err::<InMemorySpanExporter, _>("no".into())
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "no");
    assert!(matches!(err, ExporterError::Build(_)), "{err:?}");
}

#[test]
fn absurd_settings_are_bounded_not_panics() {
    let memory = InMemorySpanExporter::default();
    let seen = memory.clone();
    let config = BatchConfig {
        queue_size: usize::MAX,
        max_queue_bytes: usize::MAX,
        batch_size: usize::MAX,
        delay: Duration::MAX,
        export_timeout: Duration::MAX,
        flush_timeout: Duration::from_secs(5),
        failure_log_interval: Duration::MAX,
    };
    let processor = BoundedSpanProcessor::new("huge", config, move || Ok(memory)).unwrap();
    let stats = processor.stats();
    assert_eq!(
        stats.capacity(),
        crate::pipeline::settings::MAX_EXPORT_QUEUE_SIZE
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    provider.tracer("t").in_span("s", |_| {});
    provider.force_flush().unwrap();
    assert_eq!(seen.get_finished_spans().unwrap().len(), 1);
}

#[test]
fn byte_budget_drops_and_counts_outsized_spans() {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::Span as _;
    let gate = Gate {
        open: Arc::new(tokio::sync::Semaphore::new(0)),
        seen: Arc::default(),
    };
    let exporter = gate.clone();
    // Room for 1000 spans, but only 256 KiB: about twenty-five 10 kB spans.
    let config = BatchConfig {
        queue_size: 1000,
        max_queue_bytes: 256 << 10,
        batch_size: 10,
        delay: Duration::from_millis(1),
        export_timeout: Duration::from_secs(30),
        flush_timeout: Duration::from_secs(5),
        ..BatchConfig::default()
    };
    let processor = BoundedSpanProcessor::new("bytes", config, move || Ok(exporter)).unwrap();
    let stats = processor.stats();
    assert_eq!(stats.max_queue_bytes(), 256 << 10);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("t");
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..200 {
            let mut span = tracer.start("big");
            span.set_attribute(KeyValue::new("payload", "x".repeat(10_000)));
            span.end();
        }
    });
    // The budget holds whatever the exporter does.
    assert!(
        stats.queued_bytes() <= 256 << 10,
        "{}",
        stats.queued_bytes()
    );
    assert!(stats.queued() < 30, "{stats:?}");
    assert!(stats.dropped_queue_full() >= 200 - 30, "{stats:?}");
    let dropped: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == SPANS_DROPPED_TOTAL
                && key.key().labels().any(|l| l.value() == "queue_full")
        })
        .map(|(.., value)| match value {
            metrics_util::debugging::DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(dropped, stats.dropped_queue_full());
    gate.open.add_permits(1000);
    provider.force_flush().unwrap();
    assert_eq!(stats.exported() + stats.dropped(), 200, "{stats:?}");
    // Everything exported or dropped: the budget is free again.
    assert_eq!(stats.queued_bytes(), 0);
    provider.shutdown().unwrap();
}
