#![doc = include_str!("../README.md")]

pub mod client;
mod config;
mod counters;
mod error;
pub mod rule;
pub mod server;

pub use telltale_core::correlation::{
    CorrelationId, InCurrent, InvalidCorrelationId, MAX_LEN, current, in_current, scope,
    sync_scope, with_current,
};

pub use client::InjectCorrelationLayer;
pub use config::{
    DEFAULT_HEADER, ENV_ALIASES, ENV_CLIENT_GENERATE, ENV_CLIENT_OVERRIDE, ENV_ECHO, ENV_HEADER,
    ENV_MAX_LEN, ENV_REQUIRE, ENV_TRUST_INCOMING,
};
pub use counters::{GENERATED_TOTAL, REJECTED_TOTAL};
pub use error::BuildError;
pub use rule::{DefaultRule, Rejection, Rule};
pub use server::CorrelationLayer;
