//! Full server stack per request: a bare axum hello-world router, the full
//! telltale stack (telemetry server layer with spans sampled in and RED
//! metrics, correlation IDs, circuit breaker, bulkhead, chaos layer disabled)
//! and the full peer stack a user would otherwise combine (tower-http
//! `SetRequestId` + `PropagateRequestId` + `TraceLayer`, axum-prometheus,
//! axum-tracing-opentelemetry, tower-resilience circuit breaker + bulkhead),
//! in the same run; and for issue 16 item 1 the telltale stack twice more:
//! with spans off (metrics, request log line, correlation, resilience) and
//! with its requests dropped by the sampler (both get an unsampled caller's
//! `traceparent`, which the parent-based sampler follows). The subscriber is
//! the one `telltale_telemetry::init` builds (its `SamplerLayer`, the bridge
//! without code-location, thread and busy/idle attributes, the request log
//! line kept out of span events), the same for every stack. The stacks are defined once in `benches/support/stacks.rs`,
//! shared with the loopback load target (`scripts/loadtest/load_target.rs`).
//!
//! Every request goes through the router with `oneshot` on a current-thread
//! runtime, body collected, with a `Host` and a `User-Agent` header and no
//! incoming ID or trace context (both stacks generate an ID and start a
//! trace). Every [`YIELD_EVERY`] requests the loop yields to the runtime
//! (in every stack alike), so that background work a request leaves behind
//! (spawned tasks, woken tasks) runs within the measured loop instead of
//! piling up; the allocation table prints the tasks left alive after its
//! loop. Spans go through the OpenTelemetry SDK's `SimpleSpanProcessor` to an
//! exporter that discards them, so the export work happens on the request's
//! thread and is counted with it; metrics go to one Prometheus recorder.
//!
//! Before criterion runs (under `cargo bench`), two tables are printed: heap allocations (and spans
//! exported) per request, counted with `stats_alloc` after warm-up, and time
//! per request measured in interleaved rounds (every stack once per round, so
//! load from other processes hits all three alike) with the ratios
//! telltale/bare, peers/bare and telltale/peers.
//!
//! ```text
//! cargo bench --bench full_stack -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use criterion::Criterion;
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;

mod support;

use support::stacks::{self, Stack};
use support::{region, report, size};

/// How many requests [`drive`] makes between two yields to the runtime.
///
/// `oneshot` on a ready router never yields, so without a yield whatever a
/// stack leaves to background tasks would pile up unpolled across a loop
/// (and be dropped, or run, outside it) instead of being counted with the
/// requests that caused it. A yield per request would count it as well, but
/// adds the runtime's own scheduling pass (about 0.4 µs per yield here,
/// measured on the bare stack) to every stack, which is not the stacks' cost
/// and flattens the ratios; one yield every 32 requests bounds the backlog to
/// 32 requests' work at a thirty-second of that cost.
const YIELD_EVERY: u32 = 32;

thread_local! {
    /// Requests [`drive`] made on this thread, for [`YIELD_EVERY`].
    static DRIVEN: Cell<u32> = const { Cell::new(0) };
}

/// One request, body collected; every [`YIELD_EVERY`]th, a yield to the
/// runtime, identically for every stack.
async fn drive(stack: Stack, router: &Router) {
    let response = router
        .clone()
        .oneshot(stack.request())
        .await
        .expect("infallible");
    let body = response.into_body().collect().await.expect("hello body");
    black_box(body);
    let driven = DRIVEN.with(|d| {
        let n = d.get().wrapping_add(1);
        d.set(n);
        n
    });
    if driven % YIELD_EVERY == 0 {
        tokio::task::yield_now().await;
    }
}

/// Tasks alive on the current runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Every stack answers `Hello, World!` and the instrumented ones add their ID.
async fn check(stack: Stack, router: &Router) {
    let response = stack.answer(router).await;
    let id = match stack {
        Stack::Bare => None,
        Stack::Telltale | Stack::TelltaleMetricsOnly | Stack::TelltaleSampledOut => {
            Some("x-correlation-id")
        }
        Stack::Peers => Some("x-request-id"),
    };
    if let Some(id) = id {
        assert!(
            response.headers().contains_key(id),
            "{}: {id}",
            stack.name()
        );
    }
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"Hello, World!");
}

/// How many requests the printed tables measure: full size under `cargo
/// bench`, one of each when the bench runs as a test (`cargo test
/// --all-targets`), which still checks every stack and prints nothing.
#[derive(Clone, Copy)]
struct Sizes {
    warm_up: usize,
    allocs: usize,
    rounds: usize,
    per_round: usize,
}

impl Sizes {
    fn from_args() -> Sizes {
        Sizes {
            warm_up: size(2_000),
            allocs: size(10_000),
            rounds: size(15),
            per_round: size(4_000),
        }
    }
}

