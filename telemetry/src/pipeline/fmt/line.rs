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
    pub(super) span_names: Vec<&'static str>,
    /// The task-local correlation ID as JSON, when no field carries one.
    task_correlation: Option<String>,
    pub(super) otel: Option<SpanContext>,
}

impl Line {
    /// `(key, json)` pairs in order.
    pub(super) fn pairs(&self) -> Vec<(&str, &str)> {
        self.encoded
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .collect()
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
pub(super) fn is_last(fields: &[(&str, &str)], i: usize) -> bool {
    let key = fields[i].0;
    !fields[i + 1..].iter().any(|(k, _)| *k == key)
}
