//! The flight recorder: the last N finished spans, in memory, queryable.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// The span attribute the flight recorder indexes correlation IDs by.
pub const CORRELATION_ID_ATTRIBUTE: &str = "correlation_id";

/// A finished span as the flight recorder keeps it.
///
/// It wraps the SDK's [`SpanData`] (available through [`data`](Self::data))
/// and adds the service name of the provider that recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSpan {
    data: SpanData,
    service_name: Option<Arc<str>>,
}

impl RecordedSpan {
    /// The trace the span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.data.span_context.trace_id()
    }
    /// The span's own ID.
    pub fn span_id(&self) -> SpanId {
        self.data.span_context.span_id()
    }
    /// The parent span's ID, `None` for a root span.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        Some(self.data.parent_span_id).filter(|id| *id != SpanId::INVALID)
    }
    /// The span name (for request spans, `GET /users/{id}`).
    pub fn name(&self) -> &str {
        &self.data.name
    }
    /// Server, client, internal, ...
    pub fn kind(&self) -> &SpanKind {
        &self.data.span_kind
    }
    /// Unset, ok or error with a description.
    pub fn status(&self) -> &Status {
        &self.data.status
    }
    /// When the span started.
    pub fn start_time(&self) -> SystemTime {
        self.data.start_time
    }
    /// When the span ended.
    pub fn end_time(&self) -> SystemTime {
        self.data.end_time
    }
    /// How long the span lasted.
    pub fn duration(&self) -> Duration {
        self.data
            .end_time
            .duration_since(self.data.start_time)
            .unwrap_or_default()
    }
    /// The span's attributes.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.data.attributes
    }
    /// The value of one attribute.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.data
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }
    /// The `correlation_id` attribute, when the span has one.
    pub fn correlation_id(&self) -> Option<String> {
        self.attribute(CORRELATION_ID_ATTRIBUTE)
            .map(|v| v.as_str().into_owned())
    }
    /// `service.name` of the provider that recorded the span.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref()
    }
    /// Everything the SDK knows about the span (events, links, scope, ...).
    pub fn data(&self) -> &SpanData {
        &self.data
    }

    /// The span as JSON, for debug endpoints: IDs as hex, times as Unix
    /// nanoseconds, attributes as an object.
    pub fn to_json(&self) -> serde_json::Value {
        let nanos = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        };
        let attributes: serde_json::Map<String, serde_json::Value> = self
            .data
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), value_to_json(&kv.value)))
            .collect();
        let events: Vec<serde_json::Value> = self
            .data
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "time_unix_nano": nanos(e.timestamp),
                    "attributes": e.attributes.iter()
                        .map(|kv| (kv.key.to_string(), value_to_json(&kv.value)))
                        .collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let (status, message) = match &self.data.status {
            Status::Unset => ("unset", None),
            Status::Ok => ("ok", None),
            Status::Error { description } => ("error", Some(description.to_string())),
        };
        serde_json::json!({
            "trace_id": self.trace_id().to_string(),
            "span_id": self.span_id().to_string(),
            "parent_span_id": self.parent_span_id().map(|id| id.to_string()),
            "name": self.data.name,
            "kind": format!("{:?}", self.data.span_kind).to_lowercase(),
            "service.name": self.service_name(),
            "start_time_unix_nano": nanos(self.data.start_time),
            "end_time_unix_nano": nanos(self.data.end_time),
            "duration_ms": self.duration().as_secs_f64() * 1000.0,
            "status": status,
            "status_message": message,
            "attributes": attributes,
            "events": events,
        })
    }
}

pub(crate) fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => (*f).into(),
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

struct Ring {
    capacity: usize,
    spans: VecDeque<Arc<RecordedSpan>>,
    /// The estimated size of each span in `spans`, in the same order.
    sizes: VecDeque<usize>,
    /// Their sum, at most `max_bytes`.
    bytes: usize,
    max_bytes: usize,
    service_name: Option<Arc<str>>,
    recorded: u64,
}

