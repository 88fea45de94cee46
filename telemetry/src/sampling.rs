//! Sampling before the span: a request the sampler drops costs what its
//! metrics cost.
//!
//! Through the tracing → OpenTelemetry bridge, a span's sampling decision
//! is taken when its OpenTelemetry span starts, after the tracing span, its
//! extensions and the bridge's span builder exist. Dropping a request there
//! saves the export, not the span: measured, a request sampled out cost
//! about as much as one sampled in. So telltale's server layer asks the
//! sampler first, with the same inputs the SDK would give it (the parent
//! context, the trace ID, the span kind and name), and:
//!
//! - **dropped**: builds no tracing span at all. The request gets an
//!   OpenTelemetry context holding a non-recording span context (the trace ID
//!   it continued from `traceparent` or a new one, a new span ID, the sampled
//!   flag off, the parent's `tracestate`), attached while its future and its
//!   body's end run. Log lines written in the request, the request log line,
//!   spans opened by the handler (dropped too: their parent is unsampled) and
//!   outgoing `traceparent` headers all carry that trace ID, as W3C Trace
//!   Context expects of an unsampled request.
//! - **kept**: builds the span as usual. For a new trace, the trace ID the
//!   decision was taken on is handed to the SDK through
//!   [`PresetTraceIds`], so the SDK's own decision (on the same ID, with the
//!   same sampler) agrees: a ratio sampler is not applied twice.
//!
//! Both halves come from the pipeline: [`init`](crate::init) and
//! [`Telemetry`](crate::Telemetry) put a [`SamplerLayer`] (carrying the
//! tracer provider's sampler) into the subscriber and give the provider
//! [`PresetTraceIds`]. With a subscriber of your own, add both to decide
//! early too; without a [`SamplerLayer`] in the subscriber, the layer builds
//! every span and lets the SDK decide, as before.
//!
//! ```
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
//! use telltale_telemetry::sampling::{PresetTraceIds, SamplerLayer};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1)));
//! let provider = SdkTracerProvider::builder()
//!     .with_sampler(sampler.clone())
//!     .with_id_generator(PresetTraceIds::default())
//!     .build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(SamplerLayer::new(sampler))
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")));
//! # let _ = subscriber;
//! ```
//!
//! The decision is exact for samplers that decide from their inputs (every
//! sampler of the SDK and of `OTEL_TRACES_SAMPLER`). A sampler that draws its
//! own random numbers would be asked twice for a kept request.

use std::cell::Cell;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use tracing::Subscriber;

/// The name the sampler is given for a server request span (the span's name
/// before the route is known; the SDK's samplers do not read it).
const SERVER_SPAN_NAME: &str = "HTTP request";

/// The same for a client request span.
const CLIENT_SPAN_NAME: &str = "HTTP client request";

