//! Cost of telltale-telemetry's pieces, in the same run as the peers a user
//! would otherwise pick:
//!
//! - one log line inside two spans: telltale's JSON formatter (which reads
//!   the OpenTelemetry IDs and flattens span fields) vs tracing-subscriber's
//!   JSON formatter (flattened event, current span) on the same
//!   OpenTelemetry layer, and vs no log output;
//! - one span created and ended: into the flight recorder, into telltale's
//!   bounded OTLP queue with a dead collector (the drop path), vs the SDK's
//!   `BatchSpanProcessor`, vs a subscriber without OpenTelemetry.
//!
//! Heap allocations per operation are counted with `stats_alloc` after
//! warm-up and printed.

use std::alloc::System;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_telemetry::{LogFormat, Profile, Protocol, Telemetry};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(dispatch: &Dispatch, op: &dyn Fn()) -> f64 {
    const N: usize = 1000;
    tracing::dispatcher::with_default(dispatch, || {
        for _ in 0..100 {
            op();
        }
        let region = Region::new(GLOBAL);
        for _ in 0..N {
            op();
        }
        region.change().allocations as f64 / N as f64
    })
}

fn log_line() {
    tracing::info!(order_id = 42, status = "paid", "order loaded");
}

fn telltale(format: LogFormat) -> Telemetry {
    Telemetry::builder()
        .service_name("bench")
        .log_format(format)
        .writer(std::io::sink)
        .build()
        .unwrap()
}

fn peer_json() -> (Dispatch, SdkTracerProvider) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(InMemorySpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::sink),
        );
    (Dispatch::new(subscriber), provider)
}

fn bench_log_lines(c: &mut Criterion) {
    let json = telltale(LogFormat::Json(Profile::OpenTelemetry));
    let ecs = telltale(LogFormat::Json(Profile::ElasticCommonSchema));
    let none = telltale(LogFormat::None);
    let (peer, _provider) = peer_json();
    let cases: [(&str, &Dispatch); 4] = [
        ("telltale_json_otel", json.dispatch()),
        ("telltale_json_ecs", ecs.dispatch()),
        ("tracing_subscriber_json", &peer),
        ("no_log_output", none.dispatch()),
    ];
    let mut group = c.benchmark_group("log_line_in_two_spans");
    for (name, dispatch) in cases {
        tracing::dispatcher::with_default(dispatch, || {
            let outer = tracing::info_span!(
                "request",
                http.route = "/orders/{id}",
                correlation_id = "corr-1"
            );
            let _outer = outer.enter();
            let inner = tracing::info_span!("db", db.system = "postgresql");
            let _inner = inner.enter();
            group.bench_function(name, |b| b.iter(log_line));
            println!(
                "allocations per log line, {name}: {:.1}",
                allocations(dispatch, &log_line)
            );
        });
    }
    group.finish();
}

fn span() {
    black_box(tracing::info_span!("work", k = 1)).in_scope(|| {});
}

fn bench_spans(c: &mut Criterion) {
    let recorder = telltale(LogFormat::None);
    // A collector address where nothing listens: every span goes through the
    // bounded queue, and once it is full, through the counted drop path.
    let dead = Telemetry::builder()
        .otlp("http://127.0.0.1:9", Protocol::Grpc)
        .otlp_timeout(Duration::from_millis(100))
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    let sdk_provider = SdkTracerProvider::builder()
        .with_batch_exporter(InMemorySpanExporter::default())
        .build();
    let sdk_batch = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(sdk_provider.tracer("bench"))),
    );
    let bare = Dispatch::new(tracing_subscriber::registry());
    let cases: [(&str, &Dispatch); 4] = [
        ("telltale_flight_recorder", recorder.dispatch()),
        ("telltale_otlp_queue_dead_collector", dead.dispatch()),
        ("sdk_batch_span_processor", &sdk_batch),
        ("no_opentelemetry", &bare),
    ];
    let mut group = c.benchmark_group("span_start_end");
    for (name, dispatch) in cases {
        tracing::dispatcher::with_default(dispatch, || {
            group.bench_function(name, |b| b.iter(span));
        });
        println!(
            "allocations per span, {name}: {:.1}",
            allocations(dispatch, &span)
        );
    }
    group.finish();
    let _ = sdk_provider.shutdown();
}

criterion_group!(benches, bench_log_lines, bench_spans);
criterion_main!(benches);
