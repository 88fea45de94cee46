//! The request log line: one structured event per finished server request,
//! the line tower-http's `TraceLayer` users expect.
//!
//! Emitted by the [server layer](crate::layer::server) when the exchange
//! ends (the response body's end, error or drop, or the inner service's
//! error), with target [`TARGET`] and message `request finished`. Its fields,
//! under the names of the active log profile
//! ([`Profile`](crate::Profile)):
//!
//! | what | OpenTelemetry profile | ECS profile |
//! | --- | --- | --- |
//! | method | `http.request.method` (`_OTHER` + `http.request.method_original`) | `http.request.method` (the real method) |
//! | route template (absent when unmatched) | `http.route` | `telltale.http.route` |
//! | status | `http.response.status_code` | `http.response.status_code` |
//! | duration | `duration_ms` (float, milliseconds) | `event.duration` (integer, nanoseconds) |
//! | outcome when an error | `error.type` | `error.type` |
//! | correlation ID | `correlation_id` | `http.request.id` |
//! | trace | `trace_id`, `span_id` | `trace.id`, `span.id` |
//!
//! The line is written inside the request's span, so it also carries the
//! span's request fields (`url.path`, `client.address`, …) and its trace and
//! span IDs. Those come from the span's OpenTelemetry context, which exists
//! whether or not the sampler kept the trace: an unsampled request's line
//! still has the `trace_id` it continued (from `traceparent`) or started.
//! Health checks ([`DEFAULT_HEALTH_PATHS`](crate::layer::server::DEFAULT_HEALTH_PATHS))
//! and [`skip_tracing`](crate::layer::server::ServerTelemetryLayerBuilder::skip_tracing)
//! routes get no line, as they get no span (a probe every few seconds is
//! not worth a line each; `TELLTALE_HTTP_SERVER_TRACE_HEALTH_CHECKS=true`
//! brings both back). With spans off
//! ([`tracing(false)`](crate::layer::server::ServerTelemetryLayerBuilder::tracing))
//! lines are written without a trace ID. A request sampled out before its
//! span was built ([`sampling`](crate::sampling)) keeps its trace ID but has
//! no span fields. Without a span, the line carries the correlation ID an
//! outer layer set, or the one the correlation layer inside settled on
//! ([`announce`](telltale_core::correlation::announce)).
//! The line is left out of the span's OpenTelemetry events by
//! [`init`](crate::init)'s pipeline (the span already holds every field).
//!
//! # Level by outcome
//!
//! - `INFO`: 1xx, 2xx, 3xx and 4xx. A 4xx is the caller's mistake, not the
//!   service's; a scanner's thousand 404s must not fill the `WARN` stream.
//! - `WARN`: the caller went away before the end (`error.type = cancelled`).
//! - `ERROR`: every other outcome with an `error.type`: 5xx, codes 600 to 999,
//!   gRPC server-error codes, timeouts, rejections (`circuit_open`,
//!   `bulkhead_full`), inner errors.
//!
//! # Turning it off or down
//!
//! [`RequestLog`] says which requests are logged (`TELLTALE_REQUEST_LOG`:
//! `on`, `errors`, `off`); a success sample ratio
//! (`TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE`, `0` to `1` or `0%` to `100%`)
//! thins the lines of successful requests (below 400, no `error.type`):
//! `10%` logs every tenth, exactly, counted per layer (no random number per
//! request; failures and 4xx are always logged). `RUST_LOG=telltale::request=off`
//! silences it through the log filter too. Off costs one branch per
//! request: nothing is measured or kept.
//!
//! [`ServerStack`](https://docs.rs/telltale) turns it on
//! ([`RequestLog::On`]); a bare
//! [`ServerTelemetryLayer::new`](crate::layer::server::ServerTelemetryLayer::new)
//! leaves it off.
//!
//! ```
//! use telltale_telemetry::layer::server::{RequestLog, ServerTelemetryLayer};
//!
//! let layer = ServerTelemetryLayer::builder()
//!     .request_log(RequestLog::On)
//!     .request_log_success_sample(0.1) // one success in ten, every failure
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use telltale_core::config::ParseError;
use telltale_core::http::known_method;
use telltale_core::{CorrelationId, Outcome};
use tracing::{Level, Span};

/// The target of the request log line (`RUST_LOG=telltale::request=off`
/// silences it).
pub const TARGET: &str = "telltale::request";

/// The message of the request log line.
pub const MESSAGE: &str = "request finished";

/// Which finished requests get a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestLog {
    /// No line (the default of a bare server layer).
    #[default]
    Off,
    /// Only failed requests: an `error.type` or a status of 400 and above.
    Errors,
    /// Every request (successes thinned by the success sample ratio).
    On,
}

impl RequestLog {
    /// The value's name as `TELLTALE_REQUEST_LOG` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestLog::Off => "off",
            RequestLog::Errors => "errors",
            RequestLog::On => "on",
        }
    }
}

impl fmt::Display for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestLog {
    type Err = ParseError;

    /// `on`, `errors` or `off` (any case; `true`/`false` are `on`/`off`).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "all" => Ok(RequestLog::On),
            "errors" => Ok(RequestLog::Errors),
            "off" | "false" => Ok(RequestLog::Off),
            _ => Err(ParseError::new(1, "on, errors or off")),
        }
    }
}

/// The request log of one layer: what to log, and the success counter of the
/// sample ratio. Shared by the layer's clones.
pub(crate) struct RequestLogger {
    mode: RequestLog,
    /// Fraction of successes logged, `0.0..=1.0`.
    sample: f64,
    successes: AtomicU64,
}

impl fmt::Debug for RequestLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog")
            .field("mode", &self.mode)
            .field("success_sample", &self.sample)
            .finish()
    }
}

