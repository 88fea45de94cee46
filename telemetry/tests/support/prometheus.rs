//! Shared test code for the metrics and Prometheus tests: the real HTTP
//! client, Prometheus and promtool of `telltale_testkit::prometheus`, and
//! telltale-telemetry's own helpers.

pub use telltale_testkit::prometheus::*;

/// Builds a local (not global) Prometheus recorder with telltale's buckets and
/// returns `config` bound to it, with the handle that renders it.
pub fn local_prometheus(
    config: telltale_telemetry::metrics::RedConfig,
) -> (
    telltale_telemetry::metrics::RedConfig,
    metrics_exporter_prometheus::PrometheusHandle,
) {
    let recorder = telltale_telemetry::metrics::prometheus_builder(&config).build_recorder();
    let handle = recorder.handle();
    (config.with_recorder(std::sync::Arc::new(recorder)), handle)
}

/// telltale's server request layer recording RED metrics as `config` says.
pub fn server_layer(
    config: telltale_telemetry::metrics::RedConfig,
) -> telltale_telemetry::layer::server::ServerTelemetryLayer {
    telltale_telemetry::layer::server::ServerTelemetryLayer::builder()
        .red_config(config)
        .build()
        .expect("server layer")
}
