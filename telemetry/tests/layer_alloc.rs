//! RED metrics add no heap allocation per request: the metrics-only server
//! layer costs exactly what wrapping the response body costs (the wrapper is
//! how the exchange's end is observed), measured in steady state with a
//! counting allocator.
//!
//! A no-op recorder isolates telltale from the exporter's own sample storage.
//! Inside axum's `Router::layer`, axum adds allocations of its own for every
//! layer (boxing the service future and re-boxing a wrapped body); those are
//! the same for any middleware and are reported by `benches/request_layer.rs`.

use std::alloc::System;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use axum::{Router, routing::get};
use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_core::{CompletionBody, Ignore};
use telltale_telemetry::layer::ServerTelemetryLayer;
use telltale_telemetry::metrics::RedConfig;
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn router() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "order" }))
}

/// Allocations per request through `svc`, after warm-up.
async fn allocations_per_request<S, B>(svc: S) -> f64
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = bytes::Bytes, Error = axum::Error> + Send + 'static,
{
    async fn one<S, B>(svc: S)
    where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
        B: http_body::Body<Data = bytes::Bytes, Error = axum::Error> + Send + 'static,
    {
        let request = Request::get("/orders/7").body(Body::empty()).unwrap();
        let response = svc.oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1024).await;
        assert_eq!(&bytes.unwrap()[..], b"order");
    }
    for _ in 0..500 {
        one(svc.clone()).await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..2_000 {
        one(svc.clone()).await;
    }
    region.change().allocations as f64 / 2_000.0
}

async fn metrics_only_layer_adds_no_allocation_beyond_the_body_wrapper() {
    let body_wrapper = tower::util::MapResponseLayer::new(|response: Response| {
        response.map(|body| CompletionBody::new(body, Ignore))
    });
    let wrapped = allocations_per_request(body_wrapper.layer(router())).await;

    let config = RedConfig::default().with_recorder(Arc::new(metrics::NoopRecorder));
    let metrics_only = ServerTelemetryLayer::builder()
        .tracing(false)
        .red_config(config)
        .build()
        .unwrap();
    let measured = allocations_per_request(metrics_only.layer(router())).await;

    assert!(wrapped > 0.0, "allocations are counted ({wrapped})");
    assert_eq!(
        measured, wrapped,
        "metrics-only layer vs a bare body wrapper"
    );
}

// Allocations are counted process-wide, so this binary runs without libtest's
// harness (`harness = false` in Cargo.toml): its tests run one after another on
// the main thread, and no harness thread can allocate inside a measured region.
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run_one(
        "metrics_only_layer_adds_no_allocation_beyond_the_body_wrapper",
        || runtime.block_on(metrics_only_layer_adds_no_allocation_beyond_the_body_wrapper()),
    );
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

fn run_one(name: &str, test: impl FnOnce()) {
    print!("test {name} ... ");
    test();
    println!("ok");
}
