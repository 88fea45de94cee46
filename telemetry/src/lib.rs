//! telltale-telemetry: one init call for traces, enriched JSON logs and
//! exporters; request layers that feed OpenTelemetry spans and RED metrics.
//!
//! (Work in progress: modules are filled in by their issues.)

pub mod layer;
pub mod metrics;
