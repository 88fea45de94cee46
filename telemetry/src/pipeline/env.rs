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
use super::settings::{
    DEFAULT_EXPORT_TIMEOUT, ExporterKind, LogFormat, OtlpConfig, Protocol, Sampler,
};

telltale_core::env_vars! {
    /// `service.name` of the resource.
    OTEL_SERVICE_NAME;
    /// More resource attributes, `key=value,key=value` (percent-encoded
    /// values), declared and parsed by [`telltale_core::resource`].
    OTEL_RESOURCE_ATTRIBUTES = telltale_core::resource::VAR;
    /// Boolean: no spans at all (logs are still written).
    OTEL_SDK_DISABLED;
    /// Span exporters: `otlp`, `console` (or `stdout`), `none`.
    OTEL_TRACES_EXPORTER;
    /// Log exporters: `otlp` or `none`.
    OTEL_LOGS_EXPORTER;
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
    /// The event and span filter (`info,my_crate=debug`).
    RUST_LOG;
    /// `json` (or `otel`), `ecs`, `pretty`, `none`.
    TELLTALE_LOG_FORMAT;
    /// Longest field value written to a log line, in characters.
    TELLTALE_LOG_MAX_FIELD_LEN;
    /// Boolean: colors in the pretty format.
    TELLTALE_LOG_ANSI;
    /// Spans the flight recorder keeps (`0`: off).
    TELLTALE_FLIGHT_RECORDER_CAPACITY;
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

/// A timeout in milliseconds (the OpenTelemetry variables' unit).
fn millis(s: &str) -> Result<Duration, ParseError> {
    telltale_core::config::parse_number::<u64>(s).map(Duration::from_millis)
}

/// One signal's OTLP variables (`TRACES` or `LOGS`).
struct Signal {
    exporter: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
    path: &'static str,
}

const TRACES: Signal = Signal {
    exporter: OTEL_TRACES_EXPORTER,
    endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    protocol: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    headers: OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    timeout: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    path: "/v1/traces",
};

const LOGS: Signal = Signal {
    exporter: OTEL_LOGS_EXPORTER,
    endpoint: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
    protocol: OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    headers: OTEL_EXPORTER_OTLP_LOGS_HEADERS,
    timeout: OTEL_EXPORTER_OTLP_LOGS_TIMEOUT,
    path: "/v1/logs",
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
    ) -> Result<Option<Vec<ExporterKind>>, ConfigError> {
        let exporters = env.parse(self.exporter, parse_exporters)?;
        let protocol = first(env, &[self.protocol, OTEL_EXPORTER_OTLP_PROTOCOL], |s| {
            Protocol::from_str(s)
        })?;
        let own = env.parse(self.endpoint, parse_endpoint)?;
        let base = env.parse(OTEL_EXPORTER_OTLP_ENDPOINT, parse_endpoint)?;
        let headers = first(
            env,
            &[self.headers, OTEL_EXPORTER_OTLP_HEADERS],
            parse_headers,
        )?;
        let timeout = match env.duration(TELLTALE_EXPORT_TIMEOUT)? {
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
                *current = Some(OtlpConfig {
                    endpoint,
                    protocol,
                    headers: headers.unwrap_or_default(),
                    timeout: timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT),
                });
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
        if let Some(name) = env.string(OTEL_SERVICE_NAME)? {
            self.service_name = Some(name);
        }
        if let Some(disabled) = env.boolean(OTEL_SDK_DISABLED)? {
            self.sdk_disabled = disabled;
        }
        if let Some(exporters) = TRACES.apply(env, &mut self.otlp, true)? {
            self.stdout_exporter = exporters.contains(&ExporterKind::Stdout);
        }
        LOGS.apply(env, &mut self.otlp_logs, false)?;

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
        if let Some(format) = env.parse(TELLTALE_LOG_FORMAT, LogFormat::from_str)? {
            self.log_format = format;
        }
        if let Some(max) = env.parse(TELLTALE_LOG_MAX_FIELD_LEN, positive)? {
            self.max_field_len = max;
        }
        if let Some(ansi) = env.boolean(TELLTALE_LOG_ANSI)? {
            self.ansi = ansi;
        }
        if let Some(cap) = env.number::<usize>(TELLTALE_FLIGHT_RECORDER_CAPACITY)? {
            self.flight_recorder_capacity = Some(cap);
        }
        let queue = env.parse(TELLTALE_EXPORT_QUEUE_SIZE, positive)?;
        let batch = env.parse(TELLTALE_EXPORT_BATCH_SIZE, positive)?;
        self.queue_size = queue.unwrap_or(self.queue_size);
        self.batch_size = batch.unwrap_or(self.batch_size);
        if (queue.is_some() || batch.is_some()) && self.batch_size > self.queue_size {
            let value = self.batch_size.to_string();
            return Err(ConfigError::new(
                TELLTALE_EXPORT_BATCH_SIZE,
                &value,
                ParseError::new(1, "at most TELLTALE_EXPORT_QUEUE_SIZE"),
            )
            .into());
        }
        if let Some(delay) = env.duration(TELLTALE_EXPORT_DELAY)? {
            self.export_delay = delay;
        }
        if let Some(timeout) = env.duration(TELLTALE_SHUTDOWN_TIMEOUT)? {
            self.shutdown_timeout = timeout;
        }
        Ok(self)
    }

    /// Checks the settings made in code, as [`env`](Self::env) checks
    /// variables.
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
mod tests;
