//! The OTLP exporters (spans and log records), gRPC or HTTP/protobuf.

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use telltale_core::BoxError;

use super::settings::{OtlpConfig, Protocol};

/// Builds an OTLP exporter from its builder (span and log builders are
/// different types with the same methods).
macro_rules! build_otlp {
    ($builder:expr, $otlp:expr) => {{
        let otlp: OtlpConfig = $otlp;
        let built = match otlp.protocol {
            Protocol::Grpc => $builder
                .with_tonic()
                .with_endpoint(otlp.endpoint)
                .with_timeout(otlp.timeout)
                .with_metadata(metadata(&otlp.headers)?)
                .build(),
            Protocol::HttpProtobuf => $builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(otlp.endpoint)
                .with_timeout(otlp.timeout)
                .with_headers(otlp.headers.into_iter().collect())
                .build(),
        };
        Ok(built?)
    }};
}

/// The span exporter `otlp` describes (built inside the export worker's runtime).
pub(crate) fn otlp_exporter(
    otlp: OtlpConfig,
) -> Result<opentelemetry_otlp::SpanExporter, BoxError> {
    build_otlp!(opentelemetry_otlp::SpanExporter::builder(), otlp)
}

/// The log-record exporter `otlp` describes.
pub(crate) fn otlp_log_exporter(
    otlp: OtlpConfig,
) -> Result<opentelemetry_otlp::LogExporter, BoxError> {
    build_otlp!(opentelemetry_otlp::LogExporter::builder(), otlp)
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
