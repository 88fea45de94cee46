//! A real axum server on 127.0.0.1 behind the inbound chaos layer, rules from an
//! env-like source, a real hyper client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::Empty;
use telltale_chaos::{Injector, Status};
use telltale_core::config::Env;

mod support;

use support::{from_env, http_client, http_get, within_five_sigma};

/// The app under test, served behind the inbound chaos layer.
async fn serve(injector: &Injector) -> SocketAddr {
    let router = Router::new()
        .route("/payments/{id}", get(|| async { "paid" }))
        .route("/big", get(|| async { "x".repeat(1000) }));
    support::serve_axum(injector, router).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_fault_rates_match_configured_probabilities() {
    let injector = from_env(
        "in GET /payments/*: 30% status(503) | in GET /payments/*: 10% abort",
        &[],
    );
    let addr = serve(&injector).await;
    let client = http_client();
    const N: usize = 2000;
    let (mut unavailable, mut aborted, mut ok) = (0, 0, 0);
    for i in 0..N {
        match http_get(&client, addr, &format!("/payments/{i}"), &[]).await {
            Ok(StatusCode::SERVICE_UNAVAILABLE) => unavailable += 1,
            Ok(StatusCode::OK) => ok += 1,
            Ok(other) => panic!("unexpected {other}"),
            Err(()) => aborted += 1,
        }
    }
    assert_eq!(unavailable + aborted + ok, N);
    assert!(
        within_five_sigma(unavailable, N, 0.3),
        "503: {unavailable}/{N}"
    );
    // The abort group is evaluated only when the 503 did not fire (a terminal fault
    // ends evaluation): 0.7 * 0.1.
    assert!(
        within_five_sigma(aborted, N, 0.07),
        "aborted: {aborted}/{N}"
    );
    // The server settles a fault when its response body is dropped, which can
    // happen just after the client has read the last byte: wait for it, bounded.
    support::wait_until_idle(&injector).await;
}

async fn seeded_run(seed: &str, ids: impl Iterator<Item = usize>) -> HashMap<usize, StatusCode> {
    let injector = from_env(
        "in GET /payments/*: 30% status(503)",
        &[("TELLTALE_CHAOS_SEED", seed)],
    );
    let addr = serve(&injector).await;
    let client = http_client();
    let mut out = HashMap::new();
    for i in ids {
        let id = format!("req-{i}");
        let status = http_get(&client, addr, "/payments/1", &[("x-correlation-id", &id)])
            .await
            .unwrap();
        out.insert(i, status);
    }
    out
}

#[tokio::test]
async fn a_seeded_run_repeated_gives_identical_decisions_whatever_the_order() {
    let first = seeded_run("7", 0..400).await;
    let again = seeded_run("7", (0..400).rev()).await;
    assert_eq!(first, again);
    let faults = first
        .values()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(within_five_sigma(faults, 400, 0.3), "{faults}");
    let other_seed = seeded_run("8", 0..400).await;
    assert_ne!(first, other_seed);
}

#[tokio::test]
async fn kill_switch_stops_injection_on_a_live_server() {
    let injector = from_env("in: status(503)", &[]);
    let addr = serve(&injector).await;
    let client = http_client();
    assert_eq!(
        http_get(&client, addr, "/payments/1", &[]).await,
        Ok(StatusCode::SERVICE_UNAVAILABLE)
    );
    injector.handle().kill();
    for _ in 0..200 {
        assert_eq!(
            http_get(&client, addr, "/payments/1", &[]).await,
            Ok(StatusCode::OK)
        );
    }
}

#[tokio::test]
async fn the_guard_refuses_in_a_disallowed_environment() {
    for pairs in [
        vec![
            ("TELLTALE_CHAOS", "in: status(503)"),
            ("TELLTALE_ENV", "production"),
        ],
        vec![
            ("TELLTALE_CHAOS", "in: status(503)"),
            ("TELLTALE_ENV", "staging"),
            ("TELLTALE_CHAOS_ALLOW_ENVS", "dev"),
        ],
        vec![
            ("TELLTALE_CHAOS", "in: status(503)"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ],
        vec![("TELLTALE_CHAOS", "in: status(503)")],
    ] {
        let injector = Injector::from_env_source(&Env::from_pairs(pairs.clone())).unwrap();
        assert_eq!(injector.status(), Status::Refused, "{pairs:?}");
        assert!(injector.refusal().is_some());
        assert_eq!(
            injector.handle().replace_rules_str("in: abort").unwrap(),
            Status::Refused
        );
        let addr = serve(&injector).await;
        let client = http_client();
        for _ in 0..50 {
            assert_eq!(
                http_get(&client, addr, "/payments/1", &[]).await,
                Ok(StatusCode::OK)
            );
        }
    }
    let allowed = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS", "in: status(503)"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=x,deployment.environment=dev",
        ),
    ]))
    .unwrap();
    assert_eq!(allowed.status(), Status::Armed);
}

