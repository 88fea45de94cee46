//! The server preset: [`ServerStack`] and its layer.

use http::StatusCode;
use std::time::Duration;
use telltale_chaos::{ChaosLayer, ChaosService, Injector};
use telltale_core::config::{Env, EnvSource};
use telltale_correlation::{CorrelationLayer, CorrelationService};

use telltale_resilience::body_timeout::{BodyTimeoutLayer, BodyTimeoutService};
use telltale_resilience::breaker::CircuitBreakerService;
use telltale_resilience::bulkhead::BulkheadService;
use telltale_resilience::reject::{AnswerAll, RejectionResponseLayer, RejectionResponseService};
use telltale_resilience::{Bulkhead, CircuitBreaker};
use telltale_telemetry::layer::{RequestLog, ServerTelemetryLayer, ServerTelemetryService};
use tower_layer::Layer;

use super::guards::{Guards, StackError, preset_methods};

/// The default bound on slow readers of [`ServerStack`]: 30 s; see
/// [`ServerStack::body_idle_timeout`].
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`ServerStack`] with the defaults; see [`ServerStack::new`].
///
/// ```
/// let app: axum::Router = axum::Router::new().layer(telltale::stack().layer());
/// # let _ = app;
/// ```
pub fn stack() -> ServerStack {
    ServerStack::new()
}

/// The server preset: span + metrics → correlation → errors as responses →
/// body idle timeout → breaker → bulkhead → chaos (see the [module docs](super) for why).
#[derive(Clone, Debug)]
pub struct ServerStack {
    telemetry: ServerTelemetryLayer,
    correlation: CorrelationLayer,
    guards: Guards,
    bulkhead_status: StatusCode,
    body_idle_timeout: Option<Duration>,
}

impl Default for ServerStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerStack {
    /// Telemetry and correlation with their defaults (plus the request log
    /// line, [`RequestLog::On`](crate::telemetry::layer::RequestLog::On)), no
    /// breaker, no bulkhead, chaos off. Reads no environment variable.
    pub fn new() -> Self {
        ServerStack {
            telemetry: ServerTelemetryLayer::builder()
                .request_log(RequestLog::On)
                .build()
                .expect("the default configuration is valid"),
            correlation: CorrelationLayer::new(),
            guards: Guards::new(),
            bulkhead_status: StatusCode::SERVICE_UNAVAILABLE,
            body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
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
    /// and [`env::BULKHEAD_STATUS`](super::env::BULKHEAD_STATUS).
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
        let status = super::env::bulkhead_status(env)?.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Ok(ServerStack {
            telemetry: ServerTelemetryLayer::builder()
                .request_log(RequestLog::On)
                .env(env)?
                .build()?,
            correlation: CorrelationLayer::from_env_source(env)?,
            guards: Guards::from_env_source(env, "server")?,
            bulkhead_status: status,
            body_idle_timeout: super::env::body_idle_timeout(env)?
                .unwrap_or(Some(DEFAULT_BODY_IDLE_TIMEOUT)),
        })
    }

    preset_methods!(
        ServerTelemetryLayer,
        CorrelationLayer,
        "around the service",
        "inbound"
    );

    /// The status of a full bulkhead (`503` or `429`). Defaults to `503`.
    #[must_use]
    pub fn bulkhead_status(mut self, status: StatusCode) -> Self {
        self.bulkhead_status = status;
        self
    }

    /// The bound on slow readers: with a bulkhead, a response body whose
    /// reader has not asked for the next frame for this long is ended and its
    /// slot released (see [`body_timeout`](crate::resilience::body_timeout));
    /// `None` holds the slot until the body ends, however long that takes.
    /// Defaults to [`DEFAULT_BODY_IDLE_TIMEOUT`] (30 s);
    /// `TELLTALE_BODY_IDLE_TIMEOUT` sets it from the environment.
    #[must_use]
    pub fn body_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.body_idle_timeout = idle;
        self
    }

    /// The composed layer, for axum's `Router::layer` or tonic's
    /// `Server::builder().layer`.
    ///
    /// With the `debug` feature (in `full`), the configured breaker,
    /// bulkhead and chaos injector are registered with the debug page.
    pub fn layer(&self) -> ServerStackLayer {
        self.guards.register_for_debug("server (inbound)");
        ServerStackLayer {
            telemetry: self.telemetry.clone(),
            correlation: self.correlation.clone(),
            breaker: self.guards.breaker_or_inert("server"),
            bulkhead: self.guards.bulkhead_or_inert("server"),
            chaos: ChaosLayer::inbound(&self.guards.chaos),
            // What the bound protects are the bulkhead's slots: without a
            // bulkhead there is nothing to release (and no task to spawn).
            body_timeout: BodyTimeoutLayer::new(
                "server",
                self.body_idle_timeout
                    .filter(|_| self.guards.bulkhead.is_some()),
            ),
            errors: RejectionResponseLayer::new()
                .bulkhead_status(self.bulkhead_status)
                .answer_all(),
        }
    }
}

/// The layer of [`ServerStack::layer`].
#[derive(Clone, Debug)]
pub struct ServerStackLayer {
    telemetry: ServerTelemetryLayer,
    correlation: CorrelationLayer,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
    chaos: ChaosLayer,
    body_timeout: BodyTimeoutLayer,
    errors: RejectionResponseLayer<AnswerAll>,
}

/// The service of [`ServerStackLayer`], outermost first.
pub type ServerStackService<S> = ServerTelemetryService<
    CorrelationService<
        RejectionResponseService<
            BodyTimeoutService<CircuitBreakerService<BulkheadService<ChaosService<S>>>>,
            AnswerAll,
        >,
    >,
>;

impl<S> Layer<S> for ServerStackLayer {
    type Service = ServerStackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.chaos.layer(inner);
        let svc = self.bulkhead.layer().layer(svc);
        let svc = self.breaker.layer().layer(svc);
        let svc = self.body_timeout.layer(svc);
        let svc = self.errors.layer(svc);
        let svc = self.correlation.layer(svc);
        self.telemetry.layer(svc)
    }
}
