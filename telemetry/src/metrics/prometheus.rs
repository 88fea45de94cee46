//! Prometheus exposition: a recorder builder with explicit buckets for every
//! telltale histogram, a `/metrics` route and a standalone listener.

use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::config::RedConfig;
use super::names::red_histogram_bases;
use telltale_core::metric_name::{BULKHEAD_WAIT_BUCKETS, BULKHEAD_WAIT_DURATION};

/// A [`PrometheusBuilder`] that exports every duration telltale records as a
/// histogram, never as a summary, whatever the prefix:
///
/// | histograms | buckets (seconds) |
/// | --- | --- |
/// | the RED durations of every kind and both namings | `config`'s ([`SEMCONV_BUCKETS`](super::SEMCONV_BUCKETS) by default: 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10) |
/// | `telltale_bulkhead_wait_duration_seconds` | [`BULKHEAD_WAIT_BUCKETS`]: 0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 |
///
/// Each base name is matched exactly and as a suffix after `_`, so a name
/// under any prefix (`TELLTALE_METRICS_PREFIX`, `RedConfig::prefix`, a
/// breaker's or bulkhead's `metric_prefix`) gets the same buckets, whatever
/// prefix `config` names. Add your own settings, then `build_recorder()` or
/// `install_recorder()`.
///
/// ```
/// use telltale_telemetry::metrics::{prometheus_builder, RedConfig};
///
/// let recorder = prometheus_builder(&RedConfig::default()).build_recorder();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::histogram!("http_server_request_duration_seconds").record(0.2);
///     // A prefix the configuration does not name still gets the buckets.
///     metrics::histogram!("myapp_http_request_duration_seconds").record(0.2);
///     metrics::histogram!("myapp_telltale_bulkhead_wait_duration_seconds").record(0.0);
/// });
/// let text = recorder.handle().render();
/// assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
/// assert!(text.contains(r#"http_server_request_duration_seconds_bucket{le="0.25"} 1"#));
/// assert!(text.contains(r#"myapp_http_request_duration_seconds_bucket{le="0.25"} 1"#));
/// assert!(text.contains(r#"myapp_telltale_bulkhead_wait_duration_seconds_bucket{le="0"} 1"#));
/// assert!(!text.contains("summary"));
/// ```
pub fn prometheus_builder(config: &RedConfig) -> PrometheusBuilder {
    let mut specs: Vec<(&str, &[f64])> = red_histogram_bases()
        .into_iter()
        .map(|base| (base, config.buckets()))
        .collect();
    specs.push((BULKHEAD_WAIT_DURATION, &BULKHEAD_WAIT_BUCKETS));
    let mut builder = PrometheusBuilder::new();
    for (base, buckets) in specs {
        if buckets.is_empty() {
            continue; // cannot happen: RedConfig validates its buckets
        }
        for matcher in [
            Matcher::Full(base.to_owned()),
            Matcher::Suffix(format!("_{base}")),
        ] {
            builder = builder
                .set_buckets_for_metric(matcher, buckets)
                .expect("buckets are not empty");
        }
    }
    builder
}

/// Builds the recorder with [`prometheus_builder`], installs it as the global
/// `metrics` recorder, starts a background thread that runs upkeep every five
/// seconds, and returns the handle that renders the exposition. Create
/// [`RedMetrics`](super::RedMetrics) after this call (or give them a recorder
/// explicitly) so that their handles bind to it.
///
/// When the installed telemetry pipeline pushes metrics over OTLP
/// (`OTEL_METRICS_EXPORTER=otlp`, see [`otlp`](super::otlp)), both share the
/// global recorder, whichever is installed first: every series goes to the
/// exposition and to the collector.
pub fn install_prometheus(config: &RedConfig) -> Result<PrometheusHandle, BuildError> {
    let recorder = prometheus_builder(config).build_recorder();
    let handle = recorder.handle();
    if let Err(recorder) = super::otlp::install_prometheus_recorder(recorder) {
        // The global recorder is taken: the error `install_recorder` gives.
        metrics::set_global_recorder(recorder)?;
    }
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("telltale-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| BuildError::FailedToCreateRuntime(e.to_string()))?;
    Ok(handle)
}

#[cfg(feature = "axum")]
mod endpoint {
    use std::io;
    use std::net::SocketAddr;

    use axum::Router;
    use axum::http::HeaderMap;
    use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use metrics_exporter_prometheus::PrometheusHandle;

    use crate::metrics::openmetrics::{
        CONTENT_TYPE_OPENMETRICS, prefers_openmetrics, render_openmetrics,
    };

    /// The content type of the Prometheus text exposition format.
    const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

    /// A router serving `GET /metrics` from `handle`; merge it into your app or
    /// serve it on its own.
    ///
    /// The route negotiates the format from the request's `Accept` header: a
    /// scraper that prefers `application/openmetrics-text` (Prometheus does)
    /// gets the OpenMetrics 1.0 exposition, with exemplars (the trace and span
    /// IDs of sampled requests) on the request-duration histogram buckets
    /// (see [`render_openmetrics`](crate::metrics::render_openmetrics));
    /// anyone else gets the Prometheus text format, unchanged. Building the
    /// router turns exemplar collection on
    /// ([`exemplars::enable`](crate::metrics::exemplars::enable)).
    ///
    /// ```
    /// use telltale_telemetry::metrics::{metrics_router, prometheus_builder, RedConfig};
    ///
    /// let handle = prometheus_builder(&RedConfig::default()).build_recorder().handle();
    /// let app: axum::Router = axum::Router::new().merge(metrics_router(handle));
    /// # drop(app);
    /// ```
    pub fn metrics_router<S>(handle: PrometheusHandle) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        crate::metrics::exemplars::enable();
        Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let handle = handle.clone();
                async move {
                    let openmetrics = headers
                        .get_all(ACCEPT)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .any(prefers_openmetrics);
                    if openmetrics {
                        (
                            [(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS), (VARY, "accept")],
                            render_openmetrics(&handle.render()),
                        )
                            .into_response()
                    } else {
                        (
                            [(CONTENT_TYPE, CONTENT_TYPE_TEXT), (VARY, "accept")],
                            handle.render(),
                        )
                            .into_response()
                    }
                }
            }),
        )
    }

    /// A standalone `/metrics` listener, serving until dropped.
    #[derive(Debug)]
    pub struct MetricsListener {
        local_addr: SocketAddr,
        task: tokio::task::JoinHandle<()>,
    }

    impl MetricsListener {
        /// The address actually bound (useful with port 0).
        pub fn local_addr(&self) -> SocketAddr {
            self.local_addr
        }
    }

    impl Drop for MetricsListener {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Binds `addr` (for example [`RedConfig::listen_addr`](crate::metrics::RedConfig::listen_addr),
    /// from `TELLTALE_METRICS_ADDR`) and serves
    /// `GET /metrics` from `handle` on the current Tokio runtime until the returned
    /// listener is dropped.
    pub async fn serve_metrics(
        addr: SocketAddr,
        handle: PrometheusHandle,
    ) -> io::Result<MetricsListener> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let app: Router = metrics_router(handle);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "metrics listener stopped");
            }
        });
        Ok(MetricsListener { local_addr, task })
    }
}

#[cfg(feature = "axum")]
pub use endpoint::{MetricsListener, metrics_router, serve_metrics};
