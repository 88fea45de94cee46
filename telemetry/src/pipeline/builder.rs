//! [`TelemetryBuilder`]: every setting of the pipeline, its
//! [`build`](TelemetryBuilder::build) and [`init`](TelemetryBuilder::init).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::error::InitError;
use super::export::{BatchConfig, BoundedLogProcessor, BoundedSpanProcessor};
use super::flight_recorder::FlightRecorder;
use super::fmt::{JsonFields, JsonFormat, OtelIdsLayer, PrettyFormat, Profile};
use super::guard::TelemetryGuard;
use super::otlp::{otlp_exporter, otlp_log_exporter};
use super::otlp_logs::OtlpLogLayer;
use super::settings::{
    DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_EXPORT_DELAY, DEFAULT_EXPORT_QUEUE_SIZE,
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_FILTER, DEFAULT_FLIGHT_RECORDER_CAPACITY,
    DEFAULT_MAX_FIELD_LEN, DEFAULT_SHUTDOWN_TIMEOUT, LogFormat, OtlpConfig, Protocol, Sampler,
};
use super::stdout::StdoutExporter;
use super::telemetry::Telemetry;

type Base = Layered<EnvFilter, Registry>;
type BoxLayer = Box<dyn Layer<Base> + Send + Sync>;

/// Builder of the telemetry pipeline: every setting [`init`](crate::init)
/// reads from the environment can be set here in code, and
/// [`env`](Self::env) overlays the variables that are set.
///
/// ```
/// use std::time::Duration;
/// use telltale_telemetry::{LogFormat, Profile, Telemetry};
///
/// let telemetry = Telemetry::builder()
///     .service_name("checkout")
///     .resource_attribute("deployment.environment", "test")
///     .log_format(LogFormat::Json(Profile::ElasticCommonSchema))
///     .flight_recorder_capacity(512)
///     .shutdown_timeout(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert!(telemetry.flight_recorder().is_some());
/// ```
#[must_use]
pub struct TelemetryBuilder {
    pub(crate) service_name: Option<String>,
    pub(crate) resource: Vec<KeyValue>,
    pub(crate) otlp: Option<OtlpConfig>,
    pub(crate) otlp_logs: Option<OtlpConfig>,
    pub(crate) stdout_exporter: bool,
    pub(crate) flight_recorder_capacity: Option<usize>,
    pub(crate) sampler: Sampler,
    pub(crate) sdk_disabled: bool,
    pub(crate) filter: String,
    pub(crate) filter_source: Cow<'static, str>,
    pub(crate) log_format: LogFormat,
    pub(crate) max_field_len: usize,
    pub(crate) ansi: bool,
    pub(crate) writer: Option<BoxMakeWriter>,
    pub(crate) queue_size: usize,
    pub(crate) batch_size: usize,
    pub(crate) export_delay: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("otlp", &self.otlp)
            .field("otlp_logs", &self.otlp_logs)
            .field("stdout_exporter", &self.stdout_exporter)
            .field("flight_recorder_capacity", &self.flight_recorder_capacity)
            .field("sampler", &self.sampler)
            .field("sdk_disabled", &self.sdk_disabled)
            .field("filter", &self.filter)
            .field("log_format", &self.log_format)
            .field("max_field_len", &self.max_field_len)
            .field("queue_size", &self.queue_size)
            .field("batch_size", &self.batch_size)
            .field("export_delay", &self.export_delay)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        TelemetryBuilder {
            service_name: None,
            resource: Vec::new(),
            otlp: None,
            otlp_logs: None,
            stdout_exporter: false,
            flight_recorder_capacity: None,
            sampler: Sampler::default(),
            sdk_disabled: false,
            filter: DEFAULT_FILTER.to_owned(),
            filter_source: Cow::Borrowed("filter"),
            log_format: LogFormat::default(),
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            ansi: false,
            writer: None,
            queue_size: DEFAULT_EXPORT_QUEUE_SIZE,
            batch_size: DEFAULT_EXPORT_BATCH_SIZE,
            export_delay: DEFAULT_EXPORT_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl TelemetryBuilder {
    /// The defaults [`Telemetry::from_env`] starts from: those of
    /// [`Default`], with JSON log lines.
    pub(crate) fn env_defaults() -> Self {
        TelemetryBuilder {
            log_format: LogFormat::Json(Profile::OpenTelemetry),
            ..TelemetryBuilder::default()
        }
    }

    /// The `service.name` resource attribute. Defaults to `OTEL_SERVICE_NAME`
    /// in [`from_env`](Telemetry::from_env), else
    /// `unknown_service:<executable name>`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (replacing one of the same key). Defaults to
    /// none besides the SDK's `telemetry.sdk.*` attributes.
    pub fn resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<opentelemetry::Value>,
    ) -> Self {
        let key = key.into();
        self.resource.retain(|kv| kv.key.as_str() != key);
        self.resource.push(KeyValue::new(key, value.into()));
        self
    }

    /// Exports spans over OTLP to `endpoint`, a full URL (for HTTP, including
    /// `/v1/traces`). Defaults to no OTLP export.
    pub fn otlp(mut self, endpoint: impl Into<String>, protocol: Protocol) -> Self {
        let previous = self.otlp.take();
        self.otlp = Some(OtlpConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: previous
                .as_ref()
                .map(|o| o.headers.clone())
                .unwrap_or_default(),
            timeout: previous.map_or(DEFAULT_EXPORT_TIMEOUT, |o| o.timeout),
        });
        self
    }

