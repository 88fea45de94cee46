//! Every status `http::StatusCode` can hold (100 to 999, what hyper accepts
//! from the wire) flows through every layer of both presets, HTTP and gRPC:
//! telemetry (span and RED metrics), correlation, breaker, bulkhead, chaos
//! and the rejection layer. Nothing panics; the span reports the status and
//! classifies it: codes 600 to 999 are ones no client can interpret, so they
//! are span errors with `error.type` the code, on both sides (OpenTelemetry
//! HTTP span conventions: "5xx, as well as any other code the client failed
//! to interpret").
//!
//! In process (tower `oneshot`) for all 900 codes, then on real servers
//! (axum behind `ServerStack`, a hyper client; `ClientStack` to a real
//! upstream) for codes of the 600 range and 999.
//!
//! This test binary installs telemetry globally once (its own process).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{SpanKind, Status};
use telltale::core::config::Env;
use telltale::stack::{ClientStack, ServerStack};
use telltale::telemetry::{FlightRecorder, RecordedSpan};
use tower::{ServiceBuilder, ServiceExt, service_fn};

mod support;
use support::serve;

fn recorder() -> &'static FlightRecorder {
    support::recorder("every-status-test")
}

/// Every guard configured: a breaker that records every call but never
/// rejects (`metrics_only`, so all 900 codes reach the handler), a bulkhead,
/// chaos armed with a rule answering 999 on `/chaos`.
fn env() -> Env<std::collections::BTreeMap<String, String>> {
    Env::from_pairs([
        ("TELLTALE_BREAKER_STATE", "metrics_only"),
        ("TELLTALE_BREAKER_WINDOW", "20"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "1"),
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "8"),
        ("TELLTALE_CHAOS", "any /chaos: status(999)"),
        ("TELLTALE_ENV", "test"),
    ])
}

/// What the span of a response with status `n` must say on `kind`'s side.
fn expected_error_type(n: u16, kind: &SpanKind) -> Option<String> {
    match n {
        400..=499 if matches!(kind, SpanKind::Client) => Some(n.to_string()),
        500..=999 => Some(n.to_string()),
        _ => None,
    }
}

fn attr(span: &RecordedSpan, key: &str) -> Option<String> {
    span.attribute(key).map(ToString::to_string)
}

/// The span of `kind` in the trace whose `traceparent` is `traceparent`
/// (bounded wait: it ends when the response body has ended).
async fn span_of(traceparent: &str, kind: SpanKind) -> Arc<RecordedSpan> {
    let trace_id = traceparent.split('-').nth(1).expect("a trace id");
    for _ in 0..500 {
        if let Some(span) = recorder()
            .trace_hex(trace_id)
            .unwrap_or_default()
            .into_iter()
            .find(|s| *s.kind() == kind)
        {
            return span;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {kind:?} span in trace {trace_id}");
}

/// Checks the span of a plain HTTP exchange that ended with status `n`.
fn check_http_span(span: &RecordedSpan, n: u16) {
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some(n.to_string().as_str()),
        "{n}"
    );
    let expected = expected_error_type(n, span.kind());
    assert_eq!(attr(span, "error.type"), expected, "{n} {:?}", span.kind());
    assert_eq!(
        matches!(span.status(), Status::Error { .. }),
        expected.is_some(),
        "{n} {:?}: {:?}",
        span.kind(),
        span.status()
    );
}

fn grpc_request(traceparent: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::post("http://upstream.test/pkg.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

/// A handler answering status `n` (plain, or a trailers-only gRPC response
/// with `grpc-status: 0` when the request is gRPC), remembering the
/// `traceparent` it received.
fn answer(req: &Request<impl Sized>, n: u16) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"x")));
    *res.status_mut() = StatusCode::from_u16(n).unwrap();
    if telltale::core::grpc::is_grpc(req.headers()) {
        res.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        res.headers_mut()
            .insert("grpc-status", "0".parse().unwrap());
    }
    if let Some(tp) = req.headers().get("traceparent") {
        res.headers_mut().insert("x-seen-traceparent", tp.clone());
    }
    res
}

