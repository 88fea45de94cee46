//! The one error of [`InjectorBuilder::build`](super::InjectorBuilder::build),
//! [`InjectorBuilder::env`](super::InjectorBuilder::env) and
//! [`Injector::from_env`](super::Injector::from_env).

use telltale_core::ConfigError;

use crate::parse::RuleError;

/// Why an injector could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// `TELLTALE_CHAOS` (or the given rules text) is malformed.
    #[error("{0}")]
    Rules(#[from] RuleError),
    /// A companion variable is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Header-controlled faults were enabled without a way to trust callers.
    #[error(
        "header-controlled chaos needs trusted callers: set TELLTALE_CHAOS_HEADERS_SECRET or TELLTALE_CHAOS_HEADERS_TRUSTED"
    )]
    UntrustedHeaders,
}