    /// Also exports log records (the tracing events that pass the filter)
    /// over OTLP to `endpoint`, a full URL (for HTTP, including `/v1/logs`).
    /// Log lines are still written to the log output. Defaults to no OTLP log
    /// export.
    pub fn otlp_logs(mut self, endpoint: impl Into<String>, protocol: Protocol) -> Self {
        let previous = self.otlp_logs.take().or_else(|| self.otlp.clone());
        self.otlp_logs = Some(OtlpConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: previous
                .as_ref()
                .map(|o| o.headers.clone())
                .unwrap_or_default(),
            timeout: previous.map_or(DEFAULT_EXPORT_TIMEOUT, |o| o.timeout),
        });
        self
    }

    /// Adds a header (gRPC metadata) to every OTLP export, of spans and of
    /// log records. Defaults to none. Has no effect on an exporter not set yet
    /// ([`otlp`](Self::otlp), [`otlp_logs`](Self::otlp_logs)).
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        for otlp in [&mut self.otlp, &mut self.otlp_logs].into_iter().flatten() {
            otlp.headers.push((name.clone(), value.clone()));
        }
        self
    }

    /// Bound of one OTLP export request. Defaults to 10 s. Has no effect on
    /// an exporter not set yet.
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        for otlp in [&mut self.otlp, &mut self.otlp_logs].into_iter().flatten() {
            otlp.timeout = timeout;
        }
        self
    }

    /// Also writes every finished span as a JSON line to standard output.
    /// Defaults to off.
    pub fn stdout_exporter(mut self, enabled: bool) -> Self {
        self.stdout_exporter = enabled;
        self
    }

    /// Keeps the last `capacity` finished spans in memory, queryable through
    /// [`FlightRecorder`](crate::FlightRecorder); `0` turns it off. Defaults
    /// to on with 2048 spans when no exporter is configured, off otherwise.
    pub fn flight_recorder_capacity(mut self, capacity: usize) -> Self {
        self.flight_recorder_capacity = Some(capacity);
        self
    }

    /// Which traces are sampled. Defaults to [`Sampler::ParentBasedAlwaysOn`].
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Turns span creation and export off (`OTEL_SDK_DISABLED`); logs are
    /// still written. Defaults to `false`.
    pub fn sdk_disabled(mut self, disabled: bool) -> Self {
        self.sdk_disabled = disabled;
        self
    }

    /// The event and span filter, in `RUST_LOG` syntax. Defaults to `info`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = directives.into();
        self.filter_source = Cow::Borrowed("filter");
        self
    }

    /// How log lines look. Defaults to [`LogFormat::Pretty`] when built in
    /// code, and to `json` in [`from_env`](Telemetry::from_env).
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// Longest field value written to a log line, in characters; longer values
    /// are cut and end with `…[truncated]`. Defaults to 4096.
    pub fn max_field_len(mut self, max: usize) -> Self {
        self.max_field_len = max.max(1);
        self
    }

    /// Colors in the pretty format. Defaults to `false`.
    pub fn ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }

    /// Where log lines go. Defaults to standard output.
    pub fn writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Most spans waiting for export; beyond it new spans are dropped and
    /// counted, never waited for. Defaults to 2048.
    pub fn export_queue_size(mut self, size: usize) -> Self {
        self.queue_size = size;
        self
    }

    /// Largest batch handed to an exporter. Defaults to 512.
    pub fn export_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// Longest wait before a partial batch is exported. Defaults to 1 s.
    pub fn export_delay(mut self, delay: Duration) -> Self {
        self.export_delay = delay;
        self
    }

    /// Bound of the final flush and shutdown when the guard drops. Defaults to
    /// 5 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

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
                .map_err(|source| InitError::Exporter {
                    exporter: "otlp_logs",
                    source,
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
                let processor =
                    BoundedSpanProcessor::new("otlp", config(timeout), move || otlp_exporter(otlp))
                        .map_err(|source| InitError::Exporter {
                            exporter: "otlp",
                            source,
                        })?;
                stats.push(processor.stats());
                builder = builder.with_span_processor(processor);
            }
            if self.stdout_exporter {
                let processor =
                    BoundedSpanProcessor::new("stdout", config(DEFAULT_EXPORT_TIMEOUT), || {
                        Ok(StdoutExporter::default())
                    })
                    .map_err(|source| InitError::Exporter {
                        exporter: "stdout",
                        source,
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
        Ok(Telemetry::new(
            Dispatch::new(subscriber),
            TelemetryGuard::new(
                provider,
                logger_provider,
                recorder,
                stats,
                self.shutdown_timeout,
            ),
        ))
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
