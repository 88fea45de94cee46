//! OTLP export to a collector behind TLS, over gRPC and HTTP/protobuf, with
//! real exporters and in-test receivers (certificates generated here,
//! nothing outside 127.0.0.1): a custom CA, the wrong CA, mutual TLS, the
//! per-signal variables, and gzip on and off as the receiver sees it.
#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use support::export::{Pipeline, build, from_env, try_build, until};
use support::otel::Sink;
use support::tls::{Pki, grpc_tls_receiver, http_tls_receiver};
use telltale_telemetry::{Compression, Protocol, Telemetry};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        _ => "http/protobuf",
    }
}

/// A TLS receiver for `protocol`; returns the sink and the traces endpoint.
async fn receiver(pki: &Pki, protocol: Protocol, mutual: bool) -> (Sink, String) {
    match protocol {
        Protocol::Grpc => grpc_tls_receiver(pki, mutual).await,
        _ => {
            let (sink, base) = http_tls_receiver(pki, mutual).await;
            (sink, format!("{base}/v1/traces"))
        }
    }
}

/// The encoding header the receiver saw on each request.
fn encodings(sink: &Sink, protocol: Protocol) -> Vec<Option<String>> {
    let name = match protocol {
        Protocol::Grpc => "grpc-encoding",
        _ => "content-encoding",
    };
    sink.headers()
        .iter()
        .map(|h| h.get(name).map(|v| v.to_str().unwrap().to_owned()))
        .collect()
}

async fn delivered(pipeline: &Pipeline, sink: &Sink, name: &str) {
    pipeline.span(name);
    sink.wait_for(|spans| {
        spans
            .iter()
            .any(|s| s.name == name && s.service == "export")
    })
    .await;
}

/// Waits for a failed export and returns the first WARN line.
async fn failed(pipeline: &Pipeline, name: &str) -> String {
    pipeline.span(name);
    let stats = pipeline.stats("otlp");
    until("a failed export", || stats.failed_exports() > 0).await;
    until("the failure line", || {
        !pipeline.export_lines_at("WARN").is_empty()
    })
    .await;
    assert_eq!(stats.exported(), 0);
    pipeline.export_lines_at("WARN").remove(0)
}

#[tokio::test]
async fn trusted_ca_delivers_spans_without_compression() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, false).await;
        let pipeline = build(
            Telemetry::builder()
                .otlp(&endpoint, protocol)
                .otlp_ca_certificate(pki.ca.as_bytes())
                .export_delay(Duration::from_millis(10)),
        );
        delivered(&pipeline, &sink, "over tls").await;
        assert!(
            encodings(&sink, protocol).iter().all(Option::is_none),
            "{protocol:?}: {:?}",
            sink.headers()
        );
        assert!(pipeline.export_lines_at("WARN").is_empty());
    }
}

#[tokio::test]
async fn variables_set_the_ca_and_gzip() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, false).await;
        let pipeline = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol_name(protocol)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .unwrap();
        delivered(&pipeline, &sink, "gzipped").await;
        let seen = encodings(&sink, protocol);
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|e| e.as_deref() == Some("gzip")),
            "{protocol:?}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn the_signal_variable_wins_over_the_general_one() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, false).await;
        let pipeline = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                protocol_name(protocol),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("other-ca.pem")),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &pki.file("ca.pem")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ])
        .unwrap();
        delivered(&pipeline, &sink, "per signal").await;
        assert!(encodings(&sink, protocol).iter().all(Option::is_none));
    }
}

#[tokio::test]
async fn an_untrusted_certificate_fails_and_says_so() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, false).await;
        // The wrong CA; then no CA at all (the system's roots).
        let wrong = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol_name(protocol)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("other-ca.pem")),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ])
        .unwrap();
        let line = failed(&wrong, "untrusted").await;
        assert!(
            line.contains("certificate is not trusted"),
            "{protocol:?}: {line}"
        );
        assert!(line.contains(&endpoint), "{line}");
        let system = try_build(
            Telemetry::builder()
                .otlp(&endpoint, protocol)
                .otlp_timeout(Duration::from_secs(2))
                .export_delay(Duration::from_millis(10)),
        );
        // A system without any root certificate cannot even start an
        // exporter (and says what to set); one with roots does not trust
        // the test CA.
        match system {
            Ok(system) => {
                let line = failed(&system, "system roots").await;
                assert!(
                    line.contains("certificate is not trusted"),
                    "{protocol:?}: {line}"
                );
            }
            Err(e) => assert!(
                e.to_string().contains("OTEL_EXPORTER_OTLP_CERTIFICATE"),
                "{e}"
            ),
        }
        assert!(sink.spans().is_empty());
    }
}

#[tokio::test]
async fn mutual_tls_works_with_a_client_certificate_and_fails_without() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, true).await;
        let with = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol_name(protocol)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                &pki.file("client.pem"),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                &pki.file("client.key"),
            ),
        ])
        .unwrap();
        delivered(&with, &sink, "mutual").await;

        let without = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol_name(protocol)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("ca.pem")),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ])
        .unwrap();
        let line = failed(&without, "no client certificate").await;
        assert!(line.contains("failed"), "{protocol:?}: {line}");
        assert!(
            !sink
                .spans()
                .iter()
                .any(|s| s.name == "no client certificate")
        );
    }
}

#[tokio::test]
async fn gzip_in_code_compresses_over_both_transports() {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let (sink, endpoint) = receiver(&pki, protocol, false).await;
        let pipeline = build(
            Telemetry::builder()
                .otlp(&endpoint, protocol)
                .otlp_ca_certificate(pki.ca.as_bytes())
                .otlp_compression(Compression::Gzip)
                .export_delay(Duration::from_millis(10)),
        );
        delivered(&pipeline, &sink, "gzip in code").await;
        assert!(
            encodings(&sink, protocol)
                .iter()
                .all(|e| e.as_deref() == Some("gzip"))
        );
    }
}
