//! The settings of the pipeline that are values of their own: exporters,
//! protocol, sampler, log format, and the defaults.

use std::str::FromStr;
use std::time::Duration;

use telltale_core::config::ParseError;

use super::fmt::Profile;

/// Default capacity of the flight recorder, in spans.
pub const DEFAULT_FLIGHT_RECORDER_CAPACITY: usize = 2048;
/// Default bound of the export queue, in spans.
pub const DEFAULT_EXPORT_QUEUE_SIZE: usize = 2048;
/// Default byte budget of the flight recorder: 16 MiB of spans, by their
/// [estimated sizes](crate::pipeline::estimated_size). 2048 ordinary request
/// spans (1 to 5 kB each, with the request attributes capped) take 2 to
/// 10 MB, so the budget only binds when spans are outsized.
pub const DEFAULT_FLIGHT_RECORDER_MAX_BYTES: usize = 16 << 20;
/// Default byte budget of one export queue: 16 MiB of spans (or log records)
/// waiting or in the batch being exported, for the same reason.
pub const DEFAULT_EXPORT_QUEUE_MAX_BYTES: usize = 16 << 20;
/// Smallest byte budget accepted (`TELLTALE_FLIGHT_RECORDER_MAX_BYTES`,
/// `TELLTALE_EXPORT_QUEUE_MAX_BYTES`): 64 KiB, room for a few spans.
pub const MIN_MAX_BYTES: u64 = 64 << 10;
/// Largest byte budget accepted: 16 GiB.
pub const MAX_MAX_BYTES: u64 = 16 << 30;
/// Default largest batch handed to an exporter, in spans.
pub const DEFAULT_EXPORT_BATCH_SIZE: usize = 512;
/// Default longest wait before a partial batch is exported.
pub const DEFAULT_EXPORT_DELAY: Duration = Duration::from_secs(1);
/// Default bound of one export call (OTLP request).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of the flush and shutdown done when the guard drops.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest field value written to a log line, in characters.
pub const DEFAULT_MAX_FIELD_LEN: usize = 4096;
/// Default log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// Wire protocol of the OTLP exporter (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), usually port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), usually port
    /// 4318. The default, as the OpenTelemetry specification asks.
    #[default]
    HttpProtobuf,
}

impl FromStr for Protocol {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Err(ParseError::new(
                1,
                "grpc or http/protobuf (http/json is not supported)",
            )),
            _ => Err(ParseError::new(1, "grpc or http/protobuf")),
        }
    }
}

/// Which traces are sampled (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// `always_on`: every trace.
    AlwaysOn,
    /// `always_off`: no trace.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces, by trace ID.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the parent's decision,
    /// sample roots.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the parent's decision, drop roots.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the parent's decision, sample this
    /// fraction of roots.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    pub(crate) fn to_sdk(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler as S;
        match self {
            Sampler::AlwaysOn => S::AlwaysOn,
            Sampler::AlwaysOff => S::AlwaysOff,
            Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
            Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
            Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
            Sampler::ParentBasedTraceIdRatio(r) => {
                S::ParentBased(Box::new(S::TraceIdRatioBased(r)))
            }
        }
    }
}

/// How log lines look (`TELLTALE_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line with the given naming profile (`json` or
    /// `otel` for [`Profile::OpenTelemetry`], `ecs` for
    /// [`Profile::ElasticCommonSchema`]). The default is `json`.
    Json(Profile),
    /// Human-readable lines for terminals (`pretty`).
    #[default]
    Pretty,
    /// No log output (`none` or `off`); spans are still exported.
    None,
}

impl FromStr for LogFormat {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "json" | "otel" | "opentelemetry" => Ok(LogFormat::Json(Profile::OpenTelemetry)),
            "ecs" | "elastic" => Ok(LogFormat::Json(Profile::ElasticCommonSchema)),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "none" | "off" => Ok(LogFormat::None),
            _ => Err(ParseError::new(1, "json, ecs, pretty or none")),
        }
    }
}

