//! How telltale's per-request cost grows (issue 16, item 5). Four tables,
//! each with the ratio to its smallest case:
//!
//! - **routes**: the full telltale server stack (the `telltale` stack of
//!   `benches/support/stacks.rs`: `ServerStack` with a breaker, a bulkhead and
//!   chaos off) over an axum router with 1 to 10,000 route templates
//!   `/r{i}/items/{id}`, requests cycling over every template (so the RED
//!   metrics hold one series per template, up to the default label-set cap of
//!   2,000, beyond which they share the overflow series), next to the bare
//!   router with the same templates. The column that matters is the time
//!   telltale adds over bare: axum's own route lookup is in both.
//! - **breakers**: a keyed registry (`resilience::keyed::Registry::breakers`,
//!   keyed by host) holding 1 to 10,000 breakers, calls cycling over every
//!   host, each call through `KeyedBreakerLayer` to a service that answers at
//!   once.
//! - **captured headers**: the full stack capturing 0 or 20 request headers
//!   (`capture_request_headers`); the request carries the same 20 headers in
//!   both cases.
//! - **span attribute size**: one span with one string attribute of 16 B to
//!   128 KiB, through telltale's pipeline (`Telemetry::builder()`) with the
//!   attribute value length limit at 2,048 characters (what
//!   `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT=2048` sets): into the flight
//!   recorder alone, and into the flight recorder plus OTLP/HTTP export to a
//!   local receiver that discards (time per span includes the export: spans are
//!   flushed every 256). The table also shows the flight recorder's estimated
//!   bytes per span and the OTLP bytes received per span, which must stay
//!   bounded.
//!
//! Times are medians of interleaved rounds (every case once per round, so load
//! from other processes hits all cases alike); criterion then measures the same
//! closures. Spans go to a discarding exporter through the SDK's simple
//! processor, as in `benches/full_stack.rs`. Router cases yield to the runtime
//! after every request, as a server's connection task does, so what a request
//! spawned (the body idle timeout's watchdog) runs and ends as it would in a
//! server instead of piling up; the Prometheus recorder's upkeep runs between
//! timed batches, as an exporter's would.
//!
//! In criterion's profile mode (`--profile-time`, used by `scripts/profile`)
//! the tables are skipped and only the routine the filter selects runs.
//!
//! ```text
//! cargo bench --bench cost_growth -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! The tables alone, without criterion's part (a filter matching no criterion
//! benchmark, as `scripts/bench` runs it), all four or some of them by name
//! (`routes`, `breakers`, `headers`, `attribute_size`, comma-separated):
//!
//! ```text
//! cargo bench --bench cost_growth -- tables-only
//! cargo bench --bench cost_growth -- tables-only:attribute_size
//! cargo bench --bench cost_growth -- tables-only:routes,headers
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use criterion::{BenchmarkId, Criterion};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use telltale::resilience::keyed::{self, KeyedBreakerLayer, Registry};
use telltale::resilience::{Bulkhead, CircuitBreaker, SlidingWindow};
use telltale::telemetry::layer::{RequestLog, ServerTelemetryLayer};
use telltale::telemetry::pipeline::SpanLimits;
use telltale::telemetry::{LogFormat, Protocol, Telemetry};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};

mod support;

use support::{measuring, multi_thread_runtime, now, ready, report, stacks};

/// `println!` when the tables are measured ([`tables`]).
macro_rules! table {
    ($($arg:tt)*) => {
        if tables() {
            println!($($arg)*);
        }
    };
}

/// Route templates and keyed breakers: 1 to 10,000.
const COUNTS: [usize; 5] = [1, 10, 100, 1_000, 10_000];
/// Span attribute sizes, in bytes (ASCII): below, at and above the limit.
const ATTRIBUTE_SIZES: [usize; 5] = [16, 256, 2_048, 16_384, 131_072];
/// The attribute value length limit of the span pipeline.
const VALUE_LENGTH_LIMIT: u32 = 2_048;
/// Spans between two flushes of the export pipeline (below its queue size,
/// so no span is dropped).
const FLUSH_EVERY: usize = 256;
/// Number of captured headers in the "captured headers" table.
const HEADERS: usize = 20;

/// One measured case: runs `n` operations.
type Case = Box<dyn FnMut(usize)>;

/// Whether the tables are measured: under `cargo bench`, except in
/// criterion's profile mode (`--profile-time`, used by `scripts/profile`),
/// where only the routine the filter selects runs.
fn tables() -> bool {
    measuring() && !std::env::args().any(|a| a == "--profile-time")
}

