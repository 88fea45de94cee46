use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use telltale_core::grpc::{is_grpc, split_path};
use telltale_core::http::known_method;
use telltale_core::{CorrelationId, Side};
use tower_service::Service;
use tracing::Span;
use tracing::field::{Empty, Field, Value, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::layer::Shared;
use super::{ResponseBody, ResponseFuture};
use crate::layer::attrs::{client_address, protocol_version, server_host};
use crate::layer::limits::cap;
use crate::layer::names;
use crate::layer::propagation;
use crate::layer::record::{RequestSpan, Route};
use crate::layer::settings::telemetry_service;
use crate::metrics::Scheme;
use crate::sampling::{self, Early, Parent};

/// The service built by [`ServerTelemetryLayer`](super::ServerTelemetryLayer).
#[derive(Clone)]
pub struct ServerTelemetryService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for ServerTelemetryService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTelemetryService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> ServerTelemetryService<S> {
    telltale_core::inner_service_accessors!();
}

/// The route of a request. A gRPC path is a client's choice: it becomes a
/// route (label, `http.route`, `rpc.*`) only when something vouches for it:
/// the router matched it (axum's `MatchedPath`), its service is allow-listed,
/// or (no allow-list) the response shows that the server knew the method.
fn route_of<B>(shared: &Shared, req: &Request<B>, grpc: bool) -> Route {
    #[cfg(feature = "axum")]
    if let Some(matched) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Route::Matched(matched.clone());
    }
    if grpc && let Some((service, _)) = split_path(req.uri().path()) {
        return match shared.grpc_service_allowed(service) {
            Some(true) => Route::Grpc(req.uri().clone()),
            Some(false) => Route::None,
            None => Route::Unvouched(req.uri().clone()),
        };
    }
    Route::None
}

fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    req.extensions().get::<SocketAddr>().map(SocketAddr::ip)
}

/// The request span's fields, looked up once: the span is created with every
/// field empty and filled with one `record_all` once the sampler has kept it.
struct SpanFields {
    method: Field,
    method_original: Field,
    path: Field,
    scheme: Field,
    query: Field,
    route: Field,
    protocol: Field,
    server_address: Field,
    server_port: Field,
    client_address: Field,
    user_agent: Field,
    correlation: Field,
    rpc_system: Field,
    rpc_service: Field,
    rpc_method: Field,
}

impl SpanFields {
    fn of(span: &Span) -> Option<&'static SpanFields> {
        static FIELDS: OnceLock<Option<SpanFields>> = OnceLock::new();
        FIELDS
            .get_or_init(|| {
                let set = span.metadata()?.fields();
                Some(SpanFields {
                    method: set.field("http.request.method")?,
                    method_original: set.field("http.request.method_original")?,
                    path: set.field("url.path")?,
                    scheme: set.field("url.scheme")?,
                    query: set.field("url.query")?,
                    route: set.field("http.route")?,
                    protocol: set.field("network.protocol.version")?,
                    server_address: set.field("server.address")?,
                    server_port: set.field("server.port")?,
                    client_address: set.field("client.address")?,
                    user_agent: set.field("user_agent.original")?,
                    correlation: set.field("correlation_id")?,
                    rpc_system: set.field("rpc.system")?,
                    rpc_service: set.field("rpc.service")?,
                    rpc_method: set.field("rpc.method")?,
                })
            })
            .as_ref()
    }
}

