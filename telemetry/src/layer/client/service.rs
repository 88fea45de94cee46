use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use telltale_core::Side;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::ResponseFuture;
use super::layer::Shared;
use crate::layer::attrs::{known_method, split_host_port};
use crate::layer::propagation;
use crate::layer::record::{Record, Route};
use crate::layer::server::{ResponseBody, grpc_parts, is_grpc};
use crate::metrics::Scheme;

/// The service built by [`ClientLayer`](super::ClientLayer).
#[derive(Clone)]
pub struct Client<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> Client<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// `server.address` and `server.port` of an outbound request: the URI's
/// authority (port defaulted from the scheme), else the `Host` header.
fn target<B>(req: &Request<B>) -> (Option<&str>, Option<u16>) {
    let uri = req.uri();
    if let Some(host) = uri.host() {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        return (
            Some(host.trim_start_matches('[').trim_end_matches(']')),
            port,
        );
    }
    match req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(h) if !h.is_empty() => {
            let (h, p) = split_host_port(h);
            (Some(h), p)
        }
        _ => (None, None),
    }
}

fn make_span<B>(
    shared: &Shared,
    req: &Request<B>,
    rpc: Option<(&str, &str)>,
    host: Option<&str>,
    port: Option<u16>,
) -> Span {
    let method = req.method();
    let known = known_method(method);
    let name: std::borrow::Cow<'_, str> = match (rpc, known) {
        (Some((service, m)), _) => format!("{service}/{m}").into(),
        (None, Some(m)) => m.into(),
        (None, None) => "HTTP".into(),
    };
    let span = tracing::info_span!(
        target: "telltale::client",
        "HTTP client request",
        otel.name = &*name,
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = known.unwrap_or("_OTHER"),
        http.request.method_original = known.is_none().then(|| method.as_str()),
        server.address = host,
        server.port = port.map(i64::from),
        url.full = shared.redactor.full_url(req.uri()),
        http.response.status_code = Empty,
        network.protocol.version = Empty,
        error.type = Empty,
        rpc.system = rpc.map(|_| "grpc"),
        rpc.service = rpc.map(|r| r.0),
        rpc.method = rpc.map(|r| r.1),
        rpc.grpc.status_code = Empty,
    );
    if !span.is_disabled() && !shared.request_headers.is_empty() {
        for kv in shared.request_headers.attributes(req.headers()) {
            span.set_attribute(kv.key, kv.value);
        }
    }
    span
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Client<S>
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let grpc = is_grpc(&req);
        let rpc = if grpc {
            grpc_parts(req.uri().path())
        } else {
            None
        };
        let (host, port) = target(&req);
        let metrics = if grpc {
            shared.rpc_metrics.as_ref()
        } else {
            shared.http_metrics.as_ref()
        };
        let in_flight =
            metrics.map(|m| m.start_client(req.method(), Scheme::from_uri(req.uri()), host, port));
        let span = if shared.tracing {
            make_span(shared, &req, rpc, host, port)
        } else {
            Span::none()
        };
        let route = match rpc {
            Some(_) => Route::Grpc(req.uri().clone()),
            None => Route::None,
        };
        if shared.propagate {
            let mut cx = if span.is_disabled() {
                Span::current().context()
            } else {
                span.context()
            };
            if !cx.has_active_span() {
                cx = opentelemetry::Context::current();
            }
            propagation::inject(&cx, req.headers_mut());
        }
        if in_flight.is_none() && span.is_disabled() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let record = Record {
            span,
            in_flight,
            route,
            side: Side::Client,
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
