//! The export variables: OTLP compression and TLS (per signal), the batch
//! processors' `OTEL_BSP_*` / `OTEL_BLRP_*` and telltale's
//! `TELLTALE_EXPORT_*`, `OTEL_LOG_LEVEL`, and the specification's booleans.

use std::str::FromStr;
use std::time::Duration;

use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};
use tracing::level_filters::LevelFilter;

use super::*;
use crate::pipeline::settings::{
    Compression, MAX_EXPORT_BATCH_SIZE, MAX_EXPORT_DURATION, MAX_EXPORT_QUEUE_SIZE, OtlpTls,
};

/// A boolean as the OpenTelemetry specification reads it: `true`
/// (case-insensitive) is true; `false`, empty and unset are false; anything
/// else is false with a warning (kept in `warnings`, logged once the
/// pipeline is built).
pub(super) fn spec_bool<S: EnvSource>(
    env: &Env<S>,
    name: &'static str,
    warnings: &mut Vec<String>,
) -> Result<Option<bool>, ConfigError> {
    let Some(value) = env.string(name)? else {
        return Ok(None);
    };
    if value.eq_ignore_ascii_case("true") {
        return Ok(Some(true));
    }
    if !value.eq_ignore_ascii_case("false") {
        let shown = ConfigError::new(name, &value, ParseError::new(1, "true or false"));
        warnings.push(format!(
            "{shown}; read as false, as the OpenTelemetry specification asks"
        ));
    }
    Ok(Some(false))
}

/// One signal's compression and TLS variables.
pub(super) struct TlsVars {
    pub(super) compression: &'static str,
    pub(super) certificate: &'static str,
    pub(super) client_key: &'static str,
    pub(super) client_certificate: &'static str,
    pub(super) insecure: &'static str,
}

pub(super) const TRACES_TLS: TlsVars = TlsVars {
    compression: OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    certificate: OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
    client_key: OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY,
    client_certificate: OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE,
    insecure: OTEL_EXPORTER_OTLP_TRACES_INSECURE,
};

pub(super) const LOGS_TLS: TlsVars = TlsVars {
    compression: OTEL_EXPORTER_OTLP_LOGS_COMPRESSION,
    certificate: OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE,
    client_key: OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY,
    client_certificate: OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE,
    insecure: OTEL_EXPORTER_OTLP_LOGS_INSECURE,
};

pub(super) const METRICS_TLS: TlsVars = TlsVars {
    compression: OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
    certificate: OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE,
    client_key: OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY,
    client_certificate: OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE,
    insecure: OTEL_EXPORTER_OTLP_METRICS_INSECURE,
};

/// What a signal's compression and TLS variables say (`None`: not set).
#[derive(Default)]
pub(super) struct Transport {
    pub(super) compression: Option<Compression>,
    pub(super) ca_certificate: Option<Vec<u8>>,
    pub(super) client_identity: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) insecure: Option<bool>,
}

impl Transport {
    /// Applies what is set over `otlp`'s settings.
    pub(super) fn apply_to(&self, otlp: &mut crate::pipeline::settings::OtlpConfig) {
        if let Some(c) = self.compression {
            otlp.compression = c;
        }
        if let Some(ca) = &self.ca_certificate {
            otlp.tls.ca_certificate = Some(ca.clone());
        }
        if let Some(id) = &self.client_identity {
            otlp.tls.client_identity = Some(id.clone());
        }
    }
}

/// The first of the signal's variable and the general one that is set, with
/// its name.
fn first_set<S: EnvSource>(
    env: &Env<S>,
    names: [&'static str; 2],
) -> Result<Option<(&'static str, String)>, ConfigError> {
    for name in names {
        if let Some(v) = env.string(name)? {
            return Ok(Some((name, v)));
        }
    }
    Ok(None)
}

/// The contents of the file `path` named by `var`, checked as PEM with
/// `check`.
fn pem_file(
    var: &'static str,
    path: &str,
    check: impl Fn(&[u8]) -> Result<(), ParseError>,
) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            var,
            path,
            ParseError::new(1, format!("a readable file ({e})")),
        )
    })?;
    check(&bytes).map_err(|e| ConfigError::new(var, path, e))?;
    Ok(bytes)
}

