//! The one test-support module of telltale-telemetry's integration tests:
//! [`harness`] (spans and metrics of the request-layer tests), [`hop`] (a
//! traced hop over real servers, for propagation), [`otel`]
//! (captured log writer, a traced test server, real OTLP receivers) and
//! [`prometheus`] (a real HTTP client, a real Prometheus server, exposition
//! helpers; re-exported here), [`tls`] (generated certificates, TLS
//! receivers), [`export`] (a pipeline whose export lines are captured) and
//! [`otlp_metrics`] (a real OTLP metrics receiver).
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod export;
pub mod harness;
pub mod hop;
pub mod otel;
pub mod otlp_metrics;
pub mod prometheus;
pub mod tls;

pub use prometheus::*;
