//! Header-controlled faults (Envoy style), off by default, trusted callers only.
//!
//! When enabled, an inbound request may ask for a fault with headers:
//!
//! | header | value | fault |
//! |---|---|---|
//! | `x-telltale-chaos-delay` | a duration (`200ms`) | `delay(200ms)` |
//! | `x-telltale-chaos-status` | an HTTP status (`503`) | `status(503)` |
//! | `x-telltale-chaos-grpc` | a gRPC code (`UNAVAILABLE`, `14`) | `grpc(UNAVAILABLE)` |
//! | `x-telltale-chaos-abort` | `abort` or `reset` | `abort` / `reset` |
//! | `x-telltale-chaos-fault` | a fault chain in the rule grammar | as written |
//! | `x-telltale-chaos-percentage` | `50%` or `0.5` | probability of the above |
//!
//! Delay comes first, then the `-fault` chain, then status, gRPC and abort (the
//! first terminal one wins). The headers are honoured only when the request
//! carries `x-telltale-chaos-secret` equal to the configured secret (compared
//! in constant time) or comes from a trusted peer address (read from the
//! request's [`PeerAddr`] or `std::net::SocketAddr` extension). They are
//! removed from the request either way, so they never reach the service or its
//! dependencies. Injected faults are counted and tagged under `rule="header"`.
//!
//! ```
//! use telltale_chaos::{HeaderFaults, Injector};
//!
//! let injector = Injector::builder()
//!     .header_faults(HeaderFaults::new().secret("s3cret").trusted_peer("10.0.0.7".parse().unwrap()))
//!     .rules("in /never: abort".parse().unwrap())
//!     .build()
//!     .unwrap();
//! # let _ = injector;
//! // Without a secret or a trusted peer, enabling header faults is an error.
//! assert!(Injector::builder().header_faults(HeaderFaults::new()).build().is_err());
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, Request};
use telltale_core::config::{ParseError, parse_duration, parse_percentage};
use telltale_core::{ConfigError, GrpcCode};

use crate::parse::parse_faults;
use crate::rules::{Delay, Fault, Rule};

/// The peer address of an inbound request, read by the trust check of
/// [`HeaderFaults`]. Insert it into the request extensions where connections are
/// accepted (axum's `ConnectInfo` is not read: telltale-chaos does not depend on axum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Configuration of header-controlled faults. Off unless given to
/// [`InjectorBuilder::header_faults`](crate::InjectorBuilder::header_faults)
/// or enabled with `TELLTALE_CHAOS_HEADERS=on`.
#[derive(Clone, Default)]
pub struct HeaderFaults {
    secret: Option<Vec<u8>>,
    trusted: Vec<IpAddr>,
}

impl fmt::Debug for HeaderFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderFaults")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("trusted", &self.trusted)
            .finish()
    }
}

/// The header carrying the shared secret.
pub const SECRET_HEADER: &str = "x-telltale-chaos-secret";
const PREFIX: &str = "x-telltale-chaos-";

impl HeaderFaults {
    /// No trusted callers yet: add a secret or a peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts requests whose `x-telltale-chaos-secret` equals `secret`.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into().into_bytes());
        self
    }

    /// Trusts requests from this peer IP address.
    #[must_use]
    pub fn trusted_peer(mut self, ip: IpAddr) -> Self {
        self.trusted.push(ip);
        self
    }

    pub(crate) fn is_trusting(&self) -> bool {
        self.secret.as_ref().is_some_and(|s| !s.is_empty()) || !self.trusted.is_empty()
    }

    fn trusted<B>(&self, req: &Request<B>) -> bool {
        if let (Some(secret), Some(given)) = (&self.secret, req.headers().get(SECRET_HEADER)) {
            if constant_time_eq(secret, given.as_bytes()) {
                return true;
            }
        }
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .map(|p| p.0)
            .or_else(|| req.extensions().get::<SocketAddr>().copied());
        peer.is_some_and(|p| self.trusted.contains(&p.ip()))
    }

    /// Removes the chaos headers from `req` and returns the rule they ask for,
    /// when the caller is trusted and the headers parse.
    pub(crate) fn take<B>(&self, req: &mut Request<B>) -> Option<Rule> {
        if !req.headers().keys().any(|k| k.as_str().starts_with(PREFIX)) {
            return None;
        }
        let trusted = self.trusted(req);
        let headers = strip(req.headers_mut());
        if !trusted {
            tracing::debug!(target: "telltale_chaos", "chaos headers ignored: caller not trusted");
            return None;
        }
        match rule_from(&headers) {
            Ok(rule) => rule,
            Err(why) => {
                tracing::warn!(target: "telltale_chaos", error = %why, "chaos headers ignored: malformed");
                None
            }
        }
    }
}

