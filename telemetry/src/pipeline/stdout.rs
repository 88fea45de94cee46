//! A span exporter writing one JSON line per finished span to standard output.

use std::io::Write as _;
use std::sync::Arc;

use opentelemetry::Key;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::flight_recorder::RecordedSpan;

/// Writes each finished span as one JSON line (the shape of
/// [`RecordedSpan::to_json`]) to standard output. Selected by
/// `OTEL_TRACES_EXPORTER=console` or [`TelemetryBuilder::stdout_exporter`](crate::TelemetryBuilder::stdout_exporter).
#[derive(Debug, Default)]
pub struct StdoutExporter {
    service_name: Option<Arc<str>>,
}

impl SpanExporter for StdoutExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for span in batch {
            let json = RecordedSpan::new(span, self.service_name.clone()).to_json();
            out.push_str(&json.to_string());
            out.push('\n');
        }
        std::io::stdout()
            .lock()
            .write_all(out.as_bytes())
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = resource
            .get(&Key::from_static_str("service.name"))
            .map(|v| Arc::from(v.as_str().as_ref()));
    }
}
