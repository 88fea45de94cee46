//! Enriched log lines: JSON with trace and correlation IDs and flattened span
//! fields, or a pretty format for terminals.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Where a formatter finds the dispatch it runs in, to ask the
/// OpenTelemetry layer for span contexts (`tracing::dispatcher::get_default`
/// is not usable while an event is being dispatched).
#[derive(Clone, Debug, Default)]
pub(crate) struct DispatchCell(Arc<OnceLock<WeakDispatch>>);

impl DispatchCell {
    pub(crate) fn set(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }

    pub(crate) fn span_context(&self, id: &tracing::span::Id) -> Option<SpanContext> {
        let dispatch = self.0.get()?.upgrade()?;
        tracing_opentelemetry::get_otel_context(id, &dispatch)
            .map(|cx| cx.span().span_context().clone())
    }
}

/// A layer that tells a [`JsonFormat`] or [`PrettyFormat`] which dispatch it
/// runs in, so it can read the OpenTelemetry trace and span IDs of the
/// current span. Get it from [`JsonFormat::ids_layer`] /
/// [`PrettyFormat::ids_layer`] and add it to the same subscriber (outside any
/// `Vec` of layers). [`init`](crate::init) does this.
#[derive(Clone, Debug)]
pub struct OtelIdsLayer {
    cell: DispatchCell,
}

impl OtelIdsLayer {
    /// A layer bound to no formatter (a placeholder when logs are off).
    pub(crate) fn unbound() -> Self {
        OtelIdsLayer {
            cell: DispatchCell::default(),
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for OtelIdsLayer {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.cell.set(dispatch);
    }
}

/// The ECS version the [`Profile::ElasticCommonSchema`] lines declare.
pub const ECS_VERSION: &str = "8.11.0";

/// Marker appended to values cut at the maximum length.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

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

/// Writes `s` escaped for a JSON string (without quotes): quotes, backslash,
/// every C0 control (ESC included), DEL and every C1 control, so no terminal
/// escape sequence survives. At most `max` characters are written; a longer
/// value ends with [`TRUNCATION_MARKER`].
pub fn write_escaped(out: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    let mut start = 0;
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count == max {
            out.write_str(&s[start..i])?;
            return out.write_str(TRUNCATION_MARKER);
        }
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let control = matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}');
        if escape.is_some() || control {
            out.write_str(&s[start..i])?;
            match escape {
                Some(e) => out.write_str(e)?,
                None => write!(out, "\\u{:04x}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
    }
    out.write_str(&s[start..])
}

fn write_json_str(out: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, s, max)?;
    out.write_char('"')
}

/// Records span fields as `name\tjson\n` lines inside [`FormattedFields`], so
/// [`JsonFormat`] and [`PrettyFormat`] can flatten and de-duplicate them.
///
/// Pair it with either formatter: `fmt::layer().fmt_fields(JsonFields::new(max)).event_format(...)`.
#[derive(Clone, Copy, Debug)]
pub struct JsonFields {
    max_len: usize,
}

impl JsonFields {
    /// Field values longer than `max_len` characters are truncated.
    pub fn new(max_len: usize) -> Self {
        JsonFields {
            max_len: max_len.max(1),
        }
    }
}

impl Default for JsonFields {
    fn default() -> Self {
        JsonFields::new(crate::config::DEFAULT_MAX_FIELD_LEN)
    }
}

struct FieldWriter<'a, W> {
    out: &'a mut W,
    max: usize,
    result: fmt::Result,
}

impl<W: fmt::Write> FieldWriter<'_, W> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut W, usize) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            for c in name.chars() {
                self.out
                    .write_char(if c == '\t' || c == '\n' { '_' } else { c })?;
            }
            self.out.write_char('\t')?;
            value(self.out, self.max)?;
            self.out.write_char('\n')
        })();
    }
}

