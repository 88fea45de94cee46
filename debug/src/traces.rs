//! Traces and the dependency map, from the flight recorder's spans.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use serde_json::{Value, json};
use telltale_telemetry::{FlightRecorder, RecordedSpan};

/// Traces listed per table (recent, failed).
pub const LIST_LEN: usize = 20;
/// Traces listed as the slowest.
pub const SLOWEST_LEN: usize = 10;

/// One trace as the lists show it: its local root and a summary.
#[derive(Clone, Debug)]
pub(crate) struct TraceSummary {
    pub(crate) trace_id: TraceId,
    pub(crate) root: Arc<RecordedSpan>,
    pub(crate) spans: usize,
    pub(crate) failed: bool,
    pub(crate) correlation_id: Option<String>,
}

impl TraceSummary {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "trace_id": self.trace_id.to_string(),
            "root": self.root.name(),
            "service": self.root.service_name(),
            "kind": kind(self.root.kind()),
            "start_unix_ms": unix_ms(self.root.start_time()),
            "duration_ms": ms(self.root.duration()),
            "spans": self.spans,
            "failed": self.failed,
            "correlation_id": self.correlation_id,
        })
    }
}

pub(crate) fn kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn is_error(span: &RecordedSpan) -> bool {
    matches!(span.status(), Status::Error { .. })
}

/// The traces in the ring, newest last (by the end of their root).
pub(crate) fn summaries(spans: &[Arc<RecordedSpan>]) -> Vec<TraceSummary> {
    let mut by_trace: HashMap<TraceId, Vec<&Arc<RecordedSpan>>> = HashMap::new();
    for s in spans {
        by_trace.entry(s.trace_id()).or_default().push(s);
    }
    let mut out: Vec<TraceSummary> = by_trace
        .into_iter()
        .map(|(trace_id, spans)| {
            let ids: HashSet<_> = spans.iter().map(|s| s.span_id()).collect();
            // The local root: no parent, or a parent that is not here (the
            // caller's span, in another process); the longest such span.
            let root = spans
                .iter()
                .filter(|s| s.parent_span_id().is_none_or(|p| !ids.contains(&p)))
                .max_by_key(|s| s.duration())
                .or_else(|| spans.iter().max_by_key(|s| s.duration()))
                .map(|s| Arc::clone(s))
                .expect("a trace has at least one span");
            let correlation_id = root
                .correlation_id()
                .or_else(|| spans.iter().find_map(|s| s.correlation_id()));
            TraceSummary {
                trace_id,
                failed: spans.iter().any(|s| is_error(s)),
                spans: spans.len(),
                correlation_id,
                root,
            }
        })
        .collect();
    out.sort_by_key(|t| t.root.end_time());
    out
}

/// Recent, slowest and failed traces.
pub(crate) struct Lists {
    pub(crate) recent: Vec<TraceSummary>,
    pub(crate) slowest: Vec<TraceSummary>,
    pub(crate) failed: Vec<TraceSummary>,
}

pub(crate) fn lists(spans: &[Arc<RecordedSpan>]) -> Lists {
    let all = summaries(spans);
    let recent = all.iter().rev().take(LIST_LEN).cloned().collect();
    let failed = all
        .iter()
        .rev()
        .filter(|t| t.failed)
        .take(LIST_LEN)
        .cloned()
        .collect();
    let mut slowest = all;
    slowest.sort_by_key(|t| std::cmp::Reverse(t.root.duration()));
    slowest.truncate(SLOWEST_LEN);
    Lists {
        recent,
        slowest,
        failed,
    }
}

/// The spans of the trace `query` names: 32 hex digits are a trace ID,
/// anything else a correlation ID (every trace it appears in).
pub(crate) fn lookup(recorder: &FlightRecorder, query: &str) -> Vec<Arc<RecordedSpan>> {
    if let Some(spans) = recorder.trace_hex(query).filter(|s| !s.is_empty()) {
        return spans;
    }
    recorder.by_correlation_id(query)
}

/// One row of a waterfall.
pub(crate) struct Row {
    pub(crate) span: Arc<RecordedSpan>,
    pub(crate) depth: usize,
    /// Offset from the trace's first start and the span's length, in
    /// fractions of the whole (0..=1).
    pub(crate) offset: f64,
    pub(crate) width: f64,
}

