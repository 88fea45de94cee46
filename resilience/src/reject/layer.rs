//! [`RejectionResponseLayer`] and its two modes.

use std::convert::Infallible;
use std::fmt;

use http::StatusCode;
use telltale_core::BoxError;
use tower_layer::Layer;

use super::RejectionResponseService;

mod sealed {
    pub trait Sealed {}
}

/// What [`RejectionResponseService`] does with the errors that are neither
/// rejections nor timeouts: [`PassThrough`] or [`AnswerAll`]. Sealed.
pub trait Mode: sealed::Sealed + Copy + fmt::Debug + Send + Sync + 'static {
    /// The service's error type.
    type Error;

    /// `Ok(error)` to return `err`, `Err(err)` to answer it with a response.
    #[doc(hidden)]
    fn pass(err: BoxError) -> Result<Self::Error, BoxError>;
}

/// Other errors (and readiness errors) are returned as they are, boxed: the
/// default.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThrough;

/// Every error is answered: other errors become `500` (gRPC `INTERNAL`), and a
/// readiness error of the inner service is answered by the next call without
/// calling it. The service never fails (its error is [`Infallible`]), as axum
/// asks of a `Router` layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerAll;

impl sealed::Sealed for PassThrough {}
impl sealed::Sealed for AnswerAll {}

impl Mode for PassThrough {
    type Error = BoxError;

    fn pass(err: BoxError) -> Result<BoxError, BoxError> {
        Ok(err)
    }
}

impl Mode for AnswerAll {
    type Error = Infallible;

    fn pass(err: BoxError) -> Result<Infallible, BoxError> {
        Err(err)
    }
}

/// Turns rejections ([`CircuitOpen`](crate::CircuitOpen),
/// [`BulkheadFull`](crate::BulkheadFull)) and timeouts found in the inner
/// service's error into HTTP or gRPC responses; see the [module docs](super).
///
/// ```
/// use http::StatusCode;
/// use telltale_resilience::reject::RejectionResponseLayer;
///
/// // A full bulkhead answers 429; every other error is answered too (500).
/// let layer = RejectionResponseLayer::new()
///     .bulkhead_status(StatusCode::TOO_MANY_REQUESTS)
///     .answer_all();
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RejectionResponseLayer<M = PassThrough> {
    bulkhead_status: StatusCode,
    mode: M,
}

impl Default for RejectionResponseLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RejectionResponseLayer {
    /// `503` for both rejections; other errors pass through.
    pub fn new() -> Self {
        RejectionResponseLayer {
            bulkhead_status: StatusCode::SERVICE_UNAVAILABLE,
            mode: PassThrough,
        }
    }

    /// Answers every error; see [`AnswerAll`].
    #[must_use]
    pub fn answer_all(self) -> RejectionResponseLayer<AnswerAll> {
        RejectionResponseLayer {
            bulkhead_status: self.bulkhead_status,
            mode: AnswerAll,
        }
    }
}

impl<M> RejectionResponseLayer<M> {
    /// The HTTP status of a full bulkhead (`429 Too Many Requests` is the
    /// other usual choice). Defaults to `503`.
    #[must_use]
    pub fn bulkhead_status(mut self, status: StatusCode) -> Self {
        self.bulkhead_status = status;
        self
    }
}

impl<S, M: Mode> Layer<S> for RejectionResponseLayer<M> {
    type Service = RejectionResponseService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionResponseService::new(inner, self.bulkhead_status, self.mode)
    }
}
