//! One classification of a finished exchange, shared by every layer.
//!
//! Span status, `error.type`, the RED error count and the circuit breaker's
//! failure accounting all read the same [`Outcome`], so they never disagree.
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use telltale_core::{BodyEnd, FailurePolicy, GrpcCode, Outcome, ResponseHead, Side};
//!
//! // A gRPC response whose status only arrives in the trailers.
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", "application/grpc".parse().unwrap());
//! let head = ResponseHead::new(StatusCode::OK, &headers);
//!
//! let mut trailers = HeaderMap::new();
//! trailers.insert("grpc-status", "14".parse().unwrap());
//! let outcome = head.finish(&BodyEnd::Complete { trailers: Some(&trailers) });
//!
//! assert_eq!(outcome.grpc_code(), Some(GrpcCode::Unavailable));
//! assert!(FailurePolicy::default().is_failure(&outcome));
//! assert_eq!(outcome.error_type(Side::Server), Some("UNAVAILABLE"));
//! ```

use std::error::Error as StdError;
use std::ops::RangeInclusive;

use http::{HeaderMap, StatusCode};

use crate::body::BodyEnd;
use crate::grpc::GrpcCode;

/// Which end of the exchange is classifying it. Client and server disagree on
/// 4xx: a client counts them as errors on its span, a server does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The service answering the request.
    Server,
    /// The caller making the request.
    Client,
}

/// Why a guard (a circuit breaker, a bulkhead) refused a call before it
/// reached the service: the low-cardinality `error.type` of a rejection.
///
/// A guard's rejection error has a `Refusal` in its `source()` chain, where
/// [`Outcome::from_error`] finds it; a layer answering a rejection with a
/// response (a `503`, a gRPC `UNAVAILABLE`) puts it in the response's
/// extensions, where [`ResponseHead::from_response`] finds it. Its
/// `Display` is a fixed text (no name, no duration), fit for a span status.
///
/// ```
/// use telltale_core::{Outcome, Refusal, Side};
///
/// let outcome = Outcome::from_error(&Refusal::CircuitOpen);
/// assert_eq!(outcome.error_type(Side::Client), Some("circuit_open"));
/// assert_eq!(Refusal::BulkheadFull.to_string(), "bulkhead full");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A circuit breaker is open (or half-open with every probe taken).
    CircuitOpen,
    /// A bulkhead had no free slot within its maximum wait.
    BulkheadFull,
}

impl Refusal {
    /// The `error.type`: `"circuit_open"` or `"bulkhead_full"`.
    pub const fn error_type(self) -> &'static str {
        match self {
            Refusal::CircuitOpen => "circuit_open",
            Refusal::BulkheadFull => "bulkhead_full",
        }
    }

    /// The fixed description: `"circuit open"` or `"bulkhead full"`.
    pub const fn message(self) -> &'static str {
        match self {
            Refusal::CircuitOpen => "circuit open",
            Refusal::BulkheadFull => "bulkhead full",
        }
    }

    /// Finds a refusal in an error's `source()` chain.
    pub fn find(err: &(dyn StdError + 'static)) -> Option<Refusal> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(refusal) = e.downcast_ref::<Refusal>() {
                return Some(*refusal);
            }
            current = e.source();
        }
        None
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl StdError for Refusal {}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A response was produced and its body ended normally.
    Response {
        /// The HTTP status of the response.
        status: StatusCode,
        /// The gRPC status, for gRPC responses: from the trailers, from the
        /// headers of a trailers-only response, or `UNKNOWN` when a gRPC
        /// response carried none.
        grpc: Option<GrpcCode>,
    },
    /// The inner service returned an error, or the response body failed.
    Error {
        /// The status already sent, when the body failed after the head.
        status: Option<StatusCode>,
    },
    /// The call timed out (`tower::timeout`, `tokio::time::timeout`, an I/O timeout).
    Timeout {
        /// The status already sent, when the body timed out after the head.
        status: Option<StatusCode>,
    },
    /// A layer ended the response body because its reader stopped reading
    /// for longer than a bound ([`BodyTimedOut`](crate::body::BodyTimedOut),
    /// [`BodyEnd::TimedOut`]): the slow reader is the client's doing, so the
    /// default [`FailurePolicy`] does not count it as a failure (a breaker
    /// ignores it), while spans and RED metrics record it as an error,
    /// `error.type` `body_timeout`.
    BodyTimeout {
        /// The status already sent (the head went out before the body).
        status: Option<StatusCode>,
    },
    /// The caller went away: the future or the body was dropped before the end.
    Cancelled {
        /// The status already sent, when the body was dropped after the head.
        status: Option<StatusCode>,
    },
    /// A guard refused the call: an error with a [`Refusal`] in its chain,
    /// or the response a rejection layer answered it with.
    Refused {
        /// Which guard said no.
        refusal: Refusal,
        /// The status of the response the rejection became, if it became one.
        status: Option<StatusCode>,
        /// The gRPC status of that response, for gRPC.
        grpc: Option<GrpcCode>,
    },
}

