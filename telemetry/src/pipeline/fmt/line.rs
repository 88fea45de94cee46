//! What one log line says, gathered once for both formats: the message, the
//! span and event fields, the span names, the correlation ID and the
//! OpenTelemetry span context.

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::DispatchCell;
use super::escape::write_json_str;
use super::fields::{EventFields, JsonFields};

/// Everything a line needs, gathered once for both formats.
pub(super) struct Line {
    pub(super) message: String,
    /// Encoded `name\tjson\n` fields: span fields root to leaf, then the
    /// event's (one buffer for all, to allocate little).
    encoded: String,
    /// The enclosing spans, root to leaf: name and where its fields start in
    /// `encoded`.
    pub(super) spans: Vec<(&'static str, usize)>,
    /// Where the event's own fields start in `encoded`.
    event_start: usize,
    /// The task-local correlation ID as JSON, when no field carries one.
    task_correlation: Option<String>,
    pub(super) otel: Option<SpanContext>,
    /// The OpenTelemetry context of the outermost enclosing span (the local
    /// root: ECS `transaction.id`), when asked for.
    pub(super) root: Option<SpanContext>,
}

/// Whether `key` describes a request (its method, URL, peer, protocol,
/// outcome): such fields are taken from one span only, the innermost that
/// has any, so an outbound call's fields never mix with the inbound
/// request's around it. Identity fields (IDs, correlation) are not request
/// fields.
pub(super) fn is_request_field(key: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "http.",
        "url.",
        "server.",
        "client.",
        "network.",
        "user_agent.",
        "rpc.",
        "source.",
        "destination.",
    ];
    key == "error.type" || PREFIXES.iter().any(|p| key.starts_with(p))
}

impl Line {
    /// `(key, json)` pairs in order: span fields root to leaf, then the
    /// event's. Request fields ([`is_request_field`]) come only from the
    /// innermost span that has any.
    pub(super) fn pairs(&self) -> Vec<(&str, &str)> {
        // First pass: the innermost span with a request field.
        let mut request_span = None;
        self.walk(|key, _, span| {
            if span.is_some() && is_request_field(key) {
                request_span = span;
            }
        });
        let mut pairs = Vec::new();
        self.walk(|key, value, span| {
            if span.is_none() || span == request_span || !is_request_field(key) {
                pairs.push((key, value));
            }
        });
        pairs
    }

    /// Calls `f(key, json, span)` for every encoded field in order; `span` is
    /// the index in `spans` of the span the field belongs to, `None` for the
    /// event's own fields.
    fn walk<'a>(&'a self, mut f: impl FnMut(&'a str, &'a str, Option<usize>)) {
        let mut span = 0;
        let mut at = 0;
        for raw in self.encoded.split_inclusive('\n') {
            let start = at;
            at += raw.len();
            let Some((key, value)) = raw.trim_end_matches('\n').split_once('\t') else {
                continue;
            };
            if start < self.event_start {
                while span + 1 < self.spans.len() && self.spans[span + 1].1 <= start {
                    span += 1;
                }
                f(key, value, Some(span));
            } else {
                f(key, value, None);
            }
        }
    }
}

/// The correlation ID as JSON: the innermost field, else the task-local.
pub(super) fn correlation<'a>(pairs: &[(&'a str, &'a str)], line: &'a Line) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| *k == "correlation_id")
        .map(|(_, v)| *v)
        .or(line.task_correlation.as_deref())
}

pub(super) fn gather<S>(
    ctx: &FmtContext<'_, S, JsonFields>,
    event: &Event<'_>,
    max: usize,
    cell: &DispatchCell,
    want_root: bool,
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
    let root = if want_root && leaf.is_some() {
        ctx.event_scope()
            .and_then(|scope| scope.from_root().next())
            .map(|span| span.id())
            .and_then(|id| {
                if Some(&id) == leaf.as_ref() {
                    otel.clone()
                } else {
                    cell.span_context(&id)
                }
            })
            .filter(SpanContext::is_valid)
    } else {
        None
    };

    let mut fields = EventFields {
        message: None,
        encoded: String::new(),
        max,
    };
    let mut spans = Vec::new();
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            spans.push((span.name(), fields.encoded.len()));
            let ext = span.extensions();
            if let Some(stored) = ext.get::<FormattedFields<JsonFields>>() {
                fields.encoded.push_str(&stored.fields);
            }
        }
    }
    let event_start = fields.encoded.len();
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
        spans,
        event_start,
        task_correlation,
        otel,
        root,
    }
}

/// Keys that appear later win (inner spans over outer, the event over spans).
pub(super) fn is_last(fields: &[(&str, &str)], i: usize) -> bool {
    let key = fields[i].0;
    !fields[i + 1..].iter().any(|(k, _)| *k == key)
}