thread_local! {
    /// The trace ID the next root span started on this thread takes, set
    /// for the length of one span start by [`Keep`].
    static PRESET_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// A tracing [`Layer`](tracing_subscriber::Layer) that does nothing with
/// events or spans: it carries the tracer provider's sampler, so telltale's
/// request layers can ask it before they build a span. See the [module
/// docs](self).
#[derive(Clone, Debug)]
pub struct SamplerLayer {
    sampler: Arc<Sampler>,
}

impl SamplerLayer {
    /// A layer carrying `sampler`: give the tracer provider the same one.
    pub fn new(sampler: Sampler) -> Self {
        SamplerLayer {
            sampler: Arc::new(sampler),
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for SamplerLayer {}

/// The span-ID and trace-ID generator of a tracer provider whose subscriber
/// has a [`SamplerLayer`]: random IDs, except that a root span started right
/// after telltale's layer decided to keep it takes the trace ID the decision
/// was taken on. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct PresetTraceIds {
    random: RandomIdGenerator,
}

impl IdGenerator for PresetTraceIds {
    fn new_trace_id(&self) -> TraceId {
        PRESET_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

/// What the sampler said before the span was built.
pub(crate) enum Early {
    /// Dropped: the request's context, holding a non-recording span.
    Dropped(Context),
    /// Kept: build the span while this lives (it presets the trace ID of a
    /// new trace for the SDK, and clears it when dropped).
    Kept(Keep),
}

/// Presets the trace ID of the next root span on this thread while it
/// lives.
pub(crate) struct Keep(());

impl Drop for Keep {
    fn drop(&mut self) {
        PRESET_TRACE_ID.with(|p| p.set(None));
    }
}

/// Where a server span's OpenTelemetry parent comes from.
pub(crate) enum Parent<'a> {
    /// A context extracted from the request's headers (`set_parent`).
    Remote(&'a Context),
    /// None: a new trace, whatever is current (`set_parent` with an empty
    /// context, for public endpoints).
    Root,
    /// The contextual one: the current tracing span's, or the current
    /// OpenTelemetry context when no tracing span is current.
    Contextual,
}

/// Asks the subscriber's [`SamplerLayer`], if it has one, about a server
/// span whose parent is `parent`. `None`: no early decision (no layer, or a
/// contextual parent that is a tracing span: the bridge decides).
pub(crate) fn decide_server(parent: Parent<'_>) -> Option<Early> {
    decide_in_subscriber(parent, &SpanKind::Server, SERVER_SPAN_NAME, true)
}

/// Like [`decide_server`] for a client span under the current context
/// (decided early only when no tracing span is current: the request that
/// makes the call was itself dropped early, or runs outside any span). A
/// dropped call always gets a span ID of its own, for its `traceparent`.
pub(crate) fn decide_client() -> Option<Early> {
    decide_in_subscriber(
        Parent::Contextual,
        &SpanKind::Client,
        CLIENT_SPAN_NAME,
        false,
    )
}

fn decide_in_subscriber(
    parent: Parent<'_>,
    kind: &SpanKind,
    name: &str,
    reuse_remote: bool,
) -> Option<Early> {
    tracing::dispatcher::get_default(|dispatch| {
        let layer = dispatch.downcast_ref::<SamplerLayer>()?;
        let current;
        let parent_cx = match parent {
            Parent::Remote(cx) => cx,
            Parent::Root => {
                current = Context::new();
                &current
            }
            Parent::Contextual => {
                if dispatch.current_span().id().is_some() {
                    return None;
                }
                current = Context::current();
                &current
            }
        };
        Some(decide(&layer.sampler, parent_cx, kind, name, reuse_remote))
    })
}

fn decide(
    sampler: &Sampler,
    parent_cx: &Context,
    kind: &SpanKind,
    name: &str,
    reuse_remote: bool,
) -> Early {
    let parent = parent_cx.span();
    let parent = parent.span_context();
    let ids = RandomIdGenerator::default();
    let root = !parent.is_valid();
    let trace_id = if root {
        ids.new_trace_id()
    } else {
        parent.trace_id()
    };
    let result = sampler.should_sample(Some(parent_cx), trace_id, name, kind, &[], &[]);
    match result.decision {
        SamplingDecision::Drop => {
            // An unsampled remote parent is the request's context as it
            // came: no new context to build. (Lines then show the caller's
            // span ID; the request has no span of its own to point to, and
            // an outgoing call gets an ID of its own either way.)
            if reuse_remote
                && !root
                && !parent.is_sampled()
                && parent.is_remote()
                && result.trace_state == *parent.trace_state()
            {
                return Early::Dropped(parent_cx.clone());
            }
            let flags = parent.trace_flags().with_sampled(false);
            let own = SpanContext::new(
                trace_id,
                ids.new_span_id(),
                flags,
                false,
                result.trace_state,
            );
            Early::Dropped(parent_cx.with_remote_span_context(own))
        }
        SamplingDecision::RecordOnly | SamplingDecision::RecordAndSample => {
            if root {
                PRESET_TRACE_ID.with(|p| p.set(Some(trace_id)));
            }
            Early::Kept(Keep(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceFlags;

    fn server(sampler: &Sampler, parent_cx: &Context) -> Early {
        decide(
            sampler,
            parent_cx,
            &SpanKind::Server,
            SERVER_SPAN_NAME,
            true,
        )
    }

    #[test]
    fn a_preset_trace_id_is_taken_once() {
        let ids = PresetTraceIds::default();
        let keep = match server(&Sampler::AlwaysOn, &Context::new()) {
            Early::Kept(keep) => keep,
            Early::Dropped(_) => panic!("always on keeps"),
        };
        let preset = PRESET_TRACE_ID.with(Cell::get).expect("preset for a root");
        assert_eq!(ids.new_trace_id(), preset);
        assert_ne!(ids.new_trace_id(), preset);
        drop(keep);
        assert_eq!(PRESET_TRACE_ID.with(Cell::get), None);
    }

    #[test]
    fn a_dropped_root_has_a_new_unsampled_trace() {
        let Early::Dropped(cx) = server(&Sampler::AlwaysOff, &Context::new()) else {
            panic!("always off drops");
        };
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert!(!sc.is_sampled());
        assert!(!cx.span().is_recording());
        assert_eq!(PRESET_TRACE_ID.with(Cell::get), None);
    }

    #[test]
    fn a_dropped_child_continues_its_parents_trace() {
        let remote = |flags| {
            let parent = SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                SpanId::from(0x00f0_67aa_0ba9_02b7),
                flags,
                true,
                Default::default(),
            );
            (
                Context::new().with_remote_span_context(parent.clone()),
                parent,
            )
        };
        // An unsampled parent, dropped by a parent-based sampler: the
        // context as it came.
        let (parent_cx, parent) = remote(TraceFlags::default());
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let Early::Dropped(cx) = server(&sampler, &parent_cx) else {
            panic!("an unsampled parent drops");
        };
        assert_eq!(cx.span().span_context(), &parent);
        // A sampled parent this service drops: its own unsampled span context
        // in the same trace.
        let (parent_cx, parent) = remote(TraceFlags::SAMPLED);
        let Early::Dropped(cx) = server(&Sampler::AlwaysOff, &parent_cx) else {
            panic!("always off drops");
        };
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), parent.trace_id());
        assert_ne!(sc.span_id(), parent.span_id());
        assert!(!sc.is_sampled());
        assert!(!sc.is_remote());
    }
}
