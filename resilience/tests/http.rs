//! The tower layers with real parts: an axum server on 127.0.0.1 and a hyper
//! client through the breaker (and the breaker on the server).
#![cfg(not(loom))]

mod support;

use support::call;
use support::http::{client, req, server};

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use telltale_core::BoxError;
#[allow(unused_imports)]
use telltale_resilience::Rejection;
use telltale_resilience::keyed::{self, KeyedBreakerLayer, Registry};
use telltale_resilience::reject::RejectionResponseLayer;
use telltale_resilience::{
    AbandonedPolicy, CircuitBreaker, CircuitBreakerBuilder, Error, SlidingWindow, State,
};
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

fn breaker() -> CircuitBreakerBuilder {
    CircuitBreaker::builder("upstream")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .wait_in_open(Duration::from_secs(30))
}

#[tokio::test]
async fn client_breaker_opens_on_5xx_and_fails_fast() {
    let (addr, hits) = server().await;
    let b = breaker().build().unwrap();
    let mut svc = ServiceBuilder::new().layer(b.layer()).service(client());
    for _ in 0..4 {
        let res = call(&mut svc, req(addr, "/status/502")).await.unwrap();
        assert_eq!(res.status(), 502);
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(b.state(), State::Open);
    let err = call(&mut svc, req(addr, "/status/200")).await.unwrap_err();
    let Error::Open(open) = err else {
        panic!("{err:?}")
    };
    assert!(open.retry_after.unwrap() > Duration::from_secs(29));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "the open circuit did not call the server"
    );
}

#[tokio::test]
async fn four_xx_do_not_count_and_grpc_status_does() {
    let (addr, _) = server().await;
    let b = breaker().build().unwrap();
    let mut svc = ServiceBuilder::new().layer(b.layer()).service(client());
    for _ in 0..6 {
        let res = call(&mut svc, req(addr, "/status/404")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let snap = b.snapshot();
    assert_eq!((snap.calls, snap.failed), (6, 0));
    let res = call(&mut svc, req(addr, "/grpc")).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    assert_eq!(
        b.snapshot().failed,
        1,
        "trailers-only UNAVAILABLE is a failure"
    );
}

#[tokio::test]
async fn result_settles_when_the_body_ends() {
    let (addr, _) = server().await;
    let b = breaker().build().unwrap();
    let mut svc = ServiceBuilder::new().layer(b.layer()).service(client());
    let res = call(&mut svc, req(addr, "/stream")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(b.snapshot().calls, 0, "not settled at the head");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ab");
    let snap = b.snapshot();
    assert_eq!((snap.calls, snap.failed), (1, 1));
}

#[tokio::test]
async fn timeout_inside_the_breaker_counts_as_failure() {
    let (addr, _) = server().await;
    let b = breaker().build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(b.layer())
        .layer(TimeoutLayer::new(Duration::from_millis(50)))
        .service(client());
    let err = call(&mut svc, req(addr, "/slow")).await.unwrap_err();
    assert!(telltale_core::is_timeout(&err), "{err:?}");
    let snap = b.snapshot();
    assert_eq!((snap.calls, snap.failed), (1, 1));
}

#[tokio::test]
async fn timeout_outside_the_breaker_counts_as_failure() {
    let (addr, _) = server().await;
    let b = breaker()
        .abandoned(AbandonedPolicy::FailureAfter(Duration::from_millis(40)))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(50)))
        .layer(b.layer())
        .service(client());
    let err: BoxError = call(&mut svc, req(addr, "/slow")).await.unwrap_err();
    assert!(telltale_core::is_timeout(&*err), "{err:?}");
    let snap = b.snapshot();
    assert_eq!((snap.calls, snap.failed), (1, 1));
}

async fn handle_rejection(err: Error) -> Response {
    match err {
        Error::Open(open) => open.to_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::test]
async fn server_breaker_answers_503_with_retry_after() {
    let b = breaker().build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_rejection))
                .layer(b.layer()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client();
    for _ in 0..4 {
        let res = client.request(req(addr, "/")).await.unwrap();
        assert_eq!(res.status(), 500);
        res.into_body().collect().await.unwrap();
    }
    let res = client.request(req(addr, "/")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "30");
}

#[tokio::test]
async fn rejection_response_layer_maps_open_circuit() {
    let (addr, _) = server().await;
    let b = breaker().build().unwrap();
    b.force_open();
    // A forced-open breaker: 503 without Retry-After.
    let mut direct = ServiceBuilder::new()
        .layer(RejectionResponseLayer::new())
        .service(
            ServiceBuilder::new()
                .layer(b.layer())
                .service(client())
                .map_response(|r| {
                    r.map(
                        |body: telltale_resilience::breaker::ResponseBody<
                            hyper::body::Incoming,
                        >| { body.map_err(BoxError::from).boxed() },
                    )
                }),
        );
    let res: http::Response<
        telltale_resilience::reject::ResponseBody<
            http_body_util::combinators::BoxBody<Bytes, BoxError>,
        >,
    > = call(&mut direct, req(addr, "/status/200")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn keyed_breakers_isolate_hosts() {
    let (addr, hits) = server().await;
    let registry = Registry::breakers(breaker(), 8, Duration::from_secs(60)).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(KeyedBreakerLayer::new(registry.clone(), keyed::Host))
        .service(client());
    let port = addr.port();
    for _ in 0..4 {
        let r = http::Request::get(format!("http://127.0.0.1:{port}/status/500"))
            .body(Empty::new())
            .unwrap();
        let res = call(&mut svc, r).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(registry.get(Some("127.0.0.1")).state(), State::Open);
    let r = http::Request::get(format!("http://127.0.0.1:{port}/status/200"))
        .body(Empty::new())
        .unwrap();
    assert!(matches!(
        svc.ready().await.unwrap().call(r).await,
        Err(Error::Open(_))
    ));
    let r = http::Request::get(format!("http://localhost:{port}/status/200"))
        .body(Empty::new())
        .unwrap();
    let res = call(&mut svc, r).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(registry.get(Some("localhost")).state(), State::Closed);
    assert_eq!(registry.len(), 2);
    assert_eq!(hits.load(Ordering::SeqCst), 5);
}

/// A gRPC stream whose status only comes in the trailers settles at the end
/// of the body, classified from the trailers.
#[tokio::test]
async fn grpc_status_in_trailers_settles_at_the_end() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let b = breaker().build().unwrap();
    let mut svc =
        ServiceBuilder::new()
            .layer(b.layer())
            .service_fn(|_req: http::Request<()>| async {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("13"));
                let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                    Ok(Frame::data(Bytes::from_static(b"msg"))),
                    Ok(Frame::trailers(trailers)),
                ];
                let mut res =
                    http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                Ok::<_, Infallible>(res)
            });
    let res = call(&mut svc, http::Request::new(())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    assert_eq!(b.snapshot().calls, 0, "data frames do not settle");
    body.frame().await.unwrap().unwrap();
    let snap = b.snapshot();
    assert_eq!(
        (snap.calls, snap.failed),
        (1, 1),
        "INTERNAL in the trailers"
    );
}
