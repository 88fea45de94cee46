//! gRPC paths are a client's choice: on a real axum service, thousands of
//! gRPC calls to distinct unknown paths add a constant number of series to the
//! `/metrics` exposition; allow-listed and routed services keep their labels.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telltale_core::GrpcCode;
use telltale_core::config::Env;
use telltale_core::grpc::trailers_only_response;
use telltale_telemetry::layer::server::{ServerTelemetryLayer, env};
use telltale_telemetry::metrics::{RedConfig, metrics_router};

type Hyper = Client<HttpConnector, Full<Bytes>>;

/// The RPC metric families of the server (OpenTelemetry scheme).
const FAMILY: &str = "rpc_server_call_duration_seconds";

/// An axum service behind `layer`: one routed gRPC method, and a fallback that
/// answers like a gRPC server: `OK` for `/allowed.Svc/…` and `/other.Svc/…`,
/// `UNIMPLEMENTED` (as tonic does for unknown services) for even-numbered
/// `/pN.Svc/…` paths and a plain 404 for the rest.
async fn serve(
    layer: ServerTelemetryLayer,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> String {
    let app = Router::new()
        .route("/routed.Svc/Call", post(|| async { grpc_ok() }))
        .fallback(|req: http::Request<Body>| async move {
            let path = req.uri().path();
            if path.starts_with("/allowed.Svc/") || path.starts_with("/other.Svc/") {
                return grpc_ok();
            }
            let n: u32 = path
                .strip_prefix("/p")
                .and_then(|p| p.split('.').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if n % 2 == 0 {
                trailers_only_response(GrpcCode::Unimplemented, "unknown service")
            } else {
                http::Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::empty())
                    .unwrap()
            }
        })
        .layer(layer)
        .merge(metrics_router(handle));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn grpc_ok() -> http::Response<Body> {
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("grpc-status", "0")
        .body(Body::empty())
        .unwrap()
}

fn client() -> Hyper {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(client: &Hyper, base: &str, path: &str) -> u16 {
    let req = http::Request::post(format!("{base}{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    res.into_body().collect().await.unwrap();
    status
}

async fn scrape(client: &Hyper, base: &str) -> String {
    let req = http::Request::get(format!("{base}/metrics"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The exposition's sample lines of the RPC families.
fn family_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with(FAMILY)).collect()
}

fn layer(config: RedConfig) -> ServerTelemetryLayer {
    ServerTelemetryLayer::builder()
        .red_config(config)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_grpc_paths_add_a_constant_number_of_series() {
    let (config, handle) = support::local_prometheus(RedConfig::default());
    let base = serve(layer(config), handle).await;
    let client = client();

    // Warm up: every kind of answer once, so the baseline holds their series.
    assert_eq!(call(&client, &base, "/routed.Svc/Call").await, 200);
    assert_eq!(call(&client, &base, "/p0.Svc/M0").await, 200);
    assert_eq!(call(&client, &base, "/p1.Svc/M1").await, 404);
    let baseline = scrape(&client, &base).await;
    let before = family_lines(&baseline).len();
    assert!(before > 0, "{baseline}");

    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8u32 {
        let client = client.clone();
        let base = base.clone();
        tasks.spawn(async move {
            for i in (worker..5_000).step_by(8) {
                call(&client, &base, &format!("/p{i}.Svc/M{i}")).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let text = scrape(&client, &base).await;
    let lines = family_lines(&text);
    assert!(
        lines.len() <= before,
        "{} lines before, {} after:\n{}",
        before,
        lines.len(),
        lines.join("\n")
    );
    assert!(
        !text.contains(".Svc/M4999") && !text.contains("p4999.Svc"),
        "{text}"
    );
    assert!(text.len() < 64 * 1024, "exposition of {} bytes", text.len());
    // The routed method keeps its label; the unknown calls were counted,
    // without a route.
    assert!(
        lines.iter().any(
            |l| l.contains(r#"rpc_service="routed.Svc""#) && l.contains(r#"rpc_method="Call""#)
        ),
        "{}",
        lines.join("\n")
    );
    let unrouted: f64 = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{FAMILY}_count")) && !l.contains("rpc_service="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(unrouted, 5_002.0, "{}", lines.join("\n"));
}

#[tokio::test]
async fn an_allow_listed_service_keeps_its_labels() {
    let (config, handle) = support::local_prometheus(RedConfig::default());
    let env = Env::from_pairs([(env::GRPC_SERVICES, "allowed.Svc, grpc.health.v1.Health")]);
    let layer = ServerTelemetryLayer::builder()
        .red_config(config)
        .env(&env)
        .unwrap()
        .build()
        .unwrap();
    let base = serve(layer, handle).await;
    let client = client();

    for _ in 0..3 {
        assert_eq!(call(&client, &base, "/allowed.Svc/Get").await, 200);
    }
    // Answered like a known method, but not on the list: no label.
    assert_eq!(call(&client, &base, "/other.Svc/Get").await, 200);
    // Routed by axum: the router vouches for it.
    assert_eq!(call(&client, &base, "/routed.Svc/Call").await, 200);

    let text = scrape(&client, &base).await;
    let lines = family_lines(&text);
    let count = |service: &str, method: &str| {
        lines.iter().any(|l| {
            l.starts_with(&format!("{FAMILY}_count"))
                && l.contains(&format!(r#"rpc_service="{service}""#))
                && l.contains(&format!(r#"rpc_method="{method}""#))
        })
    };
    assert!(count("allowed.Svc", "Get"), "{}", lines.join("\n"));
    assert!(count("routed.Svc", "Call"), "{}", lines.join("\n"));
    assert!(!text.contains("other.Svc"), "{}", lines.join("\n"));
}

#[test]
fn the_allow_list_is_validated() {
    let ok = Env::from_pairs([(env::GRPC_SERVICES, "pkg.v1.Svc,grpc.health.v1.Health")]);
    assert!(ServerTelemetryLayer::builder().env(&ok).is_ok());
    let long = "a".repeat(300);
    for bad in [
        "/pkg.Svc/M",
        "pkg..Svc",
        ".pkg",
        "pkg.",
        "pkg Svc",
        long.as_str(),
    ] {
        let env = Env::from_pairs([(env::GRPC_SERVICES, bad)]);
        let err = ServerTelemetryLayer::builder().env(&env).unwrap_err();
        assert!(
            err.to_string()
                .contains("TELLTALE_HTTP_SERVER_GRPC_SERVICES"),
            "{bad}: {err}"
        );
    }
}
