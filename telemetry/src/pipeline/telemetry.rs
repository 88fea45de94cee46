//! [`Telemetry`], the built pipeline, and installing it.

use std::fmt;

use telltale_core::config::{Env, EnvSource};
use tracing::Dispatch;

use super::builder::TelemetryBuilder;
use super::error::InitError;
use super::flight_recorder::FlightRecorder;
use super::guard::TelemetryGuard;
use crate::propagation::Propagators;

/// A built telemetry pipeline, not installed yet: the tracing [`Dispatch`]
/// (filter, OpenTelemetry layer, log formatter) and the [`TelemetryGuard`]
/// that owns the exporters.
///
/// [`install`](Self::install) makes it the process-wide default, which is
/// what [`init`](crate::init) does. Tests and multi-service processes can use
/// the dispatch without installing it, e.g. with
/// [`tracing::dispatcher::with_default`] or `WithSubscriber::with_subscriber`.
///
/// ```
/// use telltale_telemetry::Telemetry;
///
/// let telemetry = Telemetry::builder().service_name("doc").build().unwrap();
/// let recorder = telemetry.flight_recorder().unwrap().clone();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info_span!("work").in_scope(|| tracing::info!("inside"));
/// });
/// assert_eq!(recorder.recent(1)[0].name(), "work");
/// assert_eq!(recorder.recent(1)[0].service_name(), Some("doc"));
/// ```
pub struct Telemetry {
    dispatch: Dispatch,
    guard: TelemetryGuard,
    propagators: Propagators,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("guard", &self.guard)
            .field("propagators", &self.propagators)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new(dispatch: Dispatch, guard: TelemetryGuard) -> Self {
        Telemetry {
            dispatch,
            guard,
            propagators: Propagators::default(),
        }
    }

    pub(crate) fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// The propagators [`install`](Self::install) makes global.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    /// A builder with every setting at its default (no environment read).
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    #[doc = include_str!("../../docs/configuration.md")]
    pub fn from_env() -> Result<Self, InitError> {
        Self::from_env_source(&Env::process())
    }

    /// [`from_env`](Self::from_env) reading from `env` (tests use
    /// [`Env::from_pairs`]).
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, InitError> {
        TelemetryBuilder::env_defaults().env(env)?.build()
    }

    /// The subscriber, to install or to use as a scoped default.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The guard owning the exporters.
    pub fn guard(&self) -> &TelemetryGuard {
        &self.guard
    }

    /// The flight recorder, when on.
    pub fn flight_recorder(&self) -> Option<&FlightRecorder> {
        self.guard.flight_recorder()
    }

    /// Makes the pipeline the process-wide default: the tracing subscriber,
    /// the OpenTelemetry tracer provider, and the propagators
    /// (`OTEL_PROPAGATORS`; by default W3C Trace Context and W3C Baggage, see
    /// [`Propagators::install`]).
    pub fn install(self) -> Result<TelemetryGuard, InitError> {
        tracing::dispatcher::set_global_default(self.dispatch)
            .map_err(|_| InitError::AlreadyInstalled)?;
        if let Some(provider) = self.guard.tracer_provider() {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        if let Some(metrics) = self.guard.otlp_metrics() {
            // Beside `install_prometheus`'s recorder, in either order.
            crate::metrics::otlp::install_otlp_recorder(metrics.recorder().clone())
                .map_err(InitError::Metrics)?;
        }
        self.propagators.install();
        Ok(self.guard)
    }

    /// The dispatch and the guard, for callers that install them their way.
    pub fn into_parts(self) -> (Dispatch, TelemetryGuard) {
        (self.dispatch, self.guard)
    }
}

/// Installs the default propagators, telltale's W3C Trace Context
/// ([`TraceContextPropagator`](crate::propagation::TraceContextPropagator))
/// and W3C Baggage, as the global text-map propagator, so request layers and
/// clients read and write `traceparent`, `tracestate` and `baggage`. The
/// same as `Propagators::default().install()`; [`init`](crate::init)
/// installs what `OTEL_PROPAGATORS` says instead.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
///
/// telltale_telemetry::install_propagators();
/// let fields: Vec<String> = opentelemetry::global::get_text_map_propagator(|p| {
///     p.fields().map(str::to_owned).collect()
/// });
/// assert!(fields.contains(&"traceparent".to_owned()));
/// assert!(fields.contains(&"baggage".to_owned()));
/// ```
pub fn install_propagators() {
    Propagators::default().install();
}

/// The OpenTelemetry trace ID of the current tracing span, for a response
/// header or a link to the flight recorder; `None` outside any span or
/// without the OpenTelemetry layer.
///
/// ```
/// use telltale_telemetry::{Telemetry, current_trace_id};
///
/// let telemetry = Telemetry::builder().build().unwrap();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     assert_eq!(current_trace_id(), None);
///     let id = tracing::info_span!("request").in_scope(|| current_trace_id()).unwrap();
///     assert_eq!(telemetry.flight_recorder().unwrap().trace(id).len(), 1);
/// });
/// ```
pub fn current_trace_id() -> Option<opentelemetry::trace::TraceId> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::settings::{LogFormat, Protocol};

    fn service_of(builder: TelemetryBuilder) -> Option<String> {
        let telemetry = builder.log_format(LogFormat::None).build().unwrap();
        let recorder = telemetry.flight_recorder().unwrap().clone();
        telltale_testkit::with_default(telemetry.dispatch(), || {
            tracing::info_span!("s").in_scope(|| {});
        });
        recorder.recent(1)[0].service_name().map(str::to_owned)
    }

    #[test]
    fn service_name_precedence() {
        let env = Env::from_pairs([("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]);
        assert_eq!(
            service_of(TelemetryBuilder::env_defaults().env(&env).unwrap()).as_deref(),
            Some("from-attrs")
        );
        let env = Env::from_pairs([
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-name"),
        ]);
        assert_eq!(
            service_of(TelemetryBuilder::env_defaults().env(&env).unwrap()).as_deref(),
            Some("from-name")
        );
        // The specification's fallback: `unknown_service:` + the executable's
        // name, which is also `process.executable.name`.
        let unknown = service_of(Telemetry::builder()).unwrap();
        let exe = std::env::current_exe().unwrap();
        let exe = exe.file_stem().unwrap().to_str().unwrap();
        assert_eq!(unknown, format!("unknown_service:{exe}"));
    }

    #[test]
    fn sdk_disabled_means_no_provider_and_a_fast_guard() {
        let telemetry = Telemetry::builder()
            .sdk_disabled(true)
            .log_format(LogFormat::None)
            .build()
            .unwrap();
        assert!(telemetry.guard().tracer_provider().is_none());
        let (_, guard) = telemetry.into_parts();
        guard.force_flush().unwrap();
        guard.shutdown().unwrap();
    }

    #[test]
    fn invalid_code_settings_fail_build() {
        let err = Telemetry::builder()
            .otlp("http://c:4317", Protocol::Grpc)
            .otlp_header("bad header", "x")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("otlp header"), "{err}");
    }
}
