//! [`JsonFormat`]: one JSON object per line, with OpenTelemetry or Elastic
//! Common Schema names ([`Profile`]).

use std::fmt;
use std::sync::Arc;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

use super::escape::write_json_str;
use super::fields::JsonFields;
use super::line::{correlation, gather, is_last};
use super::{DispatchCell, OtelIdsLayer, format_common, severity, write_timestamp};
use crate::pipeline::settings::DEFAULT_MAX_FIELD_LEN;

/// The ECS version the [`Profile::ElasticCommonSchema`] lines declare.
pub const ECS_VERSION: &str = "8.11.0";

/// How the fixed keys of a JSON log line are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// OpenTelemetry log data model names: `timestamp`, `level`,
    /// `severity_text`, `severity_number`, `message`, `target`,
    /// `service.name`, `trace_id`, `span_id`, `correlation_id`.
    #[default]
    OpenTelemetry,
    /// Elastic Common Schema: `@timestamp`, `log.level`, `message`,
    /// `log.logger`, `service.name`, `trace.id`, `span.id`,
    /// `http.request.id` (the correlation ID), `ecs.version`.
    ElasticCommonSchema,
}

struct Keys {
    timestamp: &'static str,
    level: &'static str,
    target: &'static str,
    trace_id: &'static str,
    span_id: &'static str,
    correlation_id: &'static str,
    reserved: &'static [&'static str],
}

const OTEL_KEYS: Keys = Keys {
    timestamp: "timestamp",
    level: "level",
    target: "target",
    trace_id: "trace_id",
    span_id: "span_id",
    correlation_id: "correlation_id",
    reserved: &[
        "timestamp",
        "level",
        "severity_text",
        "severity_number",
        "message",
        "target",
        "service.name",
        "trace_id",
        "span_id",
        "correlation_id",
    ],
};

const ECS_KEYS: Keys = Keys {
    timestamp: "@timestamp",
    level: "log.level",
    target: "log.logger",
    trace_id: "trace.id",
    span_id: "span.id",
    correlation_id: "http.request.id",
    reserved: &[
        "@timestamp",
        "log.level",
        "message",
        "log.logger",
        "service.name",
        "trace.id",
        "span.id",
        "http.request.id",
        "ecs.version",
        "correlation_id",
    ],
};

impl Profile {
    fn keys(self) -> &'static Keys {
        match self {
            Profile::OpenTelemetry => &OTEL_KEYS,
            Profile::ElasticCommonSchema => &ECS_KEYS,
        }
    }
}

/// One JSON object per line, with trace and correlation IDs and the fields of
/// every enclosing span at the top level.
///
/// The `trace_id`/`span_id` are those of the OpenTelemetry span the innermost
/// tracing span exports (read from `tracing-opentelemetry`), so they match the
/// exported trace, also when its parent came from an incoming `traceparent`.
/// The correlation ID is the nearest span's `correlation_id` field, else
/// [`telltale_core::correlation::current`]. Span fields named `otel.*` are
/// left out; a field named like a fixed key is left out too.
///
/// ```
/// use telltale_telemetry::{JsonFields, JsonFormat, Profile};
/// use tracing_subscriber::prelude::*;
///
/// # let writer = std::io::sink;
/// let format = JsonFormat::new(Profile::ElasticCommonSchema).service_name("checkout");
/// let ids = format.ids_layer(); // lets lines carry trace.id / span.id
/// let layer = tracing_subscriber::fmt::layer()
///     .fmt_fields(JsonFields::new(1024))
///     .event_format(format)
///     .with_writer(writer);
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_opentelemetry::layer())
///     .with(layer)
///     .with(ids);
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("request", http.route = "/orders/{id}");
///     span.in_scope(|| tracing::info!(order = 42, "order \x1b[31mloaded"));
///     // {"@timestamp":"…","log.level":"info","message":"order \u001b[31mloaded",
///     //  "log.logger":"…","service.name":"checkout","ecs.version":"8.11.0",
///     //  "http.route":"/orders/{id}","order":42}
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct JsonFormat {
    cell: DispatchCell,
    profile: Profile,
    service_name: Option<Arc<str>>,
    max_len: usize,
}

impl JsonFormat {
    /// A formatter with the given naming profile.
    pub fn new(profile: Profile) -> Self {
        JsonFormat {
            cell: DispatchCell::default(),
            profile,
            service_name: None,
            max_len: DEFAULT_MAX_FIELD_LEN,
        }
    }

    /// The `service.name` written on every line. Defaults to none.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    format_common!();
}

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = gather(ctx, event, self.max_len, &self.cell);
        let keys = self.profile.keys();
        let meta = event.metadata();
        let (upper, lower, number) = severity(meta.level());

        write!(w, "{{\"{}\":\"", keys.timestamp)?;
        write_timestamp(&mut w)?;
        w.write_char('"')?;
        match self.profile {
            Profile::OpenTelemetry => write!(
                w,
                ",\"level\":\"{upper}\",\"severity_text\":\"{upper}\",\"severity_number\":{number}"
            )?,
            Profile::ElasticCommonSchema => write!(w, ",\"{}\":\"{lower}\"", keys.level)?,
        }
        w.write_str(",\"message\":")?;
        write_json_str(&mut w, &line.message, self.max_len)?;
        write!(w, ",\"{}\":", keys.target)?;
        write_json_str(&mut w, meta.target(), self.max_len)?;
        if let Some(name) = &self.service_name {
            w.write_str(",\"service.name\":")?;
            write_json_str(&mut w, name, self.max_len)?;
        }
        if let Some(sc) = &line.otel {
            write!(
                w,
                ",\"{}\":\"{}\",\"{}\":\"{}\"",
                keys.trace_id,
                sc.trace_id(),
                keys.span_id,
                sc.span_id()
            )?;
        }
        let pairs = line.pairs();
        if let Some(id) = correlation(&pairs, &line) {
            write!(w, ",\"{}\":{id}", keys.correlation_id)?;
        }
        if self.profile == Profile::ElasticCommonSchema {
            write!(w, ",\"ecs.version\":\"{ECS_VERSION}\"")?;
        }
        for (i, (key, value)) in pairs.iter().enumerate() {
            if key.starts_with("otel.") || keys.reserved.contains(key) || !is_last(&pairs, i) {
                continue;
            }
            w.write_char(',')?;
            write_json_str(&mut w, key, 256)?;
            write!(w, ":{value}")?;
        }
        w.write_str("}\n")
    }
}
