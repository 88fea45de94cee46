//! Closed-breaker call cost: telltale-resilience vs a bare service,
//! tower-resilience's circuit breaker and failsafe, single-threaded and with
//! contention from several tasks; heap allocations per call; and, printed
//! first, a contention report (throughput and p50/p99 per call, 8 and 64
//! tasks on 2 worker threads).
//!
//! `cargo bench --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use http_body_util::Empty;
use telltale_resilience::{CircuitBreaker, SlidingWindow};
use tower::{Service, ServiceBuilder, service_fn};

mod support;
use support::contention::{self, Sample, run_call, run_service};
use support::{
    Subject, multi_thread_runtime, now, ready, report, report_allocations_per_call, service_subject,
};

type Req = http::Request<()>;
type Res = http::Response<Empty<Bytes>>;

fn bare()
-> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|_req: Req| async { Ok::<_, Infallible>(http::Response::new(Empty::new())) })
}

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .sliding_window(SlidingWindow::Count(100))
        .build()
        .unwrap()
}

fn tr_layer() -> tower_resilience::circuitbreaker::CircuitBreakerLayer {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .build()
        .unwrap()
}

/// One call of each subject, as closures the single-threaded bench and the
/// allocation count share.
fn subjects() -> Vec<Subject> {
    let bare_svc = bare();
    let tt_layer = ServiceBuilder::new()
        .layer(breaker().layer())
        .service(bare());
    let tt = breaker();
    let tt_permit = breaker();
    let tr_svc = ServiceBuilder::new().layer(tr_layer()).service(bare());
    let fs = failsafe::Config::new().build();
    vec![
        service_subject("bare_service", bare_svc),
        service_subject("telltale_layer", tt_layer),
        (
            "telltale_call",
            Box::new(move || {
                black_box(now(tt.call(async { Ok::<_, Infallible>(1u32) })).unwrap());
            }),
        ),
        (
            "telltale_permit",
            Box::new(move || {
                tt_permit
                    .try_acquire()
                    .unwrap()
                    .record(telltale_resilience::Verdict::Success);
            }),
        ),
        service_subject("tower_resilience_layer", tr_svc),
        (
            "failsafe_call",
            Box::new(move || {
                black_box(now(fs.call(async { Ok::<_, Infallible>(1u32) })).unwrap());
            }),
        ),
    ]
}

fn single_threaded(c: &mut Criterion) {
    contention_report();
    report_allocations_per_call(subjects(), 24);
    let mut group = c.benchmark_group("breaker/single");
    for (name, mut f) in subjects() {
        group.bench_function(name, |b| b.iter(&mut f));
    }
    group.finish();
}

const TASKS: usize = 4;

/// `iters` calls spread over `TASKS` tasks on a multi-threaded runtime.
fn contended<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = iters.div_ceil(TASKS as u64);
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        call().await;
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
    let mut group = c.benchmark_group("breaker/contended");
    group.bench_function(BenchmarkId::new("bare_service", TASKS), |b| {
        let svc = bare();
        b.iter_custom(|iters| {
            let svc = svc.clone();
            contended(&rt, iters, move || {
                let mut svc = svc.clone();
                async move {
                    drop(black_box(svc.call(http::Request::new(())).await));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("telltale_layer", TASKS), |b| {
        let svc = ServiceBuilder::new()
            .layer(breaker().layer())
            .service(bare());
        b.iter_custom(|iters| {
            let svc = svc.clone();
            contended(&rt, iters, move || {
                let mut svc = svc.clone();
                async move {
                    drop(black_box(svc.call(http::Request::new(())).await));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("telltale_call", TASKS), |b| {
        let breaker = breaker();
        b.iter_custom(|iters| {
            let breaker = breaker.clone();
            contended(&rt, iters, move || {
                let breaker = breaker.clone();
                async move {
                    black_box(
                        breaker
                            .call(async { Ok::<_, Infallible>(1u32) })
                            .await
                            .unwrap(),
                    );
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("tower_resilience_layer", TASKS), |b| {
        let svc = ServiceBuilder::new().layer(tr_layer()).service(bare());
        b.iter_custom(|iters| {
            let svc = svc.clone();
            contended(&rt, iters, move || {
                let mut svc = svc.clone();
                async move {
                    ready(&mut svc);
                    drop(black_box(svc.call(http::Request::new(())).await));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("failsafe_call", TASKS), |b| {
        let fs = Arc::new(failsafe::Config::new().build());
        b.iter_custom(|iters| {
            let fs = fs.clone();
            contended(&rt, iters, move || {
                let fs = fs.clone();
                async move {
                    black_box(fs.call(async { Ok::<_, Infallible>(1u32) }).await.unwrap());
                }
            })
        })
    });
    group.finish();
}

/// A service that yields once, so the tasks' calls overlap.
fn yielding()
-> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|_req: Req| async {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(http::Response::new(Empty::new()))
    })
}

/// A contention subject: runs (runtime, tasks, calls per task).
type Runner = Box<dyn Fn(&tokio::runtime::Runtime, usize, usize) -> Sample>;

const ROUNDS: usize = 7;
const CALLS_PER_RUN: usize = 40_000;

fn contention_subjects() -> Vec<(&'static str, Runner)> {
    vec![
        (
            "bare_service",
            Box::new(|rt, tasks, calls| run_service(rt, tasks, calls, yielding())),
        ),
        (
            "telltale_layer",
            Box::new(|rt, tasks, calls| {
                let svc = ServiceBuilder::new()
                    .layer(breaker().layer())
                    .service(yielding());
                run_service(rt, tasks, calls, svc)
            }),
        ),
        (
            "tower_resilience_layer",
            Box::new(|rt, tasks, calls| {
                let svc = ServiceBuilder::new().layer(tr_layer()).service(yielding());
                run_service(rt, tasks, calls, svc)
            }),
        ),
        (
            "failsafe_call",
            Box::new(|rt, tasks, calls| {
                let fs = Arc::new(failsafe::Config::new().build());
                run_call(rt, tasks, calls, move || {
                    let fs = fs.clone();
                    async move {
                        let r = fs
                            .call(async {
                                tokio::task::yield_now().await;
                                Ok::<_, Infallible>(1u32)
                            })
                            .await;
                        black_box(r.unwrap());
                    }
                })
            }),
        ),
    ]
}

/// Throughput and p50/p99 per call with many tasks on a 2-worker runtime,
/// subjects interleaved over rounds, medians printed (before criterion runs).
fn contention_report() {
    let rt = multi_thread_runtime(2);
    let subjects = contention_subjects();
    for tasks in [8usize, 64] {
        let calls = CALLS_PER_RUN / tasks;
        let names: Vec<&str> = subjects.iter().map(|(name, _)| *name).collect();
        contention::print_report(
            &format!(
                "contention (closed breaker): {tasks} tasks, 2 worker threads, {calls} calls per task, median of {ROUNDS} interleaved rounds:"
            ),
            &names,
            ROUNDS,
            calls,
            |i, calls| (subjects[i].1)(&rt, tasks, calls),
        );
    }
    report!();
}

criterion_group!(benches, single_threaded, multi_threaded);
criterion_main!(benches);
