#![doc = include_str!("../README.md")]

#[macro_use]
mod macros;

pub mod client;
pub mod env;
mod error;
mod header;
pub mod metrics;
pub mod rule;
pub mod server;

pub use telltale_core::correlation::{
    CorrelationId, InCurrent, InvalidCorrelationId, MAX_LEN, current, in_current, scope,
    sync_scope, with_current,
};

pub use crate::metrics::{GENERATED_TOTAL, REJECTED_TOTAL};
pub use client::{InjectCorrelationLayer, InjectCorrelationLayerBuilder, InjectCorrelationService};
pub use error::BuildError;
pub use header::{DEFAULT_ALIASES, DEFAULT_HEADER};
pub use rule::{DefaultRule, Rule};
pub use server::{CorrelationLayer, CorrelationLayerBuilder, CorrelationService};
