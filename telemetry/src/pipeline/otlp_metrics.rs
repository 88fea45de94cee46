//! The OTLP metrics exporter as the pipeline runs it: the OTLP exporter of
//! `pipeline::otlp` (same transport, TLS, headers, compression as spans and
//! log records) behind a wrapper that bounds each export, counts exports
//! that succeed and fail, and tells the user through the export lines of
//! the other exporters (first failure, one summary per interval, recovery).
//!
//! The SDK's periodic reader calls the exporter from its own thread and does
//! not bound the call; the wrapper runs the export on a current-thread Tokio
//! runtime of its own (the OTLP transports need one) under
//! `OTEL_METRIC_EXPORT_TIMEOUT`. The request path never waits for any of it:
//! counters and gauges are atomics read at export, histograms are recorded
//! into the SDK's in-memory aggregation.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use telltale_core::BoxError;

use super::export::diagnostics::{Diagnostics, Forwarder, Health, mark_worker_thread};
use super::export::transport::LastCause;
use super::settings::OtlpConfig;
use crate::metrics::MetricExportStats;
use crate::metrics::names::{METRIC_EXPORTS_FAILED_TOTAL, METRIC_EXPORTS_TOTAL};

/// The exporter's name in its lines and in the `exporter` label.
pub(crate) const EXPORTER: &str = "otlp_metrics";

/// The wrapper described in the module docs.
pub(crate) struct ReportingExporter {
    inner: opentelemetry_otlp::MetricExporter,
    /// Always `Some` until dropped (then shut down in the background: a
    /// runtime dropped the ordinary way panics inside an async context).
    runtime: Option<tokio::runtime::Runtime>,
    timeout: Duration,
    health: Mutex<Health>,
    cause: LastCause,
    stats: MetricExportStats,
    diagnostics: Diagnostics,
    /// Full names of the exported and failed counters.
    names: (String, String),
}

impl std::fmt::Debug for ReportingExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingExporter").finish_non_exhaustive()
    }
}

impl ReportingExporter {
    pub(crate) fn new(
        otlp: OtlpConfig,
        timeout: Duration,
        failure_log_interval: Duration,
        stats: MetricExportStats,
    ) -> Result<Self, BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("telltale-otlp-metrics")
            .build()?;
        let cause = LastCause::default();
        let endpoint = otlp.endpoint.clone();
        let inner = {
            let _entered = runtime.enter();
            super::otlp::otlp_metric_exporter(otlp, cause.clone())?
        };
        let prefix = telltale_core::metric_name::prefix();
        Ok(ReportingExporter {
            inner,
            runtime: Some(runtime),
            timeout,
            health: Mutex::new(Health::new(
                EXPORTER,
                "metric exports",
                Some(endpoint),
                failure_log_interval,
            )),
            cause,
            stats,
            diagnostics: Diagnostics::current(),
            names: (
                telltale_core::metric_name::full(prefix, METRIC_EXPORTS_TOTAL),
                telltale_core::metric_name::full(prefix, METRIC_EXPORTS_FAILED_TOTAL),
            ),
        })
    }

    /// Where the export lines go (set once the pipeline is built).
    pub(crate) fn diagnostics(&self) -> Diagnostics {
        self.diagnostics.clone()
    }

    fn export_now(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        mark_worker_thread();
        let export = async { tokio::time::timeout(self.timeout, self.inner.export(metrics)).await };
        let result = match &self.runtime {
            // A runtime cannot be blocked on from inside another one (an
            // application that flushes from async code): then the export
            // runs on a helper thread, still bounded.
            Some(rt) if tokio::runtime::Handle::try_current().is_err() => Some(rt.block_on(export)),
            Some(rt) => std::thread::scope(|scope| scope.spawn(|| rt.block_on(export)).join().ok()),
            None => None,
        };
        let failure = match result {
            Some(Ok(Ok(()))) => None,
            Some(Ok(Err(e))) => Some(self.cause.take().unwrap_or_else(|| e.to_string())),
            Some(Err(_)) => Some(format!("no answer within {:?}", self.timeout)),
            None => Some("the export runtime is gone".to_owned()),
        };
        let ok = failure.is_none();
        self.stats.count(ok);
        crate::metrics::names::describe_metric_exports(&self.names);
        let name = if ok { &self.names.0 } else { &self.names.1 };
        metrics::counter!(name.clone(), "exporter" => EXPORTER).increment(1);
        let forward = tracing::Dispatch::new(Forwarder(self.diagnostics.clone()));
        tracing::dispatcher::with_default(&forward, || {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            match &failure {
                None => health.succeeded(self.stats.failed()),
                Some(cause) => health.failed(cause, self.stats.failed(), 1),
            }
        });
        match failure {
            None => Ok(()),
            Some(cause) => Err(OTelSdkError::InternalFailure(cause)),
        }
    }
}

