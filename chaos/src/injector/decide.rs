//! One request's decisions: which rules match, which fire, and the plan of
//! faults they add up to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderValue, Request};
use telltale_core::Side;
use tokio::time::Instant;

use super::armed::{Armed, ArmedFault, ArmedRule, Terminal, fnv, header_counter, prepare};
use super::{ARMED, EXPIRED, Injector, Shared};
use crate::rules::{Fault, Matcher};

/// The faults chosen for one request.
pub(crate) struct Plan {
    pub(crate) delay: Duration,
    pub(crate) terminal: Option<(Terminal, Arc<str>)>,
    pub(crate) slow: Option<u64>,
    pub(crate) truncate: Option<u64>,
    pub(crate) header: Option<HeaderValue>,
    /// The fired rule ids, comma-separated.
    pub(crate) rules: Arc<str>,
    pub(crate) guard: ActiveGuard,
}

/// Holds one slot of `TELLTALE_CHAOS_MAX_ACTIVE` until the fault ends.
pub(crate) struct ActiveGuard {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform draw in `[0, 1)`: from the seed, the rule and the correlation key
/// when seeded, random otherwise.
fn draw(seed: Option<u64>, corr: Option<u64>, key: u64, salt: u64) -> f64 {
    match (seed, corr) {
        (Some(seed), Some(corr)) => unit(mix(mix(mix(seed) ^ key) ^ corr) ^ mix(salt)),
        _ => rand::random::<f64>(),
    }
}

fn matches<B>(m: &Matcher, side: Side, req: &Request<B>) -> bool {
    if !m.applies_to(side) {
        return false;
    }
    if let Some(method) = &m.method {
        if method != req.method() {
            return false;
        }
    }
    if let Some(path) = &m.path {
        if !path.matches(req.uri().path()) {
            return false;
        }
    }
    if let Some(host) = &m.host {
        let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        if !authority.is_some_and(|a| host.matches(a)) {
            return false;
        }
    }
    m.headers
        .iter()
        .all(|h| match (req.headers().get(&h.name), &h.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(want)) => v.as_bytes() == want.as_bytes(),
        })
}

/// One request's decisions in progress.
struct Deciding<'a> {
    shared: &'a Arc<Shared>,
    side: Side,
    corr: Option<u64>,
    plan: Option<Plan>,
    fired: Vec<Arc<str>>,
    kinds: Vec<String>,
    done: bool,
}

