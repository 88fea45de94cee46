//! A span exporter writing one line per finished span to standard output, in
//! the same format as the log lines.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing::Level;

use super::fmt::{Head, Profile, write_escaped, write_float, write_line, write_span_line};
use super::settings::{DEFAULT_MAX_FIELD_LEN, LogFormat};

/// The target (`target` / ECS `log.logger`) of console span lines.
pub const SPAN_LINE_TARGET: &str = "telltale::span";

type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes each finished span as one line to standard output, in the format of
/// the log lines ([`LogFormat`]), so that stdout stays one format a log
/// shipper (Fluent Bit, Filebeat, Vector) can parse line by line:
///
/// - JSON profiles: a JSON object with the log lines' fixed keys (timestamp,
///   level `INFO`, or `ERROR` for a span with error status, the span name as
///   `message`, target [`SPAN_LINE_TARGET`], service, trace and span IDs,
///   correlation ID), then the span's own keys and its attributes named as
///   in log lines (see [`Profile`]): OpenTelemetry adds `parent_span_id`,
///   `span.kind`, `duration_ms`, `status`, `status_message`; ECS adds
///   `event.duration` (nanoseconds), `event.outcome` (`success`, `failure`,
///   `unknown`), `telltale.span.kind`, `telltale.span.parent_id` and the
///   status message as `error.message`. The timestamp is the span's end.
/// - Pretty: one pretty line.
/// - [`LogFormat::None`]: the OpenTelemetry JSON profile.
///
/// Span events are not repeated: they are the log lines themselves.
/// Selected by `OTEL_TRACES_EXPORTER=console` or
/// [`TelemetryBuilder::stdout_exporter`](crate::TelemetryBuilder::stdout_exporter),
/// which pass it the pipeline's log format.
///
/// ```
/// use telltale_telemetry::{LogFormat, Profile, StdoutExporter};
///
/// let exporter = StdoutExporter::new(LogFormat::Json(Profile::ElasticCommonSchema)).max_len(1024);
/// # drop(exporter);
/// ```
pub struct StdoutExporter {
    service_name: Option<Arc<str>>,
    format: LogFormat,
    max_len: usize,
    writer: Option<SharedWriter>,
}

impl fmt::Debug for StdoutExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutExporter")
            .field("service_name", &self.service_name)
            .field("format", &self.format)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl Default for StdoutExporter {
    /// The OpenTelemetry JSON profile.
    fn default() -> Self {
        StdoutExporter::new(LogFormat::Json(Profile::OpenTelemetry))
    }
}

impl StdoutExporter {
    /// An exporter writing lines in `format`.
    pub fn new(format: LogFormat) -> Self {
        StdoutExporter {
            service_name: None,
            format,
            max_len: DEFAULT_MAX_FIELD_LEN,
            writer: None,
        }
    }

