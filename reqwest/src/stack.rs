//! [`ReqwestStack`]: the client preset's layers as one reqwest middleware.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use telltale_chaos::{ChaosLayer, Injector};
use telltale_core::BoxError;
use telltale_core::config::{Env, EnvSource};
use telltale_correlation::InjectCorrelationLayer;
use telltale_resilience::keyed::{Host, KeyFn, Registry};
use telltale_resilience::{Bulkhead, CircuitBreaker, breaker, bulkhead};
use telltale_telemetry::layer::ClientTelemetryLayer;
use tower::timeout::TimeoutLayer;
use tower::{ServiceBuilder, ServiceExt};

use crate::error::{BuildError, into_reqwest};
use crate::service::{self, BoxFuture, NextService};

/// Timeout of calls unless configured (as `ClientStack`'s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Hosts with a breaker and bulkhead of their own in
/// [`ReqwestStack::from_env`] unless
/// [`env::MAX_HOSTS`](crate::env::MAX_HOSTS) says otherwise.
pub const DEFAULT_MAX_HOSTS: usize = 100;

/// How long a host's breaker and bulkhead are kept unused before they may be
/// evicted to make room for another host (in [`ReqwestStack::from_env`]).
pub const DEFAULT_HOST_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Everything telltale's `ClientStack` gives a tower client, as one
/// [`reqwest_middleware::Middleware`]: CLIENT span + RED metrics (which also
/// injects `traceparent`) → correlation ID → breaker (per host) → timeout →
/// chaos (`out` rules) → bulkhead (per host) → the rest of the middleware
/// chain and reqwest. See the [crate docs](crate) for what each does.
///
/// ```
/// use std::time::Duration;
/// use telltale_reqwest::ReqwestStack;
/// use telltale_resilience::{Bulkhead, CircuitBreaker, keyed::Registry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breakers = Registry::breakers(CircuitBreaker::builder("payments"), 100, Duration::from_secs(600))?;
/// let bulkheads = Registry::bulkheads(Bulkhead::builder("payments").max_concurrent(32), 100, Duration::from_secs(600))?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ReqwestStack::new().timeout(Duration::from_secs(2)).breakers(breakers).bulkheads(bulkheads))
///     .build();
/// # let _ = client;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestStack {
    name: Arc<str>,
    telemetry: ClientTelemetryLayer,
    correlation: InjectCorrelationLayer,
    breakers: Option<Arc<Registry<CircuitBreaker>>>,
    bulkheads: Option<Arc<Registry<Bulkhead>>>,
    inert_breaker: CircuitBreaker,
    unlimited_bulkhead: Bulkhead,
    injector: Injector,
    chaos: ChaosLayer,
    timeout: Duration,
}

