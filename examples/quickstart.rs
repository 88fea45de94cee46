//! axum quick start: one `init()`, one `.layer(telltale::stack().layer())`.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Serves on 127.0.0.1 (a free port), calls itself three times, prints what
//! the flight recorder and `/metrics` saw, and exits.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::telemetry::metrics::{RedConfig, install_prometheus, metrics_router};
use telltale::telemetry::{LogFormat, Telemetry};

async fn hello(Path(name): Path<String>) -> String {
    // Log lines inside the request carry trace_id and correlation_id.
    tracing::info!(%name, "saying hello");
    format!(
        "hello {name} (request {})",
        telltale::correlation::current().expect("set by the stack")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Telemetry from OTEL_* / TELLTALE_* (flight recorder when no OTLP
    //    endpoint is set). Quiet logs here; unset to get JSON lines.
    let guard = Telemetry::builder()
        .env(&Env::process())?
        .service_name("quickstart")
        .log_format(LogFormat::None)
        .init()?;
    // 2. Prometheus exposition for the RED metrics.
    let metrics = install_prometheus(&RedConfig::default())?;
    // 3. The stack: span + metrics, correlation ID, (breaker, bulkhead,) chaos.
    let app = Router::new()
        .route("/hello/{name}", get(hello))
        .layer(telltale::ServerStack::from_env()?.layer())
        .merge(metrics_router(metrics));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    for (i, name) in ["ada", "grace", "linus"].into_iter().enumerate() {
        let req = http::Request::get(format!("http://{addr}/hello/{name}"))
            .header("x-correlation-id", format!("quickstart-{i}"))
            .body(Empty::new())?;
        let res = client.request(req).await?;
        let echoed = res.headers()["x-correlation-id"].to_str()?.to_owned();
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "GET /hello/{name} -> {} (x-correlation-id: {echoed})",
            String::from_utf8_lossy(&body)
        );
    }

    let res = client
        .request(http::Request::get(format!("http://{addr}/metrics")).body(Empty::new())?)
        .await?;
    let text = res.into_body().collect().await?.to_bytes();
    println!("\n/metrics (request counts):");
    for line in String::from_utf8_lossy(&text).lines() {
        if line.starts_with("http_server_request_duration_seconds_count") {
            println!("  {line}");
        }
    }

    if let Some(recorder) = guard.flight_recorder() {
        println!("\nflight recorder, span of quickstart-1:");
        for span in recorder.by_correlation_id("quickstart-1") {
            println!("  {}", span.to_json());
        }
    }
    Ok(())
}
