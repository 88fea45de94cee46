//! Instrumented circuit breakers and bulkheads for tower services and plain
//! futures, correct under concurrency and cancellation.
//!
//! - [`CircuitBreaker`]: sliding window (count or time), failure-rate and
//!   slow-call-rate thresholds, open wait with backoff and jitter, limited
//!   half-open probes with a deadline, manual states; results settle when the
//!   response body ends and are tagged with the state generation they were
//!   admitted under.
//! - [`Bulkhead`]: max concurrent calls and max wait, permits held until the
//!   response body ends.
//! - [`keyed`]: one breaker or bulkhead per key (host, route, gRPC method) with
//!   a cap on keys and idle eviction.
//! - [`reject`]: rejections and timeouts as HTTP or gRPC responses, for
//!   servers ([`RejectionResponseLayer`](reject::RejectionResponseLayer)).
//!
//! Configuration from the environment follows one convention:
//! [`CircuitBreaker::from_env`] and [`Bulkhead::from_env`] return the built
//! handle, builders overlay variables with `.env(&env)`, and the variables are
//! declared in [`breaker::env`] and [`bulkhead::env`]. Metric base names are
//! in [`names`]. Errors: [`BuildError`] for the builders, [`Error`] (with
//! [`Error::rejection_in`]) on the request path.
//!
//! ```
//! use telltale_resilience::{Bulkhead, CircuitBreaker};
//! use tower::ServiceBuilder;
//!
//! let breaker = CircuitBreaker::builder("upstream").build().unwrap();
//! let bulkhead = Bulkhead::builder("upstream").max_concurrent(32).build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(breaker.layer())
//!     .layer(bulkhead.layer())
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! ```
//!
//! # Guide
#![doc = include_str!("../README.md")]

pub mod body_timeout;
pub mod breaker;
pub mod bulkhead;
mod env_range;
mod error;
pub mod keyed;
mod macros;
pub mod names;
pub mod reject;
mod sync;

pub use breaker::{
    AbandonedPolicy, BreakerEvent, BreakerPermit, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerLayer, Reason, SlidingWindow, State, Verdict,
};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadEvent, BulkheadLayer, BulkheadPermit};
pub use error::{BuildError, BulkheadFull, CircuitOpen, Error, Rejection};
