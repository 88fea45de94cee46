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
//! Looking up a known key takes a read lock, one hash of the key and one
//! atomic store, and reads one slot of the table (keys up to 38 bytes are
//! kept inside it); only a new key takes the write lock.
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

mod layer;
mod registry;
mod service;

use std::borrow::Cow;
use std::fmt;

use http::{Request, header::HOST};
use telltale_core::grpc::split_path;
use telltale_core::http::split_host_port;

pub use layer::{KeyedBreakerLayer, KeyedBulkheadLayer, KeyedLayer};
pub use registry::Registry;
pub use service::{KeyedBreakerService, KeyedBulkheadService, KeyedService};

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
            None => split_host_port(req.headers().get(HOST)?.to_str().ok()?).0,
        };
        Some(Cow::Borrowed(host))
    }
}

/// Keys by gRPC method: the path `/package.Service/Method` (a gRPC path is its
/// own route template). Paths that are not gRPC paths
/// ([`telltale_core::grpc::split_path`]) go to the overflow instance.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMethod;

impl<B> KeyFn<B> for GrpcMethod {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let path = req.uri().path();
        split_path(path).map(|_| Cow::Borrowed(path))
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
