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

pub mod breaker;
pub mod bulkhead;
mod error;
pub mod keyed;
pub mod reject;
mod sync;

pub use breaker::{
    AbandonedPolicy, BreakerEvent, BreakerPermit, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerLayer, Reason, SlidingWindow, State, Verdict,
};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadEvent, BulkheadLayer, BulkheadPermit};
pub use error::{BuildError, BulkheadFull, CircuitOpen, Error, Rejection};
