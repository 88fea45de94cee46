use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use telltale_core::config::{Env, EnvSource};

use super::CorrelationService;
use crate::env;
use crate::error::BuildError;
use crate::header::{HeaderSpec, default_spec, header_spec, resolve};
use crate::rule::{AnyRule, DefaultRule, Rule};

/// What the clones of one [`CorrelationLayer`] share: everything decided per
/// request, prepared once.
#[derive(Debug)]
pub(crate) struct Shared {
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
    /// The layer's counters, registered once each.
    pub(crate) counters: crate::metrics::Counters,
}

layer_common! {
    /// Layer that gives every request a [`CorrelationId`](crate::CorrelationId):
    /// see the [module docs](super).
    pub struct CorrelationLayer => CorrelationLayerBuilder, CorrelationService;

    /// The layer with every default: header `x-correlation-id`, alias
    /// `x-request-id` ([`DEFAULT_ALIASES`](crate::DEFAULT_ALIASES)),
    /// incoming IDs trusted, header not required, response echo on, the
    /// [`DefaultRule`].
    fn new;
}

/// Configures a [`CorrelationLayer`].
///
/// ```
/// use telltale_correlation::CorrelationLayer;
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
pub struct CorrelationLayerBuilder {
    header: HeaderSpec,
    aliases: Vec<HeaderSpec>,
    /// Whether `aliases` is still [`DEFAULT_ALIASES`](crate::DEFAULT_ALIASES):
    /// a default alias equal to the primary header is then dropped instead
    /// of being an error.
    default_aliases: bool,
    trust_incoming: bool,
    require: bool,
    echo: bool,
    rule: AnyRule,
}

impl Default for CorrelationLayerBuilder {
    fn default() -> Self {
        CorrelationLayerBuilder {
            header: default_spec(),
            aliases: crate::DEFAULT_ALIASES
                .iter()
                .map(|a| header_spec(a))
                .collect(),
            default_aliases: true,
            trust_incoming: true,
            require: false,
            echo: true,
            rule: AnyRule::Default(DefaultRule::default()),
        }
    }
}

impl CorrelationLayerBuilder {
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
    /// `x-amzn-trace-id`); adding one already in the list changes nothing.
    /// Aliases are read in the order added, after the primary header: when
    /// both are present the **primary header wins** (it is the header this
    /// service and its telltale callers agree on; an alias is what a proxy in
    /// front adds). The first header present decides, even when its value is
    /// then rejected. The ID is written to the request's primary header; the
    /// response echoes it in the primary header and, when it came from an
    /// alias, in that alias too, so the caller finds it under the name it
    /// sent (see [`echo`](Self::echo)).
    ///
    /// Defaults to [`DEFAULT_ALIASES`](crate::DEFAULT_ALIASES) (`x-request-id`).
    #[must_use]
    pub fn alias(mut self, name: impl AsRef<str>) -> Self {
        let spec = header_spec(name.as_ref());
        if !self.aliases.contains(&spec) {
            self.aliases.push(spec);
        }
        self
    }