/// Whether the run measures `table`: every table, unless the filter
/// argument is `tables-only:NAME[,NAME…]` (criterion then sees a filter
/// that matches none of its benchmarks).
fn selected(table: &str) -> bool {
    std::env::args()
        .find_map(|a| a.strip_prefix("tables-only:").map(str::to_owned))
        .is_none_or(|names| names.split(',').any(|name| name.trim() == table))
}

/// `full` when the tables are measured, else `1`.
fn table_size(full: usize) -> usize {
    if tables() { full } else { 1 }
}

/// Median ns per operation of every case, in interleaved rounds.
fn interleaved(cases: &mut [(String, Case)]) -> Vec<f64> {
    let rounds = table_size(9);
    let n = table_size(3_000);
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for ((_, run), out) in cases.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            run(n);
            out.push(start.elapsed().as_nanos() as f64 / n as f64);
            upkeep();
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

/// Drains the Prometheus recorder's histogram samples into their buckets, as
/// an exporter's scrape or upkeep task does, outside the timed part (without
/// it, samples pile up and every case gets slower the longer the run lasts).
fn upkeep() {
    stacks::metrics().run_upkeep();
}

/// Criterion measures the same closures, one group per table.
fn criterion(c: &mut Criterion, group: &str, cases: &mut [(String, Case)]) {
    let mut group = c.benchmark_group(format!("cost_growth/{group}"));
    for (name, run) in cases.iter_mut() {
        let (function, parameter) = name.split_once('/').unwrap_or((name.as_str(), ""));
        group.bench_function(BenchmarkId::new(function, parameter), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                run(iters as usize);
                let took = start.elapsed();
                upkeep();
                took
            })
        });
    }
    group.finish();
}

async fn hello() -> &'static str {
    "Hello, World!"
}

/// The telltale stack of `benches/full_stack.rs`, with `telemetry` when given.
fn telltale_layer(telemetry: Option<ServerTelemetryLayer>) -> telltale::stack::ServerStackLayer {
    let mut stack = telltale::ServerStack::new()
        .breaker(
            CircuitBreaker::builder("growth")
                .sliding_window(SlidingWindow::Count(100))
                .build()
                .expect("valid breaker"),
        )
        .bulkhead(
            Bulkhead::builder("growth")
                .max_concurrent(1024)
                .max_wait(Duration::from_secs(1))
                .build()
                .expect("valid bulkhead"),
        )
        .chaos(&telltale::chaos::Injector::disabled());
    if let Some(layer) = telemetry {
        stack = stack.telemetry(layer);
    }
    stack.layer()
}

/// One request to `router`, body collected; asserts `200`.
async fn drive(router: &Router, request: Request<Body>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    black_box(response.into_body().collect().await.expect("body"));
}

/// A closure running `n` requests through `router`, cycling over `uris`, each
/// request with the headers `headers`.
fn router_case(
    rt: &'static Runtime,
    router: Router,
    uris: Vec<Uri>,
    headers: &'static [(String, String)],
) -> Case {
    let mut k = 0usize;
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                let mut request = Request::get(uris[k % uris.len()].clone())
                    .header("host", "127.0.0.1:3000")
                    .header("user-agent", "bench/1");
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                k = k.wrapping_add(1);
                drive(&router, request.body(Body::empty()).expect("request")).await;
                // As a server's connection task does between requests: lets
                // the runtime run what the request spawned (the body idle
                // timeout's watchdog, which ends once the body has ended).
                tokio::task::yield_now().await;
            }
        })
    })
}

/// How far a table may grow and still count as flat: 10% (issue 16 item 5).
const FLAT: f64 = 1.10;

/// The verdict line of a table: `flat within 10%: yes|no (largest ratio R
/// at WHERE)`, computed from `ratios` (label, ratio to the smallest case).
/// `scripts/bench` copies it into BENCHMARKS.md as printed.
fn verdict(what: &str, ratios: &[(String, f64)]) -> String {
    let (at, largest) = ratios
        .iter()
        .cloned()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    format!(
        "{what}flat within 10%: {} (largest ratio {largest:.2} at {at})",
        if largest <= FLAT { "yes" } else { "no" }
    )
}

