//! Client side: carry the current correlation ID into outbound requests.
//!
//! [`InjectCorrelationLayer`] wraps any tower `Service<http::Request<B>>`:
//! hyper-util's legacy `Client`, a tonic `Channel`, an axum `Router` used as a
//! client, or a `tower::service_fn`. For each request it takes the ID from the
//! request's extensions if one is there, else the task-local
//! ([`current()`](crate::current), set by the server layer for the whole request
//! being served), and sets it in the configured header (default
//! `x-correlation-id`). A header the caller already set is left alone unless
//! [`override_existing`](InjectCorrelationLayerBuilder::override_existing) is on.
//!
//! ```
//! use http::{Request, Response};
//! use telltale_correlation::{CorrelationId, client::InjectCorrelationLayer, scope};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Stands in for hyper-util's Client or a tonic Channel.
//! let transport = service_fn(|req: Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(Response::new(req.headers().get("x-correlation-id").cloned()))
//! });
//! let client = ServiceBuilder::new().layer(InjectCorrelationLayer::new()).service(transport);
//!
//! let id: CorrelationId = "order-7".parse().unwrap();
//! let sent = scope(id, client.oneshot(Request::new(()))).await.unwrap().into_body();
//! assert_eq!(sent.unwrap(), "order-7");
//! # }
//! ```

mod layer;
mod service;

pub use layer::{InjectCorrelationLayer, InjectCorrelationLayerBuilder};
pub use service::InjectCorrelationService;