impl Outcome {
    /// Classifies an error returned by an inner service (or a body):
    /// [`Outcome::Refused`] when a [`Refusal`] is in its chain,
    /// [`Outcome::BodyTimeout`] when a
    /// [`BodyTimedOut`](crate::body::BodyTimedOut) is, [`Outcome::Timeout`]
    /// when [`is_timeout`] says so, [`Outcome::Error`] otherwise.
    pub fn from_error(err: &(dyn StdError + 'static)) -> Self {
        if let Some(refusal) = Refusal::find(err) {
            Outcome::Refused {
                refusal,
                status: None,
                grpc: None,
            }
        } else if crate::body::BodyTimedOut::is_in(err) {
            Outcome::BodyTimeout { status: None }
        } else if is_timeout(err) {
            Outcome::Timeout { status: None }
        } else {
            Outcome::Error { status: None }
        }
    }

    /// The HTTP status, when a response head was produced.
    pub fn status(&self) -> Option<StatusCode> {
        match *self {
            Outcome::Response { status, .. } => Some(status),
            Outcome::Error { status }
            | Outcome::Timeout { status }
            | Outcome::BodyTimeout { status }
            | Outcome::Cancelled { status }
            | Outcome::Refused { status, .. } => status,
        }
    }

    /// The gRPC status, for a gRPC response that completed.
    pub fn grpc_code(&self) -> Option<GrpcCode> {
        match *self {
            Outcome::Response { grpc, .. } | Outcome::Refused { grpc, .. } => grpc,
            _ => None,
        }
    }

    /// The OpenTelemetry `error.type` for this outcome seen from `side`, or `None`
    /// when the exchange is not an error there.
    ///
    /// - HTTP: the status code (`"503"`) for 5xx and for codes outside RFC 9110's
    ///   classes (600 to 999), and for 4xx on the client side.
    /// - gRPC: the code name (`"UNAVAILABLE"`) for server errors on the server
    ///   side, for every non-OK code on the client side.
    /// - `"circuit_open"`, `"bulkhead_full"` for a [`Refusal`], on both sides
    ///   (also when a rejection layer answered it with a `503` or a gRPC
    ///   status).
    /// - `"body_timeout"` when a layer ended the body of a reader that
    ///   stopped reading ([`Outcome::BodyTimeout`]).
    /// - `"timeout"`, `"cancelled"`, and `"_OTHER"` for other errors.
    pub fn error_type(&self, side: Side) -> Option<&'static str> {
        match *self {
            Outcome::Response {
                grpc: Some(code), ..
            } => {
                let is_error = match side {
                    Side::Server => code.is_server_error(),
                    Side::Client => code != GrpcCode::Ok,
                };
                is_error.then(|| code.name())
            }
            Outcome::Response { status, grpc: None } => {
                let is_error = status.is_server_error()
                    || is_uninterpretable(status)
                    || (side == Side::Client && status.is_client_error());
                is_error.then(|| status_str(status))
            }
            Outcome::Refused { refusal, .. } => Some(refusal.error_type()),
            Outcome::Error { .. } => Some("_OTHER"),
            Outcome::Timeout { .. } => Some("timeout"),
            Outcome::BodyTimeout { .. } => Some("body_timeout"),
            Outcome::Cancelled { .. } => Some("cancelled"),
        }
    }
}

