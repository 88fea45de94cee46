//! The environment variables telltale-chaos reads, and their parsing.
//!
//! [`Injector::from_env`](crate::Injector::from_env) reads them all and returns
//! the injector; [`InjectorBuilder::env`] overlays them on a builder (set
//! variables replace the builder's values, unset ones keep them). Values are
//! described in the [crate docs](crate#environment-variables).
//!
//! [`VARS`] lists every variable above; [`is_configured`] says whether any
//! `TELLTALE_CHAOS*` variable is set (non-empty) in `env`. The deployment
//! environment (`TELLTALE_ENV`, `OTEL_RESOURCE_ATTRIBUTES`) alone does not
//! configure chaos.
//!
//! ```
//! use std::time::Duration;
//! use telltale_chaos::{Injector, Status, env};
//! use telltale_core::config::Env;
//!
//! let vars = Env::from_pairs([(env::SEED, "42"), (env::ENV, "staging")]);
//! assert!(env::is_configured(&vars));
//! let injector = Injector::builder()
//!     .rules("in: 1% abort".parse().unwrap())
//!     .ttl(Duration::from_secs(60))
//!     .env(&vars)?
//!     .build()?;
//! assert_eq!(injector.status(), Status::Armed);
//! assert!(!env::is_configured(&Env::from_pairs([("TELLTALE_ENV", "dev")])));
//! # Ok::<(), telltale_chaos::ChaosError>(())
//! ```

use std::net::IpAddr;
use std::time::Duration;

use telltale_core::config::{
    ConfigError, Env, EnvSource, ParseError, parse_duration, parse_list_with, parse_number,
};
use telltale_core::resource;

use crate::headers::HeaderFaults;
use crate::injector::{ChaosError, DEFAULT_ALLOWED_ENVS, Injector, InjectorBuilder};
use crate::parse::{RuleError, parse_rules};
use crate::rules::RuleSet;

telltale_core::env_vars! {
    /// `TELLTALE_CHAOS`: the rules; unset, chaos is off.
    CHAOS = "TELLTALE_CHAOS";
    /// `TELLTALE_CHAOS_SEED`: seeds reproducible decisions.
    SEED = "TELLTALE_CHAOS_SEED";
    /// `TELLTALE_CHAOS_MAX_ACTIVE`: at most this many faulted requests in flight.
    MAX_ACTIVE = "TELLTALE_CHAOS_MAX_ACTIVE";
    /// `TELLTALE_CHAOS_TTL`: injection switches itself off this long after arming.
    TTL = "TELLTALE_CHAOS_TTL";
    /// `TELLTALE_CHAOS_RESPONSE_HEADER`: add `x-telltale-chaos` to faulted responses.
    RESPONSE_HEADER = "TELLTALE_CHAOS_RESPONSE_HEADER";
    /// `TELLTALE_CHAOS_HEADERS`: accept header-controlled faults.
    HEADERS = "TELLTALE_CHAOS_HEADERS";
    /// `TELLTALE_CHAOS_HEADERS_SECRET`: callers sending it are trusted.
    HEADERS_SECRET = "TELLTALE_CHAOS_HEADERS_SECRET";
    /// `TELLTALE_CHAOS_HEADERS_TRUSTED`: peer IP addresses that are trusted.
    HEADERS_TRUSTED = "TELLTALE_CHAOS_HEADERS_TRUSTED";
    /// `TELLTALE_CHAOS_ALLOW_ENVS`: the environment guard's allow-list.
    ALLOW_ENVS = "TELLTALE_CHAOS_ALLOW_ENVS";
    /// `TELLTALE_ENV`: the deployment environment the guard checks (else
    /// `deployment.environment` in `OTEL_RESOURCE_ATTRIBUTES`).
    ENV = "TELLTALE_ENV";
    @not_configuring [ENV]
}

