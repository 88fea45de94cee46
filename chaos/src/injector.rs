//! The injector: armed rules, the guards around them, and the run-time handle.
//!
//! An [`Injector`] is built from the environment ([`Injector::from_env`]) or
//! with [`Injector::builder`]; layers made from it ([`ChaosLayer`](crate::ChaosLayer))
//! share its state. A [`ChaosHandle`] replaces the rules, pauses, resumes and
//! kills injection at run time.
//!
//! ```
//! use telltale_chaos::{Injector, Status};
//! use telltale_core::config::Env;
//!
//! let env = Env::from_pairs([
//!     ("TELLTALE_CHAOS", "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503)"),
//!     ("TELLTALE_CHAOS_SEED", "42"),
//!     ("TELLTALE_ENV", "staging"),
//! ]);
//! let injector = Injector::from_env_source(&env).unwrap();
//! assert_eq!(injector.status(), Status::Armed);
//!
//! let handle = injector.handle();
//! handle.pause();
//! assert_eq!(injector.status(), Status::Paused);
//! handle.resume();
//! handle.kill();
//! assert_eq!(injector.status(), Status::Killed);
//!
//! // Off unless asked for, and refused outside the allowed environments.
//! let off = Injector::from_env_source(&Env::from_pairs([("TELLTALE_ENV", "staging")])).unwrap();
//! assert_eq!(off.status(), Status::Off);
//! let prod = Env::from_pairs([("TELLTALE_CHAOS", "in: abort"), ("TELLTALE_ENV", "production")]);
//! assert_eq!(Injector::from_env_source(&prod).unwrap().status(), Status::Refused);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use metrics::Counter;
use telltale_core::config::{Env, EnvSource, ProcessEnv};
use telltale_core::{ConfigError, GrpcCode};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::headers::HeaderFaults;
use crate::parse::{RuleError, parse_rules};
use crate::rules::{Direction, Fault, Matcher, RuleSet};

/// Where the injector stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No rules were given: nothing is ever injected.
    Off,
    /// Rules are armed and injecting.
    Armed,
    /// Paused by the handle; [`ChaosHandle::resume`] arms again.
    Paused,
    /// Killed by the handle: nothing more is injected, faults in progress stop.
    Killed,
    /// The TTL ran out.
    Expired,
    /// The environment guard refused to arm (see [`Injector::refusal`]).
    Refused,
}

const OFF: u8 = 0;
const ARMED: u8 = 1;
const PAUSED: u8 = 2;
const KILLED: u8 = 3;
const EXPIRED: u8 = 4;
const REFUSED: u8 = 5;

fn status_of(v: u8) -> Status {
    match v {
        ARMED => Status::Armed,
        PAUSED => Status::Paused,
        KILLED => Status::Killed,
        EXPIRED => Status::Expired,
        REFUSED => Status::Refused,
        _ => Status::Off,
    }
}

/// Why an injector could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// `TELLTALE_CHAOS` (or the given rules text) is malformed.
    #[error("{0}")]
    Rules(#[from] RuleError),
    /// A companion variable is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Header-controlled faults were enabled without a way to trust callers.
    #[error(
        "header-controlled chaos needs trusted callers: set TELLTALE_CHAOS_HEADERS_SECRET or TELLTALE_CHAOS_HEADERS_TRUSTED"
    )]
    UntrustedHeaders,
}

/// The default `TELLTALE_CHAOS_ALLOW_ENVS`.
pub const DEFAULT_ALLOWED_ENVS: &[&str] = &["dev", "development", "local", "test", "staging"];

/// Fault injection state shared by every layer made from it. Cheap to clone.
#[derive(Clone)]
pub struct Injector {
    pub(crate) shared: Arc<Shared>,
}

/// Run-time control of an [`Injector`]: replace rules, pause, resume, kill.
#[derive(Clone)]
pub struct ChaosHandle {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) state: AtomicU8,
    armed: RwLock<Arc<Armed>>,
    pub(crate) kill: Arc<Notify>,
    active: AtomicUsize,
    max_active: Option<usize>,
    seed: Option<u64>,
    ttl: Option<Duration>,
    pub(crate) response_header: bool,
    pub(crate) header_faults: Option<HeaderFaults>,
    seq: AtomicU64,
    refusal: Option<String>,
    skipped: Counter,
    header_counters: Vec<(&'static str, Counter)>,
}

