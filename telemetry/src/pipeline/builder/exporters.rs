//! What every exporter of the pipeline is started with: its batching, the
//! endpoint its failure lines name, and where its worker's lines and its
//! counts go.

use std::time::Duration;

use telltale_core::BoxError;

use super::TelemetryBuilder;
use crate::pipeline::error::{ExporterError, InitError};
use crate::pipeline::export::diagnostics::Diagnostics;
use crate::pipeline::export::transport::LastCause;
use crate::pipeline::export::{
    BatchConfig, BoundedLogProcessor, BoundedSpanProcessor, ExportStats, Reporting,
};
use crate::pipeline::otlp::{otlp_exporter, otlp_log_exporter};
use crate::pipeline::settings::OtlpConfig;

/// What the exporters started so far hand to the finished pipeline, in the
/// order they started: where each worker's lines go (set once the dispatch
/// exists) and each processor's counts.
#[derive(Default)]
pub(super) struct Started {
    pub(super) diagnostics: Vec<Diagnostics>,
    pub(super) stats: Vec<ExportStats>,
}

impl TelemetryBuilder {
    /// The batching of an exporter whose calls are bounded by
    /// `export_timeout`: the builder's shared queue, batch and delay.
    pub(super) fn batch_config(
        &self,
        export_timeout: Duration,
        failure_log_interval: Duration,
    ) -> BatchConfig {
        BatchConfig {
            queue_size: self.queue_size,
            max_queue_bytes: self.export_queue_max_bytes,
            batch_size: self.batch_size,
            delay: self.export_delay,
            export_timeout,
            flush_timeout: self.shutdown_timeout,
            failure_log_interval,
        }
    }
}

/// The error of [`build`](TelemetryBuilder::build) when `exporter` cannot
/// start.
pub(super) fn failed(exporter: &'static str) -> impl FnOnce(ExporterError) -> InitError {
    move |source| InitError::Exporter { exporter, source }
}

/// A bounded processor exporting over OTLP: the span and the log record
/// processors are started the same way, each with its own exporter.
pub(super) trait OtlpProcessor: Sized {
    /// The exporter it drives.
    type Exporter;

    /// The OTLP exporter to `otlp`'s endpoint, reporting transport causes
    /// into `cause`.
    fn exporter(otlp: OtlpConfig, cause: LastCause) -> Result<Self::Exporter, BoxError>;

    /// Starts the processor and its worker, which makes the exporter.
    fn start(
        name: &'static str,
        config: BatchConfig,
        reporting: Reporting,
        make: impl FnOnce() -> Result<Self::Exporter, BoxError> + Send + 'static,
    ) -> Result<Self, ExporterError>;

    /// Where the worker's lines go.
    fn diagnostics(&self) -> Diagnostics;

    /// The processor's counts.
    fn stats(&self) -> ExportStats;
}

/// [`OtlpProcessor`] for `$processor` (a type made by the export module's
/// `processor_common!`, whose inherent methods these forward to), exporting
/// through `$exporter` made by `$make`.
macro_rules! otlp_processor {
    ($processor:ident, $exporter:ty, $make:path) => {
        impl OtlpProcessor for $processor {
            type Exporter = $exporter;

            fn exporter(otlp: OtlpConfig, cause: LastCause) -> Result<Self::Exporter, BoxError> {
                $make(otlp, cause)
            }

            fn start(
                name: &'static str,
                config: BatchConfig,
                reporting: Reporting,
                make: impl FnOnce() -> Result<Self::Exporter, BoxError> + Send + 'static,
            ) -> Result<Self, ExporterError> {
                $processor::with_reporting(name, config, reporting, make)
            }

            fn diagnostics(&self) -> Diagnostics {
                $processor::diagnostics(self)
            }

            fn stats(&self) -> ExportStats {
                $processor::stats(self)
            }
        }
    };
}

otlp_processor!(
    BoundedSpanProcessor,
    opentelemetry_otlp::SpanExporter,
    otlp_exporter
);
otlp_processor!(
    BoundedLogProcessor,
    opentelemetry_otlp::LogExporter,
    otlp_log_exporter
);

/// Starts the OTLP processor `name`, exporting `what` (named in its failure
/// lines with the endpoint) to `otlp`'s endpoint, and adds its diagnostics
/// and counts to `started`.
pub(super) fn start_otlp<P: OtlpProcessor>(
    name: &'static str,
    what: &'static str,
    config: BatchConfig,
    otlp: OtlpConfig,
    started: &mut Started,
) -> Result<P, InitError> {
    let reporting = Reporting {
        endpoint: Some(otlp.endpoint.clone()),
        ..Reporting::new(what)
    };
    let cause: LastCause = reporting.cause.clone();
    let processor = P::start(name, config, reporting, move || P::exporter(otlp, cause))
        .map_err(failed(name))?;
    started.diagnostics.push(processor.diagnostics());
    started.stats.push(processor.stats());
    Ok(processor)
}
