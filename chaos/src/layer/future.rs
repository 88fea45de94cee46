use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use telltale_core::BoxError;
use telltale_core::grpc::{GRPC_MESSAGE, trailers_only_response};
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tower_service::Service;

use super::body::ResponseBody;
use super::error::InjectedFault;
use crate::injector::{Plan, Shared, Terminal};

/// The synthetic response of a `status` or `grpc` fault, or an `abort`/`reset` error.
pub(crate) fn synthesize(terminal: &Terminal, rule: Arc<str>) -> Result<Response<Bytes>, BoxError> {
    match terminal {
        Terminal::Status {
            status,
            body,
            retry_after,
        } => {
            let mut res = Response::new(body.clone());
            *res.status_mut() = *status;
            if !body.is_empty() {
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
            if let Some(after) = retry_after {
                res.headers_mut().insert(header::RETRY_AFTER, after.clone());
            }
            Ok(res)
        }
        Terminal::Grpc { code, message } => {
            let mut res = trailers_only_response::<Bytes>(*code, "");
            if let Some(message) = message {
                res.headers_mut().insert(GRPC_MESSAGE, message.clone());
            }
            Ok(res)
        }
        Terminal::Abort => {
            Err(InjectedFault::new(rule, std::io::ErrorKind::ConnectionAborted).into())
        }
        Terminal::Reset => {
            Err(InjectedFault::new(rule, std::io::ErrorKind::ConnectionReset).into())
        }
        Terminal::Timeout => unreachable!("a timeout waits, it is never synthesized"),
    }
}

/// A delayed or hanging request, waiting for its timer or the kill switch.
struct Waiting<S, ReqB> {
    sleep: Option<Pin<Box<Sleep>>>,
    kill: Pin<Box<OwnedNotified>>,
    shared: Arc<Shared>,
    service: S,
    request: Option<Request<ReqB>>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Call { #[pin] fut: S::Future },
        Wait { waiting: Box<Waiting<S, ReqB>> },
        Ready { out: Option<Box<Result<Response<Bytes>, BoxError>>> },
    }
}

pin_project! {
    /// The response future of [`ChaosService`](super::ChaosService).
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
        plan: Option<Box<Plan>>,
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    /// The future of `call` (the inner service's `call`), built in one
    /// expression around what it returns: the inner future is written where
    /// it stays rather than moved in.
    #[inline]
    pub(crate) fn call(call: impl FnOnce() -> S::Future, plan: Option<Plan>) -> Self {
        let plan = plan.map(Box::new);
        ResponseFuture {
            state: State::Call { fut: call() },
            plan,
        }
    }

    pub(crate) fn ready(terminal: &Terminal, rule: Arc<str>, plan: Plan) -> Self {
        ResponseFuture {
            state: State::Ready {
                out: Some(Box::new(synthesize(terminal, rule))),
            },
            plan: Some(Box::new(plan)),
        }
    }

    pub(crate) fn wait(
        service: S,
        request: Request<ReqB>,
        plan: Plan,
        shared: &Arc<Shared>,
    ) -> Self {
        let sleep = (!plan.delay.is_zero()).then(|| Box::pin(tokio::time::sleep(plan.delay)));
        ResponseFuture {
            state: State::Wait {
                waiting: Box::new(Waiting {
                    sleep,
                    kill: Box::pin(shared.kill.clone().notified_owned()),
                    shared: shared.clone(),
                    service,
                    request: Some(request),
                }),
            },
            plan: Some(Box::new(plan)),
        }
    }
}

fn finish<B>(res: Response<B>, plan: Option<Box<Plan>>) -> Response<ResponseBody<B>> {
    match plan {
        None => res.map(ResponseBody::inner),
        Some(plan) => {
            let mut plan = *plan;
            let (mut parts, body) = res.into_parts();
            if let Some(value) = plan.header.take() {
                parts.headers.insert("x-telltale-chaos", value);
            }
            Response::from_parts(parts, ResponseBody::faulty_inner(body, plan))
        }
    }
}

fn finish_synthetic<B>(res: Response<Bytes>, plan: Option<Box<Plan>>) -> Response<ResponseBody<B>> {
    let (mut parts, body) = res.into_parts();
    match plan {
        None => Response::from_parts(parts, ResponseBody::synthetic(body, None)),
        Some(plan) => {
            let mut plan = *plan;
            if let Some(value) = plan.header.take() {
                parts.headers.insert("x-telltale-chaos", value);
            }
            Response::from_parts(parts, ResponseBody::synthetic(body, Some(plan)))
        }
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Call { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(finish(res, this.plan.take())));
                }
                StateProj::Ready { out } => {
                    let out = out.take().expect("ResponseFuture polled after completion");
                    let res = (*out)?;
                    return Poll::Ready(Ok(finish_synthetic(res, this.plan.take())));
                }
                StateProj::Wait { waiting } => {
                    let killed =
                        waiting.shared.is_killed() || waiting.kill.as_mut().poll(cx).is_ready();
                    if killed {
                        tracing::info!(target: "telltale_chaos", "chaos fault abandoned: killed");
                        *this.plan = None;
                    } else {
                        match &mut waiting.sleep {
                            Some(sleep) => {
                                ready!(sleep.as_mut().poll(cx));
                                waiting.sleep = None;
                            }
                            None => return Poll::Pending,
                        }
                        let terminal = this.plan.as_mut().and_then(|p| p.terminal.take());
                        match terminal {
                            Some((Terminal::Timeout, rule)) => {
                                if let Some(plan) = this.plan.as_mut() {
                                    plan.terminal = Some((Terminal::Timeout, rule));
                                }
                                continue;
                            }
                            Some((terminal, rule)) => {
                                let out = Some(Box::new(synthesize(&terminal, rule)));
                                this.state.set(State::Ready { out });
                                continue;
                            }
                            None => {}
                        }
                    }
                    let req = waiting.request.take().expect("the request is sent once");
                    let fut = waiting.service.call(req);
                    this.state.set(State::Call { fut });
                }
            }
        }
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("injecting", &self.plan.is_some())
            .finish()
    }
}
