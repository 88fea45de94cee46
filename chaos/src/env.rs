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

use telltale_core::config::{Env, EnvSource, ParseError, parse_list_with};
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

/// The deployment environment: `TELLTALE_ENV`, else `deployment.environment.name`
/// (or `deployment.environment`) in `OTEL_RESOURCE_ATTRIBUTES`, parsed by
/// [`telltale_core::resource`].
pub(crate) fn deployment_environment<S: EnvSource>(
    env: &Env<S>,
) -> Result<Option<String>, ChaosError> {
    if let Some(e) = env.string(ENV)? {
        return Ok(Some(e));
    }
    Ok(resource::deployment_environment(env)?)
}

/// Adds the secret and trusted peers of `env` to `headers`.
fn trust<S: EnvSource>(
    env: &Env<S>,
    mut headers: HeaderFaults,
) -> Result<HeaderFaults, ChaosError> {
    if let Some(secret) = env.string(HEADERS_SECRET)? {
        headers = headers.secret(secret);
    }
    let peers = env
        .parse(HEADERS_TRUSTED, |v| {
            parse_list_with(v, |item| {
                item.parse::<IpAddr>()
                    .map_err(|_| ParseError::new(1, "an IP address"))
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
            let rules = parse_rules(&text).map_err(|e| RuleError::new(CHAOS, &text, e))?;
            self = self.rules(rules);
        }
        if let Some(seed) = env.number::<u64>(SEED)? {
            self = self.seed(seed);
        }
        if let Some(max) = env.number::<usize>(MAX_ACTIVE)? {
            self = self.max_active(max);
        }
        if let Some(ttl) = env.duration(TTL)? {
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
        self.header_faults = headers.map(|h| trust(env, h)).transpose()?;
        if headers_on == Some(true) && self.rules.is_none() {
            // Header-controlled faults alone arm an empty rule set.
            self.rules = Some(RuleSet::default());
        }
        let allowed = env.list(ALLOW_ENVS)?;
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
/// deployment environment is refused).
pub(crate) fn injector<S: EnvSource>(env: &Env<S>) -> Result<Injector, ChaosError> {
    let headers_on = env.boolean(HEADERS)?.unwrap_or(false);
    if !headers_on && env.string(CHAOS)?.is_none() {
        return Ok(Injector::disabled());
    }
    let mut builder = Injector::builder().env(env)?;
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
