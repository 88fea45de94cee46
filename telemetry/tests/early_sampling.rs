//! Sampling before the span (`telltale_telemetry::sampling`): with a
//! `SamplerLayer` in the subscriber, a request the sampler drops gets no span
//! at all, yet keeps the trace ID W3C Trace Context gives it (on its log
//! lines, on the spans of its handler, on outgoing `traceparent` headers with
//! the sampled flag off); a kept root is decided once, on the trace ID it
//! keeps.
//!
//! Real servers on 127.0.0.1: a hyper client calls an axum server behind
//! `ServerTelemetryLayer`; its handler opens a span of its own, logs, and
//! calls a second server through `ClientTelemetryLayer`, which records the
//! `traceparent` it receives.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
use support::harness::Harness;
use support::hop::{Hyper, hyper_client, serve, values};
use support::otel::Captured;
use telltale_telemetry::layer::client::ClientTelemetryLayer;
use telltale_telemetry::layer::server::{RequestLog, ServerTelemetryLayer};
use telltale_telemetry::propagation::TraceParent;
use telltale_telemetry::{LogFormat, Profile, Telemetry};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PID: &str = "00f067aa0ba902b7";

/// The server under test and what its downstream call carried.
struct App {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Vec<String>>,
    client: Hyper,
}

impl App {
    async fn start(server: ServerTelemetryLayer) -> App {
        let (tx, seen) = mpsc::unbounded_channel();
        let downstream = serve(Router::new().route(
            "/seen",
            get(move |headers: HeaderMap| {
                let _ = tx.send(values(&headers, "traceparent"));
                async { "seen" }
            }),
        ))
        .await;
        let outbound = ServiceBuilder::new()
            .layer(ClientTelemetryLayer::builder().build().unwrap())
            .service(hyper_client());
        let app = Router::new()
            .route(
                "/orders/{id}",
                get(move || {
                    let outbound = outbound.clone();
                    async move {
                        tracing::info_span!("load order").in_scope(|| {
                            tracing::info!("loading the order");
                        });
                        let req = Request::get(format!("http://{downstream}/seen"))
                            .body(Full::default())
                            .unwrap();
                        let res = outbound.oneshot(req).await.unwrap();
                        res.into_body().collect().await.unwrap();
                        "order"
                    }
                }),
            )
            .layer(server);
        App {
            addr: serve(app).await,
            seen,
            client: hyper_client(),
        }
    }

    /// Sends a request with `headers`; returns the downstream `traceparent`.
    async fn send(&mut self, headers: &[(&str, &str)]) -> TraceParent {
        let mut req = Request::get(format!("http://{}/orders/7", self.addr))
            .body(Full::<Bytes>::default())
            .unwrap();
        for (name, value) in headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let res = self.client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        let seen = self.seen.recv().await.unwrap();
        assert_eq!(seen.len(), 1, "one traceparent: {seen:?}");
        TraceParent::parse(&seen[0]).expect("a valid traceparent")
    }
}

fn trace_id(tp: &TraceParent) -> String {
    tp.trace_id().to_string()
}

fn parent_id(tp: &TraceParent) -> String {
    tp.parent_id().to_string()
}

fn sampled(tp: &TraceParent) -> bool {
    tp.is_sampled()
}

#[tokio::test]
async fn a_dropped_root_builds_no_span_and_sends_a_new_unsampled_trace_on() {
    let h = Harness::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));
    let mut app = App::start(h.server().build().unwrap()).await;
    let first = app.send(&[]).await;
    let second = app.send(&[]).await;
    for tp in [&first, &second] {
        assert!(!sampled(tp), "{tp}");
        assert_ne!(trace_id(tp), "0".repeat(32));
    }
    assert_ne!(trace_id(&first), trace_id(&second), "a new trace each");
    assert!(h.spans().is_empty(), "no span exported: {:?}", h.spans());
}