impl<W: fmt::Write> Visit for FieldWriter<'_, W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.write(field, |out, max| write_json_str(out, &text, max));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |out, max| write_json_str(out, value, max));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.write(field, |out, max| write_json_str(out, &text, max));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.write(field, |out, _| write!(out, "{value}"));
        } else {
            self.write(field, |out, max| {
                write_json_str(out, &value.to_string(), max)
            });
        }
    }
}

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            out: &mut writer,
            max: self.max_len,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = FieldWriter {
            out: &mut current.fields,
            max: self.max_len,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Fields of one event: the message apart, the rest encoded as in spans.
struct EventFields {
    message: Option<String>,
    encoded: String,
    max: usize,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.visitor().record_debug(field, value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.visitor().record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.visitor().record_error(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.visitor().record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.visitor().record_u64(field, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.visitor().record_i128(field, value);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.visitor().record_u128(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.visitor().record_bool(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.visitor().record_f64(field, value);
    }
}

impl EventFields {
    fn visitor(&mut self) -> FieldWriter<'_, String> {
        FieldWriter {
            out: &mut self.encoded,
            max: self.max,
            result: Ok(()),
        }
    }
}

/// Everything a line needs, gathered once for both formats.
struct Line {
    message: String,
    /// Encoded `name\tjson\n` fields: span fields root to leaf, then the
    /// event's (one buffer for all, to allocate little).
    encoded: String,
    span_names: Vec<&'static str>,
    /// The task-local correlation ID as JSON, when no field carries one.
    task_correlation: Option<String>,
    otel: Option<SpanContext>,
}

impl Line {
    /// `(key, json)` pairs in order.
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.encoded
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .collect()
    }
}

/// The correlation ID as JSON: the innermost field, else the task-local.
fn correlation<'a>(pairs: &[(&'a str, &'a str)], line: &'a Line) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| *k == "correlation_id")
        .map(|(_, v)| *v)
        .or(line.task_correlation.as_deref())
}

fn gather<S>(
    ctx: &FmtContext<'_, S, JsonFields>,
    event: &Event<'_>,
    max: usize,
    cell: &DispatchCell,
) -> Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The OpenTelemetry context of the innermost span (not holding any
    // extension lock while asking the OpenTelemetry layer for it).
    let leaf = ctx
        .event_scope()
        .and_then(|mut scope| scope.next())
        .map(|span| span.id());
    let otel = match &leaf {
        Some(id) => cell.span_context(id),
        None => Some(
            opentelemetry::Context::current()
                .span()
                .span_context()
                .clone(),
        ),
    }
    .filter(SpanContext::is_valid);

    let mut fields = EventFields {
        message: None,
        encoded: String::new(),
        max,
    };
    let mut span_names = Vec::new();
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            span_names.push(span.name());
            let ext = span.extensions();
            if let Some(stored) = ext.get::<FormattedFields<JsonFields>>() {
                fields.encoded.push_str(&stored.fields);
            }
        }
    }
    event.record(&mut fields);

    let has_field = fields.encoded.starts_with("correlation_id\t")
        || fields.encoded.contains("\ncorrelation_id\t");
    let task_correlation = if has_field {
        None
    } else {
        telltale_core::correlation::with_current(|id| {
            id.map(|id| {
                let mut s = String::new();
                let _ = write_json_str(&mut s, id.as_str(), max);
                s
            })
        })
    };

    Line {
        message: fields.message.unwrap_or_default(),
        encoded: fields.encoded,
        span_names,
        task_correlation,
        otel,
    }
}

/// Keys that appear later win (inner spans over outer, the event over spans).
fn is_last(fields: &[(&str, &str)], i: usize) -> bool {
    let key = fields[i].0;
    !fields[i + 1..].iter().any(|(k, _)| *k == key)
}

pub(crate) fn severity(level: &Level) -> (&'static str, &'static str, u8) {
    match *level {
        Level::TRACE => ("TRACE", "trace", 1),
        Level::DEBUG => ("DEBUG", "debug", 5),
        Level::INFO => ("INFO", "info", 9),
        Level::WARN => ("WARN", "warn", 13),
        Level::ERROR => ("ERROR", "error", 17),
    }
}

fn write_timestamp(w: &mut Writer<'_>) -> fmt::Result {
    SystemTime.format_time(w)
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
            max_len: crate::config::DEFAULT_MAX_FIELD_LEN,
        }
    }

    /// The `service.name` written on every line. Defaults to none.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The layer to add to the same subscriber so lines carry the
    /// OpenTelemetry `trace_id` and `span_id`; see [`OtelIdsLayer`].
    pub fn ids_layer(&self) -> OtelIdsLayer {
        OtelIdsLayer {
            cell: self.cell.clone(),
        }
    }

    /// Longest message written, in characters. Defaults to 4096. (Field
    /// values are cut by [`JsonFields`].)
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max.max(1);
        self
    }
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

