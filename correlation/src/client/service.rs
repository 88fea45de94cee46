use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use telltale_core::correlation::{self, CorrelationId};
use tower_service::Service;

use super::layer::Shared;

/// Middleware that sets the current correlation ID on outbound requests: see
/// the [module docs](super).
///
/// Its future is the inner service's own: the header is set before the call.
#[derive(Clone, Debug)]
pub struct InjectCorrelationService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> InjectCorrelationService<S> {
    telltale_core::inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for InjectCorrelationService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        if shared.override_existing || !req.headers().contains_key(&shared.header) {
            let value = match req.extensions().get::<CorrelationId>() {
                Some(id) => Some(id.to_header_value()),
                None => correlation::with_current(|id| id.map(CorrelationId::to_header_value)),
            }
            .or_else(|| {
                shared
                    .generate
                    .then(|| CorrelationId::generate().to_header_value())
            });
            if let Some(value) = value {
                req.headers_mut().insert(&shared.header, value);
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderValue, Response};
    use tower::{Layer, ServiceExt, service_fn};

    use super::super::InjectCorrelationLayer;
    use super::*;

    fn echo_header() -> impl Service<
        Request<()>,
        Response = Response<Option<HeaderValue>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(
                req.headers().get("x-correlation-id").cloned(),
            ))
        })
    }

    async fn send(layer: &InjectCorrelationLayer, req: Request<()>) -> Option<HeaderValue> {
        layer
            .layer(echo_header())
            .oneshot(req)
            .await
            .unwrap()
            .into_body()
    }

    #[tokio::test]
    async fn sources_in_order() {
        let layer = InjectCorrelationLayer::new();
        let task: CorrelationId = "from-task".parse().unwrap();
        let ext: CorrelationId = "from-ext".parse().unwrap();

        assert_eq!(send(&layer, Request::new(())).await, None);
        let sent = correlation::scope(task.clone(), send(&layer, Request::new(()))).await;
        assert_eq!(sent.unwrap(), "from-task");

        let mut req = Request::new(());
        req.extensions_mut().insert(ext.clone());
        let sent = correlation::scope(task.clone(), send(&layer, req)).await;
        assert_eq!(sent.unwrap(), "from-ext");

        let req = Request::builder()
            .header("x-correlation-id", "caller")
            .body(())
            .unwrap();
        let sent = correlation::scope(task.clone(), send(&layer, req)).await;
        assert_eq!(sent.unwrap(), "caller");

        let overriding = InjectCorrelationLayer::builder()
            .override_existing(true)
            .build()
            .unwrap();
        let req = Request::builder()
            .header("x-correlation-id", "caller")
            .body(())
            .unwrap();
        let sent = correlation::scope(task, send(&overriding, req)).await;
        assert_eq!(sent.unwrap(), "from-task");

        let generating = InjectCorrelationLayer::builder()
            .generate_when_absent(true)
            .build()
            .unwrap();
        let sent = send(&generating, Request::new(())).await.unwrap();
        assert_eq!(sent.len(), 36);
    }
}
