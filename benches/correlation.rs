//! Benchmark: per-request cost of telltale-correlation's layers, against a
//! bare tower service and against tower-http's `SetRequestId` +
//! `PropagateRequestId` (`MakeRequestUuid`), in the same run.
//!
//! Each request is driven by hand (no runtime: every future here is ready at
//! the first poll) through `poll_ready`, `call`, the response future and the
//! whole response body, so the figures are the middleware's own cost.
//! Request construction is outside the measurement.
//!
//! Before criterion runs, two tables are printed: heap allocations per
//! request for every configuration, counted with `stats_alloc` after warm-up,
//! and time per request measured in interleaved rounds (robust against load
//! from other processes), with the ratio to the bare service.
//!
//! ```text
//! cargo bench --bench correlation -- --warm-up-time 1 --measurement-time 3
//! ```

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
use telltale_correlation::client::InjectCorrelationLayer;
use telltale_correlation::server::CorrelationLayer;
use telltale_correlation::{CorrelationId, sync_scope};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

mod support;
use support::{allocations_of, report, size};

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

/// One benchmarked configuration: a criterion group, a name in it, how to
/// build its requests, and how to serve one.
struct Case {
    group: &'static str,
    name: &'static str,
    make: Box<dyn Fn() -> Req>,
    run: Box<dyn FnMut(Req)>,
}

fn case<S, B>(
    group: &'static str,
    name: &'static str,
    make: impl Fn() -> Req + 'static,
    mut svc: S,
    scope: Option<CorrelationId>,
) -> Case
where
    S: Service<Req, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: Body,
{
    Case {
        group,
        name,
        make: Box::new(make),
        run: Box::new(move |req| match &scope {
            // The client layer reads the ID the server layer made current.
            Some(id) => sync_scope(id.clone(), || drive(&mut svc, req)),
            None => drive(&mut svc, req),
        }),
    }
}

fn cases() -> Vec<Case> {
    let id: CorrelationId = INCOMING.parse().unwrap();
    let x_corr = || incoming("x-correlation-id");
    let x_req = || incoming("x-request-id");
    let client = || InjectCorrelationLayer::new();
    vec![
        case("incoming", "bare", x_corr(), Bare, None),
        case(
            "incoming",
            "telltale",
            x_corr(),
            telltale_server().layer(Bare),
            None,
        ),
        case("incoming", "tower_http", x_req(), tower_http(Bare), None),
        case("generated", "bare", absent, Bare, None),
        case(
            "generated",
            "telltale",
            absent,
            telltale_server().layer(Bare),
            None,
        ),
        case("generated", "tower_http", absent, tower_http(Bare), None),
        case("client", "bare", absent, Bare, Some(id.clone())),
        case("client", "telltale", absent, client().layer(Bare), Some(id)),
        case("server_and_client", "bare", x_corr(), Calls(Bare), None),
        case(
            "server_and_client",
            "telltale",
            x_corr(),
            telltale_server().layer(Calls(client().layer(Bare))),
            None,
        ),
    ]
}

/// Allocations and bytes per request for every case, after warm-up.
fn report_allocations(cases: &mut [Case]) {
    let n = size(10_000);
    report!("\nheap allocations per request (stats_alloc, {n} requests after 1k warm-up):");
    for case in cases {
        for _ in 0..size(1_000) {
            (case.run)((case.make)());
        }
        let requests: Vec<Req> = (0..n).map(|_| (case.make)()).collect();
        let ((), stats) = allocations_of(|| {
            for req in requests {
                (case.run)(req);
            }
        });
        report!(
            "  {:<30} {:>5.2} allocs {:>7.1} bytes",
            format!("{}/{}", case.group, case.name),
            stats.allocations as f64 / n as f64,
            stats.bytes_allocated as f64 / n as f64,
        );
    }
}

/// Time per request for every case, measured in interleaved rounds (every
/// case once per round) so that load from other processes hits all cases
/// alike; reports the median round and the ratio to the group's bare case.
fn report_interleaved(cases: &mut [Case]) {
    let (rounds, n) = (size(31), size(20_000));
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (case, out) in cases.iter_mut().zip(&mut samples) {
            let requests: Vec<Req> = (0..n).map(|_| (case.make)()).collect();
            let start = std::time::Instant::now();
            for req in requests {
                (case.run)(req);
            }
            out.push(start.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    report!(
        "\ninterleaved timing ({rounds} rounds x {n} requests; median ns/request, ratio to bare):"
    );
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    for (i, case) in cases.iter().enumerate() {
        let bare = cases
            .iter()
            .position(|c| c.group == case.group && c.name == "bare")
            .map_or(medians[i], |b| medians[b]);
        report!(
            "  {:<30} {:>8.1} ns  x{:.2}  (+{:.1} ns)",
            format!("{}/{}", case.group, case.name),
            medians[i],
            medians[i] / bare,
            medians[i] - bare,
        );
    }
    report!();
}

fn bench(c: &mut Criterion) {
    let mut cases = cases();
    report_allocations(&mut cases);
    report_interleaved(&mut cases);

    let groups: Vec<&'static str> = {
        let mut g: Vec<_> = cases.iter().map(|c| c.group).collect();
        g.dedup();
        g
    };
    for group in groups {
        let mut g = c.benchmark_group(format!("correlation/{group}"));
        for case in cases.iter_mut().filter(|c| c.group == group) {
            let Case { make, run, .. } = case;
            g.bench_function(case.name, |b| {
                b.iter_batched(&**make, &mut **run, BatchSize::SmallInput)
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
