use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response, header};
use opentelemetry::trace::{SpanRef, TraceContextExt};
use opentelemetry::{Key, KeyValue, StringValue};
use telltale_core::grpc::{is_grpc, split_path};
use telltale_core::http::known_method;
use telltale_core::{CorrelationId, Side};
use tower_service::Service;
use tracing::Span;
use tracing::field::{Empty, Field, Value, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::layer::Shared;
use super::{ResponseBody, ResponseFuture};
use crate::layer::attrs::{ClientAddr, client_address, copy, protocol_version, server_host, text};
use crate::layer::limits::cap;
use crate::layer::names;
use crate::layer::propagation;
use crate::layer::record::{Direct, RequestSpan, Route};
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
    // A path `split_path` accepts is not empty, so the URI has a path and
    // query, whose path is the same.
    if grpc
        && let Some((service, _)) = split_path(req.uri().path())
        && let Some(path) = req.uri().path_and_query()
    {
        return match shared.grpc_service_allowed(service) {
            Some(true) => Route::Grpc(path.clone()),
            Some(false) => Route::None,
            None => Route::Unvouched(path.clone()),
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
///
/// When the subscriber takes the attributes directly ([`Direct`]: it holds
/// [`DirectRequestAttributes`](crate::DirectRequestAttributes)), a kept
/// span's OpenTelemetry span is started first in either case and gets the
/// request's attributes from the layer itself, in one call (see
/// [`record_request`]); the fields then reach only the log formatters. The
/// exported span is the same (`tests/direct_attributes.rs`).
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
    // Taken directly, the attributes go straight to the started
    // OpenTelemetry span (see `record_request`).
    let direct = Direct::of(&span);
    let taken_directly = direct != Direct::No;
    // Kept by the early decision, as tracing fields: the fields are
    // recorded before the OpenTelemetry span starts, so the bridge adds them
    // to its span builder (one vector extended) rather than to a started span
    // (a lock and a call per attribute).
    let early_name = (kept.is_some() && !taken_directly)
        .then(|| record_request(shared, req, route, grpc, &span, None));
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
    if taken_directly {
        let name = record_request(shared, req, route, grpc, &span, Some((&otel, direct)));
        otel.update_name(name);
        return RequestSpan::traced(span);
    }
    let name = early_name.unwrap_or_else(|| record_request(shared, req, route, grpc, &span, None));
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
/// the span's name (`GET /users/{id}`). With `otel` (the span's started
/// OpenTelemetry span, when the subscriber takes the attributes directly:
/// [`Direct`]), the fields reach only the log formatters and the
/// attributes, the captured request headers' included, are set on `otel`
/// directly.
fn record_request<B>(
    shared: &Shared,
    req: &Request<B>,
    route: Option<&str>,
    grpc: bool,
    span: &Span,
    otel: Option<(&SpanRef<'_>, Direct)>,
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
    let attrs = RequestAttrs::of(shared, req, route, rpc, known);
    match otel {
        Some((otel, direct)) => {
            // The OpenTelemetry layer sees none of these fields: the
            // OpenTelemetry span gets them here, in one call under one lock,
            // with static keys, static or shared values where there are
            // some, and one exact copy for each value taken from the request.
            attrs.record(span, direct);
            let headers = shared.common.request_headers.attributes(req.headers());
            let kept = match name {
                Cow::Borrowed(name) => Some(name),
                Cow::Owned(_) => None,
            };
            // No OpenTelemetry layer (the span context is not valid) or
            // the SDK disabled: nothing would keep them.
            if otel.is_recording() {
                otel.set_attributes(attrs.key_values(static_route(kept, route)).chain(headers));
            }
        }
        None => attrs.record(span, Direct::No),
    }
    name
}

/// `route` as a `'static` string when `name`, the span's name kept per route
/// (see `layer::names`), ends with it (`GET /users/{id}`): `http.route`
/// then costs no copy.
fn static_route(name: Option<&'static str>, route: Option<&str>) -> Option<&'static str> {
    match (name, route) {
        (Some(name), Some(route)) if name.ends_with(route) => name.get(name.len() - route.len()..),
        _ => None,
    }
}

/// A server request's attributes, taken from the request once: recorded as
/// the span's fields, or set straight on its OpenTelemetry span (see
/// [`record_request`]). Values taken from the request are already capped.
struct RequestAttrs<'a> {
    method: &'static str,
    method_original: Option<&'a str>,
    path: &'a str,
    scheme: &'static str,
    /// Redacted, not capped yet.
    query: Option<Cow<'a, str>>,
    route: Option<&'a str>,
    protocol: Option<&'static str>,
    host: Option<&'a str>,
    port: Option<u16>,
    client: Option<ClientAddr<'a>>,
    user_agent: Option<&'a str>,
    correlation: Option<CorrelationId>,
    /// `rpc.service` and `rpc.method`, for a gRPC call with a route.
    rpc: Option<(&'a str, &'a str)>,
    max: usize,
}

impl<'a> RequestAttrs<'a> {
    fn of<B>(
        shared: &Shared,
        req: &'a Request<B>,
        route: Option<&'a str>,
        rpc: Option<(&'a str, &'a str)>,
        known: Option<&'static str>,
    ) -> Self {
        let uri = req.uri();
        let (host, port) = server_host(uri, req.headers());
        // What the client sent is capped: one hostile request must not make
        // its span huge (see `layer::limits`).
        let max = shared.common.max_attribute_len;
        RequestAttrs {
            method: known.unwrap_or("_OTHER"),
            method_original: known.is_none().then(|| cap(req.method().as_str(), max)),
            path: cap(uri.path(), max),
            scheme: shared
                .scheme
                .unwrap_or_else(|| Scheme::from_uri(uri))
                .as_str(),
            query: uri.query().map(|q| shared.common.redactor.redact(q)),
            route,
            protocol: protocol_version(req.version()),
            host: host.map(|h| cap(h, max)),
            port,
            // A forwarding header's node that is not an address is the
            // client's text: capped as well.
            client: client_address(peer_ip(req), req.headers(), &shared.trusted).map(|c| match c {
                ClientAddr::Name(name) => ClientAddr::Name(cap(name, max)),
                ip => ip,
            }),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|u| cap(u, max)),
            correlation: req
                .extensions()
                .get::<CorrelationId>()
                .cloned()
                .or_else(telltale_core::correlation::current),
            rpc: rpc
                .filter(|_| route.is_some())
                .map(|(service, method)| (cap(service, max), cap(method, max))),
            max,
        }
    }

    /// Records the attributes as the span's fields, in one `record_all`
    /// (see [`Direct::record`]).
    fn record(&self, span: &Span, direct: Direct) {
        let Some(f) = SpanFields::of(span) else {
            return;
        };
        let query = self.query.as_deref().map(|q| cap(q, self.max));
        let client = self.client.map(display);
        let correlation = self.correlation.as_ref().map(CorrelationId::as_str);
        let port = self.port.map(i64::from);
        let (rpc_service, rpc_method) = self.rpc.unzip();
        let values: [(&Field, Option<&dyn Value>); 15] = [
            (&f.method, Some(&self.method)),
            (&f.method_original, Some(&self.method_original)),
            (&f.path, Some(&self.path)),
            (&f.scheme, Some(&self.scheme)),
            (&f.query, Some(&query)),
            (&f.route, Some(&self.route)),
            (&f.protocol, Some(&self.protocol)),
            (&f.server_address, Some(&self.host)),
            (&f.server_port, Some(&port)),
            (&f.client_address, Some(&client)),
            (&f.user_agent, Some(&self.user_agent)),
            (&f.correlation, Some(&correlation)),
            (&f.rpc_system, Some(&rpc_service.map(|_| "grpc"))),
            (&f.rpc_service, Some(&rpc_service)),
            (&f.rpc_method, Some(&rpc_method)),
        ];
        if let Some(meta) = span.metadata() {
            direct.record(span, &meta.fields().value_set(&values));
        }
    }

    /// The same attributes as OpenTelemetry key-values, in the same order and
    /// with the same types as the bridge would convert the fields to:
    /// static keys, static values for what telltale names (method, scheme,
    /// protocol version, `rpc.system`), `route` for `http.route` (and for
    /// `url.path` when they are equal) when it is static, integers for the
    /// port, and one exact copy of each value taken from the request.
    fn key_values(&self, route: Option<&'static str>) -> impl Iterator<Item = KeyValue> + use<'_> {
        let (rpc_service, rpc_method) = self.rpc.unzip();
        // Made one at a time as the span takes them (no array of every
        // attribute moved around), in the fields' order.
        let mut next = 0;
        std::iter::from_fn(move || {
            loop {
                next += 1;
                let attribute = match next {
                    1 => Some(text("http.request.method", self.method.into())),
                    2 => self
                        .method_original
                        .map(|m| copy("http.request.method_original", m)),
                    // A route without parameters is its path: shared too.
                    3 => Some(match route.filter(|r| *r == self.path) {
                        Some(shared) => text("url.path", shared.into()),
                        None => copy("url.path", self.path),
                    }),
                    4 => Some(text("url.scheme", self.scheme.into())),
                    5 => self
                        .query
                        .as_deref()
                        .map(|q| copy("url.query", cap(q, self.max))),
                    6 => self.route.map(|r| match route {
                        Some(shared) => text("http.route", shared.into()),
                        None => copy("http.route", r),
                    }),
                    7 => self
                        .protocol
                        .map(|v| text("network.protocol.version", v.into())),
                    8 => self.host.map(|h| copy("server.address", h)),
                    9 => self
                        .port
                        .map(|p| KeyValue::new(Key::from_static_str("server.port"), i64::from(p))),
                    10 => self
                        .client
                        .map(|c| text("client.address", client_address_value(c))),
                    11 => self.user_agent.map(|u| copy("user_agent.original", u)),
                    12 => self
                        .correlation
                        .as_ref()
                        .map(|c| copy("correlation_id", c.as_str())),
                    13 => rpc_service.map(|_| text("rpc.system", "grpc".into())),
                    14 => rpc_service.map(|s| copy("rpc.service", s)),
                    15 => rpc_method.map(|m| copy("rpc.method", m)),
                    _ => return None,
                };
                if attribute.is_some() {
                    return attribute;
                }
            }
        })
    }
}

/// The `client.address` value, formatted on the stack and copied once at its
/// length (`to_string` grows its buffer from empty, then the value shrinks
/// it). Written by hand: a 64-byte buffer implementing `fmt::Write` is all
/// this needs.
fn client_address_value(client: ClientAddr<'_>) -> StringValue {
    struct Stack {
        bytes: [u8; 64],
        len: usize,
    }
    impl fmt::Write for Stack {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    match client {
        ClientAddr::Name(name) => StringValue::from(name.to_owned()),
        ClientAddr::Ip(ip) => {
            let mut out = Stack {
                bytes: [0; 64],
                len: 0,
            };
            match fmt::Write::write_fmt(&mut out, format_args!("{ip}")) {
                Ok(()) => {
                    StringValue::from(String::from_utf8_lossy(&out.bytes[..out.len]).into_owned())
                }
                Err(_) => StringValue::from(ip.to_string()),
            }
        }
    }
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
