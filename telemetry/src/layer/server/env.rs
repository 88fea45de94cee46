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
    /// `TELLTALE_HTTP_MAX_ATTRIBUTE_LEN`: longest value, in characters (1 to
    /// 1048576, default 2048), of the attributes taken from a request:
    /// `url.path`, `url.query`, `user_agent.original`, `server.address`,
    /// `http.request.method_original`, `url.full` and each
    /// captured header value; longer ones are cut. The client layer reads it
    /// too.
    MAX_ATTRIBUTE_LEN = "TELLTALE_HTTP_MAX_ATTRIBUTE_LEN";
    /// `TELLTALE_REQUEST_LOG`: which finished requests get a log line, `on`,
    /// `errors` (an `error.type` or a status of 400 and above) or `off`; see
    /// [`request_log`](crate::layer::request_log).
    REQUEST_LOG = "TELLTALE_REQUEST_LOG";
    /// `TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE`: the fraction of successful
    /// requests logged, `0` to `1` or `0%` to `100%` (failures always are).
    REQUEST_LOG_SUCCESS_SAMPLE = "TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE";
    @also [
        crate::metrics::env::NAMING,
        crate::metrics::env::MAX_LABEL_SETS,
        crate::metrics::env::PREFIX,
    ]
}
