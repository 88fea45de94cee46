//! [`TelemetryBuilder`]: every setting of the pipeline, its
//! [`build`](TelemetryBuilder::build) and [`init`](TelemetryBuilder::init).
//!
//! `build` puts together what its submodules make: `resource` (the
//! OpenTelemetry resource and `service.name`), `exporters` (what every
//! exporter starts with: batching, failure reporting, counts), `logs` (log
//! lines and the OTLP logger provider) and `traces` (the tracer provider and
//! its processors); OTLP metrics are `otlp_metrics`' own.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use super::error::InitError;
use super::filter::{DEFAULT_TRACE_FILTER, log_filter};
use super::fmt::Profile;
use super::guard::TelemetryGuard;
use super::otlp_logs::OtlpLogLayer;
use super::settings::{
    Compression, DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_EXPORT_DELAY, DEFAULT_EXPORT_QUEUE_SIZE,
    DEFAULT_FILTER, DEFAULT_MAX_FIELD_LEN, DEFAULT_SHUTDOWN_TIMEOUT, ExportExtras, LogFormat,
    OtlpConfig, Protocol, Sampler,
};
use super::telemetry::Telemetry;

mod exporters;
mod logs;
mod resource;
mod traces;

type BoxLayer = Box<dyn Layer<Registry> + Send + Sync>;

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
    pub(crate) flight_recorder_max_bytes: usize,
    pub(crate) export_queue_max_bytes: usize,
    pub(crate) span_limits: super::limits::SpanLimits,
    pub(crate) sampler: Sampler,
    pub(crate) sdk_disabled: bool,
    pub(crate) filter: String,
    pub(crate) filter_source: Cow<'static, str>,
    pub(crate) trace_filter: String,
    pub(crate) trace_filter_source: Cow<'static, str>,
    pub(crate) log_format: LogFormat,
    pub(crate) max_field_len: usize,
    pub(crate) ansi: bool,
    pub(crate) writer: Option<BoxMakeWriter>,
    pub(crate) queue_size: usize,
    pub(crate) batch_size: usize,
    pub(crate) export_delay: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) propagators: crate::propagation::Propagators,
    pub(crate) tracing_attributes: bool,
    pub(crate) export_extras: ExportExtras,
    /// OTLP metrics (`OTEL_METRICS_EXPORTER`, `OTEL_EXPORTER_OTLP_METRICS_*`).
    pub(crate) metrics_export: super::otlp_metrics::MetricsExport,
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
            .field("flight_recorder_max_bytes", &self.flight_recorder_max_bytes)
            .field("export_queue_max_bytes", &self.export_queue_max_bytes)
            .field("span_limits", &self.span_limits)
            .field("sampler", &self.sampler)
            .field("sdk_disabled", &self.sdk_disabled)
            .field("filter", &self.filter)
            .field("trace_filter", &self.trace_filter)
            .field("log_format", &self.log_format)
            .field("max_field_len", &self.max_field_len)
            .field("queue_size", &self.queue_size)
            .field("batch_size", &self.batch_size)
            .field("export_delay", &self.export_delay)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("propagators", &self.propagators)
            .field("tracing_attributes", &self.tracing_attributes)
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
            flight_recorder_max_bytes: super::settings::DEFAULT_FLIGHT_RECORDER_MAX_BYTES,
            export_queue_max_bytes: super::settings::DEFAULT_EXPORT_QUEUE_MAX_BYTES,
            span_limits: super::limits::SpanLimits::default(),
            sampler: Sampler::default(),
            sdk_disabled: false,
            filter: DEFAULT_FILTER.to_owned(),
            filter_source: Cow::Borrowed("filter"),
            trace_filter: DEFAULT_TRACE_FILTER.to_owned(),
            trace_filter_source: Cow::Borrowed("trace_filter"),
            log_format: LogFormat::default(),
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            ansi: false,
            writer: None,
            queue_size: DEFAULT_EXPORT_QUEUE_SIZE,
            batch_size: DEFAULT_EXPORT_BATCH_SIZE,
            export_delay: DEFAULT_EXPORT_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            propagators: crate::propagation::Propagators::default(),
            tracing_attributes: false,
            export_extras: ExportExtras::default(),
            metrics_export: Default::default(),
        }
    }
}

