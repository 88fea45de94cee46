//! What the `env` modules of the breaker and the bulkhead share.

use telltale_core::config::EnvSource;
use telltale_core::{ConfigError, Env};

/// Whether any of `prefix` + `vars` is set in `env`.
pub(crate) fn any_set<S: EnvSource>(
    env: &Env<S>,
    prefix: &str,
    vars: &[&str],
) -> Result<bool, ConfigError> {
    let names: Vec<String> = vars.iter().map(|var| format!("{prefix}{var}")).collect();
    env.any_set(&names.iter().map(String::as_str).collect::<Vec<_>>())
}
