//! [`BuildError`] (configuration) and the request path's errors: what the
//! middleware returns, and how to find telltale's own refusals in it.

use telltale_core::BoxError;
use telltale_core::config::ConfigError;
use telltale_resilience::Rejection;

/// Why a [`ReqwestStack`](crate::ReqwestStack) could not be built from the
/// environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A variable is malformed (the error names it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The telemetry request layer refused its settings.
    #[error(transparent)]
    Telemetry(#[from] telltale_telemetry::layer::BuildError),
    /// The correlation layer refused its settings.
    #[error(transparent)]
    Correlation(#[from] telltale_correlation::BuildError),
    /// The breaker or bulkhead template refused its settings.
    #[error(transparent)]
    Resilience(#[from] telltale_resilience::BuildError),
    /// The chaos rules or settings are malformed.
    #[error(transparent)]
    Chaos(#[from] telltale_chaos::ChaosError),
}

/// The error the composed tower stack ended with, as reqwest-middleware's
/// error: an error of the rest of the chain (the transport, inner
/// middleware) comes back unchanged, so `is_connect()`, `status()` and
/// retry middleware see what they would see without telltale; telltale's
/// own errors (an open breaker, a full bulkhead, the timeout, an injected
/// `abort`/`reset`) are [`reqwest_middleware::Error::Middleware`] holding
/// the [`telltale_resilience::Error`] whose source chain holds the cause, as
/// the boxed errors of the facade's `ClientStackService` do.
pub(crate) fn into_reqwest(err: BoxError) -> reqwest_middleware::Error {
    if from_the_chain(&*err) {
        return unwrap_inner(err);
    }
    match err.downcast::<telltale_resilience::Error>() {
        Ok(err) => reqwest_middleware::Error::Middleware(anyhow::Error::new(*err)),
        Err(err) => reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(err)),
    }
}

/// Whether `err` is an error of the rest of the chain, possibly inside the
/// breaker's and bulkhead's `Error::Inner`.
fn from_the_chain(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if err.is::<reqwest_middleware::Error>() {
        return true;
    }
    match err.downcast_ref::<telltale_resilience::Error>() {
        Some(telltale_resilience::Error::Inner(inner)) => from_the_chain(&**inner),
        _ => false,
    }
}

/// The error of the rest of the chain inside `err` ([`from_the_chain`]).
fn unwrap_inner(err: BoxError) -> reqwest_middleware::Error {
    let err = match err.downcast::<reqwest_middleware::Error>() {
        Ok(inner) => return *inner,
        Err(err) => err,
    };
    match err.downcast::<telltale_resilience::Error>() {
        Ok(err) => match *err {
            telltale_resilience::Error::Inner(inner) => unwrap_inner(inner),
            other => reqwest_middleware::Error::Middleware(anyhow::Error::new(other)),
        },
        Err(err) => reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(err)),
    }
}

/// The refusal of a breaker or bulkhead of the stack in `err`, if one
/// refused the call (which then never left the process).
///
/// ```
/// # async fn call(client: &reqwest_middleware::ClientWithMiddleware) {
/// match client.get("http://payments.internal/charge").send().await {
///     Err(err) if telltale_reqwest::rejection(&err).is_some() => { /* shed: fall back */ }
///     Err(err) => { /* a real failure */ let _ = err; }
///     Ok(response) => { let _ = response; }
/// }
/// # }
/// ```
pub fn rejection(err: &reqwest_middleware::Error) -> Option<Rejection<'_>> {
    match err {
        reqwest_middleware::Error::Middleware(e) => telltale_resilience::Error::rejection_in(&**e),
        _ => None,
    }
}

/// Whether the call timed out: the stack's timeout
/// ([`ReqwestStack::timeout`](crate::ReqwestStack::timeout)) or reqwest's own.
pub fn is_timeout(err: &reqwest_middleware::Error) -> bool {
    match err {
        reqwest_middleware::Error::Middleware(e) => telltale_core::is_timeout(&**e),
        reqwest_middleware::Error::Reqwest(e) => e.is_timeout(),
    }
}
