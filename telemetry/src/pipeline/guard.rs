//! [`TelemetryGuard`]: owns the exporters, flushes and shuts them down within
//! a bound.

use std::fmt;
use std::time::Duration;

use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::export::ExportStats;
use super::flight_recorder::FlightRecorder;

/// Why a flush or shutdown did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// It did not finish within the bound; queued spans may be lost.
    #[error("telemetry shutdown did not finish within {0:?}")]
    Timeout(Duration),
    /// An exporter reported an error.
    #[error("telemetry shutdown: {0}")]
    Exporter(#[source] opentelemetry_sdk::error::OTelSdkError),
    /// The helper thread that bounds the wait could not be started.
    #[error("telemetry shutdown thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Owns the exporters: flushes and shuts them down when dropped (or on
/// [`shutdown`](Self::shutdown)), waiting at most the shutdown timeout
/// (`TELLTALE_SHUTDOWN_TIMEOUT`, default 5 s) even when a collector is dead
/// or stalled.
///
/// Keep it alive for the life of the program: `let _guard = init()?;` (not
/// `let _ = …`, which drops it at once).
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    flight_recorder: Option<FlightRecorder>,
    stats: Vec<ExportStats>,
    shutdown_timeout: Duration,
    done: bool,
    otlp_metrics: Option<crate::metrics::OtlpMetrics>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("tracing", &self.provider.is_some())
            .field("flight_recorder", &self.flight_recorder)
            .field("exporters", &self.stats)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl TelemetryGuard {
    pub(crate) fn new(
        provider: Option<SdkTracerProvider>,
        logger_provider: Option<SdkLoggerProvider>,
        flight_recorder: Option<FlightRecorder>,
        stats: Vec<ExportStats>,
        shutdown_timeout: Duration,
    ) -> Self {
        TelemetryGuard {
            provider,
            logger_provider,
            flight_recorder,
            stats,
            shutdown_timeout,
            done: false,
            otlp_metrics: None,
        }
    }

    pub(crate) fn with_otlp_metrics(
        mut self,
        metrics: Option<crate::metrics::OtlpMetrics>,
    ) -> Self {
        self.otlp_metrics = metrics;
        self
    }

    /// The OTLP metrics pipeline (`OTEL_METRICS_EXPORTER=otlp`), when on: its
    /// recorder and export counts.
    pub fn otlp_metrics(&self) -> Option<&crate::metrics::OtlpMetrics> {
        self.otlp_metrics.as_ref()
    }

    /// The flight recorder (a cheap-clone handle), when on.
    pub fn flight_recorder(&self) -> Option<&FlightRecorder> {
        self.flight_recorder.as_ref()
    }

    /// Queue and drop counts of each exporter (`otlp_logs` first when OTLP
    /// log export is on, then `otlp`, then `stdout`).
    pub fn export_stats(&self) -> &[ExportStats] {
        &self.stats
    }

    /// The tracer provider, `None` when `OTEL_SDK_DISABLED`.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Exports every finished span (and log record) now, waiting at most the
    /// shutdown timeout in all.
    pub fn force_flush(&self) -> Result<(), ShutdownError> {
        let (traces, logs) = (self.provider.clone(), self.logger_provider.clone());
        bounded(self.shutdown_timeout, move || {
            let logs = logs.map_or(Ok(()), |p| p.force_flush());
            traces.map_or(Ok(()), |p| p.force_flush()).and(logs)
        })
    }

    /// Flushes and shuts the exporters down, waiting at most the shutdown
    /// timeout. Dropping the guard does the same and ignores the result.
    pub fn shutdown(mut self) -> Result<(), ShutdownError> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<(), ShutdownError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        // The last metric export, bounded by the shutdown timeout.
        drop(self.otlp_metrics.take());
        let (traces, logs) = (self.provider.clone(), self.logger_provider.clone());
        let timeout = self.shutdown_timeout;
        bounded(timeout, move || {
            let started = std::time::Instant::now();
            let traces = traces.map_or(Ok(()), |p| p.shutdown_with_timeout(timeout));
            let left = timeout.saturating_sub(started.elapsed());
            let logs = logs.map_or(Ok(()), |p| p.shutdown_with_timeout(left));
            traces.and(logs)
        })
    }
}

/// Runs `f` on a helper thread and waits at most `timeout` for it, so no
/// exporter (nor several in a row) can hold the caller longer.
fn bounded(
    timeout: Duration,
    f: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), ShutdownError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("telltale-shutdown".to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        return Err(ShutdownError::Thread(e));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(opentelemetry_sdk::error::OTelSdkError::Timeout(_))) | Err(_) => {
            Err(ShutdownError::Timeout(timeout))
        }
        Ok(Err(e)) => Err(ShutdownError::Exporter(e)),
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}
