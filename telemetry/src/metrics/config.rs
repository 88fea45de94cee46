//! What RED metrics to record and how to name them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use metrics::Recorder;
use telltale_core::{ConfigError, ParseError, Side};

/// The OpenTelemetry semantic-convention bucket boundaries for request durations, in seconds.
pub const SEMCONV_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The default cap on distinct label sets per metric.
pub const DEFAULT_MAX_LABEL_SETS: usize = 2000;

/// Which metric names and labels to emit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Naming {
    /// OpenTelemetry semantic conventions as Prometheus sees them:
    /// `http_server_request_duration_seconds{http_request_method, http_route,
    /// http_response_status_code, error_type, url_scheme}`, `http_server_active_requests`,
    /// `http_client_request_duration_seconds`, `rpc_server_call_duration_seconds`,
    /// `rpc_client_call_duration_seconds`. The default.
    #[default]
    OpenTelemetry,
    /// The classic Prometheus style: `http_requests_total{method, endpoint, code}` and
    /// `http_request_duration_seconds{method, endpoint}` (and the gRPC equivalents
    /// `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}` /
    /// `grpc_server_handling_seconds{grpc_service, grpc_method}`).
    Classic,
}

impl std::str::FromStr for Naming {
    type Err = ParseError;

    /// Accepts `opentelemetry`, `otel`, `semconv` or `classic`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "opentelemetry" | "otel" | "semconv" => Ok(Naming::OpenTelemetry),
            "classic" | "prometheus" => Ok(Naming::Classic),
            _ => Err(ParseError::new(1, "one of opentelemetry, classic")),
        }
    }
}

/// Which side and protocol a [`RedMetrics`](super::RedMetrics) records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An HTTP server (axum, hyper): duration histogram and active-requests gauge.
    HttpServer,
    /// An HTTP client: duration histogram and active-requests gauge, labelled by server address.
    HttpClient,
    /// A gRPC server (tonic): call duration histogram, labelled by service and method.
    RpcServer,
    /// A gRPC client: call duration histogram, labelled by service, method and server address.
    RpcClient,
}

impl Kind {
    /// Whether this is a client kind.
    pub const fn is_client(self) -> bool {
        matches!(self, Kind::HttpClient | Kind::RpcClient)
    }

    /// The side of the exchange this kind records.
    pub const fn side(self) -> Side {
        if self.is_client() {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Whether this is a gRPC kind.
    pub const fn is_rpc(self) -> bool {
        matches!(self, Kind::RpcServer | Kind::RpcClient)
    }
}

/// The URL scheme of a request (`url.scheme`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`.
    #[default]
    Http,
    /// `https`.
    Https,
}

impl Scheme {
    /// The label value, `"http"` or `"https"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The scheme of a URI: `https` (or `wss`) when it says so, `http` otherwise
    /// (including relative URIs, as servers see them).
    pub fn from_uri(uri: &http::Uri) -> Self {
        match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") => {
                Scheme::Https
            }
            _ => Scheme::Http,
        }
    }
}

/// Error returned by [`RedConfigBuilder::build`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RedConfigError {
    /// The bucket boundaries are empty, not finite, or not strictly increasing.
    #[error("histogram buckets must be non-empty, finite and strictly increasing")]
    InvalidBuckets,
    /// The label-set cap is zero.
    #[error("the cap on label sets per metric must be at least 1")]
    ZeroCap,
    /// The prefix is not a valid Prometheus metric-name prefix (`[a-zA-Z_][a-zA-Z0-9_]*`).
    #[error("invalid metric prefix {0:?}: expected [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidPrefix(String),
    /// An environment variable could not be parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Configuration of [`RedMetrics`](super::RedMetrics): naming scheme, cardinality cap,
/// histogram buckets, name prefix, and optionally the recorder to bind to.
///
/// ```
/// use telltale_telemetry::metrics::{Naming, RedConfig};
///
/// let config = RedConfig::builder()
///     .naming(Naming::Classic)
///     .max_label_sets(500)
///     .build()
///     .unwrap();
/// assert_eq!(config.naming(), Naming::Classic);
/// assert_eq!(RedConfig::default().buckets().len(), 14);
/// ```
#[derive(Clone)]
pub struct RedConfig {
    pub(crate) naming: Naming,
    pub(crate) max_label_sets: usize,
    pub(crate) buckets: Arc<[f64]>,
    pub(crate) prefix: Option<Arc<str>>,
    pub(crate) listen_addr: Option<SocketAddr>,
    pub(crate) recorder: Option<Arc<dyn Recorder + Send + Sync>>,
}

impl Default for RedConfig {
    fn default() -> Self {
        RedConfig {
            naming: Naming::OpenTelemetry,
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
            buckets: Arc::from(&SEMCONV_BUCKETS[..]),
            prefix: None,
            listen_addr: None,
            recorder: None,
        }
    }
}

