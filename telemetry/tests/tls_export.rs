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
use telltale_telemetry::{Compression, Protocol, Telemetry, TelemetryBuilder};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        _ => "http/protobuf",
    }
}

/// A TLS receiver of spans over one protocol.
struct Receiver {
    protocol: Protocol,
    sink: Sink,
    /// Its traces endpoint.
    endpoint: String,
}

impl Receiver {
    /// A receiver for `protocol` with a certificate of `pki`, asking for the
    /// client's certificate when `mutual`.
    async fn start(pki: &Pki, protocol: Protocol, mutual: bool) -> Receiver {
        let (sink, endpoint) = match protocol {
            Protocol::Grpc => grpc_tls_receiver(pki, mutual).await,
            _ => {
                let (sink, base) = http_tls_receiver(pki, mutual).await;
                (sink, format!("{base}/v1/traces"))
            }
        };
        Receiver {
            protocol,
            sink,
            endpoint,
        }
    }

    /// A pipeline built in code that sends spans here, trusting the CA of
    /// `pki`.
    fn trusting(&self, pki: &Pki) -> TelemetryBuilder {
        Telemetry::builder()
            .otlp(&self.endpoint, self.protocol)
            .otlp_ca_certificate(pki.ca.as_bytes())
            .export_delay(Duration::from_millis(10))
    }

    /// A pipeline from the variables that send spans here
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`)
    /// trusting the CA file `ca` (`OTEL_EXPORTER_OTLP_CERTIFICATE`), and
    /// `more`.
    fn pipeline_from_env(&self, ca: &str, more: &[(&str, &str)]) -> Pipeline {
        let mut pairs = vec![
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol_name(self.protocol)),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        ];
        pairs.extend_from_slice(more);
        from_env(&pairs).unwrap()
    }

    /// The encoding header the receiver saw on each request.
    fn encodings(&self) -> Vec<Option<String>> {
        let name = match self.protocol {
            Protocol::Grpc => "grpc-encoding",
            _ => "content-encoding",
        };
        self.sink
            .headers()
            .iter()
            .map(|h| h.get(name).map(|v| v.to_str().unwrap().to_owned()))
            .collect()
    }

    /// Emits a span named `name` through `pipeline` and waits until it is
    /// received here.
    async fn delivered(&self, pipeline: &Pipeline, name: &str) {
        pipeline.span(name);
        self.sink
            .wait_for(|spans| {
                spans
                    .iter()
                    .any(|s| s.name == name && s.service == "export")
            })
            .await;
    }
}

/// Runs `test` once per protocol, one after the other, each time against a
/// new receiver (asking for client certificates when `mutual`); every
/// certificate comes from one PKI made for the test.
async fn each_protocol(mutual: bool, test: impl AsyncFn(&Pki, &Receiver)) {
    let pki = Pki::generate();
    for protocol in PROTOCOLS {
        let receiver = Receiver::start(&pki, protocol, mutual).await;
        test(&pki, &receiver).await;
    }
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
    each_protocol(false, async |pki, receiver| {
        let pipeline = build(receiver.trusting(pki));
        receiver.delivered(&pipeline, "over tls").await;
        assert!(
            receiver.encodings().iter().all(Option::is_none),
            "{:?}: {:?}",
            receiver.protocol,
            receiver.sink.headers()
        );
        assert!(pipeline.export_lines_at("WARN").is_empty());
    })
    .await;
}

#[tokio::test]
async fn variables_set_the_ca_and_gzip() {
    each_protocol(false, async |pki, receiver| {
        let pipeline = receiver.pipeline_from_env(
            &pki.file("ca.pem"),
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
        );
        receiver.delivered(&pipeline, "gzipped").await;
        let seen = receiver.encodings();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|e| e.as_deref() == Some("gzip")),
            "{:?}: {seen:?}",
            receiver.protocol
        );
    })
    .await;
}

#[tokio::test]
async fn the_signal_variable_wins_over_the_general_one() {
    each_protocol(false, async |pki, receiver| {
        let pipeline = from_env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                protocol_name(receiver.protocol),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.file("other-ca.pem")),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &pki.file("ca.pem")),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ])
        .unwrap();
        receiver.delivered(&pipeline, "per signal").await;
        assert!(receiver.encodings().iter().all(Option::is_none));
    })
    .await;
}

#[tokio::test]
async fn an_untrusted_certificate_fails_and_says_so() {
    each_protocol(false, async |pki, receiver| {
        let protocol = receiver.protocol;
        // The wrong CA; then no CA at all (the system's roots).
        let wrong = receiver.pipeline_from_env(
            &pki.file("other-ca.pem"),
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")],
        );
        let line = failed(&wrong, "untrusted").await;
        assert!(
            line.contains("certificate is not trusted"),
            "{protocol:?}: {line}"
        );
        assert!(line.contains(&receiver.endpoint), "{line}");
        let system = try_build(
            Telemetry::builder()
                .otlp(&receiver.endpoint, protocol)
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
        assert!(receiver.sink.spans().is_empty());
    })
    .await;
}

#[tokio::test]
async fn mutual_tls_works_with_a_client_certificate_and_fails_without() {
    each_protocol(true, async |pki, receiver| {
        let with = receiver.pipeline_from_env(
            &pki.file("ca.pem"),
            &[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    &pki.file("client.pem"),
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                    &pki.file("client.key"),
                ),
            ],
        );
        receiver.delivered(&with, "mutual").await;

        let without = receiver.pipeline_from_env(
            &pki.file("ca.pem"),
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")],
        );
        let line = failed(&without, "no client certificate").await;
        assert!(line.contains("failed"), "{:?}: {line}", receiver.protocol);
        assert!(
            !receiver
                .sink
                .spans()
                .iter()
                .any(|s| s.name == "no client certificate")
        );
    })
    .await;
}

#[tokio::test]
async fn gzip_in_code_compresses_over_both_transports() {
    each_protocol(false, async |pki, receiver| {
        let pipeline = build(receiver.trusting(pki).otlp_compression(Compression::Gzip));
        receiver.delivered(&pipeline, "gzip in code").await;
        assert!(
            receiver
                .encodings()
                .iter()
                .all(|e| e.as_deref() == Some("gzip"))
        );
    })
    .await;
}
