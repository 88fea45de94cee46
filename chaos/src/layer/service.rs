use std::task::{Context, Poll};

use http::{Request, Response};
use telltale_core::{BoxError, Side};
use tower_service::Service;

use super::future::ResponseFuture;
use crate::injector::{Injector, Terminal};

/// The chaos middleware made by [`ChaosLayer`](super::ChaosLayer).
///
/// A request that gets a `status`, `grpc`, `abort` or `reset` fault without a
/// delay is answered without calling the inner service (which stays ready, as
/// tower allows). A delayed or hanging request takes the ready inner service
/// into its future and leaves a clone in its place, so the inner service must
/// be `Clone` (as routers, tonic channels and hyper clients are).
#[derive(Clone, Debug)]
pub struct ChaosService<S> {
    inner: S,
    injector: Injector,
    side: Side,
}

impl<S> ChaosService<S> {
    pub(crate) fn new(inner: S, injector: Injector, side: Side) -> Self {
        ChaosService {
            inner,
            injector,
            side,
        }
    }

    telltale_core::inner_service_accessors!();
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ChaosService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<super::ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        if !self.injector.is_armed() {
            return ResponseFuture::call(|| self.inner.call(req), None);
        }
        let Some(mut plan) = self.injector.plan(self.side, &mut req) else {
            return ResponseFuture::call(|| self.inner.call(req), None);
        };
        let hangs = matches!(plan.terminal, Some((Terminal::Timeout, _)));
        if !plan.delay.is_zero() || hangs {
            let ready = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, ready);
            let shared = self.injector.shared.clone();
            return ResponseFuture::wait(service, req, plan, &shared);
        }
        match plan.terminal.take() {
            Some((terminal, rule)) => ResponseFuture::ready(&terminal, rule, plan),
            None => ResponseFuture::call(|| self.inner.call(req), Some(plan)),
        }
    }
}
