//! gRPC wire knowledge, in one place: status codes as they travel in
//! `grpc-status` headers and trailers, the content type that marks a gRPC
//! exchange ([`is_grpc`]), the `/package.Service/Method` path ([`split_path`]),
//! `grpc-message` percent-encoding ([`encode_message`], [`decode_message`]) and
//! trailers-only responses ([`trailers_only_response`]).
//!
//! ```
//! use telltale_core::GrpcCode;
//!
//! let code = GrpcCode::from_bytes(b"14").unwrap();
//! assert_eq!(code, GrpcCode::Unavailable);
//! assert_eq!(code.name(), "UNAVAILABLE");
//! assert!(code.is_server_error());
//! assert!(!GrpcCode::NotFound.is_server_error());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// The name of the header (or trailer) that carries a gRPC status code.
pub const GRPC_STATUS: &str = "grpc-status";

/// The name of the header (or trailer) that carries the status message.
pub const GRPC_MESSAGE: &str = "grpc-message";

/// The content type of a gRPC exchange, as telltale's own responses send it.
pub const CONTENT_TYPE_GRPC: &str = "application/grpc";

/// Whether `headers` carry a gRPC content type: `application/grpc`, alone or
/// followed by `+<subtype>` (`application/grpc+proto`) or `;<parameters>`,
/// in any ASCII case. `application/grpc-web` is not gRPC (its trailers travel
/// in the body).
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
/// use telltale_core::grpc::is_grpc;
///
/// let mut headers = HeaderMap::new();
/// assert!(!is_grpc(&headers));
/// headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc+proto"));
/// assert!(is_grpc(&headers));
/// headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc-web"));
/// assert!(!is_grpc(&headers));
/// ```
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

