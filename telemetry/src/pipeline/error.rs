//! Why telemetry could not start.

use telltale_core::BoxError;
use telltale_core::config::ConfigError;

/// Why [`init`](crate::init), [`Telemetry::from_env`](crate::Telemetry::from_env)
/// or [`TelemetryBuilder::build`](crate::TelemetryBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A variable or builder setting held an invalid value; the error names it
    /// and the position of the problem.
    #[error("telemetry configuration: {0}")]
    Config(#[from] ConfigError),
    /// An exporter could not be started.
    #[error("telemetry exporter {exporter}: {source}")]
    Exporter {
        /// Which exporter (`otlp`, `otlp_logs`, `stdout`).
        exporter: &'static str,
        /// What went wrong.
        #[source]
        source: ExporterError,
    },
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    /// The OTLP metrics recorder could not become part of the global
    /// `metrics` recorder.
    #[error("OTLP metrics: {0}")]
    Metrics(#[source] crate::metrics::otlp::InstallError),
}

/// Why a [`BoundedSpanProcessor`](crate::BoundedSpanProcessor) or
/// [`BoundedLogProcessor`](crate::BoundedLogProcessor) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExporterError {
    /// The exporter could not be built (the error of the `make` function).
    #[error("{0}")]
    Build(#[source] BoxError),
    /// The export worker thread or its runtime could not be started, or it
    /// stopped while starting.
    #[error("export worker: {0}")]
    Worker(#[source] std::io::Error),
}