impl Shared {
    pub(crate) fn is_killed(&self) -> bool {
        self.state.load(Ordering::Acquire) == KILLED
    }
}

/// A prepared fault: the parsed fault, its counters and its ready-made response parts.
pub(crate) struct ArmedFault {
    pub(crate) fault: Fault,
    counters: [Counter; 2],
    terminal: Option<Terminal>,
}

pub(crate) struct ArmedRule {
    pub(crate) id: Arc<str>,
    key: u64,
    probability: f64,
    limit: Option<u64>,
    fired: AtomicU64,
    kinds: String,
    pub(crate) faults: Vec<ArmedFault>,
}

struct ArmedGroup {
    matcher: Matcher,
    rules: Vec<ArmedRule>,
}

struct Armed {
    rules: RuleSet,
    groups: Vec<ArmedGroup>,
    deadline: Option<Instant>,
}

/// What ends an exchange, prepared at arm time.
#[derive(Clone, Debug)]
pub(crate) enum Terminal {
    Status {
        status: StatusCode,
        body: Bytes,
        retry_after: Option<HeaderValue>,
    },
    Grpc {
        code: GrpcCode,
        message: Option<HeaderValue>,
    },
    Abort,
    Reset,
    Timeout,
}

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

const FAULT_KINDS: [&str; 8] = [
    "delay", "status", "grpc", "abort", "reset", "timeout", "slow", "truncate",
];

const SIDES: [Direction; 2] = [Direction::In, Direction::Out];