/// The instrumentation scope of every span telltale's tracer produces: this
/// crate's name and version (an empty version makes backends group spans of
/// every telltale release together).
pub(crate) fn instrumentation_scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
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
        self.otlp = Some(carry(previous, endpoint.into(), protocol));
        self
    }

    /// Also exports log records (the tracing events that pass the filter)
    /// over OTLP to `endpoint`, a full URL (for HTTP, including `/v1/logs`).
    /// Log lines are still written to the log output. Defaults to no OTLP log
    /// export.
    pub fn otlp_logs(mut self, endpoint: impl Into<String>, protocol: Protocol) -> Self {
        let previous = self.otlp_logs.take().or_else(|| self.otlp.clone());
        self.otlp_logs = Some(carry(previous, endpoint.into(), protocol));
        self
    }

    /// Adds a header (gRPC metadata) to every OTLP export, of spans and of
    /// log records. Defaults to none. Has no effect on an exporter not set yet
    /// ([`otlp`](Self::otlp), [`otlp_logs`](Self::otlp_logs)).
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        for otlp in self.otlp_configs() {
            otlp.headers.push((name.clone(), value.clone()));
        }
        self
    }

    /// Bound of one OTLP export request. Defaults to 10 s. Has no effect on
    /// an exporter not set yet.
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        for otlp in self.otlp_configs() {
            otlp.timeout = timeout;
        }
        self
    }

    /// Compresses every OTLP export (`OTEL_EXPORTER_OTLP_COMPRESSION`).
    /// Defaults to [`Compression::None`]. Has no effect on an exporter not
    /// set yet.
    pub fn otlp_compression(mut self, compression: Compression) -> Self {
        for otlp in self.otlp_configs() {
            otlp.compression = compression;
        }
        self
    }

    /// Trusts only the CA certificates of this PEM for the collector's TLS
    /// certificate (`OTEL_EXPORTER_OTLP_CERTIFICATE` names a file of it).
    /// Defaults to the system's roots. Checked by [`build`](Self::build);
    /// has no effect on an exporter not set yet. Needs the `tls` feature.
    pub fn otlp_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        let pem = pem.into();
        for otlp in self.otlp_configs() {
            otlp.tls.ca_certificate = Some(pem.clone());
        }
        self
    }

    /// Presents this client certificate chain and private key (PEM) to the
    /// collector: mutual TLS (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
    /// `…_CLIENT_KEY` name files of them). Defaults to none. Checked by
    /// [`build`](Self::build); has no effect on an exporter not set yet.
    /// Needs the `tls` feature.
    pub fn otlp_client_identity(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        let identity = (certificate_pem.into(), key_pem.into());
        for otlp in self.otlp_configs() {
            otlp.tls.client_identity = Some(identity.clone());
        }
        self
    }

    /// While exports keep failing, at most one `WARN` summary line per this
    /// interval (after the line of the first failure). Defaults to 1 minute
    /// (`TELLTALE_EXPORT_FAILURE_LOG_INTERVAL`).
    pub fn export_failure_log_interval(mut self, interval: Duration) -> Self {
        self.export_extras.failure_log_interval = interval;
        self
    }

    /// The level of the OpenTelemetry SDK's own logs (targets starting with
    /// `opentelemetry`), as `OTEL_LOG_LEVEL` sets it, unless the filter names
    /// such a target itself. Defaults to none: they follow the filter.
    pub fn sdk_log_level(mut self, level: tracing::level_filters::LevelFilter) -> Self {
        self.export_extras.sdk_log_level = Some(level);
        self
    }

    /// Also writes every finished span as a line to standard output, in the
    /// log lines' format (see [`StdoutExporter`](crate::StdoutExporter)).
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

    /// The flight recorder's byte budget: the oldest spans are evicted when
    /// the spans' [estimated sizes](crate::pipeline::estimated_size) would
    /// add up to more. Defaults to 16 MiB
    /// ([`DEFAULT_FLIGHT_RECORDER_MAX_BYTES`](crate::pipeline::DEFAULT_FLIGHT_RECORDER_MAX_BYTES));
    /// checked by [`build`](Self::build) (64 KiB to 16 GiB).
    pub fn flight_recorder_max_bytes(mut self, bytes: usize) -> Self {
        self.flight_recorder_max_bytes = bytes;
        self
    }

    /// The byte budget of each export queue (spans, log records): what is
    /// waiting and the batch being exported, by their estimated sizes; a
    /// span that does not fit is dropped and counted (`reason="queue_full"`).
    /// Defaults to 16 MiB
    /// ([`DEFAULT_EXPORT_QUEUE_MAX_BYTES`](crate::pipeline::DEFAULT_EXPORT_QUEUE_MAX_BYTES));
    /// checked by [`build`](Self::build) (64 KiB to 16 GiB).
    pub fn export_queue_max_bytes(mut self, bytes: usize) -> Self {
        self.export_queue_max_bytes = bytes;
        self
    }

    /// The span limits: attribute value length, attribute, event and link
    /// counts (the `OTEL_*_LIMIT` variables). Defaults to the OpenTelemetry
    /// specification's: no value length limit, 128 of everything else.
    ///
    /// ```
    /// use telltale_telemetry::pipeline::SpanLimits;
    /// use telltale_telemetry::{LogFormat, Telemetry};
    ///
    /// let mut limits = SpanLimits::default();
    /// limits.attribute_value_length = Some(8);
    /// let telemetry = Telemetry::builder()
    ///     .log_format(LogFormat::None)
    ///     .span_limits(limits)
    ///     .build()
    ///     .unwrap();
    /// let recorder = telemetry.flight_recorder().unwrap().clone();
    /// tracing::dispatcher::with_default(telemetry.dispatch(), || {
    ///     tracing::info_span!("work", note = "a long attribute value").in_scope(|| {});
    /// });
    /// let note = recorder.recent(1)[0].attribute("note").unwrap().as_str().into_owned();
    /// assert_eq!(note, "a long a");
    /// ```
    pub fn span_limits(mut self, limits: super::limits::SpanLimits) -> Self {
        self.span_limits = limits;
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

    /// The log filter, in `RUST_LOG` syntax: which events become log lines
    /// (and OTLP log records). It does not decide what is traced: see
    /// [`trace_filter`](Self::trace_filter). Defaults to `info`; checked
    /// strictly by [`build`](Self::build) (at most
    /// [`MAX_FILTER_LEN`](crate::pipeline::MAX_FILTER_LEN) characters, every
    /// directive a level or `target[span{field=value}]=level`).
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = directives.into();
        self.filter_source = Cow::Borrowed("filter");
        self
    }

    /// The trace filter, in `RUST_LOG` syntax: which spans (and the events
    /// recorded on them) reach the OpenTelemetry layer, whatever the log
    /// filter says. Defaults to `info` ([`DEFAULT_TRACE_FILTER`]), which
    /// exports telltale's request spans; trace volume is the sampler's job.
    ///
    /// ```
    /// use telltale_telemetry::{LogFormat, Telemetry};
    ///
    /// let telemetry = Telemetry::builder()
    ///     .log_format(LogFormat::None)
    ///     .filter("warn")
    ///     .trace_filter("info,noisy_crate=off")
    ///     .build()
    ///     .unwrap();
    /// let recorder = telemetry.flight_recorder().unwrap().clone();
    /// tracing::dispatcher::with_default(telemetry.dispatch(), || {
    ///     tracing::info_span!("request").in_scope(|| {});
    /// });
    /// assert_eq!(recorder.recent(1)[0].name(), "request");
    /// ```
    pub fn trace_filter(mut self, directives: impl Into<String>) -> Self {
        self.trace_filter = directives.into();
        self.trace_filter_source = Cow::Borrowed("trace_filter");
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
        self.export_extras.logs.queue_size = None;
        self
    }

    /// Largest batch handed to an exporter. Defaults to 512.
    pub fn export_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self.export_extras.logs.batch_size = None;
        self
    }

    /// Longest wait before a partial batch is exported. Defaults to 1 s.
    pub fn export_delay(mut self, delay: Duration) -> Self {
        self.export_delay = delay;
        self.export_extras.logs.delay = None;
        self
    }

    /// Bound of the final flush and shutdown when the guard drops. Defaults to
    /// 5 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The propagators [`Telemetry::install`] makes global
    /// (`OTEL_PROPAGATORS`). Defaults to W3C Trace Context (telltale's
    /// [`TraceContextPropagator`](crate::propagation::TraceContextPropagator))
    /// and W3C Baggage; [`Propagators::none`](crate::propagation::Propagators::none)
    /// turns propagation off, in telltale's layers too.
    pub fn propagators(mut self, propagators: crate::propagation::Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Whether spans also carry what the `tracing` bridge can add beyond the
    /// OpenTelemetry conventions: the call site (`code.file.path`,
    /// `code.line.number`, `code.module.name`, with absolute build paths),
    /// the thread (`thread.id`, `thread.name`), busy and idle time
    /// (`busy_ns`, `idle_ns`) and the `tracing` target (`target`). Off by
    /// default: they cost bytes on every span and say nothing a backend can
    /// query across services. [`env`](Self::env) reads
    /// [`TELLTALE_TRACES_TRACING_ATTRIBUTES`](super::env::TELLTALE_TRACES_TRACING_ATTRIBUTES).
    pub fn tracing_attributes(mut self, enabled: bool) -> Self {
        self.tracing_attributes = enabled;
        self
    }

    /// Builds the pipeline without installing anything global.
    pub fn build(mut self) -> Result<Telemetry, InitError> {
        self.validate()?;
        if let Some(level) = self.export_extras.sdk_log_level {
            // `OTEL_LOG_LEVEL`, unless the filter already says.
            if !self.filter.contains("opentelemetry") {
                let level = level.to_string().to_ascii_lowercase();
                self.filter = format!("{},opentelemetry={level}", self.filter);
            }
        }
        let extras = std::mem::take(&mut self.export_extras);
        let mut started = exporters::Started::default();
        let executable = resource::executable_name();
        let service_name = self.resolved_service_name(executable.as_deref());
        let resource = self.otel_resource(executable, service_name.clone());

        let logger_provider = self.logger_provider(&resource, &extras, &mut started)?;
        let otlp_metrics = if self.sdk_disabled {
            None
        } else {
            self.metrics_export.build(
                &resource,
                extras.failure_log_interval,
                self.shutdown_timeout,
                &mut started.diagnostics,
            )?
        };
        let (provider, recorder) = if self.sdk_disabled {
            (None, None)
        } else {
            let traces = self.traces(resource, &extras, &mut started)?;
            (Some(traces.provider), traces.recorder)
        };

        let mut layers: Vec<BoxLayer> = Vec::new();
        if let Some(provider) = &provider {
            layers.push(self.otel_layer(provider));
        }
        let writer = self.writer.take().unwrap_or_else(|| {
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
        });
        let (lines, ids) = self.log_lines(service_name, writer);
        layers.extend(lines);
        let otlp_logs = OtlpLogLayer::new(logger_provider.as_ref().map(|p| {
            opentelemetry::logs::LoggerProvider::logger_with_scope(p, instrumentation_scope())
        }));
        // Per-layer filters: the log filter (`RUST_LOG`) for log lines and
        // OTLP log records, the trace filter for spans, so quieting logs
        // never turns tracing off.
        let subscriber = Registry::default()
            .with(layers)
            .with(ids)
            .with(otlp_logs.with_filter(log_filter(&self.filter, &self.trace_filter)))
            // Every formatter here is telltale's: the request layers give
            // their attributes to the OpenTelemetry span directly, unless a
            // filter must see the request fields' values (see its docs).
            // Outermost, so that looking for it is one step; bare, because
            // `ids` has no per-layer filter either, so it changes no
            // filtering decision.
            .with(
                (!super::direct::matches_field_values(&self.filter)
                    && !super::direct::matches_field_values(&self.trace_filter))
                .then_some(super::DirectRequestAttributes),
            );
        let dispatch = Dispatch::new(subscriber);
        // The export workers' lines (and the SDK's internal logs on their
        // threads) go to this pipeline's log output.
        for d in &started.diagnostics {
            d.set(&dispatch);
        }
        tracing::dispatcher::with_default(&dispatch, || {
            for warning in &extras.warnings {
                tracing::warn!(target: "telltale_telemetry::config", "{warning}");
            }
        });
        Ok(Telemetry::new(
            dispatch,
            TelemetryGuard::new(
                provider,
                logger_provider,
                recorder,
                started.stats,
                self.shutdown_timeout,
            )
            .with_otlp_metrics(otlp_metrics),
        )
        .with_propagators(self.propagators))
    }

    /// Builds and installs the pipeline globally; see [`Telemetry::install`].
    pub fn init(self) -> Result<TelemetryGuard, InitError> {
        self.build()?.install()
    }

    /// Every OTLP exporter set so far (spans, log records, metrics): what
    /// the shared OTLP settings apply to.
    fn otlp_configs(&mut self) -> impl Iterator<Item = &mut OtlpConfig> {
        [
            &mut self.otlp,
            &mut self.otlp_logs,
            &mut self.metrics_export.otlp,
        ]
        .into_iter()
        .flatten()
    }
}

/// New OTLP settings for `endpoint`, keeping what `previous` had beyond
/// the endpoint and protocol.
fn carry(previous: Option<OtlpConfig>, endpoint: String, protocol: Protocol) -> OtlpConfig {
    match previous {
        Some(p) => OtlpConfig {
            endpoint,
            protocol,
            ..p
        },
        None => OtlpConfig::new(endpoint, protocol),
    }
}
