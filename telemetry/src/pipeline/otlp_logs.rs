//! Tracing events as OpenTelemetry log records, for OTLP log export.

use std::fmt;
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry_sdk::logs::SdkLogger;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::fmt::{DispatchCell, severity};

/// Sends every tracing event that passes the filter as an OpenTelemetry log
/// record (body = message, attributes = event fields and `correlation_id`,
/// trace context = the current span's), to an OTLP log exporter.
/// [`init`](crate::init) adds it when `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` or
/// `OTEL_LOGS_EXPORTER=otlp` is set. Events of the export workers' threads
/// and of the OpenTelemetry SDK (targets `opentelemetry*`) are left out.
pub(crate) struct OtlpLogLayer {
    logger: Option<SdkLogger>,
    cell: DispatchCell,
}

impl OtlpLogLayer {
    pub(crate) fn new(logger: Option<SdkLogger>) -> Self {
        OtlpLogLayer {
            logger,
            cell: DispatchCell::default(),
        }
    }
}

struct Fields<'a, R> {
    record: &'a mut R,
    correlation: bool,
}

impl<R: LogRecord> Visit for Fields<'_, R> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.record.set_body(AnyValue::from(text));
        } else {
            self.record_str(field, &text);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.record.set_body(AnyValue::from(value.to_owned())),
            name => {
                self.correlation |= name == "correlation_id";
                self.record.add_attribute(name, value.to_owned());
            }
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record.add_attribute(field.name(), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.record.add_attribute(field.name(), v),
            Err(_) => self.record.add_attribute(field.name(), value.to_string()),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record.add_attribute(field.name(), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record.add_attribute(field.name(), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record.add_attribute(field.name(), value.to_string());
    }
}

impl<S> tracing_subscriber::Layer<S> for OtlpLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.cell.set(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(logger) = &self.logger else {
            return;
        };
        let meta = event.metadata();
        // No feedback: what the export workers log (their failure lines, the
        // SDK's internal logs) is never exported as a log record, nor are the
        // SDK's own logs from any thread.
        if super::export::diagnostics::on_worker_thread()
            || meta.target().starts_with("opentelemetry")
        {
            return;
        }
        let (text, _, number) = severity(meta.level());
        let mut record = logger.create_log_record();
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        record.set_target(meta.target());
        record.set_severity_text(text);
        record.set_severity_number(match number {
            1 => Severity::Trace,
            5 => Severity::Debug,
            9 => Severity::Info,
            13 => Severity::Warn,
            _ => Severity::Error,
        });
        let mut fields = Fields {
            record: &mut record,
            correlation: false,
        };
        event.record(&mut fields);
        if !fields.correlation {
            telltale_core::correlation::with_current(|id| {
                if let Some(id) = id {
                    record.add_attribute("correlation_id", id.as_str().to_owned());
                }
            });
        }
        let leaf = ctx.event_span(event).map(|span| span.id());
        let span_context = match leaf {
            Some(id) => self.cell.span_context(&id),
            None => {
                use opentelemetry::trace::TraceContextExt;
                Some(
                    opentelemetry::Context::current()
                        .span()
                        .span_context()
                        .clone(),
                )
            }
        };
        if let Some(sc) = span_context.filter(|sc| sc.is_valid()) {
            record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
        }
        logger.emit(record);
    }
}
