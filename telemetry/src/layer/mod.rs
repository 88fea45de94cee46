//! Server and client request layers: one record per request feeding both the
//! OpenTelemetry span and the RED metrics.
//!
//! Both sides settle the span and the [`RedMetrics`](crate::metrics::RedMetrics)
//! record from one [`Outcome`](telltale_core::Outcome) when the response body
//! ends, so durations and error verdicts always agree.
//!
//! ```
//! use axum::{Router, routing::get};
//! use telltale_telemetry::layer::{ClientTelemetryLayer, ServerTelemetryLayer};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "hi" }))
//!     .layer(ServerTelemetryLayer::new());
//! let client_layer = ClientTelemetryLayer::new();
//! # let _ = (app, client_layer);
//! ```
//!
//! - [`server`]: SERVER spans (HTTP and gRPC), trace context continued or
//!   linked, health checks filtered, `http_server_*` / `rpc_server_*` metrics.
//! - [`client`]: CLIENT spans, trace context injected (the installed
//!   propagators, [`crate::propagation`]; W3C Trace Context and Baggage when
//!   none is installed), `http_client_*` / `rpc_client_*` metrics.

mod attrs;
pub mod client;
mod error;
mod future;
mod limits;
mod names;
mod propagation;
mod record;
pub mod request_log;
pub mod server;
mod settings;

pub use attrs::{DEFAULT_REDACTED_QUERY_KEYS, InvalidIpNet, IpNet};
pub use client::{ClientTelemetryLayer, ClientTelemetryLayerBuilder, ClientTelemetryService};
pub use error::BuildError;
pub use limits::{DEFAULT_MAX_ATTRIBUTE_LEN, MAX_ATTRIBUTE_LEN};
pub use request_log::RequestLog;
pub use server::{ServerTelemetryLayer, ServerTelemetryLayerBuilder, ServerTelemetryService};