/// The largest [`MAX_ACTIVE`].
pub const MAX_MAX_ACTIVE: usize = 100_000;
/// The shortest [`TTL`].
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest [`TTL`].
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most items of [`HEADERS_TRUSTED`] and of [`ALLOW_ENVS`].
pub const MAX_LIST_ITEMS: usize = 64;
/// The longest [`HEADERS_SECRET`], environment name ([`ENV`], an item of
/// [`ALLOW_ENVS`]), in characters.
pub const MAX_NAME_LEN: usize = 256;
/// The longest [`CHAOS`] rule text, in bytes.
pub const MAX_RULES_LEN: usize = 64 * 1024;

/// [`MAX_ACTIVE`]: 1 ..= [`MAX_MAX_ACTIVE`] (0 would arm chaos that can never fire).
fn max_active<S: EnvSource>(env: &Env<S>) -> Result<Option<usize>, ConfigError> {
    env.parse(MAX_ACTIVE, |v| {
        let expected = || format!("a whole number from 1 to {MAX_MAX_ACTIVE}");
        let n: usize = parse_number(v).map_err(|e| ParseError::new(e.position(), expected()))?;
        if (1..=MAX_MAX_ACTIVE).contains(&n) {
            Ok(n)
        } else {
            Err(ParseError::new(1, expected()))
        }
    })
}

/// [`TTL`]: [`MIN_TTL`] ..= [`MAX_TTL`].
fn ttl<S: EnvSource>(env: &Env<S>) -> Result<Option<Duration>, ConfigError> {
    env.parse(TTL, |v| {
        let expected = "a duration from 1s to 24h (such as 30m)";
        let d = parse_duration(v).map_err(|e| ParseError::new(e.position(), expected))?;
        if (MIN_TTL..=MAX_TTL).contains(&d) {
            Ok(d)
        } else {
            Err(ParseError::new(1, expected))
        }
    })
}