#[tokio::test]
async fn abort_and_truncate_break_the_connection_for_a_real_client() {
    let injector = from_env(
        "in /payments/1: abort | in /payments/2: reset | in /big: truncate(100)",
        &[],
    );
    let addr = serve(&injector).await;
    let client = http_client();
    assert_eq!(http_get(&client, addr, "/payments/1", &[]).await, Err(()));
    assert_eq!(http_get(&client, addr, "/payments/2", &[]).await, Err(()));
    assert_eq!(http_get(&client, addr, "/big", &[]).await, Err(()));
    assert_eq!(
        http_get(&client, addr, "/payments/3", &[]).await,
        Ok(StatusCode::OK)
    );
}

#[tokio::test]
async fn header_faults_only_from_trusted_callers() {
    let secret = from_env(
        "in /never: abort",
        &[
            ("TELLTALE_CHAOS_HEADERS", "on"),
            ("TELLTALE_CHAOS_HEADERS_SECRET", "s3cret"),
        ],
    );
    let addr = serve(&secret).await;
    let client = http_client();
    let ask = [("x-telltale-chaos-status", "503")];
    assert_eq!(
        http_get(&client, addr, "/payments/1", &ask).await,
        Ok(StatusCode::OK)
    );
    let wrong = [
        ("x-telltale-chaos-status", "503"),
        ("x-telltale-chaos-secret", "guess"),
    ];
    assert_eq!(
        http_get(&client, addr, "/payments/1", &wrong).await,
        Ok(StatusCode::OK)
    );
    let right = [
        ("x-telltale-chaos-status", "503"),
        ("x-telltale-chaos-secret", "s3cret"),
    ];
    assert_eq!(
        http_get(&client, addr, "/payments/1", &right).await,
        Ok(StatusCode::SERVICE_UNAVAILABLE)
    );

    let by_peer = from_env(
        "in /never: abort",
        &[
            ("TELLTALE_CHAOS_HEADERS", "on"),
            ("TELLTALE_CHAOS_HEADERS_TRUSTED", "127.0.0.1"),
        ],
    );
    let addr = serve(&by_peer).await;
    let fault = [("x-telltale-chaos-fault", "grpc(UNAVAILABLE)")];
    assert_eq!(
        http_get(&client, addr, "/payments/1", &fault).await,
        Ok(StatusCode::OK)
    );
    let res = client
        .request(
            Request::get(format!("http://{addr}/payments/1"))
                .header("x-telltale-chaos-fault", "grpc(UNAVAILABLE)")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["x-telltale-chaos"], "header");

    let off = from_env("in /never: abort", &[]);
    let addr = serve(&off).await;
    assert_eq!(
        http_get(&client, addr, "/payments/1", &right).await,
        Ok(StatusCode::OK)
    );
}

#[tokio::test(start_paused = true)]
async fn delays_and_the_ttl_on_a_live_server_under_paused_time() {
    let injector = from_env(
        "in GET /big: delay(10s) | in GET /payments/*: status(503)",
        &[("TELLTALE_CHAOS_TTL", "1m")],
    );
    let addr = serve(&injector).await;
    let client = http_client();
    let start = tokio::time::Instant::now();
    assert_eq!(
        http_get(&client, addr, "/big", &[]).await,
        Ok(StatusCode::OK)
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(60),
        "{waited:?}"
    );
    assert_eq!(
        http_get(&client, addr, "/payments/1", &[]).await,
        Ok(StatusCode::SERVICE_UNAVAILABLE)
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        http_get(&client, addr, "/payments/1", &[]).await,
        Ok(StatusCode::OK)
    );
    assert_eq!(injector.status(), Status::Expired);
    let start = tokio::time::Instant::now();
    assert_eq!(
        http_get(&client, addr, "/big", &[]).await,
        Ok(StatusCode::OK)
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn header_faults_alone_arm_chaos_with_no_rules() {
    let injector = Injector::from_env_source(&Env::from_pairs([
        ("TELLTALE_CHAOS_HEADERS", "true"),
        ("TELLTALE_CHAOS_HEADERS_SECRET", "k"),
        ("TELLTALE_ENV", "dev"),
    ]))
    .unwrap();
    assert_eq!(injector.status(), Status::Armed);
    assert!(injector.rules().groups.is_empty());
    let addr = serve(&injector).await;
    let client = http_client();
    let ask = [
        ("x-telltale-chaos-status", "502"),
        ("x-telltale-chaos-secret", "k"),
    ];
    assert_eq!(
        http_get(&client, addr, "/payments/1", &ask).await,
        Ok(StatusCode::BAD_GATEWAY)
    );
    assert_eq!(
        http_get(&client, addr, "/payments/1", &[]).await,
        Ok(StatusCode::OK)
    );
}
