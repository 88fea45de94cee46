//! The RED bookkeeping on the steady-state path allocates nothing: once a
//! label set has been seen, `start` + `finish` only touch prepared handles.
//!
//! A no-op recorder isolates telltale's own code from the exporter's sample
//! storage (metrics-util's histogram buckets grow in blocks, for every user of
//! that exporter alike).

use std::alloc::System;
use std::sync::Arc;

use http::{Method, StatusCode};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_core::GrpcCode;
use telltale_telemetry::metrics::{Kind, RedConfig, RedMetrics, Scheme};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn measure(kind: Kind, route: &str, grpc: Option<GrpcCode>) -> usize {
    let config = RedConfig::default().with_recorder(Arc::new(metrics::NoopRecorder));
    let red = RedMetrics::new(kind, &config);
    let once = |status| {
        let in_flight = red.start(&Method::GET, Scheme::Http);
        in_flight.finish(Some(route), Some(status), grpc, None);
    };
    for _ in 0..1_000 {
        once(StatusCode::OK);
        once(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        once(StatusCode::OK);
        once(StatusCode::INTERNAL_SERVER_ERROR);
    }
    region.change().allocations
}

fn steady_state_start_and_finish_allocate_nothing() {
    // The counter counts: a new label set (a route never seen) does allocate.
    let config = RedConfig::default().with_recorder(Arc::new(metrics::NoopRecorder));
    let red = RedMetrics::new(Kind::HttpServer, &config);
    let region = Region::new(GLOBAL);
    red.start(&Method::GET, Scheme::Http).finish(
        Some("/first/{seen}"),
        Some(StatusCode::OK),
        None,
        None,
    );
    assert!(region.change().allocations > 0, "allocations are counted");

    assert_eq!(
        measure(Kind::HttpServer, "/users/{id}", None),
        0,
        "http server"
    );
    assert_eq!(
        measure(Kind::HttpClient, "/users/{id}", None),
        0,
        "http client"
    );
    assert_eq!(
        measure(Kind::RpcServer, "/pkg.Svc/Get", Some(GrpcCode::Ok)),
        0,
        "rpc server"
    );
}

// Allocations are counted process-wide, so this binary runs without libtest's
// harness (`harness = false` in Cargo.toml): its tests run one after another on
// the main thread, and no harness thread can allocate inside a measured region.
fn main() {
    telltale_testkit::alloc::run_tests(&[(
        "steady_state_start_and_finish_allocate_nothing",
        steady_state_start_and_finish_allocate_nothing,
    )]);
}
