//! The server request layer: one SERVER span and one RED metrics record per
//! request, settled together when the response body ends.
//!
//! ```
//! use axum::{Router, routing::get};
//! use telltale_telemetry::layer::server::ServerTelemetryLayer;
//!
//! let layer = ServerTelemetryLayer::builder()
//!     .trusted_proxies(["10.0.0.0/8"])
//!     .capture_request_headers(["x-tenant"])
//!     .public_route("/webhooks/{source}")
//!     .build()
//!     .unwrap();
//! // `Router::layer` (not an outer `ServiceBuilder`): the layer then sees axum's
//! // `MatchedPath`, so spans are named `GET /users/{id}` and metrics are
//! // labelled by route template.
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "hi" }))
//!     .layer(layer);
//! # let _ = app;
//! ```
//!
//! # What it records
//!
//! The span follows the OpenTelemetry HTTP semantic conventions (stable):
//! name `{method} {http.route}`, `{method}` without a route, `HTTP` for unknown
//! methods, never the raw path; `http.request.method` (`_OTHER` plus
//! `http.request.method_original`), `url.path`, `url.scheme`, `url.query` with
//! sensitive values replaced by `REDACTED`, `http.route`,
//! `http.response.status_code`, `error.type`, `network.protocol.version`,
//! `server.address`/`server.port` (from `:authority` or `Host`),
//! `client.address` (the peer from axum's `ConnectInfo<SocketAddr>` or a
//! `SocketAddr` request extension; `Forwarded`/`X-Forwarded-For` only when the
//! peer is a trusted proxy), `user_agent.original`, `correlation_id` (from a
//! [`CorrelationId`](telltale_core::CorrelationId) request extension or the
//! current task's ID; the field is declared so a correlation layer inside can
//! record it), and opt-in `http.request.header.<name>` /
//! `http.response.header.<name>`.
//!
//! gRPC requests (content type `application/grpc…`) follow the RPC
//! conventions: name `pkg.Service/Method`, `rpc.system = "grpc"`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code` from the trailers (or
//! the headers of a trailers-only response); `http.route` and the route label
//! are the path `/pkg.Service/Method`, and the RPC metrics are used. The path
//! is the client's choice, so it becomes a route only when something vouches
//! for it: the router matched it (axum's `MatchedPath`, whose template is then
//! the route), its service is in the allow-list
//! ([`grpc_services`](ServerTelemetryLayerBuilder::grpc_services),
//! `TELLTALE_HTTP_SERVER_GRPC_SERVICES`), or, without an allow-list, the
//! response shows that the server knew the method (a gRPC response that is
//! neither `UNIMPLEMENTED` nor a rejection, as tonic answers). Other calls are
//! counted without a route label, so unknown paths add no series.
//!
//! Span status: Error when the outcome has an `error.type` on the server side
//! (5xx and codes 600 to 999, gRPC server-error codes, inner errors, timeouts,
//! rejections answered by a rejection layer, client disconnects);
//! 4xx leaves it unset. Metrics and span read the same
//! [`Outcome`](telltale_core::Outcome), so they agree.
//!
//! # Route and placement
//!
//! axum sets `MatchedPath` while routing, so this layer must run **inside** the
//! router (`Router::layer`, or `route_layer`) to see it. Wrapped around the
//! router from outside (`ServiceBuilder` around `Router`), HTTP requests have no
//! route: the span is named `{method}` and the metrics carry no route label —
//! safe, but less useful. tonic servers: `Server::builder().layer(...)`; the
//! gRPC path is the route.
//!
//! # Trace context
//!
//! Incoming trace context (`traceparent`/`tracestate`, or what
//! `OTEL_PROPAGATORS` selects; see [`crate::propagation`]) continues the
//! trace, unless the route is a public endpoint: then the span is a new root
//! with a link to the caller. A header received several times is one list
//! (RFC 9110): two `traceparent` headers are invalid and start a new trace.
//! With `OTEL_PROPAGATORS=none` nothing is read.
//!
//! # Ends with the body
//!
//! The span closes and the duration is recorded when the response body ends
//! (end of stream or trailers), fails, or is dropped (client disconnect:
//! `error.type = "cancelled"`, the status already sent is kept), or when the
//! inner service fails (`timeout` for timeouts, `_OTHER` otherwise).
//!
//! Health checks ([`DEFAULT_HEALTH_PATHS`]) and routes given to
//! [`ServerTelemetryLayerBuilder::skip_tracing`] get no span but are still counted.

mod body;
pub mod env;
mod layer;
mod service;

pub use super::future::ResponseFuture;
pub use crate::layer::request_log::RequestLog;
pub use body::ResponseBody;
pub use layer::{DEFAULT_HEALTH_PATHS, ServerTelemetryLayer, ServerTelemetryLayerBuilder};
pub use service::ServerTelemetryService;
