#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`rules`]: the rule model and its canonical printing.
//! - [`parse`]: the parser and its compiler-style [`RuleError`].
//! - [`injector`]: [`Injector`], [`InjectorBuilder`], [`ChaosHandle`], [`Status`].
//! - [`layer`]: [`ChaosLayer`] for the server (inbound) and client (outbound) side.
//! - [`headers`]: header-controlled faults from trusted callers.

mod config;
pub mod headers;
pub mod injector;
pub mod layer;
pub mod parse;
pub mod rules;

pub use config::RULES_VAR;
pub use headers::{HeaderFaults, PeerAddr};
pub use injector::{
    ChaosError, ChaosHandle, DEFAULT_ALLOWED_ENVS, Injector, InjectorBuilder, Status,
};
pub use layer::{Chaos, ChaosLayer, ResponseBody, ResponseFuture};
pub use parse::{RuleError, parse_rules};
pub use rules::{Direction, Fault, RuleSet};