/// Whether an error (or any error in its `source()` chain) is a timeout:
/// `tower::timeout::error::Elapsed`, `tokio::time::error::Elapsed`, or an
/// `std::io::Error` of kind `TimedOut`.
pub fn is_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<tower::timeout::error::Elapsed>()
            || e.is::<tokio::time::error::Elapsed>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// The lowest and highest status codes `http::StatusCode` can hold (hyper
/// accepts any three-digit code from the wire).
const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 999;
const STATUS_COUNT: usize = (STATUS_MAX - STATUS_MIN + 1) as usize;

const STATUS_DIGITS: [u8; STATUS_COUNT * 3] = {
    let mut out = [0u8; STATUS_COUNT * 3];
    let mut i = 0;
    while i < STATUS_COUNT {
        let n = i + STATUS_MIN as usize;
        out[i * 3] = b'0' + (n / 100) as u8;
        out[i * 3 + 1] = b'0' + (n / 10 % 10) as u8;
        out[i * 3 + 2] = b'0' + (n % 10) as u8;
        i += 1;
    }
    out
};

const STATUS_STR: &str = match std::str::from_utf8(&STATUS_DIGITS) {
    Ok(s) => s,
    Err(_) => panic!("status digits are ASCII"),
};

/// The three-digit form of a status code as a `&'static str`, without formatting.
///
/// Every code `http::StatusCode` can hold (100 to 999) has one, including
/// codes outside RFC 9110's 100-599 that an upstream may still send.
///
/// ```
/// use http::StatusCode;
/// assert_eq!(telltale_core::status_str(StatusCode::BAD_GATEWAY), "502");
/// assert_eq!(telltale_core::status_str(StatusCode::from_u16(999).unwrap()), "999");
/// ```
pub fn status_str(status: StatusCode) -> &'static str {
    // `StatusCode` guarantees 100..=999; `get` keeps a future widening from
    // ever panicking on the request path.
    let offset = usize::from(status.as_u16().saturating_sub(STATUS_MIN)) * 3;
    STATUS_STR.get(offset..offset + 3).unwrap_or("_OTHER")
}

/// Whether a status is one RFC 9110 defines a class for (1xx to 5xx). Codes
/// 600 to 999 are ones the receiver cannot interpret: the OpenTelemetry HTTP
/// conventions make them span errors on both sides ("5xx ..., as well as any
/// other code the client failed to interpret").
fn is_uninterpretable(status: StatusCode) -> bool {
    status.as_u16() >= 600
}

/// What the response head tells about the outcome, kept until the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    status: StatusCode,
    grpc_in_headers: Option<GrpcCode>,
    is_grpc: bool,
    refusal: Option<Refusal>,
}

impl ResponseHead {
    /// Reads the status, the content type and a trailers-only `grpc-status`.
    pub fn new(status: StatusCode, headers: &HeaderMap) -> Self {
        let is_grpc = crate::grpc::is_grpc(headers);
        let grpc_in_headers = GrpcCode::from_header_map(headers);
        ResponseHead {
            status,
            grpc_in_headers,
            is_grpc: is_grpc || grpc_in_headers.is_some(),
            refusal: None,
        }
    }

    /// [`ResponseHead::new`] on a response, plus the [`Refusal`] a rejection
    /// layer left in its extensions (the response is then a rejection).
    pub fn from_response<B>(response: &http::Response<B>) -> Self {
        ResponseHead {
            refusal: response.extensions().get::<Refusal>().copied(),
            ..Self::new(response.status(), response.headers())
        }
    }

    /// The guard's refusal this response answers, if it answers one.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the response is gRPC (by content type or a `grpc-status` header).
    pub fn is_grpc(&self) -> bool {
        self.is_grpc
    }

