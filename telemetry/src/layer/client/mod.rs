//! The client request layer: one CLIENT span and one RED metrics record per
//! outbound request, settled together when the response body ends, with the
//! trace context injected into the request.
//!
//! ```
//! use telltale_telemetry::layer::client::ClientTelemetryLayer;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tower::ServiceExt;
//! let layer = ClientTelemetryLayer::builder().capture_response_headers(["x-cache"]).build().unwrap();
//! let client = ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<String>| async move {
//!     // A real client (hyper-util, tonic) goes here. The trace context is in
//!     // the headers: W3C `traceparent` unless another propagator is set.
//!     let _ = req.headers().get("traceparent");
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
//! });
//! let response = client
//!     .oneshot(http::Request::get("http://api.test/users?token=secret").body(String::new()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```
//!
//! The span follows the OpenTelemetry HTTP client conventions: name `{method}`
//! (`HTTP` for unknown methods), `http.request.method` (`_OTHER` plus
//! `http.request.method_original`), `server.address`, `server.port` (from the
//! URI's authority, port defaulted from the scheme; else the `Host` header;
//! else the [origin](ClientTelemetryLayerBuilder::origin) of the channel the
//! layer wraps), `url.full` (absolute only, from the URI or the origin;
//! credentials and sensitive query values replaced by `REDACTED`; omitted
//! rather than a bare path), `http.response.status_code`,
//! `network.protocol.version`, `error.type`, opt-in
//! `http.{request,response}.header.<name>`. gRPC calls (content type
//! `application/grpc…`) follow the RPC conventions: name
//! `pkg.Service/Method`, `rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`, `server.address`, `server.port`, no `url.full`.
//!
//! Span status: Error for 4xx, 5xx and codes 600 to 999, every non-OK gRPC
//! code, inner errors, timeouts and rejections (`error.type` `circuit_open`,
//! `bulkhead_full`, with a fixed status text), and requests dropped before
//! their body ended.
//!
//! The `traceparent`/`tracestate` headers carry the CLIENT span's context (or
//! the current context when spans are off), written by the propagator
//! telltale installed (`OTEL_PROPAGATORS`; none at all for `none`), by the
//! application's global one, or, when neither is set, by telltale's default
//! list (W3C Trace Context and Baggage), so that propagation never fails
//! silently. No empty `tracestate` is ever sent. See [`crate::propagation`].

pub mod env;
mod layer;
mod service;

pub use super::future::ResponseFuture;
pub use crate::layer::server::ResponseBody;
pub use layer::{ClientTelemetryLayer, ClientTelemetryLayerBuilder};
pub use service::ClientTelemetryService;
