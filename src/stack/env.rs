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
    /// `TELLTALE_CLIENT_TIMEOUT`: the [`ClientStack`](super::ClientStack)
    /// timeout (a duration).
    CLIENT_TIMEOUT = "TELLTALE_CLIENT_TIMEOUT";
}