    /// Longest attribute value or name written, in characters (longer ones
    /// are truncated). Defaults to 4096, as log lines.
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max.max(1);
        self
    }

    /// Writes to `writer` instead of standard output.
    #[must_use]
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.writer = Some(Arc::new(Mutex::new(Box::new(writer))));
        self
    }

    /// The lines of `batch`, each with its newline.
    fn render(&self, batch: &[SpanData]) -> String {
        let mut out = String::new();
        let mut values = String::new();
        for span in batch {
            // A `fmt::Write` into a `String` cannot fail.
            let _ = self.render_span(span, &mut values, &mut out);
        }
        out
    }

    fn render_span(&self, span: &SpanData, values: &mut String, out: &mut String) -> fmt::Result {
        let profile = match self.format {
            LogFormat::Json(profile) => Some(profile),
            LogFormat::Pretty => None,
            _ => Some(Profile::OpenTelemetry),
        };
        let ecs = profile == Some(Profile::ElasticCommonSchema);
        // Values are encoded into one buffer; `ranges` say where each is.
        values.clear();
        let mut ranges: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        let mut push =
            |key: &'static str, values: &mut String, write: &dyn Fn(&mut String) -> fmt::Result| {
                let start = values.len();
                write(values)?;
                ranges.push((key, start..values.len()));
                Ok::<(), fmt::Error>(())
            };
        let parent = span.parent_span_id;
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let kind = match span.span_kind {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        };
        let (status, message) = match &span.status {
            Status::Unset => ("unset", None),
            Status::Ok => ("ok", None),
            Status::Error { description } => ("error", Some(description.as_ref())),
        };
        let max = self.max_len;
        let mut extra_keys: Vec<&'static str> = Vec::new();
        if ecs {
            push("event.duration", values, &|v| {
                write!(v, "{}", duration.as_nanos().min(i64::MAX as u128))
            })?;
            let outcome = match status {
                "ok" => "success",
                "error" => "failure",
                _ => "unknown",
            };
            push("event.outcome", values, &|v| write!(v, "\"{outcome}\""))?;
            extra_keys.extend(["event.duration", "event.outcome"]);
            push("span.kind", values, &|v| write!(v, "\"{kind}\""))?;
            if parent != SpanId::INVALID {
                push("span.parent_id", values, &|v| write!(v, "\"{parent}\""))?;
            }
            if let Some(message) = message {
                push("error", values, &|v| json_str(v, message, max))?;
            }
        } else {
            if parent != SpanId::INVALID {
                push("parent_span_id", values, &|v| write!(v, "\"{parent}\""))?;
            }
            push("span.kind", values, &|v| write!(v, "\"{kind}\""))?;
            push("duration_ms", values, &|v| {
                write_float(v, duration.as_secs_f64() * 1000.0)
            })?;
            push("status", values, &|v| write!(v, "\"{status}\""))?;
            if let Some(message) = message {
                push("status_message", values, &|v| json_str(v, message, max))?;
            }
            extra_keys.extend(ranges.iter().map(|(k, _)| *k));
        }
        let fixed = ranges.len();
        let mut attribute_ranges: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        let mut correlation = None;
        for kv in &span.attributes {
            let start = values.len();
            write_value(values, &kv.value, max)?;
            let key = kv.key.as_str();
            if key == super::CORRELATION_ID_ATTRIBUTE {
                correlation = Some(start..values.len());
            }
            attribute_ranges.push((key, start..values.len()));
        }
        let values: &str = values;
        let extra: Vec<(&str, &str)> = ranges[..fixed]
            .iter()
            .filter(|(k, _)| extra_keys.contains(k))
            .map(|(k, r)| (*k, &values[r.clone()]))
            .collect();
        let pairs: Vec<(&str, &str)> = ranges[..fixed]
            .iter()
            .filter(|(k, _)| !extra_keys.contains(k))
            .map(|(k, r)| (*k, &values[r.clone()]))
            .chain(
                attribute_ranges
                    .iter()
                    .map(|(k, r)| (*k, &values[r.clone()])),
            )
            .collect();
        let head = Head {
            time: span.end_time.max(SystemTime::UNIX_EPOCH),
            level: if status == "error" {
                &Level::ERROR
            } else {
                &Level::INFO
            },
            message: &span.name,
            target: SPAN_LINE_TARGET,
            service_name: self.service_name.as_deref(),
            ids: Some((span.span_context.trace_id(), span.span_context.span_id())),
            transaction: None,
            correlation: correlation.map(|r| &values[r]),
            extra: &extra,
        };
        match profile {
            Some(profile) => write_line(out, profile, max, &head, &pairs),
            None => write_span_line(out, &head, &pairs, max),
        }
    }
}

fn json_str(out: &mut String, s: &str, max: usize) -> fmt::Result {
    out.push('"');
    write_escaped(out, s, max)?;
    out.push('"');
    Ok(())
}

/// An attribute value as JSON: booleans, integers and floats as such (floats
/// always with a `.` or an exponent), anything else as an escaped string.
fn write_value(out: &mut String, value: &Value, max: usize) -> fmt::Result {
    match value {
        Value::Bool(b) => write!(out, "{b}"),
        Value::I64(i) => write!(out, "{i}"),
        Value::F64(f) if f.is_finite() => write_float(out, *f),
        Value::String(s) => json_str(out, s.as_str(), max),
        other => json_str(out, &other.to_string(), max),
    }
}

impl SpanExporter for StdoutExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let out = self.render(&batch);
        let result = match &self.writer {
            Some(writer) => writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(out.as_bytes()),
            None => std::io::stdout().lock().write_all(out.as_bytes()),
        };
        result.map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = resource
            .get(&Key::from_static_str("service.name"))
            .map(|v| Arc::from(v.as_str().as_ref()));
    }
}
