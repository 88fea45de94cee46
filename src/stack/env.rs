//! The presets' own environment variables.
//!
//! [`ServerStack::from_env`](super::ServerStack::from_env) and
//! [`ClientStack::from_env`](super::ClientStack::from_env) read these and
//! every variable of the crates they compose (`TELLTALE_HTTP_*`,
//! `TELLTALE_CORRELATION_*`, `TELLTALE_BREAKER_*`, `TELLTALE_BULKHEAD_*`,
//! `TELLTALE_CHAOS*`; each crate declares its own).
//!
//! ```
//! use telltale::core::config::Env;
//! use telltale::stack::env;
//!
//! assert!(env::is_configured(&Env::from_pairs([(env::CLIENT_TIMEOUT, "2s")])));
//! assert!(!env::is_configured(&Env::from_pairs([("TELLTALE_BULKHEAD_MAX_WAIT", "0")])));
//! ```

telltale_core::env_vars! {
    /// `TELLTALE_BULKHEAD_STATUS`: the status of a full bulkhead in
    /// [`ServerStack`](super::ServerStack) (`503` or `429`).
    BULKHEAD_STATUS = "TELLTALE_BULKHEAD_STATUS";
    /// `TELLTALE_BODY_IDLE_TIMEOUT`: the bound on slow readers of
    /// [`ServerStack`](super::ServerStack) with a bulkhead (a duration from
    /// 1 ms to 1 h, or `off`; default 30 s).
    BODY_IDLE_TIMEOUT = "TELLTALE_BODY_IDLE_TIMEOUT";
    /// `TELLTALE_CLIENT_TIMEOUT`: the [`ClientStack`](super::ClientStack)
    /// timeout (a duration from 1 ms to 1 h).
    CLIENT_TIMEOUT = "TELLTALE_CLIENT_TIMEOUT";
}

use std::time::Duration;

use http::StatusCode;
use telltale_core::config::{ConfigError, Env, EnvSource, ParseError, parse_duration};

/// The shortest [`CLIENT_TIMEOUT`].
pub const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest [`CLIENT_TIMEOUT`].
pub const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// [`CLIENT_TIMEOUT`]: 1 ms ..= 1 h.
pub(crate) fn client_timeout<S: EnvSource>(env: &Env<S>) -> Result<Option<Duration>, ConfigError> {
    env.parse(CLIENT_TIMEOUT, |v| {
        let expected = "a duration from 1ms to 1h (such as 2s or 500ms)";
        let d = parse_duration(v).map_err(|e| ParseError::new(e.position(), expected))?;
        if (MIN_CLIENT_TIMEOUT..=MAX_CLIENT_TIMEOUT).contains(&d) {
            Ok(d)
        } else {
            Err(ParseError::new(1, expected))
        }
    })
}

/// [`BULKHEAD_STATUS`]: `503` or `429`.
pub(crate) fn bulkhead_status<S: EnvSource>(
    env: &Env<S>,
) -> Result<Option<StatusCode>, ConfigError> {
    env.parse(BULKHEAD_STATUS, |v| match v {
        "503" => Ok(StatusCode::SERVICE_UNAVAILABLE),
        "429" => Ok(StatusCode::TOO_MANY_REQUESTS),
        _ => Err(ParseError::new(1, "503 or 429")),
    })
}

/// The longest [`BODY_IDLE_TIMEOUT`].
pub const MAX_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// [`BODY_IDLE_TIMEOUT`]: `off`, or 1 ms ..= 1 h. `Some(None)` is `off`.
pub(crate) fn body_idle_timeout<S: EnvSource>(
    env: &Env<S>,
) -> Result<Option<Option<Duration>>, ConfigError> {
    env.parse(BODY_IDLE_TIMEOUT, |v| {
        if v.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let expected = "`off` or a duration from 1ms to 1h (such as 30s)";
        let d = parse_duration(v).map_err(|e| ParseError::new(e.position(), expected))?;
        if (Duration::from_millis(1)..=MAX_BODY_IDLE_TIMEOUT).contains(&d) {
            Ok(Some(d))
        } else {
            Err(ParseError::new(1, expected))
        }
    })
}
