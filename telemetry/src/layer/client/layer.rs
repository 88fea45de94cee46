use std::fmt;
use std::sync::Arc;

use telltale_core::config::{Env, EnvSource};
use tower_layer::Layer;

use super::ClientTelemetryService;
use super::env::{CAPTURE_REQUEST_HEADERS, CAPTURE_RESPONSE_HEADERS, PROPAGATE};
use crate::layer::error::BuildError;
use crate::layer::settings::{Common, Settings, common_setters, layer_common};
use crate::metrics::Kind;

/// What the client layer prepared once and shares with every request.
pub(crate) struct Shared {
    pub(crate) common: Common,
    pub(crate) propagate: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientTelemetryLayer");
        self.common.debug_fields(&mut d);
        d.field("propagate", &self.propagate).finish()
    }
}

/// The client request layer: CLIENT span, injected trace context and client RED
/// metrics. See the [module docs](super).
#[derive(Clone)]
pub struct ClientTelemetryLayer {
    pub(crate) shared: Arc<Shared>,
}

layer_common!(
    ClientTelemetryLayer,
    ClientTelemetryLayerBuilder,
    ClientTelemetryService,
    "A layer with the defaults: spans, metrics and propagation on, default redacted query keys, no captured headers. Reads no environment variable."
);

/// Builds a [`ClientTelemetryLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientTelemetryLayerBuilder {
    settings: Settings,
    propagate: bool,
}

impl Default for ClientTelemetryLayerBuilder {
    fn default() -> Self {
        ClientTelemetryLayerBuilder {
            settings: Settings::default(),
            propagate: true,
        }
    }
}

impl ClientTelemetryLayerBuilder {
    common_setters!("url.full");

    /// Whether `traceparent`/`tracestate` are injected. Defaults to `true`.
    pub fn propagate(mut self, propagate: bool) -> Self {
        self.propagate = propagate;
        self
    }

    /// Applies the variables set in `env` ([`env::VARS`](super::env::VARS) and
    /// [`metrics::env::VARS`](crate::metrics::env::VARS)) over this builder's
    /// settings; unset variables keep them.
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        self.settings
            .env(env, CAPTURE_REQUEST_HEADERS, CAPTURE_RESPONSE_HEADERS)?;
        if let Some(v) = env.boolean(PROPAGATE)? {
            self.propagate = v;
        }
        Ok(self)
    }

    /// Builds the layer; fails on an invalid header name.
    pub fn build(self) -> Result<ClientTelemetryLayer, BuildError> {
        Ok(ClientTelemetryLayer {
            shared: Arc::new(Shared {
                common: self.settings.build((Kind::HttpClient, Kind::RpcClient))?,
                propagate: self.propagate,
            }),
        })
    }
}