impl fmt::Debug for RedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedConfig")
            .field("naming", &self.naming)
            .field("max_label_sets", &self.max_label_sets)
            .field("buckets", &self.buckets)
            .field("prefix", &self.prefix)
            .field("listen_addr", &self.listen_addr)
            .field("recorder", &self.recorder.as_ref().map(|_| "fixed"))
            .finish()
    }
}

impl RedConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RedConfigBuilder {
        RedConfigBuilder {
            config: RedConfig::default(),
        }
    }

    /// The naming scheme.
    pub fn naming(&self) -> Naming {
        self.naming
    }

    /// The cap on distinct label sets per metric.
    pub fn max_label_sets(&self) -> usize {
        self.max_label_sets
    }

    /// The histogram bucket boundaries, in seconds.
    pub fn buckets(&self) -> &[f64] {
        &self.buckets
    }

    /// The metric-name prefix set on this configuration, if any; `None`
    /// means the process-wide prefix ([`telltale_core::metric_name::prefix`],
    /// from `TELLTALE_METRICS_PREFIX`), an empty prefix means none.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The prefix names are built with: [`prefix`](Self::prefix), else the
    /// process-wide one.
    pub fn effective_prefix(&self) -> Option<&str> {
        match self.prefix.as_deref() {
            Some(p) => Some(p),
            None => telltale_core::metric_name::prefix(),
        }
    }

    /// The address of a standalone `/metrics` listener, if one is wanted
    /// ([`TELLTALE_METRICS_ADDR`](super::env::ADDR)); serve it with
    /// `serve_metrics` (feature `axum`).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// Binds metrics built from this configuration to `recorder` instead of the
    /// recorder current when each label set is first seen (the global one, or a
    /// `metrics::with_local_recorder` scope). Useful in tests and for side-by-side
    /// registries.
    #[must_use]
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}

/// Builder for [`RedConfig`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedConfigBuilder {
    pub(crate) config: RedConfig,
}

impl RedConfigBuilder {
    /// The naming scheme. Defaults to [`Naming::OpenTelemetry`].
    pub fn naming(mut self, naming: Naming) -> Self {
        self.config.naming = naming;
        self
    }

    /// The cap on distinct label sets per metric; label sets beyond it are recorded
    /// with the route (or server address) `__overflow__` and counted in
    /// `telltale_metrics_label_overflow_total{metric}`. Defaults to
    /// [`DEFAULT_MAX_LABEL_SETS`] (2000).
    pub fn max_label_sets(mut self, cap: usize) -> Self {
        self.config.max_label_sets = cap;
        self
    }

    /// Histogram bucket boundaries in seconds. Defaults to [`SEMCONV_BUCKETS`]
    /// (0.005 … 10).
    pub fn buckets(mut self, buckets: &[f64]) -> Self {
        self.config.buckets = Arc::from(buckets);
        self
    }

    /// A prefix for every RED metric name: `myapp` (or `myapp_`) gives
    /// `myapp_http_server_request_duration_seconds`; `""` means none.
    /// Defaults to the process-wide prefix (`TELLTALE_METRICS_PREFIX`, see
    /// [`telltale_core::metric_name`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = Some(Arc::from(prefix.into()));
        self
    }

    /// The address of a standalone `/metrics` listener. Defaults to none.
    pub fn listen_addr(mut self, addr: SocketAddr) -> Self {
        self.config.listen_addr = Some(addr);
        self
    }

    /// See [`RedConfig::with_recorder`]. Defaults to the current recorder.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        self.config.recorder = Some(recorder);
        self
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<RedConfig, RedConfigError> {
        let c = &self.config;
        let b = &c.buckets;
        if b.is_empty() || b.iter().any(|v| !v.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RedConfigError::InvalidBuckets);
        }
        if c.max_label_sets == 0 {
            return Err(RedConfigError::ZeroCap);
        }
        if let Some(p) = &c.prefix {
            if !p.is_empty() && telltale_core::metric_name::parse_prefix(p).is_err() {
                return Err(RedConfigError::InvalidPrefix(p.to_string()));
            }
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert_eq!(
            RedConfig::builder().buckets(&[]).build().unwrap_err(),
            RedConfigError::InvalidBuckets
        );
        assert_eq!(
            RedConfig::builder()
                .buckets(&[1.0, 1.0])
                .build()
                .unwrap_err(),
            RedConfigError::InvalidBuckets
        );
        assert_eq!(
            RedConfig::builder().max_label_sets(0).build().unwrap_err(),
            RedConfigError::ZeroCap
        );
        assert!(matches!(
            RedConfig::builder().prefix("9x").build(),
            Err(RedConfigError::InvalidPrefix(_))
        ));
        assert_eq!(
            RedConfig::builder()
                .prefix("my_app")
                .build()
                .unwrap()
                .prefix(),
            Some("my_app")
        );
    }

    #[test]
    fn scheme_from_uri() {
        assert_eq!(
            Scheme::from_uri(&"https://a/b".parse().unwrap()),
            Scheme::Https
        );
        assert_eq!(Scheme::from_uri(&"/b".parse().unwrap()), Scheme::Http);
    }
}
