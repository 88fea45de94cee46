#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! `stack.rs` ([`ReqwestStack`] and its [`Middleware`](reqwest_middleware::Middleware)
//! impl: the layers composed per call), `service.rs` (the bridge: a reqwest
//! request as an `http::Request`, the rest of the middleware chain as the
//! tower service at the bottom, the response back), `error.rs`
//! ([`BuildError`], [`rejection`], [`is_timeout`]), [`env`](mod@env).
//!
//! # Why the layers, not a second implementation
//!
//! The middleware runs telltale's own tower layers (telemetry, correlation,
//! resilience, chaos) over a tower service that wraps
//! [`reqwest_middleware::Next`], rather than recording spans and metrics
//! itself: the span attributes, metric labels, outcome classification and
//! propagation are then the client layer's, by construction, and stay so as
//! that layer changes. The facade's `ClientStackLayer` cannot be reused
//! as is: it lives in the `telltale` facade (which re-exports this crate)
//! and holds one breaker and one bulkhead, where a reqwest client calls many
//! hosts and gets one of each per host.

pub mod env;
mod error;
mod service;
mod stack;

pub use error::{BuildError, is_timeout, rejection};
pub use stack::{DEFAULT_HOST_IDLE_TIMEOUT, DEFAULT_MAX_HOSTS, DEFAULT_TIMEOUT, ReqwestStack};

/// The reqwest this crate is built against: build clients with it so that
/// the versions match.
pub use reqwest;
/// The reqwest-middleware this crate is built against.
pub use reqwest_middleware;