impl Deciding<'_> {
    fn draw(&self, key: u64, salt: u64) -> f64 {
        draw(self.shared.seed, self.corr, key, salt)
    }

    /// Reserves a `TELLTALE_CHAOS_MAX_ACTIVE` slot for the first fired rule;
    /// `false` when the cap is reached (counted, logged).
    fn reserve(&mut self, rule: &ArmedRule) -> bool {
        if self.plan.is_some() {
            return true;
        }
        let shared = self.shared;
        let reserved = match shared.max_active {
            None => {
                shared.active.fetch_add(1, Ordering::AcqRel);
                true
            }
            Some(max) => shared
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                    (a < max).then_some(a + 1)
                })
                .is_ok(),
        };
        if !reserved {
            shared
                .skipped
                .get_or_init(crate::metrics::skipped_counter)
                .increment(1);
            tracing::debug!(target: "telltale_chaos", max_active = ?shared.max_active, chaos.rule = %rule.id, "chaos fault skipped: TELLTALE_CHAOS_MAX_ACTIVE reached");
            return false;
        }
        self.plan = Some(Plan {
            delay: Duration::ZERO,
            terminal: None,
            slow: None,
            truncate: None,
            header: None,
            rules: Arc::from(""),
            guard: ActiveGuard {
                shared: shared.clone(),
            },
        });
        true
    }

    /// Evaluates one rule; sets `done` when evaluation must stop (a terminal
    /// fault fired or the active cap was hit).
    fn rule(&mut self, rule: &ArmedRule) {
        if self.draw(rule.key, 0) >= rule.probability {
            return;
        }
        if !self.reserve(rule) {
            self.done = true;
            return;
        }
        if let Some(limit) = rule.limit {
            if rule
                .fired
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_err()
            {
                return;
            }
        } else {
            // Counted for the debug surface (`ChaosHandle::rule_stats`).
            rule.fired.fetch_add(1, Ordering::Relaxed);
        }
        let plan = self.plan.as_mut().expect("reserved above");
        for (i, f) in rule.faults.iter().enumerate() {
            f.counters.on(self.side).increment(1);
            match &f.fault {
                Fault::Delay(d) => {
                    plan.delay += d.pick(draw(self.shared.seed, self.corr, rule.key, i as u64 + 1));
                }
                Fault::Slow { bytes_per_second } => plan.slow = Some(*bytes_per_second),
                Fault::Truncate { after } => {
                    plan.truncate = Some(plan.truncate.map_or(*after, |t| t.min(*after)));
                }
                _ => {
                    if let Some(t) = &f.terminal {
                        plan.terminal = Some((t.clone(), rule.id.clone()));
                        self.done = true;
                    }
                }
            }
        }
        let kinds = &rule.kinds;
        tracing::info!(
            target: "telltale_chaos",
            direction = crate::metrics::direction(self.side),
            chaos.injected = true,
            chaos.rule = %rule.id,
            chaos.fault = %kinds,
            "chaos fault injected"
        );
        self.fired.push(rule.id.clone());
        self.kinds.push(rule.kinds.clone());
    }

    /// Faults asked for in trusted request headers, evaluated first.
    fn header_rule<B>(&mut self, req: &mut Request<B>) {
        let shared = self.shared;
        let Some(rule) = shared.header_faults.as_ref().and_then(|h| h.take(req)) else {
            return;
        };
        let faults: Vec<ArmedFault> = rule
            .faults
            .iter()
            .map(|f| prepare(f, header_counter(&shared.header_counters, f.kind())))
            .collect();
        let header_rule = ArmedRule::new("header".to_owned(), rule.probability, None, faults);
        self.rule(&header_rule);
    }
}

impl Injector {
    /// Chooses the faults for a request, or `None`. Only called when armed.
    pub(crate) fn plan<B>(&self, side: Side, req: &mut Request<B>) -> Option<Plan> {
        let shared = &self.shared;
        // Held for the evaluation (rules are replaced rarely); no Arc traffic.
        let guard = shared.armed.read().unwrap_or_else(|e| e.into_inner());
        let armed: &Armed = &guard;
        if let Some(deadline) = armed.deadline {
            if Instant::now() >= deadline {
                if shared
                    .state
                    .compare_exchange(ARMED, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::info!(target: "telltale_chaos", "chaos switched itself off: TELLTALE_CHAOS_TTL ran out");
                }
                return None;
            }
        }
        let corr = shared.seed.map(|_| {
            telltale_core::correlation::with_current(|id| id.map(|id| fnv(id.as_str().as_bytes())))
                .or_else(|| {
                    req.headers()
                        .get("x-correlation-id")
                        .map(|v| fnv(v.as_bytes()))
                })
                .unwrap_or_else(|| mix(shared.seq.fetch_add(1, Ordering::Relaxed)))
        });
        let mut d = Deciding {
            shared,
            side,
            corr,
            plan: None,
            fired: Vec::new(),
            kinds: Vec::new(),
            done: false,
        };
        if side == Side::Server {
            d.header_rule(req);
        }
        'groups: for group in &armed.groups {
            if d.done {
                break;
            }
            if !matches(&group.matcher, side, req) {
                continue;
            }
            for rule in &group.rules {
                d.rule(rule);
                if d.done {
                    break 'groups;
                }
            }
        }
        let mut plan = d.plan?;
        if d.fired.is_empty() {
            return None;
        }
        let rules = d.fired.join(",");
        let kinds = d.kinds.join(",");
        let span = tracing::Span::current();
        span.record("chaos.injected", true);
        span.record("chaos.rule", rules.as_str());
        span.record("chaos.fault", kinds.as_str());
        if shared.response_header {
            plan.header = HeaderValue::try_from(rules.as_str()).ok();
        }
        plan.rules = rules.into();
        Some(plan)
    }
}
