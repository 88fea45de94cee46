//! The client preset: [`ClientStack`] and its layer.

use std::fmt;
use std::time::Duration;

use telltale_chaos::{ChaosLayer, ChaosService, Injector};
use telltale_core::config::{Env, EnvSource};
use telltale_correlation::{InjectCorrelationLayer, InjectCorrelationService};
use telltale_resilience::breaker::CircuitBreakerService;
use telltale_resilience::bulkhead::BulkheadService;
use telltale_resilience::{Bulkhead, CircuitBreaker};
use telltale_telemetry::layer::{ClientTelemetryLayer, ClientTelemetryService};
use tower::timeout::Timeout;
use tower_layer::Layer;

use super::guards::{BoxErrorsService, Guards, StackError, preset_methods};

/// Timeout of outbound calls in [`ClientStack`] unless configured.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The client preset: span + metrics → correlation → breaker → timeout →
/// chaos → bulkhead → transport (see the [module docs](super) for why).
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
    telemetry: ClientTelemetryLayer,
    correlation: InjectCorrelationLayer,
    guards: Guards,
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
            telemetry: ClientTelemetryLayer::new(),
            correlation: InjectCorrelationLayer::new(),
            guards: Guards::new(),
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
    /// [`env::CLIENT_TIMEOUT`](super::env::CLIENT_TIMEOUT), a breaker named `name` when any
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
            telemetry: ClientTelemetryLayer::from_env_source(env)?,
            correlation: InjectCorrelationLayer::from_env_source(env)?,
            guards: Guards::from_env_source(env, name)?,
            timeout: super::env::client_timeout(env)?.unwrap_or(DEFAULT_CLIENT_TIMEOUT),
        })
    }

    preset_methods!(
        ClientTelemetryLayer,
        InjectCorrelationLayer,
        "in front of the dependency",
        "outbound"
    );

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

    /// The `scheme://host[:port]` the wrapped transport sends to, for
    /// requests whose URI has no authority: tonic's `Channel` adds it out of
    /// the stack's sight, so without it gRPC CLIENT spans and
    /// `rpc_client_call_duration_seconds` have no `server.address` /
    /// `server.port` (see
    /// [`ClientTelemetryLayerBuilder::origin`](telltale_telemetry::layer::ClientTelemetryLayerBuilder::origin)).
    /// Fails when `origin` is not `scheme://host[:port]`. Set it after
    /// [`telemetry`](Self::telemetry), which replaces the telemetry layer.
    ///
    /// ```
    /// use telltale::stack::ClientStack;
    ///
    /// let endpoint: http::Uri = "http://fraud.internal:50051".parse().unwrap();
    /// // let channel = tonic::transport::Endpoint::from(endpoint.clone()).connect().await?;
    /// let stack = ClientStack::new().origin(endpoint).unwrap();
    /// # let _ = stack.layer();
    /// assert!(ClientStack::new().origin("/no/authority".parse().unwrap()).is_err());
    /// ```
    pub fn origin(mut self, origin: http::Uri) -> Result<Self, StackError> {
        self.telemetry = self.telemetry.with_origin(origin)?;
        Ok(self)
    }

    /// The composed layer, to wrap hyper-util's `Client`, a tonic `Channel`
    /// or any `Service<http::Request<B>>`.
    ///
    /// With the `debug` feature (in `full`), the configured breaker,
    /// bulkhead and chaos injector are registered with the debug page.
    pub fn layer(&self) -> ClientStackLayer {
        self.guards
            .register_for_debug(&format!("{} (outbound)", self.name));
        ClientStackLayer {
            telemetry: self.telemetry.clone(),
            correlation: self.correlation.clone(),
            breaker: self.guards.breaker_or_inert(&self.name),
            timeout: self.timeout,
            chaos: ChaosLayer::outbound(&self.guards.chaos),
            bulkhead: self.guards.bulkhead_or_inert(&self.name),
        }
    }
}

/// The layer of [`ClientStack::layer`].
#[derive(Clone)]
pub struct ClientStackLayer {
    telemetry: ClientTelemetryLayer,
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
/// Its error is a [`BoxError`](telltale_core::BoxError): a [`telltale_resilience::Error`] whose
/// source chain holds the cause (find rejections with
/// [`Error::rejection_in`](telltale_resilience::Error::rejection_in),
/// timeouts with [`telltale_core::is_timeout`]). Boxing happens inside the
/// CLIENT span layer, so that the span classifies timeouts as `timeout`.
pub type ClientStackService<S> = ClientTelemetryService<
    InjectCorrelationService<
        BoxErrorsService<CircuitBreakerService<Timeout<ChaosService<BulkheadService<S>>>>>,
    >,
>;

impl<S> Layer<S> for ClientStackLayer {
    type Service = ClientStackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = self.bulkhead.layer().layer(inner);
        let svc = self.chaos.layer(svc);
        let svc = Timeout::new(svc, self.timeout);
        let svc = self.breaker.layer().layer(svc);
        let svc = BoxErrorsService::new(svc);
        let svc = self.correlation.layer(svc);
        self.telemetry.layer(svc)
    }
}