/// A bounded ring of recently finished spans, a cheap-clone handle.
///
/// It is a [`SpanProcessor`]: add it to a tracer provider (`init` does so
/// when no exporter is configured, or when `TELLTALE_FLIGHT_RECORDER_CAPACITY`
/// is set), keep a clone, and query it. Each finished, sampled span costs one
/// short lock and a push; the oldest spans are evicted when the ring is full,
/// in spans or in bytes.
///
/// The byte budget ([`with_max_bytes`](Self::with_max_bytes), default
/// [`DEFAULT_FLIGHT_RECORDER_MAX_BYTES`](crate::pipeline::DEFAULT_FLIGHT_RECORDER_MAX_BYTES),
/// `TELLTALE_FLIGHT_RECORDER_MAX_BYTES`) bounds the sum of the spans'
/// [estimated sizes](crate::pipeline::estimated_size), so that a few
/// thousand outsized spans cannot hold hundreds of megabytes: the oldest
/// spans are evicted until the new one fits, and a span larger than the whole
/// budget is not kept.
///
/// ```
/// use opentelemetry::KeyValue;
/// use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use telltale_telemetry::FlightRecorder;
///
/// let recorder = FlightRecorder::new(100);
/// let provider = SdkTracerProvider::builder().with_span_processor(recorder.clone()).build();
/// let tracer = provider.tracer("doc");
/// let trace_id = tracer.in_span("GET /orders/{id}", |cx| {
///     cx.span().set_attribute(KeyValue::new("correlation_id", "req-42"));
///     tracer.in_span("db.query", |_| {});
///     cx.span().span_context().trace_id()
/// });
///
/// let trace = recorder.trace(trace_id);
/// assert_eq!(trace.len(), 2);
/// assert_eq!(trace[0].name(), "db.query"); // finished first
/// assert_eq!(trace[0].parent_span_id(), Some(trace[1].span_id()));
/// let by_id = recorder.by_correlation_id("req-42");
/// assert_eq!(by_id.len(), 2); // the whole trace the ID appears in
/// assert_eq!(recorder.recent(1)[0].name(), "GET /orders/{id}");
/// ```
#[derive(Clone)]
pub struct FlightRecorder {
    ring: Arc<Mutex<Ring>>,
}

impl fmt::Debug for FlightRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.lock();
        f.debug_struct("FlightRecorder")
            .field("capacity", &ring.capacity)
            .field("len", &ring.spans.len())
            .field("max_bytes", &ring.max_bytes)
            .field("bytes", &ring.bytes)
            .finish()
    }
}

