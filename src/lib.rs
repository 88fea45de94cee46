//! telltale: make tower services debuggable and resilient.
//!
//! This facade re-exports the telltale crates behind features (all on by default):
//!
//! | feature | crate | what |
//! |---|---|---|
//! | (always) | [`core`] | outcomes, body completion, env config |
//! | `correlation` | `correlation` | correlation IDs in, through, out |
//! | `telemetry` | `telemetry` | init, spans, enriched logs, RED metrics |
//! | `resilience` | `resilience` | circuit breakers, bulkheads |
//! | `chaos` | `chaos` | fault injection from env vars |
//! | `stack` | `stack` | `ServerStack` / `ClientStack`: every layer in the recommended order |
//! | `debug` | `debug` | the embedded debug page: RED per route, breakers, bulkheads, chaos, traces, dependency map |
//! | `tls` | `telemetry` (its `tls` feature) | OTLP export to `https://` collectors: rustls, system roots or a custom CA, mutual TLS |
//! | `reqwest` (not in `full`) | `reqwest` | `ReqwestStack`: everything `ClientStack` gives, as a reqwest-middleware (breaker and bulkhead per host) |
//!
//! ```
//! # #[cfg(feature = "stack")] {
//! use axum::{Router, routing::get};
//!
//! // Span + RED metrics, correlation ID, (breaker, bulkhead,) chaos: one layer.
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .layer(telltale::stack().layer());
//! # let _ = app;
//! # }
//! ```

pub use telltale_core as core;

#[cfg(feature = "chaos")]
pub use telltale_chaos as chaos;
#[cfg(feature = "correlation")]
pub use telltale_correlation as correlation;
#[cfg(feature = "debug")]
pub use telltale_debug as debug;
#[cfg(feature = "reqwest")]
pub use telltale_reqwest as reqwest;
#[cfg(feature = "resilience")]
pub use telltale_resilience as resilience;
#[cfg(feature = "telemetry")]
pub use telltale_telemetry as telemetry;

#[cfg(feature = "stack")]
pub mod stack;
#[cfg(feature = "stack")]
pub use stack::{ClientStack, ServerStack, stack};

/// The README's code, compiled as doctests.
#[cfg(all(doctest, feature = "stack"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
