//! Errors: rejections (`CircuitOpen`, `BulkheadFull`), the layers' error enum
//! and the builders' error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header::RETRY_AFTER};
use telltale_core::{BoxError, ConfigError, Refusal};

use crate::breaker::State;

/// A call rejected because the circuit is open (or half-open with every probe
/// slot taken, or forced open).
///
/// Its `source()` is [`Refusal::CircuitOpen`], so that
/// [`Outcome::from_error`](telltale_core::Outcome::from_error) classifies it
/// (`error.type` `circuit_open`) without knowing this crate.
#[derive(Clone, Debug)]
pub struct CircuitOpen {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state that rejected the call.
    pub state: State,
    /// Time until the next probe may pass; `None` when forced open.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker `{}` is {}", self.name, self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, "; next probe in {d:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitOpen {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        static REFUSAL: Refusal = Refusal::CircuitOpen;
        Some(&REFUSAL)
    }
}

impl CircuitOpen {
    /// A `503 Service Unavailable` response with `Retry-After` (whole seconds,
    /// rounded up; omitted when forced open), for HTTP servers.
    ///
    /// ```
    /// use std::time::Duration;
    /// use telltale_resilience::{CircuitOpen, State};
    ///
    /// let err = CircuitOpen { name: "db".into(), state: State::Open, retry_after: Some(Duration::from_millis(1500)) };
    /// let res: http::Response<String> = err.to_response();
    /// assert_eq!(res.status(), 503);
    /// assert_eq!(res.headers()["retry-after"], "2");
    /// ```
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        if let Some(d) = self.retry_after {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

/// A call rejected because the bulkhead had no free slot within its max wait.
///
/// Its `source()` is [`Refusal::BulkheadFull`] (`error.type`
/// `bulkhead_full`), as for [`CircuitOpen`].
#[derive(Clone, Debug)]
pub struct BulkheadFull {
    /// The bulkhead's name.
    pub name: Arc<str>,
    /// Its maximum of concurrent calls.
    pub max_concurrent: usize,
    /// How long the call waited before being rejected.
    pub waited: Duration,
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead `{}` is full ({} concurrent calls, waited {:?})",
            self.name, self.max_concurrent, self.waited
        )
    }
}

impl std::error::Error for BulkheadFull {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        static REFUSAL: Refusal = Refusal::BulkheadFull;
        Some(&REFUSAL)
    }
}

impl BulkheadFull {
    /// A response with `status` (typically `503` or `429`) and `Retry-After: 1`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use telltale_resilience::BulkheadFull;
    ///
    /// let err = BulkheadFull { name: "api".into(), max_concurrent: 8, waited: Duration::ZERO };
    /// let res: http::Response<String> = err.to_response(http::StatusCode::TOO_MANY_REQUESTS);
    /// assert_eq!(res.status(), 429);
    /// ```
    pub fn to_response<B: Default>(&self, status: StatusCode) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = status;
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        res
    }
}

/// The error of the breaker and bulkhead services.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The circuit breaker rejected the call.
    #[error("{0}")]
    Open(#[source] CircuitOpen),
    /// The bulkhead rejected the call.
    #[error("{0}")]
    Full(#[source] BulkheadFull),
    /// The inner service failed (the error is also the `source()`, so chain
    /// walkers such as [`telltale_core::is_timeout`] see it).
    #[error("{0}")]
    Inner(#[source] BoxError),
}

impl Error {
    /// Whether the call was rejected (not attempted).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Error::Open(_) | Error::Full(_))
    }

    /// Finds a rejection in a boxed error, through [`Error`] and its sources:
    /// what an error handler (axum `HandleErrorLayer`, a client) receives after
    /// more layers boxed it.
    pub fn rejection_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<Rejection<'a>> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(open) = e.downcast_ref::<CircuitOpen>() {
                return Some(Rejection::Open(open));
            }
            if let Some(full) = e.downcast_ref::<BulkheadFull>() {
                return Some(Rejection::Full(full));
            }
            if let Some(Error::Open(open)) = e.downcast_ref::<Error>() {
                return Some(Rejection::Open(open));
            }
            if let Some(Error::Full(full)) = e.downcast_ref::<Error>() {
                return Some(Rejection::Full(full));
            }
            cur = e.source();
        }
        None
    }
}

/// A rejection found by [`Error::rejection_in`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// Rejected by a circuit breaker.
    Open(&'a CircuitOpen),
    /// Rejected by a bulkhead.
    Full(&'a BulkheadFull),
}

/// The error of the breaker's and bulkhead's builders (`build()`, `env()`)
/// and of their `from_env*()` constructors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A variable is malformed (the error names it, its value and the position).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting is out of range.
    #[error("invalid {setting}: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        message: &'static str,
    },
}

impl BuildError {
    pub(crate) fn invalid(setting: &'static str, message: &'static str) -> Self {
        BuildError::Invalid { setting, message }
    }

    /// The malformed variable, when that is the error.
    pub fn config(&self) -> Option<&ConfigError> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Invalid { .. } => None,
        }
    }
}
