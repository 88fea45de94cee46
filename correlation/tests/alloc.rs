//! Issue 16: what `CorrelationLayer` allocates per request, counted with a
//! global counting allocator after warm-up and compared with the same
//! service without the layer in the same run.
//!
//! The recorder installed here hands out a new handle, one allocation, each
//! time a series is registered, as metrics-exporter-prometheus does: the
//! layer registers each of its counters once and keeps the handle, so the
//! generated-ID counter costs no allocation per request.
//!
//! - An incoming ID (the caller's header, accepted): the ID shares the
//!   header's bytes; the request's extensions (empty here) get their map,
//!   its table and the ID's box (3); the response's headers (empty here) get
//!   their first allocation, the index and the entries (2), for the echo.
//! - A generated ID: the same, plus the ID's bytes (one allocation, shared by
//!   the request header, the extension, the echo and the log field) and the
//!   request's headers (empty here) getting their first allocation (2).
//!
//! A real server's request and response already have headers and
//! extensions (axum's router puts three extensions in before the layer), so
//! there the map allocations are the bare server's or a table that grows.

use std::alloc::System;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_correlation::CorrelationLayer;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Increments of every counter handed out.
static COUNTED: AtomicU64 = AtomicU64::new(0);

struct Count;

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        COUNTED.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, _value: u64) {}
}

/// A recorder that allocates a new counter handle per registration, as
/// metrics-exporter-prometheus's does.
struct NewHandleEachTime;

impl Recorder for NewHandleEachTime {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Count))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn bare() -> impl Service<
    http::Request<()>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"Hello, World!",
        ))))
    })
}

/// A request, with the caller's ID or without.
fn request(incoming: bool) -> http::Request<()> {
    let mut req = http::Request::new(());
    if incoming {
        req.headers_mut().insert(
            "x-correlation-id",
            http::HeaderValue::from_static("caller-7f3a"),
        );
    }
    req
}

const ROUND: usize = 5_000;

/// The fewest allocations of three rounds of `ROUND` requests (each built
/// before the round, outside the count), after a warm-up of two rounds.
fn per_round<S, B>(rt: &Runtime, mut svc: S, incoming: bool) -> usize
where
    S: Service<http::Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut round = || {
        let requests: Vec<_> = (0..ROUND).map(|_| request(incoming)).collect();
        rt.block_on(async {
            let region = Region::new(GLOBAL);
            for req in requests {
                let res = svc.ready().await.unwrap().call(req).await.unwrap();
                let (parts, body) = res.into_parts();
                std::hint::black_box(&parts.headers);
                std::hint::black_box(body.collect().await.unwrap());
            }
            region.change()
        })
    };
    telltale_testkit::alloc::steady_allocations(|| {
        let stats = round();
        (stats.allocations, stats.reallocations, stats)
    })
}

fn allocations_per_request() {
    metrics::set_global_recorder(NewHandleEachTime).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let layer = CorrelationLayer::new();
    let bare_incoming = per_round(&rt, bare(), true);
    let incoming = per_round(&rt, layer.layer(bare()), true);
    let bare_generated = per_round(&rt, bare(), false);
    let counted = COUNTED.load(Ordering::Relaxed);
    let generated = per_round(&rt, layer.layer(bare()), false);
    let counted = COUNTED.load(Ordering::Relaxed) - counted;
    let added = |bare: usize, layered: usize| (layered as f64 - bare as f64) / ROUND as f64;
    let figures = format!(
        "added per request: incoming {}, generated {}",
        added(bare_incoming, incoming),
        added(bare_generated, generated)
    );
    // Every generated ID is counted (five rounds), through the kept handle.
    assert_eq!(counted, 5 * ROUND as u64, "{figures}");
    // The request's extensions (3) and the response's headers (2).
    assert_eq!(incoming, bare_incoming + 5 * ROUND, "{figures}");
    // The same, the ID's bytes and the request's headers (2); nothing for
    // the counter.
    assert_eq!(generated, bare_generated + 8 * ROUND, "{figures}");
}

fn main() {
    telltale_testkit::alloc::run_tests(&[("allocations_per_request", allocations_per_request)]);
}
