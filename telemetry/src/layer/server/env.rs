//! The environment variables of the server layer, read by
//! [`ServerTelemetryLayer::from_env`](super::ServerTelemetryLayer::from_env)
//! and [`ServerTelemetryLayerBuilder::env`](super::ServerTelemetryLayerBuilder::env)
//! (which also read [`metrics::env`](crate::metrics::env)).

telltale_core::env_vars! {
    /// `TELLTALE_HTTP_TRUSTED_PROXIES`: comma-separated trusted proxies (addresses
    /// or networks such as `10.0.0.0/8`) whose `Forwarded`/`X-Forwarded-For`
    /// headers are believed.
    TRUSTED_PROXIES = "TELLTALE_HTTP_TRUSTED_PROXIES";
    /// `TELLTALE_HTTP_REDACTED_QUERY_KEYS`: comma-separated query keys whose values
    /// are redacted (replaces the default list); the client layer reads it too.
    REDACTED_QUERY_KEYS = "TELLTALE_HTTP_REDACTED_QUERY_KEYS";
    /// `TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS`: comma-separated request
    /// headers recorded as `http.request.header.<name>`.
    CAPTURE_REQUEST_HEADERS = "TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS";
    /// `TELLTALE_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS`: comma-separated response
    /// headers recorded as `http.response.header.<name>`.
    CAPTURE_RESPONSE_HEADERS = "TELLTALE_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS";
    /// `TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT`: boolean, treat every route as a
    /// public endpoint (new root trace, link to the incoming context).
    PUBLIC_ENDPOINT = "TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT";
    /// `TELLTALE_HTTP_SERVER_PUBLIC_ROUTES`: comma-separated routes (templates) or
    /// paths that are public endpoints.
    PUBLIC_ROUTES = "TELLTALE_HTTP_SERVER_PUBLIC_ROUTES";
    /// `TELLTALE_HTTP_SERVER_SKIP_TRACING`: comma-separated routes (templates) or
    /// paths whose spans are skipped.
    SKIP_TRACING = "TELLTALE_HTTP_SERVER_SKIP_TRACING";
    /// `TELLTALE_HTTP_SERVER_TRACE_HEALTH_CHECKS`: boolean, trace health checks
    /// too (off by default).
    TRACE_HEALTH_CHECKS = "TELLTALE_HTTP_SERVER_TRACE_HEALTH_CHECKS";
    /// `TELLTALE_HTTP_SERVER_GRPC_SERVICES`: comma-separated fully-qualified gRPC
    /// services (`pkg.Service`) whose paths are routes; other gRPC paths get no
    /// route unless the router matched them.
    GRPC_SERVICES = "TELLTALE_HTTP_SERVER_GRPC_SERVICES";
    @also [
        crate::metrics::env::NAMING,
        crate::metrics::env::MAX_LABEL_SETS,
        crate::metrics::env::PREFIX,
    ]
}