impl fmt::Debug for ReqwestStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestStack")
            .field("name", &self.name)
            .field("correlation", &self.correlation)
            .field("breakers", &self.breakers)
            .field("bulkheads", &self.bulkheads)
            .field("chaos", &self.chaos)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ReqwestStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestStack {
    /// Telemetry and correlation with their defaults, a 30 s timeout
    /// ([`DEFAULT_TIMEOUT`]), no breaker, no bulkhead, chaos off. Reads no
    /// environment variable.
    pub fn new() -> Self {
        Self::with_name("reqwest".into())
    }

    fn with_name(name: Arc<str>) -> Self {
        let injector = Injector::disabled();
        ReqwestStack {
            telemetry: ClientTelemetryLayer::new(),
            correlation: InjectCorrelationLayer::new(),
            breakers: None,
            bulkheads: None,
            inert_breaker: CircuitBreaker::inert(name.clone()),
            unlimited_bulkhead: Bulkhead::unlimited(name.clone()),
            chaos: ChaosLayer::outbound(&injector),
            injector,
            timeout: DEFAULT_TIMEOUT,
            name,
        }
    }

    /// Every layer configured from the process environment; see
    /// [`from_env_source`](Self::from_env_source).
    pub fn from_env(name: &str) -> Result<Self, BuildError> {
        Self::from_env_source(&Env::process(), name)
    }

    /// Every layer configured from `env`: `TELLTALE_HTTP_CLIENT_*` (CLIENT
    /// span, propagation, captured headers) and the metrics variables,
    /// `TELLTALE_CORRELATION_CLIENT_*`, `TELLTALE_CHAOS*` (off unless set),
    /// [`env::TIMEOUT`](crate::env::TIMEOUT), one breaker per host named
    /// `{name}/{host}` when any `TELLTALE_BREAKER_*` variable is set, and one
    /// bulkhead per host when any `TELLTALE_BULKHEAD_*` variable is set
    /// (at most [`env::MAX_HOSTS`](crate::env::MAX_HOSTS) hosts, default
    /// [`DEFAULT_MAX_HOSTS`]; further ones share `{name}/_overflow` until a
    /// host is idle for [`DEFAULT_HOST_IDLE_TIMEOUT`]).
    ///
    /// ```
    /// use telltale_core::config::Env;
    /// use telltale_reqwest::ReqwestStack;
    ///
    /// let env = Env::from_pairs([("TELLTALE_REQWEST_TIMEOUT", "2s"), ("TELLTALE_BREAKER_FAILURE_RATE", "25%")]);
    /// let stack = ReqwestStack::from_env_source(&env, "payments").unwrap();
    /// assert_eq!(stack.timeout_value(), std::time::Duration::from_secs(2));
    /// let breakers = stack.breakers_ref().unwrap();
    /// assert_eq!(breakers.get(Some("api.example.com")).name(), "payments/api.example.com");
    /// assert!(stack.bulkheads_ref().is_none());
    /// ```
    pub fn from_env_source<S: EnvSource>(env: &Env<S>, name: &str) -> Result<Self, BuildError> {
        let mut stack = Self::with_name(name.into());
        stack.telemetry = ClientTelemetryLayer::from_env_source(env)?;
        stack.correlation = InjectCorrelationLayer::from_env_source(env)?;
        let max_hosts = crate::env::max_hosts(env)?.unwrap_or(DEFAULT_MAX_HOSTS);
        if breaker::env::is_configured(env) {
            stack.breakers = Some(Registry::breakers(
                CircuitBreaker::builder(name).env(env)?,
                max_hosts,
                DEFAULT_HOST_IDLE_TIMEOUT,
            )?);
        }
        if bulkhead::env::is_configured(env) {
            stack.bulkheads = Some(Registry::bulkheads(
                Bulkhead::builder(name).env(env)?,
                max_hosts,
                DEFAULT_HOST_IDLE_TIMEOUT,
            )?);
        }
        stack = stack.chaos(&Injector::from_env_source(env)?);
        if let Some(timeout) = crate::env::timeout(env)? {
            stack.timeout = timeout;
        }
        Ok(stack)
    }

    /// The span and metrics layer. Defaults to `ClientTelemetryLayer::new()`.
    #[must_use]
    pub fn telemetry(mut self, layer: ClientTelemetryLayer) -> Self {
        self.telemetry = layer;
        self
    }

    /// The correlation layer. Defaults to `InjectCorrelationLayer::new()`.
    #[must_use]
    pub fn correlation(mut self, layer: InjectCorrelationLayer) -> Self {
        self.correlation = layer;
        self
    }

    /// One circuit breaker per host (the URL's host, without port), from
    /// `registry` ([`Registry::breakers`]). Defaults to none.
    #[must_use]
    pub fn breakers(mut self, registry: Arc<Registry<CircuitBreaker>>) -> Self {
        self.breakers = Some(registry);
        self
    }

    /// One bulkhead per host, from `registry` ([`Registry::bulkheads`]).
    /// Defaults to none.
    #[must_use]
    pub fn bulkheads(mut self, registry: Arc<Registry<Bulkhead>>) -> Self {
        self.bulkheads = Some(registry);
        self
    }

    /// Fault injection on outbound requests (`out` and `any` rules).
    /// Defaults to `Injector::disabled()`.
    #[must_use]
    pub fn chaos(mut self, injector: &Injector) -> Self {
        self.chaos = ChaosLayer::outbound(injector);
        self.injector = injector.clone();
        self
    }

    /// Time allowed for a response's head (reqwest's `send()` resolving),
    /// counted as a breaker failure when it elapses. Defaults to 30 s. The
    /// body is not bounded by it: use reqwest's own `timeout` for that.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The per-host breakers, if any.
    pub fn breakers_ref(&self) -> Option<&Arc<Registry<CircuitBreaker>>> {
        self.breakers.as_ref()
    }

    /// The per-host bulkheads, if any.
    pub fn bulkheads_ref(&self) -> Option<&Arc<Registry<Bulkhead>>> {
        self.bulkheads.as_ref()
    }

    /// The chaos injector (its [`handle`](Injector::handle) changes rules
    /// at run time).
    pub fn injector(&self) -> &Injector {
        &self.injector
    }

    /// The configured timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// The breaker and bulkhead of the host `key`: from the registries, or
    /// inert ones (no metric series) when none is configured.
    fn guards(&self, key: Option<&str>) -> (CircuitBreaker, Bulkhead) {
        let breaker = match &self.breakers {
            Some(registry) => registry.get(key),
            None => self.inert_breaker.clone(),
        };
        let bulkhead = match &self.bulkheads {
            Some(registry) => registry.get(key),
            None => self.unlimited_bulkhead.clone(),
        };
        (breaker, bulkhead)
    }
}