/// A table of cases with their time and ratio to the first case, as a
/// Markdown table (`scripts/bench` copies it into BENCHMARKS.md), and its
/// verdict.
fn ratio_rows(title: &str, column: &str, unit: &str, cases: &[(String, Case)], nanos: &[f64]) {
    table!("\n{title}\n");
    let first = cases
        .first()
        .and_then(|(name, _)| name.split_once('/'))
        .map_or("", |(_, p)| p.split('_').next().unwrap_or(p));
    table!("| {column} | ns/{unit} | ratio to {first} |");
    table!("|---:|---:|---:|");
    let mut ratios = Vec::new();
    for ((name, _), ns) in cases.iter().zip(nanos) {
        // `keyed_breakers/100` -> `100`, `telltale/20_captured` -> `20`.
        let label = name
            .split_once('/')
            .map_or(name.as_str(), |(_, p)| p.split('_').next().unwrap_or(p));
        let ratio = ns / nanos[0];
        table!("| {label} | {ns:.0} | {ratio:.2} |");
        ratios.push((format!("{label} {column}"), ratio));
    }
    table!("\n{}", verdict("", &ratios));
}

/// Table (a): route templates.
fn routes(c: &mut Criterion, rt: &'static Runtime) {
    let mut cases: Vec<(String, Case)> = Vec::new();
    for &count in &COUNTS {
        let uris: Vec<Uri> = (0..count)
            .map(|i| format!("/r{i}/items/42").parse().expect("uri"))
            .collect();
        let base = || {
            (0..count).fold(Router::new(), |r, i| {
                r.route(&format!("/r{i}/items/{{id}}"), get(hello))
            })
        };
        let telltale = {
            let _entered = rt.enter();
            base().layer(telltale_layer(None))
        };
        cases.push((
            format!("bare/{count}"),
            router_case(rt, base(), uris.clone(), &[]),
        ));
        cases.push((
            format!("telltale/{count}"),
            router_case(rt, telltale, uris, &[]),
        ));
    }
    // Warm up: every template once per case (metric series and breaker state
    // exist before measuring), then a few thousand more requests.
    for (_, run) in &mut cases {
        run(table_size(COUNTS[COUNTS.len() - 1] + 2_000));
    }
    stacks::metrics().run_upkeep();
    let nanos = interleaved(&mut cases);
    table!(
        "\ncost_growth routes: distinct route templates `/r{{i}}/items/{{id}}`, requests cycling \
         over all, full telltale stack vs the bare router with the same templates (median \
         ns/request of interleaved rounds; added = telltale - bare, so axum's own route lookup \
         is taken out)\n"
    );
    table!("| templates | bare ns | telltale ns | added ns | added, ratio to 1 |");
    table!("|---:|---:|---:|---:|---:|");
    let added0 = nanos[1] - nanos[0];
    let mut ratios = Vec::new();
    for (i, &count) in COUNTS.iter().enumerate() {
        let (b, t) = (nanos[2 * i], nanos[2 * i + 1]);
        let ratio = (t - b) / added0;
        table!("| {count} | {b:.0} | {t:.0} | {:.0} | {ratio:.2} |", t - b);
        ratios.push((format!("{count} templates"), ratio));
    }
    table!("\n{}", verdict("added time ", &ratios));
    criterion(c, "routes", &mut cases);
}

/// Table (b): breakers in a keyed registry.
fn breakers(c: &mut Criterion) {
    let mut cases: Vec<(String, Case)> = Vec::new();
    for &count in &COUNTS {
        let registry = Registry::breakers(
            CircuitBreaker::builder("keyed").sliding_window(SlidingWindow::Count(100)),
            2 * COUNTS[COUNTS.len() - 1],
            Duration::from_secs(3_600),
        )
        .expect("valid registry");
        let mut svc = ServiceBuilder::new()
            .layer(KeyedBreakerLayer::new(registry.clone(), keyed::Host))
            .service_fn(|_req: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            });
        let uris: Vec<Uri> = (0..count)
            .map(|i| format!("http://h{i}.test/").parse().expect("uri"))
            .collect();
        let mut k = 0usize;
        let run: Case = Box::new(move |n| {
            for _ in 0..n {
                ready(&mut svc);
                let request = Request::builder()
                    .uri(uris[k % uris.len()].clone())
                    .body(String::new())
                    .expect("request");
                k = k.wrapping_add(1);
                black_box(now(svc.call(request)).expect("answered"));
            }
        });
        cases.push((format!("keyed_breakers/{count}"), run));
        // Every key created before measuring.
        (cases.last_mut().expect("pushed").1)(table_size(count + 1_000));
        assert_eq!(registry.len(), count.min(table_size(count + 1_000)));
    }
    let nanos = interleaved(&mut cases);
    ratio_rows(
        "cost_growth breakers: breakers in a keyed registry (`Registry::breakers`, by host), \
         calls cycling over all, each through `KeyedBreakerLayer` to a service that answers at \
         once (median ns/call of interleaved rounds; ratio to 1 breaker)",
        "breakers",
        "call",
        &cases,
        &nanos,
    );
    criterion(c, "breakers", &mut cases);
}