/// The request's span.
///
/// The sampler decides before anything is built when the subscriber carries
/// a [`SamplerLayer`](crate::sampling::SamplerLayer) (telltale's pipeline
/// adds one): a dropped request gets no tracing span, only an OpenTelemetry
/// context with its trace ID (see [`sampling`](crate::sampling)); a kept one
/// gets its fields before its OpenTelemetry span starts.
///
/// Otherwise the span is created with its fields empty and its
/// OpenTelemetry span is started at once, so the SDK's sampler decides
/// before any attribute is converted; a span it drops keeps its IDs and
/// records nothing. Only a recording span gets the request's attributes, in
/// one `record_all`. With no OpenTelemetry layer in the subscriber (the span
/// has no valid trace ID), the fields are recorded for the log formatters.
fn make_span<B>(shared: &Shared, req: &Request<B>, route: Option<&str>, grpc: bool) -> RequestSpan {
    let path = req.uri().path();
    let remote = propagation::extract(req.headers());
    let public = remote.is_some() && shared.is_public(path, route);
    let parent = match &remote {
        Some(cx) if !public => Parent::Remote(cx),
        Some(_) => Parent::Root,
        None => Parent::Contextual,
    };
    // Held until the OpenTelemetry span has started (it presets the SDK's
    // trace ID for a kept new trace).
    let kept = match sampling::decide_server(parent) {
        Some(Early::Dropped(context)) => {
            return RequestSpan {
                span: Span::none(),
                recording: false,
                context: Some(context),
            };
        }
        Some(Early::Kept(keep)) => Some(keep),
        None => None,
    };
    let span = tracing::info_span!(
        target: "telltale::server",
        "HTTP request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = Empty,
        http.request.method_original = Empty,
        url.path = Empty,
        url.scheme = Empty,
        url.query = Empty,
        http.route = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
        network.protocol.version = Empty,
        server.address = Empty,
        server.port = Empty,
        client.address = Empty,
        user_agent.original = Empty,
        correlation_id = Empty,
        rpc.system = Empty,
        rpc.service = Empty,
        rpc.method = Empty,
        rpc.grpc.status_code = Empty,
        resilience.rejected = Empty,
        resilience.circuit_breaker.name = Empty,
        resilience.circuit_breaker.state = Empty,
        resilience.circuit_breaker.retry_after_ms = Empty,
        resilience.bulkhead.name = Empty,
        resilience.bulkhead.waited_ms = Empty,
    );
    if span.is_disabled() {
        return RequestSpan::traced(span);
    }
    if let Some(cx) = remote {
        if public {
            let _ = span.set_parent(opentelemetry::Context::new());
            span.add_link(cx.span().span_context().clone());
        } else {
            let _ = span.set_parent(cx);
        }
    }
    // Kept by the early decision: the fields are recorded before the
    // OpenTelemetry span starts, so the bridge adds them to its span builder
    // (one vector extended) rather than to a started span (a lock and a call
    // per attribute).
    let early_name = kept
        .is_some()
        .then(|| record_request(shared, req, route, grpc, &span));
    // Starts the OpenTelemetry span: the SDK's sampler decides here.
    let cx = span.context();
    let otel = cx.span();
    if otel.span_context().is_valid() && !otel.is_recording() {
        return RequestSpan {
            span,
            recording: false,
            context: None,
        };
    }
    let name = early_name.unwrap_or_else(|| record_request(shared, req, route, grpc, &span));
    // The route's name; a started OpenTelemetry span ignores a recorded
    // `otel.name`.
    otel.update_name(name);
    shared
        .common
        .request_headers
        .record_on(&otel, req.headers());
    RequestSpan::traced(span)
}

/// `a`, `sep` and `b` in one string, allocated once at its length
/// (`format!` grows its buffer from empty).
fn joined(a: &str, sep: char, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + sep.len_utf8() + b.len());
    out.push_str(a);
    out.push(sep);
    out.push_str(b);
    out
}

