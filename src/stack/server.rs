//! The server preset: [`ServerStack`] and its layer.

use http::StatusCode;
use telltale_chaos::{ChaosLayer, ChaosService, Injector};
use telltale_core::config::{ConfigError, Env, EnvSource, ParseError};
use telltale_correlation::{CorrelationLayer, CorrelationService};
use telltale_resilience::breaker::CircuitBreakerService;
use telltale_resilience::bulkhead::BulkheadService;
use telltale_resilience::reject::{AnswerAll, RejectionResponseLayer, RejectionResponseService};
use telltale_resilience::{Bulkhead, CircuitBreaker};
use telltale_telemetry::layer::{ServerTelemetryLayer, ServerTelemetryService};
use tower_layer::Layer;

use super::env::BULKHEAD_STATUS;
use super::guards::{Guards, StackError, preset_methods};

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
/// breaker → bulkhead → chaos (see the [module docs](super) for why).
#[derive(Clone, Debug)]
pub struct ServerStack {
    telemetry: ServerTelemetryLayer,
    correlation: CorrelationLayer,
    guards: Guards,
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
            telemetry: ServerTelemetryLayer::new(),
            correlation: CorrelationLayer::new(),
            guards: Guards::new(),
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
    /// and [`env::BULKHEAD_STATUS`](BULKHEAD_STATUS).
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
        let status = match env.number::<u16>(BULKHEAD_STATUS)? {
            Some(429) => StatusCode::TOO_MANY_REQUESTS,
            Some(503) | None => StatusCode::SERVICE_UNAVAILABLE,
            Some(other) => {
                return Err(ConfigError::new(
                    BULKHEAD_STATUS,
                    &other.to_string(),
                    ParseError::new(1, "503 or 429"),
                )
                .into());
            }
        };
        Ok(ServerStack {
            telemetry: ServerTelemetryLayer::from_env_source(env)?,
            correlation: CorrelationLayer::from_env_source(env)?,
            guards: Guards::from_env_source(env, "server")?,
            bulkhead_status: status,
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

    /// The composed layer, for axum's `Router::layer` or tonic's
    /// `Server::builder().layer`.
    pub fn layer(&self) -> ServerStackLayer {
        ServerStackLayer {
            telemetry: self.telemetry.clone(),
            correlation: self.correlation.clone(),
            breaker: self.guards.breaker_or_inert("server"),
            bulkhead: self.guards.bulkhead_or_inert("server"),
            chaos: ChaosLayer::inbound(&self.guards.chaos),
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
    errors: RejectionResponseLayer<AnswerAll>,
}

/// The service of [`ServerStackLayer`], outermost first.
pub type ServerStackService<S> = ServerTelemetryService<
    CorrelationService<
        RejectionResponseService<
            CircuitBreakerService<BulkheadService<ChaosService<S>>>,
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
        let svc = self.errors.layer(svc);
        let svc = self.correlation.layer(svc);
        self.telemetry.layer(svc)
    }
}