#[cfg(feature = "tls")]
fn check_certs(pem: &[u8]) -> Result<(), ParseError> {
    crate::pipeline::export::tls::certificates(pem).map(drop)
}

#[cfg(feature = "tls")]
fn check_key(pem: &[u8]) -> Result<(), ParseError> {
    crate::pipeline::export::tls::private_key(pem).map(drop)
}

#[cfg(not(feature = "tls"))]
fn check_certs(_: &[u8]) -> Result<(), ParseError> {
    Err(ParseError::new(
        1,
        "no TLS file: TLS needs the `tls` feature of telltale-telemetry",
    ))
}

#[cfg(not(feature = "tls"))]
fn check_key(pem: &[u8]) -> Result<(), ParseError> {
    check_certs(pem)
}

/// Reads a signal's compression and TLS variables (the signal's own first,
/// then the general `OTEL_EXPORTER_OTLP_*`), files included.
pub(super) fn transport<S: EnvSource>(
    env: &Env<S>,
    vars: &TlsVars,
    warnings: &mut Vec<String>,
) -> Result<Transport, ConfigError> {
    let compression = match first_set(env, [vars.compression, OTEL_EXPORTER_OTLP_COMPRESSION])? {
        Some((name, v)) => {
            Some(Compression::from_str(&v).map_err(|e| ConfigError::new(name, &v, e))?)
        }
        None => None,
    };
    let ca_certificate = match first_set(env, [vars.certificate, OTEL_EXPORTER_OTLP_CERTIFICATE])? {
        Some((name, path)) => Some(pem_file(name, &path, check_certs)?),
        None => None,
    };
    let cert = first_set(
        env,
        [
            vars.client_certificate,
            OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
        ],
    )?;
    let key = first_set(env, [vars.client_key, OTEL_EXPORTER_OTLP_CLIENT_KEY])?;
    let client_identity = match (cert, key) {
        (Some((cert_var, cert)), Some((key_var, key))) => Some((
            pem_file(cert_var, &cert, check_certs)?,
            pem_file(key_var, &key, check_key)?,
        )),
        (None, None) => None,
        (Some((cert_var, _)), None) => {
            let key_var = if cert_var == OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE {
                OTEL_EXPORTER_OTLP_CLIENT_KEY
            } else {
                vars.client_key
            };
            return Err(ConfigError::new(
                key_var,
                "",
                ParseError::new(
                    1,
                    format!(
                        "a PEM private key file, since {cert_var} is set (mutual TLS needs both)"
                    ),
                ),
            ));
        }
        (None, Some((key_var, _))) => {
            let cert_var = if key_var == OTEL_EXPORTER_OTLP_CLIENT_KEY {
                OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE
            } else {
                vars.client_certificate
            };
            return Err(ConfigError::new(
                cert_var,
                "",
                ParseError::new(
                    1,
                    format!(
                        "a PEM certificate file, since {key_var} is set (mutual TLS needs both)"
                    ),
                ),
            ));
        }
    };
    let insecure = match spec_bool(env, vars.insecure, warnings)? {
        Some(v) => Some(v),
        None => spec_bool(env, OTEL_EXPORTER_OTLP_INSECURE, warnings)?,
    };
    Ok(Transport {
        compression,
        ca_certificate,
        client_identity,
        insecure,
    })
}

/// A gRPC endpoint without a scheme gets one: `http://` when insecure,
/// else `https://` (`OTEL_EXPORTER_OTLP_INSECURE` as the specification
/// defines it); other endpoints are unchanged.
pub(super) fn with_scheme(endpoint: &str, grpc: bool, insecure: bool) -> String {
    if grpc && !endpoint.contains("://") {
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{endpoint}")
    } else {
        endpoint.to_owned()
    }
}

