//! Benchmark: per-request cost of telltale-correlation's layers, against a
//! bare tower service and against tower-http's `SetRequestId` +
//! `PropagateRequestId` (`MakeRequestUuid`), in the same run.
//!
//! Each request is driven by hand (no runtime: every future here is ready at
//! the first poll) through `poll_ready`, `call`, the response future and the
//! whole response body, so the figures are the middleware's own cost.
//! Request construction is outside the measurement.
//!
//! Before criterion runs, heap allocations per request are counted for every
//! configuration with `stats_alloc` (after warm-up) and printed to stderr.
//!
//! ```text
//! cargo bench --bench correlation -- --warm-up-time 1 --measurement-time 3
//! ```

use std::alloc::System;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use hyper::body::Body;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_correlation::client::InjectCorrelationLayer;
use telltale_correlation::server::CorrelationLayer;
use telltale_correlation::{CorrelationId, sync_scope};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Req = Request<Empty<Bytes>>;
type Res = Response<Empty<Bytes>>;

/// The bare service: answers every request with an empty 200.
#[derive(Clone, Copy)]
struct Bare;

impl Service<Req> for Bare {
    type Response = Res;
    type Error = Infallible;
    type Future = Ready<Result<Res, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(Empty::new())))
    }
}

/// A service that makes one outbound call through `client` for every request
/// (as a handler calling another service would), then answers.
#[derive(Clone)]
struct Calls<C>(C);

impl<C> Service<Req> for Calls<C>
where
    C: Service<Req, Response = Res, Error = Infallible, Future = Ready<Result<Res, Infallible>>>,
{
    type Response = Res;
    type Error = Infallible;
    type Future = Ready<Result<Res, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        black_box(&req);
        // The Ready future holds the outbound response already: drop it.
        drop(self.0.call(Request::new(Empty::new())));
        ready(Ok(Response::new(Empty::new())))
    }
}

const INCOMING: &str = "0192f4c1-7d3a-7b7e-9a51-4c2f0e8d1a77";

fn incoming(header: &'static str) -> impl Fn() -> Req {
    move || {
        Request::builder()
            .uri("/orders")
            .header(header, HeaderValue::from_static(INCOMING))
            .body(Empty::new())
            .unwrap()
    }
}

fn absent() -> Req {
    Request::builder()
        .uri("/orders")
        .body(Empty::new())
        .unwrap()
}

/// One request through `svc`: readiness, call, response future, whole body.
fn drive<S, B>(svc: &mut S, req: Req)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let fut = pin!(svc.call(req));
    let Poll::Ready(Ok(res)) = fut.poll(&mut cx) else {
        panic!("the benchmark services are ready at once")
    };
    let (parts, body) = res.into_parts();
    black_box(&parts.headers);
    let mut body = pin!(body);
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.is_ok());
    }
}

/// Allocations and bytes per request, after warm-up.
fn allocations<S, B>(
    svc: &mut S,
    make: &dyn Fn() -> Req,
    scope: Option<&CorrelationId>,
) -> (f64, f64)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    const N: usize = 10_000;
    let run = |svc: &mut S, req| match scope {
        Some(id) => sync_scope(id.clone(), || drive(svc, req)),
        None => drive(svc, req),
    };
    for _ in 0..1_000 {
        run(svc, make());
    }
    let requests: Vec<Req> = (0..N).map(|_| make()).collect();
    let region = Region::new(GLOBAL);
    for req in requests {
        run(svc, req);
    }
    let stats = region.change();
    (
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64,
    )
}

fn telltale_server() -> CorrelationLayer {
    CorrelationLayer::new()
}

fn tower_http<S>(inner: S) -> impl Service<Req, Response = Res, Error = Infallible> + Clone
where
    S: Service<Req, Response = Res, Error = Infallible> + Clone,
{
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(inner)
}

fn report_allocations() {
    let id: CorrelationId = INCOMING.parse().unwrap();
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    let x_corr = incoming("x-correlation-id");
    let x_req = incoming("x-request-id");

    rows.push(("bare (incoming ID)", allocations(&mut Bare, &x_corr, None)));
    rows.push((
        "telltale server (incoming ID)",
        allocations(&mut telltale_server().layer(Bare), &x_corr, None),
    ));
    rows.push((
        "tower-http set+propagate (incoming ID)",
        allocations(&mut tower_http(Bare), &x_req, None),
    ));
    rows.push(("bare (no ID)", allocations(&mut Bare, &absent, None)));
    rows.push((
        "telltale server (generated)",
        allocations(&mut telltale_server().layer(Bare), &absent, None),
    ));
    rows.push((
        "tower-http set+propagate (generated)",
        allocations(&mut tower_http(Bare), &absent, None),
    ));
    rows.push((
        "bare client call (ID in scope)",
        allocations(&mut Bare, &absent, Some(&id)),
    ));
    rows.push((
        "telltale client (ID in scope)",
        allocations(
            &mut InjectCorrelationLayer::new().layer(Bare),
            &absent,
            Some(&id),
        ),
    ));
    rows.push((
        "bare server + bare outbound call",
        allocations(&mut Calls(Bare), &x_corr, None),
    ));
    rows.push((
        "telltale server + client (incoming ID)",
        allocations(
            &mut telltale_server().layer(Calls(InjectCorrelationLayer::new().layer(Bare))),
            &x_corr,
            None,
        ),
    ));
    eprintln!("\nheap allocations per request (stats_alloc, 10k requests after 1k warm-up):");
    for (name, (allocs, bytes)) in rows {
        eprintln!("  {name:<42} {allocs:>5.2} allocs  {bytes:>7.1} bytes");
    }
    eprintln!();
}

fn bench(c: &mut Criterion) {
    report_allocations();

    let mut g = c.benchmark_group("correlation/incoming");
    let x_corr = incoming("x-correlation-id");
    let x_req = incoming("x-request-id");
    let mut bare = Bare;
    g.bench_function("bare", |b| {
        b.iter_batched(&x_corr, |req| drive(&mut bare, req), BatchSize::SmallInput)
    });
    let mut svc = telltale_server().layer(Bare);
    g.bench_function("telltale", |b| {
        b.iter_batched(&x_corr, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = tower_http(Bare);
    g.bench_function("tower_http", |b| {
        b.iter_batched(&x_req, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    g.finish();

    let mut g = c.benchmark_group("correlation/generated");
    g.bench_function("bare", |b| {
        b.iter_batched(absent, |req| drive(&mut bare, req), BatchSize::SmallInput)
    });
    let mut svc = telltale_server().layer(Bare);
    g.bench_function("telltale", |b| {
        b.iter_batched(absent, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = tower_http(Bare);
    g.bench_function("tower_http", |b| {
        b.iter_batched(absent, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    g.finish();

    let id: CorrelationId = INCOMING.parse().unwrap();
    let mut g = c.benchmark_group("correlation/client");
    g.bench_function("bare", |b| {
        b.iter_batched(
            absent,
            |req| sync_scope(id.clone(), || drive(&mut bare, req)),
            BatchSize::SmallInput,
        )
    });
    let mut svc = InjectCorrelationLayer::new().layer(Bare);
    g.bench_function("telltale", |b| {
        b.iter_batched(
            absent,
            |req| sync_scope(id.clone(), || drive(&mut svc, req)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("correlation/server_and_client");
    let mut svc = Calls(Bare);
    g.bench_function("bare", |b| {
        b.iter_batched(&x_corr, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = telltale_server().layer(Calls(InjectCorrelationLayer::new().layer(Bare)));
    g.bench_function("telltale", |b| {
        b.iter_batched(&x_corr, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
