//! [`DebugSurface`]: configuration, the router and the listener.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use telltale_core::config::{ConfigError, Env, EnvSource};
use telltale_telemetry::FlightRecorder;

use crate::env::{self, DEFAULT_ADDR};
use crate::red::Red;
use crate::view::{self, View};
use crate::{html, registry, traces};

/// Why a debug surface could not be built or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebugError {
    /// A variable is malformed (the error names it, its value and what is
    /// allowed).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token given in code is not 16 to 256 visible ASCII characters.
    #[error("debug surface token: expected 16 to 256 visible ASCII characters (no spaces)")]
    InvalidToken,
    /// The address is not loopback and serving elsewhere was not allowed.
    #[error(
        "debug surface address {addr} is not loopback: allow it with allow_remote(true) or TELLTALE_DEBUG_ALLOW_REMOTE=true"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error(
        "debug surface: cannot listen on {addr} (TELLTALE_DEBUG_ADDR picks another address, port 0 a free one)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The embedded debug surface of one service: a router with one HTML page
/// and JSON endpoints, mounted on its own loopback listener
/// ([`serve`](Self::serve)) or merged into an app ([`router`](Self::router)).
///
/// See the [crate docs](crate) for what it shows and the endpoints.
#[derive(Clone)]
#[must_use]
pub struct DebugSurface {
    addr: SocketAddr,
    allow_remote: bool,
    token: Option<String>,
    recorder: Option<FlightRecorder>,
    metrics: Option<PrometheusHandle>,
    service_name: Option<String>,
}

impl fmt::Debug for DebugSurface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugSurface")
            .field("addr", &self.addr)
            .field("allow_remote", &self.allow_remote)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("flight_recorder", &self.recorder.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl Default for DebugSurface {
    fn default() -> Self {
        Self::new()
    }
}

impl DebugSurface {
    /// Loopback [`DEFAULT_ADDR`] (`127.0.0.1:9797`), read-only, no flight
    /// recorder, no metrics. Reads no environment variable.
    pub fn new() -> Self {
        DebugSurface {
            addr: DEFAULT_ADDR,
            allow_remote: false,
            token: None,
            recorder: None,
            metrics: None,
            service_name: None,
        }
    }

    /// A surface configured from the process environment
    /// (`TELLTALE_DEBUG_*`, see [`env`](mod@crate::env)).
    pub fn from_env() -> Result<Self, DebugError> {
        Self::from_env_source(&Env::process())
    }

    /// A surface configured from `env`.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_debug::DebugSurface;
    ///
    /// let surface = DebugSurface::from_env_source(&Env::from_pairs([("TELLTALE_DEBUG_ADDR", "127.0.0.1:0")])).unwrap();
    /// assert_eq!(surface.addr().port(), 0);
    /// let err = DebugSurface::from_env_source(&Env::from_pairs([("TELLTALE_DEBUG_ADDR", "0.0.0.0:9797")])).unwrap_err();
    /// assert!(err.to_string().contains("TELLTALE_DEBUG_ADDR"));
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, DebugError> {
        Self::new().env(env)
    }

    /// Overlays the `TELLTALE_DEBUG_*` variables of `env`: set ones replace
    /// this surface's settings, unset ones keep them. An address that is
    /// not loopback is refused unless `TELLTALE_DEBUG_ALLOW_REMOTE=true`.
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_debug::DebugSurface;
    ///
    /// let surface = DebugSurface::new()
    ///     .addr_to("127.0.0.1:7000".parse().unwrap())
    ///     .env(&Env::from_pairs([("TELLTALE_DEBUG_TOKEN", "0123456789abcdef")]))
    ///     .unwrap();
    /// assert_eq!(surface.addr().port(), 7000);
    /// ```
    pub fn env<S: EnvSource>(mut self, env: &Env<S>) -> Result<Self, DebugError> {
        let settings = env::read(env)?;
        if let Some(addr) = settings.addr {
            self.addr = addr;
        }
        if let Some(allow) = settings.allow_remote {
            self.allow_remote = allow;
        }
        if let Some(token) = settings.token {
            self.token = Some(token);
        }
        Ok(self)
    }

    /// The address [`serve`](Self::serve) binds. Defaults to
    /// [`DEFAULT_ADDR`]; a non-loopback address also needs
    /// [`allow_remote`](Self::allow_remote).
    pub fn addr_to(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The address [`serve`](Self::serve) binds.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Allows [`serve`](Self::serve) on an address other than loopback.
    /// Defaults to `false`.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// The token the mutating endpoints require (16 to 256 visible ASCII
    /// characters). Defaults to none: the surface is read-only.
    pub fn token(mut self, token: impl Into<String>) -> Result<Self, DebugError> {
        let token = token.into();
        env::check_token(&token).map_err(|_| DebugError::InvalidToken)?;
        self.token = Some(token);
        Ok(self)
    }

    /// The flight recorder the traces and the dependency map come from
    /// (`TelemetryGuard::flight_recorder()`; `None` leaves the traces out).
    pub fn flight_recorder<'a>(mut self, recorder: impl Into<Option<&'a FlightRecorder>>) -> Self {
        self.recorder = recorder.into().cloned();
        self
    }

    /// The Prometheus recorder's handle RED per route is read from (what
    /// `install_prometheus` returns).
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// The service name in the page's title. Defaults to the
    /// `service.name` of the flight recorder's spans.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    fn inner(&self) -> Arc<Inner> {
        Arc::new(Inner {
            recorder: self.recorder.clone(),
            red: Red::new(self.metrics.clone()),
            token: self.token.clone(),
            service_name: self.service_name.clone(),
        })
    }

    /// The page as HTML, as `GET /?q=…` serves it (`lookup`: a correlation
    /// ID or trace ID to show the waterfall of). For tests and benches; the
    /// router calls the same code.
    pub fn render_page(&self, lookup: Option<&str>) -> String {
        let inner = self.inner();
        html::page(&View::read(&inner, lookup), "")
    }

    /// The router: mount it on its own listener ([`serve`](Self::serve)) or
    /// nest it in your app (`app.nest("/debug", surface.router())`); links
    /// follow the path it is mounted at.
    ///
    /// | method, path | what |
    /// | --- | --- |
    /// | `GET /` (`?q=` a correlation ID or trace ID) | the page |
    /// | `GET /api/overview` | everything the page shows, as JSON |
    /// | `GET /api/red`, `/api/breakers`, `/api/bulkheads`, `/api/chaos`, `/api/traces`, `/api/dependencies` | one part each |
    /// | `GET /api/trace?q=…` | the spans of the traces a correlation ID or trace ID names |
    /// | `GET /api/spans?n=…` | the `n` (default: all) most recent spans of the flight recorder, newest first |
    /// | `POST /api/chaos/pause`, `…/resume`, `…/kill` | chaos control; the token as `Authorization: Bearer …` or form field `token`; form field `target` picks one injector by label (default: all) |
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/", get(page))
            .route("/api/overview", get(overview))
            .route("/api/red", get(red))
            .route("/api/breakers", get(breakers))
            .route("/api/bulkheads", get(bulkheads))
            .route("/api/chaos", get(chaos))
            .route("/api/traces", get(trace_lists))
            .route("/api/dependencies", get(dependencies))
            .route("/api/trace", get(trace))
            .route("/api/spans", get(spans))
            .route("/api/chaos/{action}", post(chaos_action))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self.inner())
    }

    /// Binds [`addr`](Self::addr) (loopback unless allowed otherwise) and
    /// serves the [`router`](Self::router) on the current Tokio runtime
    /// until the returned [`DebugServer`] is dropped.
    pub async fn serve(self) -> Result<DebugServer, DebugError> {
        let addr = self.addr;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(DebugError::NotLoopback { addr });
        }
        let bind = |source| DebugError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        let app: Router = self.router();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(target: "telltale::debug", %error, "debug surface stopped");
            }
        });
        tracing::info!(target: "telltale::debug", url = %format!("http://{local_addr}/"), "debug page serving");
        Ok(DebugServer { local_addr, task })
    }
}

