use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};
use telltale_core::correlation::MAX_LEN;
use tower_layer::Layer;

use super::Correlation;
use crate::config::{
    DEFAULT_HEADER, ENV_ALIASES, ENV_ECHO, ENV_HEADER, ENV_MAX_LEN, ENV_REQUIRE,
    ENV_TRUST_INCOMING, HeaderSpec, env_header, env_header_list, header_spec, resolve,
};
use crate::error::BuildError;
use crate::rule::{AnyRule, DefaultRule, Rule};

/// Everything the server layer decides per request, prepared once.
pub(crate) struct Config {
    /// The primary header: read first, written to the request, echoed.
    pub(crate) header: HeaderName,
    /// Further headers read, in order, when the primary one is absent.
    pub(crate) aliases: Box<[HeaderName]>,
    pub(crate) trust_incoming: bool,
    pub(crate) require: bool,
    pub(crate) echo: bool,
    pub(crate) rule: AnyRule,
    /// Plain-text body of the response to a request without the header.
    pub(crate) missing_message: Bytes,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("header", &self.header)
            .field("aliases", &self.aliases)
            .field("trust_incoming", &self.trust_incoming)
            .field("require", &self.require)
            .field("echo", &self.echo)
            .field("rule", &self.rule)
            .finish()
    }
}

/// Layer that gives every request a [`CorrelationId`](crate::CorrelationId):
/// see the [module docs](super).
///
/// Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct CorrelationLayer {
    pub(crate) config: Arc<Config>,
}

impl CorrelationLayer {
    /// The layer with every default: header `x-correlation-id`, no aliases,
    /// incoming IDs trusted, header not required, response echo on, the
    /// [`DefaultRule`].
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
    /// [`Builder::from_env_source`] for the variables.
    pub fn from_env() -> Result<Self, BuildError> {
        Builder::from_env()?.build()
    }

    /// The primary header name.
    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }
}

impl Default for CorrelationLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CorrelationLayer {
    type Service = Correlation<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Correlation {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Configures a [`CorrelationLayer`].
///
/// ```
/// use telltale_correlation::server::CorrelationLayer;
///
/// let layer = CorrelationLayer::builder()
///     .header("x-correlation-id")
///     .alias("x-request-id")
///     .echo(true)
///     .build()
///     .unwrap();
/// assert_eq!(layer.header().as_str(), "x-correlation-id");
///
/// let err = CorrelationLayer::builder().alias("bad header").build().unwrap_err();
/// assert!(err.to_string().contains("bad header"));
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    header: HeaderSpec,
    aliases: Vec<HeaderSpec>,
    trust_incoming: bool,
    require: bool,
    echo: bool,
    rule: AnyRule,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            header: Ok(HeaderName::from_static(DEFAULT_HEADER)),
            aliases: Vec::new(),
            trust_incoming: true,
            require: false,
            echo: true,
            rule: AnyRule::Default(DefaultRule::default()),
        }
    }
}

impl Builder {
    /// The header read from requests, set on them, and echoed in responses.
    /// Case-insensitive.
    ///
    /// Defaults to `x-correlation-id`.
    #[must_use]
    pub fn header(mut self, name: impl AsRef<str>) -> Self {
        self.header = header_spec(name.as_ref());
        self
    }

    /// Adds a header read when the primary header is absent (such as
    /// `x-request-id`). Aliases are read in the order added; the first header
    /// present decides. They are never written or echoed.
    ///
    /// Defaults to no aliases.
    #[must_use]
    pub fn alias(mut self, name: impl AsRef<str>) -> Self {
        self.aliases.push(header_spec(name.as_ref()));
        self
    }

