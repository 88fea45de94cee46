//! Export failures are visible: for each cause (connection refused, no
//! answer, an untrusted certificate, an error status), over gRPC and HTTP,
//! the first failure is one WARN line with the endpoint and the cause, later
//! failures at most one summary line per interval, recovery one INFO line;
//! never a line per batch, and none of it is exported as a log record.

mod support;

use std::time::Duration;

use support::export::{Pipeline, build, until};
use support::otel::{Sink, grpc_receiver, http_receiver, stalled_collector};
#[cfg(feature = "tls")]
use support::tls::{Pki, grpc_tls_receiver, http_tls_receiver};
use telltale_telemetry::{Protocol, Telemetry, TelemetryBuilder};
use tokio::net::TcpListener;

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

fn traces_endpoint(addr: impl std::fmt::Display, protocol: Protocol, scheme: &str) -> String {
    match protocol {
        Protocol::Grpc => format!("{scheme}://{addr}"),
        _ => format!("{scheme}://{addr}/v1/traces"),
    }
}

fn builder(endpoint: &str, protocol: Protocol) -> TelemetryBuilder {
    Telemetry::builder()
        .otlp(endpoint, protocol)
        .otlp_timeout(Duration::from_millis(1500))
        .export_batch_size(1)
        .export_delay(Duration::from_millis(5))
}

/// Sends `batches` spans, one batch each, and waits until all failed.
async fn fail_batches(pipeline: &Pipeline, batches: u64) {
    let stats = pipeline.stats("otlp");
    for i in 0..batches {
        pipeline.span(&format!("lost {i}"));
        until("the batch to fail", || stats.failed_exports() > i).await;
    }
}

/// One WARN line for `batches` failed batches, with the endpoint and `cause`
/// (one of `|`-separated wordings).
async fn one_line_for_many_failures(pipeline: &Pipeline, endpoint: &str, cause: &str) {
    fail_batches(pipeline, 3).await;
    let warns = pipeline.export_lines_at("WARN");
    assert_eq!(warns.len(), 1, "{warns:#?}");
    assert!(warns[0].contains(endpoint), "{}", warns[0]);
    assert!(
        cause.split('|').any(|c| warns[0].contains(c)),
        "expected {cause:?} in {}",
        warns[0]
    );
    let line = &pipeline.export_lines()[0];
    assert_eq!(line["exporter"], "otlp");
    assert_eq!(line["endpoint"], endpoint);
}

#[tokio::test]
async fn connection_refused() {
    for protocol in PROTOCOLS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let endpoint = traces_endpoint(addr, protocol, "http");
        let pipeline = build(builder(&endpoint, protocol));
        one_line_for_many_failures(&pipeline, &endpoint, "refused").await;
    }
}

#[tokio::test]
async fn no_answer_within_the_timeout() {
    for protocol in PROTOCOLS {
        let (addr, _stalled) = stalled_collector().await;
        let endpoint = traces_endpoint(addr, protocol, "http");
        let pipeline = build(builder(&endpoint, protocol).otlp_timeout(Duration::from_millis(300)));
        // The export's bound, or the gRPC channel's (the same 300 ms).
        one_line_for_many_failures(
            &pipeline,
            &endpoint,
            "no answer within 300ms|Timeout expired",
        )
        .await;
    }
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn untrusted_certificate() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let endpoint = match protocol {
            Protocol::Grpc => grpc_tls_receiver(&pki, false).await.1,
            _ => format!("{}/v1/traces", http_tls_receiver(&pki, false).await.1),
        };
        let pipeline =
            build(builder(&endpoint, protocol).otlp_ca_certificate(pki.other_ca.as_bytes()));
        one_line_for_many_failures(&pipeline, &endpoint, "certificate is not trusted").await;
    }
}

async fn status_receiver(protocol: Protocol) -> (Sink, String) {
    match protocol {
        Protocol::Grpc => grpc_receiver().await,
        _ => http_receiver().await,
    }
}

#[tokio::test]
async fn error_status_then_recovery() {
    for protocol in PROTOCOLS {
        let (sink, endpoint) = status_receiver(protocol).await;
        sink.fail_with(401);
        let pipeline = build(builder(&endpoint, protocol));
        let cause = match protocol {
            Protocol::Grpc => "Unauthenticated",
            _ => "status code: 401",
        };
        one_line_for_many_failures(&pipeline, &endpoint, cause).await;
        assert!(pipeline.export_lines_at("INFO").is_empty());

        sink.fail_with(0);
        pipeline.span("back");
        sink.wait_for(|spans| spans.iter().any(|s| s.name == "back"))
            .await;
        until("the recovery line", || {
            !pipeline.export_lines_at("INFO").is_empty()
        })
        .await;
        let infos = pipeline.export_lines_at("INFO");
        assert_eq!(infos.len(), 1, "{infos:#?}");
        assert!(infos[0].contains("recovered"), "{}", infos[0]);
        assert!(infos[0].contains("3 spans were dropped"), "{}", infos[0]);
        // Success after success says nothing more.
        pipeline.span("still fine");
        sink.wait_for(|spans| spans.iter().any(|s| s.name == "still fine"))
            .await;
        assert_eq!(pipeline.export_lines_at("INFO").len(), 1);
        assert_eq!(pipeline.export_lines_at("WARN").len(), 1);
    }
}

#[tokio::test]
async fn at_most_one_summary_per_interval() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = traces_endpoint(addr, Protocol::HttpProtobuf, "http");
    let interval = Duration::from_millis(200);
    let pipeline =
        build(builder(&endpoint, Protocol::HttpProtobuf).export_failure_log_interval(interval));
    let started = std::time::Instant::now();
    fail_batches(&pipeline, 1).await;
    // Keep failing until a summary comes.
    let mut batches = 1;
    while pipeline.export_lines_at("WARN").len() < 2 {
        fail_batches_from(&pipeline, batches).await;
        batches += 1;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no summary line"
        );
    }
    let elapsed = started.elapsed();
    let warns = pipeline.export_lines_at("WARN");
    // The first line, then one per interval at most.
    let most = 1 + (elapsed.as_millis() / interval.as_millis()) as usize;
    assert!(warns.len() <= most, "{} lines in {elapsed:?}", warns.len());
    assert!(warns[1].contains("still failing"), "{}", warns[1]);
    assert!(
        warns[1].contains("spans dropped in the last"),
        "{}",
        warns[1]
    );
}

async fn fail_batches_from(pipeline: &Pipeline, done: u64) {
    let stats = pipeline.stats("otlp");
    pipeline.span("lost again");
    until("the batch to fail", || stats.failed_exports() > done).await;
}

#[tokio::test]
async fn failure_lines_are_not_exported_as_log_records() {
    // Spans fail (refused); log records go to a working receiver.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let (logs, logs_endpoint) = grpc_receiver().await;
    let pipeline = build(
        builder(&format!("http://{dead}"), Protocol::Grpc)
            .otlp_logs(&logs_endpoint, Protocol::Grpc)
            .filter("debug"),
    );
    fail_batches(&pipeline, 2).await;
    pipeline.event("an application event");
    logs.wait_for_logs(|l| l.iter().any(|r| r.body == "an application event"))
        .await;
    assert_eq!(pipeline.export_lines_at("WARN").len(), 1);
    pipeline.event("another application event");
    let received = logs
        .wait_for_logs(|l| l.iter().any(|r| r.body == "another application event"))
        .await;
    for record in &received {
        assert!(
            !record.body.contains("OTLP export") && !record.attributes.contains_key("exporter"),
            "exported: {record:?}"
        );
    }
}