    /// The gRPC status of a trailers-only response, known from the head alone.
    pub fn grpc_in_headers(&self) -> Option<GrpcCode> {
        self.grpc_in_headers
    }

    /// The outcome once the body has ended the way `end` says.
    pub fn finish(&self, end: &BodyEnd<'_>) -> Outcome {
        let status = Some(self.status);
        match end {
            BodyEnd::Complete { trailers } => {
                let grpc = trailers
                    .and_then(GrpcCode::from_header_map)
                    .or(self.grpc_in_headers)
                    .or(self.is_grpc.then_some(GrpcCode::Unknown));
                match self.refusal {
                    Some(refusal) => Outcome::Refused {
                        refusal,
                        status,
                        grpc,
                    },
                    None => Outcome::Response {
                        status: self.status,
                        grpc,
                    },
                }
            }
            BodyEnd::Error => Outcome::Error { status },
            BodyEnd::TimedOut => Outcome::BodyTimeout { status },
            BodyEnd::Dropped => Outcome::Cancelled { status },
        }
    }
}

/// Words of the status bit set: one bit per code from 100 to 999.
const STATUS_WORDS: usize = STATUS_COUNT.div_ceil(64);

/// Decides which outcomes count as failures (for error counts, span status and
/// circuit breakers).
///
/// The default counts 5xx and the codes outside RFC 9110's classes (600 to
/// 999, which no client can interpret), gRPC server-side error codes (see
/// [`GrpcCode::is_server_error`]), service errors and timeouts; 4xx, other gRPC
/// codes, cancellations and body timeouts (a reader that stopped reading)
/// do not count.
///
/// ```
/// use http::StatusCode;
/// use telltale_core::{FailurePolicy, Outcome};
///
/// let policy = FailurePolicy::default().status(StatusCode::TOO_MANY_REQUESTS, true);
/// let throttled = Outcome::Response { status: StatusCode::TOO_MANY_REQUESTS, grpc: None };
/// assert!(policy.is_failure(&throttled));
/// assert!(!FailurePolicy::default().is_failure(&throttled));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Bit `n - 100` set when status `n` (100 to 999) is a failure.
    statuses: [u64; STATUS_WORDS],
    /// Bit `code` set when the gRPC code is a failure.
    grpc: u32,
    errors: bool,
    timeouts: bool,
    cancellations: bool,
    body_timeouts: bool,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        let mut policy = FailurePolicy::nothing()
            .status_range(500..=STATUS_MAX, true)
            .errors(true)
            .timeouts(true);
        for code in GrpcCode::ALL {
            if code.is_server_error() {
                policy = policy.grpc(code, true);
            }
        }
        policy
    }
}

impl FailurePolicy {
    /// A policy under which nothing is a failure; add what should be.
    pub const fn nothing() -> Self {
        FailurePolicy {
            statuses: [0; STATUS_WORDS],
            grpc: 0,
            errors: false,
            timeouts: false,
            cancellations: false,
            body_timeouts: false,
        }
    }

    /// Sets whether an HTTP status counts as a failure.
    #[must_use]
    pub fn status(self, status: StatusCode, failure: bool) -> Self {
        let n = status.as_u16();
        self.status_range(n..=n, failure)
    }

    /// Sets whether every status in `range` (clamped to 100..=999, the codes
    /// `http::StatusCode` can hold) counts as a failure.
    #[must_use]
    pub fn status_range(mut self, range: RangeInclusive<u16>, failure: bool) -> Self {
        let start = (*range.start()).max(STATUS_MIN);
        let end = (*range.end()).min(STATUS_MAX);
        for n in start..=end {
            let bit = usize::from(n - STATUS_MIN);
            if failure {
                self.statuses[bit / 64] |= 1 << (bit % 64);
            } else {
                self.statuses[bit / 64] &= !(1 << (bit % 64));
            }
        }
        self
    }

