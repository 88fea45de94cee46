//! The layers on real tonic servers and channels, with tonic-health's
//! generated Health service (no protoc needed).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use support::assert_uuid_v7;
use telltale_correlation::client::InjectCorrelationLayer;
use telltale_correlation::{CorrelationId, current, scope};
use telltale_correlation::{CorrelationLayer, CorrelationLayerBuilder};
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

/// What the server saw: `current()` in the inner `call`, and the extension.
type Seen = Arc<Mutex<Vec<(Option<CorrelationId>, Option<CorrelationId>)>>>;

async fn start(builder: CorrelationLayerBuilder) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = Arc::clone(&seen);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layers = ServiceBuilder::new()
        .layer(builder.build().unwrap())
        .map_request(move |req: http::Request<tonic::body::Body>| {
            let ext = req.extensions().get::<CorrelationId>().cloned();
            record.lock().unwrap().push((current(), ext));
            req
        })
        .into_inner();
    let server = Server::builder()
        .layer(layers)
        .add_service(health)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.unwrap() });
    (addr, seen)
}

async fn client(
    addr: SocketAddr,
) -> HealthClient<telltale_correlation::InjectCorrelationService<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let channel = ServiceBuilder::new()
        .layer(InjectCorrelationLayer::new())
        .service(channel);
    HealthClient::new(channel)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn current_id_reaches_the_server_and_is_echoed_in_metadata() {
    let (addr, seen) = start(CorrelationLayer::builder()).await;
    let mut health = client(addr).await;
    let id: CorrelationId = "grpc-call-1".parse().unwrap();

    let res = scope(id.clone(), health.check(check())).await.unwrap();
    assert_eq!(
        res.metadata().get("x-correlation-id").unwrap(),
        "grpc-call-1"
    );
    assert_eq!(res.into_inner().status, 1); // SERVING
    assert_eq!(*seen.lock().unwrap(), [(Some(id.clone()), Some(id))]);
}

#[tokio::test]
async fn metadata_set_by_the_caller_wins_over_the_task_local() {
    let (addr, seen) = start(CorrelationLayer::builder()).await;
    let mut health = client(addr).await;
    let mut req = tonic::Request::new(check());
    req.metadata_mut()
        .insert("x-correlation-id", "explicit-7".parse().unwrap());
    let res = scope("ambient".parse().unwrap(), health.check(req))
        .await
        .unwrap();
    assert_eq!(
        res.metadata().get("x-correlation-id").unwrap(),
        "explicit-7"
    );
    assert_eq!(
        seen.lock().unwrap()[0].0.as_ref().unwrap().as_str(),
        "explicit-7"
    );
}

#[tokio::test]
async fn calls_without_an_id_get_a_generated_one() {
    let (addr, seen) = start(CorrelationLayer::builder()).await;
    let mut health = client(addr).await;
    let res = health.check(check()).await.unwrap();
    let echoed = res
        .metadata()
        .get("x-correlation-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_uuid_v7(echoed);
    assert_eq!(seen.lock().unwrap()[0].0.as_ref().unwrap().as_str(), echoed);
}

#[tokio::test]
async fn required_header_missing_is_invalid_argument() {
    let (addr, seen) = start(CorrelationLayer::builder().require_header(true)).await;
    let mut health = client(addr).await;
    let status = health.check(check()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "missing required header x-correlation-id (or x-request-id)"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the service was not called"
    );

    let mut req = tonic::Request::new(check());
    req.metadata_mut()
        .insert("x-correlation-id", "bad/id".parse().unwrap());
    let status = health.check(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid x-correlation-id header: disallowed character at position 4"
    );

    let res = scope("present-1".parse().unwrap(), health.check(check()))
        .await
        .unwrap();
    assert_eq!(res.metadata().get("x-correlation-id").unwrap(), "present-1");
}