/// A debug surface being served; stops when dropped.
#[derive(Debug)]
pub struct DebugServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DebugServer {
    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The page's URL: `http://127.0.0.1:9797/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr)
    }
}

impl Drop for DebugServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the handlers share.
pub(crate) struct Inner {
    pub(crate) recorder: Option<FlightRecorder>,
    pub(crate) red: Red,
    pub(crate) token: Option<String>,
    pub(crate) service_name: Option<String>,
}

type Shared = State<Arc<Inner>>;

/// The path the router is mounted at: the original path less the path the
/// router saw; "" at the root, and "" for anything but a plain path (it is
/// written into links).
fn base(original: &Uri, seen: &Uri) -> String {
    let orig = original.path();
    let inner = seen.path();
    let base = if let Some(b) = orig.strip_suffix(inner) {
        b
    } else if inner == "/" {
        orig
    } else {
        ""
    };
    let base = base.trim_end_matches('/');
    let plain = base.starts_with('/')
        && !base.contains("//")
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'));
    if plain {
        base.to_owned()
    } else {
        String::new()
    }
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn query(params: &HashMap<String, String>) -> Option<&str> {
    params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty())
}

async fn page(
    State(inner): Shared,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let base = base(&original, &uri);
    let view = View::read(&inner, query(&params));
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html::page(&view, &base),
    )
        .into_response()
}

