//! The fraud-detection gRPC API, without code generation: the prost messages
//! are written by hand and the service is a small tower service around
//! tonic's `Grpc` with the prost codec.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `demo.fraud.FraudDetection`.
pub(crate) const SERVICE: &str = "demo.fraud.FraudDetection";
/// The one method's path.
pub(crate) const CHECK_PATH: &str = "/demo.fraud.FraudDetection/Check";

/// `message CheckRequest { string order_id = 1; uint64 amount_cents = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckRequest {
    /// The order.
    #[prost(string, tag = "1")]
    pub(crate) order_id: String,
    /// Its amount.
    #[prost(uint64, tag = "2")]
    pub(crate) amount_cents: u64,
}

/// `message CheckReply { bool approved = 1; double score = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CheckReply {
    /// The verdict.
    #[prost(bool, tag = "1")]
    pub(crate) approved: bool,
    /// The external API's risk score.
    #[prost(double, tag = "2")]
    pub(crate) score: f64,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the server calls for each `Check`.
pub(crate) trait Check: Clone + Send + Sync + 'static {
    /// Answers one request.
    fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> BoxFuture<Result<Response<CheckReply>, Status>>;
}

/// The `FraudDetection` server: routes `Check`, answers `UNIMPLEMENTED` to
/// anything else.
#[derive(Clone, Debug)]
pub(crate) struct FraudDetectionServer<T> {
    inner: T,
}

impl<T> FraudDetectionServer<T> {
    pub(crate) fn new(inner: T) -> Self {
        FraudDetectionServer { inner }
    }
}

impl<T> NamedService for FraudDetectionServer<T> {
    const NAME: &'static str = SERVICE;
}

struct CheckMethod<T>(T);

impl<T: Check> UnaryService<CheckRequest> for CheckMethod<T> {
    type Response = CheckReply;
    type Future = BoxFuture<Result<Response<CheckReply>, Status>>;

    fn call(&mut self, request: Request<CheckRequest>) -> Self::Future {
        self.0.check(request)
    }
}

impl<T: Check> tower::Service<http::Request<Body>> for FraudDetectionServer<T> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = CheckMethod(self.inner.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<CheckReply, CheckRequest>::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// Calls `Check` over `service` (a tonic `Channel`, wrapped in layers).
pub(crate) async fn check<T>(
    service: T,
    request: CheckRequest,
) -> Result<Response<CheckReply>, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut grpc = tonic::client::Grpc::new(service);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("fraud-detection not ready: {}", e.into())))?;
    grpc.unary(
        Request::new(request),
        PathAndQuery::from_static(CHECK_PATH),
        ProstCodec::<CheckRequest, CheckReply>::default(),
    )
    .await
}
