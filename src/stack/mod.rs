//! Stack presets: every telltale layer of one side, composed in the
//! recommended order, as one tower [`Layer`](tower_layer::Layer).
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
//! 1. **Request span + RED metrics** ([`telemetry::layer::ServerTelemetryLayer`]):
//!    outermost, so that everything below it — rejections, injected faults,
//!    the handler — is inside the span and counted with its real status and
//!    duration.
//! 2. **Correlation ID** ([`correlation::CorrelationLayer`]): inside the span,
//!    so the ID it reads or generates is recorded on that span (and set for
//!    every log line and outbound call of the request).
//! 3. **Errors to responses** ([`resilience::reject::RejectionResponseLayer`],
//!    answering every error): an open circuit becomes
//!    `503` with `Retry-After`, a full bulkhead `503` (or `429`), a timeout
//!    `504`, anything else `500`; gRPC requests get a trailers-only response
//!    with `grpc-status` `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
//!    `DEADLINE_EXCEEDED` or `INTERNAL`. The stack is infallible (what axum's
//!    `Router::layer` asks for) and the span above sees the mapped status.
//!    An injected `abort`/`reset` therefore becomes a `500` here; to break
//!    real connections, serve `ChaosLayer::inbound` outside the stack with
//!    hyper-util (see the chaos crate's README).
//! 4. **Body idle timeout** ([`resilience::body_timeout`], with a bulkhead):
//!    a response body whose reader has not asked for the next frame for
//!    [`DEFAULT_BODY_IDLE_TIMEOUT`] (30 s; `TELLTALE_BODY_IDLE_TIMEOUT`,
//!    [`ServerStack::body_idle_timeout`]) is ended, which releases the
//!    bulkhead slot, the breaker permit (abandoned: not a failure) and any
//!    chaos slot below; counted in `telltale_bulkhead_body_timeouts_total`.
//!    Outside the breaker, so a slow client never counts against the
//!    dependency.
//! 5. **Circuit breaker** ([`resilience::CircuitBreaker`]): outside the
//!    bulkhead, so that an open circuit rejects before taking a slot. A full
//!    bulkhead is *not* counted by the breaker (its rejection is `ignored`):
//!    shedding load because this service is full is not evidence that what
//!    the breaker protects is broken, and counting it would open the breaker
//!    under overload and turn shedding into a total outage (issue 14: 21
//!    requests/s instead of 1,486). Counting it is an explicit choice:
//!    [`count_rejections`](crate::resilience::CircuitBreakerBuilder::count_rejections)
//!    or `TELLTALE_BREAKER_COUNT_REJECTIONS=true`. Real failures below it
//!    (5xx from the handler, injected faults, errors) count as usual.
//! 6. **Bulkhead** ([`resilience::Bulkhead`]): the slot is held until the
//!    response body ends (or the body idle timeout above ends it).
//! 7. **Chaos** ([`chaos::ChaosLayer::inbound`]): innermost, right around the
//!    handler, so injected delays and failures look like a slow or failing
//!    handler to everything above: the breaker counts them, the bulkhead holds
//!    a slot, the span is tagged `chaos.*` and keeps the status.
//!
//! # Client order, outermost first
//!
//! 1. **CLIENT span + RED metrics** ([`telemetry::layer::ClientTelemetryLayer`]), which
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
//! presets have one concrete type whatever the configuration. Inert ones
//! ([`CircuitBreaker::inert`], [`Bulkhead::unlimited`]) register no metric
//! series and never show up on a dashboard.
//!
//! # Layout
//!
//! `server.rs` ([`ServerStack`]), `client.rs` ([`ClientStack`]), `guards.rs`
//! (what both share: the breaker, bulkhead and chaos injector, configured or
//! inert, and [`StackError`]) and [`env`](mod@env) (the presets' own variables).
//!
//! [`CircuitBreaker::inert`]: crate::resilience::CircuitBreaker::inert
//! [`Bulkhead::unlimited`]: crate::resilience::Bulkhead::unlimited
//!
//! [`resilience::reject::RejectionResponseLayer`]: crate::resilience::reject::RejectionResponseLayer
//! [`telemetry::layer::ServerTelemetryLayer`]: crate::telemetry::layer::ServerTelemetryLayer
//! [`telemetry::layer::ClientTelemetryLayer`]: crate::telemetry::layer::ClientTelemetryLayer
//! [`correlation::CorrelationLayer`]: crate::correlation::CorrelationLayer
//! [`correlation::InjectCorrelationLayer`]: crate::correlation::InjectCorrelationLayer
//! [`resilience::CircuitBreaker`]: crate::resilience::CircuitBreaker
//! [`resilience::Bulkhead`]: crate::resilience::Bulkhead
//! [`resilience::body_timeout`]: crate::resilience::body_timeout
//! [`chaos::ChaosLayer::inbound`]: crate::chaos::ChaosLayer::inbound
//! [`chaos::ChaosLayer::outbound`]: crate::chaos::ChaosLayer::outbound

mod client;
pub mod env;
mod guards;
mod server;

pub use client::{ClientStack, ClientStackLayer, ClientStackService, DEFAULT_CLIENT_TIMEOUT};
pub use guards::{BoxErrorsFuture, BoxErrorsService, StackError};
pub use server::{
    DEFAULT_BODY_IDLE_TIMEOUT, ServerStack, ServerStackLayer, ServerStackService, stack,
};
