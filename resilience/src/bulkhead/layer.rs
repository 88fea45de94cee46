//! The bulkhead's tower layer.

use tower_layer::Layer;

use super::{Bulkhead, BulkheadService};

/// Wraps an HTTP (or gRPC) service in a [`Bulkhead`]: a slot is taken when the
/// request is called and released when the response body ends.
///
/// ```
/// use telltale_resilience::Bulkhead;
/// use tower::ServiceBuilder;
///
/// let bulkhead = Bulkhead::builder("db").max_concurrent(8).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(bulkhead.layer())
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer sharing `bulkhead`'s slots.
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(inner, self.bulkhead.clone())
    }
}
