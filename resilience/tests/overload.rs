//! Issue 14, item 1: a bulkhead rejection never opens the breaker by default
//! (a full bulkhead is this service shedding load, not evidence that what
//! the breaker protects is broken); counting it is an explicit choice.
#![cfg(not(loom))]

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use telltale_core::Env;
use telltale_resilience::reject::{RejectedResponse, RejectionResponseLayer};
use telltale_resilience::{
    Bulkhead, CircuitBreaker, CircuitBreakerBuilder, Error, SlidingWindow, State,
};
use tower::{Service, ServiceBuilder, ServiceExt};

fn breaker() -> CircuitBreakerBuilder {
    CircuitBreaker::builder("overload")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(5)
        .failure_rate_threshold(0.5)
}

/// A handler that takes 20 ms.
async fn slow(_req: http::Request<Full<Bytes>>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// 1,000 concurrent calls through `svc`: (admitted with 2xx, rejected with a
/// 503 or a rejection error).
async fn thousand_calls<S, B>(svc: S) -> (usize, usize)
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Error> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let calls = (0..1000).map(|_| {
        let svc = svc.clone();
        async move {
            match svc.oneshot(http::Request::new(Full::default())).await {
                Ok(res) => {
                    let status = res.status();
                    let rejected = res.extensions().get::<RejectedResponse>().is_some();
                    res.into_body().collect().await.unwrap();
                    (status.is_success(), status == 503 && rejected)
                }
                Err(e) => {
                    assert!(
                        matches!(e, Error::Inner(ref inner) if Error::rejection_in(&**inner).is_some()),
                        "{e}"
                    );
                    (false, true)
                }
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    (
        results.iter().filter(|(ok, _)| *ok).count(),
        results.iter().filter(|(_, rejected)| *rejected).count(),
    )
}

/// Breaker outside a 4-slot bulkhead, 1,000 concurrent calls: 996 are
/// rejected by the bulkhead, the breaker stays closed and counts none of them,
/// whether the rejection reaches it as an error or as the 503 a
/// `RejectionResponseLayer` between the two made of it.
#[tokio::test(start_paused = true)]
async fn bulkhead_rejections_never_open_the_breaker() {
    for answered in [false, true] {
        let breaker = breaker().build().unwrap();
        let bulkhead = Bulkhead::builder("overload")
            .max_concurrent(4)
            .build()
            .unwrap();
        let mut transitions = breaker.subscribe();
        let counts = if answered {
            let svc = ServiceBuilder::new()
                .layer(breaker.layer())
                .layer(RejectionResponseLayer::new())
                .layer(bulkhead.layer())
                .service_fn(slow);
            thousand_calls(svc).await
        } else {
            let svc = ServiceBuilder::new()
                .layer(breaker.layer())
                .layer(bulkhead.layer())
                .service_fn(slow);
            thousand_calls(svc).await
        };
        assert_eq!(counts, (4, 996), "answered={answered}");
        assert_eq!(breaker.state(), State::Closed, "answered={answered}");
        assert_eq!(breaker.snapshot().calls, 4, "only the admitted calls count");
        assert_eq!(breaker.snapshot().failed, 0);
        assert!(transitions.try_recv().is_err(), "no transition at all");
    }
}

/// The explicit choice: `count_rejections(true)` (or the variable) makes a
/// full bulkhead a failure, and the breaker opens.
#[tokio::test(start_paused = true)]
async fn counting_rejections_is_an_explicit_choice() {
    let env = Env::from_pairs([("TELLTALE_BREAKER_COUNT_REJECTIONS", "true")]);
    for builder in [
        breaker().count_rejections(true),
        breaker().env(&env).unwrap(),
    ] {
        let breaker = builder.build().unwrap();
        let bulkhead = Bulkhead::builder("overload")
            .max_concurrent(1)
            .build()
            .unwrap();
        let svc = ServiceBuilder::new()
            .layer(breaker.layer())
            .layer(bulkhead.layer())
            .service_fn(slow);
        let _held = bulkhead.try_acquire().unwrap();
        for _ in 0..5 {
            let r = svc
                .clone()
                .oneshot(http::Request::new(Full::default()))
                .await;
            assert!(r.is_err());
        }
        assert_eq!(breaker.state(), State::Open);
    }
}

/// `CircuitBreaker::call` around `Bulkhead::call` follows the same rule.
#[tokio::test(start_paused = true)]
async fn plain_calls_ignore_rejections_too() {
    let breaker = breaker().build().unwrap();
    let bulkhead = Bulkhead::builder("plain")
        .max_concurrent(1)
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    for _ in 0..50 {
        let r = breaker
            .call(bulkhead.call(async { Ok::<_, std::io::Error>(()) }))
            .await;
        assert!(r.is_err());
    }
    assert_eq!(breaker.state(), State::Closed);
    // A real failure still counts.
    for _ in 0..5 {
        let _ = breaker
            .call(async { Err::<(), _>(std::io::Error::other("down")) })
            .await;
    }
    assert_eq!(breaker.state(), State::Open);
}

/// On a real server: 64 concurrent clients against a 4-slot bulkhead behind a
/// breaker; the rejected requests get the bulkhead's 503 (`Retry-After: 1`),
/// never the breaker's, and the breaker stays closed.
#[tokio::test]
async fn real_server_overload_keeps_the_breaker_closed() {
    use support::http::client;
    let breaker = breaker().build().unwrap();
    let bulkhead = Bulkhead::builder("server")
        .max_concurrent(4)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/work",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "done"
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(RejectionResponseLayer::new().answer_all())
                .layer(breaker.layer())
                .layer(bulkhead.layer()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..5 {
                let res = client
                    .request(support::http::req(addr, "/work"))
                    .await
                    .unwrap();
                let status = res.status();
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                res.into_body().collect().await.unwrap();
                seen.push((status, retry));
            }
            seen
        }));
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        for (status, retry) in t.await.unwrap() {
            match status.as_u16() {
                200 => ok += 1,
                503 => {
                    // The bulkhead's answer; an open breaker would say how long
                    // until the next probe (60 s by default).
                    assert_eq!(retry.as_deref(), Some("1"));
                    shed += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(ok + shed, 320);
    assert!(ok >= 4, "some requests are served ({ok})");
    assert!(shed > 0, "the bulkhead sheds under 64 concurrent clients");
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed, 0);
}
