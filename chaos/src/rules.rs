//! The rule model: what `TELLTALE_CHAOS` parses into, and prints back from.
//!
//! A [`RuleSet`] is a list of [`Group`]s; a group is a [`Matcher`] and the
//! [`Rule`]s it arms; a rule is an optional probability and count limit in front
//! of a chain of [`Fault`]s. [`RuleSet`]'s `Display` prints the canonical form of
//! the grammar, which parses back to the same rules.
//!
//! ```
//! use telltale_chaos::rules::{Fault, RuleSet};
//! use telltale_core::Side;
//!
//! let rules: RuleSet = "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503)".parse().unwrap();
//! let group = &rules.groups[0];
//! assert_eq!(group.matcher.side, Some(Side::Server));
//! assert_eq!(group.rules[1].faults[0], Fault::status(503));
//! assert_eq!(rules.to_string(), "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503)");
//! assert_eq!(rules.to_string().parse::<RuleSet>().unwrap(), rules);
//! ```

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};
use telltale_core::config::parse_percentage;
use telltale_core::{GrpcCode, Side};

/// A parsed rule set: groups evaluated in the order written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSet {
    /// The rule groups, separated by `|` in the text.
    pub groups: Vec<Group>,
}

/// One rule group: a matcher, then the rules that apply to matching requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Which requests this group applies to.
    pub matcher: Matcher,
    /// The rules, separated by `;` in the text, evaluated left to right.
    pub rules: Vec<Rule>,
}

/// The grammar's keyword for a side: `in` (server), `out` (client), `any` (`None`).
pub const fn side_keyword(side: Option<Side>) -> &'static str {
    match side {
        Some(Side::Server) => "in",
        Some(Side::Client) => "out",
        None => "any",
    }
}

/// Selects requests. Every present part must match.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    /// The side a group applies to: `in` is [`Side::Server`] (requests the
    /// service receives), `out` is [`Side::Client`] (requests it sends to its
    /// dependencies), `any` is `None` (both).
    pub side: Option<Side>,
    /// The request method, if restricted.
    pub method: Option<Method>,
    /// A path glob or route template, if restricted.
    pub path: Option<PathPattern>,
    /// A host (authority) glob, if restricted.
    pub host: Option<HostPattern>,
    /// Headers that must be present (and equal, when a value is given).
    pub headers: Vec<HeaderMatch>,
}

impl Matcher {
    /// A matcher selecting every request on `side` (`None`: both sides).
    pub fn new(side: Option<Side>) -> Self {
        Matcher {
            side,
            method: None,
            path: None,
            host: None,
            headers: Vec::new(),
        }
    }

    /// Whether a group with this matcher applies on `side` at all.
    pub fn applies_to(&self, side: Side) -> bool {
        self.side.is_none_or(|s| s == side)
    }
}

/// A path glob or route template: `/payments/*` (one segment), `/payments/**`
/// (any rest, including nothing), `/payments/{id}` (one segment, named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern(pub(crate) String);

impl PathPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut pat = self.0.split('/');
        let mut segs = path.split('/');
        loop {
            match (pat.next(), segs.next()) {
                (Some("**"), _) => return true,
                (None, None) => return true,
                (Some(p), Some(s)) => {
                    if !segment_matches(p, s) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    if pattern == "*" || (pattern.starts_with('{') && pattern.ends_with('}')) {
        return !segment.is_empty();
    }
    glob(pattern.as_bytes(), segment.as_bytes())
}

/// `*` matches any run of bytes (within one segment or host); everything else literally.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.iter().position(|&b| b == b'*') {
        None => pattern == text,
        Some(star) => {
            let (head, rest) = (&pattern[..star], &pattern[star + 1..]);
            if !text.starts_with(head) {
                return false;
            }
            let text = &text[head.len()..];
            (0..=text.len()).any(|i| glob(rest, &text[i..]))
        }
    }
}

/// A host glob, compared case-insensitively against the authority's host (and
/// port, when the pattern has one): `fraud-api`, `*.internal`, `db:5432`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern(pub(crate) String);

