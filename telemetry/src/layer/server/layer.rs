use std::fmt;
use std::sync::Arc;

use telltale_core::config::{Env, EnvSource};
use tower_layer::Layer;

use super::ServerTelemetryService;
use super::env::{
    CAPTURE_REQUEST_HEADERS, CAPTURE_RESPONSE_HEADERS, GRPC_SERVICES, PUBLIC_ENDPOINT,
    PUBLIC_ROUTES, REQUEST_LOG, REQUEST_LOG_SUCCESS_SAMPLE, SKIP_TRACING, TRACE_HEALTH_CHECKS,
    TRUSTED_PROXIES,
};
use crate::layer::attrs::IpNet;
use crate::layer::error::BuildError;
use crate::layer::request_log::{RequestLog, RequestLogger, parse_mode};
use crate::layer::settings::{Common, Settings, common_setters, layer_common};
use crate::metrics::{Kind, Scheme};

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

/// What the server layer prepared once and shares with every request.
pub(crate) struct Shared {
    pub(crate) common: Common,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) trusted: Box<[IpNet]>,
    pub(crate) public_all: bool,
    pub(crate) public: Box<[Box<str>]>,
    pub(crate) skip: Box<[Box<str>]>,
    pub(crate) grpc_services: Option<Box<[Box<str>]>>,
    /// The request log line; `None` when off.
    pub(crate) request_log: Option<Arc<RequestLogger>>,
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

    /// Whether the allow-list holds `service`; `None` without an allow-list.
    pub(crate) fn grpc_service_allowed(&self, service: &str) -> Option<bool> {
        self.grpc_services
            .as_ref()
            .map(|list| list.iter().any(|s| &**s == service))
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerTelemetryLayer");
        self.common.debug_fields(&mut d);
        d.field("scheme", &self.scheme)
            .field("trusted_proxies", &self.trusted)
            .field("public_endpoint", &self.public_all)
            .field("public_routes", &self.public)
            .field("skip_tracing", &self.skip)
            .field("grpc_services", &self.grpc_services)
            .field("request_log", &self.request_log)
            .finish()
    }
}

/// The server request layer: one record per request feeding the SERVER span and
/// the RED metrics. See the [module docs](super).
#[derive(Clone)]
pub struct ServerTelemetryLayer {
    pub(crate) shared: Arc<Shared>,
}

layer_common!(
    ServerTelemetryLayer,
    ServerTelemetryLayerBuilder,
    ServerTelemetryService,
    "A layer with the defaults: spans and metrics on, health checks not traced, default redacted query keys, no trusted proxies, no captured headers, no request log line (the presets turn it on). Reads no environment variable."
);

/// Builds a [`ServerTelemetryLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerTelemetryLayerBuilder {
    request_log: RequestLog,
    request_log_success_sample: f64,
    settings: Settings,
    scheme: Option<Scheme>,
    trusted: Vec<String>,
    public_all: bool,
    public: Vec<String>,
    skip: Vec<String>,
    trace_health_checks: bool,
    grpc_services: Option<Vec<String>>,
}

impl Default for ServerTelemetryLayerBuilder {
    fn default() -> Self {
        ServerTelemetryLayerBuilder {
            request_log: RequestLog::Off,
            request_log_success_sample: 1.0,
            settings: Settings::default(),
            scheme: None,
            trusted: Vec::new(),
            public_all: false,
            public: Vec::new(),
            skip: Vec::new(),
            trace_health_checks: false,
            grpc_services: None,
        }
    }
}

impl ServerTelemetryLayerBuilder {
    common_setters!("url.query");

    /// Which finished requests get a log line (see
    /// [`request_log`](crate::layer::request_log)); `TELLTALE_REQUEST_LOG`
    /// sets it from the environment. Defaults to [`RequestLog::Off`]; the
    /// presets (`telltale::ServerStack`) turn it [`On`](RequestLog::On).
    pub fn request_log(mut self, log: RequestLog) -> Self {
        self.request_log = log;
        self
    }

    /// The fraction of successful requests (status below 400, no
    /// `error.type`) that get a log line, `0.0` to `1.0` (clamped), exactly
    /// spread; failures are always logged. `TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE`
    /// sets it from the environment (`0.1` or `10%`). Defaults to `1.0`.
    pub fn request_log_success_sample(mut self, ratio: f64) -> Self {
        self.request_log_success_sample = ratio;
        self
    }

