//! An axum server on 127.0.0.1 and a hyper client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A server on 127.0.0.1: `/status/{code}` (counted in the returned
/// counter), `/slow` (300 ms), `/stream` (503, a second chunk after 100 ms)
/// and `/grpc` (trailers-only `UNAVAILABLE`).
pub async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/status/{code}",
            get(
                |Path(code): Path<u16>, State(hits): State<Arc<AtomicUsize>>| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "late"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = async_stream(vec!["a", "b"]);
                (StatusCode::SERVICE_UNAVAILABLE, Body::from_stream(chunks))
            }),
        )
        .route(
            "/grpc",
            get(|| async {
                let mut res = Response::new(Body::empty());
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                res.headers_mut()
                    .insert("grpc-status", HeaderValue::from_static("14"));
                res
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// A body stream whose second chunk comes 100 ms after the first.
fn async_stream(
    chunks: Vec<&'static str>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold((0usize, chunks), |(i, chunks)| async move {
        if i >= chunks.len() {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some((
            Ok(Bytes::from_static(chunks[i].as_bytes())),
            (i + 1, chunks),
        ))
    })
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn req(addr: SocketAddr, path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap()
}
