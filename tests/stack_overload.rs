//! Issue 14, item 1, on a real server: `ServerStack` with a breaker and a
//! small bulkhead under concurrent overload. The bulkhead sheds (503,
//! `Retry-After: 1`), the breaker stays closed and never answers; counting
//! rejections is an explicit choice that does open it. Deterministic: the
//! handler waits on a gate the test opens, no throughput is asserted.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::resilience::{Bulkhead, CircuitBreaker, SlidingWindow, State};
use telltale::stack::ServerStack;
use tokio::sync::Semaphore;

mod support;
use support::serve;

const SLOTS: usize = 4;
const CLIENTS: usize = 64;

/// Runs `CLIENTS` concurrent requests against a stack with `breaker` and a
/// `SLOTS`-slot bulkhead while the handler is held, then releases it.
/// Returns (statuses with their Retry-After, the breaker, the bulkhead).
async fn overload(stack: ServerStack) -> Vec<(u16, Option<String>)> {
    // The handler holds its slot until the test opens the gate, so exactly
    // `SLOTS` requests are admitted and the rest are shed, whatever the timing.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let (g, e) = (g.clone(), e.clone());
                async move {
                    e.add_permits(1);
                    g.acquire().await.unwrap().forget();
                    "done"
                }
            }),
        )
        .layer(stack.layer());
    let addr = serve(app).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // Fill the slots first (bounded wait until all handlers are in).
    let mut held = Vec::new();
    for _ in 0..SLOTS {
        let client = client.clone();
        held.push(tokio::spawn(async move {
            let res = client
                .get(format!("http://{addr}/work").parse().unwrap())
                .await
                .unwrap();
            let status = res.status().as_u16();
            res.into_body().collect().await.unwrap();
            (status, None)
        }));
    }
    tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(SLOTS as u32))
        .await
        .expect("the slots fill")
        .unwrap()
        .forget();
    // Now the overload: CLIENTS concurrent requests against a full bulkhead.
    let shed: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let res = client
                    .get(format!("http://{addr}/work").parse().unwrap())
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                res.into_body().collect().await.unwrap();
                (status, retry)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in shed {
        out.push(t.await.unwrap());
    }
    gate.add_permits(SLOTS);
    for t in held {
        out.push(t.await.unwrap());
    }
    out
}

fn breaker() -> telltale::resilience::CircuitBreakerBuilder {
    CircuitBreaker::builder("server")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
}

fn bulkhead() -> Bulkhead {
    Bulkhead::builder("server")
        .max_concurrent(SLOTS)
        .build()
        .unwrap()
}

#[tokio::test]
async fn breaker_stays_closed_while_the_bulkhead_sheds() {
    let breaker = breaker().build().unwrap();
    let stack = ServerStack::new()
        .breaker(breaker.clone())
        .bulkhead(bulkhead());
    let results = overload(stack).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(ok, SLOTS);
    assert_eq!(shed.len(), CLIENTS);
    // Every 503 is the bulkhead's (`Retry-After: 1`); the breaker's would carry
    // the open wait (60 s by default).
    assert!(
        shed.iter().all(|(_, retry)| retry.as_deref() == Some("1")),
        "{shed:?}"
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed, 0);
    assert_eq!(breaker.snapshot().calls, SLOTS as u32);
}

#[tokio::test]
async fn from_env_preset_ignores_rejections_unless_told_to_count_them() {
    let base = [
        ("TELLTALE_BREAKER_WINDOW", "20"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "5"),
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "4"),
    ];
    let stack = ServerStack::from_env_source(&Env::from_pairs(base)).unwrap();
    let breaker = stack.breaker_ref().unwrap().clone();
    let results = overload(stack).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 503).count(), CLIENTS);
    assert_eq!(breaker.state(), State::Closed);

    // The explicit choice: the same overload opens a breaker that counts them.
    let mut counting = base.to_vec();
    counting.push(("TELLTALE_BREAKER_COUNT_REJECTIONS", "true"));
    let stack = ServerStack::from_env_source(&Env::from_pairs(counting)).unwrap();
    let breaker = stack.breaker_ref().unwrap().clone();
    let results = overload(stack).await;
    assert_eq!(breaker.state(), State::Open);
    // Once open, the breaker answers: its 503 carries the open wait.
    assert!(
        results
            .iter()
            .any(|(s, r)| *s == 503 && r.as_deref() == Some("60")),
        "{results:?}"
    );
}