#[tokio::test]
async fn a_dropped_child_continues_its_unsampled_parents_trace() {
    let h = Harness::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let mut app = App::start(h.server().build().unwrap()).await;
    let tp = app
        .send(&[("traceparent", &format!("00-{TID}-{PID}-00"))])
        .await;
    assert_eq!(trace_id(&tp), TID);
    assert_ne!(parent_id(&tp), PID, "the outgoing call has its own span ID");
    assert!(!sampled(&tp));
    assert!(h.spans().is_empty(), "no span exported: {:?}", h.spans());

    // The same service keeps a sampled parent's trace, with every span.
    let tp = app
        .send(&[("traceparent", &format!("00-{TID}-{PID}-01"))])
        .await;
    assert_eq!(trace_id(&tp), TID);
    assert!(sampled(&tp));
    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    let client = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    assert_eq!(server.span_context.trace_id().to_string(), TID);
    assert_eq!(server.parent_span_id.to_string(), PID);
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(parent_id(&tp), client.span_context.span_id().to_string());
    assert_eq!(server.name, "GET /orders/{id}");
    assert!(
        h.spans().iter().any(|s| s.name == "load order"),
        "the handler's span is kept too"
    );
}

/// A ratio sampler is applied once per root, on the trace ID the request
/// keeps: a trace is sent on sampled exactly when the ratio rule samples its
/// ID, and exactly those traces are exported.
#[tokio::test]
async fn a_kept_root_is_decided_once_on_its_own_trace_id() {
    let ratio = Sampler::TraceIdRatioBased(0.5);
    let h = Harness::with_sampler(Sampler::ParentBased(Box::new(ratio.clone())));
    let mut app = App::start(h.server().build().unwrap()).await;
    let mut kept = Vec::new();
    let mut dropped = 0;
    for _ in 0..64 {
        let tp = app.send(&[]).await;
        let id: TraceId = tp.trace_id();
        let rule = ratio.should_sample(None, id, "x", &SpanKind::Server, &[], &[]);
        let by_rule = rule.decision == SamplingDecision::RecordAndSample;
        assert_eq!(sampled(&tp), by_rule, "{tp}");
        if by_rule {
            kept.push(trace_id(&tp));
        } else {
            dropped += 1;
        }
    }
    // 64 fair coins: both sides come up (probability 1 - 2^-63).
    assert!(!kept.is_empty() && dropped > 0, "{} kept", kept.len());
    let servers = h.wait_spans(SpanKind::Server, kept.len()).await;
    let mut exported: Vec<String> = servers
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    exported.sort();
    kept.sort();
    assert_eq!(exported, kept);
}

/// Through `Telemetry` (as `init` builds it): an unsampled request's log
/// lines, the handler's and the request line, carry its trace ID; nothing
/// reaches the flight recorder.
#[tokio::test(flavor = "current_thread")]
async fn an_unsampled_requests_lines_carry_its_trace_id() {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .sampler(telltale_telemetry::Sampler::ParentBasedAlwaysOff)
        .log_format(LogFormat::Json(Profile::OpenTelemetry))
        .writer(logs.clone())
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let _guard = telltale_testkit::set_default(telemetry.dispatch().clone());
    let server = ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .build()
        .unwrap();
    let mut app = App::start(server).await;
    let tp = app
        .send(&[("traceparent", &format!("00-{TID}-{PID}-00"))])
        .await;
    assert_eq!(trace_id(&tp), TID);
    let lines: Vec<serde_json::Value> = logs
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let handler = lines
        .iter()
        .find(|l| l["message"] == "loading the order")
        .expect("the handler's line");
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished")
        .expect("the request line");
    for line in [handler, finished] {
        assert_eq!(line["trace_id"], TID, "{line}");
    }
    assert_eq!(finished["http.route"], "/orders/{id}");
    assert_eq!(finished["http.response.status_code"], 200);
    assert!(recorder.recent(10).is_empty(), "no span recorded");
}
