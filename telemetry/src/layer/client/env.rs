//! The environment variables of the client layer, read by
//! [`ClientTelemetryLayer::from_env`](super::ClientTelemetryLayer::from_env)
//! and [`ClientTelemetryLayerBuilder::env`](super::ClientTelemetryLayerBuilder::env)
//! (which also read [`REDACTED_QUERY_KEYS`] and
//! [`metrics::env`](crate::metrics::env)).

pub use crate::layer::server::env::{MAX_ATTRIBUTE_LEN, REDACTED_QUERY_KEYS};

telltale_core::env_vars! {
    /// `TELLTALE_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS`: comma-separated request
    /// headers recorded as `http.request.header.<name>`.
    CAPTURE_REQUEST_HEADERS = "TELLTALE_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS";
    /// `TELLTALE_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS`: comma-separated response
    /// headers recorded as `http.response.header.<name>`.
    CAPTURE_RESPONSE_HEADERS = "TELLTALE_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS";
    /// `TELLTALE_HTTP_CLIENT_PROPAGATE`: boolean, inject the trace context into
    /// outbound requests (on by default).
    PROPAGATE = "TELLTALE_HTTP_CLIENT_PROPAGATE";
    @also [
        REDACTED_QUERY_KEYS,
        MAX_ATTRIBUTE_LEN,
        crate::metrics::env::NAMING,
        crate::metrics::env::MAX_LABEL_SETS,
        crate::metrics::env::PREFIX,
    ]
}
