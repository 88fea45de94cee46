//! The response body of the breaker service: the result settles when it ends.

use telltale_core::{BodyEnd, BodyTimeoutSignal, CompletionBody, OnEnd, ResponseHead};

use super::BreakerPermit;

/// The response body of [`CircuitBreakerService`](super::CircuitBreakerService):
/// the call's result is recorded when the body ends (end of stream, trailers,
/// error or drop), classified from the response head and the body's end.
pub type ResponseBody<B> = CompletionBody<B, SettleOnEnd>;

/// Records a breaker result when a [`ResponseBody`] ends.
#[derive(Debug)]
pub struct SettleOnEnd {
    pub(crate) permit: BreakerPermit,
    pub(crate) head: ResponseHead,
    /// The signal of a body timeout outside the breaker: a body it drops
    /// ended by a timeout, not by a caller that went away.
    pub(crate) signal: Option<BodyTimeoutSignal>,
}

impl OnEnd for SettleOnEnd {
    fn on_end(self, end: BodyEnd<'_>) {
        let end = match &self.signal {
            Some(signal) => signal.resolve(end),
            None => end,
        };
        self.permit.record_outcome(&self.head.finish(&end));
    }
}
