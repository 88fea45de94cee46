//! Bulkhead call cost: telltale-resilience vs a bare service, tower's
//! `ConcurrencyLimit` and tower-resilience's bulkhead, single-threaded and with
//! contention from several tasks (slots to spare, and fewer slots than tasks);
//! heap allocations per call; and, printed first, a contention report
//! (throughput and p50/p99 per call, 8 and 64 tasks on 2 worker threads).
//!
//! `cargo bench --bench bulkhead -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http_body_util::Empty;
use telltale_resilience::Bulkhead;
use tower::limit::ConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

mod support;
use support::contention::{self, Sample, run_service};
use support::{
    Subject, multi_thread_runtime, now, report, report_allocations_per_call, service_subject,
};

type Req = http::Request<()>;
type Res = http::Response<Empty<Bytes>>;

/// A service that yields once, so concurrent calls overlap.
fn bare()
-> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|_req: Req| async {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(http::Response::new(Empty::new()))
    })
}

/// A service that answers at once (single-threaded measurements).
fn instant()
-> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|_req: Req| async { Ok::<_, Infallible>(http::Response::new(Empty::new())) })
}

fn bulkhead(max: usize) -> Bulkhead {
    Bulkhead::builder("bench")
        .max_concurrent(max)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn tr_layer(max: usize) -> tower_resilience::bulkhead::BulkheadLayer {
    tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(max)
        .max_wait_duration(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn subjects() -> Vec<Subject> {
    let bare_svc = instant();
    let tt_layer = ServiceBuilder::new()
        .layer(bulkhead(8).layer())
        .service(instant());
    let tt = bulkhead(8);
    let limit = ServiceBuilder::new()
        .layer(ConcurrencyLimitLayer::new(8))
        .service(instant());
    let tr_svc = ServiceBuilder::new().layer(tr_layer(8)).service(instant());
    vec![
        service_subject("bare_service", bare_svc),
        service_subject("telltale_layer", tt_layer),
        (
            "telltale_call",
            Box::new(move || {
                black_box(now(tt.call(async { Ok::<_, Infallible>(1u32) })).unwrap());
            }),
        ),
        service_subject("tower_concurrency_limit", limit),
        service_subject("tower_resilience_bulkhead", tr_svc),
    ]
}

fn single_threaded(c: &mut Criterion) {
    contention_report();
    // tower-resilience's bulkhead arms a tokio timer per call: give it a runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _context = rt.enter();
    report_allocations_per_call(subjects(), 26);
    let mut group = c.benchmark_group("bulkhead/single");
    for (name, mut f) in subjects() {
        group.bench_function(name, |b| b.iter(&mut f));
    }
    group.finish();
}

const TASKS: usize = 4;

fn contended<S>(rt: &tokio::runtime::Runtime, iters: u64, svc: S) -> Duration
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: std::fmt::Debug + Send,
{
    let per_task = iters.div_ceil(TASKS as u64);
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let res = svc
                            .ready()
                            .await
                            .unwrap()
                            .call(http::Request::new(()))
                            .await;
                        drop(black_box(res.unwrap()));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn multi_threaded(c: &mut Criterion) {
    let rt = multi_thread_runtime(TASKS);
    let mut group = c.benchmark_group("bulkhead/contended");
    // `slots`: 64 leaves slots to spare; 2 makes tasks wait for each other.
    for slots in [64usize, 2] {
        let id = |name: &str| BenchmarkId::new(name, format!("{TASKS}tasks_{slots}slots"));
        group.bench_function(id("bare_service"), |b| {
            b.iter_custom(|iters| contended(&rt, iters, bare()))
        });
        group.bench_function(id("telltale_layer"), |b| {
            let svc = ServiceBuilder::new()
                .layer(bulkhead(slots).layer())
                .service(bare());
            b.iter_custom(|iters| contended(&rt, iters, svc.clone()))
        });
        group.bench_function(id("tower_concurrency_limit"), |b| {
            let svc = ServiceBuilder::new()
                .layer(ConcurrencyLimitLayer::new(slots))
                .service(bare());
            // ConcurrencyLimit reserves in poll_ready: share one limit via Buffer-free
            // clones (each clone shares the semaphore).
            b.iter_custom(|iters| contended(&rt, iters, svc.clone()))
        });
        group.bench_function(id("tower_resilience_bulkhead"), |b| {
            let svc = ServiceBuilder::new().layer(tr_layer(slots)).service(bare());
            b.iter_custom(|iters| contended(&rt, iters, svc.clone()))
        });
    }
    group.finish();
}

/// A contention subject: runs (runtime, tasks, calls per task, slots).
type Runner = Box<dyn Fn(&tokio::runtime::Runtime, usize, usize, usize) -> Sample>;

const ROUNDS: usize = 7;
const CALLS_PER_RUN: usize = 40_000;

fn contention_subjects() -> Vec<(&'static str, Runner)> {
    vec![
        (
            "bare_service",
            Box::new(|rt, tasks, calls, _slots| run_service(rt, tasks, calls, bare())),
        ),
        (
            "telltale_layer",
            Box::new(|rt, tasks, calls, slots| {
                let svc = ServiceBuilder::new()
                    .layer(bulkhead(slots).layer())
                    .service(bare());
                run_service(rt, tasks, calls, svc)
            }),
        ),
        (
            "tower_concurrency_limit",
            Box::new(|rt, tasks, calls, slots| {
                let svc = ServiceBuilder::new()
                    .layer(ConcurrencyLimitLayer::new(slots))
                    .service(bare());
                run_service(rt, tasks, calls, svc)
            }),
        ),
        (
            "tower_resilience_bulkhead",
            Box::new(|rt, tasks, calls, slots| {
                let svc = ServiceBuilder::new().layer(tr_layer(slots)).service(bare());
                run_service(rt, tasks, calls, svc)
            }),
        ),
    ]
}

/// Throughput and p50/p99 per call with many tasks on a 2-worker runtime,
/// subjects interleaved over rounds, medians printed (before criterion runs).
fn contention_report() {
    let rt = multi_thread_runtime(2);
    let subjects = contention_subjects();
    // (tasks, slots): fewer slots than tasks, so calls wait for each other.
    for (tasks, slots) in [(8usize, 2usize), (64, 16)] {
        let calls = CALLS_PER_RUN / tasks;
        let names: Vec<&str> = subjects.iter().map(|(name, _)| *name).collect();
        contention::print_report(
            &format!(
                "contention: {tasks} tasks, {slots} slots, 2 worker threads, {calls} calls per task, median of {ROUNDS} interleaved rounds:"
            ),
            &names,
            ROUNDS,
            calls,
            |i, calls| (subjects[i].1)(&rt, tasks, calls, slots),
        );
    }
    report!();
}

criterion_group!(benches, single_threaded, multi_threaded);
criterion_main!(benches);
