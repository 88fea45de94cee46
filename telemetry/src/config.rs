//! What [`init`](crate::init) builds, set in code or read from the environment.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::KeyValue;
use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::error::InitError;
use crate::logs::Profile;

/// Default capacity of the flight recorder, in spans.
pub const DEFAULT_FLIGHT_RECORDER_CAPACITY: usize = 2048;
/// Default bound of the export queue, in spans.
pub const DEFAULT_EXPORT_QUEUE_SIZE: usize = 2048;
/// Default largest batch handed to an exporter, in spans.
pub const DEFAULT_EXPORT_BATCH_SIZE: usize = 512;
/// Default longest wait before a partial batch is exported.
pub const DEFAULT_EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Default bound of one export call (OTLP request).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of the flush and shutdown done when the guard drops.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest field value written to a log line, in characters.
pub const DEFAULT_MAX_FIELD_LEN: usize = 4096;
/// Default log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// Wire protocol of the OTLP exporter (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), usually port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), usually port
    /// 4318. The default, as the OpenTelemetry specification asks.
    #[default]
    HttpProtobuf,
}

impl FromStr for Protocol {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Err(ParseError::new(
                1,
                "grpc or http/protobuf (http/json is not supported)",
            )),
            _ => Err(ParseError::new(1, "grpc or http/protobuf")),
        }
    }
}

/// Which traces are sampled (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// `always_on`: every trace.
    AlwaysOn,
    /// `always_off`: no trace.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, by trace ID.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the parent's decision,
    /// sample roots.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the parent's decision, drop roots.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the parent's decision, sample this
    /// fraction of roots.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    pub(crate) fn to_sdk(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler as S;
        match self {
            Sampler::AlwaysOn => S::AlwaysOn,
            Sampler::AlwaysOff => S::AlwaysOff,
            Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
            Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
            Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
            Sampler::ParentBasedTraceIdRatio(r) => {
                S::ParentBased(Box::new(S::TraceIdRatioBased(r)))
            }
        }
    }
}

/// How log lines look (`TELLTALE_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line with the given naming profile (`json` or
    /// `otel` for [`Profile::OpenTelemetry`], `ecs` for
    /// [`Profile::ElasticCommonSchema`]). The default is `json`.
    Json(Profile),
    /// Human-readable lines for terminals (`pretty`).
    #[default]
    Pretty,
    /// No log output (`none` or `off`); spans are still exported.
    None,
}

impl FromStr for LogFormat {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "json" | "otel" | "opentelemetry" => Ok(LogFormat::Json(Profile::OpenTelemetry)),
            "ecs" | "elastic" => Ok(LogFormat::Json(Profile::ElasticCommonSchema)),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "none" | "off" => Ok(LogFormat::None),
            _ => Err(ParseError::new(1, "json, ecs, pretty or none")),
        }
    }
}

/// A span exporter named in `OTEL_TRACES_EXPORTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// OTLP to a collector (`otlp`).
    Otlp,
    /// One JSON line per finished span on standard output (`console` or
    /// `stdout`).
    Stdout,
}

/// OTLP exporter settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// Full URL spans are sent to. For HTTP this includes `/v1/traces` (added
    /// to `OTEL_EXPORTER_OTLP_ENDPOINT`, not to the `_TRACES_` variant).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Headers (gRPC metadata) sent with every export.
    pub headers: Vec<(String, String)>,
    /// Bound of one export request.
    pub timeout: Duration,
}