#[tokio::test]
async fn every_status_flows_through_the_full_server_stack() {
    recorder();
    let stack = ServerStack::from_env_source(&env()).unwrap();
    let breaker = stack.breaker_ref().expect("configured").clone();
    let layer = stack.layer();
    for n in 100..=999u16 {
        for grpc in [false, true] {
            let handler =
                service_fn(
                    move |req: Request<_>| async move { Ok::<_, Infallible>(answer(&req, n)) },
                );
            let svc = ServiceBuilder::new().layer(layer.clone()).service(handler);
            // A client's trace context: the SERVER span joins its trace.
            let trace_id = format!("{:032x}", u128::from(n) << 1 | u128::from(grpc) | 1 << 100);
            let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
            let req = if grpc {
                grpc_request(Some(&traceparent))
            } else {
                Request::get("http://api.test/plain")
                    .header("traceparent", &traceparent)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            };
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status().as_u16(), n, "grpc={grpc}");
            res.into_body().collect().await.unwrap();
            let span = span_of(&traceparent, SpanKind::Server).await;
            if grpc {
                assert_eq!(
                    attr(&span, "http.response.status_code").as_deref(),
                    Some(n.to_string().as_str())
                );
                assert_eq!(attr(&span, "rpc.grpc.status_code").as_deref(), Some("0"));
                assert_eq!(attr(&span, "error.type"), None, "{n}");
            } else {
                check_http_span(&span, n);
            }
        }
    }
    // The breaker classified all of them (metrics only: it never rejected).
    assert_eq!(breaker.state(), telltale::resilience::State::MetricsOnly);

    // Chaos answering 999 goes through the same layers.
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|req: Request<_>| async move {
                Ok::<_, Infallible>(answer(&req, 200))
            }));
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let res = svc
        .oneshot(
            Request::get("http://api.test/chaos")
                .header("traceparent", traceparent)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 999);
    res.into_body().collect().await.unwrap();
    check_http_span(&*span_of(traceparent, SpanKind::Server).await, 999);
}

#[tokio::test]
async fn every_status_flows_through_the_full_client_stack() {
    recorder();
    let stack = ClientStack::from_env_source(&env(), "every-status").unwrap();
    let layer = stack.layer();
    for n in 100..=999u16 {
        for grpc in [false, true] {
            let transport = service_fn(move |req: Request<Full<Bytes>>| async move {
                Ok::<_, Infallible>(answer(&req, n))
            });
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(transport);
            let req = if grpc {
                grpc_request(None)
            } else {
                Request::get("http://upstream.test/plain")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            };
            let res = svc.oneshot(req).await.unwrap();
            assert_eq!(res.status().as_u16(), n, "grpc={grpc}");
            let traceparent = res.headers()["x-seen-traceparent"]
                .to_str()
                .unwrap()
                .to_owned();
            res.into_body().collect().await.unwrap();
            let span = span_of(&traceparent, SpanKind::Client).await;
            if grpc {
                assert_eq!(attr(&span, "rpc.grpc.status_code").as_deref(), Some("0"));
                assert_eq!(attr(&span, "error.type"), None, "{n}");
            } else {
                check_http_span(&span, n);
            }
        }
    }
}

async fn hyper_get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// An axum app answering `/s/{n}` with status `n`.
fn status_router() -> Router {
    Router::new().route(
        "/s/{n}",
        get(
            |axum::extract::Path(n): axum::extract::Path<u16>| async move {
                (StatusCode::from_u16(n).unwrap(), "unusual")
            },
        ),
    )
}

const UNUSUAL: [u16; 5] = [600, 601, 650, 699, 999];

#[tokio::test]
async fn unusual_statuses_from_a_real_axum_handler_through_server_stack() {
    recorder();
    let stack = ServerStack::from_env_source(&env()).unwrap();
    let addr = serve(status_router().layer(stack.layer())).await;
    for n in UNUSUAL {
        let (status, headers, body) = hyper_get(addr, &format!("/s/{n}")).await;
        assert_eq!(status.as_u16(), n);
        assert_eq!(body, "unusual");
        let id = headers["x-correlation-id"].to_str().unwrap().to_owned();
        let mut found = None;
        for _ in 0..500 {
            found = recorder()
                .by_correlation_id(&id)
                .into_iter()
                .find(|s| *s.kind() == SpanKind::Server);
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let span = found.expect("server span");
        assert_eq!(span.name(), "GET /s/{n}");
        check_http_span(&span, n);
    }
    // The server still serves after all of them (no connection died).
    let (status, _, _) = hyper_get(addr, "/s/200").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unusual_statuses_from_a_real_upstream_through_client_stack() {
    recorder();
    let upstream = serve(status_router()).await;
    let stack = ClientStack::from_env_source(&env(), "unusual-upstream").unwrap();
    let breaker = stack.breaker_ref().expect("configured").clone();
    let client = ServiceBuilder::new()
        .layer(stack.layer())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    for n in UNUSUAL {
        let res = client
            .clone()
            .oneshot(
                Request::get(format!("http://{upstream}/s/{n}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), n);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "unusual");
        let span = {
            let mut found = None;
            for _ in 0..500 {
                found = recorder().recent(50).into_iter().find(|s| {
                    *s.kind() == SpanKind::Client
                        && attr(s, "url.full").as_deref()
                            == Some(format!("http://{upstream}/s/{n}").as_str())
                });
                if found.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            found.expect("client span")
        };
        check_http_span(&span, n);
        assert_eq!(
            attr(&span, "server.port"),
            Some(upstream.port().to_string())
        );
    }
    // The breaker counted them as failures (metrics only: it keeps admitting).
    assert_eq!(breaker.state(), telltale::resilience::State::MetricsOnly);
}
