//! [`BodyTimeoutLayer`].

use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tower_layer::Layer;

use super::BodyTimeoutService;
use super::reaper::Reaper;

/// Ends response bodies whose reader is idle longer than a timeout; see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct BodyTimeoutLayer {
    pub(super) shared: Arc<Shared>,
}

/// What the services of one layer share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) name: Arc<str>,
    pub(super) idle: Option<Duration>,
    pub(super) timeouts: Counter,
    /// The one task and queue ending the bodies of stalled readers.
    pub(super) reaper: Reaper,
}

impl BodyTimeoutLayer {
    /// A layer ending bodies idle for `idle` (`None`: no bound, the bodies
    /// pass through untouched), counted under `name` (the name of the
    /// bulkhead it protects) in `telltale_bulkhead_body_timeouts_total`.
    pub fn new(name: impl Into<Arc<str>>, idle: Option<Duration>) -> Self {
        let name = name.into();
        let timeouts = if idle.is_some() {
            let metric = crate::names::described(None, crate::names::BULKHEAD_BODY_TIMEOUTS);
            metrics::counter!(metric, "name" => name.to_string())
        } else {
            Counter::noop()
        };
        BodyTimeoutLayer {
            shared: Arc::new(Shared {
                name,
                idle,
                timeouts,
                reaper: Reaper::default(),
            }),
        }
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.shared.idle
    }
}

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTimeoutService::new(inner, self.shared.clone())
    }
}