    /// Sets whether a gRPC code counts as a failure. Defaults to the server-side
    /// error codes.
    #[must_use]
    pub fn grpc(mut self, code: GrpcCode, failure: bool) -> Self {
        if failure {
            self.grpc |= 1 << code.as_i32();
        } else {
            self.grpc &= !(1 << code.as_i32());
        }
        self
    }

    /// Sets whether service and body errors count. Defaults to `true`.
    #[must_use]
    pub fn errors(mut self, failure: bool) -> Self {
        self.errors = failure;
        self
    }

    /// Sets whether timeouts count. Defaults to `true`.
    #[must_use]
    pub fn timeouts(mut self, failure: bool) -> Self {
        self.timeouts = failure;
        self
    }

    /// Sets whether body timeouts ([`Outcome::BodyTimeout`]: a layer ended
    /// the body of a reader that stopped reading) count. Defaults to `false`:
    /// a slow reader is no evidence that the service is failing, and
    /// counting it would let a few stalled clients open a breaker.
    #[must_use]
    pub fn body_timeouts(mut self, failure: bool) -> Self {
        self.body_timeouts = failure;
        self
    }

    /// Sets whether cancellations (caller went away) count. Defaults to `false`.
    #[must_use]
    pub fn cancellations(mut self, failure: bool) -> Self {
        self.cancellations = failure;
        self
    }

    /// Whether an HTTP status counts as a failure.
    pub fn is_failure_status(&self, status: StatusCode) -> bool {
        let bit = usize::from(status.as_u16().saturating_sub(STATUS_MIN));
        self.statuses
            .get(bit / 64)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }

    /// Whether a gRPC code counts as a failure.
    pub fn is_failure_grpc(&self, code: GrpcCode) -> bool {
        self.grpc & (1 << code.as_i32()) != 0
    }

