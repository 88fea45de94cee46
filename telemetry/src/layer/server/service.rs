use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use telltale_core::{CorrelationId, Side};
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::layer::Shared;
use super::{ResponseBody, ResponseFuture};
use crate::layer::attrs::{client_address, known_method, protocol_version, server_host};
use crate::layer::propagation;
use crate::layer::record::{Record, Route};
use crate::metrics::Scheme;

/// The service built by [`ServerLayer`](super::ServerLayer).
#[derive(Clone)]
pub struct Server<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> Server<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Whether a request is a gRPC call (by its content type).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Splits a gRPC path `/pkg.Service/Method` into service and method.
pub(crate) fn grpc_parts(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (ok(service) && ok(method)).then_some((service, method))
}

fn route_of<B>(shared: &Shared, req: &Request<B>, grpc: bool) -> Route {
    if grpc {
        if let Some((service, _)) = grpc_parts(req.uri().path())
            && shared.grpc_service_allowed(service)
        {
            return Route::Grpc(req.uri().clone());
        }
        return Route::None;
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Route::Matched(matched.clone());
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
    let rpc = if grpc { grpc_parts(path) } else { None };
    let name: Cow<'_, str> = match (rpc, known, route) {
        (Some((service, m)), _, Some(_)) => Cow::Owned(format!("{service}/{m}")),
        (_, Some(m), Some(r)) => Cow::Owned(format!("{m} {r}")),
        (_, Some(m), None) => Cow::Borrowed(m),
        (_, None, _) => Cow::Borrowed("HTTP"),
    };
    let scheme = shared.scheme.unwrap_or_else(|| Scheme::from_uri(uri));
    let query = uri.query().map(|q| shared.redactor.redact(q));
    let (host, port) = server_host(uri, req.headers());
    let client = client_address(peer_ip(req), req.headers(), &shared.trusted);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
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
        http.request.method_original = known.is_none().then(|| method.as_str()),
        url.path = path,
        url.scheme = scheme.as_str(),
        url.query = query.as_deref(),
        http.route = route,
        http.response.status_code = Empty,
        error.type = Empty,
        network.protocol.version = protocol_version(req.version()),
        server.address = host,
        server.port = port.map(i64::from),
        client.address = client.map(display),
        user_agent.original = user_agent,
        correlation_id = correlation.as_ref().map(CorrelationId::as_str),
        rpc.system = rpc_service.map(|_| "grpc"),
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        rpc.grpc.status_code = Empty,
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
    if !shared.request_headers.is_empty() {
        for kv in shared.request_headers.attributes(req.headers()) {
            span.set_attribute(kv.key, kv.value);
        }
    }
    span
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Server<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display + 'static,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let grpc = is_grpc(&req);
        let route = route_of(shared, &req, grpc);
        let traced = shared.tracing && !shared.skips(req.uri().path(), route.as_str());
        let metrics = if grpc {
            shared.rpc_metrics.as_ref()
        } else {
            shared.http_metrics.as_ref()
        };
        let in_flight = metrics.map(|m| {
            let scheme = shared.scheme.unwrap_or_else(|| Scheme::from_uri(req.uri()));
            m.start(req.method(), scheme)
        });
        let span = if traced {
            make_span(shared, &req, route.as_str(), grpc)
        } else {
            Span::none()
        };
        if in_flight.is_none() && span.is_disabled() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let record = Record {
            span,
            in_flight,
            route,
            side: Side::Server,
            head: None,
            settled: false,
            described: false,
        };
        let future = {
            let _entered = record.span.enter();
            self.inner.call(req)
        };
        let capture =
            (!shared.response_headers.is_empty()).then(|| shared.response_headers.clone());
        ResponseFuture::new(future, record, capture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths() {
        assert_eq!(
            grpc_parts("/grpc.health.v1.Health/Check"),
            Some(("grpc.health.v1.Health", "Check"))
        );
        assert_eq!(grpc_parts("/a/b/c"), None);
        assert_eq!(grpc_parts("/a/"), None);
        assert_eq!(grpc_parts("/users/{id}"), None);
    }
}