struct Allocs {
    allocs: f64,
    bytes: f64,
    spans: f64,
    /// Tasks alive after the loop: background work left behind.
    tasks: usize,
}

/// Heap allocations, bytes and exported spans per request, after warm-up.
fn allocations(rt: &Runtime, stack: Stack, router: &Router, sizes: Sizes) -> Allocs {
    let n = sizes.allocs;
    rt.block_on(async {
        for _ in 0..sizes.warm_up {
            drive(stack, router).await;
        }
        stacks::metrics().run_upkeep();
        let spans = stacks::spans_exported();
        let region = region();
        for _ in 0..n {
            drive(stack, router).await;
        }
        let stats = region.change();
        Allocs {
            allocs: (stats.allocations + stats.reallocations) as f64 / n as f64,
            bytes: stats.bytes_allocated as f64 / n as f64,
            spans: (stacks::spans_exported() - spans) as f64 / n as f64,
            tasks: alive_tasks(),
        }
    })
}

/// Median time per request over interleaved rounds.
fn interleaved(rt: &Runtime, routers: &[(Stack, Router)], sizes: Sizes) -> Vec<f64> {
    let n = sizes.per_round;
    let mut samples = vec![Vec::with_capacity(sizes.rounds); routers.len()];
    for _ in 0..sizes.rounds {
        for ((stack, router), out) in routers.iter().zip(&mut samples) {
            let nanos = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    drive(*stack, router).await;
                }
                start.elapsed().as_nanos() as f64 / n as f64
            });
            out.push(nanos);
        }
        stacks::metrics().run_upkeep();
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

fn report(rt: &Runtime, routers: &[(Stack, Router)], sizes: Sizes) {
    report!(
        "\nfull_stack heap allocations per request (stats_alloc, {} requests after {} warm-up):",
        sizes.allocs,
        sizes.warm_up
    );
    let allocs: Vec<Allocs> = routers
        .iter()
        .map(|(stack, r)| allocations(rt, *stack, r, sizes))
        .collect();
    for ((stack, _), a) in routers.iter().zip(&allocs) {
        report!(
            "  {:<10} {:>7.2} allocs {:>9.1} bytes {:>5.2} spans {:>6} tasks left",
            stack.name(),
            a.allocs,
            a.bytes,
            a.spans,
            a.tasks
        );
    }
    let nanos = interleaved(rt, routers, sizes);
    report!(
        "\nfull_stack interleaved timing ({} rounds x {} requests; median ns/request):",
        sizes.rounds,
        sizes.per_round
    );
    for ((stack, _), ns) in routers.iter().zip(&nanos) {
        report!(
            "  {:<10} {:>9.0} ns  x{:.2} bare",
            stack.name(),
            ns,
            ns / nanos[0]
        );
    }
    let at = |s: Stack| routers.iter().position(|(x, _)| *x == s).expect("stack");
    let (b, t, p) = (at(Stack::Bare), at(Stack::Telltale), at(Stack::Peers));
    report!(
        "full_stack ratios: telltale/bare {:.2}  peers/bare {:.2}  telltale/peers {:.2}  \
         (overhead over bare: telltale/peers {:.2}; allocations telltale/peers {:.2})\n",
        nanos[t] / nanos[b],
        nanos[p] / nanos[b],
        nanos[t] / nanos[p],
        (nanos[t] - nanos[b]) / (nanos[p] - nanos[b]),
        allocs[t].allocs / allocs[p].allocs,
    );
    let (m, o) = (
        at(Stack::TelltaleMetricsOnly),
        at(Stack::TelltaleSampledOut),
    );
    report!(
        "full_stack sampled out vs metrics only (issue 16 item 1): time {:.2}x, allocations {:+.2}\n",
        nanos[o] / nanos[m],
        allocs[o].allocs - allocs[m].allocs,
    );
}

fn bench(c: &mut Criterion, rt: &Runtime, routers: &[(Stack, Router)]) {
    let mut group = c.benchmark_group("full_stack");
    for (stack, router) in routers {
        group.bench_function(stack.name(), |b| {
            b.to_async(rt).iter(|| drive(*stack, router))
        });
    }
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    stacks::metrics();
    let (dispatch, provider) = stacks::subscriber(false);
    let routers: Vec<(Stack, Router)> = {
        let _entered = rt.enter();
        Stack::WITH_SAMPLING.map(|s| (s, stacks::router(s))).into()
    };
    let mut criterion = Criterion::default().configure_from_args();
    tracing::dispatcher::with_default(&dispatch, || {
        for (stack, router) in &routers {
            rt.block_on(check(*stack, router));
        }
        report(&rt, &routers, Sizes::from_args());
        bench(&mut criterion, &rt, &routers);
    });
    criterion.final_summary();
    provider.shutdown().expect("tracer provider shutdown");
}