impl HostPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `authority` (`host` or `host:port`) matches.
    pub fn matches(&self, authority: &str) -> bool {
        let pattern = self.0.as_bytes();
        let with_port = self.0.contains(':');
        let text = if with_port {
            authority
        } else {
            telltale_core::http::split_host_port(authority).0
        };
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            glob(pattern, text.to_ascii_lowercase().as_bytes())
        } else {
            glob(pattern, text.as_bytes())
        }
    }
}

/// A header that must be present, `[name]`, or present with a value, `[name=value]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header name (lower case).
    pub name: http::HeaderName,
    /// The exact value required, if any.
    pub value: Option<String>,
}

/// One rule: `[probability] [count*] fault [+ fault ...]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Chance of firing per matching request, `None` = always.
    pub probability: Option<f64>,
    /// Fire at most this many times (the first N times it would fire).
    pub limit: Option<u64>,
    /// The chained faults applied together when the rule fires, in order.
    pub faults: Vec<Fault>,
}

/// A delay: fixed, a uniform range, or a base with symmetric jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// `delay(200ms)`.
    Fixed(Duration),
    /// `delay(200ms..800ms)`: uniform in the closed range.
    Range(Duration, Duration),
    /// `delay(500ms, jitter=100ms)`: uniform in `[base - jitter, base + jitter]`.
    Jitter(Duration, Duration),
}

impl Delay {
    /// The delay for a uniform draw `u` in `[0, 1)`.
    pub fn pick(&self, u: f64) -> Duration {
        let between = |lo: Duration, hi: Duration| {
            let span = hi.saturating_sub(lo).as_nanos() as f64;
            lo + Duration::from_nanos((span * u) as u64)
        };
        match *self {
            Delay::Fixed(d) => d,
            Delay::Range(lo, hi) => between(lo, hi),
            Delay::Jitter(base, jitter) => between(base.saturating_sub(jitter), base + jitter),
        }
    }
}

/// What a fired rule does.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait (tokio timer) before going on.
    Delay(Delay),
    /// Answer with this HTTP status without calling the service.
    Status {
        /// The status code.
        status: StatusCode,
        /// The response body, if any.
        body: Option<String>,
        /// A `Retry-After` header, in whole seconds (rounded up).
        retry_after: Option<Duration>,
    },
    /// Answer with a trailers-only gRPC error without calling the service.
    Grpc {
        /// The gRPC status code.
        code: GrpcCode,
        /// The `grpc-message`, if any.
        message: Option<String>,
    },
    /// Fail the exchange as a connection abort (the server closes the connection;
    /// the client sees a connection error).
    Abort,
    /// Fail the exchange as a connection reset.
    Reset,
    /// Hang until the caller gives up (its deadline drops the request) or chaos
    /// is killed.
    Timeout,
    /// Deliver the response body at this many bytes per second.
    Slow {
        /// Bytes per second, at least 1.
        bytes_per_second: u64,
    },
    /// Cut the response body after this many bytes, then fail it.
    Truncate {
        /// Bytes let through before the cut.
        after: u64,
    },
}

/// Every [`Fault::kind`].
pub(crate) const FAULT_KINDS: [&str; 8] = [
    "delay", "status", "grpc", "abort", "reset", "timeout", "slow", "truncate",
];

impl Fault {
    /// `status(code)` with no body and no `Retry-After`.
    ///
    /// # Panics
    /// When `code` is not a valid status code (100..=999).
    pub fn status(code: u16) -> Self {
        Fault::Status {
            status: StatusCode::from_u16(code).expect("a valid status code"),
            body: None,
            retry_after: None,
        }
    }

    /// The fault's keyword, used as the `fault` label and `chaos.fault` value.
    pub const fn kind(&self) -> &'static str {
        match self {
            Fault::Delay(_) => "delay",
            Fault::Status { .. } => "status",
            Fault::Grpc { .. } => "grpc",
            Fault::Abort => "abort",
            Fault::Reset => "reset",
            Fault::Timeout => "timeout",
            Fault::Slow { .. } => "slow",
            Fault::Truncate { .. } => "truncate",
        }
    }

    /// Whether the fault ends the exchange (nothing may follow it in a chain).
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Fault::Status { .. }
                | Fault::Grpc { .. }
                | Fault::Abort
                | Fault::Reset
                | Fault::Timeout
        )
    }
}