/// Whether a content-type value is gRPC's; see [`is_grpc`].
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const PREFIX: &[u8] = CONTENT_TYPE_GRPC.as_bytes();
    value.len() >= PREFIX.len()
        && value[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && matches!(value.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// Splits a gRPC path `/package.Service/Method` into the service
/// (`package.Service`) and the method (`Method`).
///
/// Both parts must be non-empty and made of ASCII letters, digits, `_` and
/// `.` (protobuf identifiers joined by dots): anything else (`/a/b/c`,
/// `/users/{id}`, a query) is not a gRPC path and gives `None`.
///
/// ```
/// use telltale_core::grpc::split_path;
///
/// assert_eq!(split_path("/grpc.health.v1.Health/Check"), Some(("grpc.health.v1.Health", "Check")));
/// assert_eq!(split_path("/a/b/c"), None);
/// assert_eq!(split_path("/users/{id}"), None);
/// ```
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (ok(service) && ok(method)).then_some((service, method))
}

/// Whether a byte travels unencoded in `grpc-message`: printable ASCII and
/// space (`0x20..=0x7E`), except `%`.
const fn is_message_byte(b: u8) -> bool {
    b >= 0x20 && b <= 0x7e && b != b'%'
}

/// Percent-encodes `message` as the gRPC specification asks for
/// `grpc-message`: bytes outside `0x20..=0x7E`, and `%`, become `%XX`
/// (upper-case hex of the UTF-8 bytes). The result is always a valid header
/// value.
///
/// ```
/// use telltale_core::grpc::encode_message;
///
/// assert_eq!(encode_message("circuit open"), "circuit open");
/// assert_eq!(encode_message("100% \u{e9}\n"), "100%25 %C3%A9%0A");
/// ```
pub fn encode_message(message: &str) -> HeaderValue {
    let encoded = crate::http::percent_encode_with(message.as_bytes(), is_message_byte);
    match encoded {
        Cow::Borrowed(s) => HeaderValue::from_str(s),
        Cow::Owned(s) => HeaderValue::try_from(s),
    }
    // Only visible ASCII and spaces remain, which are always valid.
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Decodes a `grpc-message` value leniently, as the gRPC specification asks
/// of receivers: a `%` not followed by two hex digits stays as it is, and
/// bytes that do not form UTF-8 become U+FFFD. Never fails.
///
/// ```
/// use telltale_core::grpc::decode_message;
///
/// assert_eq!(decode_message(b"100%25 %C3%A9"), "100% \u{e9}");
/// assert_eq!(decode_message(b"50%"), "50%");
/// ```
pub fn decode_message(value: &[u8]) -> Cow<'_, str> {
    if !value.contains(&b'%') {
        return String::from_utf8_lossy(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%'
            && let Some(b) = value.get(i + 1..i + 3).and_then(crate::http::hex_byte)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(value[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A trailers-only gRPC response: HTTP `200`, `content-type:
/// application/grpc`, `grpc-status: <code>` and, unless `message` is empty,
/// `grpc-message` percent-encoded by [`encode_message`]. The body is
/// `B::default()` (empty).
///
/// ```
/// use telltale_core::GrpcCode;
/// use telltale_core::grpc::trailers_only_response;
///
/// let res: http::Response<String> = trailers_only_response(GrpcCode::Unavailable, "circuit open");
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["content-type"], "application/grpc");
/// assert_eq!(res.headers()["grpc-status"], "14");
/// assert_eq!(res.headers()["grpc-message"], "circuit open");
/// ```
pub fn trailers_only_response<B: Default>(code: GrpcCode, message: &str) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_GRPC));
    headers.insert(GRPC_STATUS, code.header_value());
    if !message.is_empty() {
        headers.insert(GRPC_MESSAGE, encode_message(message));
    }
    res
}

/// A gRPC status code (`google.rpc.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GrpcCode {
    /// `OK` (0).
    Ok = 0,
    /// `CANCELLED` (1).
    Cancelled = 1,
    /// `UNKNOWN` (2).
    Unknown = 2,
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument = 3,
    /// `DEADLINE_EXCEEDED` (4).
    DeadlineExceeded = 4,
    /// `NOT_FOUND` (5).
    NotFound = 5,
    /// `ALREADY_EXISTS` (6).
    AlreadyExists = 6,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied = 7,
    /// `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted = 8,
    /// `FAILED_PRECONDITION` (9).
    FailedPrecondition = 9,
    /// `ABORTED` (10).
    Aborted = 10,
    /// `OUT_OF_RANGE` (11).
    OutOfRange = 11,
    /// `UNIMPLEMENTED` (12).
    Unimplemented = 12,
    /// `INTERNAL` (13).
    Internal = 13,
    /// `UNAVAILABLE` (14).
    Unavailable = 14,
    /// `DATA_LOSS` (15).
    DataLoss = 15,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated = 16,
}

const ALL: [GrpcCode; 17] = [
    GrpcCode::Ok,
    GrpcCode::Cancelled,
    GrpcCode::Unknown,
    GrpcCode::InvalidArgument,
    GrpcCode::DeadlineExceeded,
    GrpcCode::NotFound,
    GrpcCode::AlreadyExists,
    GrpcCode::PermissionDenied,
    GrpcCode::ResourceExhausted,
    GrpcCode::FailedPrecondition,
    GrpcCode::Aborted,
    GrpcCode::OutOfRange,
    GrpcCode::Unimplemented,
    GrpcCode::Internal,
    GrpcCode::Unavailable,
    GrpcCode::DataLoss,
    GrpcCode::Unauthenticated,
];

const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const NUMBERS: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

impl GrpcCode {
    /// Every code, in numeric order.
    pub const ALL: [GrpcCode; 17] = ALL;

    /// The code for a number, or `None` outside `0..=16`.
    pub const fn from_i32(n: i32) -> Option<Self> {
        if n >= 0 && n < 17 {
            Some(ALL[n as usize])
        } else {
            None
        }
    }

    /// Parses the decimal form used on the wire (`b"14"`). Anything else is `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [d @ b'0'..=b'9'] => Self::from_i32(i32::from(d - b'0')),
            [b'1', d @ b'0'..=b'6'] => Self::from_i32(10 + i32::from(d - b'0')),
            _ => None,
        }
    }

    /// Reads `grpc-status` from a header map (response headers for a trailers-only
    /// response, or trailers). A present but unparsable value reads as `Unknown`,
    /// as gRPC clients do.
    pub fn from_header_map(map: &HeaderMap) -> Option<Self> {
        map.get(GRPC_STATUS)
            .map(|v| Self::from_bytes(v.as_bytes()).unwrap_or(GrpcCode::Unknown))
    }

    /// The numeric value.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The canonical upper-case name, e.g. `"UNAVAILABLE"`.
    pub const fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// The decimal string, e.g. `"14"` (for metric labels and wire values).
    pub const fn as_str(self) -> &'static str {
        NUMBERS[self as usize]
    }

    /// The `grpc-status` header value, e.g. `14`.
    pub const fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// Whether the OpenTelemetry RPC conventions count this code as a server-side
    /// error: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
    /// `UNAVAILABLE` and `DATA_LOSS`.
    pub const fn is_server_error(self) -> bool {
        matches!(
            self,
            GrpcCode::Unknown
                | GrpcCode::DeadlineExceeded
                | GrpcCode::Unimplemented
                | GrpcCode::Internal
                | GrpcCode::Unavailable
                | GrpcCode::DataLoss
        )
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error returned when a string is not a gRPC code name or number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a gRPC status code (expected a name such as UNAVAILABLE or a number 0-16)")]
pub struct UnknownGrpcCode;

impl FromStr for GrpcCode {
    type Err = UnknownGrpcCode;

    /// Accepts `UNAVAILABLE`, `Unavailable`, `unavailable` or `14`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(code) = Self::from_bytes(s.as_bytes()) {
            return Ok(code);
        }
        let normalized: String = s
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        NAMES
            .iter()
            .position(|n| n.replace('_', "") == normalized)
            .map(|i| ALL[i])
            .ok_or(UnknownGrpcCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_numbers_and_names() {
        for code in GrpcCode::ALL {
            assert_eq!(GrpcCode::from_bytes(code.as_str().as_bytes()), Some(code));
            assert_eq!(code.name().parse::<GrpcCode>(), Ok(code));
            assert_eq!(GrpcCode::from_i32(code.as_i32()), Some(code));
        }
        assert_eq!("DeadlineExceeded".parse(), Ok(GrpcCode::DeadlineExceeded));
        assert_eq!("deadline_exceeded".parse(), Ok(GrpcCode::DeadlineExceeded));
        assert!("17".parse::<GrpcCode>().is_err());
        assert!("".parse::<GrpcCode>().is_err());
        assert_eq!(GrpcCode::from_bytes(b"17"), None);
        assert_eq!(GrpcCode::from_bytes(b"01"), None);
    }

    #[test]
    fn content_types() {
        for yes in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc;charset=utf-8",
            b"Application/GRPC+json",
        ] {
            assert!(is_grpc_content_type(yes), "{yes:?}");
        }
        for no in [
            &b""[..],
            b"application/grp",
            b"application/grpc-web",
            b"application/grpcx",
            b"text/plain",
            b"application/json",
        ] {
            assert!(!is_grpc_content_type(no), "{no:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("/pkg.Svc/Do_It2"), Some(("pkg.Svc", "Do_It2")));
        for no in [
            "", "/", "//", "/a/", "//b", "a/b", "/a/b/c", "/a-b/c", "/a/b?x=1",
        ] {
            assert_eq!(split_path(no), None, "{no:?}");
        }
    }

    #[test]
    fn messages_round_trip() {
        assert_eq!(encode_message("plain text: ok"), "plain text: ok");
        assert_eq!(encode_message("100% \u{e9}\n"), "100%25 %C3%A9%0A");
        assert_eq!(encode_message(""), "");
        assert_eq!(decode_message(b"%zz%4"), "%zz%4");
        assert_eq!(decode_message(b"%ff"), "\u{fffd}");
    }

    #[test]
    fn trailers_only() {
        let res: Response<()> = trailers_only_response(GrpcCode::InvalidArgument, "");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[GRPC_STATUS], "3");
        assert!(res.headers().get(GRPC_MESSAGE).is_none());
        assert!(is_grpc(res.headers()));
        assert_eq!(
            GrpcCode::from_header_map(res.headers()),
            Some(GrpcCode::InvalidArgument)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_message_encodes_to_a_header_and_decodes_back(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let v = encode_message(&s);
            proptest::prop_assert_eq!(decode_message(v.as_bytes()), s.as_str());
        }

        #[test]
        fn decoding_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let _ = decode_message(&b);
        }

        #[test]
        fn path_splitting_never_panics(s in "\\PC{0,40}") {
            if let Some((svc, m)) = split_path(&s) {
                proptest::prop_assert_eq!(format!("/{svc}/{m}"), s);
            }
        }
    }

    #[test]
    fn unparsable_header_reads_as_unknown() {
        let mut map = HeaderMap::new();
        assert_eq!(GrpcCode::from_header_map(&map), None);
        map.insert(GRPC_STATUS, "garbage".parse().unwrap());
        assert_eq!(GrpcCode::from_header_map(&map), Some(GrpcCode::Unknown));
        map.insert(GRPC_STATUS, "0".parse().unwrap());
        assert_eq!(GrpcCode::from_header_map(&map), Some(GrpcCode::Ok));
    }
}