fn side_index(side: Direction) -> usize {
    usize::from(side == Direction::Out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn counters(kind: &'static str, rule: &str) -> [Counter; 2] {
    SIDES.map(|side| {
        metrics::counter!(
            "chaos_faults_injected_total",
            "direction" => side.as_str(),
            "fault" => kind,
            "rule" => rule.to_owned()
        )
    })
}

fn prepare(fault: &Fault, counters: [Counter; 2]) -> ArmedFault {
    let terminal = match fault {
        Fault::Status {
            status,
            body,
            retry_after,
        } => Some(Terminal::Status {
            status: *status,
            body: body.clone().map(Bytes::from).unwrap_or_default(),
            retry_after: retry_after.map(|d| {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                HeaderValue::from(secs)
            }),
        }),
        Fault::Grpc { code, message } => Some(Terminal::Grpc {
            code: *code,
            message: message
                .as_deref()
                .and_then(|m| HeaderValue::try_from(percent_encode(m)).ok()),
        }),
        Fault::Abort => Some(Terminal::Abort),
        Fault::Reset => Some(Terminal::Reset),
        Fault::Timeout => Some(Terminal::Timeout),
        _ => None,
    };
    ArmedFault {
        fault: fault.clone(),
        counters,
        terminal,
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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

impl ArmedRule {
    fn new(
        id: String,
        probability: Option<f64>,
        limit: Option<u64>,
        faults: Vec<ArmedFault>,
    ) -> Self {
        let kinds = faults
            .iter()
            .map(|f| f.fault.kind())
            .collect::<Vec<_>>()
            .join("+");
        ArmedRule {
            key: fnv(id.as_bytes()),
            faults,
            id: id.into(),
            probability: probability.unwrap_or(1.0),
            limit,
            fired: AtomicU64::new(0),
            kinds,
        }
    }
}

impl Armed {
    fn new(rules: RuleSet, ttl: Option<Duration>) -> Self {
        let groups = rules
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| ArmedGroup {
                matcher: group.matcher.clone(),
                rules: group
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(r, rule)| {
                        let id = format!("{}.{}", g + 1, r + 1);
                        let faults = rule
                            .faults
                            .iter()
                            .map(|f| prepare(f, counters(f.kind(), &id)))
                            .collect();
                        ArmedRule::new(id, rule.probability, rule.limit, faults)
                    })
                    .collect(),
            })
            .collect();
        Armed {
            rules,
            groups,
            deadline: ttl.map(|ttl| Instant::now() + ttl),
        }
    }
}

fn matches<B>(m: &Matcher, side: Direction, req: &Request<B>) -> bool {
    if !m.direction.applies_to(side) {
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

/// A uniform draw in `[0, 1)`: from the seed, the rule and the correlation key
/// when seeded, random otherwise.
fn draw(seed: Option<u64>, corr: Option<u64>, key: u64, salt: u64) -> f64 {
    match (seed, corr) {
        (Some(seed), Some(corr)) => unit(mix(mix(mix(seed) ^ key) ^ corr) ^ mix(salt)),
        _ => rand::random::<f64>(),
    }
}

/// One request's decisions in progress.
struct Deciding<'a> {
    shared: &'a Arc<Shared>,
    side: Direction,
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

    /// Evaluates one rule; sets `done` when evaluation must stop (a terminal
    /// fault fired or the active cap was hit).
    fn rule(&mut self, rule: &ArmedRule) {
        let faults = &rule.faults;
        if self.draw(rule.key, 0) >= rule.probability {
            return;
        }
        if self.plan.is_none() {
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
                shared.skipped.increment(1);
                tracing::debug!(target: "telltale_chaos", max_active = ?shared.max_active, chaos.rule = %rule.id, "chaos fault skipped: TELLTALE_CHAOS_MAX_ACTIVE reached");
                self.done = true;
                return;
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
        }
        let plan = self.plan.as_mut().expect("reserved above");
        let side = side_index(self.side);
        for (i, f) in faults.iter().enumerate() {
            f.counters[side].increment(1);
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
            direction = self.side.as_str(),
            chaos.injected = true,
            chaos.rule = %rule.id,
            chaos.fault = %kinds,
            "chaos fault injected"
        );
        self.fired.push(rule.id.clone());
        self.kinds.push(rule.kinds.clone());
    }
}

impl Injector {
    /// A builder; nothing is read from the environment.
    pub fn builder() -> InjectorBuilder {
        InjectorBuilder::default()
    }

    /// An injector that never injects (the state when `TELLTALE_CHAOS` is unset).
    pub fn disabled() -> Self {
        InjectorBuilder::default().finish(None, OFF, None)
    }

    /// Reads `TELLTALE_CHAOS` and its companion variables from the process
    /// environment; see the [crate docs](crate#environment-variables).
    pub fn from_env() -> Result<Self, ChaosError> {
        Self::from_env_source(&Env::<ProcessEnv>::process())
    }

    /// [`from_env`](Self::from_env) reading from `env` (tests, embedded configs).
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, ChaosError> {
        crate::config::from_env(env)
    }

    /// The run-time control handle.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle {
            shared: self.shared.clone(),
        }
    }

    /// Where the injector stands now.
    pub fn status(&self) -> Status {
        self.handle().status()
    }

    /// Why the environment guard refused to arm, when it did.
    pub fn refusal(&self) -> Option<&str> {
        self.shared.refusal.as_deref()
    }

    /// The armed rules (empty when off).
    pub fn rules(&self) -> RuleSet {
        self.handle().rules()
    }

    /// Faults in flight now (reserved and not yet ended).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The one atomic load on every request.
    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        self.shared.state.load(Ordering::Relaxed) == ARMED
    }

    /// Chooses the faults for a request, or `None`. Only called when armed.
    pub(crate) fn plan<B>(&self, side: Direction, req: &mut Request<B>) -> Option<Plan> {
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
        if side == Direction::In {
            if let Some(headers) = &shared.header_faults {
                if let Some(rule) = headers.take(req) {
                    let faults: Vec<ArmedFault> = rule
                        .faults
                        .iter()
                        .map(|f| {
                            let counter = shared
                                .header_counters
                                .iter()
                                .find(|(kind, _)| *kind == f.kind())
                                .map(|(_, c)| c.clone())
                                .unwrap_or_else(Counter::noop);
                            prepare(f, [counter.clone(), counter])
                        })
                        .collect();
                    let header_rule =
                        ArmedRule::new("header".to_owned(), rule.probability, None, faults);
                    d.rule(&header_rule);
                }
            }
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

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("status", &self.status())
            .field("rules", &self.rules().to_string())
            .field("active", &self.active())
            .finish()
    }
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl ChaosHandle {
    /// Where the injector stands now.
    pub fn status(&self) -> Status {
        status_of(self.shared.state.load(Ordering::Acquire))
    }

    /// The armed rules.
    pub fn rules(&self) -> RuleSet {
        self.shared
            .armed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rules
            .clone()
    }

    /// Replaces the rules (count limits and the TTL start afresh) and arms them,
    /// unless the injector was refused by its environment guard or killed: those
    /// are final. Returns the status after the call.
    pub fn replace_rules(&self, rules: RuleSet) -> Status {
        let state = self.shared.state.load(Ordering::Acquire);
        if state == REFUSED || state == KILLED {
            tracing::warn!(target: "telltale_chaos", status = ?status_of(state), "chaos rules not replaced: the injector is refused or killed");
            return status_of(state);
        }
        *self.shared.armed.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Armed::new(rules, self.shared.ttl));
        let _ = self
            .shared
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                matches!(s, OFF | ARMED | EXPIRED).then_some(ARMED)
            });
        tracing::info!(target: "telltale_chaos", rules = %self.rules(), "chaos rules replaced");
        self.status()
    }

    /// Parses `text` with the rule grammar and [replaces](Self::replace_rules) the rules.
    pub fn replace_rules_str(&self, text: &str) -> Result<Status, RuleError> {
        let rules = parse_rules(text).map_err(|e| RuleError::new("rules", text, e))?;
        Ok(self.replace_rules(rules))
    }

    /// Stops injecting new faults; faults in progress finish. Undo with [`resume`](Self::resume).
    pub fn pause(&self) {
        if self
            .shared
            .state
            .compare_exchange(ARMED, PAUSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(target: "telltale_chaos", "chaos paused");
        }
    }

    /// Arms again after [`pause`](Self::pause).
    pub fn resume(&self) {
        if self
            .shared
            .state
            .compare_exchange(PAUSED, ARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(target: "telltale_chaos", "chaos resumed");
        }
    }

    /// The kill switch: no new faults, and faults in progress (delays, hangs,
    /// slow and truncated bodies) stop at once and let the real exchange go on.
    /// Final for this injector.
    pub fn kill(&self) {
        let _ = self
            .shared
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != REFUSED).then_some(KILLED)
            });
        self.shared.kill.notify_waiters();
        tracing::warn!(target: "telltale_chaos", "chaos killed");
    }

    /// Faults in flight now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }
}

