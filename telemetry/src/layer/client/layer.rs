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
    pub(crate) origin: Option<Origin>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientTelemetryLayer");
        self.common.debug_fields(&mut d);
        d.field("propagate", &self.propagate)
            .field("origin", &self.origin.as_ref().map(|o| &o.uri))
            .finish()
    }
}

/// Where requests go when their URI has no authority: `scheme://host:port`,
/// with `server.address` and `server.port` split out once.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) uri: http::Uri,
    pub(crate) host: Box<str>,
    pub(crate) port: Option<u16>,
}

impl Origin {
    fn parse(uri: &http::Uri) -> Result<Self, BuildError> {
        let invalid = || BuildError::Origin {
            origin: uri.to_string(),
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid());
        };
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(invalid());
        }
        let port = authority.port_u16().or(match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        });
        let origin: http::Uri = format!("{scheme}://{authority}")
            .parse()
            .map_err(|_| invalid())?;
        Ok(Origin {
            uri: origin,
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .into(),
            port,
        })
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
    origin: Option<http::Uri>,
}

impl Default for ClientTelemetryLayerBuilder {
    fn default() -> Self {
        ClientTelemetryLayerBuilder {
            settings: Settings::default(),
            propagate: true,
            origin: None,
        }
    }
}

impl ClientTelemetryLayer {
    /// This layer with requests whose URI has no authority sent to `origin`
    /// (see [`ClientTelemetryLayerBuilder::origin`]); fails when `origin` is
    /// not `scheme://host[:port]`. The other settings are kept.
    ///
    /// ```
    /// use telltale_telemetry::layer::client::ClientTelemetryLayer;
    ///
    /// let layer = ClientTelemetryLayer::new().with_origin("http://10.0.0.1:50051".parse().unwrap());
    /// assert!(layer.is_ok());
    /// assert!(ClientTelemetryLayer::new().with_origin("/only/a/path".parse().unwrap()).is_err());
    /// ```
    pub fn with_origin(&self, origin: http::Uri) -> Result<Self, BuildError> {
        Ok(ClientTelemetryLayer {
            shared: Arc::new(Shared {
                common: self.shared.common.clone(),
                propagate: self.shared.propagate,
                origin: Some(Origin::parse(&origin)?),
            }),
        })
    }
}

impl ClientTelemetryLayerBuilder {
    common_setters!("url.full");

    /// Where the client sends requests whose URI carries no authority: the
    /// `scheme://host[:port]` of the channel the layer wraps. tonic sends
    /// path-only URIs (`/pkg.Service/Method`) and adds the origin inside its
    /// `Channel`, out of this layer's sight; with the origin set, its CLIENT
    /// spans get `server.address` and `server.port`, and so do the RED
    /// metrics (`server_address`, `server_port`). A request's own absolute
    /// URI or `Host` header wins. Without an origin or any of those, the
    /// span has no `server.*` and no `url.full` (never a bare path).
    /// [`build`](Self::build) fails when `origin` is not
    /// `scheme://host[:port]`. Defaults to none.
    ///
    /// ```
    /// use telltale_telemetry::layer::client::ClientTelemetryLayer;
    ///
    /// let layer = ClientTelemetryLayer::builder()
    ///     .origin("http://fraud.internal:50051".parse().unwrap())
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn origin(mut self, origin: http::Uri) -> Self {
        self.origin = Some(origin);
        self
    }

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
                origin: self.origin.as_ref().map(Origin::parse).transpose()?,
            }),
        })
    }
}
