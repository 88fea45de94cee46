//! The span side of the pipeline: the tracer provider with its processors
//! (flight recorder, OTLP, stdout) and the layer that feeds it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanProcessor, TracerProviderBuilder};
use tracing_subscriber::Layer;

use super::exporters::{Started, failed, start_otlp};
use super::{BoxLayer, TelemetryBuilder, instrumentation_scope};
use crate::pipeline::InitError;
use crate::pipeline::export::BoundedSpanProcessor;
use crate::pipeline::filter::otel_filter;
use crate::pipeline::flight_recorder::FlightRecorder;
use crate::pipeline::limits::Truncating;
use crate::pipeline::settings::{
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLIGHT_RECORDER_CAPACITY, ExportExtras,
};
use crate::pipeline::stdout::StdoutExporter;

/// The tracer provider and its flight recorder, if one keeps spans.
pub(super) struct Traces {
    pub(super) provider: SdkTracerProvider,
    pub(super) recorder: Option<FlightRecorder>,
}

impl TelemetryBuilder {
    /// The tracer provider over `resource`: the sampler, the span limits,
    /// and each processor (the flight recorder, the OTLP exporter, the
    /// stdout exporter) behind the attribute value length limit. The
    /// exporters' diagnostics and counts go to `started`.
    pub(super) fn traces(
        &self,
        resource: Resource,
        extras: &ExportExtras,
        started: &mut Started,
    ) -> Result<Traces, InitError> {
        // Always set: the SDK's own reading of `OTEL_SPAN_*_COUNT_LIMIT`
        // takes any value silently; these are the checked ones.
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(self.sampler.to_sdk())
            // Root spans kept by the request layers' early decision take the
            // trace ID it was taken on (see `crate::sampling`).
            .with_id_generator(crate::sampling::PresetTraceIds::default())
            .with_span_limits(self.span_limits.to_sdk());
        // The value length limit, applied by telltale before each
        // processor keeps a span (the SDK has none).
        let max_len = self.span_limits.attribute_value_length.map(|n| n as usize);
        let mut recorder = None;
        let has_exporter = self.otlp.is_some() || self.stdout_exporter;
        let capacity = self.flight_recorder_capacity.unwrap_or(if has_exporter {
            0
        } else {
            DEFAULT_FLIGHT_RECORDER_CAPACITY
        });
        if capacity > 0 {
            let r = FlightRecorder::with_max_bytes(capacity, self.flight_recorder_max_bytes);
            builder = add(builder, r.clone(), max_len);
            recorder = Some(r);
        }
        if let Some(otlp) = self.otlp.clone() {
            let timeout = extras.spans.export_timeout.unwrap_or(otlp.timeout);
            let config = self.batch_config(timeout, extras.failure_log_interval);
            let processor: BoundedSpanProcessor =
                start_otlp("otlp", "spans", config, otlp, started)?;
            builder = add(builder, processor, max_len);
        }
        if self.stdout_exporter {
            let (log_format, max_field_len) = (self.log_format, self.max_field_len);
            let processor = BoundedSpanProcessor::new(
                "stdout",
                self.batch_config(DEFAULT_EXPORT_TIMEOUT, extras.failure_log_interval),
                move || {
                    // Spans in the log lines' format: stdout stays one format.
                    Ok(StdoutExporter::new(log_format).max_len(max_field_len))
                },
            )
            .map_err(failed("stdout"))?;
            started.stats.push(processor.stats());
            builder = add(builder, processor, max_len);
        }
        Ok(Traces {
            provider: builder.build(),
            recorder,
        })
    }

    /// The layer that turns the spans (and the events recorded on them) the
    /// trace filter lets through into OpenTelemetry spans of `provider`.
    /// With it, the layer that lets the request layers ask the provider's
    /// sampler before they build a span (see `crate::sampling`).
    pub(super) fn otel_layer(&self, provider: &SdkTracerProvider) -> BoxLayer {
        Box::new(
            crate::sampling::SamplerLayer::new(self.sampler.to_sdk()).and_then(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer_with_scope(instrumentation_scope()))
                    .with_location(self.tracing_attributes)
                    .with_threads(self.tracing_attributes)
                    .with_tracked_inactivity(self.tracing_attributes)
                    .with_target(self.tracing_attributes)
                    .with_level(false)
                    .with_filter(otel_filter(&self.trace_filter)),
            ),
        )
    }
}

/// Adds `processor` to `builder`, behind the value length limit `max_len`
/// when there is one.
fn add<P: SpanProcessor + 'static>(
    builder: TracerProviderBuilder,
    processor: P,
    max_len: Option<usize>,
) -> TracerProviderBuilder {
    match max_len {
        Some(max) => builder.with_span_processor(Truncating::new(processor, max)),
        None => builder.with_span_processor(processor),
    }
}
