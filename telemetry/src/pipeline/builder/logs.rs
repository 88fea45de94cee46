//! The log side of the pipeline: log lines in the configured format, and
//! log records exported over OTLP.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing_subscriber::fmt::FormatEvent;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::{Layer, Registry};

use super::exporters::{Started, start_otlp};
use super::{BoxLayer, TelemetryBuilder};
use crate::pipeline::InitError;
use crate::pipeline::export::{BatchConfig, BoundedLogProcessor};
use crate::pipeline::filter::log_filter;
use crate::pipeline::fmt::{JsonFields, JsonFormat, OtelIdsLayer, PrettyFormat};
use crate::pipeline::settings::{ExportExtras, LogFormat};

impl TelemetryBuilder {
    /// The logger provider exporting log records over OTLP, when
    /// [`otlp_logs`](Self::otlp_logs) is set and the SDK is on: the logs'
    /// own batch settings (`OTEL_BLRP_*`) over the shared ones. Its
    /// diagnostics and counts go to `started`.
    pub(super) fn logger_provider(
        &self,
        resource: &Resource,
        extras: &ExportExtras,
        started: &mut Started,
    ) -> Result<Option<SdkLoggerProvider>, InitError> {
        let otlp = match self.otlp_logs.clone() {
            Some(otlp) if !self.sdk_disabled => otlp,
            _ => return Ok(None),
        };
        let logs = extras.logs;
        let config = BatchConfig {
            queue_size: logs.queue_size.unwrap_or(self.queue_size),
            batch_size: logs.batch_size.unwrap_or(self.batch_size),
            delay: logs.delay.unwrap_or(self.export_delay),
            ..self.batch_config(
                logs.export_timeout.unwrap_or(otlp.timeout),
                extras.failure_log_interval,
            )
        };
        let processor: BoundedLogProcessor =
            start_otlp("otlp_logs", "log records", config, otlp, started)?;
        Ok(Some(
            SdkLoggerProvider::builder()
                .with_resource(resource.clone())
                .with_log_processor(processor)
                .build(),
        ))
    }

    /// The layer writing log lines to `writer` in the configured format
    /// (none for [`LogFormat::None`]), and the layer that gives the lines
    /// their OpenTelemetry `trace_id` and `span_id`.
    pub(super) fn log_lines(
        &self,
        service_name: String,
        writer: BoxMakeWriter,
    ) -> (Option<BoxLayer>, OtelIdsLayer) {
        match self.log_format {
            LogFormat::Json(profile) => {
                let format = JsonFormat::new(profile)
                    .service_name(service_name)
                    .max_len(self.max_field_len);
                let ids = format.ids_layer();
                (Some(self.lines_layer(format, writer)), ids)
            }
            LogFormat::Pretty => {
                let format = PrettyFormat::new(self.ansi).max_len(self.max_field_len);
                let ids = format.ids_layer();
                (Some(self.lines_layer(format, writer)), ids)
            }
            LogFormat::None => (None, OtelIdsLayer::unbound()),
        }
    }

    /// Lines of `format` to `writer`, fields cut at the longest field value,
    /// for the events the log filter lets through.
    fn lines_layer<F>(&self, format: F, writer: BoxMakeWriter) -> BoxLayer
    where
        F: FormatEvent<Registry, JsonFields> + Send + Sync + 'static,
    {
        Box::new(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new(self.max_field_len))
                .event_format(format)
                .with_writer(writer)
                .with_filter(log_filter(&self.filter, &self.trace_filter)),
        )
    }
}
