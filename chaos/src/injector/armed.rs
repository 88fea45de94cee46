//! Arming: rules prepared once, when they are armed (metric handles, ids,
//! ready-made response parts), so a request allocates nothing to evaluate them.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use metrics::Counter;
use telltale_core::GrpcCode;
use tokio::time::Instant;

use crate::metrics::{FaultCounters, injected_counters};
use crate::rules::{Fault, Matcher, RuleSet};

/// A prepared fault: the parsed fault, its counters and its ready-made response parts.
pub(crate) struct ArmedFault {
    pub(crate) fault: Fault,
    pub(crate) counters: FaultCounters,
    pub(crate) terminal: Option<Terminal>,
}

/// A prepared rule: its id, its draw key, its count limit and its faults.
pub(crate) struct ArmedRule {
    pub(crate) id: std::sync::Arc<str>,
    pub(crate) key: u64,
    pub(crate) probability: f64,
    pub(crate) limit: Option<u64>,
    pub(crate) fired: AtomicU64,
    pub(crate) kinds: String,
    pub(crate) faults: Vec<ArmedFault>,
}

pub(crate) struct ArmedGroup {
    pub(crate) matcher: Matcher,
    pub(crate) rules: Vec<ArmedRule>,
}

/// The armed rule set, replaced as a whole by the handle.
pub(crate) struct Armed {
    pub(crate) rules: RuleSet,
    pub(crate) groups: Vec<ArmedGroup>,
    pub(crate) deadline: Option<Instant>,
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
        /// `grpc-message`, already percent-encoded.
        message: Option<HeaderValue>,
    },
    Abort,
    Reset,
    Timeout,
}

/// Prepares `fault`, counted by `counters`.
pub(crate) fn prepare(fault: &Fault, counters: FaultCounters) -> ArmedFault {
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
            message: message.as_deref().map(telltale_core::grpc::encode_message),
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

/// FNV-1a: the stable key of a rule id or a correlation ID.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl ArmedRule {
    pub(crate) fn new(
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
    pub(crate) fn new(rules: RuleSet, ttl: Option<Duration>) -> Self {
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
                            .map(|f| {
                                prepare(f, injected_counters(f.kind(), &id, group.matcher.side))
                            })
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

/// The counter of header-requested faults of `kind`, prepared at build time.
pub(crate) fn header_counter(counters: &[(&'static str, Counter)], kind: &str) -> FaultCounters {
    let counter = counters
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(Counter::noop);
    FaultCounters::same(counter)
}