/// Prints a duration in the largest unit that keeps it exact (`s`, `ms`, `us`, `ns`).
pub(crate) struct Dur(pub(crate) Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            f.write_str("0ms")
        } else if ns % 1_000_000_000 == 0 {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns % 1_000_000 == 0 {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns % 1_000 == 0 {
            write!(f, "{}us", ns / 1_000)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

struct Prob(f64);

impl fmt::Display for Prob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = format!("{}%", self.0 * 100.0);
        if parse_percentage(&percent).ok() == Some(self.0) {
            f.write_str(&percent)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Delay(Delay::Fixed(d)) => write!(f, "delay({})", Dur(*d)),
            Fault::Delay(Delay::Range(a, b)) => write!(f, "delay({}..{})", Dur(*a), Dur(*b)),
            Fault::Delay(Delay::Jitter(d, j)) => {
                write!(f, "delay({}, jitter={})", Dur(*d), Dur(*j))
            }
            Fault::Status {
                status,
                body,
                retry_after,
            } => {
                write!(f, "status({}", status.as_u16())?;
                if let Some(body) = body {
                    write!(f, ", body={}", Quoted(body))?;
                }
                if let Some(after) = retry_after {
                    write!(f, ", retry-after={}", Dur(*after))?;
                }
                f.write_str(")")
            }
            Fault::Grpc { code, message } => {
                write!(f, "grpc({}", code.name())?;
                if let Some(message) = message {
                    write!(f, ", message={}", Quoted(message))?;
                }
                f.write_str(")")
            }
            Fault::Abort => f.write_str("abort"),
            Fault::Reset => f.write_str("reset"),
            Fault::Timeout => f.write_str("timeout"),
            Fault::Slow { bytes_per_second } => write!(f, "slow({bytes_per_second}/s)"),
            Fault::Truncate { after } => write!(f, "truncate({after})"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.probability {
            write!(f, "{} ", Prob(p))?;
        }
        if let Some(n) = self.limit {
            write!(f, "{n}* ")?;
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(side_keyword(self.side))?;
        if let Some(m) = &self.method {
            write!(f, " {m}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " {}", p.0)?;
        }
        if let Some(h) = &self.host {
            write!(f, " {}", h.0)?;
        }
        for h in &self.headers {
            match &h.value {
                Some(v) => write!(f, " [{}={v}]", h.name)?,
                None => write!(f, " [{}]", h.name)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.matcher)?;
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{group}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_globs() {
        let p = |s: &str| PathPattern(s.to_owned());
        assert!(p("/payments/*").matches("/payments/42"));
        assert!(!p("/payments/*").matches("/payments/42/refund"));
        assert!(!p("/payments/*").matches("/payments/"));
        assert!(p("/payments/{id}/refund").matches("/payments/7/refund"));
        assert!(p("/payments/**").matches("/payments"));
        assert!(p("/payments/**").matches("/payments/1/2/3"));
        assert!(p("/grpc.health.v1.Health/*").matches("/grpc.health.v1.Health/Check"));
        assert!(p("/v*/items").matches("/v2/items"));
        assert!(!p("/a").matches("/b"));
        assert!(p("/").matches("/"));
    }

    #[test]
    fn host_globs() {
        let h = |s: &str| HostPattern(s.to_owned());
        assert!(h("fraud-api").matches("fraud-api:8080"));
        assert!(h("fraud-api").matches("Fraud-API"));
        assert!(h("*.internal").matches("db.internal"));
        assert!(!h("db:5432").matches("db:5433"));
        assert!(h("db:5432").matches("db:5432"));
        assert!(!h("fraud-api").matches("other"));
    }

    #[test]
    fn delays_pick_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(Delay::Fixed(ms(5)).pick(0.9), ms(5));
        assert_eq!(Delay::Range(ms(200), ms(800)).pick(0.5), ms(500));
        assert_eq!(Delay::Jitter(ms(100), ms(200)).pick(0.0), ms(0));
        assert!(Delay::Jitter(ms(500), ms(100)).pick(0.999) <= ms(600));
    }
}
