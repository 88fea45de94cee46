//! The response body of the breaker service: the result settles when it ends.

use telltale_core::{BodyEnd, CompletionBody, OnEnd, ResponseHead};

use super::BreakerPermit;

/// The response body of [`CircuitBreakerService`](super::CircuitBreakerService):
/// the call's result is recorded when the body ends (end of stream, trailers,
/// error or drop), classified from the response head and the body's end.
pub type ResponseBody<B> = CompletionBody<B, SettleOnEnd>;

/// Records a breaker result when a [`ResponseBody`] ends.
///
/// A body timeout outside the breaker drops the body it ends with
/// `telltale_core::body::drop_timed_out`: the end is then
/// [`BodyEnd::TimedOut`], not a caller that went away.
#[derive(Debug)]
pub struct SettleOnEnd {
    pub(crate) permit: BreakerPermit,
    pub(crate) head: ResponseHead,
}

impl OnEnd for SettleOnEnd {
    fn on_end(self, end: BodyEnd<'_>) {
        self.permit.record_outcome(&self.head.finish(&end));
    }
}
