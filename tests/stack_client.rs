//! `telltale::stack::ClientStack` around hyper-util's client, against real
//! servers on 127.0.0.1:0: correlation ID and trace context go out, the
//! breaker counts timeouts and injected faults, rejections are findable in
//! the boxed error.
//!
//! This test binary installs telemetry globally once (its own process).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::correlation::{CorrelationId, scope};
use telltale::resilience::{CircuitBreaker, Rejection, SlidingWindow, State};
use telltale::stack::{ClientStack, ClientStackService};
use telltale::telemetry::FlightRecorder;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

mod support;
use support::serve;

fn recorder() -> &'static FlightRecorder {
    support::recorder("client-stack-test")
}

type Stacked = ClientStackService<Client<HttpConnector, Full<Bytes>>>;

fn client(stack: &ClientStack) -> Stacked {
    let inner = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ServiceBuilder::new().layer(stack.layer()).service(inner)
}

fn request(addr: SocketAddr, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn correlation_id_and_traceparent_go_out_with_the_call() {
    recorder();
    let app = Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            format!("{}|{}", h("x-correlation-id"), h("traceparent"))
        }),
    );
    let addr = serve(app).await;
    let svc = client(&ClientStack::new());
    let id: CorrelationId = "client-out-1".parse().unwrap();
    let res = scope(id, svc.oneshot(request(addr, "/echo")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    let (cid, traceparent) = body.split_once('|').unwrap();
    assert_eq!(cid, "client-out-1");
    assert!(traceparent.starts_with("00-"), "{body}");
    // The CLIENT span's ID is the parent the server was given.
    let span_id = traceparent.split('-').nth(2).unwrap().to_owned();
    let mut found = false;
    for _ in 0..200 {
        found = recorder()
            .recent(1000)
            .iter()
            .any(|s| s.span_id().to_string() == span_id);
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(found, "no CLIENT span {span_id} recorded");
}

#[tokio::test]
async fn timeouts_are_breaker_failures_then_calls_are_rejected() {
    recorder();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let addr = serve(app).await;
    let breaker = CircuitBreaker::builder("client-timeouts")
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(60))
        .build()
        .unwrap();
    let stack = ClientStack::new()
        .timeout(Duration::from_millis(50))
        .breaker(breaker.clone());
    let svc = client(&stack);
    for _ in 0..2 {
        let err = svc
            .clone()
            .oneshot(request(addr, "/slow"))
            .await
            .unwrap_err();
        assert!(telltale::core::is_timeout(&*err), "{err}");
    }
    assert_eq!(breaker.state(), State::Open);
    let err = svc
        .clone()
        .oneshot(request(addr, "/slow"))
        .await
        .unwrap_err();
    assert!(matches!(
        telltale::resilience::Error::rejection_in(&*err),
        Some(Rejection::Open(_))
    ));
}

#[tokio::test]
async fn injected_outbound_faults_count_in_the_breaker() {
    recorder();
    let addr = serve(Router::new().route("/ok", get(|| async { "ok" }))).await;
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS", "out: status(503)"),
        ("TELLTALE_ENV", "dev"),
        ("TELLTALE_BREAKER_WINDOW", "4"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "2"),
        ("TELLTALE_BREAKER_OPEN_WAIT", "1m"),
        ("TELLTALE_CLIENT_TIMEOUT", "5s"),
    ]);
    let stack = ClientStack::from_env_source(&env, "flaky").unwrap();
    let breaker = stack.breaker_ref().unwrap().clone();
    let svc = client(&stack);
    for _ in 0..2 {
        let res = svc.clone().oneshot(request(addr, "/ok")).await.unwrap();
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("x-telltale-chaos"));
        // The breaker settles when the body ends.
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn tonic_channel_behind_the_client_stack() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    recorder();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(telltale::stack().layer())
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let breaker = CircuitBreaker::builder("grpc-client").build().unwrap();
    let stack = ClientStack::new().breaker(breaker.clone());
    let mut client = HealthClient::new(ServiceBuilder::new().layer(stack.layer()).service(channel));

    let id: CorrelationId = "grpc-client-1".parse().unwrap();
    let res = scope(id, client.check(HealthCheckRequest::default()))
        .await
        .unwrap();
    assert_eq!(res.get_ref().status(), ServingStatus::Serving);
    // The server echoed the ID the client stack sent.
    assert_eq!(
        res.metadata().get("x-correlation-id").unwrap(),
        "grpc-client-1"
    );

    // An open breaker fails the call before it leaves: UNAVAILABLE-like
    // status built by tonic from the boxed rejection.
    breaker.force_open();
    let status = client
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert!(status.message().contains("grpc-client"), "{status:?}");
}
