//! RED metrics (rate, errors, duration) with prepared handles and a cardinality
//! cap, and Prometheus exposition.
//!
//! A request layer makes one [`RedMetrics`] per side and protocol ([`Kind`]),
//! calls [`RedMetrics::start`] when a request arrives and [`InFlight::finish`]
//! when its response body ends. Names follow the OpenTelemetry semantic
//! conventions as Prometheus sees them ([`Naming::OpenTelemetry`], the default) or
//! the classic Prometheus style ([`Naming::Classic`]). Histograms are always
//! exported with explicit buckets: build the Prometheus recorder with
//! [`prometheus_builder`] (or [`install_prometheus`]) so every telltale histogram
//! gets them.
//!
//! Cardinality is bounded by construction: routes are router templates (never raw
//! paths), unknown methods become `_OTHER`, and each metric holds at most
//! [`RedConfig::max_label_sets`] label sets; beyond that, requests are recorded
//! with the route `__overflow__` and counted in
//! `telltale_metrics_label_overflow_total{metric}`.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Method, StatusCode};
//! use telltale_telemetry::metrics::{prometheus_builder, Kind, Naming, RedConfig, RedMetrics, Scheme};
//!
//! let config = RedConfig::builder().naming(Naming::Classic).build().unwrap();
//! let recorder = prometheus_builder(&config).build_recorder();
//! let handle = recorder.handle();
//! let metrics = RedMetrics::new(Kind::HttpServer, &config.with_recorder(Arc::new(recorder)));
//!
//! let request = metrics.start(&Method::POST, Scheme::Http);
//! let took = request.finish(Some("/orders"), Some(StatusCode::CREATED), None, None);
//! assert!(took.as_secs() < 60);
//!
//! let text = handle.render();
//! assert!(text.contains(r#"http_requests_total{method="POST",endpoint="/orders",code="201"} 1"#));
//! assert!(text.contains(r#"http_request_duration_seconds_bucket{method="POST",endpoint="/orders",le="0.005"}"#));
//! ```

mod config;
pub mod env;
pub mod exemplars;
mod labels;
pub mod names;
mod openmetrics;
pub mod otlp;
mod prometheus;
mod red;
mod storage;

pub use config::{
    DEFAULT_MAX_LABEL_SETS, Kind, Naming, RedConfig, RedConfigBuilder, RedConfigError,
    SEMCONV_BUCKETS, Scheme,
};
pub use names::{OVERFLOW, OVERFLOW_METRIC};
pub use openmetrics::{CONTENT_TYPE_OPENMETRICS, prefers_openmetrics, render_openmetrics};
pub use otlp::{FanoutRecorder, MetricExportStats, OtlpMetrics, OtlpRecorder};
#[cfg(feature = "axum")]
pub use prometheus::{MetricsListener, metrics_router, serve_metrics};
pub use prometheus::{install_prometheus, prometheus_builder};
pub use red::{InFlight, RedMetrics};
pub use telltale_core::http::{OTHER_METHOD, method_label};
