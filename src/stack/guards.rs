//! The part both presets share: the breaker, bulkhead and chaos injector
//! (configured from the environment or in code, inert when absent), the
//! error of `from_env*` and the error-boxing service of the client stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use telltale_chaos::Injector;
use telltale_core::BoxError;
use telltale_core::config::{ConfigError, Env, EnvSource};
use telltale_resilience::{Bulkhead, CircuitBreaker, breaker, bulkhead};
use tower_service::Service;

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

/// The guards of one preset: an optional breaker and bulkhead and the chaos
/// injector.
#[derive(Clone, Debug)]
pub(crate) struct Guards {
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) bulkhead: Option<Bulkhead>,
    pub(crate) chaos: Injector,
}

impl Guards {
    /// No breaker, no bulkhead, chaos off.
    pub(crate) fn new() -> Self {
        Guards {
            breaker: None,
            bulkhead: None,
            chaos: Injector::disabled(),
        }
    }

    /// A breaker and a bulkhead named `name` when their variables are set,
    /// chaos from `TELLTALE_CHAOS*`.
    pub(crate) fn from_env_source<S: EnvSource>(
        env: &Env<S>,
        name: &str,
    ) -> Result<Self, StackError> {
        let breaker = if breaker::env::is_configured(env) {
            Some(CircuitBreaker::from_env_source(env, name)?)
        } else {
            None
        };
        let bulkhead = if bulkhead::env::is_configured(env) {
            Some(Bulkhead::from_env_source(env, name)?)
        } else {
            None
        };
        Ok(Guards {
            breaker,
            bulkhead,
            chaos: Injector::from_env_source(env)?,
        })
    }

    /// The configured breaker, or an inert one (disabled, no metric series)
    /// named `name`.
    pub(crate) fn breaker_or_inert(&self, name: &str) -> CircuitBreaker {
        self.breaker
            .clone()
            .unwrap_or_else(|| CircuitBreaker::inert(name.to_owned()))
    }

    /// Shows the configured breaker and bulkhead and an armed chaos
    /// injector on the debug page (`telltale::debug`); the injector under
    /// `chaos_label`. Nothing without the `debug` feature.
    pub(crate) fn register_for_debug(&self, chaos_label: &str) {
        #[cfg(feature = "debug")]
        {
            if let Some(b) = &self.breaker {
                telltale_debug::register_breaker(b);
            }
            if let Some(b) = &self.bulkhead {
                telltale_debug::register_bulkhead(b);
            }
            telltale_debug::register_injector(&self.chaos, chaos_label);
        }
        #[cfg(not(feature = "debug"))]
        let _ = chaos_label;
    }

    /// The configured bulkhead, or an unlimited one (no metric series) named
    /// `name`.
    pub(crate) fn bulkhead_or_inert(&self, name: &str) -> Bulkhead {
        self.bulkhead
            .clone()
            .unwrap_or_else(|| Bulkhead::unlimited(name.to_owned()))
    }
}

/// The builder methods both presets share, for a preset with `telemetry`,
/// `correlation` and `guards: Guards` fields: `$telemetry` and
/// `$correlation` are the layer types, `$place` completes "A circuit breaker
/// …" and `$direction` "Fault injection on … requests" in the docs.
macro_rules! preset_methods {
    ($telemetry:ident, $correlation:ident, $place:literal, $direction:literal) => {
        #[doc = concat!("The span and metrics layer. Defaults to `", stringify!($telemetry), "::new()`.")]
        #[must_use]
        pub fn telemetry(mut self, layer: $telemetry) -> Self {
            self.telemetry = layer;
            self
        }

        #[doc = concat!("The correlation layer. Defaults to `", stringify!($correlation), "::new()`.")]
        #[must_use]
        pub fn correlation(mut self, layer: $correlation) -> Self {
            self.correlation = layer;
            self
        }

        #[doc = concat!("A circuit breaker ", $place, ". Defaults to none.")]
        #[must_use]
        pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
            self.guards.breaker = Some(breaker);
            self
        }

        #[doc = concat!("A bulkhead ", $place, ". Defaults to none.")]
        #[must_use]
        pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
            self.guards.bulkhead = Some(bulkhead);
            self
        }

        #[doc = concat!("Fault injection on ", $direction, " requests. Defaults to `Injector::disabled()`.")]
        #[must_use]
        pub fn chaos(mut self, injector: &Injector) -> Self {
            self.guards.chaos = injector.clone();
            self
        }

        /// The configured breaker, if any.
        pub fn breaker_ref(&self) -> Option<&CircuitBreaker> {
            self.guards.breaker.as_ref()
        }

        /// The configured bulkhead, if any.
        pub fn bulkhead_ref(&self) -> Option<&Bulkhead> {
            self.guards.bulkhead.as_ref()
        }

        /// The chaos injector (its [`handle`](Injector::handle) changes rules
        /// at run time).
        pub fn injector(&self) -> &Injector {
            &self.guards.chaos
        }
    };
}
pub(crate) use preset_methods;

/// Boxes the inner service's error (part of
/// [`ClientStackService`](super::ClientStackService)).
#[derive(Clone, Debug)]
pub struct BoxErrorsService<S> {
    inner: S,
}

impl<S> BoxErrorsService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        BoxErrorsService { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for BoxErrorsService<S>
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
    /// The future of [`BoxErrorsService`].
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inert_guards_export_no_series() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let guards = Guards::new();
            let _ = (
                guards.breaker_or_inert("inert"),
                guards.bulkhead_or_inert("inert"),
            );
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
}