/// A span exporter named in `OTEL_TRACES_EXPORTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// OTLP to a collector (`otlp`).
    Otlp,
    /// One line per finished span on standard output, in the log lines'
    /// format (`console` or `stdout`; see [`StdoutExporter`](crate::StdoutExporter)).
    Stdout,
}

/// Largest export queue accepted (`TELLTALE_EXPORT_QUEUE_SIZE`,
/// `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE`), in spans or log
/// records: a bound on memory, whatever a variable says.
pub const MAX_EXPORT_QUEUE_SIZE: usize = 1 << 20;
/// Largest export batch accepted (`TELLTALE_EXPORT_BATCH_SIZE`,
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`).
pub const MAX_EXPORT_BATCH_SIZE: usize = 1 << 16;
/// Longest export delay and export timeout accepted: one hour.
pub const MAX_EXPORT_DURATION: Duration = Duration::from_secs(3600);
/// Default interval between two "export still failing" lines while a
/// collector stays unreachable.
pub const DEFAULT_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Payload compression of OTLP exports (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression (`none`), the default.
    #[default]
    None,
    /// gzip (`gzip`): `grpc-encoding: gzip` over gRPC, `Content-Encoding:
    /// gzip` over HTTP.
    Gzip,
}

impl FromStr for Compression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            _ => Err(ParseError::new(1, "gzip or none")),
        }
    }
}

/// TLS settings of an OTLP exporter (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
/// `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`), used for `https://` endpoints.
/// PEM contents, not paths: the variables' files are read (and checked) when
/// the variables are read.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpTls {
    /// PEM certificates trusted to sign the collector's certificate, instead
    /// of the system's roots. `None`: the system's roots.
    pub ca_certificate: Option<Vec<u8>>,
    /// PEM client certificate chain and PEM private key, for mutual TLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for OtlpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTls")
            .field("ca_certificate", &self.ca_certificate.is_some())
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

/// OTLP exporter settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// Full URL spans are sent to. For HTTP this includes `/v1/traces` (added
    /// to `OTEL_EXPORTER_OTLP_ENDPOINT`, not to the `_TRACES_` variant).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Headers (gRPC metadata) sent with every export.
    pub headers: Vec<(String, String)>,
    /// Bound of one export request.
    pub timeout: Duration,
    /// Payload compression.
    pub compression: Compression,
    /// TLS settings for an `https://` endpoint.
    pub tls: OtlpTls,
}

impl OtlpConfig {
    /// Settings for `endpoint` over `protocol`, every other setting at its
    /// default (no headers, the default timeout, no compression, the
    /// system's roots).
    pub fn new(endpoint: impl Into<String>, protocol: Protocol) -> Self {
        OtlpConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: Vec::new(),
            timeout: DEFAULT_EXPORT_TIMEOUT,
            compression: Compression::None,
            tls: OtlpTls::default(),
        }
    }
}

/// One signal's batch settings that differ from the shared ones
/// (`OTEL_BSP_*`, `OTEL_BLRP_*`); `None`: the shared value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SignalBatch {
    pub(crate) queue_size: Option<usize>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) delay: Option<Duration>,
    /// Bound of one export call, over the OTLP request timeout.
    pub(crate) export_timeout: Option<Duration>,
}

/// The builder's export settings beyond the shared queue, batch and delay.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExportExtras {
    pub(crate) spans: SignalBatch,
    pub(crate) logs: SignalBatch,
    pub(crate) failure_log_interval: Duration,
    /// `OTEL_LOG_LEVEL`: the level of the OpenTelemetry SDK's own logs.
    pub(crate) sdk_log_level: Option<tracing::level_filters::LevelFilter>,
    /// Warnings found while reading variables, logged once built.
    pub(crate) warnings: Vec<String>,
}

impl Default for ExportExtras {
    fn default() -> Self {
        ExportExtras {
            spans: SignalBatch::default(),
            logs: SignalBatch::default(),
            failure_log_interval: DEFAULT_FAILURE_LOG_INTERVAL,
            sdk_log_level: None,
            warnings: Vec::new(),
        }
    }
}
