use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use telltale_core::config::{Env, EnvSource, parse_list_with};
use tower_layer::Layer;

use super::Server;
use crate::layer::attrs::{Capture, DEFAULT_REDACTED_QUERY_KEYS, IpNet, Redactor, header_names};
use crate::layer::error::BuildError;
use crate::metrics::{Kind, RedConfig, RedMetrics, Scheme};

/// Paths and gRPC methods whose spans are skipped by default (they are still
/// counted in the metrics): the usual health and readiness probes.
pub const DEFAULT_HEALTH_PATHS: &[&str] = &[
    "/health",
    "/healthz",
    "/livez",
    "/readyz",
    "/ready",
    "/live",
    "/ping",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

/// Comma-separated trusted proxies (addresses or networks such as `10.0.0.0/8`)
/// whose `Forwarded`/`X-Forwarded-For` headers are believed.
pub const TRUSTED_PROXIES_VAR: &str = "TELLTALE_HTTP_TRUSTED_PROXIES";
/// Comma-separated query keys whose values are redacted (replaces the default list).
pub const REDACTED_QUERY_KEYS_VAR: &str = "TELLTALE_HTTP_REDACTED_QUERY_KEYS";
/// Comma-separated request headers recorded as `http.request.header.<name>`.
pub const CAPTURE_REQUEST_HEADERS_VAR: &str = "TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS";
/// Comma-separated response headers recorded as `http.response.header.<name>`.
pub const CAPTURE_RESPONSE_HEADERS_VAR: &str = "TELLTALE_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS";
/// Boolean: treat every route as a public endpoint (new root trace, link to the
/// incoming context).
pub const PUBLIC_ENDPOINT_VAR: &str = "TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT";
/// Comma-separated routes (templates) or paths that are public endpoints.
pub const PUBLIC_ROUTES_VAR: &str = "TELLTALE_HTTP_SERVER_PUBLIC_ROUTES";
/// Comma-separated routes (templates) or paths whose spans are skipped.
pub const SKIP_TRACING_VAR: &str = "TELLTALE_HTTP_SERVER_SKIP_TRACING";
/// Boolean: trace health checks too (off by default).
pub const TRACE_HEALTH_CHECKS_VAR: &str = "TELLTALE_HTTP_SERVER_TRACE_HEALTH_CHECKS";

/// What the server layer prepared once and shares with every request.
pub(crate) struct Shared {
    pub(crate) scheme: Option<Scheme>,
    pub(crate) redactor: Redactor,
    pub(crate) trusted: Box<[IpNet]>,
    pub(crate) request_headers: Capture,
    /// Shared with response futures that capture response headers.
    pub(crate) response_headers: Arc<Capture>,
    pub(crate) public_all: bool,
    pub(crate) public: Box<[Box<str>]>,
    pub(crate) skip: Box<[Box<str>]>,
    pub(crate) tracing: bool,
    pub(crate) http_metrics: Option<RedMetrics>,
    pub(crate) rpc_metrics: Option<RedMetrics>,
    pub(crate) grpc_services: Option<Box<[Box<str>]>>,
}

impl Shared {
    /// Whether the request's span is skipped: a configured path or route.
    pub(crate) fn skips(&self, path: &str, route: Option<&str>) -> bool {
        self.skip
            .iter()
            .any(|s| &**s == path || route.is_some_and(|r| r == &**s))
    }

    pub(crate) fn is_public(&self, path: &str, route: Option<&str>) -> bool {
        self.public_all
            || self
                .public
                .iter()
                .any(|s| &**s == path || route.is_some_and(|r| r == &**s))
    }

    pub(crate) fn grpc_service_allowed(&self, service: &str) -> bool {
        self.grpc_services
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| &**s == service))
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("scheme", &self.scheme)
            .field("redactor", &self.redactor)
            .field("trusted_proxies", &self.trusted)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("public_endpoint", &self.public_all)
            .field("public_routes", &self.public)
            .field("skip_tracing", &self.skip)
            .field("tracing", &self.tracing)
            .field("http_metrics", &self.http_metrics)
            .field("rpc_metrics", &self.rpc_metrics)
            .field("grpc_services", &self.grpc_services)
            .finish()
    }
}

