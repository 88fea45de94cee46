//! A real tonic server (tonic-health's Health service) on 127.0.0.1 behind the
//! inbound chaos layer, and a tonic client behind the outbound one.

use std::net::SocketAddr;

use telltale_chaos::{ChaosLayer, Injector};
use telltale_core::config::Env;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

mod support;

use support::{serve_health as serve, within_five_sigma};

/// Guarded by `deployment.environment` in `OTEL_RESOURCE_ATTRIBUTES`.
fn from_env(rules: &str) -> Injector {
    Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", rules),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging"),
    ]))
    .unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_grpc_faults_at_the_configured_rate() {
    let injector =
        from_env("in POST /grpc.health.v1.Health/*: 20% grpc(UNAVAILABLE, message=\"chaos\")");
    let addr = serve(&injector).await;
    let mut client = HealthClient::new(channel(addr).await);
    const N: usize = 2000;
    let mut unavailable = 0;
    for _ in 0..N {
        match client.check(check()).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable);
                assert_eq!(status.message(), "chaos");
                unavailable += 1;
            }
        }
    }
    assert!(within_five_sigma(unavailable, N, 0.2), "{unavailable}/{N}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_rules_make_a_grpc_dependency_fail_without_reaching_it() {
    let server_side = Injector::disabled();
    let addr = serve(&server_side).await;
    let injector =
        from_env("out /grpc.health.v1.Health/Check: 10% grpc(DEADLINE_EXCEEDED); 5* abort");
    let channel = ServiceBuilder::new()
        .layer(ChaosLayer::outbound(&injector))
        .service(channel(addr).await);
    let mut client = HealthClient::new(channel);
    const N: usize = 2000;
    let (mut deadline, mut aborted) = (0, 0);
    for _ in 0..N {
        match client.check(check()).await {
            Ok(res) => assert_eq!(res.into_inner().status, 1),
            Err(status) if status.code() == Code::DeadlineExceeded => deadline += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::Unknown, "{status:?}");
                aborted += 1;
            }
        }
    }
    assert!(within_five_sigma(deadline, N, 0.1), "{deadline}/{N}");
    assert_eq!(
        aborted, 5,
        "the first five abort, then the count is used up"
    );
}

#[tokio::test]
async fn a_killed_injector_lets_every_grpc_call_through() {
    let injector = from_env("in: grpc(UNAVAILABLE)");
    let addr = serve(&injector).await;
    let mut client = HealthClient::new(channel(addr).await);
    assert_eq!(
        client.check(check()).await.unwrap_err().code(),
        Code::Unavailable
    );
    injector.handle().kill();
    for _ in 0..100 {
        client.check(check()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fault_hangs_until_the_callers_deadline() {
    let injector = from_env("in: timeout");
    let addr = serve(&injector).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(std::time::Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let err = client.check(check()).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );
    // The server drops the hung request when the client resets the stream,
    // releasing its active-fault slot.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while injector.active() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the slot is released once the caller gives up");
}
