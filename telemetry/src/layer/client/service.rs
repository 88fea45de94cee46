use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Key, KeyValue};
use telltale_core::Side;
use telltale_core::grpc::{is_grpc, split_path};
use telltale_core::http::{known_method, split_host_port};
use tower_service::Service;
use tracing::Span;
use tracing::field::{Empty, Field, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::ResponseFuture;
use super::layer::{Origin, Shared};
use crate::layer::attrs::{copy, text};
use crate::layer::limits::cap;
use crate::layer::names;
use crate::layer::propagation;
use crate::layer::record::{Direct, RequestSpan, Route};
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

/// The client span's request fields, looked up once: the span is created
/// with every field empty and filled by [`make_span`].
struct ClientFields {
    name: Field,
    kind: Field,
    method: Field,
    method_original: Field,
    server_address: Field,
    server_port: Field,
    url_full: Field,
    rpc_system: Field,
    rpc_service: Field,
    rpc_method: Field,
}

impl ClientFields {
    fn of(span: &Span) -> Option<&'static ClientFields> {
        static FIELDS: OnceLock<Option<ClientFields>> = OnceLock::new();
        FIELDS
            .get_or_init(|| {
                let set = span.metadata()?.fields();
                Some(ClientFields {
                    name: set.field("otel.name")?,
                    kind: set.field("otel.kind")?,
                    method: set.field("http.request.method")?,
                    method_original: set.field("http.request.method_original")?,
                    server_address: set.field("server.address")?,
                    server_port: set.field("server.port")?,
                    url_full: set.field("url.full")?,
                    rpc_system: set.field("rpc.system")?,
                    rpc_service: set.field("rpc.service")?,
                    rpc_method: set.field("rpc.method")?,
                })
            })
            .as_ref()
    }
}

/// The client request's span, with its request attributes.
///
/// As tracing fields, the fields are recorded in one `record_all`
/// before the OpenTelemetry span starts (the SDK's sampler sees them, with
/// the captured request headers). When the subscriber takes the attributes
/// directly ([`Direct`]), only the span kind reaches the OpenTelemetry layer
/// that way: the other fields reach only the log formatters,
/// and the OpenTelemetry span is started and gets its name and attributes
/// directly, in one call, with static keys and static values where there
/// are some.
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
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = Empty,
        http.request.method_original = Empty,
        server.address = Empty,
        server.port = Empty,
        url.full = Empty,
        http.response.status_code = Empty,
        network.protocol.version = Empty,
        error.type = Empty,
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
        return span;
    }
    let (Some(f), Some(meta)) = (ClientFields::of(&span), span.metadata()) else {
        return span;
    };
    let max = shared.common.max_attribute_len;
    let method_name = known.unwrap_or("_OTHER");
    let method_original = known.is_none().then(|| cap(method.as_str(), max));
    let host = host.map(|h| cap(h, max));
    let port = port.map(i64::from);
    // gRPC calls follow the RPC conventions, which have no `url.full`.
    let url = match rpc {
        Some(_) => None,
        None => shared
            .common
            .redactor
            .full_url(req.uri(), shared.origin.as_ref().map(|o| &o.uri))
            .map(|mut url| {
                // Capped as the server's request attributes are.
                let kept = cap(&url, max).len();
                url.truncate(kept);
                url
            }),
    };
    let (rpc_service, rpc_method) = rpc.unzip();
    let rpc_system = rpc.map(|_| "grpc");
    let direct = Direct::of(&span);
    // Taken directly, the kind still goes to the OpenTelemetry layer (as a
    // tracing field, before the span starts), the rest to the formatters.
    let kind = (direct == Direct::No).then_some("client");
    let all: [(&Field, Option<&dyn Value>); 10] = [
        (&f.name, Some(&&*name)),
        (&f.kind, kind.as_ref().map(|k| k as &dyn Value)),
        (&f.method, Some(&method_name)),
        (&f.method_original, Some(&method_original)),
        (&f.server_address, Some(&host)),
        (&f.server_port, Some(&port)),
        (&f.url_full, Some(&url)),
        (&f.rpc_system, Some(&rpc_system)),
        (&f.rpc_service, Some(&rpc_service)),
        (&f.rpc_method, Some(&rpc_method)),
    ];
    if direct == Direct::No {
        span.record_all(&meta.fields().value_set(&all));
        shared
            .common
            .request_headers
            .record_unstarted(&span, req.headers());
        return span;
    }
    span.record("otel.kind", "client");
    direct.record(&span, &meta.fields().value_set(&all));
    // Starts the OpenTelemetry span: the SDK's sampler decides here.
    let cx = span.context();
    let otel = cx.span();
    if !otel.is_recording() {
        return span;
    }
    let attributes = [
        Some(text("http.request.method", method_name.into())),
        method_original.map(|m| copy("http.request.method_original", m)),
        host.map(|h| copy("server.address", h)),
        port.map(|p| KeyValue::new(Key::from_static_str("server.port"), p)),
        url.map(|u| text("url.full", u.into())),
        rpc_system.map(|s| text("rpc.system", s.into())),
        rpc_service.map(|s| copy("rpc.service", s)),
        rpc_method.map(|m| copy("rpc.method", m)),
    ];
    let headers = shared.common.request_headers.attributes(req.headers());
    otel.set_attributes(attributes.into_iter().flatten().chain(headers));
    otel.update_name(name);
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
        // A gRPC path (`rpc`) is not empty: the URI has a path and query.
        let route = match (rpc, req.uri().path_and_query()) {
            (Some(_), Some(path)) => Route::Grpc(path.clone()),
            _ => Route::None,
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
