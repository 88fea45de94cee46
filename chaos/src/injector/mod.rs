//! The injector: armed rules, the guards around them, and the run-time handle.
//!
//! An [`Injector`] is built from the environment ([`Injector::from_env`]) or
//! with [`Injector::builder`]; layers made from it ([`ChaosLayer`](crate::ChaosLayer))
//! share its state. A [`ChaosHandle`] replaces the rules, pauses, resumes and
//! kills injection at run time.
//!
//! ```
//! use telltale_chaos::{Injector, Status};
//! use telltale_core::config::Env;
//!
//! let env = Env::from_pairs([
//!     ("TELLTALE_CHAOS", "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503)"),
//!     ("TELLTALE_CHAOS_SEED", "42"),
//!     ("TELLTALE_ENV", "staging"),
//! ]);
//! let injector = Injector::from_env_source(&env).unwrap();
//! assert_eq!(injector.status(), Status::Armed);
//!
//! let handle = injector.handle();
//! handle.pause();
//! assert_eq!(injector.status(), Status::Paused);
//! handle.resume();
//! handle.kill();
//! assert_eq!(injector.status(), Status::Killed);
//!
//! // Off unless asked for, and refused outside the allowed environments.
//! let off = Injector::from_env_source(&Env::from_pairs([("TELLTALE_ENV", "staging")])).unwrap();
//! assert_eq!(off.status(), Status::Off);
//! let prod = Env::from_pairs([("TELLTALE_CHAOS", "in: abort"), ("TELLTALE_ENV", "production")]);
//! assert_eq!(Injector::from_env_source(&prod).unwrap().status(), Status::Refused);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::Counter;
use telltale_core::config::{Env, EnvSource, ProcessEnv};
use tokio::sync::Notify;

use crate::headers::HeaderFaults;
use crate::rules::RuleSet;

// The builder and the environment guard; rules prepared at arm time; one
// request's decisions; the error; run-time control.
mod armed;
mod builder;
mod decide;
mod error;
mod handle;
mod inspect;

pub(crate) use armed::Terminal;
pub use builder::{DEFAULT_ALLOWED_ENVS, InjectorBuilder};
pub(crate) use decide::{ActiveGuard, Plan};
pub use error::ChaosError;
pub use handle::ChaosHandle;
pub use inspect::RuleStats;

use armed::Armed;

/// Where the injector stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No rules were given: nothing is ever injected.
    Off,
    /// Rules are armed and injecting.
    Armed,
    /// Paused by the handle; [`ChaosHandle::resume`] arms again.
    Paused,
    /// Killed by the handle: nothing more is injected, faults in progress stop.
    Killed,
    /// The TTL ran out.
    Expired,
    /// The environment guard refused to arm (see [`Injector::refusal`]).
    Refused,
}

const OFF: u8 = 0;
const ARMED: u8 = 1;
const PAUSED: u8 = 2;
const KILLED: u8 = 3;
const EXPIRED: u8 = 4;
const REFUSED: u8 = 5;

fn status_of(v: u8) -> Status {
    match v {
        ARMED => Status::Armed,
        PAUSED => Status::Paused,
        KILLED => Status::Killed,
        EXPIRED => Status::Expired,
        REFUSED => Status::Refused,
        _ => Status::Off,
    }
}

/// Fault injection state shared by every layer made from it. Cheap to clone.
#[derive(Clone)]
pub struct Injector {
    pub(crate) shared: Arc<Shared>,
}

/// The state shared by an [`Injector`], its handles and every layer made from it.
pub(crate) struct Shared {
    pub(crate) state: AtomicU8,
    armed: RwLock<Arc<Armed>>,
    pub(crate) kill: Arc<Notify>,
    active: AtomicUsize,
    max_active: Option<usize>,
    seed: Option<u64>,
    ttl: Option<Duration>,
    pub(crate) response_header: bool,
    pub(crate) header_faults: Option<HeaderFaults>,
    seq: AtomicU64,
    refusal: Option<String>,
    /// Registered at the first skip: only a configured, armed injector skips.
    skipped: std::sync::OnceLock<Counter>,
    header_counters: Vec<(&'static str, Counter)>,
}

impl Shared {
    pub(crate) fn is_killed(&self) -> bool {
        self.state.load(Ordering::Acquire) == KILLED
    }
}

impl Injector {
    /// A builder; nothing is read from the environment.
    pub fn builder() -> InjectorBuilder {
        InjectorBuilder::default()
    }

    /// An injector that never injects (the state when `TELLTALE_CHAOS` is unset).
    pub fn disabled() -> Self {
        InjectorBuilder::default().finish(None, OFF, None)
    }

    /// Reads `TELLTALE_CHAOS` and its companion variables ([`crate::env`])
    /// from the process environment; see the
    /// [crate docs](crate#environment-variables).
    pub fn from_env() -> Result<Self, ChaosError> {
        Self::from_env_source(&Env::<ProcessEnv>::process())
    }

    /// [`from_env`](Self::from_env) reading from `env` (tests, embedded configs).
    pub fn from_env_source<S: EnvSource>(env: &Env<S>) -> Result<Self, ChaosError> {
        crate::env::injector(env)
    }

    /// The run-time control handle.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(self.shared.clone())
    }

    /// Where the injector stands now.
    pub fn status(&self) -> Status {
        self.handle().status()
    }

    /// Why the environment guard refused to arm, when it did.
    pub fn refusal(&self) -> Option<&str> {
        self.shared.refusal.as_deref()
    }

    /// The armed rules (empty when off).
    pub fn rules(&self) -> RuleSet {
        self.handle().rules()
    }

    /// Faults in flight now (reserved and not yet ended).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The one atomic load on every request.
    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        self.shared.state.load(Ordering::Relaxed) == ARMED
    }
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("status", &self.status())
            .field("rules", &self.rules().to_string())
            .field("active", &self.active())
            .finish()
    }
}