/// Builds an [`Injector`] in code. Nothing is read from the environment.
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
    rules: Option<RuleSet>,
    seed: Option<u64>,
    max_active: Option<usize>,
    ttl: Option<Duration>,
    response_header: Option<bool>,
    header_faults: Option<HeaderFaults>,
    guard: Option<(Option<String>, Vec<String>)>,
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
        if let Some((environment, allowed)) = &self.guard {
            let ok = environment
                .as_deref()
                .is_some_and(|e| allowed.iter().any(|a| a.eq_ignore_ascii_case(e)));
            if !ok {
                let reason = match environment {
                    Some(e) => format!(
                        "deployment environment {e:?} is not in the allow-list [{}] (TELLTALE_CHAOS_ALLOW_ENVS)",
                        allowed.join(", ")
                    ),
                    None => format!(
                        "deployment environment unknown (set TELLTALE_ENV or deployment.environment in OTEL_RESOURCE_ATTRIBUTES); allow-list [{}]",
                        allowed.join(", ")
                    ),
                };
                tracing::warn!(target: "telltale_chaos", reason = %reason, rules = %rules, "chaos REFUSED to arm: {reason}");
                return Ok(self.finish(None, REFUSED, Some(reason)));
            }
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

    fn finish(self, rules: Option<RuleSet>, state: u8, refusal: Option<String>) -> Injector {
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
                skipped: metrics::counter!("chaos_faults_skipped_total", "reason" => "max_active"),
                header_counters: if self.header_faults.is_some() {
                    FAULT_KINDS
                        .iter()
                        .map(|kind| (*kind, counters(kind, "header")[0].clone()))
                        .collect()
                } else {
                    Vec::new()
                },
                header_faults: self.header_faults,
            }),
        }
    }
}
