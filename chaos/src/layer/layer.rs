use tower_layer::Layer;

use super::service::Chaos;
use crate::injector::Injector;
use crate::rules::Direction;

/// Applies an [`Injector`]'s rules on one side of a service.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct ChaosLayer {
    injector: Injector,
    side: Direction,
}

impl ChaosLayer {
    /// Server side: `in` (and `any`) rules, applied to requests the service receives.
    pub fn inbound(injector: &Injector) -> Self {
        ChaosLayer {
            injector: injector.clone(),
            side: Direction::In,
        }
    }

    /// Client side: `out` (and `any`) rules, applied to requests sent to a dependency.
    pub fn outbound(injector: &Injector) -> Self {
        ChaosLayer {
            injector: injector.clone(),
            side: Direction::Out,
        }
    }
}

impl<S> Layer<S> for ChaosLayer {
    type Service = Chaos<S>;

    fn layer(&self, inner: S) -> Chaos<S> {
        Chaos::new(inner, self.injector.clone(), self.side)
    }
}
