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
//! simple or the batch processor; or [`otlp_subscriber`]: the SDK's batch
//! processor and sampler in front of opentelemetry-otlp's exporter, for the
//! load test) and record metrics into the same Prometheus
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
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
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
    /// The full telltale server stack with spans off: RED metrics, the
    /// request log line, correlation and resilience only.
    TelltaleMetricsOnly,
    /// The full telltale server stack, its requests dropped by the sampler
    /// (they carry an unsampled `traceparent`, see [`Stack::traceparent`]).
    TelltaleSampledOut,
}

impl Stack {
    /// Every stack, bare first.
    pub(crate) const ALL: [Stack; 3] = [Stack::Bare, Stack::Telltale, Stack::Peers];

    /// [`ALL`](Self::ALL), and the telltale stack with spans off and with
    /// its requests sampled out (issue 16 item 1).
    #[allow(dead_code)]
    pub(crate) const WITH_SAMPLING: [Stack; 5] = [
        Stack::Bare,
        Stack::Telltale,
        Stack::Peers,
        Stack::TelltaleMetricsOnly,
        Stack::TelltaleSampledOut,
    ];

    /// The stack's name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare",
            Stack::Telltale => "telltale",
            Stack::Peers => "peers",
            Stack::TelltaleMetricsOnly => "telltale_metrics_only",
            Stack::TelltaleSampledOut => "telltale_sampled_out",
        }
    }

    /// The `traceparent` its requests carry: an unsampled caller's for the
    /// two stacks of item 1 (the parent-based sampler then drops the request;
    /// both carry it so that both parse the same headers), none otherwise.
    #[allow(dead_code)]
    pub(crate) fn traceparent(self) -> Option<&'static str> {
        match self {
            Stack::TelltaleMetricsOnly | Stack::TelltaleSampledOut => {
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
            }
            _ => None,
        }
    }

    /// One request to [`ROUTE`] as the full-stack bench and its allocation
    /// lock send it: a `Host` and a `User-Agent` header, and the stack's
    /// [`traceparent`](Self::traceparent) if it has one.
    #[allow(dead_code)]
    pub(crate) fn request(self) -> http::Request<axum::body::Body> {
        let mut request = http::Request::get(ROUTE)
            .header("host", "127.0.0.1:3000")
            .header("user-agent", "bench/1");
        if let Some(traceparent) = self.traceparent() {
            request = request.header("traceparent", traceparent);
        }
        request
            .body(axum::body::Body::empty())
            .expect("valid request")
    }

    /// [`request`](Self::request) through `router` (this stack's), checked to
    /// be answered `200` (the handler never fails).
    #[allow(dead_code)]
    pub(crate) async fn answer(self, router: &Router) -> Response {
        use tower::ServiceExt as _;
        let response = router
            .clone()
            .oneshot(self.request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200, "{}", self.name());
        response
    }
}

async fn hello() -> &'static str {
    "Hello, World!"
}

fn base() -> Router {
    Router::new().route(ROUTE, get(hello))
}

/// The router of `stack`. Call it inside a tokio runtime context.
///
/// Each router is finished with `with_state(())`, as `axum::serve` does once
/// per server (`Router::into_make_service`): without it, axum turns every
/// route into a service again on each request, applying the stack's
/// `Router::layer` per request, which no real server pays.
pub(crate) fn router(stack: Stack) -> Router {
    let router = match stack {
        Stack::Bare => base(),
        Stack::Telltale | Stack::TelltaleSampledOut => telltale_router(true),
        Stack::TelltaleMetricsOnly => telltale_router(false),
        Stack::Peers => peer_router(),
    };
    router.with_state(())
}

/// Generous limits: neither bulkhead nor breaker rejects in these runs.
const MAX_CONCURRENT: usize = 1024;
const MAX_WAIT: Duration = Duration::from_secs(1);
const WINDOW: usize = 100;