    /// The `url.scheme` of requests (a server behind TLS termination cannot see
    /// it). Defaults to the request URI's scheme, else `http`.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// Adds one query key to redact. Defaults to the default list only.
    pub fn redact_query_key(mut self, key: impl Into<String>) -> Self {
        self.settings.redacted_keys.push(key.into());
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

    /// The fully-qualified gRPC services (`grpc.health.v1.Health`) whose paths
    /// are routes (the route label, `http.route`, `rpc.service`/`rpc.method`);
    /// calls to other services get no route unless the router matched them
    /// (axum's `MatchedPath`). Without a list (the default), a gRPC path becomes
    /// a route only when the router matched it or the response shows that the
    /// server knew the method (a gRPC response that is neither `UNIMPLEMENTED`
    /// nor a rejection), as tonic's router answers: unknown paths sent by
    /// clients never become labels.
    pub fn grpc_services<I, N>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.grpc_services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Applies the variables set in `env` ([`env::VARS`](super::env::VARS) and
    /// [`metrics::env::VARS`](crate::metrics::env::VARS)) over this builder's
    /// settings; unset variables keep them.
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        self.settings
            .env(env, CAPTURE_REQUEST_HEADERS, CAPTURE_RESPONSE_HEADERS)?;
        if let Some(v) = env.parse(TRUSTED_PROXIES, |s| {
            crate::layer::settings::parse_bounded_list(s, |item| {
                item.parse::<IpNet>().map(|_| item.to_owned()).map_err(|_| {
                    telltale_core::ParseError::new(
                        1,
                        "an IP address or network such as 10.0.0.0/8 or ::1",
                    )
                })
            })
        })? {
            self.trusted = v;
        }
        if let Some(v) = env.boolean(PUBLIC_ENDPOINT)? {
            self.public_all = v;
        }
        if let Some(v) = env.parse(PUBLIC_ROUTES, parse_routes)? {
            self.public = v;
        }
        if let Some(v) = env.parse(SKIP_TRACING, parse_routes)? {
            self.skip = v;
        }
        if let Some(v) = env.boolean(TRACE_HEALTH_CHECKS)? {
            self.trace_health_checks = v;
        }
        if let Some(v) = env.parse(GRPC_SERVICES, parse_grpc_services)? {
            self.grpc_services = Some(v);
        }
        if let Some(v) = env.parse(REQUEST_LOG, parse_mode)? {
            self.request_log = v;
        }
        if let Some(v) = env.percentage(REQUEST_LOG_SUCCESS_SAMPLE)? {
            self.request_log_success_sample = v;
        }
        Ok(self)
    }

    /// Builds the layer; fails on an invalid trusted proxy or header name.
    pub fn build(self) -> Result<ServerTelemetryLayer, BuildError> {
        let trusted = self
            .trusted
            .iter()
            .map(|p| p.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()?;
        let common = self.settings.build((Kind::HttpServer, Kind::RpcServer))?;
        let mut skip: Vec<Box<str>> = self.skip.into_iter().map(Into::into).collect();
        if !self.trace_health_checks {
            skip.extend(DEFAULT_HEALTH_PATHS.iter().map(|p| Box::<str>::from(*p)));
        }
        Ok(ServerTelemetryLayer {
            shared: Arc::new(Shared {
                common,
                scheme: self.scheme,
                trusted: trusted.into(),
                public_all: self.public_all,
                public: self.public.into_iter().map(Into::into).collect(),
                skip: skip.into(),
                grpc_services: self
                    .grpc_services
                    .map(|v| v.into_iter().map(Into::into).collect()),
                request_log: RequestLogger::new(self.request_log, self.request_log_success_sample),
            }),
        })
    }
}

/// Longest service name in `TELLTALE_HTTP_SERVER_GRPC_SERVICES`, in bytes.
const MAX_GRPC_SERVICE_LEN: usize = 256;

/// Fully-qualified gRPC service names (`pkg.Service`): dot-separated
/// identifiers of ASCII letters, digits and `_`, at most
/// [`MAX_GRPC_SERVICE_LEN`] bytes.
fn parse_grpc_services(s: &str) -> Result<Vec<String>, telltale_core::ParseError> {
    const EXPECTED: &str = "a gRPC service such as pkg.Service (letters, digits, `_`, dots)";
    crate::layer::settings::parse_bounded_list(s, |item| {
        if item.len() > MAX_GRPC_SERVICE_LEN {
            return Err(telltale_core::ParseError::new(
                MAX_GRPC_SERVICE_LEN + 1,
                format!("a service name of at most {MAX_GRPC_SERVICE_LEN} bytes"),
            ));
        }
        let mut start = true;
        for (i, c) in item.chars().enumerate() {
            let ok = if c == '.' {
                !start
            } else {
                c.is_ascii_alphanumeric() || c == '_'
            };
            if !ok {
                return Err(telltale_core::ParseError::new(i + 1, EXPECTED));
            }
            start = c == '.';
        }
        if start {
            return Err(telltale_core::ParseError::new(
                item.chars().count() + 1,
                EXPECTED,
            ));
        }
        Ok(item.to_owned())
    })
}

/// Longest route in `TELLTALE_HTTP_SERVER_PUBLIC_ROUTES` and
/// `TELLTALE_HTTP_SERVER_SKIP_TRACING`, in bytes.
const MAX_ROUTE_LEN: usize = 1024;

/// Routes (templates such as `/users/{id}`) or paths: each starts with `/`
/// (a route that does not could never match), at most [`MAX_ROUTE_LEN`]
/// bytes of visible ASCII.
fn parse_routes(s: &str) -> Result<Vec<String>, telltale_core::ParseError> {
    crate::layer::settings::parse_bounded_list(s, |item| {
        if !item.starts_with('/') {
            return Err(telltale_core::ParseError::new(
                1,
                "a route or path starting with `/` (such as /health or /users/{id})",
            ));
        }
        if let Some((i, _)) = item.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(telltale_core::ParseError::new(
                item[..i].chars().count() + 1,
                "a route of visible ASCII characters (percent-encode the rest)",
            ));
        }
        if item.len() > MAX_ROUTE_LEN {
            return Err(telltale_core::ParseError::new(
                MAX_ROUTE_LEN + 1,
                format!("a route of at most {MAX_ROUTE_LEN} bytes"),
            ));
        }
        Ok(item.to_owned())
    })
}
