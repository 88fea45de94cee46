//! Errors building the request layers.

use telltale_core::ConfigError;

use super::attrs::InvalidIpNet;
use crate::metrics::RedConfigError;

/// Error returned by the request layers' `build()`, `env()` and `from_env*()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A trusted proxy is not an IP address or network.
    #[error(transparent)]
    TrustedProxy(#[from] InvalidIpNet),
    /// A header name to capture is not a valid header name.
    #[error("invalid header name to capture: {name:?}")]
    HeaderName {
        /// The name as given.
        name: String,
        /// Why it is not a header name.
        #[source]
        source: http::header::InvalidHeaderName,
    },
    /// An environment variable could not be parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metrics configuration is invalid.
    #[error(transparent)]
    Metrics(#[from] RedConfigError),
    /// A client origin is not an absolute `scheme://host[:port]` URI.
    #[error(
        "invalid client origin {origin:?}: expected scheme://host[:port], such as http://10.0.0.1:50051"
    )]
    Origin {
        /// The origin as given.
        origin: String,
    },
}