/// Builder of the telemetry pipeline: every setting [`init`](crate::init)
/// reads from the environment can be set here in code.
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
    /// The `service.name` resource attribute. Defaults to `OTEL_SERVICE_NAME`
    /// in [`from_env`](crate::Telemetry::from_env), else
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
    /// code, and to `json` in [`from_env`](crate::Telemetry::from_env).
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

    /// Reads the standard OpenTelemetry variables and the `TELLTALE_` knobs
    /// from `env`; see [`Telemetry::from_env`](crate::Telemetry::from_env) for
    /// the list.
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, InitError> {
        let mut b = TelemetryBuilder {
            log_format: LogFormat::Json(Profile::OpenTelemetry),
            ..TelemetryBuilder::default()
        };
        if let Some(attrs) = env.parse("OTEL_RESOURCE_ATTRIBUTES", parse_key_values)? {
            for (k, v) in attrs {
                b = b.resource_attribute(k, v);
            }
        }
        if let Some(name) = env.string("OTEL_SERVICE_NAME")? {
            b.service_name = Some(name);
        }
        b.sdk_disabled = env.boolean("OTEL_SDK_DISABLED")?.unwrap_or(false);

        let exporters = env.parse("OTEL_TRACES_EXPORTER", parse_exporters)?;
        let protocol = match env.parse("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Protocol::from_str)? {
            Some(p) => p,
            None => env
                .parse("OTEL_EXPORTER_OTLP_PROTOCOL", Protocol::from_str)?
                .unwrap_or_default(),
        };
        let endpoint = match env.parse("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", parse_endpoint)? {
            Some(e) => Some(e),
            None => env
                .parse("OTEL_EXPORTER_OTLP_ENDPOINT", parse_endpoint)?
                .map(|base| match protocol {
                    Protocol::Grpc => base,
                    Protocol::HttpProtobuf => {
                        format!("{}/v1/traces", base.trim_end_matches('/'))
                    }
                }),
        };
        let headers = match env.parse("OTEL_EXPORTER_OTLP_TRACES_HEADERS", parse_headers)? {
            Some(h) => h,
            None => env
                .parse("OTEL_EXPORTER_OTLP_HEADERS", parse_headers)?
                .unwrap_or_default(),
        };
        let timeout = match env.number::<u64>("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")? {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => env
                .number::<u64>("OTEL_EXPORTER_OTLP_TIMEOUT")?
                .map(Duration::from_millis),
        };
        let timeout = env
            .duration("TELLTALE_EXPORT_TIMEOUT")?
            .or(timeout)
            .unwrap_or(DEFAULT_EXPORT_TIMEOUT);

        let want_otlp = match &exporters {
            Some(list) => list.contains(&ExporterKind::Otlp),
            None => endpoint.is_some(),
        };
        if want_otlp {
            let endpoint = endpoint.unwrap_or_else(|| match protocol {
                Protocol::Grpc => "http://localhost:4317".to_owned(),
                Protocol::HttpProtobuf => "http://localhost:4318/v1/traces".to_owned(),
            });
            b.otlp = Some(OtlpConfig {
                endpoint,
                protocol,
                headers,
                timeout,
            });
        }
        // Log records always go to the log output (stdout, for Fluent Bit
        // and friends); OTLP log export is opt-in, so that setting only
        // OTEL_EXPORTER_OTLP_ENDPOINT does not ship every line twice.
        let log_exporters = env.parse("OTEL_LOGS_EXPORTER", parse_exporters)?;
        let logs_protocol =
            match env.parse("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", Protocol::from_str)? {
                Some(p) => p,
                None => env
                    .parse("OTEL_EXPORTER_OTLP_PROTOCOL", Protocol::from_str)?
                    .unwrap_or_default(),
            };
        let logs_endpoint = env.parse("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", parse_endpoint)?;
        let want_otlp_logs = match &log_exporters {
            Some(list) => list.contains(&ExporterKind::Otlp),
            None => logs_endpoint.is_some(),
        };
        let logs_headers = match env.parse("OTEL_EXPORTER_OTLP_LOGS_HEADERS", parse_headers)? {
            Some(h) => h,
            None => env
                .parse("OTEL_EXPORTER_OTLP_HEADERS", parse_headers)?
                .unwrap_or_default(),
        };
        let general = env
            .number::<u64>("OTEL_EXPORTER_OTLP_TIMEOUT")?
            .map(Duration::from_millis);
        let logs_timeout = match env.duration("TELLTALE_EXPORT_TIMEOUT")? {
            Some(t) => t,
            None => env
                .number::<u64>("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT")?
                .map(Duration::from_millis)
                .or(general)
                .unwrap_or(DEFAULT_EXPORT_TIMEOUT),
        };
        if want_otlp_logs {
            let endpoint = match logs_endpoint {
                Some(e) => e,
                None => match env.parse("OTEL_EXPORTER_OTLP_ENDPOINT", parse_endpoint)? {
                    Some(base) => match logs_protocol {
                        Protocol::Grpc => base,
                        Protocol::HttpProtobuf => {
                            format!("{}/v1/logs", base.trim_end_matches('/'))
                        }
                    },
                    None => match logs_protocol {
                        Protocol::Grpc => "http://localhost:4317".to_owned(),
                        Protocol::HttpProtobuf => "http://localhost:4318/v1/logs".to_owned(),
                    },
                },
            };
            b.otlp_logs = Some(OtlpConfig {
                endpoint,
                protocol: logs_protocol,
                headers: logs_headers,
                timeout: logs_timeout,
            });
        }
        b.stdout_exporter = exporters
            .as_ref()
            .is_some_and(|l| l.contains(&ExporterKind::Stdout));

        let sampler_arg = env.parse("OTEL_TRACES_SAMPLER_ARG", parse_ratio)?;
        if let Some(sampler) = env.string("OTEL_TRACES_SAMPLER")? {
            b.sampler = parse_sampler(&sampler, sampler_arg)
                .map_err(|e| ConfigError::new("OTEL_TRACES_SAMPLER", &sampler, e))?;
        }

        if let Some(filter) = env.string("RUST_LOG")? {
            check_filter(&filter).map_err(|e| ConfigError::new("RUST_LOG", &filter, e))?;
            b.filter = filter;
            b.filter_source = Cow::Borrowed("RUST_LOG");
        }
        if let Some(format) = env.parse("TELLTALE_LOG_FORMAT", LogFormat::from_str)? {
            b.log_format = format;
        }
        if let Some(max) = env.parse("TELLTALE_LOG_MAX_FIELD_LEN", positive)? {
            b.max_field_len = max;
        }
        if let Some(ansi) = env.boolean("TELLTALE_LOG_ANSI")? {
            b.ansi = ansi;
        }
        if let Some(cap) = env.number::<usize>("TELLTALE_FLIGHT_RECORDER_CAPACITY")? {
            b.flight_recorder_capacity = Some(cap);
        }
        if let Some(size) = env.parse("TELLTALE_EXPORT_QUEUE_SIZE", positive)? {
            b.queue_size = size;
        }
        if let Some(size) = env.parse("TELLTALE_EXPORT_BATCH_SIZE", positive)? {
            b.batch_size = size;
        }
        if b.batch_size > b.queue_size {
            let value = b.batch_size.to_string();
            return Err(ConfigError::new(
                "TELLTALE_EXPORT_BATCH_SIZE",
                &value,
                ParseError::new(1, "at most TELLTALE_EXPORT_QUEUE_SIZE"),
            )
            .into());
        }
        if let Some(delay) = env.duration("TELLTALE_EXPORT_DELAY")? {
            b.export_delay = delay;
        }
        if let Some(timeout) = env.duration("TELLTALE_SHUTDOWN_TIMEOUT")? {
            b.shutdown_timeout = timeout;
        }
        Ok(b)
    }

    /// Checks the settings made in code, as [`from_env_source`](Self::from_env_source)
    /// checks variables.
    pub(crate) fn validate(&self) -> Result<(), InitError> {
        check_filter(&self.filter)
            .map_err(|e| ConfigError::new(self.filter_source.clone(), &self.filter, e))?;
        for otlp in [&self.otlp, &self.otlp_logs].into_iter().flatten() {
            parse_endpoint(&otlp.endpoint)
                .map_err(|e| ConfigError::new("otlp endpoint", &otlp.endpoint, e))?;
            for (name, value) in &otlp.headers {
                check_header(name, value, 0)
                    .map_err(|e| ConfigError::new("otlp header", &format!("{name}={value}"), e))?;
            }
        }
        for (name, value, ok) in [
            ("export queue size", self.queue_size, self.queue_size > 0),
            (
                "export batch size",
                self.batch_size,
                self.batch_size > 0 && self.batch_size <= self.queue_size,
            ),
        ] {
            if !ok {
                return Err(ConfigError::new(
                    name,
                    &value.to_string(),
                    ParseError::new(1, "a size between 1 and the export queue size"),
                )
                .into());
            }
        }
        if let Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) = self.sampler {
            if !(0.0..=1.0).contains(&r) {
                return Err(ConfigError::new(
                    "sampler ratio",
                    &r.to_string(),
                    ParseError::new(1, "a ratio between 0 and 1"),
                )
                .into());
            }
        }
        Ok(())
    }
}

