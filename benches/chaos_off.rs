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

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use http_body_util::Full;
use telltale_chaos::{ChaosLayer, Injector};
use tower::{Layer, Service, service_fn};

mod support;
use support::{allocations_of, now, report, size};

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
    for _ in 0..size(1_000) {
        one(svc);
    }
    let n = size(10_000);
    let ((), stats) = allocations_of(|| {
        for _ in 0..n {
            black_box(one(svc));
        }
    });
    stats.allocations as f64 / n as f64
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

    report!("chaos_off allocations per request (after warm-up, 10000 requests):");
    let allocs = [
        allocations(&mut bare),
        allocations(&mut off),
        allocations(&mut no_match),
        allocations(&mut peer),
    ];
    report!("  bare                         {:.2}", allocs[0]);
    report!("  telltale_disabled            {:.2}", allocs[1]);
    report!("  telltale_armed_no_match      {:.2}", allocs[2]);
    report!("  tower_resilience_zero_rates  {:.2}", allocs[3]);

    // Criterion runs the variants one after another; on a loaded machine the load
    // changes between them. Interleaved rounds, best round per variant, give
    // ratios that load phases bias less.
    const ROUNDS: usize = 30;
    let per_round = size(50_000) as u32;
    let mut best = [f64::MAX; 4];
    for _ in 0..size(ROUNDS) {
        let time = |run: &mut dyn FnMut() -> bool| {
            let start = std::time::Instant::now();
            for _ in 0..per_round {
                black_box(run());
            }
            start.elapsed().as_nanos() as f64 / f64::from(per_round)
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
    report!("chaos_off interleaved best-of-{ROUNDS} rounds (ns/request, ratio to bare):");
    for (name, ns) in [
        "bare",
        "telltale_disabled",
        "telltale_armed_no_match",
        "tower_resilience_zero_rates",
    ]
    .iter()
    .zip(best)
    {
        report!("  {name:<28} {ns:>8.1}  {:>5.2}x", ns / best[0]);
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
