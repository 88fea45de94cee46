//! The bulkhead's environment variables: `prefix` + a name below, the prefix
//! being [`DEFAULT_PREFIX`] unless the builder is given another one
//! ([`BulkheadBuilder::env_with_prefix`]).
//!
//! [`VARS`] lists every variable the bulkhead reads (without prefix);
//! [`is_configured`] says whether any `TELLTALE_BULKHEAD_*` variable of [`VARS`]
//! is set in `env` (presets leave an unconfigured bulkhead out, or
//! [unlimited](super::Bulkhead::unlimited)).
//!
//! | variable | example | allowed | setting |
//! | --- | --- | --- | --- |
//! | [`MAX_CONCURRENT`] | `8` | 1 ..= 1 000 000 ([`MAX_SLOTS`]) | [`max_concurrent`](BulkheadBuilder::max_concurrent) |
//! | [`MAX_WAIT`] | `0`, `50ms` | 0 ..= 60 s ([`MAX_MAX_WAIT`]) | [`max_wait`](BulkheadBuilder::max_wait) |
//!
//! A value outside its range is an error naming the variable, quoting the
//! value and stating the range.
//!
//! ```
//! use telltale_core::Env;
//! use telltale_resilience::bulkhead::env;
//!
//! let set = Env::from_pairs([("TELLTALE_BULKHEAD_MAX_WAIT", "20ms")]);
//! assert!(env::is_configured(&set));
//! assert_eq!(env::VARS, [env::MAX_CONCURRENT, env::MAX_WAIT]);
//! ```
//!
//! [`BulkheadBuilder::env`] overlays the variables on settings made in code,
//! [`BulkheadBuilder::env_with_prefix`] reads them under another prefix:
//!
//! ```
//! use telltale_core::Env;
//! use telltale_resilience::Bulkhead;
//!
//! let env = Env::from_pairs([("TELLTALE_BULKHEAD_MAX_CONCURRENT", "8"), ("B_MAX_WAIT", "20ms")]);
//! let bulkhead = Bulkhead::builder("x").env(&env).unwrap().build().unwrap();
//! assert_eq!(bulkhead.max_concurrent(), 8);
//! let bulkhead = Bulkhead::builder("x").env_with_prefix(&env, "B_").unwrap().build().unwrap();
//! assert_eq!(bulkhead.max_wait().as_millis(), 20);
//! ```

use std::time::Duration;

use telltale_core::config::EnvSource;
use telltale_core::{ConfigError, Env};

use super::BulkheadBuilder;
use crate::env_range::{duration_in, number_in};

telltale_core::env_vars! {
    /// The prefix of the variables read by [`BulkheadBuilder::env`] and
    /// [`Bulkhead::from_env`](super::Bulkhead::from_env).
    @prefix DEFAULT_PREFIX = "TELLTALE_BULKHEAD_";
    /// `MAX_CONCURRENT`: the calls allowed at once (a number).
    MAX_CONCURRENT;
    /// `MAX_WAIT`: the longest wait for a slot (a duration; `0` rejects at once).
    MAX_WAIT;
}

/// The most slots [`MAX_CONCURRENT`] may ask for (the builder allows up to
/// 2^61 in code).
pub const MAX_SLOTS: usize = 1_000_000;
/// The longest [`MAX_WAIT`].
pub const MAX_MAX_WAIT: Duration = Duration::from_secs(60);

/// Overlays the variables set in `env` (under `prefix`) on `b`, each checked
/// against its range.
pub(super) fn apply<S: EnvSource>(
    mut b: BulkheadBuilder,
    env: &Env<S>,
    prefix: &str,
) -> Result<BulkheadBuilder, ConfigError> {
    if let Some(v) = number_in(env, &format!("{prefix}{MAX_CONCURRENT}"), 1, MAX_SLOTS)? {
        b.max_concurrent = v;
    }
    if let Some(v) = duration_in(
        env,
        &format!("{prefix}{MAX_WAIT}"),
        Duration::ZERO,
        MAX_MAX_WAIT,
    )? {
        b.max_wait = v;
    }
    Ok(b)
}
