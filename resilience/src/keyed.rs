//! One breaker or bulkhead per key (host, route template, gRPC method) in a
//! single layer, with a cap on keys and idle eviction.
//!
//! A [`Registry`] holds at most `max_keys` instances. A request whose key is
//! new when the registry is full first evicts instances idle for longer than
//! `idle_timeout`; if none is, it shares the *overflow* instance (named
//! `{name}/_overflow`), as do requests without a key. So a flood of distinct
//! keys costs at most `max_keys + 1` instances and metric series (series of
//! evicted instances stop changing; an exporter's idle timeout drops them).
//!
//! Looking up a known key takes a read lock and one atomic store; only a new
//! key takes the write lock.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::CircuitBreaker;
//! use telltale_resilience::keyed::{self, Registry};
//! use tower::ServiceBuilder;
//!
//! let registry = Registry::breakers(CircuitBreaker::builder("upstream"), 100, Duration::from_secs(600)).unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(keyed::KeyedBreakerLayer::new(registry.clone(), keyed::Host))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! assert_eq!(registry.get(Some("api.example.com")).name(), "upstream/api.example.com");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, header::HOST};
use telltale_core::BoxError;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{self, CircuitBreaker, CircuitBreakerBuilder};
use crate::bulkhead::{self, Bulkhead, BulkheadBuilder};
use crate::error::{BuildError, Error};

/// Extracts the key of a request.
pub trait KeyFn<B> {
    /// The key, borrowed from the request where possible; `None` goes to the
    /// overflow instance.
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>>;
}

/// Keys by host: the URI's authority host (clients), else the `Host` header
/// (servers), without the port.
#[derive(Clone, Copy, Debug, Default)]
pub struct Host;

impl<B> KeyFn<B> for Host {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let host = match req.uri().host() {
            Some(h) => h,
            None => {
                let h = req.headers().get(HOST)?.to_str().ok()?;
                h.rsplit_once(':')
                    .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                    .map_or(h, |(host, _)| host)
            }
        };
        Some(Cow::Borrowed(host))
    }
}

/// Keys by gRPC method: the path `/package.Service/Method` (a gRPC path is its
/// own route template). Non-gRPC-looking paths go to the overflow instance.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMethod;

impl<B> KeyFn<B> for GrpcMethod {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let path = req.uri().path();
        let rest = path.strip_prefix('/')?;
        let (service, method) = rest.split_once('/')?;
        (!service.is_empty() && !method.is_empty() && !method.contains('/'))
            .then_some(Cow::Borrowed(path))
    }
}

/// Keys with a function, for example by route template from a router's
/// request extension (axum's `MatchedPath`): never key by raw path.
///
/// ```
/// use std::borrow::Cow;
/// use telltale_resilience::keyed::key_fn;
///
/// #[derive(Clone)]
/// struct Route(&'static str);
/// let by_route = key_fn(|req: &http::Request<()>| req.extensions().get::<Route>().map(|r| Cow::Borrowed(r.0)));
/// # let _ = by_route;
/// ```
pub fn key_fn<B, F>(f: F) -> FnKey<F>
where
    F: for<'r> Fn(&'r Request<B>) -> Option<Cow<'r, str>>,
{
    FnKey(f)
}

/// A [`KeyFn`] made by [`key_fn`].
#[derive(Clone, Copy)]
pub struct FnKey<F>(F);

impl<F> fmt::Debug for FnKey<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnKey")
    }
}

impl<B, F> KeyFn<B> for FnKey<F>
where
    F: for<'r> Fn(&'r Request<B>) -> Option<Cow<'r, str>>,
{
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        (self.0)(req)
    }
}

struct Slot<T> {
    value: T,
    last_used: AtomicU64,
}

type Make<T> = Box<dyn Fn(&str) -> T + Send + Sync>;

/// Instances by key, capped, with idle eviction. See the [module docs](self).
pub struct Registry<T> {
    base: Arc<str>,
    make: Make<T>,
    map: RwLock<HashMap<Box<str>, Slot<T>>>,
    max_keys: usize,
    idle_nanos: u64,
    origin: Instant,
    overflow: T,
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.base)
            .field("keys", &self.map.read().map(|m| m.len()).unwrap_or(0))
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

impl Registry<CircuitBreaker> {
    /// One breaker per key, each built from `builder` with the name
    /// `{name}/{key}`.
    pub fn breakers(
        builder: CircuitBreakerBuilder,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>, BuildError> {
        builder.validate()?;
        let base = builder.name.clone();
        let overflow = builder.clone().name(format!("{base}/_overflow")).build()?;
        let make = move |key: &str| {
            builder
                .clone()
                .name(format!("{base}/{key}"))
                .build()
                .expect("validated")
        };
        Ok(Self::new(
            overflow.name().into(),
            Box::new(make),
            max_keys,
            idle_timeout,
            overflow,
        ))
    }
}

impl Registry<Bulkhead> {
    /// One bulkhead per key, each built from `builder` with the name
    /// `{name}/{key}`.
    pub fn bulkheads(
        builder: BulkheadBuilder,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>, BuildError> {
        let base = builder.name_ref().clone();
        let overflow = builder.clone().name(format!("{base}/_overflow")).build()?;
        let make = move |key: &str| {
            builder
                .clone()
                .name(format!("{base}/{key}"))
                .build()
                .expect("validated")
        };
        Ok(Self::new(
            overflow.name().into(),
            Box::new(make),
            max_keys,
            idle_timeout,
            overflow,
        ))
    }
}

impl<T: Clone> Registry<T> {
    fn new(
        base: Arc<str>,
        make: Make<T>,
        max_keys: usize,
        idle: Duration,
        overflow: T,
    ) -> Arc<Self> {
        Arc::new(Registry {
            base,
            make,
            map: RwLock::new(HashMap::new()),
            max_keys,
            idle_nanos: breaker_nanos(idle),
            origin: Instant::now(),
            overflow,
        })
    }