/// Table (c): 0 vs 20 captured request headers.
fn headers(c: &mut Criterion, rt: &'static Runtime) {
    let headers: &'static [(String, String)] = Vec::leak(
        (0..HEADERS)
            .map(|i| (format!("x-bench-{i:02}"), format!("value-{i:02}-abcdefgh")))
            .collect(),
    );
    let capturing = ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .capture_request_headers(headers.iter().map(|(name, _)| name.clone()))
        .build()
        .expect("valid telemetry layer");
    let uris = vec![Uri::from_static(stacks::ROUTE)];
    let base = || Router::new().route(stacks::ROUTE, get(hello));
    let (plain, capture) = {
        let _entered = rt.enter();
        (
            base().layer(telltale_layer(None)),
            base().layer(telltale_layer(Some(capturing))),
        )
    };
    let mut cases: Vec<(String, Case)> = vec![
        (
            "telltale/0_captured".into(),
            router_case(rt, plain, uris.clone(), headers),
        ),
        (
            format!("telltale/{HEADERS}_captured"),
            router_case(rt, capture, uris, headers),
        ),
    ];
    for (_, run) in &mut cases {
        run(table_size(2_000));
    }
    let nanos = interleaved(&mut cases);
    ratio_rows(
        &format!(
            "cost_growth headers: full telltale stack, request with {HEADERS} headers, 0 or \
             {HEADERS} of them captured with `capture_request_headers` (median ns/request of \
             interleaved rounds; ratio to 0 captured)"
        ),
        "captured",
        "request",
        &cases,
        &nanos,
    );
    criterion(c, "headers", &mut cases);
}

/// OTLP/HTTP bytes received by the discarding receiver.
static OTLP_BYTES: AtomicU64 = AtomicU64::new(0);

/// A local OTLP/HTTP trace receiver that counts the bytes it receives and
/// answers an empty `ExportTraceServiceResponse`. Returns its URL.
fn receiver(rt: &Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let app = Router::new().route(
        "/v1/traces",
        post(|body: Bytes| async move {
            OTLP_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
            (
                [(http::header::CONTENT_TYPE, "application/x-protobuf")],
                Bytes::new(),
            )
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}/v1/traces")
}

fn pipeline(otlp: Option<&str>) -> Telemetry {
    let mut limits = SpanLimits::default();
    limits.attribute_value_length = Some(VALUE_LENGTH_LIMIT);
    let mut builder = Telemetry::builder()
        .service_name("cost-growth")
        .log_format(LogFormat::None)
        .span_limits(limits);
    if let Some(endpoint) = otlp {
        builder = builder.otlp(endpoint, Protocol::HttpProtobuf);
    }
    builder.build().expect("valid pipeline")
}

/// A case creating and ending `n` spans with `value` as attribute; with
/// `flush`, the pipeline is flushed every [`FLUSH_EVERY`] spans and at the end.
fn span_case(telemetry: &'static Telemetry, value: &'static str, flush: bool) -> Case {
    Box::new(move |n| {
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            for i in 1..=n {
                tracing::info_span!("work", payload = value).in_scope(|| {});
                if flush && i % FLUSH_EVERY == 0 {
                    telemetry.guard().force_flush().expect("flush");
                }
            }
        });
        if flush {
            telemetry.guard().force_flush().expect("flush");
        }
    })
}