    /// Replaces the aliases (an empty list: only the primary header is read).
    ///
    /// Defaults to [`DEFAULT_ALIASES`](crate::DEFAULT_ALIASES) (`x-request-id`).
    #[must_use]
    pub fn aliases<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.aliases = names.into_iter().map(|n| header_spec(n.as_ref())).collect();
        self.default_aliases = false;
        self
    }

    setters! {
        /// Whether incoming IDs are used. When `false`, every request gets a freshly
        /// generated ID, which replaces any incoming value on the request.
        ///
        /// Defaults to `true`.
        trust_incoming(trust: bool) => trust_incoming;

        /// Whether a request without a valid ID is refused: HTTP 400 with a plain-text
        /// body naming the header (gRPC requests get `INVALID_ARGUMENT`), and the
        /// inner service is not called.
        ///
        /// Defaults to `false` (an ID is generated instead).
        require_header(require: bool) => require;

        /// Whether responses carry the ID in the primary header, and in the
        /// alias it was read from when it came from one (each unless the inner
        /// service set that header itself).
        ///
        /// Defaults to `true`.
        echo(echo: bool) => echo;
    }

    /// The validation rule for incoming IDs: a [`Rule`] or a closure
    /// `Fn(&[u8]) -> Result<(), InvalidCorrelationId>`.
    ///
    /// Defaults to [`DefaultRule`] (`[A-Za-z0-9._:-]{1,128}`).
    ///
    /// [`InvalidCorrelationId`]: crate::InvalidCorrelationId
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

    /// Overlays the variables of `env` that are set (see [`env`](crate::env)
    /// for the table: [`env::HEADER`], [`env::ALIASES`],
    /// [`env::TRUST_INCOMING`], [`env::REQUIRE`], [`env::ECHO`],
    /// [`env::MAX_LEN`]); unset ones keep the builder's values.
    ///
    /// Errors name the variable, its value and the position of the problem.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_correlation::{BuildError, CorrelationLayer};
    ///
    /// let env = Env::from_pairs([("TELLTALE_CORRELATION_ALIASES", "x-request-id, x request")]);
    /// let Err(BuildError::Config(err)) = CorrelationLayer::builder().env(&env) else { panic!() };
    /// assert_eq!(err.variable(), "TELLTALE_CORRELATION_ALIASES");
    /// assert_eq!(err.position(), 16);
    /// ```
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, BuildError> {
        if let Some(h) = env::header(env, env::HEADER)? {
            self.header = Ok(h);
        }
        if let Some(list) = env::header_list(env, env::ALIASES)? {
            self.aliases = list.into_iter().map(Ok).collect();
            self.default_aliases = false;
        }
        if let Some(v) = env.boolean(env::TRUST_INCOMING)? {
            self.trust_incoming = v;
        }
        if let Some(v) = env.boolean(env::REQUIRE)? {
            self.require = v;
        }
        if let Some(v) = env.boolean(env::ECHO)? {
            self.echo = v;
        }
        if let Some(n) = env::max_len(env)? {
            self.rule = AnyRule::Default(DefaultRule::with_max_len(n));
        }
        Ok(self)
    }

    /// Builds the layer, checking the header names and the combination of
    /// options.
    pub fn build(self) -> Result<CorrelationLayer, BuildError> {
        let header = resolve(&self.header)?;
        let mut aliases = Vec::with_capacity(self.aliases.len());
        for spec in &self.aliases {
            let name = resolve(spec)?;
            if self.default_aliases
                && name == header
                && crate::DEFAULT_ALIASES.contains(&name.as_str())
            {
                // `header("x-request-id")` with the default alias list.
                continue;
            }
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
        crate::metrics::describe();
        Ok(CorrelationLayer {
            shared: Arc::new(Shared {
                header,
                aliases: aliases.into_boxed_slice(),
                trust_incoming: self.trust_incoming,
                require: self.require,
                echo: self.echo,
                rule: self.rule,
                missing_message: Bytes::from(missing),
                counters: crate::metrics::Counters::default(),
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
        let c = &layer.shared;
        assert_eq!(c.header, "x-correlation-id");
        assert_eq!(&*c.aliases, ["x-request-id"]);
        // The primary header may be the default alias: then no alias.
        let layer = CorrelationLayer::builder()
            .header("X-Request-Id")
            .build()
            .unwrap();
        assert!(layer.shared.aliases.is_empty());
        assert!(c.trust_incoming && c.echo && !c.require);
        assert_eq!(
            &c.missing_message[..],
            b"missing required header x-correlation-id (or x-request-id)\n"
        );
    }

    #[test]
    fn build_errors() {
        let builder = CorrelationLayerBuilder::default;
        let err = builder().header("a b").build().unwrap_err();
        assert_eq!(err, BuildError::InvalidHeaderName { name: "a b".into() });
        let err = builder().alias("X-Correlation-Id").build().unwrap_err();
        assert_eq!(
            err,
            BuildError::DuplicateHeader {
                name: "x-correlation-id".into()
            }
        );
        let err = builder().aliases(["x-a", "x-a"]).build().unwrap_err();
        assert!(matches!(err, BuildError::DuplicateHeader { .. }));
        let err = builder()
            .require_header(true)
            .trust_incoming(false)
            .build()
            .unwrap_err();
        assert_eq!(err, BuildError::RequireWithoutTrust);
    }

    #[test]
    fn from_env_sets_everything() {
        let env = Env::from_pairs([
            (env::HEADER, "X-Req"),
            (env::ALIASES, "x-request-id, x-other"),
            (env::TRUST_INCOMING, "yes"),
            (env::REQUIRE, "true"),
            (env::ECHO, "off"),
            (env::MAX_LEN, "64"),
        ]);
        let layer = CorrelationLayer::from_env_source(&env).unwrap();
        let c = &layer.shared;
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
    fn env_overlays_only_what_is_set() {
        let env = Env::from_pairs([(env::ECHO, "off")]);
        let layer = CorrelationLayer::builder()
            .header("x-req")
            .alias("x-request-id")
            .env(&env)
            .unwrap()
            .build()
            .unwrap();
        let c = &layer.shared;
        assert_eq!(c.header, "x-req");
        assert_eq!(&*c.aliases, &["x-request-id"]);
        assert!(!c.echo && c.trust_incoming);
    }

    #[test]
    fn from_env_errors_name_the_variable() {
        for (var, value, position) in [
            (env::HEADER, "x y", 2),
            (env::TRUST_INCOMING, "maybe", 1),
            (env::REQUIRE, "2", 1),
            (env::ECHO, "nah", 1),
            (env::MAX_LEN, "0", 1),
            (env::MAX_LEN, "12a", 3),
            (env::ALIASES, "x-a,,x-b", 5),
        ] {
            let env = Env::from_pairs([(var, value)]);
            let Err(BuildError::Config(err)) = CorrelationLayer::builder().env(&env) else {
                panic!("{var}={value} was accepted");
            };
            assert_eq!(err.variable(), var, "{value}");
            assert_eq!(err.position(), position, "{var}={value}: {err}");
        }
        let env = Env::from_pairs([(env::REQUIRE, "1"), (env::TRUST_INCOMING, "0")]);
        let err = CorrelationLayer::from_env_source(&env).unwrap_err();
        assert_eq!(err, BuildError::RequireWithoutTrust);
    }
}
