//! Server request layer overhead per request: telltale's single layer (spans
//! sampled in, sampled out, metrics only) against a bare axum router, tower-http's
//! `TraceLayer`, axum-prometheus's layer, axum-tracing-opentelemetry's
//! `OtelAxumLayer`, and those three stacked — in the same run. After criterion,
//! a table reports time and heap allocations per request, with ratios.
//!
//! Run: `cargo bench --bench request_layer -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::Criterion;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanProcessor};
use telltale_telemetry::layer::ServerTelemetryLayer;
use telltale_telemetry::metrics::{RedConfig, prometheus_builder};
use telltale_telemetry::sampling::{PresetTraceIds, SamplerLayer};
use tower::ServiceExt;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

mod support;
use support::{region, report, size};

/// Ends spans without exporting them: the cost measured is the layers', not an
/// exporter's.
#[derive(Debug)]
struct DropSpans;

impl SpanProcessor for DropSpans {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// A subscriber like `telltale_telemetry::init` builds: registry + OpenTelemetry.
fn subscriber(sampled: bool) -> Dispatch {
    let sampler = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(DropSpans)
        .with_sampler(sampler.clone())
        .with_id_generator(PresetTraceIds::default())
        .build();
    let tracer = provider.tracer("bench");
    // As `init` builds it: the sampler asked before spans are built
    // (`telltale_telemetry::sampling`), and the bridge with its
    // `tracing_attributes` off. Every stack in this bench runs on this same
    // subscriber.
    Dispatch::new(
        tracing_subscriber::registry()
            .with(SamplerLayer::new(sampler))
            .with(support::stacks::bridge(tracer)),
    )
}

async fn handler() -> &'static str {
    "hello"
}

fn base() -> Router {
    Router::new().route("/users/{id}", get(handler))
}

fn request() -> Request<Body> {
    Request::get("http://api.test/users/42?page=2")
        .header("user-agent", "bench/1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Body::empty())
        .unwrap()
}

async fn drive(router: &Router) {
    let response = router.clone().oneshot(request()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    black_box(body);
}

struct Config {
    name: &'static str,
    router: Router,
    dispatch: Dispatch,
}

fn configs() -> Vec<Config> {
    let sampled = subscriber(true);
    let unsampled = subscriber(false);
    let red = {
        let config = RedConfig::default();
        let recorder = prometheus_builder(&config).build_recorder();
        config.with_recorder(Arc::new(recorder))
    };
    let telltale = |tracing: bool| {
        ServerTelemetryLayer::builder()
            .red_config(red.clone())
            .tracing(tracing)
            .build()
            .unwrap()
    };
    // axum-prometheus installs its global recorder once.
    let (prometheus_layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let trace_layer = || {
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO))
            .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
    };
    let otel_axum = axum_tracing_opentelemetry::middleware::OtelAxumLayer::default;
    vec![
        Config {
            name: "bare",
            router: base(),
            dispatch: sampled.clone(),
        },
        Config {
            name: "no-op layer (axum's per-layer boxing)",
            router: base().layer(tower::layer::layer_fn(|inner| inner)),
            dispatch: sampled.clone(),
        },
        Config {
            name: "telltale (spans sampled in + metrics)",
            router: base().layer(telltale(true)),
            dispatch: sampled.clone(),
        },
        Config {
            name: "telltale (spans sampled out + metrics)",
            router: base().layer(telltale(true)),
            dispatch: unsampled,
        },
        Config {
            name: "telltale (metrics only)",
            router: base().layer(telltale(false)),
            dispatch: sampled.clone(),
        },
        Config {
            name: "tower-http TraceLayer",
            router: base().layer(trace_layer()),
            dispatch: sampled.clone(),
        },
        Config {
            name: "axum-prometheus",
            router: base().layer(prometheus_layer.clone()),
            dispatch: sampled.clone(),
        },
        Config {
            name: "axum-tracing-opentelemetry",
            router: base().layer(otel_axum()),
            dispatch: sampled.clone(),
        },
        Config {
            name: "peer stack (all three)",
            router: base()
                .layer(trace_layer())
                .layer(prometheus_layer)
                .layer(otel_axum()),
            dispatch: sampled,
        },
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, configs: &[Config]) {
    let mut group = c.benchmark_group("request_layer");
    for config in configs {
        tracing::dispatcher::with_default(&config.dispatch, || {
            group.bench_function(config.name, |b| {
                b.to_async(rt).iter(|| drive(&config.router));
            });
        });
    }
    group.finish();
}

struct Row {
    name: &'static str,
    nanos: f64,
    allocs: f64,
    bytes: f64,
}

/// Time and heap allocations per request, after a warm-up (label sets and
/// caches are prepared by then). Rounds are interleaved (every configuration
/// once per round, best round kept) so that load on the machine hits all
/// configurations alike.
fn measure(rt: &tokio::runtime::Runtime, configs: &[Config]) -> Vec<Row> {
    let (warm_up, n, rounds) = (size(2_000), size(10_000), size(7));
    let run = |config: &Config, n: usize| {
        tracing::dispatcher::with_default(&config.dispatch, || {
            rt.block_on(async {
                let region = region();
                let start = Instant::now();
                for _ in 0..n {
                    drive(&config.router).await;
                }
                (start.elapsed(), region.change())
            })
        })
    };
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|config| {
            run(config, warm_up);
            Row {
                name: config.name,
                nanos: f64::MAX,
                allocs: 0.0,
                bytes: 0.0,
            }
        })
        .collect();
    for _ in 0..rounds {
        for (config, row) in configs.iter().zip(rows.iter_mut()) {
            let (elapsed, stats) = run(config, n);
            row.nanos = row.nanos.min(elapsed.as_nanos() as f64 / n as f64);
            row.allocs = (stats.allocations + stats.reallocations) as f64 / n as f64;
            row.bytes = stats.bytes_allocated as f64 / n as f64;
        }
    }
    rows
}

fn report(rows: &[Row]) {
    let bare = rows[0].nanos;
    report!();
    report!("request_layer: per request (best of 7 interleaved rounds x 10000, after warm-up)");
    report!(
        "{:<42} {:>10} {:>9} {:>12} {:>12}",
        "configuration",
        "ns/req",
        "x bare",
        "allocs/req",
        "bytes/req"
    );
    for row in rows {
        report!(
            "{:<42} {:>10.0} {:>9.2} {:>12.1} {:>12.0}",
            row.name,
            row.nanos,
            row.nanos / bare,
            row.allocs,
            row.bytes
        );
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
    let full = find("telltale (spans sampled in + metrics)");
    let peers = find("peer stack (all three)");
    report!(
        "full telltale layer vs peer stack: {:.2}x the time (overhead over bare {:.2}x), {:.2}x the allocations",
        full.nanos / peers.nanos,
        (full.nanos - bare) / (peers.nanos - bare),
        full.allocs / peers.allocs
    );
}

fn main() {
    let rt = runtime();
    // axum-prometheus spawns its upkeep task when its recorder is installed.
    let configs = {
        let _entered = rt.enter();
        configs()
    };
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &rt, &configs);
    criterion.final_summary();
    report(&measure(&rt, &configs));
}