    /// Replaces the aliases.
    ///
    /// Defaults to no aliases.
    #[must_use]
    pub fn aliases<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.aliases = names.into_iter().map(|n| header_spec(n.as_ref())).collect();
        self
    }

    /// Whether incoming IDs are used. When `false`, every request gets a freshly
    /// generated ID, which replaces any incoming value on the request.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn trust_incoming(mut self, trust: bool) -> Self {
        self.trust_incoming = trust;
        self
    }

    /// Whether a request without a valid ID is refused: HTTP 400 with a plain-text
    /// body naming the header (gRPC requests get `INVALID_ARGUMENT`), and the
    /// inner service is not called.
    ///
    /// Defaults to `false` (an ID is generated instead).
    #[must_use]
    pub fn require_header(mut self, require: bool) -> Self {
        self.require = require;
        self
    }

    /// Whether responses carry the ID in the primary header (unless the inner
    /// service set that header itself).
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// The validation rule for incoming IDs: a [`Rule`] or a closure
    /// `Fn(&[u8]) -> Result<(), Rejection>`.
    ///
    /// Defaults to [`DefaultRule`] (`[A-Za-z0-9._:-]{1,128}`).
    ///
    /// [`Rejection`]: crate::rule::Rejection
    #[must_use]
    pub fn rule(mut self, rule: impl Rule) -> Self {
        self.rule = AnyRule::Custom(Arc::new(rule));
        self
    }

    /// Shorthand for `rule(DefaultRule::with_max_len(max_len))`.
    ///
    /// Defaults to 128.
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.rule = AnyRule::Default(DefaultRule::with_max_len(max_len));
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
    /// | variable | setter | example |
    /// |---|---|---|
    /// | `TELLTALE_CORRELATION_HEADER` | [`header`](Self::header) | `x-correlation-id` |
    /// | `TELLTALE_CORRELATION_ALIASES` | [`aliases`](Self::aliases) | `x-request-id,x-amzn-trace-id` |
    /// | `TELLTALE_CORRELATION_TRUST_INCOMING` | [`trust_incoming`](Self::trust_incoming) | `true` |
    /// | `TELLTALE_CORRELATION_REQUIRE` | [`require_header`](Self::require_header) | `false` |
    /// | `TELLTALE_CORRELATION_ECHO` | [`echo`](Self::echo) | `on` |
    /// | `TELLTALE_CORRELATION_MAX_LEN` | [`max_len`](Self::max_len) | `64` |
    ///
    /// Errors name the variable, its value and the position of the problem.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_correlation::server::Builder;
    ///
    /// let env = Env::from_pairs([("TELLTALE_CORRELATION_ALIASES", "x-request-id, x request")]);
    /// let err = Builder::from_env_source(&env).unwrap_err();
    /// assert_eq!(err.variable(), "TELLTALE_CORRELATION_ALIASES");
    /// assert_eq!(err.position(), 16);
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, ConfigError> {
        let mut b = Builder::default();
        if let Some(h) = env_header(env, ENV_HEADER)? {
            b.header = Ok(h);
        }
        if let Some(list) = env_header_list(env, ENV_ALIASES)? {
            b.aliases = list.into_iter().map(Ok).collect();
        }
        if let Some(v) = env.boolean(ENV_TRUST_INCOMING)? {
            b.trust_incoming = v;
        }
        if let Some(v) = env.boolean(ENV_REQUIRE)? {
            b.require = v;
        }
        if let Some(v) = env.boolean(ENV_ECHO)? {
            b.echo = v;
        }
        if let Some(n) = env.parse(ENV_MAX_LEN, |v| {
            let n: usize = telltale_core::config::parse_number(v)?;
            if (1..=MAX_LEN).contains(&n) {
                Ok(n)
            } else {
                Err(ParseError::new(1, format!("a length from 1 to {MAX_LEN}")))
            }
        })? {
            b.rule = AnyRule::Default(DefaultRule::with_max_len(n));
        }
        Ok(b)
    }

    /// Builds the layer, checking the header names and the combination of
    /// options.
    pub fn build(self) -> Result<CorrelationLayer, BuildError> {
        let header = resolve(&self.header)?;
        let mut aliases = Vec::with_capacity(self.aliases.len());
        for spec in &self.aliases {
            let name = resolve(spec)?;
            if name == header || aliases.contains(&name) {
                return Err(BuildError::DuplicateHeader {
                    name: name.as_str().to_owned(),
                });
            }
            aliases.push(name);
        }
        if self.require && !self.trust_incoming {
            return Err(BuildError::RequireWithoutTrust);
        }
        let mut missing = format!("missing required header {header}");
        if !aliases.is_empty() {
            let names: Vec<&str> = aliases.iter().map(HeaderName::as_str).collect();
            missing.push_str(&format!(" (or {})", names.join(", ")));
        }
        missing.push('\n');
        crate::counters::describe();
        Ok(CorrelationLayer {
            config: Arc::new(Config {
                header,
                aliases: aliases.into_boxed_slice(),
                trust_incoming: self.trust_incoming,
                require: self.require,
                echo: self.echo,
                rule: self.rule,
                missing_message: Bytes::from(missing),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let layer = CorrelationLayer::new();
        let c = &layer.config;
        assert_eq!(c.header, "x-correlation-id");
        assert!(c.aliases.is_empty());
        assert!(c.trust_incoming && c.echo && !c.require);
        assert_eq!(
            &c.missing_message[..],
            b"missing required header x-correlation-id\n"
        );
    }

    #[test]
    fn build_errors() {
        let err = Builder::default().header("a b").build().unwrap_err();
        assert_eq!(err, BuildError::InvalidHeaderName { name: "a b".into() });
        let err = Builder::default()
            .alias("X-Correlation-Id")
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::DuplicateHeader {
                name: "x-correlation-id".into()
            }
        );
        let err = Builder::default()
            .aliases(["x-a", "x-a"])
            .build()
            .unwrap_err();
        assert!(matches!(err, BuildError::DuplicateHeader { .. }));
        let err = Builder::default()
            .require_header(true)
            .trust_incoming(false)
            .build()
            .unwrap_err();
        assert_eq!(err, BuildError::RequireWithoutTrust);
    }

    #[test]
    fn from_env_sets_everything() {
        let env = Env::from_pairs([
            (ENV_HEADER, "X-Req"),
            (ENV_ALIASES, "x-request-id, x-other"),
            (ENV_TRUST_INCOMING, "yes"),
            (ENV_REQUIRE, "true"),
            (ENV_ECHO, "off"),
            (ENV_MAX_LEN, "64"),
        ]);
        let layer = Builder::from_env_source(&env).unwrap().build().unwrap();
        let c = &layer.config;
        assert_eq!(c.header, "x-req");
        assert_eq!(&*c.aliases, &["x-request-id", "x-other"]);
        assert!(c.require && !c.echo && c.trust_incoming);
        assert_eq!(
            &c.missing_message[..],
            b"missing required header x-req (or x-request-id, x-other)\n"
        );
        assert!(matches!(c.rule, AnyRule::Default(r) if r.max_len() == 64));
    }

    #[test]
    fn from_env_errors_name_the_variable() {
        for (var, value, position) in [
            (ENV_HEADER, "x y", 2),
            (ENV_TRUST_INCOMING, "maybe", 1),
            (ENV_REQUIRE, "2", 1),
            (ENV_ECHO, "nah", 1),
            (ENV_MAX_LEN, "0", 1),
            (ENV_MAX_LEN, "12a", 3),
            (ENV_ALIASES, "x-a,,x-b", 5),
        ] {
            let env = Env::from_pairs([(var, value)]);
            let err = Builder::from_env_source(&env).unwrap_err();
            assert_eq!(err.variable(), var, "{value}");
            assert_eq!(err.position(), position, "{var}={value}: {err}");
        }
        let env = Env::from_pairs([(ENV_REQUIRE, "1"), (ENV_TRUST_INCOMING, "0")]);
        let err = Builder::from_env_source(&env).unwrap().build().unwrap_err();
        assert_eq!(err, BuildError::RequireWithoutTrust);
    }
}
