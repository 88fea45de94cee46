//! Building the pipeline, installing it, and shutting it down.

use std::fmt;
use std::time::Duration;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::SdkTracerProvider;
use telltale_core::config::{Env, EnvSource};
use tracing::Dispatch;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::TelemetryBuilder;
use crate::config::{DEFAULT_FLIGHT_RECORDER_CAPACITY, LogFormat, OtlpConfig, Protocol};
use crate::error::InitError;
use crate::export::{BatchConfig, BoundedBatchProcessor, BoundedLogProcessor, ExportStats};
use crate::flight_recorder::FlightRecorder;
use crate::logs::{JsonFields, JsonFormat, OtelIdsLayer, PrettyFormat};
use crate::otlp_logs::OtlpLogLayer;
use crate::stdout::StdoutExporter;

type Base = Layered<EnvFilter, Registry>;
type BoxLayer = Box<dyn Layer<Base> + Send + Sync>;

/// A built telemetry pipeline, not installed yet: the tracing [`Dispatch`]
/// (filter, OpenTelemetry layer, log formatter) and the [`TelemetryGuard`]
/// that owns the exporters.
///
/// [`install`](Self::install) makes it the process-wide default, which is
/// what [`init`](crate::init) does. Tests and multi-service processes can use
/// the dispatch without installing it, e.g. with
/// [`tracing::dispatcher::with_default`] or `WithSubscriber::with_subscriber`.
///
/// ```
/// use telltale_telemetry::Telemetry;
///
/// let telemetry = Telemetry::builder().service_name("doc").build().unwrap();
/// let recorder = telemetry.flight_recorder().unwrap().clone();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info_span!("work").in_scope(|| tracing::info!("inside"));
/// });
/// assert_eq!(recorder.recent(1)[0].name(), "work");
/// assert_eq!(recorder.recent(1)[0].service_name(), Some("doc"));
/// ```
pub struct Telemetry {
    dispatch: Dispatch,
    guard: TelemetryGuard,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A builder with every setting at its default (no environment read).
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    #[doc = include_str!("../docs/configuration.md")]
    pub fn from_env() -> Result<TelemetryBuilder, InitError> {
        TelemetryBuilder::from_env_source(&Env::process())
    }

    /// [`from_env`](Self::from_env) reading from `env` (tests use
    /// [`Env::from_pairs`]).
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<TelemetryBuilder, InitError> {
        TelemetryBuilder::from_env_source(env)
    }

    /// The subscriber, to install or to use as a scoped default.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The guard owning the exporters.
    pub fn guard(&self) -> &TelemetryGuard {
        &self.guard
    }

    /// The flight recorder, when on.
    pub fn flight_recorder(&self) -> Option<&FlightRecorder> {
        self.guard.flight_recorder()
    }

    /// Makes the pipeline the process-wide default: the tracing subscriber,
    /// the OpenTelemetry tracer provider, and the W3C trace-context + baggage
    /// propagators ([`install_propagators`]).
    pub fn install(self) -> Result<TelemetryGuard, InitError> {
        tracing::dispatcher::set_global_default(self.dispatch)
            .map_err(|_| InitError::AlreadyInstalled)?;
        if let Some(provider) = &self.guard.provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        install_propagators();
        Ok(self.guard)
    }

    /// The dispatch and the guard, for callers that install them their way.
    pub fn into_parts(self) -> (Dispatch, TelemetryGuard) {
        (self.dispatch, self.guard)
    }
}

/// Installs the W3C trace-context and baggage propagators (composite) as the
/// global text-map propagator, so request layers and clients read and write
/// `traceparent`, `tracestate` and `baggage`. [`init`](crate::init) calls it.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
///
/// telltale_telemetry::install_propagators();
/// let fields: Vec<String> = opentelemetry::global::get_text_map_propagator(|p| {
///     p.fields().map(str::to_owned).collect()
/// });
/// assert!(fields.contains(&"traceparent".to_owned()));
/// assert!(fields.contains(&"baggage".to_owned()));
/// ```
pub fn install_propagators() {
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

/// The OpenTelemetry trace ID of the current tracing span, for a response
/// header or a link to the flight recorder; `None` outside any span or
/// without the OpenTelemetry layer.
///
/// ```
/// use telltale_telemetry::{Telemetry, current_trace_id};
///
/// let telemetry = Telemetry::builder().build().unwrap();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     assert_eq!(current_trace_id(), None);
///     let id = tracing::info_span!("request").in_scope(|| current_trace_id()).unwrap();
///     assert_eq!(telemetry.flight_recorder().unwrap().trace(id).len(), 1);
/// });
/// ```
pub fn current_trace_id() -> Option<opentelemetry::trace::TraceId> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id())
}

