//! A circuit breaker around a flaky dependency, in the client stack: it opens
//! on failures, rejects at once while open, probes after the open wait, and
//! closes once the dependency is back.
//!
//! ```text
//! cargo run --example breaker
//! ```
//!
//! The dependency (a local axum server) fails while `healthy` is false. Prints
//! every call and every breaker transition (from `subscribe()`), and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::resilience::{
    BreakerEvent, CircuitBreaker, Rejection, SlidingWindow, State as BreakerState,
};
use telltale::stack::ClientStack;
use tower::ServiceExt;

async fn flaky(State(healthy): State<Arc<AtomicBool>>) -> StatusCode {
    if healthy.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let healthy = Arc::new(AtomicBool::new(false));
    let app = Router::new()
        .route("/", get(flaky))
        .with_state(healthy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let breaker = CircuitBreaker::builder("flaky-dependency")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_millis(200))
        .permitted_probes(2)
        .build()?;
    let mut events = breaker.subscribe();
    let client = tower::ServiceBuilder::new()
        .layer(
            ClientStack::new()
                .timeout(Duration::from_secs(1))
                .breaker(breaker.clone())
                .layer(),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    for i in 0..14 {
        if i == 8 {
            println!("(the dependency recovers; waiting out the open wait)");
            healthy.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let req = http::Request::get(format!("http://{addr}/")).body(Empty::new())?;
        match client.clone().oneshot(req).await {
            Ok(res) => {
                let status = res.status();
                // The breaker settles when the body ends.
                res.into_body().collect().await?;
                println!("call {i:>2}: {status}");
            }
            Err(e) => match telltale::resilience::Error::rejection_in(&*e) {
                Some(Rejection::Open(open)) => println!("call {i:>2}: rejected at once ({open})"),
                _ => println!("call {i:>2}: failed: {e}"),
            },
        }
        // Transitions, as they happened during this call.
        while let Ok(event) = events.try_recv() {
            if let BreakerEvent::StateTransition {
                from, to, reason, ..
            } = event
            {
                println!("  breaker: {from} -> {to} ({reason})");
            }
        }
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    println!("final state: {}", breaker.state());
    Ok(())
}