/// A name or secret: 1 ..= [`MAX_NAME_LEN`] visible ASCII characters (what a
/// header value or an environment name can hold).
fn check_name(v: &str, what: &'static str) -> Result<(), ParseError> {
    if let Some((i, _)) = v.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(ParseError::new(
            i + 1,
            format!("{what}: visible ASCII characters only (no spaces), at most {MAX_NAME_LEN}"),
        ));
    }
    if v.len() > MAX_NAME_LEN {
        return Err(ParseError::new(
            MAX_NAME_LEN + 1,
            format!("{what}: at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

/// A comma-separated list of at most [`MAX_LIST_ITEMS`] items.
fn bounded_list<T>(
    v: &str,
    what: &'static str,
    item: impl FnMut(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let items = parse_list_with(v, item)?;
    if items.len() > MAX_LIST_ITEMS {
        return Err(ParseError::new(
            1,
            format!("at most {MAX_LIST_ITEMS} {what}"),
        ));
    }
    Ok(items)
}

/// The deployment environment: `TELLTALE_ENV`, else `deployment.environment.name`
/// (or `deployment.environment`) in `OTEL_RESOURCE_ATTRIBUTES`, parsed by
/// [`telltale_core::resource`].
pub(crate) fn deployment_environment<S: EnvSource>(
    env: &Env<S>,
) -> Result<Option<String>, ChaosError> {
    if let Some(e) = env.parse(ENV, |v| {
        check_name(v, "an environment name").map(|()| v.to_owned())
    })? {
        return Ok(Some(e));
    }
    Ok(resource::deployment_environment(env)?)
}

/// Adds the secret and trusted peers of `env` to `headers`.
fn trust<S: EnvSource>(
    env: &Env<S>,
    mut headers: HeaderFaults,
) -> Result<HeaderFaults, ChaosError> {
    if let Some(secret) = env.parse(HEADERS_SECRET, |v| {
        check_name(v, "a secret").map(|()| v.to_owned())
    })? {
        headers = headers.secret(secret);
    }
    let peers = env
        .parse(HEADERS_TRUSTED, |v| {
            bounded_list(v, "IP addresses", |item| {
                item.parse::<IpAddr>()
                    .map_err(|_| ParseError::new(1, "an IP address (such as 10.0.0.1 or ::1)"))
            })
        })?
        .unwrap_or_default();
    for peer in peers {
        headers = headers.trusted_peer(peer);
    }
    Ok(headers)
}

impl InjectorBuilder {
    /// Overlays the [chaos variables](self) of `env`: set variables replace
    /// the builder's values, unset ones keep them.
    ///
    /// `TELLTALE_CHAOS_HEADERS=on` enables header-controlled faults (and arms
    /// an empty rule set when no rules were given), `off` disables them; the
    /// secret and trusted peers add to the builder's. `TELLTALE_ENV` (or the
    /// deployment environment in `OTEL_RESOURCE_ATTRIBUTES`) and
    /// `TELLTALE_CHAOS_ALLOW_ENVS` set the environment guard, with the
    /// [default allow-list](DEFAULT_ALLOWED_ENVS) when only the environment is
    /// given.
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, ChaosError> {
        let headers_on = env.boolean(HEADERS)?;
        if let Some(text) = env.string(CHAOS)? {
            if text.len() > MAX_RULES_LEN {
                return Err(ConfigError::new(
                    CHAOS,
                    &text,
                    ParseError::new(1, format!("rules of at most {MAX_RULES_LEN} bytes")),
                )
                .into());
            }
            let rules = parse_rules(&text).map_err(|e| RuleError::new(CHAOS, &text, e))?;
            self = self.rules(rules);
        }
        if let Some(seed) = env.parse(SEED, |v| {
            parse_number::<u64>(v).map_err(|e| {
                ParseError::new(
                    e.position(),
                    format!("a whole number from 0 to {}", u64::MAX),
                )
            })
        })? {
            self = self.seed(seed);
        }
        if let Some(max) = max_active(env)? {
            self = self.max_active(max);
        }
        if let Some(ttl) = ttl(env)? {
            self = self.ttl(ttl);
        }
        if let Some(header) = env.boolean(RESPONSE_HEADER)? {
            self = self.response_header(header);
        }
        let headers = match headers_on {
            Some(false) => None,
            Some(true) => Some(self.header_faults.take().unwrap_or_default()),
            None => self.header_faults.take(),
        };
        // The secret and trusted peers are checked even when header faults
        // stay off: a malformed value is an error, not silently unused.
        self.header_faults = match headers {
            Some(h) => Some(trust(env, h)?),
            None => {
                let _checked = trust(env, HeaderFaults::new())?;
                None
            }
        };
        if headers_on == Some(true) && self.rules.is_none() {
            // Header-controlled faults alone arm an empty rule set.
            self.rules = Some(RuleSet::default());
        }
        let allowed = env.parse(ALLOW_ENVS, |v| {
            bounded_list(v, "environment names", |item| {
                check_name(item, "an environment name").map(|()| item.to_owned())
            })
        })?;
        let environment = deployment_environment(env)?;
        if allowed.is_some() || environment.is_some() {
            let (old_environment, old_allowed) = self
                .guard
                .take()
                .unwrap_or_else(|| (None, default_allowed()));
            self.guard = Some((
                environment.or(old_environment),
                allowed.unwrap_or(old_allowed),
            ));
        }
        Ok(self)
    }
}

fn default_allowed() -> Vec<String> {
    DEFAULT_ALLOWED_ENVS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// [`Injector::from_env_source`]: off unless `TELLTALE_CHAOS` or
/// `TELLTALE_CHAOS_HEADERS` asks for it, and always guarded (an unknown
/// deployment environment is refused). Every variable is checked even when
/// chaos stays off, so a malformed value is reported at start-up rather than
/// on the day chaos is switched on.
pub(crate) fn injector<S: EnvSource>(env: &Env<S>) -> Result<Injector, ChaosError> {
    let headers_on = env.boolean(HEADERS)?.unwrap_or(false);
    let mut builder = Injector::builder().env(env)?;
    if !headers_on && builder.rules.is_none() {
        return Ok(Injector::disabled());
    }
    if builder.guard.is_none() {
        builder.guard = Some((None, default_allowed()));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_from_resource_attributes() {
        let env = Env::from_pairs([(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=x, deployment.environment=stag%69ng",
        )]);
        assert_eq!(
            deployment_environment(&env).unwrap().as_deref(),
            Some("staging")
        );
        let env = Env::from_pairs([
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=dev",
            ),
            ("TELLTALE_ENV", "prod"),
        ]);
        assert_eq!(
            deployment_environment(&env).unwrap().as_deref(),
            Some("prod")
        );
        // Malformed attributes are an error naming the variable (one strict parser).
        let env = Env::from_pairs([("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=a%2")]);
        let Err(ChaosError::Config(err)) = deployment_environment(&env) else {
            panic!("a malformed OTEL_RESOURCE_ATTRIBUTES is an error")
        };
        assert_eq!(err.variable(), "OTEL_RESOURCE_ATTRIBUTES");
    }

    #[test]
    fn env_overlays_set_variables_and_keeps_the_rest() {
        let base = || {
            Injector::builder()
                .rules("in: abort".parse().unwrap())
                .seed(1)
                .max_active(2)
                .environment(Some("dev"), ["dev"])
        };
        let b = base().env(&Env::from_pairs([(SEED, "9")])).unwrap();
        assert_eq!((b.seed, b.max_active), (Some(9), Some(2)));
        assert_eq!(b.rules.as_ref().unwrap().to_string(), "in: abort");
        assert_eq!(
            b.guard,
            Some((Some("dev".to_owned()), vec!["dev".to_owned()]))
        );

        let b = base()
            .env(&Env::from_pairs([(CHAOS, "out: reset"), (ENV, "prod")]))
            .unwrap();
        assert_eq!(b.rules.as_ref().unwrap().to_string(), "out: reset");
        assert_eq!(
            b.guard,
            Some((Some("prod".to_owned()), vec!["dev".to_owned()]))
        );
        assert_eq!(b.build().unwrap().status(), crate::Status::Refused);

        let b = Injector::builder()
            .env(&Env::from_pairs([(ALLOW_ENVS, "qa")]))
            .unwrap();
        assert_eq!(b.guard, Some((None, vec!["qa".to_owned()])));

        let with_headers = || Injector::builder().header_faults(HeaderFaults::new().secret("k"));
        let b = with_headers()
            .env(&Env::from_pairs([(HEADERS, "off"), (HEADERS_SECRET, "x")]))
            .unwrap();
        assert!(b.header_faults.is_none() && b.rules.is_none());
        let b = Injector::builder()
            .env(&Env::from_pairs([
                (HEADERS, "on"),
                (HEADERS_TRUSTED, "10.0.0.1"),
            ]))
            .unwrap();
        assert!(
            b.header_faults
                .as_ref()
                .is_some_and(HeaderFaults::is_trusting)
        );
        assert_eq!(b.rules, Some(RuleSet::default()), "header faults alone arm");

        let Err(ChaosError::Config(err)) =
            Injector::builder().env(&Env::from_pairs([(TTL, "soon")]))
        else {
            panic!("a malformed TTL is an error")
        };
        assert_eq!(err.variable(), TTL);
    }

    #[test]
    fn is_configured_asks_only_for_chaos_variables() {
        assert!(!is_configured(&Env::from_pairs([
            (ENV, "dev"),
            ("OTHER", "1")
        ])));
        assert!(!is_configured(&Env::from_pairs([(CHAOS, "  ")])));
        for var in VARS.iter().filter(|v| **v != ENV) {
            assert!(is_configured(&Env::from_pairs([(*var, "x")])), "{var}");
        }
    }
}
