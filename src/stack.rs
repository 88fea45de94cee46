//! Stack presets: every telltale layer of one side, composed in the
//! recommended order, as one tower [`Layer`].
//!
//! ```
//! use axum::{Router, routing::get};
//! use std::time::Duration;
//! use telltale::resilience::{Bulkhead, CircuitBreaker};
//! use telltale::stack::ServerStack;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // From the environment (TELLTALE_*, see the README's table)...
//! let from_env = ServerStack::from_env()?;
//! // ...or in code.
//! let stack = ServerStack::new()
//!     .breaker(CircuitBreaker::builder("orders").build()?)
//!     .bulkhead(Bulkhead::builder("orders").max_concurrent(64).max_wait(Duration::from_millis(20)).build()?);
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(stack.layer()); // infallible: rejections are 503 / 429 responses
//! # let _ = (app, from_env);
//! # Ok(()) }
//! ```
//!
//! # Server order, outermost first
//!
//! 1. **Request span + RED metrics** ([`telemetry::layer::ServerLayer`]):
//!    outermost, so that everything below it — rejections, injected faults,
//!    the handler — is inside the span and counted with its real status and
//!    duration.
//! 2. **Correlation ID** ([`correlation::CorrelationLayer`]): inside the span,
//!    so the ID it reads or generates is recorded on that span (and set for
//!    every log line and outbound call of the request).
//! 3. **Errors to responses** ([`ErrorResponse`]): an open circuit becomes
//!    `503` with `Retry-After`, a full bulkhead `503` (or `429`), a timeout
//!    `504`, anything else `500`; gRPC requests get a trailers-only response
//!    with `grpc-status` `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
//!    `DEADLINE_EXCEEDED` or `INTERNAL`. The stack is infallible (what axum's
//!    `Router::layer` asks for) and the span above sees the mapped status.
//!    An injected `abort`/`reset` therefore becomes a `500` here; to break
//!    real connections, serve `ChaosLayer::inbound` outside the stack with
//!    hyper-util (see the chaos crate's README).
//! 4. **Circuit breaker** ([`resilience::CircuitBreaker`]): outside the
//!    bulkhead, so a full bulkhead is counted by the breaker and an open
//!    circuit rejects before taking a slot.
//! 5. **Bulkhead** ([`resilience::Bulkhead`]): the slot is held until the
//!    response body ends.
//! 6. **Chaos** ([`chaos::ChaosLayer::inbound`]): innermost, right around the
//!    handler, so injected delays and failures look like a slow or failing
//!    handler to everything above: the breaker counts them, the bulkhead holds
//!    a slot, the span is tagged `chaos.*` and keeps the status.
//!
//! # Client order, outermost first
//!
//! 1. **CLIENT span + RED metrics** ([`telemetry::layer::ClientLayer`]), which
//!    also injects `traceparent`: rejections and timeouts below are visible as
//!    failed CLIENT spans.
//! 2. **Correlation ID** ([`correlation::InjectCorrelationLayer`]): the ID of
//!    the request being served goes out with the call.
//! 3. **Circuit breaker**: sees every failure below, including timeouts and
//!    injected faults.
//! 4. **Timeout** (`tower::timeout`): inside the breaker, so a timeout is a
//!    counted failure (not an abandoned call), and outside chaos and the
//!    bulkhead, so injected delays and the wait for a slot count against it.
//! 5. **Chaos** ([`chaos::ChaosLayer::outbound`]): outermost inside the
//!    breaker, so the breaker sees injected failures exactly as real ones,
//!    and an injected fault never takes a bulkhead slot.
//! 6. **Bulkhead**: limits the calls really in flight to the dependency.
//!
//! A breaker or bulkhead that is not configured is present but inert (a
//! breaker in the `disabled` state, a bulkhead with 2^61 slots), so both
//! presets have one concrete type whatever the configuration. Inert ones are
//! built under a no-op `metrics` recorder: they export no series and never
//! show up on a dashboard.
//!
//! [`telemetry::layer::ServerLayer`]: crate::telemetry::layer::ServerLayer
//! [`telemetry::layer::ClientLayer`]: crate::telemetry::layer::ClientLayer
//! [`correlation::CorrelationLayer`]: crate::correlation::CorrelationLayer
//! [`correlation::InjectCorrelationLayer`]: crate::correlation::InjectCorrelationLayer
//! [`resilience::CircuitBreaker`]: crate::resilience::CircuitBreaker
//! [`resilience::Bulkhead`]: crate::resilience::Bulkhead
//! [`chaos::ChaosLayer::inbound`]: crate::chaos::ChaosLayer::inbound
//! [`chaos::ChaosLayer::outbound`]: crate::chaos::ChaosLayer::outbound

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Empty};
use pin_project_lite::pin_project;
use telltale_chaos::{Chaos, ChaosLayer, Injector};
use telltale_core::BoxError;
use telltale_core::config::{ConfigError, Env, EnvSource};
use telltale_correlation::client::InjectCorrelation;
use telltale_correlation::server::Correlation;
use telltale_correlation::{CorrelationLayer, InjectCorrelationLayer};
use telltale_resilience::breaker::CircuitBreakerService;
use telltale_resilience::bulkhead::BulkheadService;
use telltale_resilience::{Bulkhead, CircuitBreaker, Rejection, State};
use telltale_telemetry::layer::client::Client;
use telltale_telemetry::layer::server::Server;
use telltale_telemetry::layer::{ClientLayer, ServerLayer};
use tower::timeout::Timeout;
use tower_layer::Layer;
use tower_service::Service;