/// Table (d): flight recorder and export cost per span vs attribute size.
fn attribute_size(c: &mut Criterion, server: &Runtime) {
    let endpoint = receiver(server);
    let mut cases: Vec<(String, Case)> = Vec::new();
    let mut pipelines = Vec::new();
    for &len in &ATTRIBUTE_SIZES {
        let value: &'static str = String::leak("a".repeat(len));
        let recorder: &'static Telemetry = Box::leak(Box::new(pipeline(None)));
        let export: &'static Telemetry = Box::leak(Box::new(pipeline(Some(&endpoint))));
        cases.push((
            format!("flight_recorder/{len}B"),
            span_case(recorder, value, false),
        ));
        cases.push((
            format!("recorder_and_otlp/{len}B"),
            span_case(export, value, true),
        ));
        pipelines.push((len, recorder, export));
    }
    for (_, run) in &mut cases {
        run(table_size(1_000));
    }
    // What one span keeps: the recorder's size estimate and the attribute as
    // recorded (cut to the limit).
    let mut kept = Vec::new();
    for (len, recorder, _) in &pipelines {
        let fr = recorder.flight_recorder().expect("flight recorder on");
        let span = fr.recent(1).pop().expect("a recorded span");
        let payload = span.attribute("payload").expect("payload attribute");
        let recorded = payload.as_str().chars().count();
        assert_eq!(recorded, (*len).min(VALUE_LENGTH_LIMIT as usize));
        kept.push(fr.bytes() as f64 / fr.len() as f64);
    }
    let mut wire = Vec::new();
    for (_, _, export) in &pipelines {
        let stats = &export.guard().export_stats()[0];
        let (bytes, spans) = (OTLP_BYTES.load(Ordering::Relaxed), stats.exported());
        assert_eq!(stats.dropped(), 0, "no span dropped");
        assert!(spans > 0, "spans exported");
        wire.push((bytes, spans));
    }
    let nanos = interleaved(&mut cases);
    // Bytes on the wire per span, measured on a fresh run of each export case.
    let n = table_size(1_000);
    let on_wire: Vec<f64> = (0..ATTRIBUTE_SIZES.len())
        .map(|i| {
            let before = OTLP_BYTES.load(Ordering::Relaxed);
            (cases[2 * i + 1].1)(n);
            (OTLP_BYTES.load(Ordering::Relaxed) - before) as f64 / n as f64
        })
        .collect();
    table!(
        "\ncost_growth attribute_size: one span with one string attribute, value length limit \
         {VALUE_LENGTH_LIMIT} characters (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`), through \
         `Telemetry::builder()`: flight recorder alone, and flight recorder + OTLP/HTTP export \
         to a local receiver that discards, flushed every {FLUSH_EVERY} spans (median ns/span \
         of interleaved rounds; ratios to 16 B; bytes on the wire from {n} more spans per size)\n"
    );
    table!(
        "| attribute bytes | recorder ns/span | ratio to 16 B | recorder + OTLP ns/span | \
         ratio to 16 B | recorder bytes/span (estimate) | OTLP bytes/span received |"
    );
    table!("|---:|---:|---:|---:|---:|---:|---:|");
    for (i, &len) in ATTRIBUTE_SIZES.iter().enumerate() {
        let (r, e) = (nanos[2 * i], nanos[2 * i + 1]);
        table!(
            "| {len} | {r:.0} | {:.2} | {e:.0} | {:.2} | {:.0} | {:.0} |",
            r / nanos[0],
            e / nanos[1],
            kept[i],
            on_wire[i]
        );
    }
    // From the limit on, what a span costs and keeps must stop growing.
    let at_limit = ATTRIBUTE_SIZES
        .iter()
        .position(|&len| len >= VALUE_LENGTH_LIMIT as usize)
        .expect("a size at or above the limit");
    let from_limit = |values: &dyn Fn(usize) -> f64| -> Vec<(String, f64)> {
        (at_limit..ATTRIBUTE_SIZES.len())
            .map(|i| {
                (
                    format!("{} B", ATTRIBUTE_SIZES[i]),
                    values(i) / values(at_limit),
                )
            })
            .collect()
    };
    let limit = ATTRIBUTE_SIZES[at_limit];
    table!(
        "\n{}",
        verdict(
            &format!("from the limit on (ratio to {limit} B): recorder time "),
            &from_limit(&|i| nanos[2 * i]),
        )
    );
    table!(
        "{}",
        verdict(
            &format!("from the limit on (ratio to {limit} B): recorder + OTLP time "),
            &from_limit(&|i| nanos[2 * i + 1]),
        )
    );
    table!(
        "{}",
        verdict(
            &format!("from the limit on (ratio to {limit} B): recorder bytes/span "),
            &from_limit(&|i| kept[i]),
        )
    );
    table!(
        "{}",
        verdict(
            &format!("from the limit on (ratio to {limit} B): OTLP bytes/span "),
            &from_limit(&|i| on_wire[i]),
        )
    );
    black_box(wire);
    criterion(c, "attribute_size", &mut cases);
}

fn main() {
    let rt: &'static Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    ));
    let server = multi_thread_runtime(1);
    stacks::metrics();
    let (dispatch, provider) = stacks::subscriber(false);
    let mut criterion = Criterion::default().configure_from_args();
    report!(
        "\ncost_growth on {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    tracing::dispatcher::with_default(&dispatch, || {
        if selected("routes") {
            routes(&mut criterion, rt);
        }
        if selected("breakers") {
            breakers(&mut criterion);
        }
        if selected("headers") {
            headers(&mut criterion, rt);
        }
    });
    if selected("attribute_size") {
        attribute_size(&mut criterion, &server);
    }
    criterion.final_summary();
    provider.shutdown().expect("tracer provider shutdown");
}
