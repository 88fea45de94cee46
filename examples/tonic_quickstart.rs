//! tonic quick start: the server stack on `Server::builder().layer(...)`,
//! around tonic-health's `Health` service.
//!
//! ```text
//! cargo run --example tonic_quickstart
//! ```
//!
//! Serves on 127.0.0.1 (a free port), checks its health three times (the
//! third time with its breaker forced open: `UNAVAILABLE`), prints the spans
//! and exits.

use telltale::core::config::Env;
use telltale::resilience::CircuitBreaker;
use telltale::telemetry::layer::ServerTelemetryLayer;
use telltale::telemetry::{LogFormat, Telemetry};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = Telemetry::builder()
        .env(&Env::process())?
        .service_name("tonic-quickstart")
        .log_format(LogFormat::None)
        .init()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let breaker = CircuitBreaker::builder("health").build()?;
    let stack = telltale::ServerStack::new()
        // Health checks get no span by default (they are still counted).
        .telemetry(
            ServerTelemetryLayer::builder()
                .trace_health_checks(true)
                .build()?,
        )
        .breaker(breaker.clone());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(stack.layer())
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    println!("gRPC on http://{addr}");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    for i in 0..3 {
        if i == 2 {
            breaker.force_open();
        }
        let mut req = tonic::Request::new(HealthCheckRequest::default());
        req.metadata_mut()
            .insert("x-correlation-id", format!("health-{i}").parse()?);
        match client.check(req).await {
            Ok(res) => println!(
                "Check #{i}: {:?} (x-correlation-id: {:?})",
                res.get_ref().status(),
                res.metadata().get("x-correlation-id")
            ),
            Err(status) => println!("Check #{i}: {:?} {:?}", status.code(), status.message()),
        }
    }

    if let Some(recorder) = guard.flight_recorder() {
        // Spans end with their response bodies: wait (bounded) for the third.
        for _ in 0..100 {
            if recorder.recent(3).len() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        println!("\nspans:");
        for span in recorder.recent(3).iter().rev() {
            println!(
                "  {} {:?} grpc-status={:?} correlation_id={:?}",
                span.name(),
                span.status(),
                span.attribute("rpc.grpc.status_code")
                    .map(ToString::to_string),
                span.correlation_id()
            );
        }
    }
    Ok(())
}
