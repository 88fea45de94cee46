//! The process-wide registry the debug surface reads: every breaker,
//! bulkhead and chaos injector registered here shows on the page.
//!
//! `telltale::ServerStack` and `telltale::ClientStack` register their
//! configured breaker, bulkhead and chaos injector when their layer is made
//! (the facade's `debug` feature); code using the bare layers registers its
//! own:
//!
//! ```
//! use telltale_resilience::{Bulkhead, CircuitBreaker};
//!
//! let breaker = CircuitBreaker::builder("inventory").build().unwrap();
//! telltale_debug::register_breaker(&breaker);
//! telltale_debug::register_breaker(&breaker); // once is enough; twice is harmless
//! telltale_debug::register_bulkhead(&Bulkhead::builder("inventory").build().unwrap());
//! assert_eq!(telltale_debug::registered_breakers().iter().filter(|b| b.name() == "inventory").count(), 1);
//! ```
//!
//! The registry holds the handles (a breaker stays alive while registered)
//! and at most [`MAX_REGISTERED`] of each kind: more are ignored, with one
//! warning.

use std::sync::{Mutex, MutexGuard, OnceLock};

use telltale_chaos::{ChaosHandle, Injector, Status};
use telltale_resilience::{Bulkhead, CircuitBreaker};

/// The most breakers (bulkheads, injectors) the registry holds.
pub const MAX_REGISTERED: usize = 1024;

/// A registered chaos injector and where it injects.
#[derive(Clone, Debug)]
pub struct RegisteredInjector {
    /// Where it injects, such as `server (inbound)` or `payments (outbound)`.
    pub label: String,
    /// Its run-time control.
    pub handle: ChaosHandle,
}

#[derive(Default)]
struct Registry {
    breakers: Vec<CircuitBreaker>,
    bulkheads: Vec<Bulkhead>,
    injectors: Vec<RegisteredInjector>,
    warned: bool,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn full(r: &mut Registry, len: usize) -> bool {
    if len < MAX_REGISTERED {
        return false;
    }
    if !r.warned {
        r.warned = true;
        tracing::warn!(
            target: "telltale::debug",
            max = MAX_REGISTERED,
            "debug surface registry full: further breakers, bulkheads or injectors are not shown"
        );
    }
    true
}

/// Shows `breaker` on the debug page (once, however often it is registered).
pub fn register_breaker(breaker: &CircuitBreaker) {
    let mut r = registry();
    if r.breakers.iter().any(|b| b.same_as(breaker)) {
        return;
    }
    let len = r.breakers.len();
    if !full(&mut r, len) {
        r.breakers.push(breaker.clone());
    }
}

/// Shows `bulkhead` on the debug page (once).
pub fn register_bulkhead(bulkhead: &Bulkhead) {
    let mut r = registry();
    if r.bulkheads.iter().any(|b| b.same_as(bulkhead)) {
        return;
    }
    let len = r.bulkheads.len();
    if !full(&mut r, len) {
        r.bulkheads.push(bulkhead.clone());
    }
}

/// Shows `injector` on the debug page (once, under the first label), with
/// its pause, resume and kill buttons. An injector that is off (no rules)
/// is not shown.
pub fn register_injector(injector: &Injector, label: &str) {
    if injector.status() == Status::Off {
        return;
    }
    let handle = injector.handle();
    let mut r = registry();
    if r.injectors.iter().any(|i| i.handle.same_as(&handle)) {
        return;
    }
    let len = r.injectors.len();
    if !full(&mut r, len) {
        r.injectors.push(RegisteredInjector {
            label: label.to_owned(),
            handle,
        });
    }
}

/// Every registered breaker, in registration order.
pub fn registered_breakers() -> Vec<CircuitBreaker> {
    registry().breakers.clone()
}

/// Every registered bulkhead, in registration order.
pub fn registered_bulkheads() -> Vec<Bulkhead> {
    registry().bulkheads.clone()
}

/// Every registered injector, in registration order.
pub fn registered_injectors() -> Vec<RegisteredInjector> {
    registry().injectors.clone()
}
