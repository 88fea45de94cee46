use telltale_core::Side;
use tower_layer::Layer;

use super::service::ChaosService;
use crate::injector::Injector;

/// Applies an [`Injector`]'s rules on one side of a service.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct ChaosLayer {
    injector: Injector,
    side: Side,
}

impl ChaosLayer {
    /// Server side: `in` (and `any`) rules, applied to requests the service receives.
    pub fn inbound(injector: &Injector) -> Self {
        ChaosLayer {
            injector: injector.clone(),
            side: Side::Server,
        }
    }

    /// Client side: `out` (and `any`) rules, applied to requests sent to a dependency.
    pub fn outbound(injector: &Injector) -> Self {
        ChaosLayer {
            injector: injector.clone(),
            side: Side::Client,
        }
    }
}

impl<S> Layer<S> for ChaosLayer {
    type Service = ChaosService<S>;

    fn layer(&self, inner: S) -> ChaosService<S> {
        ChaosService::new(inner, self.injector.clone(), self.side)
    }
}
