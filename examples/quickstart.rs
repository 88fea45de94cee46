//! A service with telltale: spans, RED metrics, a log line per request and
//! the debug page.

use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Traces (OTLP, or the in-process flight recorder), JSON logs, propagators.
    let telemetry = telltale::telemetry::init()?;
    // RED metrics for Prometheus.
    let metrics = telltale::telemetry::metrics::install_prometheus(&Default::default())?;
    // The debug page (127.0.0.1:9797, TELLTALE_DEBUG_ADDR): RED per route,
    // breakers, bulkheads, chaos, recent traces, the dependency map.
    let debug = telltale::debug::DebugSurface::from_env()?
        .flight_recorder(telemetry.flight_recorder())
        .metrics(metrics.clone())
        .serve()
        .await?;
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        // Span + metrics, correlation ID, breaker, bulkhead, chaos: one layer,
        // configured from TELLTALE_* variables.
        .layer(telltale::ServerStack::from_env()?.layer())
        .merge(telltale::telemetry::metrics::metrics_router(metrics));
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("serving http://{addr}/orders/42");
    println!("metrics http://{addr}/metrics");
    println!("debug page {}", debug.url());
    axum::serve(listener, app).await?;
    Ok(())
}
