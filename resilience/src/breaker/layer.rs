//! The breaker's tower layer.

use tower_layer::Layer;

use super::{CircuitBreaker, CircuitBreakerService};

/// Wraps an HTTP (or gRPC) service, client or server, in a [`CircuitBreaker`].
///
/// The breaker is checked when a request is called (an open circuit answers
/// [`Error::Open`](crate::Error::Open) at once, without calling the inner
/// service); the result settles when the response body ends, classified with
/// the breaker's [`FailurePolicy`](telltale_core::FailurePolicy); inner errors
/// are classified with [`Outcome::from_error`](telltale_core::Outcome::from_error),
/// so a `tower::timeout` inside the breaker counts as a failure.
///
/// ```
/// use telltale_resilience::{CircuitBreaker, CircuitBreakerLayer};
/// use tower::ServiceBuilder;
///
/// let breaker = CircuitBreaker::builder("upstream").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker.clone()))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    /// A layer sharing `breaker`'s state.
    pub fn new(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer { breaker }
    }
}

impl CircuitBreaker {
    /// A tower layer sharing this breaker's state.
    pub fn layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(self.clone())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breaker.clone())
    }
}