impl FlightRecorder {
    /// A recorder keeping the last `capacity` spans (at least one), within
    /// the default byte budget
    /// ([`DEFAULT_FLIGHT_RECORDER_MAX_BYTES`](crate::pipeline::DEFAULT_FLIGHT_RECORDER_MAX_BYTES)).
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(
            capacity,
            crate::pipeline::settings::DEFAULT_FLIGHT_RECORDER_MAX_BYTES,
        )
    }

    /// A recorder keeping the last `capacity` spans (at least one) whose
    /// estimated sizes add up to at most `max_bytes` (at least one byte).
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::trace::{Span, Tracer, TracerProvider};
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    /// use telltale_telemetry::FlightRecorder;
    ///
    /// let recorder = FlightRecorder::with_max_bytes(1000, 64 * 1024);
    /// let provider = SdkTracerProvider::builder().with_span_processor(recorder.clone()).build();
    /// let tracer = provider.tracer("doc");
    /// for _ in 0..100 {
    ///     let mut span = tracer.start("big");
    ///     span.set_attribute(KeyValue::new("payload", "x".repeat(10_000)));
    ///     span.end();
    /// }
    /// // Six spans of about 10 kB fit in 64 KiB: the oldest were evicted.
    /// assert!(recorder.len() < 10);
    /// assert!(recorder.bytes() <= 64 * 1024);
    /// assert_eq!(recorder.recorded(), 100);
    /// ```
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        let capacity = capacity.max(1);
        FlightRecorder {
            ring: Arc::new(Mutex::new(Ring {
                capacity,
                spans: VecDeque::with_capacity(capacity.min(4096)),
                sizes: VecDeque::with_capacity(capacity.min(4096)),
                bytes: 0,
                max_bytes: max_bytes.max(1),
                service_name: None,
                recorded: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many spans the ring keeps.
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// The byte budget: most bytes the ring's spans hold, by their
    /// [estimated sizes](crate::pipeline::estimated_size).
    pub fn max_bytes(&self) -> usize {
        self.lock().max_bytes
    }

    /// The estimated bytes the ring's spans hold now (at most
    /// [`max_bytes`](Self::max_bytes)).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// How many spans are in the ring now.
    pub fn len(&self) -> usize {
        self.lock().spans.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().spans.is_empty()
    }

    /// How many spans were recorded since start (including evicted ones, and
    /// those larger than the whole byte budget, which are not kept).
    pub fn recorded(&self) -> u64 {
        self.lock().recorded
    }

    /// The spans of one trace still in the ring, in the order they finished.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Arc<RecordedSpan>> {
        self.lock()
            .spans
            .iter()
            .filter(|s| s.trace_id() == trace_id)
            .cloned()
            .collect()
    }

    /// Like [`trace`](Self::trace), with the ID as 32 hex digits; `None`
    /// when it is not a trace ID.
    pub fn trace_hex(&self, trace_id: &str) -> Option<Vec<Arc<RecordedSpan>>> {
        if trace_id.len() != 32 {
            return None;
        }
        TraceId::from_hex(trace_id).ok().map(|id| self.trace(id))
    }

    /// Every span of every trace in which a span carries the
    /// `correlation_id` attribute `id`, in the order they finished.
    pub fn by_correlation_id(&self, id: &str) -> Vec<Arc<RecordedSpan>> {
        let ring = self.lock();
        let key = Key::from_static_str(CORRELATION_ID_ATTRIBUTE);
        let mut traces: Vec<TraceId> = Vec::new();
        for span in &ring.spans {
            let matches = span
                .data
                .attributes
                .iter()
                .any(|kv| kv.key == key && kv.value.as_str() == id);
            if matches && !traces.contains(&span.trace_id()) {
                traces.push(span.trace_id());
            }
        }
        ring.spans
            .iter()
            .filter(|s| traces.contains(&s.trace_id()))
            .cloned()
            .collect()
    }

    /// The `n` most recently finished spans, newest first.
    pub fn recent(&self, n: usize) -> Vec<Arc<RecordedSpan>> {
        self.lock().spans.iter().rev().take(n).cloned().collect()
    }

    /// Every span in the ring, in the order they finished (oldest first):
    /// one short lock and a clone of each span's `Arc`, for callers that
    /// query the same contents several ways (a debug page).
    pub fn spans(&self) -> Vec<Arc<RecordedSpan>> {
        self.lock().spans.iter().cloned().collect()
    }

    /// The `n` longest spans in the ring, longest first (ties: the newest
    /// first).
    pub fn slowest(&self, n: usize) -> Vec<Arc<RecordedSpan>> {
        let mut spans = self.spans();
        spans.reverse();
        spans.sort_by_key(|s| std::cmp::Reverse(s.duration()));
        spans.truncate(n);
        spans
    }

    /// The `n` most recently finished spans whose status is an error, newest
    /// first.
    pub fn failed(&self, n: usize) -> Vec<Arc<RecordedSpan>> {
        self.lock()
            .spans
            .iter()
            .rev()
            .filter(|s| matches!(s.status(), Status::Error { .. }))
            .take(n)
            .cloned()
            .collect()
    }

    /// Empties the ring.
    pub fn clear(&self) {
        let mut ring = self.lock();
        ring.spans.clear();
        ring.sizes.clear();
        ring.bytes = 0;
    }
}

impl SpanProcessor for FlightRecorder {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let size = super::limits::estimated_size(&span);
        let mut ring = self.lock();
        ring.recorded += 1;
        if size > ring.max_bytes {
            // Larger than the whole budget: not kept (the budget is a bound).
            return;
        }
        let recorded = Arc::new(RecordedSpan {
            data: span,
            service_name: ring.service_name.clone(),
        });
        while ring.spans.len() >= ring.capacity || ring.bytes + size > ring.max_bytes {
            ring.spans.pop_front();
            let Some(evicted) = ring.sizes.pop_front() else {
                break;
            };
            ring.bytes = ring.bytes.saturating_sub(evicted);
        }
        ring.spans.push_back(recorded);
        ring.sizes.push_back(size);
        ring.bytes += size;
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let name = resource
            .get(&Key::from_static_str("service.name"))
            .map(|v| Arc::from(v.as_str().as_ref()));
        self.lock().service_name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        let recorder = FlightRecorder::new(3);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .with_resource(Resource::builder_empty().with_service_name("svc").build())
            .build();
        let tracer = provider.tracer("t");
        for i in 0..10 {
            tracer.in_span(format!("s{i}"), |_| {});
        }
        assert_eq!(recorder.len(), 3);
        assert_eq!(recorder.recorded(), 10);
        let names: Vec<_> = recorder
            .recent(10)
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        assert_eq!(names, ["s9", "s8", "s7"]);
        assert_eq!(recorder.recent(1)[0].service_name(), Some("svc"));
        let json = recorder.recent(1)[0].to_json();
        assert_eq!(json["name"], "s9");
        assert_eq!(json["service.name"], "svc");
        assert_eq!(json["trace_id"].as_str().unwrap().len(), 32);
        recorder.clear();
        assert!(recorder.is_empty());
    }

    #[test]
    fn queries_by_trace_and_correlation_id() {
        let recorder = FlightRecorder::new(100);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .build();
        let tracer = provider.tracer("t");
        let a = tracer.in_span("a", |cx| {
            cx.span()
                .set_attribute(KeyValue::new(CORRELATION_ID_ATTRIBUTE, "corr-a"));
            tracer.in_span("a.child", |_| {});
            cx.span().span_context().trace_id()
        });
        let b = tracer.in_span("b", |cx| cx.span().span_context().trace_id());
        assert_eq!(recorder.trace(a).len(), 2);
        assert_eq!(recorder.trace(b).len(), 1);
        assert_eq!(recorder.trace_hex(&a.to_string()).unwrap().len(), 2);
        assert!(recorder.trace_hex("nope").is_none());
        let by = recorder.by_correlation_id("corr-a");
        assert_eq!(by.len(), 2);
        assert!(by.iter().all(|s| s.trace_id() == a));
        assert_eq!(by[1].correlation_id().as_deref(), Some("corr-a"));
        assert!(recorder.by_correlation_id("other").is_empty());
    }

    #[test]
    fn slowest_failed_and_all_spans() {
        let recorder = FlightRecorder::new(100);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .build();
        let tracer = provider.tracer("t");
        let t0 = SystemTime::now();
        for (name, ms, failed) in [
            ("a", 5, false),
            ("b", 50, true),
            ("c", 20, false),
            ("d", 1, true),
        ] {
            let mut span = tracer.span_builder(name).with_start_time(t0).start(&tracer);
            if failed {
                opentelemetry::trace::Span::set_status(&mut span, Status::error("boom"));
            }
            opentelemetry::trace::Span::end_with_timestamp(
                &mut span,
                t0 + Duration::from_millis(ms),
            );
        }
        let names =
            |v: Vec<Arc<RecordedSpan>>| v.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(recorder.spans()), ["a", "b", "c", "d"]);
        assert_eq!(names(recorder.slowest(2)), ["b", "c"]);
        assert_eq!(names(recorder.failed(10)), ["d", "b"]);
        assert_eq!(names(recorder.failed(1)), ["d"]);
    }

    #[test]
    fn byte_budget_evicts_the_oldest_and_refuses_what_cannot_fit() {
        use opentelemetry::trace::Span as _;
        let recorder = FlightRecorder::with_max_bytes(100, 64 * 1024);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .build();
        let tracer = provider.tracer("t");
        let emit = |name: &'static str, payload: usize| {
            let mut span = tracer.start(name);
            span.set_attribute(KeyValue::new("payload", "x".repeat(payload)));
            span.end();
        };
        for _ in 0..10 {
            emit("small", 10);
        }
        assert_eq!(recorder.len(), 10);
        // Each ~20 kB span evicts the oldest until it fits.
        for _ in 0..5 {
            emit("big", 20_000);
        }
        assert!(recorder.bytes() <= recorder.max_bytes());
        let names: Vec<_> = recorder
            .recent(100)
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        assert_eq!(names.iter().filter(|n| *n == "big").count(), 3, "{names:?}");
        assert!(!names.contains(&"small".to_owned()), "{names:?}");
        // Larger than the whole budget: counted, not kept, nothing evicted.
        emit("huge", 100_000);
        assert_eq!(recorder.recent(1)[0].name(), "big");
        assert_eq!(recorder.recorded(), 16);
        recorder.clear();
        assert_eq!((recorder.len(), recorder.bytes()), (0, 0));
    }
}