/// The spans of one or more traces as waterfall rows: each trace's spans
/// in start order, children under their parent.
pub(crate) fn waterfall(spans: &[Arc<RecordedSpan>]) -> Vec<Row> {
    let Some(t0) = spans.iter().map(|s| s.start_time()).min() else {
        return Vec::new();
    };
    let t1 = spans.iter().map(|s| s.end_time()).max().unwrap_or(t0);
    let total = t1.duration_since(t0).unwrap_or_default().as_secs_f64();
    let ids: HashSet<_> = spans.iter().map(|s| (s.trace_id(), s.span_id())).collect();
    let mut children: HashMap<(TraceId, Option<SpanId>), Vec<&Arc<RecordedSpan>>> = HashMap::new();
    for s in spans {
        let parent = s
            .parent_span_id()
            .filter(|p| ids.contains(&(s.trace_id(), *p)));
        children.entry((s.trace_id(), parent)).or_default().push(s);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_time());
    }
    let mut roots: Vec<&Arc<RecordedSpan>> = children
        .iter()
        .filter(|((_, parent), _)| parent.is_none())
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    roots.sort_by_key(|s| s.start_time());
    let mut rows = Vec::with_capacity(spans.len());
    let mut stack: Vec<(&Arc<RecordedSpan>, usize)> =
        roots.into_iter().rev().map(|s| (s, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((span, depth)) = stack.pop() {
        if !seen.insert((span.trace_id(), span.span_id())) {
            continue; // a cycle of IDs cannot loop forever
        }
        let start = span
            .start_time()
            .duration_since(t0)
            .unwrap_or_default()
            .as_secs_f64();
        let (offset, width) = if total > 0.0 {
            (start / total, span.duration().as_secs_f64() / total)
        } else {
            (0.0, 1.0)
        };
        rows.push(Row {
            span: Arc::clone(span),
            depth,
            offset: offset.clamp(0.0, 1.0),
            width: width.clamp(0.0, 1.0),
        });
        if let Some(kids) = children.get(&(span.trace_id(), Some(span.span_id()))) {
            for kid in kids.iter().rev() {
                stack.push((kid, depth + 1));
            }
        }
    }
    rows
}

/// Where a CLIENT span went: `server.address:server.port`, else the span
/// name.
pub(crate) fn target(span: &RecordedSpan) -> String {
    let attr = |k: &str| span.attribute(k).map(|v| v.as_str().into_owned());
    match (attr("server.address"), attr("server.port")) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host,
        _ => attr("peer.service").unwrap_or_else(|| span.name().to_owned()),
    }
}

/// One edge of the dependency map.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dependency {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) calls: usize,
    pub(crate) errors: usize,
    pub(crate) p99_ms: f64,
}

impl Dependency {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "from": self.from,
            "to": self.to,
            "calls": self.calls,
            "errors": self.errors,
            "p99_ms": self.p99_ms,
        })
    }
}

/// The dependency map from CLIENT spans: calls, errors and p99 per
/// (service, target), in the order first called.
pub(crate) fn dependencies(spans: &[Arc<RecordedSpan>], fallback_service: &str) -> Vec<Dependency> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut edges: HashMap<(String, String), (usize, Vec<Duration>)> = HashMap::new();
    let mut sorted: Vec<&Arc<RecordedSpan>> = spans
        .iter()
        .filter(|s| *s.kind() == SpanKind::Client)
        .collect();
    sorted.sort_by_key(|s| s.start_time());
    for s in sorted {
        let from = s.service_name().unwrap_or(fallback_service).to_owned();
        let key = (from, target(s));
        let entry = edges.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (0, Vec::new())
        });
        entry.0 += usize::from(is_error(s));
        entry.1.push(s.duration());
    }
    order
        .into_iter()
        .filter_map(|key| {
            let (errors, mut durations) = edges.remove(&key)?;
            durations.sort();
            let idx =
                ((durations.len() as f64 * 0.99).ceil() as usize).clamp(1, durations.len()) - 1;
            Some(Dependency {
                calls: durations.len(),
                errors,
                p99_ms: ms(durations[idx]),
                from: key.0,
                to: key.1,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// A SERVER span calling `payments` twice (one failing) then `fraud`
    /// once: the map in call order, the waterfall nested.
    #[test]
    fn dependencies_in_call_order_and_a_nested_waterfall() {
        let recorder = FlightRecorder::new(100);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .build();
        let tracer = provider.tracer("t");
        let t0 = SystemTime::now();
        let root = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(t0)
            .start(&tracer);
        let cx = opentelemetry::Context::current_with_span(root);
        for (i, (host, ms, failed)) in [
            ("payments", 10, false),
            ("payments", 30, true),
            ("fraud", 5, false),
        ]
        .into_iter()
        .enumerate()
        {
            let start = t0 + Duration::from_millis(40 * i as u64);
            let mut span = tracer
                .span_builder("POST")
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .with_attributes([
                    KeyValue::new("server.address", host),
                    KeyValue::new("server.port", 443),
                ])
                .start_with_context(&tracer, &cx);
            if failed {
                span.set_status(Status::error("503"));
            }
            span.end_with_timestamp(start + Duration::from_millis(ms));
        }
        cx.span()
            .end_with_timestamp(t0 + Duration::from_millis(200));

        let spans = recorder.spans();
        let deps = dependencies(&spans, "checkout");
        assert_eq!(deps.len(), 2);
        assert_eq!(
            (deps[0].to.as_str(), deps[0].calls, deps[0].errors),
            ("payments:443", 2, 1)
        );
        assert_eq!(deps[0].p99_ms, 30.0);
        assert_eq!(
            (deps[1].to.as_str(), deps[1].calls, deps[1].errors),
            ("fraud:443", 1, 0)
        );
        assert!(
            deps[0].from.starts_with("unknown_service"),
            "the span's service.name"
        );

        let rows = waterfall(&spans);
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].span.name(), rows[0].depth), ("POST /checkout", 0));
        assert!(rows[1..].iter().all(|r| r.depth == 1));
        assert_eq!(target(&rows[3].span), "fraud:443");
        assert!((rows[2].offset - 0.2).abs() < 1e-9 && (rows[2].width - 0.15).abs() < 1e-9);

        let lists = lists(&spans);
        assert_eq!(lists.recent.len(), 1);
        assert_eq!(lists.recent[0].root.name(), "POST /checkout");
        assert_eq!(lists.recent[0].spans, 4);
        assert!(lists.failed[0].failed);
    }
}
