use std::fmt;
use std::sync::Arc;

use telltale_core::config::{Env, EnvSource};
use tower_layer::Layer;

use super::Client;
use crate::layer::attrs::{Capture, DEFAULT_REDACTED_QUERY_KEYS, Redactor, header_names};
use crate::layer::error::BuildError;
use crate::layer::server::REDACTED_QUERY_KEYS_VAR;
use crate::metrics::{Kind, RedConfig, RedMetrics};

/// Comma-separated request headers recorded as `http.request.header.<name>`.
pub const CAPTURE_REQUEST_HEADERS_VAR: &str = "TELLTALE_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS";
/// Comma-separated response headers recorded as `http.response.header.<name>`.
pub const CAPTURE_RESPONSE_HEADERS_VAR: &str = "TELLTALE_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS";
/// Boolean: inject the trace context into outbound requests (on by default).
pub const PROPAGATE_VAR: &str = "TELLTALE_HTTP_CLIENT_PROPAGATE";

pub(crate) struct Shared {
    pub(crate) redactor: Redactor,
    pub(crate) request_headers: Capture,
    /// Shared with response futures that capture response headers.
    pub(crate) response_headers: Arc<Capture>,
    pub(crate) propagate: bool,
    pub(crate) tracing: bool,
    pub(crate) http_metrics: Option<RedMetrics>,
    pub(crate) rpc_metrics: Option<RedMetrics>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLayer")
            .field("redactor", &self.redactor)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("propagate", &self.propagate)
            .field("tracing", &self.tracing)
            .field("http_metrics", &self.http_metrics)
            .field("rpc_metrics", &self.rpc_metrics)
            .finish()
    }
}

/// The client request layer: CLIENT span, injected trace context and client RED
/// metrics. See the [module docs](super).
#[derive(Clone)]
pub struct ClientLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl Default for ClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientLayer {
    /// A layer with the defaults: spans, metrics and propagation on, default
    /// redacted query keys, no captured headers. Reads no environment variable.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to configure the layer.
    pub fn builder() -> ClientLayerBuilder {
        ClientLayerBuilder::default()
    }

    /// A layer configured from the process environment (see the `*_VAR`
    /// constants of this module, [`REDACTED_QUERY_KEYS_VAR`] and
    /// [`RedConfig::from_env`]).
    pub fn from_env() -> Result<Self, BuildError> {
        Self::from_env_source(&Env::process())
    }

    /// A layer configured from `env`.
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, BuildError> {
        ClientLayerBuilder::default().env(env)?.build()
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Client {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`ClientLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientLayerBuilder {
    redacted_keys: Vec<String>,
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    propagate: bool,
    tracing: bool,
    metrics: bool,
    red_config: RedConfig,
}

impl Default for ClientLayerBuilder {
    fn default() -> Self {
        ClientLayerBuilder {
            redacted_keys: DEFAULT_REDACTED_QUERY_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            propagate: true,
            tracing: true,
            metrics: true,
            red_config: RedConfig::default(),
        }
    }
}

impl ClientLayerBuilder {
    /// Query keys (case-insensitive) whose values are replaced by `REDACTED` in
    /// `url.full`; replaces the list. Defaults to
    /// [`DEFAULT_REDACTED_QUERY_KEYS`](crate::layer::DEFAULT_REDACTED_QUERY_KEYS).
    pub fn redacted_query_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.redacted_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Request headers recorded as `http.request.header.<name>`. Defaults to none.
    pub fn capture_request_headers<I, H>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        self.request_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Response headers recorded as `http.response.header.<name>`. Defaults to none.
    pub fn capture_response_headers<I, H>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        self.response_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `traceparent`/`tracestate` are injected. Defaults to `true`.
    pub fn propagate(mut self, propagate: bool) -> Self {
        self.propagate = propagate;
        self
    }

    /// Whether spans are produced. Defaults to `true`.
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    /// Whether RED metrics are recorded. Defaults to `true`.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// The metrics configuration. Defaults to [`RedConfig::default`].
    pub fn red_config(mut self, config: RedConfig) -> Self {
        self.red_config = config;
        self
    }

    /// Applies the variables set in `env` over this builder's settings; the
    /// metrics configuration is replaced by [`RedConfig::from_env_source`] (set
    /// a recorder with [`red_config`](Self::red_config) after this call).
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        if let Some(v) = env.list(REDACTED_QUERY_KEYS_VAR)? {
            self.redacted_keys = v;
        }
        if let Some(v) = env.list(CAPTURE_REQUEST_HEADERS_VAR)? {
            self.request_headers = v;
        }
        if let Some(v) = env.list(CAPTURE_RESPONSE_HEADERS_VAR)? {
            self.response_headers = v;
        }
        if let Some(v) = env.boolean(PROPAGATE_VAR)? {
            self.propagate = v;
        }
        self.red_config = RedConfig::from_env_source(env)?;
        Ok(self)
    }

    /// Builds the layer; fails on an invalid header name.
    pub fn build(self) -> Result<ClientLayer, BuildError> {
        let request = header_names(&self.request_headers).map_err(BuildError::HeaderName)?;
        let response = header_names(&self.response_headers).map_err(BuildError::HeaderName)?;
        let (http_metrics, rpc_metrics) = if self.metrics {
            (
                Some(RedMetrics::new(Kind::HttpClient, &self.red_config)),
                Some(RedMetrics::new(Kind::RpcClient, &self.red_config)),
            )
        } else {
            (None, None)
        };
        Ok(ClientLayer {
            shared: Arc::new(Shared {
                redactor: Redactor::new(&self.redacted_keys),
                request_headers: Capture::new("http.request.header.", &request),
                response_headers: Arc::new(Capture::new("http.response.header.", &response)),
                propagate: self.propagate,
                tracing: self.tracing,
                http_metrics,
                rpc_metrics,
            }),
        })
    }
}