/// A specification timeout: milliseconds up to one hour, `0` meaning no
/// limit (which telltale bounds at one hour, as the specification allows).
pub(super) fn timeout_millis(s: &str) -> Result<Duration, ParseError> {
    let ms: u64 = telltale_core::config::parse_number(s)?;
    let d = Duration::from_millis(ms);
    if d > MAX_EXPORT_DURATION {
        return Err(ParseError::new(
            1,
            "milliseconds from 0 (no limit) to 3600000",
        ));
    }
    Ok(if ms == 0 { MAX_EXPORT_DURATION } else { d })
}

/// An export interval: milliseconds from 1 to one hour (0 would export
/// without pause).
pub(super) fn interval_millis(s: &str) -> Result<Duration, ParseError> {
    let ms: u64 = telltale_core::config::parse_number(s)?;
    if ms == 0 || Duration::from_millis(ms) > MAX_EXPORT_DURATION {
        return Err(ParseError::new(1, "milliseconds from 1 to 3600000"));
    }
    Ok(Duration::from_millis(ms))
}

/// Milliseconds from 0 to one hour (the specification's delays).
fn delay_millis(s: &str) -> Result<Duration, ParseError> {
    let ms: u64 = telltale_core::config::parse_number(s)?;
    let d = Duration::from_millis(ms);
    if d > MAX_EXPORT_DURATION {
        return Err(ParseError::new(1, "milliseconds from 0 to 3600000"));
    }
    Ok(d)
}

/// A telltale duration of at most one hour.
pub(super) fn bounded_duration(s: &str) -> Result<Duration, ParseError> {
    let d = telltale_core::config::parse_duration(s)?;
    if d > MAX_EXPORT_DURATION {
        return Err(ParseError::new(1, "a duration of at most 1h"));
    }
    Ok(d)
}

/// A telltale timeout: above zero, at most one hour.
pub(super) fn bounded_timeout(s: &str) -> Result<Duration, ParseError> {
    let d = bounded_duration(s)?;
    if d.is_zero() {
        return Err(ParseError::new(1, "a duration above 0 and at most 1h"));
    }
    Ok(d)
}

fn queue_size(s: &str) -> Result<usize, ParseError> {
    let n: usize = telltale_core::config::parse_number(s)?;
    if n == 0 || n > MAX_EXPORT_QUEUE_SIZE {
        return Err(ParseError::new(1, "a size from 1 to 1048576"));
    }
    Ok(n)
}

fn batch_size(s: &str) -> Result<usize, ParseError> {
    let n: usize = telltale_core::config::parse_number(s)?;
    if n == 0 || n > MAX_EXPORT_BATCH_SIZE {
        return Err(ParseError::new(1, "a size from 1 to 65536"));
    }
    Ok(n)
}

/// The batch variables of one processor.
struct BatchVars {
    delay: &'static str,
    timeout: &'static str,
    queue: &'static str,
    batch: &'static str,
}

const BSP: BatchVars = BatchVars {
    delay: OTEL_BSP_SCHEDULE_DELAY,
    timeout: OTEL_BSP_EXPORT_TIMEOUT,
    queue: OTEL_BSP_MAX_QUEUE_SIZE,
    batch: OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
};

const BLRP: BatchVars = BatchVars {
    delay: OTEL_BLRP_SCHEDULE_DELAY,
    timeout: OTEL_BLRP_EXPORT_TIMEOUT,
    queue: OTEL_BLRP_MAX_QUEUE_SIZE,
    batch: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
};