fn positive(s: &str) -> Result<usize, ParseError> {
    let n: usize = telltale_core::config::parse_number(s)?;
    if n == 0 {
        return Err(ParseError::new(1, "a number above 0"));
    }
    Ok(n)
}

fn parse_ratio(s: &str) -> Result<f64, ParseError> {
    telltale_core::config::parse_percentage(s)
}

fn parse_sampler(s: &str, arg: Option<f64>) -> Result<Sampler, ParseError> {
    let ratio = arg.unwrap_or(1.0);
    Ok(match s {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(ratio),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio),
        _ => {
            return Err(ParseError::new(
                1,
                "always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

fn parse_exporters(s: &str) -> Result<Vec<ExporterKind>, ParseError> {
    let items = telltale_core::config::parse_list_with(s, |item| match item {
        "otlp" => Ok(Some(ExporterKind::Otlp)),
        "console" | "stdout" => Ok(Some(ExporterKind::Stdout)),
        "none" => Ok(None),
        _ => Err(ParseError::new(1, "otlp, console or none")),
    })?;
    Ok(items.into_iter().flatten().collect())
}

/// An `http://` or `https://` URL with a host.
fn parse_endpoint(s: &str) -> Result<String, ParseError> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| ParseError::new(1, "a URL such as http://localhost:4317"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ParseError::new(
                1,
                "http:// (https needs a TLS feature of opentelemetry-otlp, not enabled)",
            ));
        }
        _ => return Err(ParseError::new(1, "a URL starting with http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ParseError::new(8, "a host name"));
    }
    Ok(s.to_owned())
}

/// Decodes `%XX` escapes (W3C baggage octets) in `s`, which starts at 0-based
/// character `offset` of the whole value.
fn percent_decode(s: &str, offset: usize) -> Result<String, ParseError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(ParseError::new(
                        offset + s[..i].chars().count() + 1,
                        "two hex digits after '%'",
                    ));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParseError::new(offset + 1, "percent-escapes forming UTF-8"))
}

/// `key1=value1,key2=value2` with percent-encoded values, as in
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    let mut offset = 0; // characters before the current item
    for raw in s.split(',') {
        let len = raw.chars().count();
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        let item = raw.trim();
        if item.is_empty() {
            return Err(ParseError::new(offset + 1, "key=value before ','"));
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(ParseError::new(
                offset + lead + item.chars().count() + 1,
                "'=' after the key",
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(ParseError::new(offset + lead + 1, "a key before '='"));
        }
        let value_offset =
            offset + lead + item.split('=').next().map_or(0, |k| k.chars().count()) + 1;
        let value = percent_decode(value.trim(), value_offset)?;
        out.push((percent_decode(key, offset + lead)?, value));
        offset += len + 1;
    }
    Ok(out)
}

fn check_header(name: &str, value: &str, offset: usize) -> Result<(), ParseError> {
    http::HeaderName::from_str(name)
        .map_err(|_| ParseError::new(offset + 1, "a valid header name"))?;
    http::HeaderValue::from_str(value).map_err(|_| {
        ParseError::new(
            offset + name.chars().count() + 2,
            "a header value of visible ASCII",
        )
    })?;
    Ok(())
}

fn parse_headers(s: &str) -> Result<Vec<(String, String)>, ParseError> {
    let pairs = parse_key_values(s)?;
    let mut offset = 0;
    for ((name, value), raw) in pairs.iter().zip(s.split(',')) {
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        check_header(name, value, offset + lead)?;
        offset += raw.chars().count() + 1;
    }
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

/// Checks `RUST_LOG` syntax directive by directive, so the error points at
/// the bad one.
fn check_filter(s: &str) -> Result<(), ParseError> {
    use tracing_subscriber::filter::Directive;
    let mut offset = 0;
    for raw in s.split(',') {
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        let item = raw.trim();
        if !item.is_empty() && Directive::from_str(item).is_err() {
            return Err(ParseError::new(
                offset + lead + 1,
                "a filter directive such as info or my_crate=debug",
            ));
        }
        offset += raw.chars().count() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<TelemetryBuilder, InitError> {
        TelemetryBuilder::from_env_source(&Env::from_pairs(pairs.iter().copied()))
    }

    fn config_err(pairs: &[(&str, &str)]) -> ConfigError {
        match from(pairs) {
            Err(InitError::Config(e)) => e,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn empty_env_gives_json_logs_and_no_exporter() {
        let b = from(&[]).unwrap();
        assert_eq!(b.log_format, LogFormat::Json(Profile::OpenTelemetry));
        assert!(b.otlp.is_none());
        assert!(!b.stdout_exporter);
        assert_eq!(b.sampler, Sampler::ParentBasedAlwaysOn);
        assert_eq!(b.filter, "info");
        assert!(!b.sdk_disabled);
    }

    #[test]
    fn reads_standard_variables() {
        let b = from(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored, deployment.environment=prod,team=a%2Cb",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20x,x-tenant=7",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("RUST_LOG", "info,my_crate=debug"),
            ("TELLTALE_LOG_FORMAT", "ecs"),
            ("TELLTALE_FLIGHT_RECORDER_CAPACITY", "100"),
            ("TELLTALE_EXPORT_QUEUE_SIZE", "64"),
            ("TELLTALE_EXPORT_BATCH_SIZE", "8"),
            ("TELLTALE_EXPORT_DELAY", "250ms"),
            ("TELLTALE_SHUTDOWN_TIMEOUT", "3s"),
            ("TELLTALE_LOG_MAX_FIELD_LEN", "100"),
        ])
        .unwrap();
        assert_eq!(b.service_name.as_deref(), Some("checkout"));
        let attrs: Vec<_> = b
            .resource
            .iter()
            .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
            .collect();
        assert!(attrs.contains(&("deployment.environment".into(), "prod".into())));
        assert!(attrs.contains(&("team".into(), "a,b".into())));
        let otlp = b.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            otlp.headers,
            [
                ("authorization".to_owned(), "Bearer x".to_owned()),
                ("x-tenant".to_owned(), "7".to_owned())
            ]
        );
        assert_eq!(otlp.timeout, Duration::from_millis(2500));
        assert_eq!(b.sampler, Sampler::ParentBasedTraceIdRatio(0.25));
        assert_eq!(b.filter, "info,my_crate=debug");
        assert_eq!(b.log_format, LogFormat::Json(Profile::ElasticCommonSchema));
        assert_eq!(b.flight_recorder_capacity, Some(100));
        assert_eq!((b.queue_size, b.batch_size), (64, 8));
        assert_eq!(b.export_delay, Duration::from_millis(250));
        assert_eq!(b.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(b.max_field_len, 100);
    }

    #[test]
    fn signal_specific_variables_win() {
        let b = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:4318/v1/logs",
            ),
        ])
        .unwrap();
        let otlp = b.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://traces:4317");
        assert_eq!(otlp.protocol, Protocol::Grpc);
        assert_eq!(otlp.headers, [("b".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn grpc_endpoint_is_used_as_is_and_exporters_list_is_honoured() {
        let b = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
        ])
        .unwrap();
        assert_eq!(b.otlp.unwrap().endpoint, "http://collector:4317");
        assert!(b.stdout_exporter);
        let b = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(b.otlp.is_none());
        let b = from(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap();
        assert_eq!(b.otlp.unwrap().endpoint, "http://localhost:4318/v1/traces");
    }

    #[test]
    fn otlp_log_export_is_opt_in() {
        let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).unwrap();
        assert!(b.otlp.is_some());
        assert!(b.otlp_logs.is_none());
        let b = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1500"),
        ])
        .unwrap();
        let logs = b.otlp_logs.unwrap();
        assert_eq!(logs.endpoint, "http://collector:4318/v1/logs");
        assert_eq!(logs.headers, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(logs.timeout, Duration::from_millis(1500));
        let b = from(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ])
        .unwrap();
        let logs = b.otlp_logs.unwrap();
        assert_eq!(
            (logs.endpoint.as_str(), logs.protocol),
            ("http://logs:4317", Protocol::Grpc)
        );
        assert!(
            b.otlp.is_none(),
            "traces are not exported by the logs variables"
        );
    }

    #[test]
    fn samplers() {
        for (name, arg, want) in [
            ("always_on", None, Sampler::AlwaysOn),
            ("always_off", None, Sampler::AlwaysOff),
            ("traceidratio", Some("0.5"), Sampler::TraceIdRatio(0.5)),
            ("traceidratio", None, Sampler::TraceIdRatio(1.0)),
            ("parentbased_always_on", None, Sampler::ParentBasedAlwaysOn),
            (
                "parentbased_always_off",
                None,
                Sampler::ParentBasedAlwaysOff,
            ),
            (
                "parentbased_traceidratio",
                Some("10%"),
                Sampler::ParentBasedTraceIdRatio(0.1),
            ),
        ] {
            let mut pairs = vec![("OTEL_TRACES_SAMPLER", name)];
            if let Some(arg) = arg {
                pairs.push(("OTEL_TRACES_SAMPLER_ARG", arg));
            }
            assert_eq!(from(&pairs).unwrap().sampler, want, "{name}");
        }
    }

    #[test]
    fn every_invalid_value_names_its_variable_and_position() {
        for (pairs, variable, position) in [
            (vec![("OTEL_SDK_DISABLED", "maybe")], "OTEL_SDK_DISABLED", 1),
            (
                vec![("OTEL_TRACES_SAMPLER", "jaeger_remote")],
                "OTEL_TRACES_SAMPLER",
                1,
            ),
            (
                vec![("OTEL_TRACES_SAMPLER_ARG", "1.5")],
                "OTEL_TRACES_SAMPLER_ARG",
                1,
            ),
            (
                vec![("OTEL_TRACES_SAMPLER_ARG", "0.5x")],
                "OTEL_TRACES_SAMPLER_ARG",
                4,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp")],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "nope nope")],
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                1,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                6,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_HEADERS", "a=1, bad name=2")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                6,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                3,
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                3,
            ),
            (
                vec![("OTEL_RESOURCE_ATTRIBUTES", "a=1,,b=2")],
                "OTEL_RESOURCE_ATTRIBUTES",
                5,
            ),
            (
                vec![("OTEL_RESOURCE_ATTRIBUTES", "a=1,=2")],
                "OTEL_RESOURCE_ATTRIBUTES",
                5,
            ),
            (
                vec![("OTEL_TRACES_EXPORTER", "otlp,zipkin")],
                "OTEL_TRACES_EXPORTER",
                6,
            ),
            (vec![("RUST_LOG", "info,a=[[")], "RUST_LOG", 6),
            (
                vec![("TELLTALE_LOG_FORMAT", "xml")],
                "TELLTALE_LOG_FORMAT",
                1,
            ),
            (
                vec![("TELLTALE_LOG_MAX_FIELD_LEN", "0")],
                "TELLTALE_LOG_MAX_FIELD_LEN",
                1,
            ),
            (
                vec![("TELLTALE_FLIGHT_RECORDER_CAPACITY", "-1")],
                "TELLTALE_FLIGHT_RECORDER_CAPACITY",
                1,
            ),
            (
                vec![("TELLTALE_EXPORT_QUEUE_SIZE", "1k")],
                "TELLTALE_EXPORT_QUEUE_SIZE",
                2,
            ),
            (
                vec![("TELLTALE_EXPORT_BATCH_SIZE", "4096")],
                "TELLTALE_EXPORT_BATCH_SIZE",
                1,
            ),
            (
                vec![("TELLTALE_EXPORT_DELAY", "5")],
                "TELLTALE_EXPORT_DELAY",
                2,
            ),
            (
                vec![("TELLTALE_EXPORT_TIMEOUT", "5x")],
                "TELLTALE_EXPORT_TIMEOUT",
                2,
            ),
            (
                vec![("TELLTALE_SHUTDOWN_TIMEOUT", "soon")],
                "TELLTALE_SHUTDOWN_TIMEOUT",
                1,
            ),
        ] {
            let err = config_err(&pairs);
            assert_eq!(err.variable(), variable, "{pairs:?}: {err}");
            assert_eq!(err.position(), position, "{pairs:?}: {err}");
            let text = InitError::Config(err).to_string();
            assert!(text.contains(variable), "{text}");
        }
    }

    #[test]
    fn code_settings_are_validated_too() {
        let err = TelemetryBuilder::default()
            .filter("a=[[")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("filter"), "{err}");
        let err = TelemetryBuilder::default()
            .otlp("localhost:4317", Protocol::Grpc)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("otlp endpoint"), "{err}");
        let err = TelemetryBuilder::default()
            .export_queue_size(4)
            .export_batch_size(8)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("export batch size"), "{err}");
        let err = TelemetryBuilder::default()
            .sampler(Sampler::TraceIdRatio(2.0))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("ratio"), "{err}");
    }
}
