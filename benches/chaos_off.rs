//! Benchmark: the cost of the chaos layer when it injects nothing.
//!
//! Same run, same inner service (an immediately ready `service_fn`):
//! - `bare`: the service alone;
//! - `telltale_disabled`: `ChaosLayer` with chaos off (no `TELLTALE_CHAOS`);
//! - `telltale_armed_no_match`: rules armed, none matching the request;
//! - `tower_resilience_zero_rates`: tower-resilience's chaos layer with error and
//!   latency rates of 0 (its closest "on but injecting nothing" setting).
//!
//! Futures are polled to completion in place (they are ready at once), so the
//! figures are the layers' own cost. Heap allocations per request are counted
//! with `stats_alloc` after warm-up and printed before the timings.
//!
//! Run: `cargo bench --bench chaos_off -- --warm-up-time 1 --measurement-time 3`

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use http_body_util::Full;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_chaos::{ChaosLayer, Injector};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Res = Response<Full<Bytes>>;

fn inner() -> impl Service<Request<()>, Response = Res, Error = std::io::Error, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<()>| async {
        Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

fn request() -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = Uri::from_static("/payments/42");
    req
}

fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmarked services are ready at once"),
    }
}

fn one<S: Service<Request<()>>>(svc: &mut S) -> bool
where
    S::Error: std::fmt::Debug,
{
    now(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
    now(svc.call(request())).is_ok()
}

fn allocations<S: Service<Request<()>>>(svc: &mut S) -> f64
where
    S::Error: std::fmt::Debug,
{
    for _ in 0..1_000 {
        one(svc);
    }
    const N: usize = 10_000;
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        black_box(one(svc));
    }
    region.change().allocations as f64 / N as f64
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();

    let disabled = Injector::disabled();
    let armed = Injector::builder()
        .rules("in POST /payments/*: 30% delay(200ms..800ms); 5% status(503) | out fraud-api: 10% grpc(UNAVAILABLE)".parse().unwrap())
        .build()
        .unwrap();
    let mut bare = inner();
    let mut off = ChaosLayer::inbound(&disabled).layer(inner());
    let mut no_match = ChaosLayer::inbound(&armed).layer(inner());
    let mut peer = tower_resilience::chaos::ChaosLayer::builder()
        .name("bench")
        .error_rate(0.0)
        .error_fn(|_req: &Request<()>| std::io::Error::other("chaos"))
        .latency_rate(0.0)
        .build()
        .layer(inner());

    println!("chaos_off allocations per request (after warm-up, 10000 requests):");
    println!(
        "  bare                         {:.2}",
        allocations(&mut bare)
    );
    println!(
        "  telltale_disabled            {:.2}",
        allocations(&mut off)
    );
    println!(
        "  telltale_armed_no_match      {:.2}",
        allocations(&mut no_match)
    );
    println!(
        "  tower_resilience_zero_rates  {:.2}",
        allocations(&mut peer)
    );

    // Criterion runs the variants one after another; on a loaded machine the load
    // changes between them. Interleaved rounds, best round per variant, give
    // ratios that load phases bias less.
    const ROUNDS: usize = 30;
    const PER_ROUND: u32 = 50_000;
    let mut best = [f64::MAX; 4];
    for _ in 0..ROUNDS {
        let time = |run: &mut dyn FnMut() -> bool| {
            let start = std::time::Instant::now();
            for _ in 0..PER_ROUND {
                black_box(run());
            }
            start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
        };
        let rounds = [
            time(&mut || one(&mut bare)),
            time(&mut || one(&mut off)),
            time(&mut || one(&mut no_match)),
            time(&mut || one(&mut peer)),
        ];
        for (b, r) in best.iter_mut().zip(rounds) {
            *b = b.min(r);
        }
    }
    println!("chaos_off interleaved best-of-{ROUNDS} rounds (ns/request, ratio to bare):");
    for (name, ns) in [
        "bare",
        "telltale_disabled",
        "telltale_armed_no_match",
        "tower_resilience_zero_rates",
    ]
    .iter()
    .zip(best)
    {
        println!("  {name:<28} {ns:>8.1}  {:>5.2}x", ns / best[0]);
    }

    let mut group = c.benchmark_group("chaos_off");
    group.bench_function("bare", |b| b.iter(|| one(&mut bare)));
    group.bench_function("telltale_disabled", |b| b.iter(|| one(&mut off)));
    group.bench_function("telltale_armed_no_match", |b| b.iter(|| one(&mut no_match)));
    group.bench_function("tower_resilience_zero_rates", |b| b.iter(|| one(&mut peer)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
