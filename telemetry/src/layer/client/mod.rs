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
//! `http.request.method_original`), `server.address`, `server.port` (the URI's
//! port or the scheme's default), `url.full` (credentials and sensitive query
//! values replaced by `REDACTED`), `http.response.status_code`,
//! `network.protocol.version`, `error.type`, opt-in
//! `http.{request,response}.header.<name>`. gRPC calls (content type
//! `application/grpc…`): name `pkg.Service/Method`, `rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`.
//!
//! Span status: Error for 4xx and 5xx, every non-OK gRPC code, inner errors and
//! timeouts, and requests dropped before their body ended.
//!
//! The `traceparent`/`tracestate` headers carry the CLIENT span's context (or
//! the current context when spans are off), written by the global propagator,
//! or by a W3C trace-context propagator when none is configured, so that
//! propagation never fails silently.

pub mod env;
mod layer;
mod service;

pub use super::future::ResponseFuture;
pub use crate::layer::server::ResponseBody;
pub use layer::{ClientTelemetryLayer, ClientTelemetryLayerBuilder};
pub use service::ClientTelemetryService;