/// Timeout of outbound calls in [`ClientStack`] unless configured.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `TELLTALE_CLIENT_TIMEOUT`: the [`ClientStack`] timeout (a duration).
pub const CLIENT_TIMEOUT_VAR: &str = "TELLTALE_CLIENT_TIMEOUT";

/// `TELLTALE_BULKHEAD_STATUS`: the status of a full bulkhead in
/// [`ServerStack`] (`503` or `429`).
pub const BULKHEAD_STATUS_VAR: &str = "TELLTALE_BULKHEAD_STATUS";

const BREAKER_PREFIX: &str = "TELLTALE_BREAKER_";
const BULKHEAD_PREFIX: &str = "TELLTALE_BULKHEAD_";
const BREAKER_VARS: &[&str] = &[
    "WINDOW",
    "WINDOW_BUCKETS",
    "FAILURE_RATE",
    "SLOW_CALL_RATE",
    "SLOW_CALL_DURATION",
    "MINIMUM_CALLS",
    "OPEN_WAIT",
    "OPEN_WAIT_MULTIPLIER",
    "OPEN_WAIT_MAX",
    "OPEN_WAIT_JITTER",
    "HALF_OPEN_PROBES",
    "PROBE_DEADLINE",
    "FAILURE_STATUSES",
    "ABANDONED",
    "STATE",
];

/// A [`ServerStack`] with the defaults; see [`ServerStack::new`].
///
/// ```
/// let app: axum::Router = axum::Router::new().layer(telltale::stack().layer());
/// # let _ = app;
/// ```
pub fn stack() -> ServerStack {
    ServerStack::new()
}

