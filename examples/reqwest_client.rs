//! A service calling its dependency with reqwest through
//! `telltale::reqwest::ReqwestStack`: the correlation ID and `traceparent`
//! go out, the call is a CLIENT span and a sample of
//! `http_client_request_duration_seconds`, and the backend's breaker opens
//! on 5xx answers and then refuses calls without sending them.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```
//!
//! Serves a backend on a free 127.0.0.1 port, calls it, prints what it
//! observed, and exits.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use telltale::core::config::Env;
use telltale::correlation::{CorrelationId, scope};
use telltale::reqwest::{ReqwestStack, reqwest, reqwest_middleware};
use telltale::resilience::keyed::Registry;
use telltale::resilience::{CircuitBreaker, SlidingWindow};
use telltale::telemetry::metrics::{RedConfig, install_prometheus};
use telltale::telemetry::{LogFormat, Telemetry};

/// The backend shows which headers reached it; `/flaky` always fails.
fn backend() -> Router {
    Router::new()
        .route(
            "/data",
            get(|headers: HeaderMap| async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                format!(
                    "x-correlation-id={} traceparent={}",
                    h("x-correlation-id"),
                    h("traceparent")
                )
            }),
        )
        .route("/flaky", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(telltale::stack().layer())
}

/// Runs the scenario and returns what it observed, one line each.
pub(crate) async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let guard = Telemetry::builder()
        .env(&Env::process())?
        .service_name("reqwest-client")
        .log_format(LogFormat::None)
        .init()?;
    let metrics = install_prometheus(&RedConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, backend()).await });

    // One breaker per host: opens when half of at least 2 calls to that host
    // failed (the /data call counts as the first, a success).
    let breakers = Registry::breakers(
        CircuitBreaker::builder("backend")
            .sliding_window(SlidingWindow::Count(4))
            .minimum_calls(2)
            .wait_in_open(Duration::from_secs(30)),
        100,
        Duration::from_secs(600),
    )?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            ReqwestStack::from_env("backend")?
                .timeout(Duration::from_secs(2))
                .breakers(breakers),
        )
        .build();

    // The ID of the request being served (here: set by hand) goes out.
    let id: CorrelationId = "order-1".parse()?;
    let response = scope(id, client.get(format!("http://{addr}/data")).send()).await?;
    let body = response.text().await?;
    out.push(format!("backend saw {body}"));

    if let Some(recorder) = guard.flight_recorder() {
        // The backend's span ends with its response body; bounded wait.
        for _ in 0..200 {
            if recorder.by_correlation_id("order-1").len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for span in recorder.by_correlation_id("order-1").iter().rev() {
            out.push(format!(
                "span {:?} {} trace {} id {} parent {}",
                span.kind(),
                span.name(),
                span.trace_id(),
                span.span_id(),
                span.parent_span_id()
                    .map_or("-".to_owned(), |p| p.to_string())
            ));
        }
    }

    for _ in 0..3 {
        match client.get(format!("http://{addr}/flaky")).send().await {
            Ok(response) => out.push(format!("/flaky answered {}", response.status())),
            Err(err) => match telltale::reqwest::rejection(&err) {
                Some(_) => out.push(format!("/flaky refused, not sent: {err}")),
                None => out.push(format!("/flaky failed: {err}")),
            },
        }
    }

    for line in metrics.render().lines() {
        if line.starts_with("http_client_request_duration_seconds_count") {
            out.push(line.to_owned());
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in run().await? {
        println!("{line}");
    }
    Ok(())
}
