//! Tests that count tracing events and span records, through
//! `telltale_testkit::Capture` (deterministic under parallel tests: see the
//! testkit's documentation). Every test of this binary captures.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use telltale_chaos::{ChaosLayer, Injector, Status};
use telltale_testkit::Capture;
use tower::{Service, ServiceBuilder, service_fn};

fn injector(rules: &str) -> Injector {
    Injector::builder()
        .rules(rules.parse().unwrap())
        .build()
        .unwrap()
}

fn ok_service(
    body: &'static [u8],
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<()>| async move {
        Ok(Response::new(Full::new(Bytes::from_static(body))))
    })
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

#[test]
fn faults_are_tagged_on_the_span_and_in_one_event() {
    let capture = Capture::start();
    let inj = injector("in /a: delay(1ms) + status(503)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut svc = ServiceBuilder::new()
            .layer(ChaosLayer::inbound(&inj))
            .service(ok_service(b""));
        let span = tracing::info_span!(
            "request",
            chaos.injected = tracing::field::Empty,
            chaos.rule = tracing::field::Empty,
            chaos.fault = tracing::field::Empty
        );
        let fut = span.in_scope(|| svc.call(get("/a")));
        assert_eq!(fut.await.unwrap().status(), 503);
        span.in_scope(|| svc.call(get("/b")));
    });
    let events = capture.events();
    let injected: Vec<_> = events
        .iter()
        .filter(|e| e.message() == Some("chaos fault injected"))
        .collect();
    assert_eq!(injected.len(), 1, "{events:#?}");
    let event = injected[0];
    assert_eq!(event.field("chaos.injected"), Some("true"), "{event}");
    assert_eq!(event.field("chaos.rule"), Some("1.1"), "{event}");
    assert_eq!(event.field("chaos.fault"), Some("delay+status"), "{event}");
    assert_eq!(event.field("direction"), Some("in"), "{event}");
    let span: Vec<String> = capture.records().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        span,
        [
            "request: chaos.injected=true",
            "request: chaos.rule=1.1",
            "request: chaos.fault=delay+status"
        ],
        "{events:#?}"
    );
}

#[test]
fn arming_and_refusing_are_logged_loudly() {
    use telltale_core::config::Env;
    let capture = Capture::start();
    let refused = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "production"),
        ("TELLTALE_CHAOS_ALLOW_ENVS", "dev,staging"),
    ]))
    .unwrap();
    assert_eq!(refused.status(), Status::Refused);
    let armed = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "dev"),
    ]))
    .unwrap();
    assert_eq!(armed.status(), Status::Armed);
    let seen: Vec<String> = capture.events().iter().map(|e| e.to_string()).collect();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].contains("chaos REFUSED to arm")
            && seen[0].contains("\"production\" is not in the allow-list [dev, staging]"),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].contains("chaos ARMED") && seen[1].contains("rules=in: abort"),
        "{}",
        seen[1]
    );
}