fn telltale_router(spans: bool) -> Router {
    use telltale::resilience::{Bulkhead, CircuitBreaker, SlidingWindow};
    let mut stack = telltale::stack::ServerStack::new();
    if !spans {
        let telemetry = telltale::telemetry::layer::ServerTelemetryLayer::builder()
            .tracing(false)
            .request_log(telltale::telemetry::layer::RequestLog::On)
            .build()
            .expect("valid telemetry layer");
        stack = stack.telemetry(telemetry);
    }
    let stack = stack
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

/// The global propagators `telltale_telemetry::init` installs by default
/// (W3C trace context and baggage, telltale's own). The peer layers read the
/// global propagator too, so both stacks parse incoming context alike.
fn propagators() {
    telltale_telemetry::propagation::Propagators::default().install();
}

/// A subscriber like `telltale_telemetry::init` builds: registry, an `info`
/// filter plus `otel::tracing=trace` (where axum-tracing-opentelemetry opens
/// its spans), tracing-opentelemetry with an SDK tracer sampling everything
/// in. Spans go to a discarding exporter through the SDK's
/// `BatchSpanProcessor` when `batch` (queued and exported by the SDK's
/// background thread, as a production server runs) or else its
/// `SimpleSpanProcessor` (exported on the request's thread when the span ends:
/// deterministic, and counted with the request). Also installs the
/// propagators `init` installs (W3C trace context and baggage, telltale's
/// own) globally; both stacks read incoming context through them.
pub(crate) fn subscriber(batch: bool) -> (Dispatch, SdkTracerProvider) {
    propagators();
    // Sampling as `init` sets it up: parent-based, asked before spans are
    // built (`telltale_telemetry::sampling`; the peer layers ignore it).
    let sampler = sampler(1.0);
    let builder = SdkTracerProvider::builder()
        .with_sampler(sampler.clone())
        .with_id_generator(telltale_telemetry::sampling::PresetTraceIds::default());
    let provider = if batch {
        builder.with_batch_exporter(DiscardSpans)
    } else {
        builder.with_simple_exporter(DiscardSpans)
    }
    .build();
    let sampler = telltale_telemetry::sampling::SamplerLayer::new(sampler);
    (
        dispatch(provider.tracer("full_stack"), Some(sampler)),
        provider,
    )
}

/// An OTLP span exporter whose exports run on a tokio runtime of their own.
///
/// The SDK's `BatchSpanProcessor` exports on its own thread with
/// `futures_executor::block_on`, but opentelemetry-otlp's HTTP client (hyper)
/// needs a tokio runtime; telltale's own pipeline has an export worker for
/// this, and this is the minimal equivalent for a bare SDK setup, written by
/// hand because neither crate ships one. Counts the spans exported
/// successfully ([`spans_exported`]) and those whose export failed
/// ([`spans_failed`]).
#[derive(Debug)]
struct OnRuntime {
    inner: std::sync::Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

/// Spans whose OTLP export failed, over every provider.
static SPANS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Spans whose export failed so far ([`otlp_subscriber`] only).
pub(crate) fn spans_failed() -> u64 {
    SPANS_FAILED.load(Ordering::Relaxed)
}

impl SpanExporter for OnRuntime {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let inner = self.inner.clone();
        let result = self
            .runtime
            .spawn(async move { inner.export(batch).await })
            .await
            .unwrap_or_else(|e| Err(OTelSdkError::InternalFailure(e.to_string())));
        let counter = if result.is_ok() {
            &SPANS_EXPORTED
        } else {
            &SPANS_FAILED
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built, before any export holds a
        // clone of the exporter.
        if let Some(inner) = std::sync::Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The sampler of [`otlp_subscriber`]: `parentbased_always_on` (the SDK's
/// default) at `ratio >= 1`, else `parentbased_traceidratio` with `ratio`.
/// Requests without a `traceparent` are roots, so the ratio decides.
pub(crate) fn sampler(ratio: f64) -> Sampler {
    let root = if ratio >= 1.0 {
        Sampler::AlwaysOn
    } else {
        Sampler::TraceIdRatioBased(ratio)
    };
    Sampler::ParentBased(Box::new(root))
}

/// Like [`subscriber`], but spans are sampled by [`sampler`]`(ratio)` and go
/// through the SDK's `BatchSpanProcessor` (default settings, or the
/// `OTEL_BSP_*` variables) to opentelemetry-otlp's OTLP/HTTP protobuf exporter
/// sending to `endpoint` (a full URL such as `http://127.0.0.1:4318/v1/traces`).
/// Exports run on `runtime` (see [`OnRuntime`]). As `telltale_telemetry::init`
/// does, the subscriber carries the sampler in a
/// `telltale_telemetry::sampling::SamplerLayer` and the provider takes its
/// trace IDs from `PresetTraceIds`, so telltale's request layer can ask the
/// sampler before it builds a span; the peer layers do not look for them (the
/// layer does nothing with spans or events, and the ID generator falls back
/// to random IDs). The same for every stack: the stacks differ only in the
/// spans they produce.
pub(crate) fn otlp_subscriber(
    endpoint: &str,
    ratio: f64,
    runtime: tokio::runtime::Handle,
) -> Result<(Dispatch, SdkTracerProvider), String> {
    use opentelemetry_otlp::WithExportConfig;
    propagators();
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("OTLP exporter for `{endpoint}`: {e}"))?
    };
    let sampler = sampler(ratio);
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler.clone())
        .with_id_generator(telltale_telemetry::sampling::PresetTraceIds::default())
        .with_batch_exporter(OnRuntime {
            inner: std::sync::Arc::new(exporter),
            runtime,
        })
        .build();
    let sampler = telltale_telemetry::sampling::SamplerLayer::new(sampler);
    Ok((
        dispatch(provider.tracer("full_stack"), Some(sampler)),
        provider,
    ))
}

/// The tracing → OpenTelemetry bridge as `telltale_telemetry::init` sets it,
/// for every stack alike: no code location, thread, target or busy/idle
/// attributes, and telltale's request log line kept out of the span events
/// (its span already holds every field).
pub(crate) fn bridge<S>(
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::Layer::with_filter(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_level(false),
        tracing_subscriber::filter::filter_fn(|meta| {
            !(meta.is_event() && meta.target() == telltale_telemetry::layer::request_log::TARGET)
        }),
    )
}

fn dispatch(
    tracer: opentelemetry_sdk::trace::SdkTracer,
    sampler: Option<telltale_telemetry::sampling::SamplerLayer>,
) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(
                // axum-tracing-opentelemetry opens its spans at TRACE on the
                // target `otel::tracing`; its docs enable that target.
                Targets::new()
                    .with_default(tracing::Level::INFO)
                    .with_target("otel::tracing", tracing::Level::TRACE),
            )
            .with(sampler)
            .with(bridge(tracer))
            // As `telltale_telemetry::init` declares it: the subscriber's
            // formatters are telltale's (here: none), so telltale's request
            // layers give their attributes to the OpenTelemetry span
            // directly. The peer layers never ask; for them this layer does
            // nothing (an unfiltered layer beside `sampler`, which has no
            // filter either: no change to the level hint).
            .with(telltale_telemetry::DirectRequestAttributes),
    )
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