    fn now(&self) -> u64 {
        breaker_nanos(Instant::now().saturating_duration_since(self.origin))
    }

    /// The instance for `key` (created if there is room), or the overflow one.
    pub fn get(&self, key: Option<&str>) -> T {
        let Some(key) = key else {
            return self.overflow.clone();
        };
        let now = self.now();
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = map.get(key) {
                slot.last_used.store(now, Ordering::Relaxed);
                return slot.value.clone();
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get(key) {
            slot.last_used.store(now, Ordering::Relaxed);
            return slot.value.clone();
        }
        if map.len() >= self.max_keys {
            let idle = self.idle_nanos;
            map.retain(|_, slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
        }
        if map.len() >= self.max_keys {
            return self.overflow.clone();
        }
        let value = (self.make)(key);
        map.insert(
            key.into(),
            Slot {
                value: value.clone(),
                last_used: AtomicU64::new(now),
            },
        );
        value
    }

    /// The overflow instance (no key, or no room).
    pub fn overflow(&self) -> &T {
        &self.overflow
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops instances idle for longer than the idle timeout now (also done
    /// on demand when the registry is full).
    pub fn evict_idle(&self) {
        let now = self.now();
        let idle = self.idle_nanos;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
    }
}

fn breaker_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A layer with one circuit breaker per key.
#[derive(Debug)]
pub struct KeyedBreakerLayer<K> {
    registry: Arc<Registry<CircuitBreaker>>,
    key: K,
}

impl<K: Clone> Clone for KeyedBreakerLayer<K> {
    fn clone(&self) -> Self {
        KeyedBreakerLayer {
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K> KeyedBreakerLayer<K> {
    /// Breakers from `registry`, chosen by `key`.
    pub fn new(registry: Arc<Registry<CircuitBreaker>>, key: K) -> Self {
        KeyedBreakerLayer { registry, key }
    }
}

impl<S, K: Clone> Layer<S> for KeyedBreakerLayer<K> {
    type Service = KeyedBreakerService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBreakerService {
            inner,
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

/// The service of [`KeyedBreakerLayer`].
#[derive(Debug)]
pub struct KeyedBreakerService<S, K> {
    inner: S,
    registry: Arc<Registry<CircuitBreaker>>,
    key: K,
}

impl<S: Clone, K: Clone> Clone for KeyedBreakerService<S, K> {
    fn clone(&self) -> Self {
        KeyedBreakerService {
            inner: self.inner.clone(),
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for KeyedBreakerService<S, K>
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
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::Inner(e.into()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let breaker = self.registry.get(self.key.key(&req).as_deref());
        match breaker.try_acquire() {
            Ok(permit) => breaker::ResponseFuture::new(Ok(permit), self.inner.call(req)),
            Err(open) => breaker::ResponseFuture::rejected(open),
        }
    }
}

/// A layer with one bulkhead per key.
#[derive(Debug)]
pub struct KeyedBulkheadLayer<K> {
    registry: Arc<Registry<Bulkhead>>,
    key: K,
}

impl<K: Clone> Clone for KeyedBulkheadLayer<K> {
    fn clone(&self) -> Self {
        KeyedBulkheadLayer {
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K> KeyedBulkheadLayer<K> {
    /// Bulkheads from `registry`, chosen by `key`.
    pub fn new(registry: Arc<Registry<Bulkhead>>, key: K) -> Self {
        KeyedBulkheadLayer { registry, key }
    }
}

impl<S, K: Clone> Layer<S> for KeyedBulkheadLayer<K> {
    type Service = KeyedBulkheadService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBulkheadService {
            inner,
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

/// The service of [`KeyedBulkheadLayer`].
#[derive(Debug)]
pub struct KeyedBulkheadService<S, K> {
    inner: S,
    registry: Arc<Registry<Bulkhead>>,
    key: K,
}

impl<S: Clone, K: Clone> Clone for KeyedBulkheadService<S, K> {
    fn clone(&self) -> Self {
        KeyedBulkheadService {
            inner: self.inner.clone(),
            registry: self.registry.clone(),
            key: self.key.clone(),
        }
    }
}

impl<S, K, ReqBody, ResBody> Service<Request<ReqBody>> for KeyedBulkheadService<S, K>
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
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::Inner(e.into()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let bulkhead = self.registry.get(self.key.key(&req).as_deref());
        bulkhead::call_through(&mut self.inner, &bulkhead, req)
    }
}
