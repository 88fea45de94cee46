//! Benchmark: how long the debug page takes to render with a full flight
//! recorder (the default capacity, 2048 spans: 512 traces of a SERVER span
//! and three CLIENT spans) and 100 circuit breakers (each with transitions),
//! 10 bulkheads, an armed chaos injector and RED for 50 routes.
//!
//! - `page`: the page with no lookup (RED, breakers, bulkheads, chaos, the
//!   recent, slowest and failed traces, the dependency map);
//! - `page_with_lookup`: the same plus one trace's waterfall found by its
//!   correlation ID.
//!
//! Run: `cargo bench --bench debug_page -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use telltale::debug::DebugSurface;
use telltale::resilience::{Bulkhead, CircuitBreaker};
use telltale::telemetry::metrics::{RedConfig, prometheus_builder};
use telltale::telemetry::{DEFAULT_FLIGHT_RECORDER_CAPACITY, FlightRecorder};

fn full_recorder() -> FlightRecorder {
    let recorder = FlightRecorder::new(DEFAULT_FLIGHT_RECORDER_CAPACITY);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(recorder.clone())
        .build();
    let tracer = provider.tracer("bench");
    let t0 = SystemTime::now();
    for i in 0..DEFAULT_FLIGHT_RECORDER_CAPACITY / 4 {
        let start = t0 + Duration::from_millis(i as u64);
        let root = tracer
            .span_builder(format!("GET /orders/{{id}}/{}", i % 50))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([KeyValue::new("correlation_id", format!("order-{i}"))])
            .start(&tracer);
        let cx = opentelemetry::Context::current_with_span(root);
        for (j, host) in ["payments", "inventory", "fraud"].into_iter().enumerate() {
            let mut child = tracer
                .span_builder("POST")
                .with_kind(SpanKind::Client)
                .with_start_time(start + Duration::from_micros(100 * j as u64))
                .with_attributes([
                    KeyValue::new("server.address", host),
                    KeyValue::new("server.port", 443),
                ])
                .start_with_context(&tracer, &cx);
            if i % 10 == 0 {
                child.set_status(Status::error("503"));
            }
            child.end_with_timestamp(
                start + Duration::from_micros(100 * j as u64 + 800 + (i % 7) as u64 * 50),
            );
        }
        cx.span()
            .end_with_timestamp(start + Duration::from_millis(3));
    }
    recorder
}

fn bench(c: &mut Criterion) {
    let recorder = full_recorder();
    assert_eq!(recorder.len(), DEFAULT_FLIGHT_RECORDER_CAPACITY);
    for i in 0..100 {
        let breaker = CircuitBreaker::builder(format!("dependency-{i:03}"))
            .build()
            .unwrap();
        if i % 3 == 0 {
            breaker.force_open();
            breaker.reset();
        }
        telltale::debug::register_breaker(&breaker);
    }
    for i in 0..10 {
        telltale::debug::register_bulkhead(
            &Bulkhead::builder(format!("pool-{i}"))
                .max_concurrent(32)
                .build()
                .unwrap(),
        );
    }
    let injector = telltale::chaos::Injector::builder()
        .rules(
            "in GET /orders/*: 10% delay(50ms..100ms); 1% status(503) | out: 5% abort"
                .parse()
                .unwrap(),
        )
        .build()
        .unwrap();
    telltale::debug::register_injector(&injector, "server (inbound)");

    let config = RedConfig::default();
    let prometheus = prometheus_builder(&config).build_recorder();
    let handle = prometheus.handle();
    metrics::with_local_recorder(&prometheus, || {
        for route in 0..50 {
            for status in ["200", "503"] {
                let h = metrics::histogram!(
                    "http_server_request_duration_seconds",
                    "http_request_method" => "GET",
                    "http_route" => format!("/orders/{{id}}/{route}"),
                    "http_response_status_code" => status,
                    "url_scheme" => "http",
                );
                for k in 0..20 {
                    h.record(0.001 * f64::from(k));
                }
            }
        }
    });

    let surface = DebugSurface::new()
        .flight_recorder(&recorder)
        .metrics(handle);
    let page = surface.render_page(None);
    println!(
        "debug page: {} KB with 2048 spans, 100 breakers",
        page.len() / 1024
    );

    let mut group = c.benchmark_group("debug_page");
    group.bench_function("page", |b| b.iter(|| black_box(surface.render_page(None))));
    group.bench_function("page_with_lookup", |b| {
        b.iter(|| black_box(surface.render_page(Some("order-200"))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