fn strip(headers: &mut HeaderMap) -> Vec<(HeaderName, String)> {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let value = headers.remove(&name)?;
            Some((name, value.to_str().unwrap_or("").trim().to_owned()))
        })
        .collect()
}

/// A malformed chaos header, named like a variable: `invalid
/// x-telltale-chaos-status="x" at position 1: expected an HTTP status code`.
fn malformed(name: &'static str, value: &str, error: ParseError) -> ConfigError {
    ConfigError::new(name, value, error)
}

fn rule_from(headers: &[(HeaderName, String)]) -> Result<Option<Rule>, ConfigError> {
    let get = |suffix: &str| {
        headers
            .iter()
            .find(|(n, _)| n.as_str().strip_prefix(PREFIX) == Some(suffix))
            .map(|(_, v)| v.as_str())
    };
    let mut faults = Vec::new();
    if let Some(d) = get("delay") {
        let d = parse_duration(d).map_err(|e| malformed("x-telltale-chaos-delay", d, e))?;
        faults.push(Fault::Delay(Delay::Fixed(d)));
    }
    if let Some(chain) = get("fault") {
        faults.extend(
            parse_faults(chain).map_err(|e| malformed("x-telltale-chaos-fault", chain, e))?,
        );
    }
    if let Some(s) = get("status") {
        let status = s
            .parse::<u16>()
            .ok()
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .ok_or_else(|| {
                malformed(
                    "x-telltale-chaos-status",
                    s,
                    ParseError::new(1, "an HTTP status code"),
                )
            })?;
        faults.push(Fault::Status {
            status,
            body: None,
            retry_after: None,
        });
    }
    if let Some(g) = get("grpc") {
        let code = g
            .parse::<GrpcCode>()
            .ok()
            .filter(|c| *c != GrpcCode::Ok)
            .ok_or_else(|| {
                malformed(
                    "x-telltale-chaos-grpc",
                    g,
                    ParseError::new(1, "a gRPC error code"),
                )
            })?;
        faults.push(Fault::Grpc {
            code,
            message: None,
        });
    }
    if let Some(a) = get("abort") {
        faults.push(if a.eq_ignore_ascii_case("reset") {
            Fault::Reset
        } else {
            Fault::Abort
        });
    }
    if let Some(end) = faults.iter().position(Fault::is_terminal) {
        faults.truncate(end + 1);
    }
    let probability = get("percentage")
        .map(|p| parse_percentage(p).map_err(|e| malformed("x-telltale-chaos-percentage", p, e)))
        .transpose()?;
    Ok((!faults.is_empty()).then_some(Rule {
        probability,
        limit: None,
        faults,
    }))
}

/// Equal-length comparison that takes the same time wherever the first
/// difference is (the length itself is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_and_parse() {
        let hf = HeaderFaults::new()
            .secret("k")
            .trusted_peer("10.0.0.1".parse().unwrap());
        let mut req = Request::builder()
            .header("x-telltale-chaos-status", "503")
            .header("x-telltale-chaos-delay", "10ms")
            .header("x-telltale-chaos-secret", "k")
            .header("other", "x")
            .body(())
            .unwrap();
        let rule = hf.take(&mut req).unwrap();
        assert_eq!(rule.faults.len(), 2);
        assert_eq!(rule.faults[1], Fault::status(503));
        assert_eq!(req.headers().len(), 1);

        let mut untrusted = Request::builder()
            .header("x-telltale-chaos-status", "503")
            .header("x-telltale-chaos-secret", "wrong")
            .body(())
            .unwrap();
        assert!(hf.take(&mut untrusted).is_none());
        assert!(untrusted.headers().is_empty());

        let mut peer = Request::builder()
            .header("x-telltale-chaos-fault", "delay(1s) + grpc(UNAVAILABLE)")
            .header("x-telltale-chaos-percentage", "50%")
            .extension(PeerAddr("10.0.0.1:4000".parse().unwrap()))
            .body(())
            .unwrap();
        let rule = hf.take(&mut peer).unwrap();
        assert_eq!(rule.probability, Some(0.5));
        assert_eq!(rule.faults.len(), 2);

        let mut bad = Request::builder()
            .header("x-telltale-chaos-fault", "explode")
            .header("x-telltale-chaos-secret", "k")
            .body(())
            .unwrap();
        assert!(hf.take(&mut bad).is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
