//! Metric names: the base names of every metric telltale-telemetry records,
//! and the one rule that joins them to the configured prefix
//! ([`telltale_core::metric_name::full`]).
//!
//! | metric | base names |
//! | --- | --- |
//! | RED, OpenTelemetry naming | [`HTTP_SERVER_REQUEST_DURATION`], [`HTTP_SERVER_ACTIVE_REQUESTS`], [`HTTP_CLIENT_REQUEST_DURATION`], [`HTTP_CLIENT_ACTIVE_REQUESTS`], [`RPC_SERVER_CALL_DURATION`], [`RPC_CLIENT_CALL_DURATION`] |
//! | RED, classic naming | [`HTTP_REQUESTS_TOTAL`], [`HTTP_REQUEST_DURATION`], [`HTTP_REQUESTS_IN_FLIGHT`], [`HTTP_CLIENT_REQUESTS_TOTAL`], [`HTTP_CLIENT_REQUESTS_IN_FLIGHT`], [`GRPC_SERVER_HANDLED_TOTAL`], [`GRPC_SERVER_HANDLING`], [`GRPC_CLIENT_HANDLED_TOTAL`], [`GRPC_CLIENT_HANDLING`] (the classic HTTP client histogram is [`HTTP_CLIENT_REQUEST_DURATION`]) |
//! | label cap | [`OVERFLOW_METRIC`] |
//! | exporters | [`SPANS_EXPORTED_TOTAL`], [`SPANS_DROPPED_TOTAL`], [`LOGS_EXPORTED_TOTAL`], [`LOGS_DROPPED_TOTAL`], [`METRIC_EXPORTS_TOTAL`], [`METRIC_EXPORTS_FAILED_TOTAL`] |
//!
//! Every name is `telltale_core::metric_name::full(prefix, base)`: RED
//! metrics take the prefix of their [`RedConfig`](super::RedConfig) (by default the
//! process-wide one, `TELLTALE_METRICS_PREFIX`); telltale's own metrics (the
//! label cap, the exporters) take the process-wide prefix. The HELP text and
//! unit of each family are declared here, once (given to the recorder by
//! the exporters when they count; the RED families are described when a
//! [`RedMetrics`](super::RedMetrics) first records).

use metrics::{KeyName, Recorder, Unit};
use telltale_core::metric_name::full;

use super::config::{Kind, Naming};

