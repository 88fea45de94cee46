//! Spans and metrics of one request-layer test: an in-memory span exporter
//! behind the testkit's capture, a Prometheus recorder, and span attribute
//! helpers.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use telltale_telemetry::layer::server::{ServerTelemetryLayer, ServerTelemetryLayerBuilder};
use telltale_telemetry::metrics::{RedConfig, prometheus_builder};
use tracing_subscriber::layer::SubscriberExt;

/// Spans of one test, through a thread-local subscriber (tests run on a
/// current-thread runtime, so the server tasks see it too).
pub struct Harness {
    pub exporter: InMemorySpanExporter,
    _guard: tracing::dispatcher::DefaultGuard,
    pub metrics: PrometheusHandle,
    pub config: RedConfig,
}

impl Harness {
    pub fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        // Through the testkit's global dispatcher: deterministic under
        // parallel tests.
        let guard = telltale_testkit::set_default(subscriber);
        Self::finish(exporter, guard)
    }

    /// Like [`new`](Self::new), with `sampler` decided before spans are
    /// built, as `init`'s pipeline does (`telltale_telemetry::sampling`).
    #[allow(dead_code)]
    pub fn with_sampler(sampler: opentelemetry_sdk::trace::Sampler) -> Self {
        use telltale_telemetry::sampling::{PresetTraceIds, SamplerLayer};
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_sampler(sampler.clone())
            .with_id_generator(PresetTraceIds::default())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(SamplerLayer::new(sampler))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let guard = telltale_testkit::set_default(subscriber);
        Self::finish(exporter, guard)
    }

    fn finish(exporter: InMemorySpanExporter, guard: tracing::dispatcher::DefaultGuard) -> Self {
        let config = RedConfig::default();
        let recorder = prometheus_builder(&config).build_recorder();
        let metrics = recorder.handle();
        let config = config.with_recorder(Arc::new(recorder));
        Harness {
            exporter,
            _guard: guard,
            metrics,
            config,
        }
    }

    pub fn server(&self) -> ServerTelemetryLayerBuilder {
        ServerTelemetryLayer::builder().red_config(self.config.clone())
    }

    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }

    /// Waits (bounded) until `n` spans of `kind` are finished.
    pub async fn wait_spans(&self, kind: SpanKind, n: usize) -> Vec<SpanData> {
        for _ in 0..500 {
            let spans: Vec<SpanData> = self
                .spans()
                .into_iter()
                .filter(|s| s.span_kind == kind)
                .collect();
            if spans.len() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("expected {n} {kind:?} spans, got {:#?}", self.spans());
    }

    /// Waits (bounded) until the rendered metrics contain `needle`.
    pub async fn wait_metric(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..500 {
            text = self.metrics.render();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("metrics lack {needle}:\n{text}");
    }
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::I64(n)) => Some(*n),
        other => panic!("{key} is {other:?}"),
    }
}