impl TelemetryBuilder {
    /// Builds the pipeline without installing anything global.
    pub fn build(self) -> Result<Telemetry, InitError> {
        self.validate()?;
        let filter = EnvFilter::builder().parse_lossy(&self.filter);
        let service_name = self
            .service_name
            .clone()
            .or_else(|| {
                self.resource
                    .iter()
                    .find(|kv| kv.key.as_str() == "service.name")
                    .map(|kv| kv.value.to_string())
            })
            .unwrap_or_else(default_service_name);

        let mut stats = Vec::new();
        let mut recorder = None;
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(self.resource.iter().cloned())
            .with_service_name(service_name.clone())
            .build();
        let config = |export_timeout| BatchConfig {
            queue_size: self.queue_size,
            batch_size: self.batch_size,
            delay: self.export_delay,
            export_timeout,
            flush_timeout: self.shutdown_timeout,
        };
        let logger_provider = match self.otlp_logs.clone() {
            Some(otlp) if !self.sdk_disabled => {
                let timeout = otlp.timeout;
                let processor = BoundedLogProcessor::new("otlp_logs", config(timeout), move || {
                    otlp_log_exporter(otlp)
                })
                .map_err(|message| InitError::Exporter {
                    exporter: "otlp_logs",
                    message,
                })?;
                stats.push(processor.stats());
                Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource.clone())
                        .with_log_processor(processor)
                        .build(),
                )
            }
            _ => None,
        };
        let provider = if self.sdk_disabled {
            None
        } else {
            let mut builder = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_sampler(self.sampler.to_sdk());
            let has_exporter = self.otlp.is_some() || self.stdout_exporter;
            let capacity = self.flight_recorder_capacity.unwrap_or(if has_exporter {
                0
            } else {
                DEFAULT_FLIGHT_RECORDER_CAPACITY
            });
            if capacity > 0 {
                let r = FlightRecorder::new(capacity);
                builder = builder.with_span_processor(r.clone());
                recorder = Some(r);
            }
            if let Some(otlp) = self.otlp.clone() {
                let timeout = otlp.timeout;
                let processor = BoundedBatchProcessor::new("otlp", config(timeout), move || {
                    otlp_exporter(otlp)
                })
                .map_err(|message| InitError::Exporter {
                    exporter: "otlp",
                    message,
                })?;
                stats.push(processor.stats());
                builder = builder.with_span_processor(processor);
            }
            if self.stdout_exporter {
                let processor = BoundedBatchProcessor::new(
                    "stdout",
                    config(crate::config::DEFAULT_EXPORT_TIMEOUT),
                    || Ok(StdoutExporter::default()),
                )
                .map_err(|message| InitError::Exporter {
                    exporter: "stdout",
                    message,
                })?;
                stats.push(processor.stats());
                builder = builder.with_span_processor(processor);
            }
            Some(builder.build())
        };

        let mut layers: Vec<BoxLayer> = Vec::new();
        if let Some(provider) = &provider {
            layers.push(Box::new(
                tracing_opentelemetry::layer().with_tracer(provider.tracer("telltale")),
            ));
        }
        let writer = self.writer.unwrap_or_else(|| {
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
        });
        let mut ids = OtelIdsLayer::unbound();
        match self.log_format {
            LogFormat::Json(profile) => {
                let format = JsonFormat::new(profile)
                    .service_name(service_name)
                    .max_len(self.max_field_len);
                ids = format.ids_layer();
                layers.push(Box::new(
                    tracing_subscriber::fmt::layer()
                        .fmt_fields(JsonFields::new(self.max_field_len))
                        .event_format(format)
                        .with_writer(writer),
                ));
            }
            LogFormat::Pretty => {
                let format = PrettyFormat::new(self.ansi).max_len(self.max_field_len);
                ids = format.ids_layer();
                layers.push(Box::new(
                    tracing_subscriber::fmt::layer()
                        .fmt_fields(JsonFields::new(self.max_field_len))
                        .event_format(format)
                        .with_writer(writer),
                ));
            }
            LogFormat::None => {}
        }
        let otlp_logs = OtlpLogLayer::new(
            logger_provider
                .as_ref()
                .map(|p| opentelemetry::logs::LoggerProvider::logger(p, "telltale")),
        );
        let subscriber = Registry::default()
            .with(filter)
            .with(layers)
            .with(ids)
            .with(otlp_logs);
        Ok(Telemetry {
            dispatch: Dispatch::new(subscriber),
            guard: TelemetryGuard {
                provider,
                logger_provider,
                flight_recorder: recorder,
                stats,
                shutdown_timeout: self.shutdown_timeout,
                done: false,
            },
        })
    }

    /// Builds and installs the pipeline globally; see [`Telemetry::install`].
    pub fn init(self) -> Result<TelemetryGuard, InitError> {
        self.build()?.install()
    }
}

fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    format!("unknown_service:{exe}")
}

fn otlp_log_exporter(otlp: OtlpConfig) -> Result<opentelemetry_otlp::LogExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
    let built = match otlp.protocol {
        Protocol::Grpc => opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(otlp.endpoint)
            .with_timeout(otlp.timeout)
            .with_metadata(metadata(&otlp.headers)?)
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(otlp.endpoint)
            .with_timeout(otlp.timeout)
            .with_headers(otlp.headers.into_iter().collect())
            .build(),
    };
    built.map_err(|e| e.to_string())
}

fn metadata(
    headers: &[(String, String)],
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, String> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let name: http::HeaderName = name.parse().map_err(|e| format!("{name}: {e}"))?;
        let value: http::HeaderValue = value.parse().map_err(|e| format!("{name}: {e}"))?;
        map.append(name, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

fn otlp_exporter(otlp: OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
    let built = match otlp.protocol {
        Protocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &otlp.headers {
                let name: http::HeaderName = name.parse().map_err(|e| format!("{name}: {e}"))?;
                let value: http::HeaderValue = value.parse().map_err(|e| format!("{name}: {e}"))?;
                headers.append(name, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(otlp.endpoint)
                .with_timeout(otlp.timeout)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
                )
                .build()
        }
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(otlp.endpoint)
            .with_timeout(otlp.timeout)
            .with_headers(otlp.headers.into_iter().collect())
            .build(),
    };
    built.map_err(|e| e.to_string())
}

/// Why a flush or shutdown did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// It did not finish within the bound; queued spans may be lost.
    #[error("telemetry shutdown did not finish within {0:?}")]
    Timeout(Duration),
    /// An exporter reported an error.
    #[error("telemetry shutdown: {0}")]
    Exporter(String),
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
        return Err(ShutdownError::Exporter(e.to_string()));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(opentelemetry_sdk::error::OTelSdkError::Timeout(_))) | Err(_) => {
            Err(ShutdownError::Timeout(timeout))
        }
        Ok(Err(e)) => Err(ShutdownError::Exporter(e.to_string())),
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_of(builder: TelemetryBuilder) -> Option<String> {
        let telemetry = builder.log_format(LogFormat::None).build().unwrap();
        let recorder = telemetry.flight_recorder().unwrap().clone();
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            tracing::info_span!("s").in_scope(|| {});
        });
        recorder.recent(1)[0].service_name().map(str::to_owned)
    }

    #[test]
    fn service_name_precedence() {
        let env = Env::from_pairs([("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]);
        assert_eq!(
            service_of(Telemetry::from_env_source(&env).unwrap()).as_deref(),
            Some("from-attrs")
        );
        let env = Env::from_pairs([
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-name"),
        ]);
        assert_eq!(
            service_of(Telemetry::from_env_source(&env).unwrap()).as_deref(),
            Some("from-name")
        );
        let unknown = service_of(Telemetry::builder()).unwrap();
        assert!(unknown.starts_with("unknown_service:"), "{unknown}");
    }

    #[test]
    fn sdk_disabled_means_no_provider_and_a_fast_guard() {
        let telemetry = Telemetry::builder()
            .sdk_disabled(true)
            .log_format(LogFormat::None)
            .build()
            .unwrap();
        assert!(telemetry.guard().tracer_provider().is_none());
        let (_, guard) = telemetry.into_parts();
        guard.force_flush().unwrap();
        guard.shutdown().unwrap();
    }

    #[test]
    fn invalid_code_settings_fail_build() {
        let err = Telemetry::builder()
            .otlp("http://c:4317", Protocol::Grpc)
            .otlp_header("bad header", "x")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("otlp header"), "{err}");
    }
}
