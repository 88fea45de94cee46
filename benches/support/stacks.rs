//! The three server stacks compared by `benches/full_stack.rs` and served by
//! the load-test target `scripts/loadtest/load_target.rs`: one definition,
//! included by the target with `#[path]` (the stacks need peer crates that
//! only the root dev-dependencies have, so they cannot live in a library
//! crate).
//!
//! - `bare`: an axum hello-world router.
//! - `telltale`: the same router with the facade's preset
//!   `telltale::stack::ServerStack` (what a user writes), as one
//!   `Router::layer` (axum boxes each `layer` call once, so both stacks get
//!   one). Its order, outermost first: telemetry `ServerTelemetryLayer` (span + RED
//!   metrics) → `CorrelationLayer` → errors to responses (rejections → `503`,
//!   no allocation) → `CircuitBreaker` → `Bulkhead` → `ChaosLayer` (inbound,
//!   chaos disabled).
//! - `peers`: what a user combines instead, also as one `Router::layer`:
//!   tower-http `SetRequestId` → axum-tracing-opentelemetry `OtelAxumLayer` →
//!   tower-http `TraceLayer` (span and response event at INFO) → tower-http
//!   `PropagateRequestId` → axum-prometheus `PrometheusMetricLayer` → axum
//!   `HandleErrorLayer` (rejections → `503`; the way axum users make
//!   tower-resilience's errors into responses, one boxed future per request)
//!   → tower-resilience circuit breaker → tower-resilience bulkhead.
//!
//! Both instrumented stacks export through the same kind of OpenTelemetry SDK
//! tracer provider (see [`subscriber`]: an exporter that discards, behind the
//! simple or the batch processor) and record metrics into the same Prometheus
//! recorder ([`metrics`]: installed as the global `metrics` recorder, with
//! explicit buckets for both crates' duration histograms). Both stacks'
//! breakers use a count window of 100 calls and both bulkheads 1024 slots with
//! a 1 s max wait: neither rejects here, so what is measured is admitting and
//! settling every call.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::ServiceBuilder;
use tracing::Dispatch;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

/// The one route every stack serves.
pub(crate) const ROUTE: &str = "/hello";

/// A server stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stack {
    /// The bare axum router.
    Bare,
    /// The full telltale server stack.
    Telltale,
    /// The full peer stack.
    Peers,
}

impl Stack {
    /// Every stack, bare first.
    pub(crate) const ALL: [Stack; 3] = [Stack::Bare, Stack::Telltale, Stack::Peers];

    /// The stack's name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare",
            Stack::Telltale => "telltale",
            Stack::Peers => "peers",
        }
    }
}

async fn hello() -> &'static str {
    "Hello, World!"
}

fn base() -> Router {
    Router::new().route(ROUTE, get(hello))
}

/// The router of `stack`. Call it inside a tokio runtime context.
pub(crate) fn router(stack: Stack) -> Router {
    match stack {
        Stack::Bare => base(),
        Stack::Telltale => telltale_router(),
        Stack::Peers => peer_router(),
    }
}

/// Generous limits: neither bulkhead nor breaker rejects in these runs.
const MAX_CONCURRENT: usize = 1024;
const MAX_WAIT: Duration = Duration::from_secs(1);
const WINDOW: usize = 100;

fn telltale_router() -> Router {
    use telltale::resilience::{Bulkhead, CircuitBreaker, SlidingWindow};
    let stack = telltale::stack::ServerStack::new()
        .breaker(
            CircuitBreaker::builder("hello")
                .sliding_window(SlidingWindow::Count(WINDOW as u32))
                .build()
                .expect("valid breaker"),
        )
        .bulkhead(
            Bulkhead::builder("hello")
                .max_concurrent(MAX_CONCURRENT)
                .max_wait(MAX_WAIT)
                .build()
                .expect("valid bulkhead"),
        )
        .chaos(&telltale::chaos::Injector::disabled());
    base().layer(stack.layer())
}

fn peer_router() -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
    let breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .sliding_window_size(WINDOW)
        .build()
        .expect("valid breaker");
    let bulkhead = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(MAX_CONCURRENT)
        .max_wait_duration(MAX_WAIT)
        .build()
        .expect("valid bulkhead");
    base().layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(axum_prometheus::PrometheusMetricLayer::new())
            .layer(HandleErrorLayer::new(peer_error))
            .layer(breaker)
            .layer(bulkhead),
    )
}

type PeerError = tower_resilience::circuitbreaker::CircuitBreakerError<
    tower_resilience::bulkhead::BulkheadServiceError<Infallible>,
>;

/// An open circuit or a full bulkhead becomes `503` (as in telltale's stack).
async fn peer_error(_error: PeerError) -> Response {
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

/// Spans handed to [`DiscardSpans`] so far, over every provider.
static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);

/// Spans exported so far (to compare spans per request between stacks).
pub(crate) fn spans_exported() -> u64 {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

/// A span exporter that counts and drops: the cost measured is producing and
/// handing over spans, identical per span for both stacks, not a network.
#[derive(Debug)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        SPANS_EXPORTED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(batch);
        Ok(())
    }
}

/// A subscriber like `telltale_telemetry::init` builds: registry, an `info`
/// filter plus `otel::tracing=trace` (where axum-tracing-opentelemetry opens
/// its spans), tracing-opentelemetry with an SDK tracer sampling everything
/// in. Spans go to a discarding exporter through the SDK's
/// `BatchSpanProcessor` when `batch` (queued and exported by the SDK's
/// background thread, as a production server runs) or else its
/// `SimpleSpanProcessor` (exported on the request's thread when the span ends:
/// deterministic, and counted with the request). Also installs the W3C
/// trace-context propagator globally; both stacks read incoming context
/// through it.
pub(crate) fn subscriber(batch: bool) -> (Dispatch, SdkTracerProvider) {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let builder = SdkTracerProvider::builder();
    let provider = if batch {
        builder.with_batch_exporter(DiscardSpans)
    } else {
        builder.with_simple_exporter(DiscardSpans)
    }
    .build();
    let tracer = provider.tracer("full_stack");
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                // axum-tracing-opentelemetry opens its spans at TRACE on the
                // target `otel::tracing`; its docs enable that target.
                Targets::new()
                    .with_default(tracing::Level::INFO)
                    .with_target("otel::tracing", tracing::Level::TRACE),
            )
            .with(tracing_opentelemetry::layer().with_tracer(tracer)),
    );
    (dispatch, provider)
}

/// The process's Prometheus recorder, built here (no HTTP listener) and
/// installed as the global `metrics` recorder on first use: telltale's RED
/// metrics, its resilience and correlation counters and axum-prometheus all
/// record into it. telltale's histograms get their buckets from
/// `prometheus_builder`; axum-prometheus's duration histogram gets the buckets
/// its own `pair()` would give it.
pub(crate) fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let config = telltale_telemetry::metrics::RedConfig::default();
            let recorder = telltale_telemetry::metrics::prometheus_builder(&config)
                .set_buckets_for_metric(
                    Matcher::Full(axum_prometheus::AXUM_HTTP_REQUESTS_DURATION_SECONDS.to_owned()),
                    axum_prometheus::utils::SECONDS_DURATION_BUCKETS,
                )
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("no other global metrics recorder");
            handle
        })
        .clone()
}
