//! Chaos from the environment: `TELLTALE_CHAOS` rules on the server stack,
//! injected faults tagged on the response (`x-telltale-chaos`) and the span.
//!
//! ```text
//! cargo run --example chaos_from_env
//! TELLTALE_CHAOS='in: 50% status(429, retry-after=1s)' TELLTALE_ENV=dev cargo run --example chaos_from_env
//! ```
//!
//! Without `TELLTALE_CHAOS` set, it uses
//! `in GET /orders/*: 30% delay(50ms..150ms); 20% status(503)` with seed 7.
//! Sends ten requests, prints each status, delay and chaos tag, and exits.

use std::time::Instant;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::chaos::Injector;
use telltale::core::config::Env;
use telltale::telemetry::{LogFormat, Telemetry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = Telemetry::builder()
        .env(&Env::process())?
        .service_name("chaos-from-env")
        .log_format(LogFormat::None)
        .init()?;
    let injector = if std::env::var_os("TELLTALE_CHAOS").is_some() {
        Injector::from_env()?
    } else {
        Injector::from_env_source(&Env::from_pairs([
            (
                "TELLTALE_CHAOS",
                "in GET /orders/*: 30% delay(50ms..150ms); 20% status(503)",
            ),
            ("TELLTALE_CHAOS_SEED", "7"),
            ("TELLTALE_ENV", "dev"),
        ]))?
    };
    println!(
        "chaos: {:?}, rules: {}",
        injector.status(),
        injector.rules()
    );
    if let Some(why) = injector.refusal() {
        println!("(refused: {why}; set TELLTALE_ENV=dev to allow it)");
    }

    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(telltale::ServerStack::new().chaos(&injector).layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for i in 0..10 {
        let started = Instant::now();
        let req = http::Request::get(format!("http://{addr}/orders/{i}"))
            .header("x-correlation-id", format!("chaos-{i}"))
            .body(Empty::new())?;
        let res = client.request(req).await?;
        let status = res.status();
        let tag = res
            .headers()
            .get("x-telltale-chaos")
            .map(|v| format!("injected by rule {}", v.to_str().unwrap_or("?")))
            .unwrap_or_else(|| "untouched".to_owned());
        res.into_body().collect().await?;
        println!(
            "GET /orders/{i} -> {status} in {:>5.1} ms  {tag}",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
