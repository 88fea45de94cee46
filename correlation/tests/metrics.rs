//! Rejection and generation counters, read from a `DebuggingRecorder`
//! installed once for this test binary (its only test).

mod support;

use axum::Router;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::{assert_uuid_v7, raw_get, serve};
use telltale_correlation::server::CorrelationLayer;
use telltale_correlation::{GENERATED_TOTAL, InvalidCorrelationId, REJECTED_TOTAL};

fn counters(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, String, u64)> {
    let mut out: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let DebugValue::Counter(n) = value else {
                return None;
            };
            let reason = key
                .labels()
                .find(|l| l.key() == "reason")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            Some((key.name().to_owned(), reason, n))
        })
        .filter(|(_, _, n)| *n > 0)
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn rejections_and_generations_are_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(CorrelationLayer::new());
    let addr = serve(app).await;
    let long = format!("x-correlation-id: {}", "a".repeat(129));
    for line in [
        &b"x-correlation-id: ok-1"[..],
        b"",
        b"",
        b"x-correlation-id:",
        long.as_bytes(),
        b"x-correlation-id: a b",
        b"x-correlation-id: caf\xc3\xa9",
        b"x-correlation-id: ab\tcd",
    ] {
        let res = raw_get(addr, "/", line).await;
        assert_eq!(res.status, 200);
    }

    let strict = |v: &[u8]| {
        if v.starts_with(b"tenant-") {
            Ok(())
        } else {
            Err(InvalidCorrelationId::Other("no_tenant_prefix"))
        }
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(CorrelationLayer::builder().rule(strict).build().unwrap());
    let addr = serve(app).await;
    let res = raw_get(addr, "/", b"x-correlation-id: other-1").await;
    assert_uuid_v7(res.headers["x-correlation-id"].to_str().unwrap());
    let res = raw_get(addr, "/", b"x-correlation-id: tenant-1").await;
    assert_eq!(res.headers["x-correlation-id"], "tenant-1");

    let untrusting = Router::new().route("/", get(|| async { "ok" })).layer(
        CorrelationLayer::builder()
            .trust_incoming(false)
            .build()
            .unwrap(),
    );
    let addr = serve(untrusting).await;
    raw_get(addr, "/", b"x-correlation-id: ok-2").await;

    let expected: Vec<(String, String, u64)> = [
        (GENERATED_TOTAL, "missing", 2),
        (GENERATED_TOTAL, "rejected", 6),
        (GENERATED_TOTAL, "untrusted", 1),
        (REJECTED_TOTAL, "empty", 1),
        (REJECTED_TOTAL, "invalid_character", 3),
        (REJECTED_TOTAL, "no_tenant_prefix", 1),
        (REJECTED_TOTAL, "too_long", 1),
    ]
    .into_iter()
    .map(|(n, r, c)| (n.to_owned(), r.to_owned(), c))
    .collect();
    assert_eq!(counters(&snapshotter), expected);
}
