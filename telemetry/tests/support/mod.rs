//! The one test-support module of telltale-telemetry's integration tests:
//! [`harness`] (spans and metrics of the request-layer tests), [`otel`]
//! (captured log writer, a traced test server, real OTLP receivers) and
//! [`prometheus`] (a real HTTP client, a real Prometheus server, exposition
//! helpers; re-exported here).
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod harness;
pub mod otel;
pub mod prometheus;

pub use prometheus::*;