impl Drop for ReportingExporter {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PushMetricExporter for ReportingExporter {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.export_now(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The meter provider that pushes through `exporter` every `interval`.
pub(crate) fn provider(
    exporter: ReportingExporter,
    interval: Duration,
    resource: opentelemetry_sdk::Resource,
) -> SdkMeterProvider {
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build()
}

/// Default interval between two metric exports (`OTEL_METRIC_EXPORT_INTERVAL`),
/// the OpenTelemetry specification's 60 s.
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound of one metric export (`OTEL_METRIC_EXPORT_TIMEOUT`), the
/// specification's 30 s.
pub const DEFAULT_METRIC_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The builder's OTLP metrics settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MetricsExport {
    /// Where metrics are pushed; `None`: no OTLP metrics.
    pub(crate) otlp: Option<OtlpConfig>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

impl Default for MetricsExport {
    fn default() -> Self {
        MetricsExport {
            otlp: None,
            interval: DEFAULT_METRIC_EXPORT_INTERVAL,
            timeout: DEFAULT_METRIC_EXPORT_TIMEOUT,
        }
    }
}

impl MetricsExport {
    /// The running OTLP metrics pipeline these settings describe, if any;
    /// its export lines' [`Diagnostics`] are pushed to `diagnostics`.
    pub(crate) fn build(
        &self,
        resource: &opentelemetry_sdk::Resource,
        failure_log_interval: Duration,
        shutdown_timeout: Duration,
        diagnostics: &mut Vec<Diagnostics>,
    ) -> Result<Option<crate::metrics::OtlpMetrics>, super::error::InitError> {
        let Some(otlp) = self.otlp.clone() else {
            return Ok(None);
        };
        for (name, value) in [
            ("metric export interval", self.interval),
            ("metric export timeout", self.timeout),
        ] {
            if value.is_zero() || value > super::settings::MAX_EXPORT_DURATION {
                return Err(telltale_core::config::ConfigError::new(
                    name,
                    &format!("{value:?}"),
                    telltale_core::config::ParseError::new(1, "a duration above 0 and at most 1h"),
                )
                .into());
            }
        }
        let stats = MetricExportStats::default();
        let exporter =
            ReportingExporter::new(otlp, self.timeout, failure_log_interval, stats.clone())
                .map_err(|e| super::error::InitError::Exporter {
                    exporter: EXPORTER,
                    source: super::error::ExporterError::Build(e),
                })?;
        diagnostics.push(exporter.diagnostics());
        let provider = provider(exporter, self.interval, resource.clone());
        let meter = opentelemetry::metrics::MeterProvider::meter_with_scope(
            &provider,
            super::builder::instrumentation_scope(),
        );
        Ok(Some(crate::metrics::OtlpMetrics::new(
            provider,
            meter,
            &crate::metrics::SEMCONV_BUCKETS,
            stats,
            shutdown_timeout,
        )))
    }
}

impl super::TelemetryBuilder {
    /// Pushes the metrics recorded through the `metrics` facade (RED,
    /// resilience, chaos, exporter metrics) over OTLP to `endpoint`, a full
    /// URL (for HTTP, including `/v1/metrics`), every
    /// [`metric_export_interval`](Self::metric_export_interval). The
    /// header, timeout, compression and TLS settings set afterwards apply to
    /// it too. [`Telemetry::install`](crate::Telemetry::install) makes its
    /// recorder part of the global `metrics` recorder, beside
    /// [`install_prometheus`](crate::metrics::install_prometheus)'s. Defaults
    /// to no OTLP metrics; see [`crate::metrics::otlp`].
    ///
    /// ```
    /// use telltale_telemetry::{LogFormat, Protocol, Telemetry};
    ///
    /// let telemetry = Telemetry::builder()
    ///     .log_format(LogFormat::None)
    ///     .otlp_metrics("http://127.0.0.1:4318/v1/metrics", Protocol::HttpProtobuf)
    ///     .build()
    ///     .unwrap();
    /// assert!(telemetry.guard().otlp_metrics().is_some());
    /// ```
    pub fn otlp_metrics(mut self, endpoint: impl Into<String>, protocol: super::Protocol) -> Self {
        let previous = self
            .metrics_export
            .otlp
            .take()
            .or_else(|| self.otlp.clone());
        self.metrics_export.otlp = Some(match previous {
            Some(p) => OtlpConfig {
                endpoint: endpoint.into(),
                protocol,
                ..p
            },
            None => OtlpConfig::new(endpoint, protocol),
        });
        self
    }

    /// Interval between two OTLP metric exports. Defaults to 60 s
    /// (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.metrics_export.interval = interval;
        self
    }

    /// Bound of one OTLP metric export. Defaults to 30 s
    /// (`OTEL_METRIC_EXPORT_TIMEOUT`).
    pub fn metric_export_timeout(mut self, timeout: Duration) -> Self {
        self.metrics_export.timeout = timeout;
        self
    }
}
