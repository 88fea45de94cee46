//! The environment variables of the RED metrics and the Prometheus listener,
//! read by [`RedConfig::from_env`] and [`RedConfigBuilder::env`].
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_telemetry::metrics::{Naming, RedConfig, env};
//!
//! let vars = Env::from_pairs([(env::NAMING, "classic"), (env::ADDR, "127.0.0.1:9464")]);
//! assert!(env::is_configured(&vars));
//! let config = RedConfig::from_env_source(&vars).unwrap();
//! assert_eq!(config.naming(), Naming::Classic);
//! assert_eq!(config.listen_addr(), Some("127.0.0.1:9464".parse().unwrap()));
//! ```

use std::net::SocketAddr;

use telltale_core::ParseError;
use telltale_core::config::{Env, EnvSource};

use super::config::{Naming, RedConfig, RedConfigBuilder, RedConfigError};

telltale_core::env_vars! {
    /// `TELLTALE_METRICS_NAMING`: the naming scheme, `opentelemetry` (or `otel`) or `classic`.
    NAMING = "TELLTALE_METRICS_NAMING";
    /// `TELLTALE_METRICS_MAX_LABEL_SETS`: the cap on distinct label sets per metric.
    MAX_LABEL_SETS = "TELLTALE_METRICS_MAX_LABEL_SETS";
    /// `TELLTALE_METRICS_PREFIX`: a prefix put before every metric name
    /// telltale registers (`myapp` gives `myapp_http_…`); declared by
    /// [`telltale_core::metric_name::env::PREFIX`], the process-wide setting.
    PREFIX = telltale_core::metric_name::env::PREFIX;
    /// `TELLTALE_METRICS_ADDR`: the address of a standalone `/metrics` listener,
    /// e.g. `0.0.0.0:9464`.
    ADDR = "TELLTALE_METRICS_ADDR";
}

impl RedConfig {
    /// Reads [`NAMING`], [`MAX_LABEL_SETS`], [`PREFIX`] and [`ADDR`] from the
    /// process environment; unset variables keep the defaults.
    pub fn from_env() -> Result<Self, RedConfigError> {
        Self::from_env_source(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading from `env`.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_telemetry::metrics::{Naming, RedConfig};
    ///
    /// let env = Env::from_pairs([("TELLTALE_METRICS_NAMING", "classic")]);
    /// assert_eq!(RedConfig::from_env_source(&env).unwrap().naming(), Naming::Classic);
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, RedConfigError> {
        RedConfig::builder().env(env)?.build()
    }
}

impl RedConfigBuilder {
    /// Applies the variables set in `env` ([`VARS`]) over this builder's
    /// settings; unset ones keep them.
    pub fn env<S: EnvSource>(self, env: &Env<S>) -> Result<Self, RedConfigError> {
        let mut this = self.env_red(env)?;
        if let Some(addr) = env.parse(ADDR, |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| ParseError::new(1, "a socket address such as 0.0.0.0:9464"))
        })? {
            this = this.listen_addr(addr);
        }
        Ok(this)
    }

    /// [`env`](Self::env) without the listener address: the variables of the
    /// RED metrics themselves, which the request layers read.
    pub(crate) fn env_red<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, RedConfigError> {
        if let Some(naming) = env.parse(NAMING, str::parse::<Naming>)? {
            self = self.naming(naming);
        }
        if let Some(cap) = env.parse(MAX_LABEL_SETS, parse_max_label_sets)? {
            self = self.max_label_sets(cap);
        }
        if let Some(prefix) = telltale_core::metric_name::prefix_from_env(env)? {
            self = self.prefix(prefix);
        }
        Ok(self)
    }
}

/// Largest `TELLTALE_METRICS_MAX_LABEL_SETS`.
pub const MAX_LABEL_SETS_LIMIT: usize = 1_000_000;

fn parse_max_label_sets(s: &str) -> Result<usize, ParseError> {
    let expected = || format!("a number from 1 to {MAX_LABEL_SETS_LIMIT}");
    let n: u64 = telltale_core::config::parse_number(s)
        .map_err(|e| ParseError::new(e.position(), expected()))?;
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_LABEL_SETS_LIMIT).contains(n))
        .ok_or_else(|| ParseError::new(1, expected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env() {
        let env = Env::from_pairs([(NAMING, "Classic"), (MAX_LABEL_SETS, "10"), (PREFIX, "svc")]);
        let c = RedConfig::from_env_source(&env).unwrap();
        assert_eq!(c.naming(), Naming::Classic);
        assert_eq!(c.max_label_sets(), 10);
        assert_eq!(c.prefix(), Some("svc"));
        assert_eq!(c.listen_addr(), None);
        let bad = Env::from_pairs([(NAMING, "statsd")]);
        let err = RedConfig::from_env_source(&bad).unwrap_err();
        assert!(err.to_string().contains(NAMING), "{err}");
        let bad = Env::from_pairs([(PREFIX, "my-app")]);
        let err = RedConfig::from_env_source(&bad).unwrap_err();
        assert!(err.to_string().contains(PREFIX), "{err}");
        let bad = Env::from_pairs([(MAX_LABEL_SETS, "0")]);
        let err = RedConfig::from_env_source(&bad).unwrap_err();
        assert!(err.to_string().contains(MAX_LABEL_SETS), "{err}");
    }

    #[test]
    fn reads_the_listener_address() {
        let env = Env::from_pairs([(ADDR, "127.0.0.1:9464")]);
        assert_eq!(
            RedConfig::from_env_source(&env).unwrap().listen_addr(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let bad = Env::from_pairs([(ADDR, "localhost")]);
        let err = RedConfig::from_env_source(&bad).unwrap_err();
        assert!(err.to_string().contains(ADDR), "{err}");
    }
}
