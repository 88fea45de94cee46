//! Keyed breakers and bulkheads: isolation per key, a cap on keys, idle
//! eviction and the overflow instance.

mod support;

use support::call;

use std::borrow::Cow;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use telltale_resilience::keyed::{self, GrpcMethod, KeyFn, KeyedBulkheadLayer, Registry};
use telltale_resilience::{Bulkhead, BulkheadEvent, CircuitBreaker, Error};
use tower::ServiceBuilder;

#[tokio::test(start_paused = true)]
async fn cap_overflow_and_idle_eviction() {
    let registry =
        Registry::breakers(CircuitBreaker::builder("up"), 2, Duration::from_secs(10)).unwrap();
    let a = registry.get(Some("a"));
    let b = registry.get(Some("b"));
    assert_eq!((a.name(), b.name()), ("up/a", "up/b"));
    assert!(registry.get(Some("a")).same_as(&a), "one instance per key");
    let c = registry.get(Some("c"));
    assert_eq!(c.name(), "up/_overflow", "no room: the overflow instance");
    assert!(registry.get(None).same_as(&c));
    assert_eq!(registry.len(), 2);

    tokio::time::advance(Duration::from_secs(6)).await;
    registry.get(Some("a"));
    tokio::time::advance(Duration::from_secs(6)).await;
    // b has been idle for 12 s, a for 6 s: b goes, c gets its own.
    let c = registry.get(Some("c"));
    assert_eq!(c.name(), "up/c");
    assert!(registry.get(Some("a")).same_as(&a));
    assert_eq!(registry.len(), 2);

    // A flood of distinct keys never grows the registry past the cap.
    for i in 0..10_000 {
        registry.get(Some(&format!("flood-{i}")));
    }
    assert_eq!(registry.len(), 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    registry.evict_idle();
    assert!(registry.is_empty());
}

#[test]
fn key_extractors() {
    let req = |uri: &str, host: Option<&str>| {
        let mut b = http::Request::get(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    };
    assert_eq!(
        keyed::Host
            .key(&req("http://api.example.com:8080/x", None))
            .as_deref(),
        Some("api.example.com")
    );
    assert_eq!(
        keyed::Host
            .key(&req("/x", Some("svc.local:9000")))
            .as_deref(),
        Some("svc.local")
    );
    assert_eq!(keyed::Host.key(&req("/x", None)), None);
    assert_eq!(
        GrpcMethod
            .key(&req("/pkg.Greeter/SayHello", None))
            .as_deref(),
        Some("/pkg.Greeter/SayHello")
    );
    assert_eq!(GrpcMethod.key(&req("/a/b/c", None)), None);
    assert_eq!(GrpcMethod.key(&req("/", None)), None);
    let by_header = keyed::key_fn(|r: &http::Request<()>| {
        r.headers()
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    });
    let tenant = http::Request::get("/")
        .header("x-tenant", "t1")
        .body(())
        .unwrap();
    assert_eq!(by_header.key(&tenant).as_deref(), Some("t1"));
}

#[tokio::test]
async fn keyed_bulkheads_isolate_grpc_methods() {
    let registry = Registry::bulkheads(
        Bulkhead::builder("grpc").max_concurrent(1),
        16,
        Duration::from_secs(60),
    )
    .unwrap();
    let mut events = registry.get(Some("/pkg.S/Slow")).subscribe();
    let mut svc = ServiceBuilder::new()
        .layer(KeyedBulkheadLayer::new(registry.clone(), GrpcMethod))
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"x"))))
        });
    let request = |path: &'static str| http::Request::post(path).body(()).unwrap();
    let held = call(&mut svc, request("/pkg.S/Slow")).await.unwrap();
    let err = call(&mut svc, request("/pkg.S/Slow")).await.unwrap_err();
    let Error::Full(full) = err else { panic!() };
    assert_eq!(&*full.name, "grpc//pkg.S/Slow");
    let BulkheadEvent::Rejected(event) = events.recv().await.unwrap() else {
        panic!()
    };
    assert_eq!(event.name, full.name);
    // Another method has its own slot.
    let other = call(&mut svc, request("/pkg.S/Fast")).await.unwrap();
    drop((held, other));
    assert_eq!(registry.get(Some("/pkg.S/Slow")).available(), 1);
    assert_eq!(registry.len(), 2);
}
