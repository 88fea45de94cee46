//! Why telemetry could not start.

use telltale_core::config::ConfigError;

/// Why [`init`](crate::init) or [`TelemetryBuilder::build`](crate::TelemetryBuilder::build)
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A variable or builder setting held an invalid value; the error names it
    /// and the position of the problem.
    #[error("telemetry configuration: {0}")]
    Config(#[from] ConfigError),
    /// An exporter could not be built.
    #[error("telemetry exporter {exporter}: {message}")]
    Exporter {
        /// Which exporter (`otlp`, `stdout`).
        exporter: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    /// The export worker thread could not be started.
    #[error("telemetry export thread: {0}")]
    Thread(#[from] std::io::Error),
}