    /// Whether `outcome` counts as a failure. For gRPC responses the gRPC code
    /// decides; otherwise the HTTP status.
    pub fn is_failure(&self, outcome: &Outcome) -> bool {
        match *outcome {
            Outcome::Response {
                grpc: Some(code), ..
            } => self.is_failure_grpc(code),
            Outcome::Response { status, grpc: None } => self.is_failure_status(status),
            Outcome::Error { .. } | Outcome::Refused { .. } => self.errors,
            Outcome::Timeout { .. } => self.timeouts,
            Outcome::BodyTimeout { .. } => self.body_timeouts,
            Outcome::Cancelled { .. } => self.cancellations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;

    fn response(status: u16) -> Outcome {
        Outcome::Response {
            status: StatusCode::from_u16(status).unwrap(),
            grpc: None,
        }
    }

    #[test]
    fn default_policy() {
        let p = FailurePolicy::default();
        assert!(p.is_failure(&response(500)));
        assert!(p.is_failure(&response(599)));
        assert!(!p.is_failure(&response(499)));
        assert!(!p.is_failure(&response(200)));
        assert!(p.is_failure(&Outcome::Error { status: None }));
        assert!(p.is_failure(&Outcome::Timeout { status: None }));
        assert!(!p.is_failure(&Outcome::Cancelled { status: None }));
        for code in GrpcCode::ALL {
            let o = Outcome::Response {
                status: StatusCode::OK,
                grpc: Some(code),
            };
            assert_eq!(p.is_failure(&o), code.is_server_error(), "{code}");
        }
    }

    #[test]
    fn policy_overrides() {
        let p = FailurePolicy::default()
            .status_range(400..=499, true)
            .status(StatusCode::NOT_FOUND, false)
            .grpc(GrpcCode::Unavailable, false)
            .cancellations(true)
            .timeouts(false);
        assert!(p.is_failure(&response(429)));
        assert!(!p.is_failure(&response(404)));
        assert!(p.is_failure(&Outcome::Cancelled { status: None }));
        assert!(!p.is_failure(&Outcome::Timeout { status: None }));
        assert!(!p.is_failure(&Outcome::Response {
            status: StatusCode::OK,
            grpc: Some(GrpcCode::Unavailable)
        }));
        let none = FailurePolicy::nothing();
        assert!(!none.is_failure(&response(503)));
        assert!(!none.is_failure(&Outcome::Error { status: None }));
    }

    #[test]
    fn error_types_by_side() {
        assert_eq!(response(503).error_type(Side::Server), Some("503"));
        assert_eq!(response(404).error_type(Side::Server), None);
        assert_eq!(response(404).error_type(Side::Client), Some("404"));
        assert_eq!(response(200).error_type(Side::Client), None);
        let not_found = Outcome::Response {
            status: StatusCode::OK,
            grpc: Some(GrpcCode::NotFound),
        };
        assert_eq!(not_found.error_type(Side::Server), None);
        assert_eq!(not_found.error_type(Side::Client), Some("NOT_FOUND"));
        assert_eq!(
            Outcome::Timeout { status: None }.error_type(Side::Server),
            Some("timeout")
        );
        assert_eq!(
            Outcome::Cancelled { status: None }.error_type(Side::Server),
            Some("cancelled")
        );
        assert_eq!(
            Outcome::Error { status: None }.error_type(Side::Client),
            Some("_OTHER")
        );
    }

    #[test]
    fn status_strings() {
        for n in 100..=999u16 {
            let s = StatusCode::from_u16(n).unwrap();
            assert_eq!(status_str(s), n.to_string());
        }
    }

    #[test]
    fn every_representable_status_classifies() {
        let policy = FailurePolicy::default();
        for n in 100..=999u16 {
            let outcome = response(n);
            let server = outcome.error_type(Side::Server);
            let client = outcome.error_type(Side::Client);
            let text = n.to_string();
            match n {
                100..=399 => {
                    assert_eq!(server, None, "{n}");
                    assert_eq!(client, None, "{n}");
                }
                400..=499 => {
                    assert_eq!(server, None, "{n}");
                    assert_eq!(client, Some(text.as_str()), "{n}");
                }
                _ => {
                    assert_eq!(server, Some(text.as_str()), "{n}");
                    assert_eq!(client, Some(text.as_str()), "{n}");
                }
            }
            assert_eq!(policy.is_failure(&outcome), n >= 500, "{n}");
            // What the breaker's `FAILURE_STATUSES` clears (100-599) leaves
            // the uninterpretable codes failing.
            let cleared = FailurePolicy::default().status_range(100..=599, false);
            assert_eq!(cleared.is_failure(&outcome), n >= 600, "{n}");
            let everything = FailurePolicy::nothing().status_range(0..=u16::MAX, true);
            assert!(everything.is_failure(&outcome), "{n}");
            assert!(!FailurePolicy::nothing().is_failure(&outcome), "{n}");
            let head = ResponseHead::new(StatusCode::from_u16(n).unwrap(), &HeaderMap::new());
            assert_eq!(head.finish(&BodyEnd::Complete { trailers: None }), outcome);
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("breaker `db` is open; next probe in 967.5ms")]
    struct Open;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Box<dyn StdError + Send + Sync>);

    #[test]
    fn refusals_are_found_in_the_chain_and_in_responses() {
        let err = Outer(Box::new(Refusal::BulkheadFull));
        let outcome = Outcome::from_error(&err);
        assert_eq!(
            outcome,
            Outcome::Refused {
                refusal: Refusal::BulkheadFull,
                status: None,
                grpc: None
            }
        );
        assert_eq!(outcome.error_type(Side::Server), Some("bulkhead_full"));
        assert_eq!(outcome.error_type(Side::Client), Some("bulkhead_full"));
        assert!(FailurePolicy::default().is_failure(&outcome));
        assert!(!FailurePolicy::default().errors(false).is_failure(&outcome));
        assert_eq!(Outcome::from_error(&Open), Outcome::Error { status: None });
        assert_eq!(Refusal::CircuitOpen.message(), "circuit open");

        let mut res = http::Response::new(());
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        res.extensions_mut().insert(Refusal::CircuitOpen);
        let head = ResponseHead::from_response(&res);
        assert_eq!(head.refusal(), Some(Refusal::CircuitOpen));
        let outcome = head.finish(&BodyEnd::Complete { trailers: None });
        assert_eq!(outcome.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(outcome.error_type(Side::Server), Some("circuit_open"));
        // A body cut after the head is still a body error.
        assert_eq!(
            head.finish(&BodyEnd::Error),
            Outcome::Error {
                status: Some(StatusCode::SERVICE_UNAVAILABLE)
            }
        );
    }

    #[test]
    fn head_and_trailers() {
        let mut grpc_headers = HeaderMap::new();
        grpc_headers.insert(CONTENT_TYPE, "application/grpc+proto".parse().unwrap());
        let head = ResponseHead::new(StatusCode::OK, &grpc_headers);
        assert!(head.is_grpc());
        // Trailers decide.
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(
            head.finish(&BodyEnd::Complete {
                trailers: Some(&trailers)
            })
            .grpc_code(),
            Some(GrpcCode::Ok)
        );
        // A gRPC stream that ends without any status is UNKNOWN.
        assert_eq!(
            head.finish(&BodyEnd::Complete { trailers: None })
                .grpc_code(),
            Some(GrpcCode::Unknown)
        );
        // Trailers-only: status in the headers.
        grpc_headers.insert("grpc-status", "5".parse().unwrap());
        let head = ResponseHead::new(StatusCode::OK, &grpc_headers);
        assert_eq!(
            head.finish(&BodyEnd::Complete { trailers: None })
                .grpc_code(),
            Some(GrpcCode::NotFound)
        );
        // Plain HTTP.
        let head = ResponseHead::new(StatusCode::BAD_GATEWAY, &HeaderMap::new());
        assert!(!head.is_grpc());
        assert_eq!(
            head.finish(&BodyEnd::Complete { trailers: None }),
            response(502)
        );
        assert_eq!(
            head.finish(&BodyEnd::Error),
            Outcome::Error {
                status: Some(StatusCode::BAD_GATEWAY)
            }
        );
        assert_eq!(
            head.finish(&BodyEnd::Dropped),
            Outcome::Cancelled {
                status: Some(StatusCode::BAD_GATEWAY)
            }
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Box<dyn StdError + Send + Sync>);

    #[tokio::test]
    async fn timeouts_are_found_through_sources() {
        let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert!(is_timeout(&elapsed));
        let wrapped = Wrapper(Box::new(tower::timeout::error::Elapsed::new()));
        assert!(is_timeout(&wrapped));
        assert_eq!(
            Outcome::from_error(&wrapped),
            Outcome::Timeout { status: None }
        );
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert!(is_timeout(&io));
        let other = std::io::Error::other("boom");
        assert!(!is_timeout(&other));
        assert_eq!(Outcome::from_error(&other), Outcome::Error { status: None });
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the layer's own error")]
    struct LayerTimeout(#[source] crate::body::BodyTimedOut);

    #[test]
    fn body_timeouts_are_errors_on_spans_but_not_breaker_failures() {
        let outcome = Outcome::from_error(&LayerTimeout(crate::body::BodyTimedOut));
        assert_eq!(outcome, Outcome::BodyTimeout { status: None });
        assert_eq!(outcome.error_type(Side::Server), Some("body_timeout"));
        assert_eq!(outcome.error_type(Side::Client), Some("body_timeout"));
        assert!(!FailurePolicy::default().is_failure(&outcome));
        assert!(
            FailurePolicy::default()
                .body_timeouts(true)
                .is_failure(&outcome)
        );
        // Not a plain timeout: `timeouts(false)` does not change it, and a
        // tower timeout is still a timeout.
        assert!(!FailurePolicy::default().timeouts(true).is_failure(&outcome));
        let head = ResponseHead::new(StatusCode::OK, &HeaderMap::new());
        let ended = head.finish(&BodyEnd::TimedOut);
        assert_eq!(
            ended,
            Outcome::BodyTimeout {
                status: Some(StatusCode::OK)
            }
        );
        assert_eq!(ended.status(), Some(StatusCode::OK));
        assert_eq!(ended.grpc_code(), None);
    }
}
