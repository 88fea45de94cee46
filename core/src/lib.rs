//! Shared mechanics of telltale, with no OpenTelemetry in sight.
//!
//! - [`Outcome`], [`ResponseHead`] and [`FailurePolicy`]: one classification of a
//!   finished exchange (HTTP status, gRPC status from trailers or a trailers-only
//!   head, service error, timeout, cancellation) that span status, `error.type`,
//!   RED error counts and circuit breakers all read.
//! - [`CompletionBody`]: a response-body wrapper that reports the end of the
//!   exchange exactly once (end of stream, trailers, error, or drop).
//! - [`config`]: environment parsing with errors that name the variable and the
//!   position; [`env_vars!`] declares a component's variables.
//! - [`correlation`]: the current request's correlation ID, as a task-local.
//! - [`grpc`]: gRPC wire knowledge (status codes, content type, paths,
//!   `grpc-message` encoding, trailers-only responses).
//! - [`http`]: HTTP method classes, host and port, percent-encoding.
//! - [`resource`]: parsing of `OTEL_RESOURCE_ATTRIBUTES`.
//! - [`metric_name`]: the one rule for metric names.
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
pub mod http;
pub mod metric_name;
pub mod outcome;
mod relay;
pub mod resource;

pub use body::{BodyEnd, BodyTimedOut, BodyTimeoutSignal, CompletionBody, Ignore, OnEnd};
pub use config::{ConfigError, Env, ParseError};
pub use correlation::{CorrelationId, InvalidCorrelationId};
pub use grpc::GrpcCode;
pub use outcome::{FailurePolicy, Outcome, Refusal, ResponseHead, Side, is_timeout, status_str};

/// Implements `get_ref`, `get_mut` and `into_inner` for a middleware service
/// whose wrapped service is the field `inner`, as every telltale service has
/// them (tower-http's `define_inner_service_accessors!`).
///
/// ```
/// pub struct FooService<S> {
///     inner: S,
/// }
///
/// impl<S> FooService<S> {
///     telltale_core::inner_service_accessors!();
/// }
///
/// let mut svc = FooService { inner: 1 };
/// *svc.get_mut() += 1;
/// assert_eq!(*svc.get_ref(), 2);
/// assert_eq!(svc.into_inner(), 2);
/// ```
#[macro_export]
macro_rules! inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// The wrapped service, unwrapped.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

/// The boxed error type tower middleware uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
