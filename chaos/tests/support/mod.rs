//! Helpers shared by the integration tests: injectors, an in-process inner
//! service, one-call helpers for the `ready().await.unwrap().call(..)` chains,
//! real servers on 127.0.0.1:0 (axum behind hyper-util, tonic-health) and a
//! real hyper client.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use telltale_chaos::{ChaosLayer, ChaosService, Injector, PeerAddr, ResponseBody};
use telltale_core::BoxError;
use telltale_core::config::Env;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// The body of [`ok_service`].
pub type Body = Full<Bytes>;

/// An unguarded injector armed with `rules`.
pub fn injector(rules: &str) -> Injector {
    Injector::builder()
        .rules(rules.parse().unwrap())
        .build()
        .unwrap()
}

/// An injector from `TELLTALE_CHAOS=rules`, `TELLTALE_ENV=staging` and `extra`.
pub fn from_env(rules: &str, extra: &[(&str, &str)]) -> Injector {
    let mut pairs = vec![("TELLTALE_CHAOS", rules), ("TELLTALE_ENV", "staging")];
    pairs.extend_from_slice(extra);
    Injector::from_env_source(&Env::from_pairs(pairs)).unwrap()
}

/// An inner service answering `200` with `body`.
pub fn ok_service(
    body: &'static [u8],
) -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<()>| async move {
        Ok(Response::new(Full::new(Bytes::from_static(body))))
    })
}

/// `GET path` with an empty body.
pub fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

/// Waits for `svc` to be ready and calls it once.
pub async fn send<S, B>(svc: &mut S, req: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    svc.ready().await?.call(req).await
}

/// The status of `GET path` through a chaos layer over [`ok_service`].
pub async fn status_of<S>(svc: &mut S, path: &str) -> StatusCode
where
    S: Service<Request<()>, Response = Response<ResponseBody<Body>>, Error = BoxError>,
{
    send(svc, get(path)).await.unwrap().status()
}

/// Polls `fut` once with a no-op waker.
pub fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// Binomial bounds: `n * p ± 5 sigma`.
pub fn within_five_sigma(observed: usize, n: usize, p: f64) -> bool {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (observed as f64 - mean).abs() <= 5.0 * sigma
}

/// Serves `router` behind `ChaosLayer::inbound(injector)` with hyper-util on a
/// fresh port, inserting each connection's [`PeerAddr`].
pub async fn serve_axum(injector: &Injector, router: Router) -> SocketAddr {
    let svc = ServiceBuilder::new()
        .layer(ChaosLayer::inbound(injector))
        .service(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let hyper_svc =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(PeerAddr(peer));
                        svc.clone().oneshot(req)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    addr
}

/// Serves tonic-health's Health service (status `SERVING`) behind
/// `ChaosLayer::inbound(injector)` on a fresh port.
pub async fn serve_health(injector: &Injector) -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = ChaosLayer::inbound(injector);
    tokio::spawn(async move {
        let _keep = reporter;
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

/// A plain hyper client.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A plain hyper client.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `GET http://{addr}{path}` with `headers`: `Ok(status)` once the body is
/// read, or `Err(())` when the connection failed (abort, reset, truncate).
pub async fn http_get(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<StatusCode, ()> {
    let mut req = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .map_err(|_| ())?;
    let status = res.status();
    res.into_body().collect().await.map_err(|_| ())?;
    Ok(status)
}

/// [`ok_service`] answering `body`, behind `ChaosLayer::inbound(injector)`.
pub fn inbound(
    injector: &Injector,
    body: &'static [u8],
) -> ChaosService<impl Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone>
{
    ChaosLayer::inbound(injector).layer(ok_service(body))
}

/// [`ok_service`] answering `body`, behind `ChaosLayer::outbound(injector)`.
pub fn outbound(
    injector: &Injector,
    body: &'static [u8],
) -> ChaosService<impl Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone>
{
    ChaosLayer::outbound(injector).layer(ok_service(body))
}

/// Waits (at most 10 s of real time) until no fault is active: a real server
/// settles a fault when it drops the response body, which may happen just after
/// the client has seen the response end.
pub async fn wait_until_idle(injector: &Injector) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while injector.active() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} faults still active 10 s after the last response",
            injector.active()
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
