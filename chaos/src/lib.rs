#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`rules`]: the rule model and its canonical printing.
//! - [`parse`]: the parser and its compiler-style [`RuleError`].
//! - [`injector`]: [`Injector`], [`InjectorBuilder`], [`ChaosHandle`], [`Status`].
//! - [`env`](mod@env): the environment variables, one constant each.
//! - [`layer`]: [`ChaosLayer`] for the server (inbound) and client (outbound) side.
//! - [`headers`]: header-controlled faults from trusted callers.
//! - [`metrics`]: the metric names.

pub mod env;
pub mod headers;
pub mod injector;
pub mod layer;
pub mod metrics;
pub mod parse;
pub mod rules;

pub use headers::{HeaderFaults, PeerAddr};
pub use injector::{
    ChaosError, ChaosHandle, DEFAULT_ALLOWED_ENVS, Injector, InjectorBuilder, Status,
};
pub use layer::{ChaosLayer, ChaosService, ResponseBody, ResponseFuture};
pub use parse::{RuleError, parse_rules};
pub use rules::{Fault, RuleSet};