/// One processor's resolved sizes, with the variable each came from.
struct Resolved {
    queue: (usize, &'static str),
    batch: (usize, &'static str),
}

impl Resolved {
    fn check(&self) -> Result<(), ConfigError> {
        if self.batch.0 > self.queue.0 {
            return Err(ConfigError::new(
                self.batch.1,
                &self.batch.0.to_string(),
                ParseError::new(
                    1,
                    format!("at most the export queue size ({})", self.queue.0),
                ),
            ));
        }
        Ok(())
    }
}

impl TelemetryBuilder {
    /// `TELLTALE_EXPORT_*` (both signals) over `OTEL_BSP_*` (spans) and
    /// `OTEL_BLRP_*` (log records) over the builder's values; the failure
    /// line interval; `OTEL_LOG_LEVEL`.
    pub(super) fn apply_export_env<S: EnvSource>(
        mut self,
        env: &Env<S>,
    ) -> Result<Self, InitError> {
        let t_queue = env.parse(TELLTALE_EXPORT_QUEUE_SIZE, queue_size)?;
        let t_batch = env.parse(TELLTALE_EXPORT_BATCH_SIZE, batch_size)?;
        let t_delay = env.parse(TELLTALE_EXPORT_DELAY, bounded_duration)?;
        let t_timeout = env.parse(TELLTALE_EXPORT_TIMEOUT, bounded_timeout)?;
        let base = (self.queue_size, self.batch_size, self.export_delay);
        let logs_base = (
            self.export_extras.logs.queue_size.unwrap_or(base.0),
            self.export_extras.logs.batch_size.unwrap_or(base.1),
            self.export_extras.logs.delay.unwrap_or(base.2),
        );
        for (vars, base, logs) in [(BSP, base, false), (BLRP, logs_base, true)] {
            let queue = match t_queue {
                Some(n) => (n, TELLTALE_EXPORT_QUEUE_SIZE),
                None => match env.parse(vars.queue, queue_size)? {
                    Some(n) => (n, vars.queue),
                    None => (base.0, TELLTALE_EXPORT_QUEUE_SIZE),
                },
            };
            let batch = match t_batch {
                Some(n) => (n, TELLTALE_EXPORT_BATCH_SIZE),
                None => match env.parse(vars.batch, batch_size)? {
                    Some(n) => (n, vars.batch),
                    None => (base.1, TELLTALE_EXPORT_BATCH_SIZE),
                },
            };
            let resolved = Resolved { queue, batch };
            let any_set = t_queue.is_some()
                || t_batch.is_some()
                || queue.1 == vars.queue
                || batch.1 == vars.batch;
            if any_set {
                resolved.check()?;
            }
            let delay = match t_delay {
                Some(d) => d,
                None => env.parse(vars.delay, delay_millis)?.unwrap_or(base.2),
            };
            let timeout = match t_timeout {
                Some(_) => None,
                None => env.parse(vars.timeout, timeout_millis)?,
            };
            let overrides = if logs {
                &mut self.export_extras.logs
            } else {
                self.queue_size = queue.0;
                self.batch_size = batch.0;
                self.export_delay = delay;
                &mut self.export_extras.spans
            };
            if logs {
                overrides.queue_size = Some(queue.0);
                overrides.batch_size = Some(batch.0);
                overrides.delay = Some(delay);
            }
            if timeout.is_some() {
                overrides.export_timeout = timeout;
            }
        }
        if let Some(interval) = env.parse(TELLTALE_EXPORT_FAILURE_LOG_INTERVAL, bounded_timeout)? {
            self.export_extras.failure_log_interval = interval;
        }
        if let Some(level) = env.parse(OTEL_LOG_LEVEL, parse_log_level)? {
            self.export_extras.sdk_log_level = Some(level);
        }
        Ok(self)
    }
}

/// `OTEL_LOG_LEVEL`: `none`, `error`, `warn`, `info`, `debug`, `trace`
/// (`off`, `verbose` and `all` as aliases), case-insensitive.
fn parse_log_level(s: &str) -> Result<LevelFilter, ParseError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "none" | "off" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" | "verbose" | "all" => LevelFilter::TRACE,
        _ => {
            return Err(ParseError::new(
                1,
                "none, error, warn, info, debug or trace",
            ));
        }
    })
}

/// Checks TLS material set in code (PEM that parses, when the `tls` feature
/// is on).
pub(super) fn check_tls(tls: &OtlpTls) -> Result<(), ConfigError> {
    if let Some(ca) = &tls.ca_certificate {
        check_certs(ca).map_err(|e| ConfigError::new("otlp CA certificate", "<PEM>", e))?;
    }
    if let Some((cert, key)) = &tls.client_identity {
        check_certs(cert).map_err(|e| ConfigError::new("otlp client certificate", "<PEM>", e))?;
        check_key(key).map_err(|e| ConfigError::new("otlp client key", "<PEM>", e))?;
    }
    Ok(())
}
