//! The OpenTelemetry resource every signal of the pipeline carries, and the
//! `service.name` in it.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use super::TelemetryBuilder;

impl TelemetryBuilder {
    /// The service name: the one set, else a `service.name` resource
    /// attribute, else the semantic conventions' default for `executable`.
    pub(super) fn resolved_service_name(&self, executable: Option<&str>) -> String {
        let service_name = self.service_name.clone().or_else(|| {
            self.resource
                .iter()
                .find(|kv| kv.key.as_str() == "service.name")
                .map(|kv| kv.value.to_string())
        });
        service_name.unwrap_or_else(|| default_service_name(executable))
    }

    /// The SDK's `telemetry.sdk.*` attributes, the attributes set, the
    /// executable's name and `service_name`.
    pub(super) fn otel_resource(
        &self,
        executable: Option<String>,
        service_name: String,
    ) -> Resource {
        let mut resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(self.resource.iter().cloned());
        // The executable's name on its own (what `unknown_service:` is
        // followed by), unless the user set the attribute.
        if let Some(exe) = executable
            && !self
                .resource
                .iter()
                .any(|kv| kv.key.as_str() == "process.executable.name")
        {
            resource = resource.with_attribute(KeyValue::new("process.executable.name", exe));
        }
        resource.with_service_name(service_name).build()
    }
}

/// The executable's file name without extension (`process.executable.name`),
/// when known.
pub(super) fn executable_name() -> Option<String> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
}

/// The `service.name` the OpenTelemetry resource semantic conventions make an
/// SDK fall back to: `unknown_service:` followed by the executable's name, or
/// `unknown_service` alone when that is not available.
fn default_service_name(executable: Option<&str>) -> String {
    match executable {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".to_owned(),
    }
}
