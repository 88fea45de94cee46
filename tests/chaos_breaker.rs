//! Chaos and the circuit breaker together: outbound chaos rules make a healthy
//! dependency appear to fail (or to be slow), and the breaker in front of it opens;
//! killing chaos lets the breaker close again.
//!
//! Client stack: `CircuitBreaker` → outbound `ChaosLayer` → hyper client →
//! a real axum server on 127.0.0.1 that counts the requests reaching it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale_chaos::{ChaosLayer, Injector};
use telltale_core::config::Env;
use telltale_resilience::{CircuitBreaker, Error, SlidingWindow, State};
use tower::{Service, ServiceBuilder, ServiceExt};

mod support;

async fn dependency() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().fallback(get(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "fine" }
    }));
    (support::serve(router).await, hits)
}

fn chaos(rules: &str) -> Injector {
    Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", rules),
        ("TELLTALE_ENV", "staging"),
    ]))
    .unwrap()
}

/// `Ok(status)` after reading the whole body (the breaker settles at body end),
/// or the breaker's error.
async fn call<S, B>(client: &mut S, addr: SocketAddr, path: &str) -> Result<StatusCode, Error>
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>, Error = Error>,
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let res = client.ready().await?.call(req).await?;
    let status = res.status();
    res.into_body().collect().await.unwrap();
    Ok(status)
}

#[tokio::test(start_paused = true)]
async fn injected_503s_open_the_breaker_and_the_kill_switch_lets_it_close() {
    let (addr, hits) = dependency().await;
    let injector = chaos("out 127.0.0.1: status(503)");
    let breaker = CircuitBreaker::builder("dependency")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_secs(30))
        .permitted_probes(2)
        .build()
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(breaker.layer())
        .layer(ChaosLayer::outbound(&injector))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    for _ in 0..10 {
        assert_eq!(
            call(&mut client, addr, "/score").await.unwrap(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        breaker.state(),
        State::Open,
        "ten injected 503s open the breaker"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the dependency itself was never called"
    );
    assert!(matches!(
        call(&mut client, addr, "/score").await,
        Err(Error::Open(_))
    ));

    injector.handle().kill();
    tokio::time::advance(Duration::from_secs(31)).await;
    for _ in 0..2 {
        assert_eq!(
            call(&mut client, addr, "/score").await.unwrap(),
            StatusCode::OK
        );
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "healthy probes close it once chaos is killed"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn injected_delays_open_the_breaker_on_slow_calls() {
    let (addr, hits) = dependency().await;
    let injector = chaos("out 127.0.0.1 /slow: delay(2s)");
    let breaker = CircuitBreaker::builder("slow-dependency")
        .sliding_window(SlidingWindow::Count(5))
        .minimum_calls(5)
        .slow_call_duration(Duration::from_secs(1))
        .slow_call_rate_threshold(0.5)
        .build()
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(breaker.layer())
        .layer(ChaosLayer::outbound(&injector))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    for _ in 0..5 {
        let start = tokio::time::Instant::now();
        assert_eq!(
            call(&mut client, addr, "/slow").await.unwrap(),
            StatusCode::OK
        );
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        5,
        "the calls were real, only late"
    );
    assert_eq!(
        breaker.state(),
        State::Open,
        "five 2 s calls open the breaker on slow-call rate"
    );
    assert!(matches!(
        call(&mut client, addr, "/fast").await,
        Err(Error::Open(_))
    ));
}

#[tokio::test]
async fn injected_aborts_count_as_failures() {
    let (addr, hits) = dependency().await;
    let injector = chaos("out 127.0.0.1: 4* abort");
    let breaker = CircuitBreaker::builder("aborting")
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(breaker.layer())
        .layer(ChaosLayer::outbound(&injector))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    for _ in 0..4 {
        let err = client
            .clone()
            .oneshot(
                Request::get(format!("http://{addr}/"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        let Error::Inner(inner) = err else {
            panic!("{err:?}")
        };
        assert!(inner.is::<telltale_chaos::layer::InjectedFault>());
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
