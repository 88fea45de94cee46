//! The error of both builders (and of `from_env*`).

use telltale_core::config::ConfigError;

/// Why a layer could not be built: by a builder's `build()`, its `env()`, or a
/// layer's `from_env()`/`from_env_source()`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A configured header name is not a valid HTTP header name.
    #[error("invalid header name {name:?}: use token characters such as x-correlation-id")]
    InvalidHeaderName {
        /// The name as given (escaped when printed).
        name: String,
    },
    /// The same header name was configured twice (as the header and an alias, or
    /// as two aliases).
    #[error("header {name} is configured more than once")]
    DuplicateHeader {
        /// The repeated name, lowercased.
        name: String,
    },
    /// `require_header(true)` needs `trust_incoming(true)`: an ID that must be
    /// sent but is then ignored makes no sense.
    #[error("require_header(true) needs trust_incoming(true)")]
    RequireWithoutTrust,
    /// An environment variable held an unusable value.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
