//! What the server and client layers have in common: the settings of their
//! builders, and the state their clones share.

use std::fmt;
use std::sync::Arc;

use telltale_core::config::{Env, EnvSource, ParseError, parse_list_with};

use super::attrs::{Capture, DEFAULT_REDACTED_QUERY_KEYS, Redactor, header_names};
use super::error::BuildError;
use crate::metrics::{Kind, RedConfig, RedMetrics};

/// The builder settings both sides have.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) redacted_keys: Vec<String>,
    pub(crate) request_headers: Vec<String>,
    pub(crate) response_headers: Vec<String>,
    pub(crate) tracing: bool,
    pub(crate) metrics: bool,
    pub(crate) red_config: RedConfig,
    /// The cap on request-derived attribute values, in characters.
    pub(crate) max_attribute_len: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            redacted_keys: DEFAULT_REDACTED_QUERY_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            tracing: true,
            metrics: true,
            red_config: RedConfig::default(),
            max_attribute_len: super::limits::DEFAULT_MAX_ATTRIBUTE_LEN,
        }
    }
}

impl Settings {
    /// Applies the common variables set in `env`: redacted keys, the side's
    /// captured headers, and the metrics variables.
    pub(crate) fn env<S: EnvSource>(
        &mut self,
        env: &Env<S>,
        capture_request: &str,
        capture_response: &str,
    ) -> Result<(), BuildError> {
        if let Some(v) = env.parse(super::server::env::REDACTED_QUERY_KEYS, parse_query_keys)? {
            self.redacted_keys = v;
        }
        if let Some(v) = env.parse(
            super::server::env::MAX_ATTRIBUTE_LEN,
            super::limits::parse_max_attribute_len,
        )? {
            self.max_attribute_len = v;
        }
        if let Some(v) = env.parse(capture_request, parse_header_names)? {
            self.request_headers = v;
        }
        if let Some(v) = env.parse(capture_response, parse_header_names)? {
            self.response_headers = v;
        }
        self.red_config = crate::metrics::RedConfigBuilder {
            config: self.red_config.clone(),
        }
        .env_red(env)?
        .build()?;
        Ok(())
    }

    /// Prepares the shared state; `kinds` are the HTTP and RPC metric kinds.
    pub(crate) fn build(&self, kinds: (Kind, Kind)) -> Result<Common, BuildError> {
        let request = header_names(&self.request_headers)?;
        let response = header_names(&self.response_headers)?;
        let (http_metrics, rpc_metrics) = if self.metrics {
            (
                Some(RedMetrics::new(kinds.0, &self.red_config)),
                Some(RedMetrics::new(kinds.1, &self.red_config)),
            )
        } else {
            (None, None)
        };
        Ok(Common {
            redactor: Redactor::new(&self.redacted_keys),
            request_headers: Capture::new("http.request.header.", &request, self.max_attribute_len),
            response_headers: Arc::new(Capture::new(
                "http.response.header.",
                &response,
                self.max_attribute_len,
            )),
            max_attribute_len: self.max_attribute_len,
            tracing: self.tracing,
            http_metrics,
            rpc_metrics,
        })
    }
}

/// Most items in one list variable (`TELLTALE_HTTP_*`).
pub(crate) const MAX_LIST_ITEMS: usize = 256;
/// Longest query key in `TELLTALE_HTTP_REDACTED_QUERY_KEYS`, in bytes.
pub(crate) const MAX_QUERY_KEY_LEN: usize = 256;

/// A list of at most [`MAX_LIST_ITEMS`] items, each checked by `item`.
pub(crate) fn parse_bounded_list<T>(
    s: &str,
    mut item: impl FnMut(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let mut count = 0;
    parse_list_with(s, |raw| {
        count += 1;
        if count > MAX_LIST_ITEMS {
            return Err(ParseError::new(
                1,
                format!("at most {MAX_LIST_ITEMS} items"),
            ));
        }
        item(raw)
    })
}

/// Header names to capture: valid HTTP header names (any case).
pub(crate) fn parse_header_names(s: &str) -> Result<Vec<String>, ParseError> {
    parse_bounded_list(s, |name| {
        http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map(|_| name.to_owned())
            .map_err(|_| ParseError::new(1, "a header name such as x-tenant-id"))
    })
}

/// Query keys to redact: at most [`MAX_QUERY_KEY_LEN`] bytes, no `&`, `=`,
/// `#` or whitespace (a key holding them could never match).
pub(crate) fn parse_query_keys(s: &str) -> Result<Vec<String>, ParseError> {
    parse_bounded_list(s, |key| {
        if let Some((i, _)) = key
            .chars()
            .enumerate()
            .find(|(_, c)| matches!(c, '&' | '=' | '#') || c.is_whitespace() || c.is_control())
        {
            return Err(ParseError::new(
                i + 1,
                "a query key (no '&', '=', '#', whitespace or control characters)",
            ));
        }
        if key.len() > MAX_QUERY_KEY_LEN {
            return Err(ParseError::new(
                1,
                format!("a query key of at most {MAX_QUERY_KEY_LEN} bytes"),
            ));
        }
        Ok(key.to_owned())
    })
}

/// The shared state both sides have.
#[derive(Clone)]
pub(crate) struct Common {
    pub(crate) redactor: Redactor,
    pub(crate) request_headers: Capture,
    /// Shared with response futures that capture response headers.
    pub(crate) response_headers: Arc<Capture>,
    /// The cap on request-derived attribute values, in characters.
    pub(crate) max_attribute_len: usize,
    pub(crate) tracing: bool,
    pub(crate) http_metrics: Option<RedMetrics>,
    pub(crate) rpc_metrics: Option<RedMetrics>,
}

impl Common {
    /// The metrics of a request, by protocol.
    pub(crate) fn metrics(&self, grpc: bool) -> Option<&RedMetrics> {
        if grpc {
            self.rpc_metrics.as_ref()
        } else {
            self.http_metrics.as_ref()
        }
    }

    /// The response headers to capture, when any.
    pub(crate) fn capture(&self) -> Option<Arc<Capture>> {
        (!self.response_headers.is_empty()).then(|| self.response_headers.clone())
    }

    /// Adds the common fields to a `Debug` of the shared state.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("redactor", &self.redactor)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("max_attribute_len", &self.max_attribute_len)
            .field("tracing", &self.tracing)
            .field("http_metrics", &self.http_metrics)
            .field("rpc_metrics", &self.rpc_metrics);
    }
}