impl RequestLogger {
    /// The logger of a layer; `None` when off (nothing per request).
    pub(crate) fn new(mode: RequestLog, sample: f64) -> Option<Arc<Self>> {
        (mode != RequestLog::Off).then(|| {
            Arc::new(RequestLogger {
                mode,
                sample: if sample.is_nan() {
                    1.0
                } else {
                    sample.clamp(0.0, 1.0)
                },
                successes: AtomicU64::new(0),
            })
        })
    }

    /// What a request keeps until it ends: its start (unless `timed`: the
    /// request's RED record already measures it and hands the duration to
    /// [`Pending::finish`], one clock for both), its method and, when it has
    /// no span, the correlation ID known at the start.
    pub(crate) fn start(
        self: &Arc<Self>,
        method: &Method,
        span: &Span,
        timed: bool,
        correlation: impl FnOnce() -> Option<CorrelationId>,
    ) -> Pending {
        Pending {
            logger: self.clone(),
            started: (!timed).then(Instant::now),
            method: method.clone(),
            spanless: span.is_disabled(),
            correlation: if span.is_disabled() {
                correlation()
            } else {
                None
            },
        }
    }

    /// Whether a success is logged: exactly `sample` of them, spread evenly
    /// (the n-th success is logged when `floor(n·r)` steps up). Hand-written:
    /// a counter is all an exact ratio needs, and it draws no random number
    /// per request.
    fn keep_success(&self) -> bool {
        if self.sample >= 1.0 {
            return true;
        }
        if self.sample <= 0.0 {
            return false;
        }
        let n = self.successes.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).floor() > (n * self.sample).floor()
    }
}

/// One request's part of the log line, kept from its start to its end.
pub(crate) struct Pending {
    logger: Arc<RequestLogger>,
    /// The start, when no RED record measures the request.
    started: Option<Instant>,
    /// Whether the request has no span (spans off, or sampled out before it
    /// was built): the line then carries the correlation ID itself.
    spanless: bool,
    method: Method,
    correlation: Option<CorrelationId>,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Whether the line has no correlation ID yet and no span to get one
    /// from: it listens for the one an inner layer settles on.
    pub(crate) fn awaits_correlation(&self) -> bool {
        self.correlation.is_none() && self.spanless
    }

    /// The correlation ID an inner layer settled on, if one did.
    pub(crate) fn heard(&mut self, id: Option<CorrelationId>) {
        if self.correlation.is_none() {
            self.correlation = id;
        }
    }
}

/// Emits the line at a level known at compile time (one callsite each).
macro_rules! line {
    ($level:expr, $method:tt, $original:tt, $route:tt, $status:tt, $error:tt, $ms:tt, $correlation:tt) => {
        tracing::event!(
            target: "telltale::request",
            $level,
            http.request.method = $method,
            http.request.method_original = $original,
            http.route = $route,
            http.response.status_code = $status,
            error.type = $error,
            duration_ms = $ms,
            correlation_id = $correlation,
            "request finished"
        )
    };
}

impl Pending {
    /// Writes the line of a request that ended with `outcome`, unless the
    /// mode or the sample leaves it out. Call it inside the request's span
    /// (when it has one). `duration` is the RED record's, when the request
    /// has one.
    pub(crate) fn finish(
        self,
        outcome: &Outcome,
        route: Option<&str>,
        error_type: Option<&'static str>,
        duration: Option<Duration>,
    ) {
        let status: Option<StatusCode> = outcome.status();
        let failed = error_type.is_some() || status.is_some_and(|s| s.as_u16() >= 400);
        let keep = match self.logger.mode {
            RequestLog::Off => false,
            RequestLog::Errors => failed,
            RequestLog::On => failed || self.logger.keep_success(),
        };
        if !keep {
            return;
        }
        let duration = duration
            .or_else(|| self.started.map(|s| s.elapsed()))
            .unwrap_or_default();
        let ms = duration.as_secs_f64() * 1000.0;
        let known = known_method(&self.method);
        let method = known.unwrap_or("_OTHER");
        let original = known.is_none().then(|| self.method.as_str());
        let status = status.map(|s| i64::from(s.as_u16()));
        let correlation = self.correlation.as_ref().map(CorrelationId::as_str);
        match (error_type, outcome) {
            (None, _) => line!(
                Level::INFO,
                method,
                original,
                route,
                status,
                error_type,
                ms,
                correlation
            ),
            (Some(_), Outcome::Cancelled { .. }) => line!(
                Level::WARN,
                method,
                original,
                route,
                status,
                error_type,
                ms,
                correlation
            ),
            (Some(_), _) => line!(
                Level::ERROR,
                method,
                original,
                route,
                status,
                error_type,
                ms,
                correlation
            ),
        }
    }
}

/// `TELLTALE_REQUEST_LOG`: `on`, `errors` or `off`.
pub(crate) fn parse_mode(s: &str) -> Result<RequestLog, ParseError> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [RequestLog::Off, RequestLog::Errors, RequestLog::On] {
            assert_eq!(parse_mode(mode.as_str()), Ok(mode));
        }
        assert_eq!(parse_mode("ON"), Ok(RequestLog::On));
        let err = parse_mode("sometimes").unwrap_err();
        assert!(err.expected().contains("on, errors or off"), "{err}");
    }

    #[test]
    fn the_success_sample_is_exact() {
        for (ratio, of_100) in [(0.1, 10), (0.25, 25), (0.0, 0), (1.0, 100), (0.333, 33)] {
            let logger = RequestLogger::new(RequestLog::On, ratio).unwrap();
            let kept = (0..100).filter(|_| logger.keep_success()).count();
            assert_eq!(kept, of_100, "{ratio}");
        }
        assert!(RequestLogger::new(RequestLog::Off, 1.0).is_none());
    }
}
