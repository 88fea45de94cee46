//! Quick start: classify a response the way every telltale layer does.
//!
//! Run with `cargo run --example quickstart`.

use http::StatusCode;
use telltale::core::{FailurePolicy, Outcome, Side};

fn main() {
    let policy = FailurePolicy::default();
    for status in [
        StatusCode::OK,
        StatusCode::NOT_FOUND,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let outcome = Outcome::Response { status, grpc: None };
        println!(
            "{status}: failure={} error.type(server)={:?} error.type(client)={:?}",
            policy.is_failure(&outcome),
            outcome.error_type(Side::Server),
            outcome.error_type(Side::Client)
        );
    }
}
