//! The one global dispatcher of a test binary.

use std::sync::OnceLock;

use tracing::dispatcher::DefaultGuard;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;

/// Interested in every callsite, `sometimes`: never lets a callsite be
/// cached as `never` (or `always`), never lowers the global maximum level,
/// and enables nothing by itself.
struct AlwaysAsk;

impl Subscriber for AlwaysAsk {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Unreachable: `enabled` is false, so no span is ever created here.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The second registration of [`AlwaysAsk`], alive for the whole process.
static KEEPER: OnceLock<Dispatch> = OnceLock::new();

/// Installs the test binary's global dispatcher; idempotent and thread-safe
/// (concurrent callers wait until it is installed).
///
/// After `init`, every callsite's cached interest is `sometimes` and the
/// global maximum level is `TRACE`, whatever the order in which test threads
/// register callsites, so a thread-local subscriber sees exactly the events
/// emitted on its thread. Call it at the start of every test of a binary
/// that captures tracing output (the capture functions of this crate call it).
///
/// # Panics
///
/// If another global dispatcher was installed first (a test binary that
/// captures must not call `tracing::subscriber::set_global_default` or a
/// telemetry `init()`).
pub fn init() {
    KEEPER.get_or_init(|| {
        // Both are registered (`Dispatch::new`) and never dropped, so
        // `tracing-core` always sees more than one registered dispatcher and
        // computes interest from all of them instead of from the registering
        // thread's default.
        let global = Dispatch::new(AlwaysAsk);
        let keeper = Dispatch::new(AlwaysAsk);
        tracing::dispatcher::set_global_default(global).expect(
            "telltale-testkit installs the global dispatcher of a test binary that captures tracing output",
        );
        tracing::callsite::rebuild_interest_cache();
        keeper
    });
}

/// [`init`], then `dispatch` as this thread's default until the guard drops
/// (`tracing::dispatcher::set_default`). Accepts a `Dispatch` or any
/// subscriber.
#[must_use = "the dispatch is this thread's default only until the guard drops"]
pub fn set_default(dispatch: impl Into<Dispatch>) -> DefaultGuard {
    init();
    tracing::dispatcher::set_default(&dispatch.into())
}

/// [`init`], then runs `f` with `dispatch` as this thread's default
/// (`tracing::dispatcher::with_default`).
pub fn with_default<T>(dispatch: &Dispatch, f: impl FnOnce() -> T) -> T {
    init();
    tracing::dispatcher::with_default(dispatch, f)
}
