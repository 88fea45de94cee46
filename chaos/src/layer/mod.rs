//! Server-side (inbound) and client-side (outbound) chaos layers.
//!
//! [`ChaosLayer::inbound`] wraps a server (axum router, tonic server, any
//! `tower::Service<http::Request<_>>`): matching `in` rules act before the
//! service is called. [`ChaosLayer::outbound`] wraps a client (hyper client,
//! tonic channel): matching `out` rules make the dependency appear slow or
//! failing without a packet leaving the process.
//!
//! When chaos is off (the default), paused, killed, expired or refused, a request
//! costs one atomic load and passes through untouched, allocating nothing.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use telltale_chaos::{ChaosLayer, Injector};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let injector = Injector::builder()
//!     .rules("in GET /payments/*: 2* status(503, retry-after=2s)".parse().unwrap())
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(ChaosLayer::inbound(&injector))
//!     .service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from("ok"))))
//!     });
//! let req = || Request::get("/payments/42").body(String::new()).unwrap();
//! let first = svc.ready().await.unwrap().call(req()).await.unwrap();
//! assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(first.headers()["retry-after"], "2");
//! assert_eq!(first.headers()["x-telltale-chaos"], "1.1");
//! svc.ready().await.unwrap().call(req()).await.unwrap();
//! let third = svc.ready().await.unwrap().call(req()).await.unwrap();
//! assert_eq!(third.status(), StatusCode::OK); // the count limit (2*) is used up
//! # }
//! ```

mod body;
mod error;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use body::ResponseBody;
pub use error::{BodyTruncated, InjectedFault};
pub use future::ResponseFuture;
pub use layer::ChaosLayer;
pub use service::ChaosService;
