//! Propagation across real services: A (axum) calls B (axum) through
//! hyper-util's client and C (tonic) through a channel, both wrapped in the
//! client layer. B and C see A's ID.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{assert_uuid_v7, get_at, serve};
use telltale_correlation::server::CorrelationLayer;
use telltale_correlation::{CorrelationId, current, in_current};
use telltale_correlation::{InjectCorrelationLayer, InjectCorrelationService};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service, ServiceBuilder, ServiceExt};

type Outbound = InjectCorrelationService<Client<HttpConnector, Empty<Bytes>>>;

#[derive(Clone)]
struct A {
    http: Outbound,
    b: SocketAddr,
    grpc: HealthClient<InjectCorrelationService<Channel>>,
}

async fn call_b(mut http: Outbound, b: SocketAddr) -> String {
    let req = Request::get(format!("http://{b}/whoami"))
        .body(Empty::new())
        .unwrap();
    let res = http.ready().await.unwrap().call(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// A's handler: calls B directly, from a spawned task, and C over gRPC.
async fn a_handler(State(a): State<A>) -> String {
    let direct = call_b(a.http.clone(), a.b).await;
    let spawned = tokio::spawn(in_current(call_b(a.http.clone(), a.b)))
        .await
        .unwrap();
    let mut grpc = a.grpc.clone();
    let res = grpc
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let from_c = res
        .metadata()
        .get("x-correlation-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mine = current().unwrap();
    format!("{mine}|{direct}|{spawned}|{from_c}")
}

async fn start_c(seen: Arc<Mutex<Vec<Option<CorrelationId>>>>) -> SocketAddr {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layers = ServiceBuilder::new()
        .layer(CorrelationLayer::new())
        .map_request(move |req: http::Request<tonic::body::Body>| {
            seen.lock().unwrap().push(current());
            req
        })
        .into_inner();
    let server = tonic::transport::Server::builder()
        .layer(layers)
        .add_service(health)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.unwrap() });
    addr
}

async fn start_all() -> (SocketAddr, Arc<Mutex<Vec<Option<CorrelationId>>>>) {
    // B reports the ID it was served under.
    let b = serve(
        Router::new()
            .route("/whoami", get(|| async { current().unwrap().to_string() }))
            .layer(CorrelationLayer::new()),
    )
    .await;
    let c_seen = Arc::new(Mutex::new(Vec::new()));
    let c = start_c(Arc::clone(&c_seen)).await;

    let http = ServiceBuilder::new()
        .layer(InjectCorrelationLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let channel = Channel::from_shared(format!("http://{c}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let grpc = HealthClient::new(
        ServiceBuilder::new()
            .layer(InjectCorrelationLayer::new())
            .service(channel),
    );
    let a = serve(
        Router::new()
            .route("/", get(a_handler))
            .with_state(A { http, b, grpc })
            .layer(CorrelationLayer::new()),
    )
    .await;
    (a, c_seen)
}

#[tokio::test]
async fn b_and_c_see_the_id_a_was_called_with() {
    let (a, c_seen) = start_all().await;
    let (res, body) = get_at(a, "/", &[("x-correlation-id", "journey-1")]).await;
    assert_eq!(res.headers()["x-correlation-id"], "journey-1");
    assert_eq!(body, "journey-1|journey-1|journey-1|journey-1");
    let seen: Vec<_> = c_seen
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["journey-1"]);
}

#[tokio::test]
async fn an_id_generated_by_a_is_the_one_b_and_c_see() {
    let (a, c_seen) = start_all().await;
    let (res, body) = get_at(a, "/", &[]).await;
    let generated = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_uuid_v7(&generated);
    assert_eq!(body, [generated.as_str(); 4].join("|"));
    assert_eq!(
        c_seen.lock().unwrap()[0].as_ref().unwrap().as_str(),
        generated
    );
}

#[tokio::test]
async fn without_in_current_a_spawned_call_carries_no_id() {
    // The reason `in_current` exists: task-locals do not cross `tokio::spawn`.
    let b = serve(
        Router::new()
            .route("/whoami", get(|| async { current().unwrap().to_string() }))
            .layer(CorrelationLayer::new()),
    )
    .await;
    let http: Outbound = ServiceBuilder::new()
        .layer(InjectCorrelationLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let id: CorrelationId = "outer-1".parse().unwrap();
    let (inside, lost) = telltale_correlation::scope(id, async {
        let inside = tokio::spawn(in_current(call_b(http.clone(), b)))
            .await
            .unwrap();
        let lost = tokio::spawn(call_b(http.clone(), b)).await.unwrap();
        (inside, lost)
    })
    .await;
    assert_eq!(inside, "outer-1");
    assert_uuid_v7(&lost);
}
