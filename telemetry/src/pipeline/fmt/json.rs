//! [`JsonFormat`]: one JSON object per line, with OpenTelemetry or Elastic
//! Common Schema names ([`Profile`]).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, TraceId};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

use super::ecs::{self, KEYWORD_MAX_CHARS, write_keyword};
use super::escape::write_json_str;
use super::fields::JsonFields;
use super::line::{correlation, gather, is_last};
use super::{DispatchCell, OtelIdsLayer, format_common, severity};
use crate::pipeline::settings::DEFAULT_MAX_FIELD_LEN;

/// The ECS version the [`Profile::ElasticCommonSchema`] lines declare.
pub const ECS_VERSION: &str = "8.11.0";

/// How the keys of a JSON log line are named.
///
/// # OpenTelemetry profile: the keys a line promises
///
/// | key | JSON type | when |
/// | --- | --- | --- |
/// | `timestamp` | string, RFC 3339 UTC with microseconds | always |
/// | `level`, `severity_text` | string: `TRACE` `DEBUG` `INFO` `WARN` `ERROR` | always |
/// | `severity_number` | integer: 1, 5, 9, 13, 17 (OpenTelemetry severity) | always |
/// | `message` | string | always |
/// | `target` | string (the tracing target; `telltale::span` on console span lines) | always |
/// | `service.name` | string | when set |
/// | `trace_id`, `span_id` | string, 32 / 16 lowercase hex digits | inside a sampled span, both or neither |
/// | `correlation_id` | string | when known |
/// | any other key | string, integer, float (always with a `.` or an exponent), boolean | span and event fields, flat (dotted names), never objects or arrays; `otel.*` fields are left out |
///
/// Console span lines (`OTEL_TRACES_EXPORTER=console`) add `parent_span_id`
/// (when there is a parent), `span.kind`, `duration_ms` (float), `status`
/// (`unset`, `ok`, `error`) and `status_message` (when set).
///
/// # Elastic Common Schema profile: the mapping
///
/// Fixed keys: `@timestamp`, `log.level`, `message`, `log.logger` (the
/// target), `service.name`, `trace.id`, `span.id`, `transaction.id` (the
/// span ID of the outermost enclosing span: the local root, as Elastic APM
/// names it), `http.request.id` (the correlation ID), `ecs.version`.
/// Span and event fields are mapped by this table (ECS 8.11 field and type):
///
/// | field telltale records | ECS field | ECS type |
/// | --- | --- | --- |
/// | `http.request.method` | `http.request.method` (the real method: `http.request.method_original` when the field says `_OTHER`) | keyword |
/// | `http.response.status_code` | `http.response.status_code` | long |
/// | `network.protocol.version` | `http.version` (ECS `network.protocol` is a keyword) | keyword |
/// | `url.full`, `url.path`, `url.query`, `url.scheme` | same name | wildcard / keyword |
/// | `server.address`, `server.port` | same name | keyword, long |
/// | `client.address` | `client.address`, and `client.ip` when it is an IP address | keyword, ip |
/// | `client.port` | `client.port` | long |
/// | `user_agent.original` | `user_agent.original` | keyword |
/// | `error.type`, `exception.type` | `error.type` | keyword |
/// | `error`, `error.message`, `exception.message` | `error.message` (`error` is an object in ECS) | match_only_text |
/// | `exception.stacktrace` | `error.stack_trace` | wildcard |
/// | `user`, `user.name` | `user.name` (`user` is an object in ECS) | keyword |
/// | `user.id` | `user.id` | keyword |
/// | `correlation_id` | `http.request.id` (fixed key) | keyword |
/// | `duration_ms` (a float of milliseconds: the request log line) | `event.duration` (nanoseconds) | long |
/// | anything else (`http.route`, `rpc.*`, `chaos.*`, your own fields) | `telltale.<name>`, e.g. `telltale.http.route` | as recorded |
///
/// Values: keyword values (and strings under `telltale.*`) are at most 1,024
/// characters (ECS `ignore_above`; longer ones are cut, the truncation
/// marker included); floats always carry a `.` or an exponent; a `long`
/// field whose value is not an integer goes under `telltale.*` instead; a
/// field `a` in a line that also has `a.b` is written as `telltale.a._value`
/// (a key cannot be a value and an object at once). Request fields (method,
/// URL, peer, protocol, status: `http.*`, `url.*`, `server.*`, `client.*`,
/// `network.*`, `user_agent.*`, `rpc.*`, `error.type`) come from the
/// innermost span that has any, so an outbound call's line never shows the
/// inbound request's path beside the call's URL; this holds in every format.
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
/// use telltale_telemetry::{JsonFields, JsonFormat, Profile};
/// use tracing_subscriber::prelude::*;
///
/// #[derive(Clone, Default)]
/// struct Buf(Arc<Mutex<Vec<u8>>>);
/// impl Write for Buf {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(b)
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
/// let buf = Buf::default();
/// let writer = buf.clone();
/// let layer = tracing_subscriber::fmt::layer()
///     .fmt_fields(JsonFields::default())
///     .event_format(JsonFormat::new(Profile::ElasticCommonSchema))
///     .with_writer(move || writer.clone());
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     let span = tracing::info_span!(
///         "request",
///         http.request.method = "_OTHER",
///         http.request.method_original = "PURGE",
///         network.protocol.version = "1.1",
///         http.route = "/cache/{key}",
///         client.address = "10.1.2.3",
///     );
///     span.in_scope(|| tracing::warn!(error = "disk full", user = "ada", failure_rate = 1.0, "purge failed"));
/// });
/// let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
/// let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
/// assert_eq!(line["http.request.method"], "PURGE");
/// assert_eq!(line["http.version"], "1.1");
/// assert_eq!(line["telltale.http.route"], "/cache/{key}");
/// assert_eq!(line["client.ip"], "10.1.2.3");
/// assert_eq!(line["error.message"], "disk full");
/// assert_eq!(line["user.name"], "ada");
/// assert!(text.contains(r#""telltale.failure_rate":1.0"#));
/// assert!(line.get("network.protocol.version").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// OpenTelemetry log data model names: `timestamp`, `level`,
    /// `severity_text`, `severity_number`, `message`, `target`,
    /// `service.name`, `trace_id`, `span_id`, `correlation_id`; span and
    /// event fields under their own names.
    #[default]
    OpenTelemetry,
    /// Elastic Common Schema 8.11: `@timestamp`, `log.level`, `message`,
    /// `log.logger`, `service.name`, `trace.id`, `span.id`,
    /// `transaction.id`, `http.request.id` (the correlation ID),
    /// `ecs.version`; span and event fields mapped by the table above.
    ElasticCommonSchema,
}

