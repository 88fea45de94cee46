//! The keyed layers.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{KeyedService, Registry};
use crate::{Bulkhead, CircuitBreaker};

/// A layer with one `T` (a [`CircuitBreaker`] or a [`Bulkhead`]) per key,
/// taken from a [`Registry`] by the [`KeyFn`](super::KeyFn) `K`.
pub struct KeyedLayer<T, K> {
    registry: Arc<Registry<T>>,
    key: K,
}

/// A layer with one circuit breaker per key.
pub type KeyedBreakerLayer<K> = KeyedLayer<CircuitBreaker, K>;

/// A layer with one bulkhead per key.
pub type KeyedBulkheadLayer<K> = KeyedLayer<Bulkhead, K>;

impl<T, K> KeyedLayer<T, K> {
    /// Instances from `registry`, chosen by `key`.
    pub fn new(registry: Arc<Registry<T>>, key: K) -> Self {
        KeyedLayer { registry, key }
    }
}

impl<T, K: Clone> Clone for KeyedLayer<T, K> {
    fn clone(&self) -> Self {
        KeyedLayer::new(self.registry.clone(), self.key.clone())
    }
}

impl<T, K: fmt::Debug> fmt::Debug for KeyedLayer<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLayer")
            .field("registry", &self.registry)
            .field("key", &self.key)
            .finish()
    }
}

impl<S, T, K: Clone> Layer<S> for KeyedLayer<T, K> {
    type Service = KeyedService<S, T, K>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedService::new(inner, self.registry.clone(), self.key.clone())
    }
}
