//! telltale-telemetry: one init call for traces, enriched JSON logs and
//! exporters; request layers that feed OpenTelemetry spans and RED metrics.
//!
//! `let _guard = telltale_telemetry::init()?;` reads the standard
//! OpenTelemetry variables (see [`Telemetry::from_env`]) and installs:
//!
//! - a tracing subscriber filtered by `RUST_LOG`, with the
//!   [`tracing-opentelemetry`](tracing_opentelemetry) layer, so every tracing
//!   span is an OpenTelemetry span;
//! - span export: OTLP over gRPC or HTTP/protobuf when an endpoint is set,
//!   stdout on request, and otherwise the in-process [`FlightRecorder`] (the
//!   last 2048 spans within 16 MiB, queryable by trace ID and correlation
//!   ID). Export never blocks a request: a queue bounded in spans and in
//!   bytes drops and counts
//!   (`telltale_telemetry_spans_dropped_total`) when a collector is down, and
//!   resumes when it is back ([`BoundedSpanProcessor`]);
//! - log lines as JSON with `trace_id`, `span_id`, `correlation_id`,
//!   `service.name` and the fields of enclosing spans at the top level
//!   ([`JsonFormat`], OpenTelemetry or Elastic Common Schema names), or a
//!   [`PrettyFormat`] for terminals (`TELLTALE_LOG_FORMAT`);
//! - optionally, OTLP export of the same events as OpenTelemetry log records
//!   (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` or `OTEL_LOGS_EXPORTER=otlp`), through
//!   the same kind of bounded queue ([`BoundedLogProcessor`]);
//! - the propagators of `OTEL_PROPAGATORS` ([`propagation`]): by default
//!   telltale's W3C Trace Context Level 2 propagator and W3C Baggage.
//!
//! The returned [`TelemetryGuard`] flushes and shuts the exporters down when
//! dropped, within a bound. Everything can be set in code with
//! [`Telemetry::builder`].
//!
//! Three subsystems, one module each: [`pipeline`] (init, exporters, flight
//! recorder, log formats, OTLP logs), [`layer`] (request spans, server and
//! client) and [`metrics`] (RED metrics, Prometheus exposition).
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use tower::ServiceExt;
//!
//! async fn hello() -> &'static str {
//!     let span = tracing::info_span!("hello", correlation_id = "req-1", user = "ada");
//!     let _entered = span.enter();
//!     // {"timestamp":"…","level":"INFO",…,"message":"saying hello","target":"…",
//!     //  "service.name":"…","trace_id":"…","span_id":"…","correlation_id":"req-1","user":"ada"}
//!     tracing::info!("saying hello");
//!     "hello"
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let guard = telltale_telemetry::init()?;
//!     let app = Router::new().route("/hello", get(hello));
//!     // A real program serves it: axum::serve(listener, app).await?
//!     let response = app.oneshot(Request::get("/hello").body(Body::empty())?).await?;
//!     assert_eq!(response.status(), 200);
//!
//!     // With no OTLP endpoint set, spans stay in the flight recorder.
//!     if let Some(recorder) = guard.flight_recorder() {
//!         let spans = recorder.by_correlation_id("req-1");
//!         assert_eq!(spans[0].name(), "hello");
//!         println!("{}", spans[0].to_json());
//!     }
//!     Ok(())
//! }
//! ```

pub mod layer;
pub mod metrics;
pub mod pipeline;
pub mod propagation;
pub mod sampling;

pub use metrics::names::{
    LOGS_DROPPED_TOTAL, LOGS_EXPORTED_TOTAL, SPANS_DROPPED_TOTAL, SPANS_EXPORTED_TOTAL,
};
pub use pipeline::DirectRequestAttributes;
pub use pipeline::fmt::{
    CUSTOM_NAMESPACE, ECS_VERSION, JsonFields, JsonFormat, KEYWORD_MAX_CHARS, OtelIdsLayer,
    PrettyFormat, Profile, TRUNCATION_MARKER, write_escaped,
};
pub use pipeline::{
    BatchConfig, BoundedLogProcessor, BoundedSpanProcessor, CORRELATION_ID_ATTRIBUTE, Compression,
    DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_EXPORT_DELAY, DEFAULT_EXPORT_QUEUE_SIZE,
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_FILTER, DEFAULT_FLIGHT_RECORDER_CAPACITY,
    DEFAULT_MAX_FIELD_LEN, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TRACE_FILTER, ExportStats,
    ExporterError, ExporterKind, FlightRecorder, InitError, LogFormat, OtlpConfig, OtlpTls,
    Protocol, RecordedSpan, SPAN_LINE_TARGET, Sampler, ShutdownError, StdoutExporter, Telemetry,
    TelemetryBuilder, TelemetryGuard, current_trace_id, install_propagators,
};

/// Builds the telemetry pipeline from the environment and installs it
/// globally; see the [crate docs](crate) and [`Telemetry::from_env`].
///
/// Fails when a variable is invalid (the error names it), an exporter cannot
/// be built, or a global subscriber is already installed.
pub fn init() -> Result<TelemetryGuard, InitError> {
    Telemetry::from_env()?.install()
}
