//! gRPC status codes, as they travel in `grpc-status` headers and trailers.
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

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;

/// The name of the header (or trailer) that carries a gRPC status code.
pub const GRPC_STATUS: &str = "grpc-status";

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
    fn unparsable_header_reads_as_unknown() {
        let mut map = HeaderMap::new();
        assert_eq!(GrpcCode::from_header_map(&map), None);
        map.insert(GRPC_STATUS, "garbage".parse().unwrap());
        assert_eq!(GrpcCode::from_header_map(&map), Some(GrpcCode::Unknown));
        map.insert(GRPC_STATUS, "0".parse().unwrap());
        assert_eq!(GrpcCode::from_header_map(&map), Some(GrpcCode::Ok));
    }
}