/// The server request layer: one record per request feeding the SERVER span and
/// the RED metrics. See the [module docs](super).
#[derive(Clone)]
pub struct ServerLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl Default for ServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerLayer {
    /// A layer with the defaults: spans and metrics on, health checks not
    /// traced, default redacted query keys, no trusted proxies, no captured
    /// headers. Reads no environment variable.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to configure the layer.
    pub fn builder() -> ServerLayerBuilder {
        ServerLayerBuilder::default()
    }

    /// A layer configured from the process environment (see the `*_VAR` constants
    /// of this module and [`RedConfig::from_env`]).
    pub fn from_env() -> Result<Self, BuildError> {
        Self::from_env_source(&Env::process())
    }

    /// A layer configured from `env`.
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, BuildError> {
        ServerLayerBuilder::default().env(env)?.build()
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = Server<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Server {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`ServerLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerLayerBuilder {
    scheme: Option<Scheme>,
    redacted_keys: Vec<String>,
    trusted: Vec<String>,
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    public_all: bool,
    public: Vec<String>,
    skip: Vec<String>,
    trace_health_checks: bool,
    tracing: bool,
    metrics: bool,
    red_config: RedConfig,
    grpc_services: Option<Vec<String>>,
}

impl Default for ServerLayerBuilder {
    fn default() -> Self {
        ServerLayerBuilder {
            scheme: None,
            redacted_keys: DEFAULT_REDACTED_QUERY_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            trusted: Vec::new(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            public_all: false,
            public: Vec::new(),
            skip: Vec::new(),
            trace_health_checks: false,
            tracing: true,
            metrics: true,
            red_config: RedConfig::default(),
            grpc_services: None,
        }
    }
}

impl ServerLayerBuilder {
    /// The `url.scheme` of requests (a server behind TLS termination cannot see
    /// it). Defaults to the request URI's scheme, else `http`.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// Query keys (case-insensitive) whose values are replaced by `REDACTED` in
    /// `url.query`; replaces the list. Defaults to
    /// [`DEFAULT_REDACTED_QUERY_KEYS`](crate::layer::DEFAULT_REDACTED_QUERY_KEYS).
    pub fn redacted_query_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.redacted_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one query key to redact. Defaults to the default list only.
    pub fn redact_query_key(mut self, key: impl Into<String>) -> Self {
        self.redacted_keys.push(key.into());
        self
    }

    /// Proxies (addresses or networks like `10.0.0.0/8`) whose `Forwarded` and
    /// `X-Forwarded-For` headers are believed for `client.address`; invalid ones
    /// fail [`build`](Self::build). Defaults to none: the peer address is used.
    pub fn trusted_proxies<I, P>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.trusted = proxies.into_iter().map(Into::into).collect();
        self
    }

    /// Request headers recorded as `http.request.header.<name>` (opt-in: they
    /// may hold personal data). Defaults to none.
    pub fn capture_request_headers<I, H>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        self.request_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Response headers recorded as `http.response.header.<name>`. Defaults to none.
    pub fn capture_response_headers<I, H>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        self.response_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Treats every route as a public endpoint: an incoming `traceparent` starts
    /// a new root trace with a link to the caller's context instead of
    /// continuing it. Defaults to `false` (incoming context is continued).
    pub fn public_endpoint(mut self, public: bool) -> Self {
        self.public_all = public;
        self
    }

    /// Marks one route template (`/webhooks/{id}`) or exact path as a public
    /// endpoint (see [`public_endpoint`](Self::public_endpoint)). Defaults to none.
    pub fn public_route(mut self, route: impl Into<String>) -> Self {
        self.public.push(route.into());
        self
    }

    /// Skips the span (but still counts the metrics) for a route template or an
    /// exact path. Defaults to none besides the health checks.
    pub fn skip_tracing(mut self, route_or_path: impl Into<String>) -> Self {
        self.skip.push(route_or_path.into());
        self
    }

    /// Whether health checks ([`DEFAULT_HEALTH_PATHS`]) get spans. Their metrics
    /// are counted either way. Defaults to `false`.
    pub fn trace_health_checks(mut self, trace: bool) -> Self {
        self.trace_health_checks = trace;
        self
    }

    /// Whether spans are produced at all. Defaults to `true`.
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    /// Whether RED metrics are recorded. Defaults to `true`.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// The metrics configuration (naming, cardinality cap, buckets, recorder).
    /// Defaults to [`RedConfig::default`].
    pub fn red_config(mut self, config: RedConfig) -> Self {
        self.red_config = config;
        self
    }

    /// Restricts gRPC routes (and so `rpc.service`/`rpc.method` and the route
    /// label) to these fully-qualified services (`grpc.health.v1.Health`); calls
    /// to other services get no route. Defaults to every well-formed gRPC path,
    /// bounded by the metrics' cardinality cap.
    pub fn grpc_services<I, N>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.grpc_services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Applies the variables set in `env` over this builder's settings; the
    /// metrics configuration is replaced by [`RedConfig::from_env_source`] (set
    /// a recorder with [`red_config`](Self::red_config) after this call).
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        if let Some(v) = env.parse(TRUSTED_PROXIES_VAR, |s| {
            parse_list_with(s, |item| Ok(item.to_owned()))
        })? {
            self.trusted = v;
        }
        if let Some(v) = env.list(REDACTED_QUERY_KEYS_VAR)? {
            self.redacted_keys = v;
        }
        if let Some(v) = env.list(CAPTURE_REQUEST_HEADERS_VAR)? {
            self.request_headers = v;
        }
        if let Some(v) = env.list(CAPTURE_RESPONSE_HEADERS_VAR)? {
            self.response_headers = v;
        }
        if let Some(v) = env.boolean(PUBLIC_ENDPOINT_VAR)? {
            self.public_all = v;
        }
        if let Some(v) = env.list(PUBLIC_ROUTES_VAR)? {
            self.public = v;
        }
        if let Some(v) = env.list(SKIP_TRACING_VAR)? {
            self.skip = v;
        }
        if let Some(v) = env.boolean(TRACE_HEALTH_CHECKS_VAR)? {
            self.trace_health_checks = v;
        }
        self.red_config = RedConfig::from_env_source(env)?;
        Ok(self)
    }

    /// Builds the layer; fails on an invalid trusted proxy or header name.
    pub fn build(self) -> Result<ServerLayer, BuildError> {
        let trusted = self
            .trusted
            .iter()
            .map(|p| p.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()?;
        let request: Vec<HeaderName> =
            header_names(&self.request_headers).map_err(BuildError::HeaderName)?;
        let response: Vec<HeaderName> =
            header_names(&self.response_headers).map_err(BuildError::HeaderName)?;
        let mut skip: Vec<Box<str>> = self.skip.into_iter().map(Into::into).collect();
        if !self.trace_health_checks {
            skip.extend(DEFAULT_HEALTH_PATHS.iter().map(|p| Box::<str>::from(*p)));
        }
        let (http_metrics, rpc_metrics) = if self.metrics {
            (
                Some(RedMetrics::new(Kind::HttpServer, &self.red_config)),
                Some(RedMetrics::new(Kind::RpcServer, &self.red_config)),
            )
        } else {
            (None, None)
        };
        Ok(ServerLayer {
            shared: Arc::new(Shared {
                scheme: self.scheme,
                redactor: Redactor::new(&self.redacted_keys),
                trusted: trusted.into(),
                request_headers: Capture::new("http.request.header.", &request),
                response_headers: Arc::new(Capture::new("http.response.header.", &response)),
                public_all: self.public_all,
                public: self.public.into_iter().map(Into::into).collect(),
                skip: skip.into(),
                tracing: self.tracing,
                http_metrics,
                rpc_metrics,
                grpc_services: self
                    .grpc_services
                    .map(|v| v.into_iter().map(Into::into).collect()),
            }),
        })
    }
}
