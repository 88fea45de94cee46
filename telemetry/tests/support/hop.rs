//! One hop of a trace over real servers: a real hyper client sends headers
//! to an axum server behind `ServerTelemetryLayer`, whose handler calls a
//! second server through `ClientTelemetryLayer`; the second server records
//! the headers it receives.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use telltale_telemetry::layer::client::ClientTelemetryLayer;
use telltale_telemetry::propagation::TraceParent;
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};

use super::harness::Harness;

pub type Hyper = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn hyper_client() -> Hyper {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What the downstream server received.
#[derive(Debug)]
pub struct Seen {
    pub traceparent: Vec<String>,
    pub tracestate: Vec<String>,
    /// Every header, for the other propagators.
    pub headers: HeaderMap,
}

impl Seen {
    /// The one valid `traceparent`.
    pub fn traceparent(&self) -> TraceParent {
        assert_eq!(self.traceparent.len(), 1, "one traceparent: {self:?}");
        TraceParent::parse(&self.traceparent[0]).expect("a valid traceparent")
    }

    /// The `tracestate` header, when one was sent (at most one).
    pub fn tracestate(&self) -> Option<&str> {
        assert!(self.tracestate.len() <= 1, "{self:?}");
        self.tracestate.first().map(String::as_str)
    }

    /// The value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A service that calls a downstream one for every request, and the
/// receiver of what the downstream one saw.
pub struct Hop {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    client: Hyper,
}

impl Hop {
    pub async fn start(h: &Harness) -> Hop {
        let (tx, seen) = mpsc::unbounded_channel();
        let downstream = serve(Router::new().route(
            "/seen",
            get(move |headers: HeaderMap| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Seen {
                        traceparent: values(&headers, "traceparent"),
                        tracestate: values(&headers, "tracestate"),
                        headers,
                    });
                    "seen"
                }
            }),
        ))
        .await;
        let outbound = ServiceBuilder::new()
            .layer(
                ClientTelemetryLayer::builder()
                    .red_config(h.config.clone())
                    .build()
                    .unwrap(),
            )
            .service(hyper_client());
        let app = Router::new()
            .route(
                "/call",
                get(move || {
                    let outbound = outbound.clone();
                    async move {
                        let req = Request::get(format!("http://{downstream}/seen"))
                            .body(Full::default())
                            .unwrap();
                        let res = outbound.oneshot(req).await.unwrap();
                        res.into_body().collect().await.unwrap();
                        "called"
                    }
                }),
            )
            .layer(h.server().build().unwrap());
        Hop {
            addr: serve(app).await,
            seen,
            client: hyper_client(),
        }
    }

    /// Sends `headers` (repeated names stay repeated) and returns what the
    /// downstream call carried.
    pub async fn send(&mut self, headers: &[(&str, &str)]) -> Seen {
        let mut req = Request::get(format!("http://{}/call", self.addr))
            .body(Full::default())
            .unwrap();
        for (name, value) in headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let res = self.client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        self.seen.recv().await.unwrap()
    }
}