/// Keys the OpenTelemetry profile writes itself: a field of the same name is
/// left out.
const OTEL_RESERVED: &[&str] = &[
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
];

/// The fixed part of a line, for log events and console span lines alike.
pub(crate) struct Head<'a> {
    pub(crate) time: SystemTime,
    pub(crate) level: &'a Level,
    pub(crate) message: &'a str,
    pub(crate) target: &'a str,
    pub(crate) service_name: Option<&'a str>,
    pub(crate) ids: Option<(TraceId, SpanId)>,
    /// ECS `transaction.id`.
    pub(crate) transaction: Option<SpanId>,
    /// The correlation ID as JSON.
    pub(crate) correlation: Option<&'a str>,
    /// Keys written as they are after the fixed ones (names already in the
    /// profile's scheme).
    pub(crate) extra: &'a [(&'a str, &'a str)],
}

/// Writes one JSON line (with its newline) in `profile`: the fixed keys of
/// `head`, then `pairs` (`(field name, JSON value)`, later ones winning).
pub(crate) fn write_line(
    w: &mut impl fmt::Write,
    profile: Profile,
    max_len: usize,
    head: &Head<'_>,
    pairs: &[(&str, &str)],
) -> fmt::Result {
    let (upper, lower, number) = severity(head.level);
    let ecs = profile == Profile::ElasticCommonSchema;
    let time = humantime::format_rfc3339_micros(head.time);
    if ecs {
        write!(
            w,
            "{{\"@timestamp\":\"{time}\",\"log.level\":\"{lower}\",\"message\":"
        )?;
        write_json_str(w, head.message, max_len)?;
        w.write_str(",\"log.logger\":")?;
        write_json_str(w, head.target, KEYWORD_MAX_CHARS)?;
    } else {
        write!(
            w,
            "{{\"timestamp\":\"{time}\",\"level\":\"{upper}\",\"severity_text\":\"{upper}\",\"severity_number\":{number},\"message\":"
        )?;
        write_json_str(w, head.message, max_len)?;
        w.write_str(",\"target\":")?;
        write_json_str(w, head.target, max_len)?;
    }
    if let Some(name) = head.service_name {
        w.write_str(",\"service.name\":")?;
        write_json_str(w, name, if ecs { KEYWORD_MAX_CHARS } else { max_len })?;
    }
    if let Some((trace_id, span_id)) = head.ids {
        if ecs {
            write!(w, ",\"trace.id\":\"{trace_id}\",\"span.id\":\"{span_id}\"")?;
        } else {
            write!(w, ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"")?;
        }
    }
    if ecs && let Some(id) = head.transaction {
        write!(w, ",\"transaction.id\":\"{id}\"")?;
    }
    if let Some(id) = head.correlation {
        if ecs {
            w.write_str(",\"http.request.id\":")?;
            write_keyword(w, id)?;
        } else {
            write!(w, ",\"correlation_id\":{id}")?;
        }
    }
    if ecs {
        write!(w, ",\"ecs.version\":\"{ECS_VERSION}\"")?;
    }
    for (key, value) in head.extra {
        w.write_char(',')?;
        write_json_str(w, key, 256)?;
        write!(w, ":{value}")?;
    }
    if ecs {
        ecs::write_fields(w, pairs)?;
    } else {
        for (i, (key, value)) in pairs.iter().enumerate() {
            if key.starts_with("otel.") || OTEL_RESERVED.contains(key) || !is_last(pairs, i) {
                continue;
            }
            w.write_char(',')?;
            write_json_str(w, key, 256)?;
            write!(w, ":{value}")?;
        }
    }
    w.write_str("}\n")
}