/// Human-readable lines for terminals:
/// `2026-01-02T03:04:05.678901Z  INFO request:db: my_app: loaded order=42 trace_id=… correlation_id="…"`.
///
/// Values are escaped as in [`JsonFormat`]; colors (level only) when `ansi`.
///
/// ```
/// use telltale_telemetry::{JsonFields, PrettyFormat};
///
/// let layer = tracing_subscriber::fmt::layer::<tracing_subscriber::Registry>()
///     .fmt_fields(JsonFields::default())
///     .event_format(PrettyFormat::new(false));
/// # drop(layer);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PrettyFormat {
    cell: DispatchCell,
    ansi: bool,
    max_len: usize,
}

impl PrettyFormat {
    /// A pretty formatter, with colors when `ansi`.
    pub fn new(ansi: bool) -> Self {
        PrettyFormat {
            cell: DispatchCell::default(),
            ansi,
            max_len: crate::config::DEFAULT_MAX_FIELD_LEN,
        }
    }

    /// The layer to add to the same subscriber so lines carry the
    /// OpenTelemetry `trace_id` and `span_id`; see [`OtelIdsLayer`].
    pub fn ids_layer(&self) -> OtelIdsLayer {
        OtelIdsLayer {
            cell: self.cell.clone(),
        }
    }

    /// Longest message written, in characters. Defaults to 4096.
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max.max(1);
        self
    }
}

impl<S> FormatEvent<S, JsonFields> for PrettyFormat
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
        let meta = event.metadata();
        let (upper, ..) = severity(meta.level());
        let color = match *meta.level() {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            Level::DEBUG => "34",
            Level::TRACE => "35",
        };
        write_timestamp(&mut w)?;
        if self.ansi {
            write!(w, " \x1b[{color}m{upper:>5}\x1b[0m ")?;
        } else {
            write!(w, " {upper:>5} ")?;
        }
        for name in &line.span_names {
            write_escaped(&mut w, name, 256)?;
            w.write_char(':')?;
        }
        if !line.span_names.is_empty() {
            w.write_char(' ')?;
        }
        write_escaped(&mut w, meta.target(), self.max_len)?;
        w.write_str(": ")?;
        write_escaped(&mut w, &line.message, self.max_len)?;
        let pairs = line.pairs();
        for (i, (key, value)) in pairs.iter().enumerate() {
            if key.starts_with("otel.") || *key == "correlation_id" || !is_last(&pairs, i) {
                continue;
            }
            w.write_char(' ')?;
            write_escaped(&mut w, key, 256)?;
            write!(w, "={value}")?;
        }
        if let Some(sc) = &line.otel {
            write!(w, " trace_id={} span_id={}", sc.trace_id(), sc.span_id())?;
        }
        if let Some(id) = correlation(&pairs, &line) {
            write!(w, " correlation_id={id}")?;
        }
        w.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, max: usize) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s, max).unwrap();
        out
    }

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(escaped("a\"b\\c", 100), r#"a\"b\\c"#);
        assert_eq!(
            escaped("\x1b[31mred\x1b[0m", 100),
            r"\u001b[31mred\u001b[0m"
        );
        assert_eq!(
            escaped("del\x7f c1\u{9b}31m", 100),
            r"del\u007f c1\u009b31m"
        );
        assert_eq!(escaped("l1\nl2\r\t\0", 100), r"l1\nl2\r\t\u0000");
        assert_eq!(escaped("é ü ✓", 100), "é ü ✓");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            let out = escaped(&c.to_string(), 10);
            assert!(out.chars().all(|c| !c.is_control()), "{out:?}");
            let parsed: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
            assert_eq!(parsed, c.to_string());
        }
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(escaped("abcdef", 3), format!("abc{TRUNCATION_MARKER}"));
        assert_eq!(escaped("ééééé", 2), format!("éé{TRUNCATION_MARKER}"));
        assert_eq!(escaped("abc", 3), "abc");
    }
}
