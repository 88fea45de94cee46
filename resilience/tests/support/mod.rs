//! What the resilience tests share: calling a tower service, and (outside
//! loom builds) a real HTTP server and client.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Debug;

use tower::{Service, ServiceExt};

/// Waits for `svc` to be ready (it must be) and calls it with `req`.
pub async fn call<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
    S::Error: Debug,
{
    svc.ready()
        .await
        .expect("the service is ready")
        .call(req)
        .await
}

#[cfg(not(loom))]
pub mod http;
