use std::sync::Arc;

use http::HeaderName;
use telltale_core::config::{Env, EnvSource};

use super::InjectCorrelationService;
use crate::env;
use crate::error::BuildError;
use crate::header::{HeaderSpec, default_spec, header_spec, resolve};

/// What the clones of one [`InjectCorrelationLayer`] share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) header: HeaderName,
    pub(crate) override_existing: bool,
    pub(crate) generate: bool,
}

layer_common! {
    /// Layer that sets the current correlation ID on outbound requests: see the
    /// [module docs](super).
    pub struct InjectCorrelationLayer => InjectCorrelationLayerBuilder, InjectCorrelationService;

    /// The layer with every default: header `x-correlation-id`, an existing
    /// header left alone, nothing sent when there is no current ID.
    fn new;
}

/// Configures an [`InjectCorrelationLayer`].
///
/// ```
/// use telltale_correlation::InjectCorrelationLayer;
///
/// let layer = InjectCorrelationLayer::builder()
///     .header("x-request-id")
///     .override_existing(true)
///     .build()
///     .unwrap();
/// assert_eq!(layer.header().as_str(), "x-request-id");
/// ```
#[derive(Clone, Debug)]
pub struct InjectCorrelationLayerBuilder {
    header: HeaderSpec,
    override_existing: bool,
    generate: bool,
}

impl Default for InjectCorrelationLayerBuilder {
    fn default() -> Self {
        InjectCorrelationLayerBuilder {
            header: default_spec(),
            override_existing: false,
            generate: false,
        }
    }
}

impl InjectCorrelationLayerBuilder {
    /// The header set on outbound requests. Case-insensitive.
    ///
    /// Defaults to `x-correlation-id`.
    #[must_use]
    pub fn header(mut self, name: impl AsRef<str>) -> Self {
        self.header = header_spec(name.as_ref());
        self
    }

    setters! {
        /// Whether the current ID replaces a header the caller already set.
        ///
        /// Defaults to `false`.
        override_existing(override_existing: bool) => override_existing;

        /// Whether a request sent with no current ID (outside any served request)
        /// gets a freshly generated one.
        ///
        /// Defaults to `false`.
        generate_when_absent(generate: bool) => generate;
    }

    /// Overlays the variables of `env` that are set: [`env::HEADER`] (shared
    /// with the server layer), [`env::CLIENT_OVERRIDE`],
    /// [`env::CLIENT_GENERATE`] (see [`env`](crate::env)); unset ones keep the
    /// builder's values.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_correlation::{BuildError, InjectCorrelationLayer};
    ///
    /// let env = Env::from_pairs([("TELLTALE_CORRELATION_CLIENT_OVERRIDE", "sometimes")]);
    /// let Err(BuildError::Config(err)) = InjectCorrelationLayer::from_env_source(&env) else { panic!() };
    /// assert_eq!(err.variable(), "TELLTALE_CORRELATION_CLIENT_OVERRIDE");
    /// ```
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        if let Some(h) = env::header(env, env::HEADER)? {
            self.header = Ok(h);
        }
        if let Some(v) = env.boolean(env::CLIENT_OVERRIDE)? {
            self.override_existing = v;
        }
        if let Some(v) = env.boolean(env::CLIENT_GENERATE)? {
            self.generate = v;
        }
        Ok(self)
    }

    /// Builds the layer, checking the header name.
    pub fn build(self) -> Result<InjectCorrelationLayer, BuildError> {
        Ok(InjectCorrelationLayer {
            shared: Arc::new(Shared {
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
            (env::HEADER, "X-Request-Id"),
            (env::CLIENT_OVERRIDE, "on"),
            (env::CLIENT_GENERATE, "1"),
        ]);
        let layer = InjectCorrelationLayer::from_env_source(&env).unwrap();
        assert_eq!(layer.header(), "x-request-id");
        assert!(layer.shared.override_existing && layer.shared.generate);
        let env = Env::from_pairs([(env::HEADER, "a:b")]);
        let Err(BuildError::Config(err)) = InjectCorrelationLayer::builder().env(&env) else {
            panic!("a:b was accepted");
        };
        assert_eq!((err.variable(), err.position()), (env::HEADER, 2));
        let err = InjectCorrelationLayer::builder()
            .header("")
            .build()
            .unwrap_err();
        assert!(matches!(err, BuildError::InvalidHeaderName { .. }));
    }
}
