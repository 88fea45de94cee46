//! Server side: give every request a correlation ID.
//!
//! [`CorrelationLayer`] reads the configured header (default `x-correlation-id`,
//! then the aliases, default `x-request-id`: the primary header wins when both
//! are present), validates the value with the
//! configured [`Rule`](crate::rule::Rule), and otherwise generates a UUIDv7. The
//! ID is then
//!
//! - stored in the request extensions as a [`CorrelationId`](crate::CorrelationId)
//!   and written to the request's primary header,
//! - the current ID ([`current()`](crate::current)) for the inner service's
//!   `call`, its whole response future and every poll of the response body,
//! - recorded as `correlation_id` on the current tracing span (a span that
//!   declares the field, as telltale-telemetry's request span does),
//! - echoed in the response's primary header, and in the alias it was read
//!   from when it came from one (each unless the service set it).
//!
//! A rejected value is counted (`telltale_correlation_ids_rejected_total{reason}`) and
//! logged by length and reason only: it is never echoed, logged or passed on.
//! With [`require_header`](CorrelationLayerBuilder::require_header), a request without a valid
//! ID gets `400 Bad Request` with a plain-text body naming the header (gRPC
//! requests get `INVALID_ARGUMENT` with the same message).
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::Request;
//! use telltale_correlation::server::CorrelationLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let layer = CorrelationLayer::builder().alias("x-request-id").build().unwrap();
//! let app = Router::new()
//!     .route("/", get(|| async { telltale_correlation::current().unwrap().to_string() }))
//!     .layer(layer);
//!
//! let req = Request::get("/").header("x-request-id", "abc-123").body(axum::body::Body::empty()).unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-correlation-id"], "abc-123");
//!
//! // Too long for the default rule: replaced by a fresh UUIDv7.
//! let req = Request::get("/").header("x-correlation-id", "x".repeat(200)).body(axum::body::Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-correlation-id"].len(), 36);
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{CorrelationLayer, CorrelationLayerBuilder};
pub use service::CorrelationService;
