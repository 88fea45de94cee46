//! A bound on slow readers: [`BodyTimeoutLayer`] ends a response body whose
//! reader stopped reading for longer than the idle timeout, which releases
//! everything the body holds below the layer (a bulkhead slot, a breaker
//! permit, a chaos slot).
//!
//! Permits are held until the response body ends. A client that requests a
//! large body and never reads it stops the server from polling the body (the
//! socket's send buffer is full), so without a bound its slot is held for as
//! long as it stays connected, and 16 such clients hold a 16-slot bulkhead
//! indefinitely. With the layer, once a body has handed out a frame and the
//! reader has not asked for the next one within the idle timeout, the
//! layer's reaper drops the inner body (releasing its permits), counts
//! `telltale_bulkhead_body_timeouts_total{name}`, emits a WARN event (target
//! `telltale::bulkhead`) inside the request's span, and the body ends with a
//! [`BodyTimeout`] error if it is polled again (its source is
//! [`telltale_core::BodyTimedOut`]).
//!
//! The layers around learn it at once, although the stalled reader may never
//! poll the body again. Only a body that streams can stall (a reader stalls
//! a body between two frames), so only then is anything made for them: when
//! the body first hands out a frame with more to come, the layer makes a
//! [`telltale_core::BodyTimeoutSignal`] and offers it
//! ([`BodyTimeoutSignal::offer`](telltale_core::BodyTimeoutSignal::offer))
//! to the layers outside that are polling the body at that moment (telltale's
//! telemetry layer, through its `CompletionBody`), before that frame reaches
//! the reader. On a timeout it fires the signal, then drops the inner body
//! with [`telltale_core::body::drop_timed_out`], so that the layers inside
//! (a breaker) see their bodies end as [`BodyEnd::TimedOut`](telltale_core::BodyEnd::TimedOut)
//! rather than as a caller that went away. The request's span and RED
//! metrics then end with `error.type=body_timeout`, and a breaker inside
//! records the call as ignored (`telltale_core::Outcome::BodyTimeout`, not a
//! failure under the default `FailurePolicy`). A layer between this one and
//! the telemetry layer that polls the body on another task hides the signal:
//! the telemetry layer then sees the timeout only if the reader polls again
//! (the body's error) or goes away. Time spent waiting for the inner body
//! itself (a slow producer, a server-sent event stream) is not idle time:
//! only a stalled reader is bounded.
//!
//! The reaper is one tokio task per layer, not per response: it is started
//! (on the runtime polling the body) when a body first hands out a frame with
//! more to come, holds a deadline-ordered queue of weak handles to such
//! bodies, and ends when the queue is empty, so it keeps neither the layer
//! nor the runtime alive (at most one timeout after the last body is gone).
//! A response whose body ends with its first frame (most responses) is never
//! queued; a streamed body is queued once and checked again at the deadline
//! of its last frame, so a frame costs one `Instant` read. Per response, the
//! layer allocates the box of the body, and nothing else unless the body
//! streams: then the state it shares with the reaper and the signal
//! (nothing goes into the request's or the response's extensions). Without
//! a tokio runtime there is no timer and bodies are not bounded.
//!
//! Written here rather than taken from `tower-http`'s `TimeoutBody`, which
//! bounds the wait for the *inner* body's frames (a slow producer) and is
//! only polled by the reader, so it never fires while the reader is stalled.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::Bulkhead;
//! use telltale_resilience::body_timeout::BodyTimeoutLayer;
//! use tower::ServiceBuilder;
//!
//! let bulkhead = Bulkhead::builder("api").max_concurrent(16).build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(BodyTimeoutLayer::new("api", Some(Duration::from_secs(30))))
//!     .layer(bulkhead.layer())
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! ```

mod body;
mod layer;
mod reaper;
mod service;

pub use body::{BodyTimeout, ResponseBody};
pub use layer::BodyTimeoutLayer;
pub use service::{BodyTimeoutService, ResponseFuture};