/// One JSON object per line, with trace and correlation IDs and the fields of
/// every enclosing span at the top level.
///
/// The `trace_id`/`span_id` are those of the OpenTelemetry span the innermost
/// tracing span exports (read from `tracing-opentelemetry`), so they match the
/// exported trace, also when its parent came from an incoming `traceparent`.
/// The correlation ID is the nearest span's `correlation_id` field, else
/// [`telltale_core::correlation::current`]. Span fields named `otel.*` are
/// left out; in the OpenTelemetry profile a field named like a fixed key is
/// left out too; in the ECS profile fields are mapped as [`Profile`] shows.
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
///     //  "telltale.http.route":"/orders/{id}","telltale.order":42}
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
        let ecs = self.profile == Profile::ElasticCommonSchema;
        let line = gather(ctx, event, self.max_len, &self.cell, ecs);
        let pairs = line.pairs();
        let head = Head {
            time: SystemTime::now(),
            level: event.metadata().level(),
            message: &line.message,
            target: event.metadata().target(),
            service_name: self.service_name.as_deref(),
            ids: line.otel.as_ref().map(|sc| (sc.trace_id(), sc.span_id())),
            transaction: line.root.as_ref().map(SpanContext::span_id),
            correlation: correlation(&pairs, &line),
            extra: &[],
        };
        write_line(&mut w, self.profile, self.max_len, &head, &pairs)
    }
}
