use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use telltale_core::grpc::{is_grpc, split_path};
use telltale_core::http::known_method;
use telltale_core::{CorrelationId, Side};
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::layer::Shared;
use super::{ResponseBody, ResponseFuture};
use crate::layer::attrs::{client_address, protocol_version, server_host};
use crate::layer::limits::cap;
use crate::layer::propagation;
use crate::layer::record::Route;
use crate::layer::settings::telemetry_service;
use crate::metrics::Scheme;

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

fn make_span<B>(shared: &Shared, req: &Request<B>, route: Option<&str>, grpc: bool) -> Span {
    let method = req.method();
    let known = known_method(method);
    let uri = req.uri();
    let path = uri.path();
    let rpc = if grpc { split_path(path) } else { None };
    let name: Cow<'_, str> = match (rpc, known, route) {
        (Some((service, m)), _, Some(_)) => Cow::Owned(format!("{service}/{m}")),
        (_, Some(m), Some(r)) => Cow::Owned(format!("{m} {r}")),
        (_, Some(m), None) => Cow::Borrowed(m),
        (_, None, _) => Cow::Borrowed("HTTP"),
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
    let span = tracing::info_span!(
        target: "telltale::server",
        "HTTP request",
        otel.name = &*name,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = known.unwrap_or("_OTHER"),
        http.request.method_original = known.is_none().then(|| cap(method.as_str(), max)),
        url.path = cap(path, max),
        url.scheme = scheme.as_str(),
        url.query = query.as_deref().map(|q| cap(q, max)),
        http.route = route,
        http.response.status_code = Empty,
        error.type = Empty,
        network.protocol.version = protocol_version(req.version()),
        server.address = host,
        server.port = port.map(i64::from),
        client.address = client.map(display),
        user_agent.original = user_agent.map(|u| cap(u, max)),
        correlation_id = correlation.as_ref().map(CorrelationId::as_str),
        rpc.system = rpc_service.map(|_| "grpc"),
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        rpc.grpc.status_code = Empty,
        resilience.rejected = Empty,
        resilience.circuit_breaker.name = Empty,
        resilience.circuit_breaker.state = Empty,
        resilience.circuit_breaker.retry_after_ms = Empty,
        resilience.bulkhead.name = Empty,
        resilience.bulkhead.waited_ms = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(cx) = propagation::extract(req.headers()) {
        if shared.is_public(path, route) {
            let _ = span.set_parent(opentelemetry::Context::new());
            span.add_link(cx.span().span_context().clone());
        } else {
            let _ = span.set_parent(cx);
        }
    }
    shared.common.request_headers.record(&span, req.headers());
    span
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
            Span::none()
        };
        let capture = shared.common.capture();
        // Health checks and skipped routes get no line, as they get no span.
        let log = shared
            .request_log
            .as_ref()
            .filter(|_| !skipped)
            .map(|logger| {
                logger.start(req.method(), &span, || {
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
