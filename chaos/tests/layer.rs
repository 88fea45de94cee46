//! The layers in-process, under paused time: delays, TTL, kill switch, pause,
//! max active, slow and truncated bodies, tags (span, event, counter, header).

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use telltale_chaos::layer::{BodyTruncated, InjectedFault};
use telltale_chaos::{ChaosLayer, Injector, Status};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

mod support;

use support::{get, inbound, injector, outbound, poll_once, send, status_of};

#[tokio::test(start_paused = true)]
async fn a_delay_fault_waits_on_the_tokio_clock() {
    let inj = injector("in GET /slow: delay(5s) | in /range: delay(1s..2s)");
    let mut svc = inbound(&inj, b"ok");
    let start = tokio::time::Instant::now();
    let res = send(&mut svc, get("/slow")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-telltale-chaos"], "1.1");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    for _ in 0..20 {
        let start = tokio::time::Instant::now();
        send(&mut svc, get("/range")).await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited <= Duration::from_secs(2),
            "{waited:?}"
        );
    }
    // Not matching: no wait, no header.
    let start = tokio::time::Instant::now();
    let res = send(&mut svc, get("/other")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(res.headers().get("x-telltale-chaos").is_none());
    assert_eq!(inj.active(), 0);
}

#[tokio::test(start_paused = true)]
async fn kill_switch_stops_a_delay_in_progress_and_all_later_faults() {
    let inj = injector("in: delay(1h) | in /fail: status(500)");
    let mut svc = inbound(&inj, b"ok");
    let mut delayed = pin!(svc.ready().await.unwrap().call(get("/x")));
    assert!(poll_once(delayed.as_mut()).is_pending());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(poll_once(delayed.as_mut()).is_pending());
    assert_eq!(inj.active(), 1);
    let start = tokio::time::Instant::now();
    inj.handle().kill();
    let res = delayed.await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the kill takes effect at once"
    );
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    assert_eq!(inj.active(), 0);
    assert_eq!(inj.status(), Status::Killed);
    assert_eq!(status_of(&mut svc, "/fail").await, StatusCode::OK);
    // Killed is final.
    assert_eq!(
        inj.handle().replace_rules("in: abort".parse().unwrap()),
        Status::Killed
    );
    assert_eq!(status_of(&mut svc, "/fail").await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn kill_switch_releases_a_hanging_timeout_and_a_slow_body() {
    let inj = injector("in /hang: timeout | in /slow: slow(1/s)");
    let mut svc = inbound(&inj, b"0123456789");
    let mut hanging = pin!(svc.ready().await.unwrap().call(get("/hang")));
    assert!(poll_once(hanging.as_mut()).is_pending());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(
        poll_once(hanging.as_mut()).is_pending(),
        "a timeout hangs until the caller gives up"
    );

    let slow = send(&mut svc, get("/slow")).await.unwrap();
    let mut body = slow.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "0");
    let start = tokio::time::Instant::now();
    let mut next = pin!(body.frame());
    assert!(poll_once(next.as_mut()).is_pending());
    inj.handle().kill();
    assert_eq!(
        next.await.unwrap().unwrap().into_data().unwrap(),
        "123456789"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(hanging.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn ttl_switches_injection_off() {
    let inj = Injector::builder()
        .rules("in: status(503)".parse().unwrap())
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut svc = inbound(&inj, b"");
    assert_eq!(
        status_of(&mut svc, "/").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        status_of(&mut svc, "/").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(status_of(&mut svc, "/").await, StatusCode::OK);
    assert_eq!(inj.status(), Status::Expired);
    assert_eq!(status_of(&mut svc, "/").await, StatusCode::OK);
    // Replacing the rules arms again with a fresh TTL.
    assert_eq!(
        inj.handle().replace_rules_str("in: status(502)").unwrap(),
        Status::Armed
    );
    assert_eq!(status_of(&mut svc, "/").await, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn pause_resume_and_replace() {
    let inj = injector("in: status(503)");
    let handle = inj.handle();
    let mut svc = inbound(&inj, b"");
    handle.pause();
    assert_eq!(status_of(&mut svc, "/").await, StatusCode::OK);
    handle.resume();
    assert_eq!(
        status_of(&mut svc, "/").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    handle.replace_rules_str("in POST /: status(418)").unwrap();
    assert_eq!(status_of(&mut svc, "/").await, StatusCode::OK);
    assert_eq!(handle.rules().to_string(), "in POST /: status(418)");
    assert!(handle.replace_rules_str("in POST /: status(1)").is_err());
    let off = Injector::disabled();
    assert_eq!(off.status(), Status::Off);
    assert_eq!(
        off.handle().replace_rules_str("in: status(500)").unwrap(),
        Status::Armed
    );
}

#[tokio::test(start_paused = true)]
async fn max_active_is_an_exact_cap_held_until_the_body_ends() {
    let inj = Injector::builder()
        .rules("in: delay(10s)".parse().unwrap())
        .max_active(2)
        .build()
        .unwrap();
    let svc = inbound(&inj, b"ok");
    let mut futures = Vec::new();
    for _ in 0..5 {
        futures.push(Box::pin(svc.clone().oneshot(get("/"))));
    }
    let ready: Vec<bool> = futures
        .iter_mut()
        .map(|f| poll_once(f.as_mut()).is_ready())
        .collect();
    assert_eq!(
        ready,
        [false, false, true, true, true],
        "only two faults in flight"
    );
    assert_eq!(inj.active(), 2);
    let mut responses = Vec::new();
    for f in futures.into_iter().take(2) {
        responses.push(f.await.unwrap());
    }
    assert_eq!(inj.active(), 2, "held until the body ends");
    let body = responses
        .pop()
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "ok");
    assert_eq!(inj.active(), 1);
    drop(responses);
    assert_eq!(inj.active(), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_and_truncated_bodies() {
    let inj = injector(
        "in /slow: slow(10/s) | in /cut: truncate(4) | in /both: slow(20/s) + truncate(6)",
    );
    let body: &'static [u8] = b"0123456789";
    let mut svc = inbound(&inj, body);

    let start = tokio::time::Instant::now();
    let res = send(&mut svc, get("/slow")).await.unwrap();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "0123456789"
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "10 bytes at 10 B/s"
    );

    let res = send(&mut svc, get("/cut")).await.unwrap();
    let mut body = res.into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "0123"
    );
    let err = body.frame().await.unwrap().unwrap_err();
    let cut = err.downcast_ref::<BodyTruncated>().unwrap();
    assert_eq!((cut.after(), cut.rule()), (4, "2.1"));

    let res = send(&mut svc, get("/both")).await.unwrap();
    let err = res.into_body().collect().await.unwrap_err();
    assert!(err.is::<BodyTruncated>());
    assert_eq!(inj.active(), 0);
}

#[tokio::test]
async fn status_grpc_abort_and_reset_faults() {
    let inj = injector(
        "in /s: status(429, retry-after=1500ms, body=\"slow down\") | in /g: grpc(UNAVAILABLE, message=\"chaos: 100%\") | in /a: abort | in /r: reset",
    );
    let mut svc = inbound(&inj, b"real");
    let res = send(&mut svc, get("/s")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "2");
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "slow down"
    );

    let res = send(&mut svc, get("/g")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], "chaos: 100%25");
    let collected = res.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_none());
    assert!(collected.to_bytes().is_empty());

    for (path, kind) in [
        ("/a", std::io::ErrorKind::ConnectionAborted),
        ("/r", std::io::ErrorKind::ConnectionReset),
    ] {
        let err = send(&mut svc, get(path)).await.unwrap_err();
        let fault = err.downcast_ref::<InjectedFault>().unwrap();
        assert_eq!(fault.kind(), kind);
        assert!(err.to_string().starts_with("chaos: connection"));
    }
    assert_eq!(inj.active(), 0);
}

#[tokio::test]
async fn outbound_rules_apply_only_on_the_client_side_and_match_hosts() {
    let inj = injector("out fraud-api [x-canary]: status(503) | in: status(500)");
    let mut client = outbound(&inj, b"");
    let call = |uri: &str, canary: bool| {
        let mut b = Request::get(uri);
        if canary {
            b = b.header("x-canary", "1");
        }
        b.body(()).unwrap()
    };
    let s = |r: Response<_>| r.status();
    assert_eq!(
        s(send(&mut client, call("http://fraud-api:8080/score", true))
            .await
            .unwrap()),
        503
    );
    assert_eq!(
        s(
            send(&mut client, call("http://fraud-api:8080/score", false))
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        s(send(&mut client, call("http://other/score", true))
            .await
            .unwrap()),
        200
    );
}

#[test]
fn every_fault_is_counted_per_rule_with_handles_prepared_at_arm_time() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let inj = metrics::with_local_recorder(&recorder, || {
        injector("in /a: delay(1ms) + status(503) | any /b: 2* abort")
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut inbound = inbound(&inj, b"");
        let mut outbound = outbound(&inj, b"");
        for _ in 0..3 {
            send(&mut inbound, get("/a")).await.unwrap();
        }
        assert!(send(&mut inbound, get("/b")).await.is_err());
        assert!(send(&mut outbound, get("/b")).await.is_err());
        assert!(
            send(&mut outbound, get("/b")).await.is_ok(),
            "2* is used up"
        );
    });
    let mut counts: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "telltale_chaos_faults_injected_total")
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(n) = value else {
                return None;
            };
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (n > 0).then(|| (labels.join(","), n))
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("direction=in,fault=abort,rule=2.1".to_owned(), 1),
            ("direction=in,fault=delay,rule=1.1".to_owned(), 3),
            ("direction=in,fault=status,rule=1.1".to_owned(), 3),
            ("direction=out,fault=abort,rule=2.1".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn seeded_decisions_follow_the_correlation_id_from_the_task_local_or_the_header() {
    let seeded = || {
        Injector::builder()
            .rules("in: 50% status(503)".parse().unwrap())
            .seed(3)
            .build()
            .unwrap()
    };
    let (a, b) = (seeded(), seeded());
    let mut by_header = inbound(&a, b"");
    let mut by_scope = inbound(&b, b"");
    let mut faults = 0;
    for i in 0..200 {
        let id = format!("order-{i}");
        let req = Request::get("/")
            .header("x-correlation-id", &id)
            .body(())
            .unwrap();
        let from_header = send(&mut by_header, req).await.unwrap().status();
        let svc = by_scope.ready().await.unwrap();
        let from_scope = telltale_core::correlation::scope(id.parse().unwrap(), async {
            svc.call(get("/")).await
        })
        .await
        .unwrap()
        .status();
        assert_eq!(from_header, from_scope, "{id}");
        faults += usize::from(from_header == StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!((60..=140).contains(&faults), "{faults}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_active_holds_under_concurrency() {
    let inj = Injector::builder()
        .rules("in: delay(1ms)".parse().unwrap())
        .max_active(3)
        .build()
        .unwrap();
    let observed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, probe) = (observed.clone(), inj.clone());
    let inner = service_fn(move |_req: Request<()>| {
        seen.fetch_max(probe.active(), std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    let svc = ServiceBuilder::new()
        .layer(ChaosLayer::inbound(&inj))
        .service(inner);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let res = svc.clone().oneshot(get("/")).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let max = observed.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max}");
    assert_eq!(inj.active(), 0);
}
