use std::sync::Arc;

use http::HeaderName;
use telltale_core::config::{ConfigError, Env, EnvSource};
use tower_layer::Layer;

use super::InjectCorrelation;
use crate::config::{
    DEFAULT_HEADER, ENV_CLIENT_GENERATE, ENV_CLIENT_OVERRIDE, ENV_HEADER, HeaderSpec, env_header,
    header_spec, resolve,
};
use crate::error::BuildError;

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) header: HeaderName,
    pub(crate) override_existing: bool,
    pub(crate) generate: bool,
}

/// Layer that sets the current correlation ID on outbound requests: see the
/// [module docs](super).
///
/// Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct InjectCorrelationLayer {
    pub(crate) config: Arc<Config>,
}

impl InjectCorrelationLayer {
    /// The layer with every default: header `x-correlation-id`, an existing
    /// header left alone, nothing sent when there is no current ID.
    pub fn new() -> Self {
        Builder::default()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder starting from the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The layer configured from the process environment; see
    /// [`Builder::from_env_source`].
    pub fn from_env() -> Result<Self, BuildError> {
        Builder::from_env()?.build()
    }

    /// The header set on outbound requests.
    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }
}

impl Default for InjectCorrelationLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for InjectCorrelationLayer {
    type Service = InjectCorrelation<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InjectCorrelation {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Configures an [`InjectCorrelationLayer`].
///
/// ```
/// use telltale_correlation::client::InjectCorrelationLayer;
///
/// let layer = InjectCorrelationLayer::builder()
///     .header("x-request-id")
///     .override_existing(true)
///     .build()
///     .unwrap();
/// assert_eq!(layer.header().as_str(), "x-request-id");
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    header: HeaderSpec,
    override_existing: bool,
    generate: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            header: Ok(HeaderName::from_static(DEFAULT_HEADER)),
            override_existing: false,
            generate: false,
        }
    }
}

impl Builder {
    /// The header set on outbound requests. Case-insensitive.
    ///
    /// Defaults to `x-correlation-id`.
    #[must_use]
    pub fn header(mut self, name: impl AsRef<str>) -> Self {
        self.header = header_spec(name.as_ref());
        self
    }

    /// Whether the current ID replaces a header the caller already set.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn override_existing(mut self, override_existing: bool) -> Self {
        self.override_existing = override_existing;
        self
    }

    /// Whether a request sent with no current ID (outside any served request)
    /// gets a freshly generated one.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn generate_when_absent(mut self, generate: bool) -> Self {
        self.generate = generate;
        self
    }

    /// A builder from the defaults and the process environment; see
    /// [`Builder::from_env_source`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_source(&Env::process())
    }

    /// A builder from the defaults, overridden by whichever of these variables
    /// are set:
    ///
    /// | variable | setter |
    /// |---|---|
    /// | `TELLTALE_CORRELATION_HEADER` (shared with the server layer) | [`header`](Self::header) |
    /// | `TELLTALE_CORRELATION_CLIENT_OVERRIDE` | [`override_existing`](Self::override_existing) |
    /// | `TELLTALE_CORRELATION_CLIENT_GENERATE` | [`generate_when_absent`](Self::generate_when_absent) |
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_correlation::client::Builder;
    ///
    /// let env = Env::from_pairs([("TELLTALE_CORRELATION_CLIENT_OVERRIDE", "sometimes")]);
    /// let err = Builder::from_env_source(&env).unwrap_err();
    /// assert_eq!(err.variable(), "TELLTALE_CORRELATION_CLIENT_OVERRIDE");
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, ConfigError> {
        let mut b = Builder::default();
        if let Some(h) = env_header(env, ENV_HEADER)? {
            b.header = Ok(h);
        }
        if let Some(v) = env.boolean(ENV_CLIENT_OVERRIDE)? {
            b.override_existing = v;
        }
        if let Some(v) = env.boolean(ENV_CLIENT_GENERATE)? {
            b.generate = v;
        }
        Ok(b)
    }

    /// Builds the layer, checking the header name.
    pub fn build(self) -> Result<InjectCorrelationLayer, BuildError> {
        Ok(InjectCorrelationLayer {
            config: Arc::new(Config {
                header: resolve(&self.header)?,
                override_existing: self.override_existing,
                generate: self.generate,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env() {
        let env = Env::from_pairs([
            (ENV_HEADER, "X-Request-Id"),
            (ENV_CLIENT_OVERRIDE, "on"),
            (ENV_CLIENT_GENERATE, "1"),
        ]);
        let layer = Builder::from_env_source(&env).unwrap().build().unwrap();
        assert_eq!(layer.header(), "x-request-id");
        assert!(layer.config.override_existing && layer.config.generate);
        let env = Env::from_pairs([(ENV_HEADER, "a:b")]);
        let err = Builder::from_env_source(&env).unwrap_err();
        assert_eq!((err.variable(), err.position()), (ENV_HEADER, 2));
        let err = Builder::default().header("").build().unwrap_err();
        assert!(matches!(err, BuildError::InvalidHeaderName { .. }));
    }
}
