//! Helpers shared by the integration tests: real servers on 127.0.0.1:0, a
//! real hyper client, and a raw TCP client for bytes hyper's client refuses.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` on a fresh port; the server lives as long as the runtime.
pub async fn serve(app: axum::Router) -> SocketAddr {
    // Some tests of these binaries capture the server's tracing events: the
    // global dispatcher must exist before any request registers a callsite.
    telltale_testkit::init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `uri` with `headers`; returns the head and the body as text.
pub async fn get(
    client: &HttpClient,
    uri: String,
    headers: &[(&str, &str)],
) -> (Response<()>, String) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// GET `http://{addr}{path}` with `headers` on a fresh client; returns the
/// head and the body as text.
pub async fn get_at(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, String) {
    get(&http_client(), format!("http://{addr}{path}"), headers).await
}

/// What came back over a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// Everything after the head (may be chunk-encoded).
    pub body: Vec<u8>,
    /// The whole response as received, to check nothing leaked anywhere.
    pub raw: Vec<u8>,
}

/// Sends `GET /` with one extra header line made of raw bytes (`name: value`),
/// over a plain TCP stream, and reads the response until the server closes.
pub async fn raw_get(addr: SocketAddr, path: &str, header_line: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n").into_bytes();
    if !header_line.is_empty() {
        req.extend_from_slice(header_line);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    stream.write_all(&req).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..split]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
        raw,
    }
}

/// Asserts `text` is a UUIDv7.
pub fn assert_uuid_v7(text: &str) {
    let uuid = uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 7, "{text}");
}