fn json_response(v: Value) -> Response {
    axum::Json(v).into_response()
}

async fn overview(State(inner): Shared) -> Response {
    json_response(View::read(&inner, None).to_json())
}

async fn red(State(inner): Shared) -> Response {
    json_response(inner.red.read())
}

async fn breakers() -> Response {
    json_response(Value::Array(
        registry::registered_breakers()
            .iter()
            .map(view::breaker_json)
            .collect(),
    ))
}

async fn bulkheads() -> Response {
    json_response(Value::Array(
        registry::registered_bulkheads()
            .iter()
            .map(view::bulkhead_json)
            .collect(),
    ))
}

async fn chaos() -> Response {
    json_response(Value::Array(
        registry::registered_injectors()
            .iter()
            .map(view::injector_json)
            .collect(),
    ))
}

async fn trace_lists(State(inner): Shared) -> Response {
    let view = View::read(&inner, None);
    json_response(
        view.recorder
            .as_ref()
            .map_or(Value::Null, view::traces_json),
    )
}

async fn dependencies(State(inner): Shared) -> Response {
    let view = View::read(&inner, None);
    json_response(view.recorder.as_ref().map_or(Value::Null, |r| {
        r.dependencies
            .iter()
            .map(traces::Dependency::to_json)
            .collect()
    }))
}

async fn trace(State(inner): Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(recorder) = &inner.recorder else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no flight recorder"})),
        )
            .into_response();
    };
    let Some(q) = query(&params).filter(|q| q.len() <= view::MAX_QUERY_LEN) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "q: a correlation ID or a trace ID (32 hex digits), at most 1024 characters"})),
        )
            .into_response();
    };
    let spans = traces::lookup(recorder, q);
    json_response(json!({
        "query": q,
        "spans": spans.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
    }))
}

async fn spans(State(inner): Shared, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(recorder) = &inner.recorder else {
        return error(StatusCode::NOT_FOUND, "no flight recorder");
    };
    let n = match params.get("n").map(|n| n.parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "n: a whole number of spans"),
    };
    json_response(Value::Array(
        recorder.recent(n).iter().map(|s| s.to_json()).collect(),
    ))
}

/// The form the page's chaos buttons send.
#[derive(Debug, serde::Deserialize)]
struct ActionForm {
    token: Option<String>,
    target: Option<String>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn chaos_action(
    State(inner): Shared,
    Path(action): Path<String>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    if !matches!(action.as_str(), "pause" | "resume" | "kill") {
        return error(
            StatusCode::NOT_FOUND,
            "unknown action: pause, resume or kill",
        );
    }
    let Some(expected) = &inner.token else {
        return error(
            StatusCode::FORBIDDEN,
            "read-only: set TELLTALE_DEBUG_TOKEN to allow chaos control",
        );
    };
    let form = form.ok().map(|Form(f)| f);
    let given = bearer(&headers)
        .map(str::to_owned)
        .or_else(|| form.as_ref().and_then(|f| f.token.clone()))
        .unwrap_or_default();
    let ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    if !ok {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong token");
    }
    let target = form
        .as_ref()
        .and_then(|f| f.target.clone())
        .filter(|t| !t.is_empty());
    let mut done = Vec::new();
    for i in registry::registered_injectors() {
        if target.as_ref().is_some_and(|t| *t != i.label) {
            continue;
        }
        match action.as_str() {
            "pause" => i.handle.pause(),
            "resume" => i.handle.resume(),
            _ => i.handle.kill(),
        }
        tracing::warn!(target: "telltale::debug", action = %action, injector = %i.label, "chaos control from the debug surface");
        done.push(json!({ "label": i.label, "status": view::status_text(i.handle.status()) }));
    }
    let from_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if from_form {
        // Back to the page (the path this router is mounted at).
        return Redirect::to(&format!("{}#chaos", html::page_url(&base(&original, &uri))))
            .into_response();
    }
    json_response(json!({ "action": action, "injectors": done }))
}
