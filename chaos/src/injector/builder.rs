//! [`InjectorBuilder`] and the environment guard it applies when building.

use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize};
use std::time::Duration;

use telltale_core::Side;
use tokio::sync::Notify;

use super::armed::Armed;
use super::{ARMED, ChaosError, Injector, OFF, REFUSED, Shared};
use crate::headers::HeaderFaults;
use crate::metrics::injected_counters;
use crate::rules::{FAULT_KINDS, RuleSet};

/// The default `TELLTALE_CHAOS_ALLOW_ENVS`.
pub const DEFAULT_ALLOWED_ENVS: &[&str] = &["dev", "development", "local", "test", "staging"];

/// Builds an [`Injector`] in code. Nothing is read from the environment unless
/// asked for with [`env`](Self::env).
///
/// ```
/// use std::time::Duration;
/// use telltale_chaos::{Injector, Status};
///
/// let injector = Injector::builder()
///     .rules("out payments-api: 10% status(503)".parse().unwrap())
///     .seed(7)
///     .max_active(4)
///     .ttl(Duration::from_secs(600))
///     .environment(Some("staging"), ["dev", "staging"])
///     .build()
///     .unwrap();
/// assert_eq!(injector.status(), Status::Armed);
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct InjectorBuilder {
    pub(crate) rules: Option<RuleSet>,
    pub(crate) seed: Option<u64>,
    pub(crate) max_active: Option<usize>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) response_header: Option<bool>,
    pub(crate) header_faults: Option<HeaderFaults>,
    /// The deployment environment and the allow-list.
    pub(crate) guard: Option<(Option<String>, Vec<String>)>,
}

impl InjectorBuilder {
    /// The rules to arm. Defaults to none (the injector is off).
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Makes decisions reproducible: derived from the seed, the rule and the
    /// request's correlation ID. Defaults to random decisions.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// At most this many faults in flight at once. Defaults to no cap.
    pub fn max_active(mut self, max: usize) -> Self {
        self.max_active = Some(max);
        self
    }

    /// Injection switches itself off this long after arming. Defaults to never.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Adds `x-telltale-chaos: <rule ids>` to responses that carry a fault.
    /// Defaults to `true`.
    pub fn response_header(mut self, enabled: bool) -> Self {
        self.response_header = Some(enabled);
        self
    }

    /// Accepts faults asked for in request headers from trusted callers.
    /// Defaults to off.
    pub fn header_faults(mut self, headers: HeaderFaults) -> Self {
        self.header_faults = Some(headers);
        self
    }

    /// The environment guard: arm only if `environment` is one of `allowed`
    /// (case-insensitive); an unknown environment (`None`) is refused. Defaults
    /// to no guard (code that builds an injector decides for itself).
    pub fn environment<E, I, T>(mut self, environment: Option<E>, allowed: I) -> Self
    where
        E: Into<String>,
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.guard = Some((
            environment.map(Into::into),
            allowed.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Builds the injector: armed when rules were given and the guard allows it,
    /// refused (logged) when the guard does not, off otherwise.
    pub fn build(mut self) -> Result<Injector, ChaosError> {
        if let Some(headers) = &self.header_faults {
            if !headers.is_trusting() {
                return Err(ChaosError::UntrustedHeaders);
            }
        }
        let Some(rules) = self.rules.take() else {
            return Ok(self.finish(None, OFF, None));
        };
        if let Some(reason) = self.refusal() {
            tracing::warn!(target: "telltale_chaos", reason = %reason, rules = %rules, "chaos REFUSED to arm: {reason}");
            return Ok(self.finish(None, REFUSED, Some(reason)));
        }
        tracing::warn!(
            target: "telltale_chaos",
            rules = %rules,
            seed = ?self.seed,
            max_active = ?self.max_active,
            ttl = ?self.ttl,
            "chaos ARMED: faults will be injected"
        );
        Ok(self.finish(Some(rules), ARMED, None))
    }

    /// Why the environment guard refuses to arm, if it does.
    fn refusal(&self) -> Option<String> {
        let (environment, allowed) = self.guard.as_ref()?;
        let ok = environment
            .as_deref()
            .is_some_and(|e| allowed.iter().any(|a| a.eq_ignore_ascii_case(e)));
        if ok {
            return None;
        }
        Some(match environment {
            Some(e) => format!(
                "deployment environment {e:?} is not in the allow-list [{}] (TELLTALE_CHAOS_ALLOW_ENVS)",
                allowed.join(", ")
            ),
            None => format!(
                "deployment environment unknown (set TELLTALE_ENV or deployment.environment in OTEL_RESOURCE_ATTRIBUTES); allow-list [{}]",
                allowed.join(", ")
            ),
        })
    }

    pub(super) fn finish(
        self,
        rules: Option<RuleSet>,
        state: u8,
        refusal: Option<String>,
    ) -> Injector {
        Injector {
            shared: Arc::new(Shared {
                state: AtomicU8::new(state),
                armed: RwLock::new(Arc::new(Armed::new(rules.unwrap_or_default(), self.ttl))),
                kill: Arc::new(Notify::new()),
                active: AtomicUsize::new(0),
                max_active: self.max_active,
                seed: self.seed,
                ttl: self.ttl,
                response_header: self.response_header.unwrap_or(true),
                seq: AtomicU64::new(0),
                refusal,
                skipped: std::sync::OnceLock::new(),
                header_counters: if self.header_faults.is_some() {
                    FAULT_KINDS
                        .iter()
                        .map(|kind| {
                            (
                                *kind,
                                injected_counters(kind, "header", Some(Side::Server))
                                    .on(Side::Server)
                                    .clone(),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                header_faults: self.header_faults,
            }),
        }
    }
}
