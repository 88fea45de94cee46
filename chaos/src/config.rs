//! `from_env`: the variables, the environment guard.

use std::net::IpAddr;

use telltale_core::config::{Env, EnvSource, ParseError, parse_list_with};

use crate::headers::HeaderFaults;
use crate::injector::{ChaosError, DEFAULT_ALLOWED_ENVS, Injector};
use crate::parse::{RuleError, parse_rules};
use crate::rules::RuleSet;

/// The variable holding the rules.
pub const RULES_VAR: &str = "TELLTALE_CHAOS";

/// The deployment environment: `TELLTALE_ENV`, else `deployment.environment`
/// (or `deployment.environment.name`) in `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn deployment_environment<S: EnvSource>(
    env: &Env<S>,
) -> Result<Option<String>, ChaosError> {
    if let Some(e) = env.string("TELLTALE_ENV")? {
        return Ok(Some(e));
    }
    let Some(attrs) = env.string("OTEL_RESOURCE_ATTRIBUTES")? else {
        return Ok(None);
    };
    Ok(attrs.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        matches!(
            k.trim(),
            "deployment.environment" | "deployment.environment.name"
        )
        .then(|| percent_decode(v.trim()))
    }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn from_env<S: EnvSource>(env: &Env<S>) -> Result<Injector, ChaosError> {
    let headers_on = env.boolean("TELLTALE_CHAOS_HEADERS")?.unwrap_or(false);
    let rules = match env.string(RULES_VAR)? {
        Some(text) => parse_rules(&text).map_err(|e| RuleError::new(RULES_VAR, &text, e))?,
        // Header-controlled faults alone arm an empty rule set.
        None if headers_on => RuleSet::default(),
        None => return Ok(Injector::disabled()),
    };
    let mut builder = Injector::builder().rules(rules);
    if let Some(seed) = env.number::<u64>("TELLTALE_CHAOS_SEED")? {
        builder = builder.seed(seed);
    }
    if let Some(max) = env.number::<usize>("TELLTALE_CHAOS_MAX_ACTIVE")? {
        builder = builder.max_active(max);
    }
    if let Some(ttl) = env.duration("TELLTALE_CHAOS_TTL")? {
        builder = builder.ttl(ttl);
    }
    if let Some(header) = env.boolean("TELLTALE_CHAOS_RESPONSE_HEADER")? {
        builder = builder.response_header(header);
    }
    if headers_on {
        let mut headers = HeaderFaults::new();
        if let Some(secret) = env.string("TELLTALE_CHAOS_HEADERS_SECRET")? {
            headers = headers.secret(secret);
        }
        let peers = env
            .parse("TELLTALE_CHAOS_HEADERS_TRUSTED", |v| {
                parse_list_with(v, |item| {
                    item.parse::<IpAddr>()
                        .map_err(|_| ParseError::new(1, "an IP address"))
                })
            })?
            .unwrap_or_default();
        for peer in peers {
            headers = headers.trusted_peer(peer);
        }
        builder = builder.header_faults(headers);
    }
    let allowed = env.list("TELLTALE_CHAOS_ALLOW_ENVS")?.unwrap_or_else(|| {
        DEFAULT_ALLOWED_ENVS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    builder = builder.environment(deployment_environment(env)?, allowed);
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
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