/// The setters both layer builders have, over their `settings` field.
/// `$query` names the attribute whose query is redacted.
macro_rules! common_setters {
    ($query:literal) => {
        #[doc = concat!("Query keys (case-insensitive) whose values are replaced by `REDACTED` in\n`", $query, "`; replaces the list. Defaults to\n[`DEFAULT_REDACTED_QUERY_KEYS`](crate::layer::DEFAULT_REDACTED_QUERY_KEYS).")]
        pub fn redacted_query_keys<I, K>(mut self, keys: I) -> Self
        where
            I: IntoIterator<Item = K>,
            K: Into<String>,
        {
            self.settings.redacted_keys = keys.into_iter().map(Into::into).collect();
            self
        }

        /// Request headers recorded as `http.request.header.<name>` (opt-in:
        /// they may hold personal data). Defaults to none.
        pub fn capture_request_headers<I, H>(mut self, names: I) -> Self
        where
            I: IntoIterator<Item = H>,
            H: Into<String>,
        {
            self.settings.request_headers = names.into_iter().map(Into::into).collect();
            self
        }

        /// Response headers recorded as `http.response.header.<name>`. Defaults to none.
        pub fn capture_response_headers<I, H>(mut self, names: I) -> Self
        where
            I: IntoIterator<Item = H>,
            H: Into<String>,
        {
            self.settings.response_headers = names.into_iter().map(Into::into).collect();
            self
        }

        /// Longest value, in characters, of the attributes taken from a
        /// request (`url.path`, `url.query`, `user_agent.original`,
        /// `server.address`, `http.request.method_original`,
        /// `url.full`, each captured header value); longer ones are cut on a
        /// character boundary, so that one hostile request cannot make a span
        /// huge. At least 1. Defaults to
        /// [`DEFAULT_MAX_ATTRIBUTE_LEN`](crate::layer::DEFAULT_MAX_ATTRIBUTE_LEN)
        /// (2048); `TELLTALE_HTTP_MAX_ATTRIBUTE_LEN` sets it from the
        /// environment.
        pub fn max_attribute_len(mut self, max: usize) -> Self {
            self.settings.max_attribute_len = max.max(1);
            self
        }

        /// Whether spans are produced at all. Defaults to `true`.
        pub fn tracing(mut self, enabled: bool) -> Self {
            self.settings.tracing = enabled;
            self
        }

        /// Whether RED metrics are recorded. Defaults to `true`.
        pub fn metrics(mut self, enabled: bool) -> Self {
            self.settings.metrics = enabled;
            self
        }

        /// The metrics configuration (naming, cardinality cap, buckets, recorder).
        /// Defaults to [`RedConfig::default`](crate::metrics::RedConfig::default).
        pub fn red_config(mut self, config: crate::metrics::RedConfig) -> Self {
            self.settings.red_config = config;
            self
        }
    };
}
pub(crate) use common_setters;

/// What both layers have around their builder: `Debug` (the shared state),
/// `Default` (= `new`), `new`, `builder`, `from_env`, `from_env_source`, and
/// the `Layer` impl making `$service`.
macro_rules! layer_common {
    ($layer:ident, $builder:ident, $service:ident, $new_doc:literal) => {
        impl fmt::Debug for $layer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.shared.fmt(f)
            }
        }

        impl Default for $layer {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $layer {
            #[doc = $new_doc]
            pub fn new() -> Self {
                Self::builder()
                    .build()
                    .expect("the default configuration is valid")
            }

            /// A builder to configure the layer.
            pub fn builder() -> $builder {
                $builder::default()
            }

            /// A layer configured from the process environment (see
            /// [`env`](super::env) and [`metrics::env`](crate::metrics::env)).
            pub fn from_env() -> Result<Self, BuildError> {
                Self::from_env_source(&Env::process())
            }

            /// A layer configured from `env`.
            pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, BuildError> {
                $builder::default().env(env)?.build()
            }
        }

        impl<S> Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    shared: self.shared.clone(),
                }
            }
        }
    };
}
pub(crate) use layer_common;

/// The `Service` impl of a telemetry service: `poll_ready` goes to the inner
/// service, `call` to the service's own `respond`.
macro_rules! telemetry_service {
    ($service:ident) => {
        impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for $service<S>
        where
            S: Service<Request<ReqBody>, Response = Response<ResBody>>,
            S::Error: fmt::Display + 'static,
            ResBody: http_body::Body,
        {
            type Response = Response<ResponseBody<ResBody>>;
            type Error = S::Error;
            type Future = ResponseFuture<S::Future>;

            fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
                self.respond(req)
            }
        }
    };
}
pub(crate) use telemetry_service;
