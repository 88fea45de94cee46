//! Test support for the telltale crates (`publish = false`).
//!
//! # Capturing tracing output deterministically
//!
//! `tracing` caches, per callsite and for the whole process, whether any
//! dispatcher is interested in it ([`Interest`]), and keeps one global
//! maximum level. Tests that install a thread-local subscriber
//! (`tracing::subscriber::set_default`) and count what it saw are flaky
//! under `cargo test` parallelism: when at most one dispatcher is
//! registered, `tracing-core` computes a new callsite's interest from the
//! *registering thread's* default dispatcher alone. A test thread without a
//! subscriber that hits a callsite first caches it as `never` for everybody,
//! and the capturing test on another thread silently loses the event
//! (`rebuild_interest_cache()` after installing narrows the window but
//! cannot close it: the other thread may register the callsite right after).
//!
//! [`init`] removes the cause: it installs, once per test binary, a global
//! dispatcher that is registered twice (so `tracing-core` always consults
//! the list of registered dispatchers, never one thread's default) and whose
//! [`register_callsite`](tracing::Subscriber::register_callsite) answers
//! [`Interest::sometimes`] and whose level hint is `TRACE`. Every callsite's
//! cached interest is then `sometimes` and the maximum level `TRACE`, whatever
//! the order in which threads register callsites, so every event asks the
//! current thread's dispatcher (`enabled`), and thread-local switching never
//! depends on caching. Outside a capture the global dispatcher is interested
//! in nothing.
//!
//! Use it through:
//!
//! - [`Capture::start`]: captures this thread's events (as structured
//!   [`CapturedEvent`]s and as plain-text [`lines`](Capture::lines) in the
//!   `tracing_subscriber::fmt` format) and span field recordings
//!   ([`SpanRecord`]).
//! - [`set_default`] / [`with_default`]: a full subscriber of the test's own
//!   (a telemetry pipeline's `Dispatch`, an OpenTelemetry layer) as this
//!   thread's default, after [`init`].
//!
//! A test binary with captures calls [`init`] (directly, or through one of
//! the above) at the start of *every* test that emits tracing events, before
//! the first event: a callsite registered before the global dispatcher exists
//! could still be cached from a thread's default. Events are seen by the
//! dispatcher of the thread that emits them: run the code under test on the
//! capturing thread (a current-thread runtime, which `#[tokio::test]` is by
//! default), or hand [`Capture::dispatch`] to spawned tasks and threads
//! (`tracing::instrument::WithSubscriber`, or the runtime builder's
//! `on_thread_start`).
//!
//! ```
//! let capture = telltale_testkit::Capture::start();
//! tracing::warn!(breaker = "db", "circuit breaker opened");
//! let event = &capture.events()[0];
//! assert_eq!(event.message(), Some("circuit breaker opened"));
//! assert_eq!(event.field("breaker"), Some("db"));
//! assert!(capture.lines()[0].contains("WARN"));
//! ```
//!
//! # Checking configuration errors
//!
//! Every telltale variable has a validated range, and a rejected value is an
//! error naming the variable, quoting the value and stating what is allowed.
//! [`assert_config_error`] (and [`check_config_error`], which returns the
//! failures instead of panicking) is the one check of that rule that every
//! crate's env-validation tests use; see [`config_error`].
//!
//! [`Interest`]: tracing::subscriber::Interest
//! [`Interest::sometimes`]: tracing::subscriber::Interest::sometimes

pub mod alloc;
mod capture;
pub mod config_error;
mod global;
#[cfg(feature = "prometheus")]
pub mod prometheus;

pub use capture::{Capture, CapturedEvent, SpanRecord};
pub use config_error::{assert_config_error, check_config_error};
pub use global::{init, set_default, with_default};