/// Records the request's attributes on a span the sampler kept, and returns
/// the span's name (`GET /users/{id}`).
fn record_request<B>(
    shared: &Shared,
    req: &Request<B>,
    route: Option<&str>,
    grpc: bool,
    span: &Span,
) -> Cow<'static, str> {
    let method = req.method();
    let known = known_method(method);
    let uri = req.uri();
    let path = uri.path();
    let rpc = if grpc { split_path(path) } else { None };
    // Kept per route (see `layer::names`): a route's name is joined once.
    let name: Cow<'static, str> = match (rpc, known, route) {
        (Some((service, m)), _, Some(r)) if r == path => {
            names::name("", r, || joined(service, '/', m))
        }
        (Some((service, m)), _, Some(_)) => Cow::Owned(joined(service, '/', m)),
        (_, Some(m), Some(r)) => names::name(m, r, || joined(m, ' ', r)),
        (_, Some(m), None) => Cow::Borrowed(m),
        (_, None, _) => Cow::Borrowed("HTTP"),
    };
    let Some(f) = SpanFields::of(span) else {
        return name;
    };
    let scheme = shared.scheme.unwrap_or_else(|| Scheme::from_uri(uri));
    let query = uri.query().map(|q| shared.common.redactor.redact(q));
    let (host, port) = server_host(uri, req.headers());
    let client = client_address(peer_ip(req), req.headers(), &shared.trusted);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    // What the client sent is capped: one hostile request must not make
    // its span huge (see `layer::limits`).
    let max = shared.common.max_attribute_len;
    let host = host.map(|h| cap(h, max));
    let correlation = req
        .extensions()
        .get::<CorrelationId>()
        .cloned()
        .or_else(telltale_core::correlation::current);
    let (rpc_service, rpc_method) = match rpc {
        Some((s, m)) if route.is_some() => (Some(s), Some(m)),
        _ => (None, None),
    };
    let method_original = known.is_none().then(|| cap(method.as_str(), max));
    let path = cap(path, max);
    let query = query.as_deref().map(|q| cap(q, max));
    let user_agent = user_agent.map(|u| cap(u, max));
    let client = client.map(display);
    let correlation = correlation.as_ref().map(CorrelationId::as_str);
    let port = port.map(i64::from);
    let values: [(&Field, Option<&dyn Value>); 15] = [
        (&f.method, Some(&known.unwrap_or("_OTHER"))),
        (&f.method_original, Some(&method_original)),
        (&f.path, Some(&path)),
        (&f.scheme, Some(&scheme.as_str())),
        (&f.query, Some(&query)),
        (&f.route, Some(&route)),
        (&f.protocol, Some(&protocol_version(req.version()))),
        (&f.server_address, Some(&host)),
        (&f.server_port, Some(&port)),
        (&f.client_address, Some(&client)),
        (&f.user_agent, Some(&user_agent)),
        (&f.correlation, Some(&correlation)),
        (&f.rpc_system, Some(&rpc_service.map(|_| "grpc"))),
        (&f.rpc_service, Some(&rpc_service)),
        (&f.rpc_method, Some(&rpc_method)),
    ];
    if let Some(meta) = span.metadata() {
        span.record_all(&meta.fields().value_set(&values));
    }
    name
}

telemetry_service!(ServerTelemetryService);

impl<S> ServerTelemetryService<S> {
    fn respond<ReqBody, ResBody>(&mut self, req: Request<ReqBody>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let shared = &*self.shared;
        let grpc = is_grpc(req.headers());
        let route = route_of(shared, &req, grpc);
        let skipped = shared.skips(req.uri().path(), route.as_str());
        let traced = shared.common.tracing && !skipped;
        let in_flight = shared.common.metrics(grpc).map(|m| {
            let scheme = shared.scheme.unwrap_or_else(|| Scheme::from_uri(req.uri()));
            m.start(req.method(), scheme)
        });
        let span = if traced {
            make_span(shared, &req, route.as_str(), grpc)
        } else {
            RequestSpan::none()
        };
        let capture = shared.common.capture();
        // Health checks and skipped routes get no line, as they get no span.
        let log = shared
            .request_log
            .as_ref()
            .filter(|_| !skipped)
            .map(|logger| {
                logger.start(req.method(), &span.span, in_flight.is_some(), || {
                    req.extensions()
                        .get::<CorrelationId>()
                        .cloned()
                        .or_else(telltale_core::correlation::current)
                })
            });
        let inner = &mut self.inner;
        ResponseFuture::start(span, in_flight, route, Side::Server, capture, log, || {
            inner.call(req)
        })
    }
}
