//! The environment variables the pipeline reads, and their parsers:
//! [`TelemetryBuilder::env`] and [`Telemetry::from_env`](super::Telemetry::from_env).
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_telemetry::pipeline::env;
//!
//! assert!(env::is_configured(&Env::from_pairs([(env::OTEL_SERVICE_NAME, "checkout")])));
//! assert!(!env::is_configured(&Env::from_pairs([("HOME", "/root")])));
//! ```

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};

use super::builder::TelemetryBuilder;
use super::error::InitError;
use super::filter::check_filter;
use super::settings::{
    DEFAULT_EXPORT_TIMEOUT, ExporterKind, LogFormat, OtlpConfig, Protocol, Sampler,
};

telltale_core::env_vars! {
    /// `service.name` of the resource.
    OTEL_SERVICE_NAME;
    /// More resource attributes, `key=value,key=value` (percent-encoded
    /// values), declared and parsed by [`telltale_core::resource`].
    OTEL_RESOURCE_ATTRIBUTES = telltale_core::resource::VAR;
    /// `true` (case-insensitive): no spans and no OTLP log records (log lines
    /// are still written); any other value is false (with a warning unless it
    /// is `false`), as the OpenTelemetry specification asks.
    OTEL_SDK_DISABLED;
    /// Propagators, composed in order: `tracecontext`, `baggage`, `b3`,
    /// `b3multi`, or `none` (default `tracecontext,baggage`); parsed by
    /// [`Propagators::parse`](crate::propagation::Propagators::parse).
    OTEL_PROPAGATORS;
    /// Span exporters: `otlp`, `console` (or `stdout`), `none`.
    OTEL_TRACES_EXPORTER;
    /// Log exporters: `otlp` or `none`.
    OTEL_LOGS_EXPORTER;
    /// Metric exporters, a comma list: `otlp` (push to the collector),
    /// `prometheus` (the pull exposition, served where the application
    /// mounts `metrics_router`: accepted, changes nothing), `none`. Unset:
    /// OTLP metrics are on when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set.
    OTEL_METRICS_EXPORTER;
    /// Full URL metrics are sent to (turns OTLP metrics on).
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
    /// The protocol of metric export.
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL;
    /// Headers sent with metric exports.
    OTEL_EXPORTER_OTLP_METRICS_HEADERS;
    /// Bound of one metric export request, in milliseconds.
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT;
    /// Compression of metric exports.
    OTEL_EXPORTER_OTLP_METRICS_COMPRESSION;
    /// The trusted CA file of metric export.
    OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE;
    /// The client key file of metric export.
    OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY;
    /// The client certificate file of metric export.
    OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE;
    /// `…_INSECURE` of metric export.
    OTEL_EXPORTER_OTLP_METRICS_INSECURE;
    /// Interval between two metric exports, in milliseconds (1 to 3600000;
    /// default 60000).
    OTEL_METRIC_EXPORT_INTERVAL;
    /// Bound of one metric export, in milliseconds (0: no limit, which
    /// telltale bounds at one hour; at most 3600000; default 30000).
    OTEL_METRIC_EXPORT_TIMEOUT;
    /// Base URL of the OTLP collector (for HTTP, `/v1/traces` and `/v1/logs` are added).
    OTEL_EXPORTER_OTLP_ENDPOINT;
    /// Full URL spans are sent to.
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    /// Full URL log records are sent to (turns OTLP log export on).
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT;
    /// `grpc` or `http/protobuf` (the default).
    OTEL_EXPORTER_OTLP_PROTOCOL;
    /// The protocol of span export.
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL;
    /// The protocol of log export.
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL;
    /// Headers sent with every export, `name=value,name=value` (percent-encoded values).
    OTEL_EXPORTER_OTLP_HEADERS;
    /// Headers sent with span exports.
    OTEL_EXPORTER_OTLP_TRACES_HEADERS;
    /// Headers sent with log exports.
    OTEL_EXPORTER_OTLP_LOGS_HEADERS;
    /// Bound of one export request, in milliseconds.
    OTEL_EXPORTER_OTLP_TIMEOUT;
    /// Bound of one span export request, in milliseconds.
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT;
    /// Bound of one log export request, in milliseconds.
    OTEL_EXPORTER_OTLP_LOGS_TIMEOUT;
    /// `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (the
    /// default), `parentbased_always_off`, `parentbased_traceidratio`.
    OTEL_TRACES_SAMPLER;
    /// The ratio of the ratio samplers (`0.25` or `25%`).
    OTEL_TRACES_SAMPLER_ARG;
    /// The log filter (`info,my_crate=debug`): which events become log lines.
    /// Spans are exported whatever it says.
    RUST_LOG;
    /// The trace filter, in `RUST_LOG` syntax (default `info`): which spans
    /// (and span events) are exported. Independent of `RUST_LOG`.
    TELLTALE_TRACES_FILTER;
    /// `json` (or `otel`), `ecs`, `pretty`, `none`.
    TELLTALE_LOG_FORMAT;
    /// Longest field value written to a log line, in characters.
    TELLTALE_LOG_MAX_FIELD_LEN;
    /// Boolean: colors in the pretty format.
    TELLTALE_LOG_ANSI;
    /// Spans the flight recorder keeps (`0`: off).
    TELLTALE_FLIGHT_RECORDER_CAPACITY;
    /// The flight recorder's byte budget (`16MiB`), 64 KiB to 16 GiB: the
    /// oldest spans are evicted when the spans' estimated sizes would add up
    /// to more.
    TELLTALE_FLIGHT_RECORDER_MAX_BYTES;
    /// The byte budget of each export queue (`16MiB`), 64 KiB to 16 GiB:
    /// what waits and the batch being exported; a span that does not fit is
    /// dropped and counted.
    TELLTALE_EXPORT_QUEUE_MAX_BYTES;
    /// Longest attribute value, in characters (0 to 2³¹ − 1; default: no
    /// limit): longer strings, and each string of a string array, are cut.
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT;
    /// The same for span, span event and link attributes; wins over
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`.
    OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT;
    /// Most attributes of one span, event or link (0 to 2³¹ − 1, default
    /// 128); later ones are dropped.
    OTEL_ATTRIBUTE_COUNT_LIMIT;
    /// Most attributes of one span; wins over `OTEL_ATTRIBUTE_COUNT_LIMIT`.
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT;
    /// Most events of one span (0 to 2³¹ − 1, default 128).
    OTEL_SPAN_EVENT_COUNT_LIMIT;
    /// Most links of one span (0 to 2³¹ − 1, default 128).
    OTEL_SPAN_LINK_COUNT_LIMIT;
    /// Most attributes of one span event; wins over
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`.
    OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT;
    /// Most attributes of one link; wins over `OTEL_ATTRIBUTE_COUNT_LIMIT`.
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT;
    /// Most spans (or log records) waiting for export.
    TELLTALE_EXPORT_QUEUE_SIZE;
    /// Largest batch handed to an exporter.
    TELLTALE_EXPORT_BATCH_SIZE;
    /// Longest wait before a partial batch is exported (`250ms`).
    TELLTALE_EXPORT_DELAY;
    /// Bound of one export call (`5s`); wins over the `OTEL_…_TIMEOUT` variables.
    TELLTALE_EXPORT_TIMEOUT;
    /// Bound of the flush and shutdown when the guard drops (`3s`).
    TELLTALE_SHUTDOWN_TIMEOUT;
    /// While exports keep failing, at most one summary line per this
    /// interval (`1m`).
    TELLTALE_EXPORT_FAILURE_LOG_INTERVAL;
    /// `gzip` or `none` (the default): compression of every OTLP export.
    OTEL_EXPORTER_OTLP_COMPRESSION;
    /// Compression of span exports.
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION;
    /// Compression of log exports.
    OTEL_EXPORTER_OTLP_LOGS_COMPRESSION;
    /// PEM file of the CA certificates trusted for the collector's
    /// certificate (default: the system's roots).
    OTEL_EXPORTER_OTLP_CERTIFICATE;
    /// The trusted CA file of span export.
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE;
    /// The trusted CA file of log export.
    OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE;
    /// PEM file of the client's private key (mutual TLS).
    OTEL_EXPORTER_OTLP_CLIENT_KEY;
    /// The client key file of span export.
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY;
    /// The client key file of log export.
    OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY;
    /// PEM file of the client's certificate chain (mutual TLS).
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE;
    /// The client certificate file of span export.
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE;
    /// The client certificate file of log export.
    OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE;
    /// `true`: a gRPC endpoint given without a scheme is plain `http://`
    /// (default: `https://`).
    OTEL_EXPORTER_OTLP_INSECURE;
    /// `…_INSECURE` of span export.
    OTEL_EXPORTER_OTLP_TRACES_INSECURE;
    /// `…_INSECURE` of log export.
    OTEL_EXPORTER_OTLP_LOGS_INSECURE;
    /// Longest wait before a partial batch of spans is exported, in
    /// milliseconds (`TELLTALE_EXPORT_DELAY` wins).
    OTEL_BSP_SCHEDULE_DELAY;
    /// Bound of one span export call, in milliseconds
    /// (`TELLTALE_EXPORT_TIMEOUT` wins).
    OTEL_BSP_EXPORT_TIMEOUT;
    /// Most spans waiting for export (`TELLTALE_EXPORT_QUEUE_SIZE` wins).
    OTEL_BSP_MAX_QUEUE_SIZE;
    /// Largest batch of spans (`TELLTALE_EXPORT_BATCH_SIZE` wins).
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE;
    /// Longest wait before a partial batch of log records is exported, in
    /// milliseconds (`TELLTALE_EXPORT_DELAY` wins).
    OTEL_BLRP_SCHEDULE_DELAY;
    /// Bound of one log export call, in milliseconds
    /// (`TELLTALE_EXPORT_TIMEOUT` wins).
    OTEL_BLRP_EXPORT_TIMEOUT;
    /// Most log records waiting for export (`TELLTALE_EXPORT_QUEUE_SIZE` wins).
    OTEL_BLRP_MAX_QUEUE_SIZE;
    /// Largest batch of log records (`TELLTALE_EXPORT_BATCH_SIZE` wins).
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE;
    /// Level of the OpenTelemetry SDK's own logs (targets `opentelemetry*`):
    /// `none`, `error`, `warn`, `info`, `debug`, `trace` (default: they
    /// follow `RUST_LOG`).
    OTEL_LOG_LEVEL;
    /// Boolean (default `false`): spans also carry the `tracing` bridge's
    /// attributes outside the OpenTelemetry conventions (`code.*`,
    /// `thread.*`, `busy_ns`, `idle_ns`, `target`); see
    /// [`TelemetryBuilder::tracing_attributes`].
    TELLTALE_TRACES_TRACING_ATTRIBUTES;
}

