//! Shared mechanics of telltale, with no OpenTelemetry in sight.
//!
//! - [`Outcome`], [`ResponseHead`] and [`FailurePolicy`]: one classification of a
//!   finished exchange (HTTP status, gRPC status from trailers or a trailers-only
//!   head, service error, timeout, cancellation) that span status, `error.type`,
//!   RED error counts and circuit breakers all read.
//! - [`CompletionBody`]: a response-body wrapper that reports the end of the
//!   exchange exactly once (end of stream, trailers, error, or drop).
//! - [`config`]: environment parsing with errors that name the variable and the
//!   position.
//! - [`correlation`]: the current request's correlation ID, as a task-local.
//!
//! ```
//! use http::StatusCode;
//! use telltale_core::{FailurePolicy, Outcome, Side};
//!
//! let outcome = Outcome::Response { status: StatusCode::SERVICE_UNAVAILABLE, grpc: None };
//! assert!(FailurePolicy::default().is_failure(&outcome));
//! assert_eq!(outcome.error_type(Side::Server), Some("503"));
//! ```

pub mod body;
pub mod config;
pub mod correlation;
pub mod grpc;
pub mod outcome;

pub use body::{BodyEnd, CompletionBody, Ignore, OnEnd};
pub use config::{ConfigError, Env, ParseError};
pub use correlation::CorrelationId;
pub use grpc::GrpcCode;
pub use outcome::{FailurePolicy, Outcome, ResponseHead, Side, is_timeout, status_str};

/// The boxed error type tower middleware uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
