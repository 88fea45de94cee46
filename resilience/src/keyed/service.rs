//! The keyed services.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use telltale_core::BoxError;
use tower_service::Service;

use super::{KeyFn, Registry};
use crate::error::Error;
use crate::{Bulkhead, CircuitBreaker, breaker, bulkhead};

/// The service of [`KeyedLayer`](super::KeyedLayer): each request goes
/// through the `T` of its key.
pub struct KeyedService<S, T, K> {
    inner: S,
    registry: Arc<Registry<T>>,
    key: K,
}

/// A service with one circuit breaker per key.
pub type KeyedBreakerService<S, K> = KeyedService<S, CircuitBreaker, K>;

/// A service with one bulkhead per key.
pub type KeyedBulkheadService<S, K> = KeyedService<S, Bulkhead, K>;

impl<S, T, K> KeyedService<S, T, K> {
    /// Wraps `inner`: each request goes through the instance of `registry`
    /// chosen by `key`.
    pub fn new(inner: S, registry: Arc<Registry<T>>, key: K) -> Self {
        KeyedService {
            inner,
            registry,
            key,
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry<T>> {
        &self.registry
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn poll_inner<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::Inner(e.into()))
    }
}

impl<S: Clone, T, K: Clone> Clone for KeyedService<S, T, K> {
    fn clone(&self) -> Self {
        KeyedService::new(self.inner.clone(), self.registry.clone(), self.key.clone())
    }
}

impl<S: fmt::Debug, T, K: fmt::Debug> fmt::Debug for KeyedService<S, T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedService")
            .field("inner", &self.inner)
            .field("registry", &self.registry)
            .field("key", &self.key)
            .finish()
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for KeyedService<S, CircuitBreaker, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
    K: KeyFn<ReqBody>,
{
    type Response = Response<breaker::ResponseBody<ResBody>>;
    type Error = Error;
    type Future = breaker::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_inner(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // One clock read for the registry (last use) and the breaker.
        let now = tokio::time::Instant::now();
        let breaker = match self.key.key(&req) {
            Some(key) => self.registry.get_at(&key, now),
            None => self.registry.overflow().clone(),
        };
        breaker::call_through_at(&mut self.inner, &breaker, req, now)
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for KeyedService<S, Bulkhead, K>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
    K: KeyFn<ReqBody>,
{
    type Response = Response<bulkhead::ResponseBody<ResBody>>;
    type Error = Error;
    type Future = bulkhead::ResponseFuture<S, Request<ReqBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_inner(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let bulkhead = self.registry.get(self.key.key(&req).as_deref());
        bulkhead::call_through(&mut self.inner, &bulkhead, req)
    }
}