/// Why a stack could not be built from the environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A variable is malformed (the error names it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The telemetry request layer refused its settings.
    #[error(transparent)]
    Telemetry(#[from] telltale_telemetry::layer::BuildError),
    /// The correlation layer refused its settings.
    #[error(transparent)]
    Correlation(#[from] telltale_correlation::BuildError),
    /// The breaker or bulkhead refused its settings.
    #[error(transparent)]
    Resilience(#[from] telltale_resilience::BuildError),
    /// The chaos rules or settings are malformed.
    #[error(transparent)]
    Chaos(#[from] telltale_chaos::ChaosError),
}

fn any_set<S: EnvSource>(env: &Env<S>, prefix: &str, names: &[&str]) -> Result<bool, ConfigError> {
    for name in names {
        if env.string(&format!("{prefix}{name}"))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn breaker_from_env<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<CircuitBreaker>, StackError> {
    if !any_set(env, BREAKER_PREFIX, BREAKER_VARS)? {
        return Ok(None);
    }
    Ok(Some(
        CircuitBreaker::builder(name.to_owned())
            .from_env_source(env, BREAKER_PREFIX)?
            .build()?,
    ))
}

fn bulkhead_from_env<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<Bulkhead>, StackError> {
    if !any_set(env, BULKHEAD_PREFIX, &["MAX_CONCURRENT", "MAX_WAIT"])? {
        return Ok(None);
    }
    Ok(Some(
        Bulkhead::builder(name.to_owned())
            .from_env_source(env, BULKHEAD_PREFIX)?
            .build()?,
    ))
}

// Resilience metric handles are created when a breaker or bulkhead is built,
// so building under the no-op recorder keeps inert ones out of every exposition.
fn inert_breaker(name: &str) -> CircuitBreaker {
    metrics::with_local_recorder(&metrics::NoopRecorder, || {
        CircuitBreaker::builder(format!("{name}/inert"))
            .initial_state(State::Disabled)
            .build()
            .expect("the default breaker settings are valid")
    })
}

fn inert_bulkhead(name: &str) -> Bulkhead {
    metrics::with_local_recorder(&metrics::NoopRecorder, || {
        Bulkhead::builder(format!("{name}/inert"))
            .max_concurrent(tokio::sync::Semaphore::MAX_PERMITS)
            .build()
            .expect("2^61 slots are valid")
    })
}

/// The server preset: span + metrics → correlation → errors as responses →
/// breaker → bulkhead → chaos (see the [module docs](self) for why).
#[derive(Clone, Debug)]
pub struct ServerStack {
    telemetry: ServerLayer,
    correlation: CorrelationLayer,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
    chaos: Injector,
    bulkhead_status: StatusCode,
}

impl Default for ServerStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerStack {
    /// Telemetry and correlation with their defaults, no breaker, no
    /// bulkhead, chaos off. Reads no environment variable.
    pub fn new() -> Self {
        ServerStack {
            telemetry: ServerLayer::new(),
            correlation: CorrelationLayer::new(),
            breaker: None,
            bulkhead: None,
            chaos: Injector::disabled(),
            bulkhead_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every layer configured from the process environment; see
    /// [`from_env_source`](Self::from_env_source).
    pub fn from_env() -> Result<Self, StackError> {
        Self::from_env_source(&Env::process())
    }

    /// Every layer configured from `env`: the telemetry request layer
    /// (`TELLTALE_HTTP_*`), correlation (`TELLTALE_CORRELATION_*`), chaos
    /// (`TELLTALE_CHAOS*`, off unless set), a circuit breaker named `server`
    /// when any `TELLTALE_BREAKER_*` variable is set, a bulkhead named
    /// `server` when `TELLTALE_BULKHEAD_MAX_CONCURRENT` or `…_MAX_WAIT` is set,
    /// and [`BULKHEAD_STATUS_VAR`].
    ///
    /// ```
    /// use telltale::core::config::Env;
    /// use telltale::stack::ServerStack;
    ///
    /// let env = Env::from_pairs([("TELLTALE_BULKHEAD_MAX_CONCURRENT", "8"), ("TELLTALE_BULKHEAD_STATUS", "429")]);
    /// let stack = ServerStack::from_env_source(&env).unwrap();
    /// assert_eq!(stack.bulkhead_ref().unwrap().max_concurrent(), 8);
    ///
    /// let bad = Env::from_pairs([("TELLTALE_BREAKER_MINIMUM_CALLS", "ten")]);
    /// let err = ServerStack::from_env_source(&bad).unwrap_err();
    /// assert!(err.to_string().contains("TELLTALE_BREAKER_MINIMUM_CALLS"));
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, StackError> {
        let status = match env.number::<u16>(BULKHEAD_STATUS_VAR)? {
            Some(429) => StatusCode::TOO_MANY_REQUESTS,
            Some(503) | None => StatusCode::SERVICE_UNAVAILABLE,
            Some(other) => {
                return Err(ConfigError::new(
                    BULKHEAD_STATUS_VAR,
                    &other.to_string(),
                    telltale_core::config::ParseError::new(1, "503 or 429"),
                )
                .into());
            }
        };
        Ok(ServerStack {
            telemetry: ServerLayer::from_env_source(env)?,
            correlation: telltale_correlation::server::Builder::from_env_source(env)?.build()?,
            breaker: breaker_from_env(env, "server")?,
            bulkhead: bulkhead_from_env(env, "server")?,
            chaos: Injector::from_env_source(env)?,
            bulkhead_status: status,
        })
    }

    /// The request span and metrics layer. Defaults to `ServerLayer::new()`.
    #[must_use]
    pub fn telemetry(mut self, layer: ServerLayer) -> Self {
        self.telemetry = layer;
        self
    }

    /// The correlation layer. Defaults to `CorrelationLayer::new()`.
    #[must_use]
    pub fn correlation(mut self, layer: CorrelationLayer) -> Self {
        self.correlation = layer;
        self
    }

    /// A circuit breaker around the service. Defaults to none.
    #[must_use]
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// A bulkhead around the service. Defaults to none.
    #[must_use]
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// Fault injection on inbound requests. Defaults to
    /// `Injector::disabled()`.
    #[must_use]
    pub fn chaos(mut self, injector: &Injector) -> Self {
        self.chaos = injector.clone();
        self
    }

    /// The status of a full bulkhead (`503` or `429`). Defaults to `503`.
    #[must_use]
    pub fn bulkhead_status(mut self, status: StatusCode) -> Self {
        self.bulkhead_status = status;
        self
    }

    /// The configured breaker, if any.
    pub fn breaker_ref(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The configured bulkhead, if any.
    pub fn bulkhead_ref(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// The chaos injector (its [`handle`](Injector::handle) changes rules at
    /// run time).
    pub fn injector(&self) -> &Injector {
        &self.chaos
    }

    /// The composed layer, for axum's `Router::layer` or tonic's
    /// `Server::builder().layer`.
    pub fn layer(&self) -> ServerStackLayer {
        ServerStackLayer {
            telemetry: self.telemetry.clone(),
            correlation: self.correlation.clone(),
            breaker: self
                .breaker
                .clone()
                .unwrap_or_else(|| inert_breaker("server")),
            bulkhead: self
                .bulkhead
                .clone()
                .unwrap_or_else(|| inert_bulkhead("server")),
            chaos: ChaosLayer::inbound(&self.chaos),
            errors: ErrorResponseLayer {
                bulkhead_status: self.bulkhead_status,
            },
        }
    }
}

/// The layer of [`ServerStack::layer`].
#[derive(Clone, Debug)]
pub struct ServerStackLayer {
    telemetry: ServerLayer,
    correlation: CorrelationLayer,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
    chaos: ChaosLayer,
    errors: ErrorResponseLayer,
}

/// The service of [`ServerStackLayer`], outermost first.
pub type ServerStackService<S> =
    Server<Correlation<ErrorResponse<CircuitBreakerService<BulkheadService<Chaos<S>>>>>>;

impl<S> Layer<S> for ServerStackLayer {
    type Service = ServerStackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.chaos.layer(inner);
        let svc = self.bulkhead.layer().layer(svc);
        let svc = self.breaker.layer().layer(svc);
        let svc = self.errors.layer(svc);
        let svc = self.correlation.layer(svc);
        self.telemetry.layer(svc)
    }
}

/// The client preset: span + metrics → correlation → breaker → timeout →
/// chaos → bulkhead → transport (see the [module docs](self) for why).
///
/// ```
/// use std::time::Duration;
/// use telltale::resilience::CircuitBreaker;
/// use telltale::stack::ClientStack;
/// use tower::ServiceBuilder;
///
/// let client = ServiceBuilder::new()
///     .layer(ClientStack::new().timeout(Duration::from_secs(2)).breaker(CircuitBreaker::builder("payments").build().unwrap()).layer())
///     .service_fn(|_req: http::Request<String>| async {
///         // hyper-util's Client, a tonic Channel...
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = client;
/// ```
#[derive(Clone, Debug)]
pub struct ClientStack {
    name: String,
    telemetry: ClientLayer,
    correlation: InjectCorrelationLayer,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
    chaos: Injector,
    timeout: Duration,
}

impl Default for ClientStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientStack {
    /// Telemetry and correlation with their defaults, a 30 s timeout
    /// ([`DEFAULT_CLIENT_TIMEOUT`]), no breaker, no bulkhead, chaos off.
    /// Reads no environment variable.
    pub fn new() -> Self {
        ClientStack {
            name: "client".to_owned(),
            telemetry: ClientLayer::new(),
            correlation: InjectCorrelationLayer::new(),
            breaker: None,
            bulkhead: None,
            chaos: Injector::disabled(),
            timeout: DEFAULT_CLIENT_TIMEOUT,
        }
    }

    /// Every layer configured from the process environment; see
    /// [`from_env_source`](Self::from_env_source).
    pub fn from_env(name: &str) -> Result<Self, StackError> {
        Self::from_env_source(&Env::process(), name)
    }

    /// Every layer configured from `env`: `TELLTALE_HTTP_CLIENT_*`,
    /// `TELLTALE_CORRELATION_CLIENT_*`, `TELLTALE_CHAOS*` (off unless set),
    /// [`CLIENT_TIMEOUT_VAR`], a breaker named `name` when any
    /// `TELLTALE_BREAKER_*` variable is set and a bulkhead named `name` when
    /// a `TELLTALE_BULKHEAD_*` variable is set.
    ///
    /// ```
    /// use telltale::core::config::Env;
    /// use telltale::stack::ClientStack;
    ///
    /// let env = Env::from_pairs([("TELLTALE_CLIENT_TIMEOUT", "2s"), ("TELLTALE_BREAKER_FAILURE_RATE", "25%")]);
    /// let stack = ClientStack::from_env_source(&env, "payments").unwrap();
    /// assert_eq!(stack.timeout_value(), std::time::Duration::from_secs(2));
    /// assert_eq!(stack.breaker_ref().unwrap().name(), "payments");
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>, name: &str) -> Result<Self, StackError> {
        Ok(ClientStack {
            name: name.to_owned(),
            telemetry: ClientLayer::from_env_source(env)?,
            correlation: telltale_correlation::client::Builder::from_env_source(env)?.build()?,
            breaker: breaker_from_env(env, name)?,
            bulkhead: bulkhead_from_env(env, name)?,
            chaos: Injector::from_env_source(env)?,
            timeout: env
                .duration(CLIENT_TIMEOUT_VAR)?
                .unwrap_or(DEFAULT_CLIENT_TIMEOUT),
        })
    }

    /// The CLIENT span and metrics layer. Defaults to `ClientLayer::new()`.
    #[must_use]
    pub fn telemetry(mut self, layer: ClientLayer) -> Self {
        self.telemetry = layer;
        self
    }

    /// The correlation layer. Defaults to `InjectCorrelationLayer::new()`.
    #[must_use]
    pub fn correlation(mut self, layer: InjectCorrelationLayer) -> Self {
        self.correlation = layer;
        self
    }

    /// A circuit breaker in front of the dependency. Defaults to none.
    #[must_use]
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// A bulkhead in front of the dependency. Defaults to none.
    #[must_use]
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// Fault injection on outbound requests. Defaults to
    /// `Injector::disabled()`.
    #[must_use]
    pub fn chaos(mut self, injector: &Injector) -> Self {
        self.chaos = injector.clone();
        self
    }

    /// Time allowed for a response (headers), counted as a breaker failure
    /// when it elapses. Defaults to 30 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configured timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// The configured breaker, if any.
    pub fn breaker_ref(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The configured bulkhead, if any.
    pub fn bulkhead_ref(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// The composed layer, to wrap hyper-util's `Client`, a tonic `Channel`
    /// or any `Service<http::Request<B>>`.
    pub fn layer(&self) -> ClientStackLayer {
        ClientStackLayer {
            telemetry: self.telemetry.clone(),
            correlation: self.correlation.clone(),
            breaker: self
                .breaker
                .clone()
                .unwrap_or_else(|| inert_breaker(&self.name)),
            timeout: self.timeout,
            chaos: ChaosLayer::outbound(&self.chaos),
            bulkhead: self
                .bulkhead
                .clone()
                .unwrap_or_else(|| inert_bulkhead(&self.name)),
        }
    }
}

/// The layer of [`ClientStack::layer`].
#[derive(Clone)]
pub struct ClientStackLayer {
    telemetry: ClientLayer,
    correlation: InjectCorrelationLayer,
    breaker: CircuitBreaker,
    timeout: Duration,
    chaos: ChaosLayer,
    bulkhead: Bulkhead,
}

impl fmt::Debug for ClientStackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStackLayer")
            .field("correlation", &self.correlation)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("chaos", &self.chaos)
            .field("bulkhead", &self.bulkhead)
            .finish_non_exhaustive()
    }
}

/// The service of [`ClientStackLayer`], outermost first.
///
/// Its error is a [`BoxError`]: a [`telltale_resilience::Error`] whose
/// source chain holds the cause (find rejections with
/// [`Error::rejection_in`](telltale_resilience::Error::rejection_in),
/// timeouts with [`telltale_core::is_timeout`]). Boxing happens inside the
/// CLIENT span layer, so that the span classifies timeouts as `timeout`.
pub type ClientStackService<S> =
    Client<InjectCorrelation<BoxErrors<CircuitBreakerService<Timeout<Chaos<BulkheadService<S>>>>>>>;

/// Boxes the inner service's error (part of [`ClientStackService`]).
#[derive(Clone, Debug)]
pub struct BoxErrors<S> {
    inner: S,
}

impl<S, Req> Service<Req> for BoxErrors<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        BoxErrorsFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`BoxErrors`].
    #[derive(Debug)]
    pub struct BoxErrorsFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for BoxErrorsFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}

impl<S> Layer<S> for ClientStackLayer {
    type Service = ClientStackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.bulkhead.layer().layer(inner);
        let svc = self.chaos.layer(svc);
        let svc = Timeout::new(svc, self.timeout);
        let svc = self.breaker.layer().layer(svc);
        let svc = BoxErrors { inner: svc };
        let svc = self.correlation.layer(svc);
        self.telemetry.layer(svc)
    }
}

/// The body of [`ErrorResponse`]: the inner body, or an empty one for a
/// mapped error.
pub type StackBody<B> = Either<B, Empty<Bytes>>;

/// Turns the errors of the layers inside it into responses (see the
/// [module docs](self)); part of [`ServerStackLayer`].
#[derive(Clone, Copy, Debug)]
pub struct ErrorResponseLayer {
    bulkhead_status: StatusCode,
}

impl ErrorResponseLayer {
    /// A full bulkhead answers `bulkhead_status` (`503` or `429`).
    pub fn new(bulkhead_status: StatusCode) -> Self {
        ErrorResponseLayer { bulkhead_status }
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse {
            inner,
            bulkhead_status: self.bulkhead_status,
            not_ready: None,
        }
    }
}

/// The service of [`ErrorResponseLayer`]: infallible.
#[derive(Debug)]
pub struct ErrorResponse<S> {
    inner: S,
    bulkhead_status: StatusCode,
    /// A readiness error, answered (as a response) by the next call.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for ErrorResponse<S> {
    fn clone(&self) -> Self {
        ErrorResponse {
            inner: self.inner.clone(),
            bulkhead_status: self.bulkhead_status,
            not_ready: None,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ErrorResponse<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<StackBody<ResBody>>;
    type Error = Infallible;
    type Future = ErrorResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The layers inside (breaker, bulkhead, chaos) reserve in `call` and
        // are ready when the handler is; should the inner service fail
        // readiness anyway, the next call answers that error as a response
        // without calling it.
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(e.into());
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let inner = match self.not_ready.take() {
            Some(err) => Inner::NotReady { err: Some(err) },
            None => Inner::Called {
                future: self.inner.call(req),
            },
        };
        ErrorResponseFuture {
            inner,
            bulkhead_status: self.bulkhead_status,
            grpc,
        }
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<F> {
        Called { #[pin] future: F },
        NotReady { err: Option<BoxError> },
    }
}

pin_project! {
    /// The future of [`ErrorResponse`].
    #[derive(Debug)]
    pub struct ErrorResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
        bulkhead_status: StatusCode,
        grpc: bool,
    }
}

impl<F, B, E> Future for ErrorResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<StackBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let err = match this.inner.project() {
            InnerProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(res) => return Poll::Ready(Ok(res.map(Either::Left))),
                Err(e) => e.into(),
            },
            InnerProj::NotReady { err } => err
                .take()
                .unwrap_or_else(|| "ErrorResponseFuture polled after completion".into()),
        };
        Poll::Ready(Ok(error_response(&*err, *this.bulkhead_status, *this.grpc)))
    }
}

/// The response an error becomes (see the [module docs](self)).
fn error_response<B>(
    err: &(dyn std::error::Error + 'static),
    bulkhead_status: StatusCode,
    grpc: bool,
) -> Response<StackBody<B>> {
    // (HTTP status, gRPC code, gRPC message)
    let (mut res, code, message): (Response<Empty<Bytes>>, u8, &str) =
        match telltale_resilience::Error::rejection_in(err) {
            Some(Rejection::Open(open)) => (open.to_response(), 14, "circuit open"),
            Some(Rejection::Full(full)) => (full.to_response(bulkhead_status), 8, "bulkhead full"),
            _ if telltale_core::is_timeout(err) => {
                (status_response(StatusCode::GATEWAY_TIMEOUT), 4, "timeout")
            }
            _ => (
                status_response(StatusCode::INTERNAL_SERVER_ERROR),
                13,
                "internal error",
            ),
        };
    if grpc {
        *res.status_mut() = StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static(message_header(message)),
        );
    }
    res.map(Either::Right)
}

fn message_header(message: &str) -> &'static str {
    // Percent-encoding is not needed for these fixed ASCII messages, except
    // the space.
    match message {
        "circuit open" => "circuit%20open",
        "bulkhead full" => "bulkhead%20full",
        "timeout" => "timeout",
        _ => "internal%20error",
    }
}

fn status_response(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut res = Response::new(Empty::new());
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inert_instances_export_no_series() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let _ = (inert_breaker("server"), inert_bulkhead("server"));
            let configured = Bulkhead::builder("configured").build().unwrap();
            drop(configured);
        });
        let names: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, ..)| format!("{:?}", key.key()))
            .collect();
        assert!(names.iter().all(|n| !n.contains("inert")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("configured")), "{names:?}");
    }

    /// Fails readiness; panics if called anyway.
    #[derive(Clone)]
    struct NeverReady;

    impl Service<Request<()>> for NeverReady {
        type Response = Response<Empty<Bytes>>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Err(std::io::Error::other("not ready")))
        }

        fn call(&mut self, _req: Request<()>) -> Self::Future {
            panic!("called without being ready")
        }
    }

    #[tokio::test]
    async fn a_readiness_error_is_answered_without_calling() {
        use tower::ServiceExt;
        let svc = ErrorResponseLayer::new(StatusCode::SERVICE_UNAVAILABLE).layer(NeverReady);
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), 500);
    }

    #[test]
    fn errors_become_statuses() {
        let open = telltale_resilience::CircuitOpen {
            name: "x".into(),
            state: State::Open,
            retry_after: Some(Duration::from_secs(1)),
        };
        let res: Response<StackBody<Empty<Bytes>>> =
            error_response(&open, StatusCode::SERVICE_UNAVAILABLE, false);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let res: Response<StackBody<Empty<Bytes>>> =
            error_response(&open, StatusCode::SERVICE_UNAVAILABLE, true);
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "14");
        let io = std::io::Error::other("boom");
        let res: Response<StackBody<Empty<Bytes>>> =
            error_response(&io, StatusCode::SERVICE_UNAVAILABLE, false);
        assert_eq!(res.status(), 500);
        let elapsed = tower::timeout::error::Elapsed::new();
        let res: Response<StackBody<Empty<Bytes>>> =
            error_response(&elapsed, StatusCode::SERVICE_UNAVAILABLE, false);
        assert_eq!(res.status(), 504);
    }
}