/// `http_server_request_duration_seconds`: HTTP server request durations.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// `http_server_active_requests`: HTTP server requests in flight.
pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// `http_client_request_duration_seconds`: HTTP client request durations
/// (both namings).
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http_client_request_duration_seconds";
/// `http_client_active_requests`: HTTP client requests in flight.
pub const HTTP_CLIENT_ACTIVE_REQUESTS: &str = "http_client_active_requests";
/// `rpc_server_call_duration_seconds`: gRPC server call durations.
pub const RPC_SERVER_CALL_DURATION: &str = "rpc_server_call_duration_seconds";
/// `rpc_client_call_duration_seconds`: gRPC client call durations.
pub const RPC_CLIENT_CALL_DURATION: &str = "rpc_client_call_duration_seconds";
/// `http_requests_total`: completed HTTP server requests (classic).
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds`: HTTP server request durations (classic).
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// `http_requests_in_flight`: HTTP server requests in flight (classic).
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// `http_client_requests_total`: completed HTTP client requests (classic).
pub const HTTP_CLIENT_REQUESTS_TOTAL: &str = "http_client_requests_total";
/// `http_client_requests_in_flight`: HTTP client requests in flight (classic).
pub const HTTP_CLIENT_REQUESTS_IN_FLIGHT: &str = "http_client_requests_in_flight";
/// `grpc_server_handled_total`: completed gRPC server calls (classic).
pub const GRPC_SERVER_HANDLED_TOTAL: &str = "grpc_server_handled_total";
/// `grpc_server_handling_seconds`: gRPC server call durations (classic).
pub const GRPC_SERVER_HANDLING: &str = "grpc_server_handling_seconds";
/// `grpc_client_handled_total`: completed gRPC client calls (classic).
pub const GRPC_CLIENT_HANDLED_TOTAL: &str = "grpc_client_handled_total";
/// `grpc_client_handling_seconds`: gRPC client call durations (classic).
pub const GRPC_CLIENT_HANDLING: &str = "grpc_client_handling_seconds";

/// The label value used in place of a route or server address once a metric has
/// reached its cap on distinct label sets.
pub const OVERFLOW: &str = "__overflow__";

/// The self-metric counting requests recorded under an overflow label set, with
/// label `metric` (the name of the capped metric).
pub const OVERFLOW_METRIC: &str = "telltale_metrics_label_overflow_total";

/// Counter of spans that were never exported, labels `exporter` and `reason`.
pub const SPANS_DROPPED_TOTAL: &str = "telltale_telemetry_spans_dropped_total";
/// Counter of spans handed to an exporter successfully, label `exporter`.
pub const SPANS_EXPORTED_TOTAL: &str = "telltale_telemetry_spans_exported_total";
/// Counter of log records that were never exported over OTLP.
pub const LOGS_DROPPED_TOTAL: &str = "telltale_telemetry_logs_dropped_total";
/// Counter of log records handed to an exporter successfully.
pub const LOGS_EXPORTED_TOTAL: &str = "telltale_telemetry_logs_exported_total";
/// Counter of OTLP metric exports the collector accepted, label `exporter`.
pub const METRIC_EXPORTS_TOTAL: &str = "telltale_telemetry_metric_exports_total";
/// Counter of OTLP metric exports that failed or timed out, label
/// `exporter` (their values reach the collector with the next export that
/// succeeds: OTLP metrics are cumulative).
pub const METRIC_EXPORTS_FAILED_TOTAL: &str = "telltale_telemetry_metric_exports_failed_total";

/// Metric names for one kind under one naming scheme, prefixed.
pub(crate) struct Names {
    /// Duration histogram.
    pub(crate) histogram: String,
    /// Request counter (classic naming only).
    pub(crate) counter: Option<String>,
    /// Active-requests gauge.
    pub(crate) gauge: Option<String>,
}

impl Names {
    /// The base names of `kind` under `naming`: histogram, counter, gauge.
    fn base(
        kind: Kind,
        naming: Naming,
    ) -> (&'static str, Option<&'static str>, Option<&'static str>) {
        match (naming, kind) {
            (Naming::OpenTelemetry, Kind::HttpServer) => (
                HTTP_SERVER_REQUEST_DURATION,
                None,
                Some(HTTP_SERVER_ACTIVE_REQUESTS),
            ),
            (Naming::OpenTelemetry, Kind::HttpClient) => (
                HTTP_CLIENT_REQUEST_DURATION,
                None,
                Some(HTTP_CLIENT_ACTIVE_REQUESTS),
            ),
            (Naming::OpenTelemetry, Kind::RpcServer) => (RPC_SERVER_CALL_DURATION, None, None),
            (Naming::OpenTelemetry, Kind::RpcClient) => (RPC_CLIENT_CALL_DURATION, None, None),
            (Naming::Classic, Kind::HttpServer) => (
                HTTP_REQUEST_DURATION,
                Some(HTTP_REQUESTS_TOTAL),
                Some(HTTP_REQUESTS_IN_FLIGHT),
            ),
            (Naming::Classic, Kind::HttpClient) => (
                HTTP_CLIENT_REQUEST_DURATION,
                Some(HTTP_CLIENT_REQUESTS_TOTAL),
                Some(HTTP_CLIENT_REQUESTS_IN_FLIGHT),
            ),
            (Naming::Classic, Kind::RpcServer) => {
                (GRPC_SERVER_HANDLING, Some(GRPC_SERVER_HANDLED_TOTAL), None)
            }
            (Naming::Classic, Kind::RpcClient) => {
                (GRPC_CLIENT_HANDLING, Some(GRPC_CLIENT_HANDLED_TOTAL), None)
            }
        }
    }

    /// The full names of `kind` under `naming` with `prefix`.
    pub(crate) fn new(kind: Kind, naming: Naming, prefix: Option<&str>) -> Self {
        let (h, c, g) = Self::base(kind, naming);
        let full = |name: &str| full(prefix, name);
        Names {
            histogram: full(h),
            counter: c.map(full),
            gauge: g.map(full),
        }
    }
}

/// The base names of every RED duration histogram (all kinds, both
/// namings), for configuring exporters with explicit buckets.
pub(crate) fn red_histogram_bases() -> Vec<&'static str> {
    let mut out = Vec::new();
    for naming in [Naming::OpenTelemetry, Naming::Classic] {
        for kind in [
            Kind::HttpServer,
            Kind::HttpClient,
            Kind::RpcServer,
            Kind::RpcClient,
        ] {
            let n = Names::base(kind, naming).0;
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The HELP text of the label-cap counter.
pub(crate) const OVERFLOW_HELP: &str = "Requests recorded under an overflow label set because a metric reached its cap on distinct label sets, by capped metric.";

/// The HELP texts of the exporter counters, by base name.
const EXPORTER_HELP: [(&str, &str); 4] = [
    (
        SPANS_EXPORTED_TOTAL,
        "Spans handed to an exporter successfully, by exporter.",
    ),
    (
        SPANS_DROPPED_TOTAL,
        "Spans never exported, by exporter and reason (queue_full, export_failed, shutdown).",
    ),
    (
        LOGS_EXPORTED_TOTAL,
        "Log records handed to an exporter successfully, by exporter.",
    ),
    (
        LOGS_DROPPED_TOTAL,
        "Log records never exported, by exporter and reason (queue_full, export_failed, shutdown).",
    ),
];

/// Describes (HELP text and unit) the exporter counters whose full names
/// are `names` (dropped, exported) to `recorder`.
pub(crate) fn describe_exporters(recorder: &dyn Recorder, names: &(String, String)) {
    for name in [&names.0, &names.1] {
        let help = EXPORTER_HELP
            .iter()
            .find(|(base, _)| name.ends_with(base))
            .map_or("", |(_, help)| help);
        recorder.describe_counter(KeyName::from(name.clone()), Some(Unit::Count), help.into());
    }
}

/// Describes the OTLP metric export counters whose full names are `names`
/// (exported, failed) to the current recorder.
pub(crate) fn describe_metric_exports(names: &(String, String)) {
    metrics::with_recorder(|r| {
        r.describe_counter(
            KeyName::from(names.0.clone()),
            Some(Unit::Count),
            "OTLP metric exports the collector accepted, by exporter.".into(),
        );
        r.describe_counter(
            KeyName::from(names.1.clone()),
            Some(Unit::Count),
            "OTLP metric exports that failed or timed out, by exporter.".into(),
        );
    });
}