/// The first of `names` that is set, parsed.
fn first<S: EnvSource, T>(
    env: &Env<S>,
    names: &[&str],
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, ConfigError> {
    for name in names {
        if let Some(v) = env.parse(name, &parse)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// A timeout in milliseconds (the OpenTelemetry variables' unit): see
/// `export::timeout_millis`.
fn millis(s: &str) -> Result<Duration, ParseError> {
    export::timeout_millis(s)
}

/// One signal's OTLP variables (`TRACES` or `LOGS`).
struct Signal {
    exporter: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
    path: &'static str,
    transport: export::TlsVars,
    /// The parser of the exporter list.
    exporters: fn(&str) -> Result<Vec<ExporterKind>, ParseError>,
}

const TRACES: Signal = Signal {
    exporter: OTEL_TRACES_EXPORTER,
    endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    protocol: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    headers: OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    timeout: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    path: "/v1/traces",
    transport: export::TRACES_TLS,
    exporters: parse_exporters,
};

const LOGS: Signal = Signal {
    exporter: OTEL_LOGS_EXPORTER,
    endpoint: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    protocol: OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    headers: OTEL_EXPORTER_OTLP_LOGS_HEADERS,
    timeout: OTEL_EXPORTER_OTLP_LOGS_TIMEOUT,
    path: "/v1/logs",
    transport: export::LOGS_TLS,
    exporters: parse_exporters,
};

const METRICS: Signal = Signal {
    exporter: OTEL_METRICS_EXPORTER,
    endpoint: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    protocol: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    headers: OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    timeout: OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    path: "/v1/metrics",
    transport: export::METRICS_TLS,
    exporters: parse_metric_exporters,
};

impl Signal {
    /// Applies the signal's variables over `current`. `general_endpoint`
    /// says whether `OTEL_EXPORTER_OTLP_ENDPOINT` alone turns export on (it
    /// does for traces; log export is opt-in, so that setting only the
    /// endpoint does not ship every log line twice).
    fn apply<S: EnvSource>(
        &self,
        env: &Env<S>,
        current: &mut Option<OtlpConfig>,
        general_endpoint: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Vec<ExporterKind>>, ConfigError> {
        let exporters = env.parse(self.exporter, self.exporters)?;
        let protocol = first(env, &[self.protocol, OTEL_EXPORTER_OTLP_PROTOCOL], |s| {
            Protocol::from_str(s)
        })?;
        let transport = export::transport(env, &self.transport, warnings)?;
        let grpc = protocol.unwrap_or_default() == Protocol::Grpc;
        let insecure = transport.insecure.unwrap_or(false);
        let own = env.parse(self.endpoint, |s| {
            parse_endpoint(&export::with_scheme(s, grpc, insecure))
        })?;
        let base = env.parse(OTEL_EXPORTER_OTLP_ENDPOINT, |s| {
            parse_endpoint(&export::with_scheme(s, grpc, insecure))
        })?;
        let headers = first(
            env,
            &[self.headers, OTEL_EXPORTER_OTLP_HEADERS],
            parse_headers,
        )?;
        let timeout = match env.parse(TELLTALE_EXPORT_TIMEOUT, export::bounded_timeout)? {
            Some(t) => Some(t),
            None => first(env, &[self.timeout, OTEL_EXPORTER_OTLP_TIMEOUT], millis)?,
        };
        let from_env = own.is_some() || (general_endpoint && base.is_some());
        let wanted = match &exporters {
            Some(list) => Some(list.contains(&ExporterKind::Otlp)),
            None => from_env.then_some(true),
        };
        match wanted {
            Some(false) => *current = None,
            Some(true) if from_env || current.is_none() => {
                let protocol = protocol.unwrap_or_default();
                let endpoint = own.unwrap_or_else(|| match (base, protocol) {
                    (Some(base), Protocol::Grpc) => base,
                    (Some(base), Protocol::HttpProtobuf) => {
                        format!("{}{}", base.trim_end_matches('/'), self.path)
                    }
                    (None, Protocol::Grpc) => "http://localhost:4317".to_owned(),
                    (None, Protocol::HttpProtobuf) => format!("http://localhost:4318{}", self.path),
                });
                let mut otlp = OtlpConfig {
                    headers: headers.unwrap_or_default(),
                    timeout: timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT),
                    ..OtlpConfig::new(endpoint, protocol)
                };
                transport.apply_to(&mut otlp);
                *current = Some(otlp);
            }
            // Export set in code: the variables that are set still apply.
            _ => {
                if let Some(otlp) = current {
                    if let Some(headers) = headers {
                        otlp.headers = headers;
                    }
                    if let Some(timeout) = timeout {
                        otlp.timeout = timeout;
                    }
                    transport.apply_to(otlp);
                }
            }
        }
        Ok(exporters)
    }
}

impl TelemetryBuilder {
    /// Applies the variables set in `env` over this builder's settings
    /// (unset variables keep them); see [`Telemetry::from_env`](super::Telemetry::from_env)
    /// for the list, and [`VARS`].
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_telemetry::{LogFormat, Telemetry};
    ///
    /// let env = Env::from_pairs([("OTEL_SERVICE_NAME", "checkout")]);
    /// let telemetry = Telemetry::builder()
    ///     .log_format(LogFormat::None)
    ///     .env(&env)?
    ///     .build()?;
    /// # let _ = telemetry;
    /// # Ok::<(), telltale_telemetry::InitError>(())
    /// ```
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, InitError> {
        for (k, v) in telltale_core::resource::attributes(env)? {
            self = self.resource_attribute(k, v);
        }
        if let Some(name) = env.parse(OTEL_SERVICE_NAME, parse_service_name)? {
            self.service_name = Some(name);
        }
        let mut warnings = std::mem::take(&mut self.export_extras.warnings);
        if let Some(disabled) = export::spec_bool(env, OTEL_SDK_DISABLED, &mut warnings)? {
            self.sdk_disabled = disabled;
        }
        if let Some(propagators) =
            env.parse(OTEL_PROPAGATORS, crate::propagation::Propagators::parse)?
        {
            self.propagators = propagators;
        }
        if let Some(exporters) = TRACES.apply(env, &mut self.otlp, true, &mut warnings)? {
            self.stdout_exporter = exporters.contains(&ExporterKind::Stdout);
        }
        LOGS.apply(env, &mut self.otlp_logs, false, &mut warnings)?;
        // Opt-in, as log export: an endpoint set for traces alone does not
        // start pushing metrics that Prometheus already scrapes.
        METRICS.apply(env, &mut self.metrics_export.otlp, false, &mut warnings)?;
        if let Some(interval) = env.parse(OTEL_METRIC_EXPORT_INTERVAL, export::interval_millis)? {
            self.metrics_export.interval = interval;
        }
        if let Some(timeout) = env.parse(OTEL_METRIC_EXPORT_TIMEOUT, export::timeout_millis)? {
            self.metrics_export.timeout = timeout;
        }
        self.export_extras.warnings = warnings;

        let sampler_arg = env.parse(
            OTEL_TRACES_SAMPLER_ARG,
            telltale_core::config::parse_percentage,
        )?;
        if let Some(sampler) = env.string(OTEL_TRACES_SAMPLER)? {
            self.sampler = parse_sampler(&sampler, sampler_arg)
                .map_err(|e| ConfigError::new(OTEL_TRACES_SAMPLER, &sampler, e))?;
        }
        if let Some(filter) = env.string(RUST_LOG)? {
            check_filter(&filter).map_err(|e| ConfigError::new(RUST_LOG, &filter, e))?;
            self.filter = filter;
            self.filter_source = Cow::Borrowed(RUST_LOG);
        }
        if let Some(filter) = env.parse(TELLTALE_TRACES_FILTER, |s| {
            check_filter(s).map(|()| s.to_owned())
        })? {
            self.trace_filter = filter;
            self.trace_filter_source = Cow::Borrowed(TELLTALE_TRACES_FILTER);
        }
        if let Some(format) = env.parse(TELLTALE_LOG_FORMAT, LogFormat::from_str)? {
            self.log_format = format;
        }
        if let Some(max) = env.parse(TELLTALE_LOG_MAX_FIELD_LEN, parse_max_field_len)? {
            self.max_field_len = max;
        }
        if let Some(ansi) = env.boolean(TELLTALE_LOG_ANSI)? {
            self.ansi = ansi;
        }
        if let Some(enabled) = env.boolean(TELLTALE_TRACES_TRACING_ATTRIBUTES)? {
            self.tracing_attributes = enabled;
        }
        if let Some(cap) = env.number::<usize>(TELLTALE_FLIGHT_RECORDER_CAPACITY)? {
            self.flight_recorder_capacity = Some(cap);
        }
        if let Some(bytes) = env.parse(TELLTALE_FLIGHT_RECORDER_MAX_BYTES, parse_budget)? {
            self.flight_recorder_max_bytes = bytes;
        }
        if let Some(bytes) = env.parse(TELLTALE_EXPORT_QUEUE_MAX_BYTES, parse_budget)? {
            self.export_queue_max_bytes = bytes;
        }
        self.span_limits = span_limits(env, self.span_limits)?;
        self = self.apply_export_env(env)?;
        if let Some(timeout) = env.parse(TELLTALE_SHUTDOWN_TIMEOUT, export::bounded_timeout)? {
            self.shutdown_timeout = timeout;
        }
        Ok(self)
    }

    /// Checks the settings made in code, as [`env`](Self::env) checks
    /// variables.
    pub(crate) fn validate(&self) -> Result<(), InitError> {
        check_filter(&self.filter)
            .map_err(|e| ConfigError::new(self.filter_source.clone(), &self.filter, e))?;
        check_filter(&self.trace_filter).map_err(|e| {
            ConfigError::new(self.trace_filter_source.clone(), &self.trace_filter, e)
        })?;
        for otlp in [&self.otlp, &self.otlp_logs, &self.metrics_export.otlp]
            .into_iter()
            .flatten()
        {
            parse_endpoint(&otlp.endpoint)
                .map_err(|e| ConfigError::new("otlp endpoint", &otlp.endpoint, e))?;
            for (name, value) in &otlp.headers {
                check_header(name, value, 0)
                    .map_err(|e| ConfigError::new("otlp header", &format!("{name}={value}"), e))?;
            }
            export::check_tls(&otlp.tls)?;
        }
        let logs = &self.export_extras.logs;
        for (queue, batch) in [
            (self.queue_size, self.batch_size),
            (
                logs.queue_size.unwrap_or(self.queue_size),
                logs.batch_size.unwrap_or(self.batch_size),
            ),
        ] {
            let max_queue = super::settings::MAX_EXPORT_QUEUE_SIZE;
            let max_batch = super::settings::MAX_EXPORT_BATCH_SIZE.min(queue);
            for (name, value, ok, expected) in [
                (
                    "export queue size",
                    queue,
                    (1..=max_queue).contains(&queue),
                    "a size from 1 to 1048576",
                ),
                (
                    "export batch size",
                    batch,
                    (1..=max_batch).contains(&batch),
                    "a size from 1 to the export queue size (at most 65536)",
                ),
            ] {
                if !ok {
                    return Err(ConfigError::new(
                        name,
                        &value.to_string(),
                        ParseError::new(1, expected),
                    )
                    .into());
                }
            }
        }
        for (name, value) in [
            ("flight recorder max bytes", self.flight_recorder_max_bytes),
            ("export queue max bytes", self.export_queue_max_bytes),
        ] {
            check_budget(value as u64)
                .map_err(|e| ConfigError::new(name, &value.to_string(), e))?;
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

/// A byte budget: a size (`16MiB`, `65536`) from
/// [`MIN_MAX_BYTES`](super::MIN_MAX_BYTES) to [`MAX_MAX_BYTES`](super::MAX_MAX_BYTES).
fn parse_budget(s: &str) -> Result<usize, ParseError> {
    let n = telltale_core::config::parse_size(s)
        .map_err(|e| ParseError::new(e.position(), "a size from 64KiB to 16GiB, such as 16MiB"))?;
    check_budget(n)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn check_budget(n: u64) -> Result<(), ParseError> {
    if (super::settings::MIN_MAX_BYTES..=super::settings::MAX_MAX_BYTES).contains(&n) {
        Ok(())
    } else {
        Err(ParseError::new(
            1,
            "a size from 64KiB to 16GiB, such as 16MiB",
        ))
    }
}

/// A span limit: a whole number from 0 to 2³¹ − 1, the range the
/// OpenTelemetry environment specification asks SDKs to support.
fn parse_limit(s: &str) -> Result<u32, ParseError> {
    let expected = "a whole number from 0 to 2147483647";
    let n: u64 = telltale_core::config::parse_number(s)
        .map_err(|e| ParseError::new(e.position(), expected))?;
    match u32::try_from(n) {
        Ok(n) if n <= super::limits::MAX_LIMIT => Ok(n),
        _ => Err(ParseError::new(1, expected)),
    }
}

/// The specific variable if set, else the general one; both are checked
/// when set, so that a bad value never hides behind a good one.
fn specific_or_general<S: EnvSource>(
    env: &Env<S>,
    specific: &str,
    general: Option<u32>,
) -> Result<Option<u32>, ConfigError> {
    Ok(env.parse(specific, parse_limit)?.or(general))
}

/// The `OTEL_*_LIMIT` variables over `limits`.
fn span_limits<S: EnvSource>(
    env: &Env<S>,
    mut limits: super::limits::SpanLimits,
) -> Result<super::limits::SpanLimits, ConfigError> {
    let length = env.parse(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, parse_limit)?;
    if let Some(n) = specific_or_general(env, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, length)? {
        limits.attribute_value_length = Some(n);
    }
    let count = env.parse(OTEL_ATTRIBUTE_COUNT_LIMIT, parse_limit)?;
    if let Some(n) = specific_or_general(env, OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, count)? {
        limits.attribute_count = n;
    }
    if let Some(n) = specific_or_general(env, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT, count)? {
        limits.event_attribute_count = n;
    }
    if let Some(n) = specific_or_general(env, OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, count)? {
        limits.link_attribute_count = n;
    }
    if let Some(n) = env.parse(OTEL_SPAN_EVENT_COUNT_LIMIT, parse_limit)? {
        limits.event_count = n;
    }
    if let Some(n) = env.parse(OTEL_SPAN_LINK_COUNT_LIMIT, parse_limit)? {
        limits.link_count = n;
    }
    Ok(limits)
}

/// Longest `OTEL_SERVICE_NAME`, in characters.
pub const MAX_SERVICE_NAME_LEN: usize = 255;
/// Largest `TELLTALE_LOG_MAX_FIELD_LEN` (1 MiB of characters).
pub const MAX_LOG_FIELD_LEN: usize = 1 << 20;

/// A service name: at most [`MAX_SERVICE_NAME_LEN`] characters, none of
/// them control characters.
fn parse_service_name(s: &str) -> Result<String, ParseError> {
    if let Some((i, _)) = s.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ParseError::new(i + 1, "a name without control characters"));
    }
    if s.chars().count() > MAX_SERVICE_NAME_LEN {
        return Err(ParseError::new(
            MAX_SERVICE_NAME_LEN + 1,
            format!("a name of at most {MAX_SERVICE_NAME_LEN} characters"),
        ));
    }
    Ok(s.to_owned())
}

fn parse_max_field_len(s: &str) -> Result<usize, ParseError> {
    let n: u64 = telltale_core::config::parse_number(s).map_err(|e| {
        ParseError::new(
            e.position(),
            format!("a length from 1 to {MAX_LOG_FIELD_LEN}"),
        )
    })?;
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_LOG_FIELD_LEN).contains(&n) => Ok(n),
        _ => Err(ParseError::new(
            1,
            format!("a length from 1 to {MAX_LOG_FIELD_LEN} characters"),
        )),
    }
}

/// The sampler of `OTEL_TRACES_SAMPLER` (case-insensitive, as the
/// OpenTelemetry environment specification asks of enum values).
fn parse_sampler(s: &str, arg: Option<f64>) -> Result<Sampler, ParseError> {
    let ratio = arg.unwrap_or(1.0);
    Ok(match s.to_ascii_lowercase().as_str() {
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

/// `OTEL_METRICS_EXPORTER`: `otlp`, `prometheus` (the pull exposition,
/// which the application serves itself: nothing to start), `none`;
/// `console` is a valid value of the specification that telltale does not
/// offer for metrics, and says so.
fn parse_metric_exporters(s: &str) -> Result<Vec<ExporterKind>, ParseError> {
    let items = telltale_core::config::parse_list_with(s, |item| match item {
        "otlp" => Ok(Some(ExporterKind::Otlp)),
        "prometheus" | "none" => Ok(None),
        "console" | "logging" => Err(ParseError::new(
            1,
            "otlp, prometheus or none (console is not supported for metrics)",
        )),
        _ => Err(ParseError::new(1, "otlp, prometheus or none")),
    })?;
    Ok(items.into_iter().flatten().collect())
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

/// An `http://` or `https://` URL with a host (`https://` needs the `tls`
/// feature).
fn parse_endpoint(s: &str) -> Result<String, ParseError> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| ParseError::new(1, "a URL such as http://localhost:4317"))?;
    match uri.scheme_str() {
        Some("http") => {}
        #[cfg(feature = "tls")]
        Some("https") => {}
        #[cfg(not(feature = "tls"))]
        Some("https") => {
            return Err(ParseError::new(
                1,
                "http:// (https needs the `tls` feature of telltale-telemetry, not enabled)",
            ));
        }
        _ => {
            return Err(ParseError::new(
                1,
                "a URL starting with http:// or https://",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        let at = uri.scheme_str().map_or(0, str::len) + 4;
        return Err(ParseError::new(at, "a host name"));
    }
    check_port(s, &uri)?;
    Ok(s.to_owned())
}

/// The port of an endpoint, when one is written, is 1 to 65535 (`http::Uri`
/// accepts any digits there and drops a port it cannot hold).
fn check_port(s: &str, uri: &http::Uri) -> Result<(), ParseError> {
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    let a = authority.as_str();
    let host_start = a.rfind('@').map_or(0, |i| i + 1);
    let host = &a[host_start..];
    let port_at = if host.starts_with('[') {
        host.find(']').map(|i| i + 1).filter(|&i| i < host.len())
    } else {
        host.rfind(':')
    };
    let Some(port_at) = port_at else {
        return Ok(());
    };
    let port = &host[port_at..];
    let port = port.strip_prefix(':').unwrap_or(port);
    let ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    if ok {
        return Ok(());
    }
    let before = s.find(a).unwrap_or(0) + host_start + port_at + 1;
    Err(ParseError::new(
        s[..before.min(s.len())].chars().count() + 1,
        "a port from 1 to 65535",
    ))
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
    let pairs = telltale_core::resource::parse_key_values(s)?;
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

mod export;
#[cfg(test)]
mod tests;
