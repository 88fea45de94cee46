use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use telltale_core::Side;
use telltale_core::grpc::{is_grpc, split_path};
use telltale_core::http::{known_method, split_host_port};
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::ResponseFuture;
use super::layer::{Origin, Shared};
use crate::layer::names;
use crate::layer::propagation;
use crate::layer::record::{RequestSpan, Route};
use crate::layer::server::ResponseBody;
use crate::layer::settings::telemetry_service;
use crate::metrics::Scheme;
use crate::sampling::{self, Early};

/// The service built by [`ClientTelemetryLayer`](super::ClientTelemetryLayer).
#[derive(Clone)]
pub struct ClientTelemetryService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for ClientTelemetryService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTelemetryService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> ClientTelemetryService<S> {
    telltale_core::inner_service_accessors!();
}

/// `server.address` and `server.port` of an outbound request: the URI's
/// authority (port defaulted from the scheme), else the `Host` header, else
/// the layer's origin.
fn target<'a, B>(
    req: &'a Request<B>,
    origin: Option<&'a Origin>,
) -> (Option<&'a str>, Option<u16>) {
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
            // A `Host` without port: the origin's scheme says which default.
            let p = p.or_else(|| origin.filter(|o| &*o.host == h).and_then(|o| o.port));
            (Some(h), p)
        }
        _ => match origin {
            Some(o) => (Some(&*o.host), o.port),
            None => (None, None),
        },
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
        // Kept per method path (see `layer::names`): joined once.
        (Some((service, m)), _) => names::name("", req.uri().path(), || format!("{service}/{m}")),
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
        http.request.method_original = known
            .is_none()
            .then(|| crate::layer::limits::cap(method.as_str(), shared.common.max_attribute_len)),
        server.address = host.map(|h| crate::layer::limits::cap(h, shared.common.max_attribute_len)),
        server.port = port.map(i64::from),
        // gRPC calls follow the RPC conventions, which have no `url.full`.
        url.full = match rpc {
            Some(_) => None,
            None => shared
                .common
                .redactor
                .full_url(req.uri(), shared.origin.as_ref().map(|o| &o.uri))
                .map(|mut url| {
                    // Capped as the server's request attributes are.
                    let kept = crate::layer::limits::cap(&url, shared.common.max_attribute_len).len();
                    url.truncate(kept);
                    url
                }),
        },
        http.response.status_code = Empty,
        network.protocol.version = Empty,
        error.type = Empty,
        rpc.system = rpc.map(|_| "grpc"),
        rpc.service = rpc.map(|r| r.0),
        rpc.method = rpc.map(|r| r.1),
        rpc.grpc.status_code = Empty,
        resilience.rejected = Empty,
        resilience.circuit_breaker.name = Empty,
        resilience.circuit_breaker.state = Empty,
        resilience.circuit_breaker.retry_after_ms = Empty,
        resilience.bulkhead.name = Empty,
        resilience.bulkhead.waited_ms = Empty,
    );
    shared
        .common
        .request_headers
        .record_unstarted(&span, req.headers());
    span
}

telemetry_service!(ClientTelemetryService);

impl<S> ClientTelemetryService<S> {
    fn respond<ReqBody, ResBody>(&mut self, mut req: Request<ReqBody>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let shared = &*self.shared;
        let grpc = is_grpc(req.headers());
        let rpc = if grpc {
            split_path(req.uri().path())
        } else {
            None
        };
        let (host, port) = target(&req, shared.origin.as_ref());
        let in_flight = shared
            .common
            .metrics(grpc)
            .map(|m| m.start_client(req.method(), Scheme::from_uri(req.uri()), host, port));
        // A call made for a request the sampler dropped before building its
        // span is decided the same way: no span, its own span ID for the
        // `traceparent` it sends (see `crate::sampling`).
        let mut dropped = None;
        let span = if !shared.common.tracing {
            Span::none()
        } else {
            match sampling::decide_client() {
                Some(Early::Dropped(cx)) => {
                    dropped = Some(cx);
                    Span::none()
                }
                Some(Early::Kept(keep)) => {
                    let span = make_span(shared, &req, rpc, host, port);
                    // Started while the decision's trace ID is preset.
                    let _ = span.context();
                    drop(keep);
                    span
                }
                None => make_span(shared, &req, rpc, host, port),
            }
        };
        let route = match rpc {
            Some(_) => Route::Grpc(req.uri().clone()),
            None => Route::None,
        };
        if shared.propagate {
            let mut cx = if let Some(cx) = &dropped {
                cx.clone()
            } else if span.is_disabled() {
                Span::current().context()
            } else {
                span.context()
            };
            if !cx.has_active_span() {
                cx = opentelemetry::Context::current();
            }
            propagation::inject(&cx, req.headers_mut());
        }
        let capture = shared.common.capture();
        let inner = &mut self.inner;
        let span = match dropped {
            Some(context) => RequestSpan {
                span,
                recording: false,
                context: Some(context),
            },
            None => RequestSpan::traced(span),
        };
        ResponseFuture::start(span, in_flight, route, Side::Client, capture, None, || {
            inner.call(req)
        })
    }
}
