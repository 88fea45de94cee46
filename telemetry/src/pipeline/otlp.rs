//! The OTLP exporters (spans, log records and metrics), gRPC or HTTP/protobuf, over
//! telltale's connector (TCP, then rustls for `https://` endpoints; see
//! `export::transport`), optionally gzip-compressed.

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use telltale_core::BoxError;

use super::export::transport::{Connector, HttpClient, LastCause};
use super::settings::{Compression, OtlpConfig, Protocol};

/// Builds an OTLP exporter from its builder (span and log builders are
/// different types with the same methods).
macro_rules! build_otlp {
    ($builder:expr, $otlp:expr, $cause:expr) => {{
        let otlp: OtlpConfig = $otlp;
        let uri: http::Uri = otlp.endpoint.parse()?;
        let built = match otlp.protocol {
            Protocol::Grpc => {
                let connector = Connector::new(&uri, &otlp.tls, b"h2", $cause)?;
                // tonic is given `http://`: TLS is the connector's, so that
                // its failures keep their cause and tonic's own TLS
                // (scheme-driven) never runs; the requests still carry the
                // endpoint as their origin.
                let channel = tonic::transport::Endpoint::from_shared(plain(&uri)?)?
                    .origin(uri)
                    .timeout(otlp.timeout)
                    .connect_with_connector_lazy(connector);
                let builder = $builder
                    .with_tonic()
                    .with_channel(channel)
                    .with_timeout(otlp.timeout)
                    .with_metadata(metadata(&otlp.headers)?);
                match otlp.compression {
                    Compression::Gzip => {
                        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
                    }
                    Compression::None => builder,
                }
                .build()
            }
            Protocol::HttpProtobuf => {
                let connector = Connector::new(&uri, &otlp.tls, b"http/1.1", $cause)?;
                let client = HttpClient::new(connector, otlp.timeout);
                let builder = $builder
                    .with_http()
                    .with_http_client(client)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(otlp.endpoint)
                    .with_timeout(otlp.timeout)
                    .with_headers(otlp.headers.into_iter().collect());
                match otlp.compression {
                    Compression::Gzip => {
                        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
                    }
                    Compression::None => builder,
                }
                .build()
            }
        };
        Ok(built?)
    }};
}

/// The span exporter `otlp` describes (built inside the export worker's
/// runtime); connection failures are described in `cause`.
pub(crate) fn otlp_exporter(
    otlp: OtlpConfig,
    cause: LastCause,
) -> Result<opentelemetry_otlp::SpanExporter, BoxError> {
    build_otlp!(opentelemetry_otlp::SpanExporter::builder(), otlp, cause)
}

/// The log-record exporter `otlp` describes.
pub(crate) fn otlp_log_exporter(
    otlp: OtlpConfig,
    cause: LastCause,
) -> Result<opentelemetry_otlp::LogExporter, BoxError> {
    build_otlp!(opentelemetry_otlp::LogExporter::builder(), otlp, cause)
}

/// The metric exporter `otlp` describes (cumulative temporality; built
/// inside a Tokio runtime's context).
pub(crate) fn otlp_metric_exporter(
    otlp: OtlpConfig,
    cause: LastCause,
) -> Result<opentelemetry_otlp::MetricExporter, BoxError> {
    build_otlp!(
        opentelemetry_otlp::MetricExporter::builder()
            .with_temporality(opentelemetry_sdk::metrics::Temporality::Cumulative),
        otlp,
        cause
    )
}

/// `uri` with the `http` scheme.
fn plain(uri: &http::Uri) -> Result<String, BoxError> {
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    Ok(http::Uri::from_parts(parts)?.to_string())
}

/// OTLP headers as gRPC metadata.
fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, BoxError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let name: http::HeaderName = name.parse()?;
        let value: http::HeaderValue = value.parse()?;
        map.append(name, value);
    }
    Ok(MetadataMap::from_headers(map))
}
