#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`DebugSurface`]: configuration, [`router`](DebugSurface::router),
//!   [`serve`](DebugSurface::serve).
//! - [`env`](mod@env): `TELLTALE_DEBUG_ADDR`, `TELLTALE_DEBUG_ALLOW_REMOTE`,
//!   `TELLTALE_DEBUG_TOKEN`.
//! - [`registry`]: the breakers, bulkheads and chaos injectors the page shows.
//! - [`red`]: RED per route from the Prometheus recorder.

pub mod env;
mod html;
pub mod red;
pub mod registry;
mod surface;
mod traces;
mod view;

pub use html::esc;
pub use registry::{
    register_breaker, register_bulkhead, register_injector, registered_breakers,
    registered_bulkheads, registered_injectors,
};
pub use surface::{DebugError, DebugServer, DebugSurface};
pub use traces::{LIST_LEN, SLOWEST_LEN};
