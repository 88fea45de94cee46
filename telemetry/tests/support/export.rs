//! A telemetry pipeline for export tests: JSON log lines captured in
//! memory (so the export worker's lines can be read), spans emitted through
//! its dispatch, bounded waits on its export counts.

use std::time::{Duration, Instant};

use telltale_core::config::Env;
use telltale_telemetry::{ExportStats, LogFormat, Profile, Telemetry, TelemetryBuilder};

use super::otel::{Captured, MAX_WAIT};

/// A built pipeline and its captured log lines.
pub struct Pipeline {
    pub telemetry: Telemetry,
    pub lines: Captured,
}

/// `builder` with JSON lines captured, a short export delay, service `export`.
pub fn build(builder: TelemetryBuilder) -> Pipeline {
    try_build(builder).unwrap()
}

pub fn try_build(builder: TelemetryBuilder) -> Result<Pipeline, telltale_telemetry::InitError> {
    telltale_testkit::init();
    let lines = Captured::default();
    let telemetry = builder
        .service_name("export")
        .log_format(LogFormat::Json(Profile::OpenTelemetry))
        .writer(lines.clone())
        .build()?;
    Ok(Pipeline { telemetry, lines })
}

/// A pipeline from these variables only (with JSON lines captured).
pub fn from_env(pairs: &[(&str, &str)]) -> Result<Pipeline, telltale_telemetry::InitError> {
    let env = Env::from_pairs(pairs.iter().copied());
    try_build(
        Telemetry::builder()
            .export_delay(Duration::from_millis(10))
            .env(&env)?,
    )
}

impl Pipeline {
    /// Emits one span named `name` through the pipeline.
    pub fn span(&self, name: &str) {
        tracing::dispatcher::with_default(self.telemetry.dispatch(), || {
            tracing::info_span!("span", otel.name = name).in_scope(|| {});
        });
    }

    /// Emits one event (a log record when OTLP log export is on).
    pub fn event(&self, message: &str) {
        tracing::dispatcher::with_default(self.telemetry.dispatch(), || {
            tracing::info!(target: "app", "{message}");
        });
    }

    /// The stats of exporter `name` (`otlp`, `otlp_logs`).
    pub fn stats(&self, name: &str) -> ExportStats {
        self.telemetry
            .guard()
            .export_stats()
            .iter()
            .find(|s| s.exporter() == name)
            .unwrap_or_else(|| panic!("no exporter {name}"))
            .clone()
    }

    /// The JSON lines of the export worker (target `telltale_telemetry::export`).
    pub fn export_lines(&self) -> Vec<serde_json::Value> {
        self.lines
            .json_lines()
            .into_iter()
            .filter(|l| l["target"] == "telltale_telemetry::export")
            .collect()
    }

    /// Export lines at `level` (`WARN`, `INFO`).
    pub fn export_lines_at(&self, level: &str) -> Vec<String> {
        self.export_lines()
            .into_iter()
            .filter(|l| l["level"] == level)
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Waits (bounded) until `done` holds.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + MAX_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
