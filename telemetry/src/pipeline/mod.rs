//! The telemetry pipeline: what [`init`](crate::init) builds and installs.
//!
//! - [`TelemetryBuilder`] holds every setting (set in code, or overlaid from
//!   the environment with [`TelemetryBuilder::env`]; the variables are in
//!   [`mod@env`]), and its [`build`](TelemetryBuilder::build) makes a
//!   [`Telemetry`]: the tracing dispatch and the [`TelemetryGuard`] that owns
//!   the exporters. [`Telemetry::from_env`] does both from the environment.
//! - Export: OTLP (gRPC or HTTP/protobuf) and stdout through bounded queues
//!   that drop and count rather than block ([`BoundedSpanProcessor`],
//!   [`BoundedLogProcessor`]), and the in-process [`FlightRecorder`].
//! - Log lines: [`fmt`] (JSON with OpenTelemetry or ECS names, pretty), and
//!   optionally OTLP log records.
//!
//! ```
//! use telltale_telemetry::pipeline::{LogFormat, Telemetry};
//!
//! let telemetry = Telemetry::builder().log_format(LogFormat::None).build().unwrap();
//! let recorder = telemetry.flight_recorder().unwrap().clone();
//! tracing::dispatcher::with_default(telemetry.dispatch(), || {
//!     tracing::info_span!("work").in_scope(|| {});
//! });
//! assert_eq!(recorder.recent(1)[0].name(), "work");
//! ```

mod builder;
pub(crate) mod direct;
pub mod env;
mod error;
mod export;
mod filter;
mod flight_recorder;
pub mod fmt;
mod guard;
pub(crate) mod limits;
mod otlp;
mod otlp_logs;
mod otlp_metrics;
mod settings;
mod stdout;
mod telemetry;

pub use builder::TelemetryBuilder;
pub use direct::DirectRequestAttributes;
pub use error::{ExporterError, InitError};
pub use export::{BatchConfig, BoundedLogProcessor, BoundedSpanProcessor, ExportStats};
pub use filter::{DEFAULT_TRACE_FILTER, MAX_FILTER_DIRECTIVES, MAX_FILTER_LEN};
pub use flight_recorder::{CORRELATION_ID_ATTRIBUTE, FlightRecorder, RecordedSpan};
pub use guard::{ShutdownError, TelemetryGuard};
pub use limits::{DEFAULT_COUNT_LIMIT, MAX_LIMIT, SpanLimits, estimated_size};
pub use otlp_metrics::{DEFAULT_METRIC_EXPORT_INTERVAL, DEFAULT_METRIC_EXPORT_TIMEOUT};
pub use settings::{
    Compression, DEFAULT_FAILURE_LOG_INTERVAL, MAX_EXPORT_BATCH_SIZE, MAX_EXPORT_DURATION,
    MAX_EXPORT_QUEUE_SIZE, OtlpTls,
};
pub use settings::{
    DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_EXPORT_DELAY, DEFAULT_EXPORT_QUEUE_SIZE,
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_FILTER, DEFAULT_FLIGHT_RECORDER_CAPACITY,
    DEFAULT_MAX_FIELD_LEN, DEFAULT_SHUTDOWN_TIMEOUT, ExporterKind, LogFormat, OtlpConfig, Protocol,
    Sampler,
};
pub use settings::{
    DEFAULT_EXPORT_QUEUE_MAX_BYTES, DEFAULT_FLIGHT_RECORDER_MAX_BYTES, MAX_MAX_BYTES, MIN_MAX_BYTES,
};
pub use stdout::{SPAN_LINE_TARGET, StdoutExporter};
pub use telemetry::{Telemetry, current_trace_id, install_propagators};
