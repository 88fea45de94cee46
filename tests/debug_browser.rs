//! The debug page in a real browser: a service built on the presets serves
//! traffic on 127.0.0.1:0 (a breaker that opens, a bulkhead, chaos, an
//! outbound call), and headless Chromium (Debian's `chromium`, installed by
//! `scripts/install-test-deps`) loads its debug page. The rendered DOM must
//! show the breaker's state, find a trace by its correlation ID, and show
//! chaos killed after the kill switch was used with the token. A screenshot
//! is saved as `target/debug-page.png`.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::debug::DebugSurface;
use telltale::stack::{ClientStack, ServerStack};
use telltale::telemetry::metrics::{RedConfig, install_prometheus};
use tower::{Service, ServiceExt};

const TOKEN: &str = "browser-test-token-42";

type Plain = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn plain() -> Plain {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_status(client: &Plain, url: &str, correlation: &str) -> u16 {
    let req = http::Request::get(url)
        .header("x-correlation-id", correlation)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

/// Calls `/orders/7` of the same service through `ClientStack`: a CLIENT
/// span for the dependency map.
async fn checkout(State(target): State<SocketAddr>) -> http::StatusCode {
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = tower::ServiceBuilder::new()
        .layer(ClientStack::new().timeout(Duration::from_secs(5)).layer())
        .service(hyper);
    let req = http::Request::get(format!("http://{target}/orders/7"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match client.ready().await {
        Ok(svc) => match svc.call(req).await {
            Ok(res) => {
                let _ = res.into_body().collect().await;
                http::StatusCode::OK
            }
            Err(_) => http::StatusCode::BAD_GATEWAY,
        },
        Err(_) => http::StatusCode::BAD_GATEWAY,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_page_in_a_browser_shows_breakers_traces_and_the_kill_switch() {
    let recorder = support::recorder("browser-checkout");
    let metrics =
        install_prometheus(&RedConfig::default()).expect("the only recorder of this binary");
    let env = Env::from_pairs([
        ("TELLTALE_BREAKER_WINDOW", "4"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "4"),
        ("TELLTALE_BREAKER_FAILURE_RATE", "50%"),
        ("TELLTALE_BREAKER_OPEN_WAIT", "1h"),
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "16"),
        ("TELLTALE_CHAOS", "in GET /flaky: status(500)"),
        ("TELLTALE_CHAOS_SEED", "7"),
        ("TELLTALE_ENV", "test"),
    ]);
    let stack = ServerStack::from_env_source(&env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/flaky", get(|| async { "ok" }))
        .route("/checkout", get(checkout))
        .with_state(addr)
        .layer(stack.layer());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let debug = DebugSurface::new()
        .addr_to("127.0.0.1:0".parse().unwrap())
        .token(TOKEN)
        .unwrap()
        .flight_recorder(recorder)
        .metrics(metrics)
        .serve()
        .await
        .unwrap();
    let page = debug.url();

    // Traffic: orders, an outbound call, and chaos 500s that open the breaker.
    let c = plain();
    for i in 0..5 {
        assert_eq!(
            get_status(
                &c,
                &format!("http://{addr}/orders/{i}"),
                &format!("browser-order-{i}")
            )
            .await,
            200
        );
    }
    assert_eq!(
        get_status(&c, &format!("http://{addr}/checkout"), "browser-checkout-1").await,
        200
    );
    let breaker = stack.breaker_ref().unwrap().clone();
    for i in 0..8 {
        if breaker.state().as_str() == "open" {
            break;
        }
        assert_eq!(
            get_status(
                &c,
                &format!("http://{addr}/flaky"),
                &format!("browser-flaky-{i}")
            )
            .await,
            500
        );
    }
    assert_eq!(
        get_status(&c, &format!("http://{addr}/flaky"), "browser-rejected").await,
        503
    );
    assert_eq!(stack.breaker_ref().unwrap().state().as_str(), "open");
    // Spans end with their response body: wait (bounded) until recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorder.by_correlation_id("browser-order-3").is_empty()
        || recorder.by_correlation_id("browser-checkout-1").len() < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans never reached the flight recorder"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // More traffic while the browser loads the page (bounded, stops by itself).
    let background = tokio::spawn(async move {
        let c = plain();
        for i in 0..100 {
            let _ = get_status(&c, &format!("http://{addr}/orders/{i}"), &format!("bg-{i}")).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let dom = support::dump_dom(&page).await;
    assert!(
        dom.contains("data-name=\"server\" data-state=\"open\""),
        "breaker state shown:\n{dom}"
    );
    assert!(
        dom.contains("closed</span> → <span class=\"st-open\">open</span>: failure rate")
            && dom.contains("&gt;= threshold 50.0%"),
        "the transition and its reason:\n{dom}"
    );
    assert!(
        dom.contains("data-route=\"GET /orders/{id}\""),
        "RED per route"
    );
    assert!(
        dom.contains("data-name=\"server\"") && dom.contains("class=\"bulkhead\""),
        "bulkhead"
    );
    assert!(dom.contains("data-status=\"armed\""), "chaos armed");
    assert!(dom.contains("id=\"depmap\""), "the dependency map");
    assert!(
        dom.contains("action=\"/api/chaos/kill\""),
        "the kill button posts to the kill endpoint"
    );

    // A trace found by its correlation ID, with its waterfall.
    let dom = support::dump_dom(&format!("{page}?q=browser-checkout-1")).await;
    assert!(dom.contains("id=\"waterfall\""), "waterfall shown:\n{dom}");
    assert!(dom.contains("data-correlation-id=\"browser-checkout-1\""));
    assert!(
        dom.contains("GET → 127.0.0.1:"),
        "the CLIENT span names its target"
    );

    // The kill switch: what the page's form sends, with the token.
    let kill = http::Request::post(format!("{page}api/chaos/kill"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={TOKEN}"))))
        .unwrap();
    let res = c.request(kill).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(stack.injector().status(), telltale::chaos::Status::Killed);
    let dom = support::dump_dom(&page).await;
    assert!(
        dom.contains("data-status=\"killed\""),
        "chaos shows killed:\n{dom}"
    );

    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug-page.png");
    let _ = std::fs::remove_file(&shot);
    support::chromium(&[format!("--screenshot={}", shot.display()), page.clone()]).await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    background.await.unwrap();
}
