//! The bridge between reqwest-middleware and tower: a reqwest request as an
//! `http::Request` the telltale layers understand, the rest of the
//! middleware chain ([`Next`]) as the tower service at the bottom of the
//! stack, and the layered response back as a `reqwest::Response`.
//!
//! Written here because neither reqwest nor reqwest-middleware offers it:
//! reqwest's own `http::Request` conversion drops the per-request timeout,
//! and no published adapter runs tower layers inside a reqwest-middleware
//! chain while keeping its `Extensions` flowing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use http::Extensions;
use reqwest::{ResponseBuilderExt, Url};
use reqwest_middleware::Next;
use tower::Service;

/// The request travelling through the tower layers: its method, URI,
/// version and headers are the `http::Request`'s parts (the layers read and
/// write those), and the rest of the reqwest request (URL, body, per-request
/// timeout) rides along untouched as the body.
pub(crate) struct Pending(reqwest::Request);

/// The middleware chain's `Extensions`, shared between
/// [`ReqwestStack::handle`](crate::ReqwestStack) and the bottom service: the
/// layers may refuse a call without reaching the bottom, and what the rest of
/// the chain changes must come back either way.
pub(crate) type ExtensionsSlot = Arc<Mutex<Extensions>>;

fn lock(slot: &ExtensionsSlot) -> MutexGuard<'_, Extensions> {
    // Never poisoned by this crate (nothing panics while it is held).
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves the middleware chain's extensions into a slot.
pub(crate) fn take_extensions(extensions: &mut Extensions) -> ExtensionsSlot {
    Arc::new(Mutex::new(std::mem::take(extensions)))
}

/// Moves them back.
pub(crate) fn restore_extensions(slot: &ExtensionsSlot, extensions: &mut Extensions) {
    *extensions = std::mem::take(&mut *lock(slot));
}

/// `req` as an `http::Request` whose parts the layers see, at `uri` (its
/// URL as an `http::Uri`).
pub(crate) fn to_http(mut req: reqwest::Request, uri: http::Uri) -> http::Request<Pending> {
    let method = req.method().clone();
    let version = req.version();
    let headers = std::mem::take(req.headers_mut());
    let mut out = http::Request::new(Pending(req));
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.version_mut() = version;
    *out.headers_mut() = headers;
    out
}

/// The URL reqwest reports for a response (after redirects).
#[derive(Clone, Debug)]
struct FinalUrl(Url);

/// A layered response as a `reqwest::Response`: the body wrapped (so the
/// layers still see it end), the extensions kept, and the URL the response
/// came from (the request's when a layer answered without calling).
pub(crate) fn to_reqwest<B>(res: http::Response<B>, request_url: Url) -> reqwest::Response
where
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<bytes::Bytes>,
    B::Error: Into<telltale_core::BoxError>,
{
    let (mut parts, body) = res.into_parts();
    let url = parts
        .extensions
        .remove::<FinalUrl>()
        .map_or(request_url, |u| u.0);
    // reqwest keeps a response's URL in a private extension that only its
    // response builder sets.
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    reqwest::Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}

/// What [`Next::run`] returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The rest of the middleware chain as the tower service at the bottom of
/// the stack.
#[derive(Clone)]
pub(crate) struct NextService<'a> {
    next: Next<'a>,
    extensions: ExtensionsSlot,
}

impl<'a> NextService<'a> {
    pub(crate) fn new(next: Next<'a>, extensions: ExtensionsSlot) -> Self {
        NextService { next, extensions }
    }
}

impl<'a> Service<http::Request<Pending>> for NextService<'a> {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest_middleware::Error;
    type Future = BoxFuture<'a, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Pending>) -> Self::Future {
        let next = self.next.clone();
        let slot = self.extensions.clone();
        Box::pin(async move {
            let (parts, Pending(mut request)) = req.into_parts();
            // The layers added `traceparent`, the correlation ID...
            *request.headers_mut() = parts.headers;
            // A copy: if the timeout drops this future, the slot keeps
            // the extensions the caller gave.
            let mut extensions = lock(&slot).clone();
            let result = next.run(request, &mut extensions).await;
            *lock(&slot) = extensions;
            let response = result?;
            let url = FinalUrl(response.url().clone());
            let mut response = http::Response::from(response);
            response.extensions_mut().insert(url);
            Ok(response)
        })
    }
}
