//! Outbound propagation with hyper-util: a `frontend` service calls a
//! `backend` service through `ClientStack` (CLIENT span, `traceparent`,
//! `x-correlation-id`, breaker, timeout); both are served with `ServerStack`.
//!
//! ```text
//! cargo run --example client_propagation
//! ```
//!
//! Calls the frontend twice, prints what the backend received and the one
//! trace the three spans of each request form, and exits.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::resilience::CircuitBreaker;
use telltale::stack::{ClientStack, ClientStackService};
use telltale::telemetry::{LogFormat, Telemetry};
use tower::ServiceExt;

type Backend = (
    ClientStackService<Client<HttpConnector, Empty<Bytes>>>,
    String,
);

/// The backend shows which headers reached it.
async fn backend(headers: HeaderMap) -> String {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "backend saw x-correlation-id={} traceparent={}",
        h("x-correlation-id"),
        h("traceparent")
    )
}

/// The frontend calls the backend while serving: the ID and trace go along.
async fn frontend(State((client, url)): State<Backend>) -> String {
    let req = http::Request::get(url)
        .body(Empty::new())
        .expect("valid request");
    match client.oneshot(req).await {
        Ok(res) => match res.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(e) => format!("backend body failed: {e}"),
        },
        Err(e) => format!("backend call failed: {e}"),
    }
}

async fn serve(app: Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = Telemetry::builder()
        .env(&Env::process())?
        .service_name("client-propagation")
        .log_format(LogFormat::None)
        .init()?;
    let backend_addr = serve(
        Router::new()
            .route("/data", get(backend))
            .layer(telltale::stack().layer()),
    )
    .await?;

    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = tower::ServiceBuilder::new()
        .layer(
            ClientStack::new()
                .timeout(Duration::from_secs(2))
                .breaker(CircuitBreaker::builder("backend").build()?)
                .layer(),
        )
        .service(hyper.clone());
    let state: Backend = (client, format!("http://{backend_addr}/data"));
    let frontend_addr = serve(
        Router::new()
            .route("/", get(frontend))
            .with_state(state)
            .layer(telltale::stack().layer()),
    )
    .await?;

    for id in ["order-1", "order-2"] {
        let req = http::Request::get(format!("http://{frontend_addr}/"))
            .header("x-correlation-id", id)
            .body(Empty::new())?;
        let body = hyper
            .request(req)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        println!("{id}: {}", String::from_utf8_lossy(&body));
    }

    if let Some(recorder) = guard.flight_recorder() {
        // Spans end with their response bodies; give the last one a moment.
        for _ in 0..100 {
            if recorder.by_correlation_id("order-2").len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for id in ["order-1", "order-2"] {
            println!("\ntrace of {id}:");
            for span in recorder.by_correlation_id(id).iter().rev() {
                println!(
                    "  trace {} span {} parent {:<16} {:?} {}",
                    span.trace_id(),
                    span.span_id(),
                    span.parent_span_id()
                        .map_or("-".to_owned(), |p| p.to_string()),
                    span.kind(),
                    span.name()
                );
            }
        }
    }
    Ok(())
}