#[async_trait::async_trait]
impl Middleware for ReqwestStack {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url().clone();
        let Ok(uri) = http::Uri::try_from(url.as_str()) else {
            // Not a valid `http::Uri`: reqwest answers with its own error.
            return next.run(req, extensions).await;
        };
        let req = service::to_http(req, uri);
        // The keyed registries pick the host's instances here rather than
        // in a `KeyedLayer`, so that an absent breaker or bulkhead is the
        // same inert type as a configured one (as in `ClientStack`).
        let (breaker, bulkhead) = {
            let key = Host.key(&req);
            self.guards(key.as_deref())
        };
        let slot = service::take_extensions(extensions);
        // The order of `ClientStack` (telltale::stack's docs say why):
        // span + metrics, correlation, breaker, timeout, chaos, bulkhead.
        // Errors are boxed inside the span layer, so that the span
        // classifies timeouts and rejections.
        let stack = ServiceBuilder::new()
            .layer(self.telemetry.clone())
            .layer(self.correlation.clone())
            .map_err(|e: telltale_resilience::Error| -> BoxError { e.into() })
            .layer(breaker.layer())
            .layer(TimeoutLayer::new(self.timeout))
            .layer(self.chaos.clone())
            .layer(bulkhead.layer())
            .service(NextService::new(next, slot.clone()));
        // Boxed (and so proven `Send`) here, where its lifetime is a plain
        // one: awaited unboxed inside this `async_trait` body, rustc cannot
        // prove the layered futures `Send` for every lifetime.
        let call: BoxFuture<'_, Result<http::Response<_>, BoxError>> = Box::pin(stack.oneshot(req));
        let result = call.await;
        service::restore_extensions(&slot, extensions);
        match result {
            Ok(response) => Ok(service::to_reqwest(response, url)),
            Err(err) => Err(into_reqwest(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_errors_name_the_variable_of_every_component() {
        for (var, value) in [
            ("TELLTALE_REQWEST_TIMEOUT", "0ms"),
            ("TELLTALE_REQWEST_MAX_HOSTS", "0"),
            ("TELLTALE_BREAKER_MINIMUM_CALLS", "ten"),
            ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "0"),
            ("TELLTALE_HTTP_CLIENT_PROPAGATE", "maybe"),
            ("TELLTALE_CORRELATION_CLIENT_OVERRIDE", "maybe"),
            ("TELLTALE_CHAOS_SEED", "x"),
        ] {
            let err = ReqwestStack::from_env_source(&Env::from_pairs([(var, value)]), "t")
                .expect_err(var);
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(value), "{var}: {text}");
        }
    }

    #[test]
    fn from_env_builds_one_breaker_and_bulkhead_per_host_up_to_max_hosts() {
        let env = Env::from_pairs([
            ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "3"),
            ("TELLTALE_BREAKER_OPEN_WAIT", "5s"),
            ("TELLTALE_REQWEST_MAX_HOSTS", "1"),
        ]);
        let stack = ReqwestStack::from_env_source(&env, "deps").unwrap();
        assert_eq!(stack.timeout_value(), DEFAULT_TIMEOUT);
        let (breaker, bulkhead) = stack.guards(Some("a.internal"));
        assert_eq!(breaker.name(), "deps/a.internal");
        assert_eq!(bulkhead.name(), "deps/a.internal");
        assert_eq!(bulkhead.max_concurrent(), 3);
        // One host only: the next one shares the overflow instances.
        let (breaker, bulkhead) = stack.guards(Some("b.internal"));
        assert_eq!(breaker.name(), "deps/_overflow");
        assert_eq!(bulkhead.name(), "deps/_overflow");

        // Nothing configured: inert guards, no registry.
        let stack =
            ReqwestStack::from_env_source(&Env::from_pairs([("OTHER", "1")]), "deps").unwrap();
        assert!(stack.breakers_ref().is_none() && stack.bulkheads_ref().is_none());
        let (breaker, _) = stack.guards(Some("a.internal"));
        assert_eq!(breaker.state(), telltale_resilience::State::Disabled);
    }
}
