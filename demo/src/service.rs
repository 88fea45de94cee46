//! One service of the chain, run as a child process (`demo --role <name>`).
//!
//! Every service: telemetry from the environment (flight recorder always on),
//! Prometheus metrics, the telltale server stack around its API, the client
//! stack around its outbound calls, and an admin listener (no stack) with
//! telltale's debug page (`telltale::debug`: the page at `/`, its JSON
//! under `/api/`, read by the report), `/metrics` and, on the external API,
//! `/control/chaos`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};
use telltale::chaos::{ChaosHandle, Injector};
use telltale::core::config::Env;
use telltale::correlation::{CorrelationLayer, InjectCorrelationLayer};
use telltale::debug::DebugSurface;
use telltale::resilience::{Bulkhead, CircuitBreaker, Rejection, SlidingWindow};
use telltale::stack::{ClientStack, ClientStackService, ServerStack};
use telltale::telemetry::layer::{ClientTelemetryLayer, RequestLog, ServerTelemetryLayer};
use telltale::telemetry::metrics::{RedConfig, install_prometheus, metrics_router};
use telltale::telemetry::{FlightRecorder, LogFormat, Profile, Telemetry};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

use crate::grpc::{self, CheckReply, CheckRequest};
use crate::{BoxError, Role, Settings};

/// Header naming who rejected a request (breaker or bulkhead), carried back
/// up the chain so the load generator can tell rejections from failures.
pub(crate) const REJECTED_BY: &str = "x-rejected-by";

/// What the admin endpoints read.
#[derive(Clone)]
struct Admin {
    chaos: Option<ChaosHandle>,
}

/// The admin listener: the debug surface (its breakers, bulkheads and
/// chaos injector were registered by the stacks' layers), `/metrics` and,
/// on the external API, `/control/chaos`.
fn admin_router(
    role: Role,
    recorder: &FlightRecorder,
    metrics: PrometheusHandle,
    admin: Admin,
) -> Router {
    let debug = DebugSurface::new()
        .service_name(role.name())
        .flight_recorder(recorder)
        .metrics(metrics.clone())
        .router();
    let mut router = Router::new();
    if admin.chaos.is_some() {
        router = router.route(
            "/control/chaos",
            post(|State(a): State<Admin>, body: String| async move {
                let handle = a.chaos.as_ref().expect("checked");
                match handle.replace_rules_str(&body) {
                    Ok(status) => (StatusCode::OK, format!("{status:?}")).into_response(),
                    Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
                }
            }),
        );
    }
    router
        .with_state(admin)
        .merge(debug)
        .merge(metrics_router(metrics))
}

async fn bind() -> Result<(TcpListener, SocketAddr), BoxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot bind a port on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Resolves when the parent closes our stdin (it exited, or asks us to).
async fn parent_gone() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

type HttpClient = ClientStackService<HyperClient<HttpConnector, Full<Bytes>>>;

fn http_client(stack: &ClientStack) -> HttpClient {
    let client = HyperClient::builder(TokioExecutor::new()).build(nodelay_connector());
    ServiceBuilder::new().layer(stack.layer()).service(client)
}

/// An HTTP connector with `TCP_NODELAY`: without it, Nagle's algorithm and
/// the peer's delayed ACK hold small requests back by tens of milliseconds
/// on loopback (which the report then blamed on "network + client").
pub(crate) fn nodelay_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

/// Serves `app` on `listener` with `TCP_NODELAY` on every accepted socket
/// (`axum::serve` leaves it off).
async fn serve_http(listener: TcpListener, app: Router) -> Result<(), BoxError> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    Ok(axum::serve(listener, app).await?)
}

/// The gRPC server's connections, with `TCP_NODELAY` (tonic's `TcpIncoming`
/// leaves it off unless asked).
pub(crate) fn grpc_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Runs one service until the parent goes away.
pub(crate) async fn run(role: Role, settings: &Settings) -> Result<(), BoxError> {
    // JSON lines unless TELLTALE_LOG_FORMAT says otherwise, as `init()`.
    let mut builder = Telemetry::builder()
        .log_format(LogFormat::Json(Profile::OpenTelemetry))
        .env(&Env::process())?
        .service_name(role.name())
        .flight_recorder_capacity(100_000);
    if settings.logs_flag {
        builder = builder.log_format(if settings.json_logs {
            LogFormat::Json(Profile::OpenTelemetry)
        } else {
            LogFormat::None
        });
    }
    let guard = builder.init()?;
    let recorder = guard
        .flight_recorder()
        .cloned()
        .ok_or("the flight recorder is off")?;
    let metrics = install_prometheus(&RedConfig::from_env()?)?;

    let (listener, addr) = bind().await?;
    let (admin_listener, admin_addr) = bind().await?;
    let upstream = settings.upstream.clone().unwrap_or_default();
    // The layers of every service, configured from TELLTALE_HTTP_*,
    // TELLTALE_METRICS_* and TELLTALE_CORRELATION_*; breakers, bulkheads and
    // chaos only where the story puts them (so TELLTALE_BREAKER_* and
    // TELLTALE_BULKHEAD_* tune fraud-detection's, and TELLTALE_CHAOS is the
    // incident). Spans record the chaos tag and the rejection header.
    let env = Env::process();
    let server_layer = ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .env(&env)?
        .capture_response_headers(["x-telltale-chaos", REJECTED_BY])
        .build()?;
    let server_stack = ServerStack::new()
        .telemetry(server_layer)
        .correlation(CorrelationLayer::from_env_source(&env)?);
    let client_stack = ClientStack::new()
        .telemetry(
            ClientTelemetryLayer::builder()
                .env(&env)?
                .capture_response_headers(["x-telltale-chaos"])
                .build()?,
        )
        .correlation(InjectCorrelationLayer::from_env_source(&env)?);
    let mut chaos = None;

    let serve: tokio::task::JoinHandle<Result<(), BoxError>> = match role {
        Role::Checkout => {
            let client = http_client(&client_stack.timeout(settings.scale(2000)));
            let app = Router::new()
                .route("/checkout", post(checkout))
                .with_state((client, upstream))
                .layer(server_stack.layer());
            tokio::spawn(serve_http(listener, app))
        }
        Role::Payment => {
            let endpoint = tonic::transport::Endpoint::from_shared(upstream)?;
            // tonic sends path-only URIs: the stack names the server from
            // the endpoint (`server.address`/`server.port`, `server_address`).
            let stack = client_stack
                .timeout(settings.scale(1500))
                .origin(endpoint.uri().clone())?;
            let channel = endpoint.connect_lazy();
            let client = ServiceBuilder::new().layer(stack.layer()).service(channel);
            let app = Router::new()
                .route("/pay", post(pay))
                .with_state(client)
                .layer(server_stack.layer());
            tokio::spawn(serve_http(listener, app))
        }
        Role::FraudDetection => {
            let breaker = CircuitBreaker::builder("external-fraud-api")
                .sliding_window(SlidingWindow::Count(20))
                .minimum_calls(10)
                .failure_rate_threshold(0.5)
                .wait_in_open(settings.scale(1000))
                .permitted_probes(3)
                .probe_deadline(settings.scale(1000))
                .event_capacity(65_536)
                .env(&Env::process())?
                .build()?;
            let bulkhead = Bulkhead::builder("external-fraud-api")
                .max_concurrent(4)
                .max_wait(Duration::ZERO)
                .env(&Env::process())?
                .build()?;
            let stack = client_stack
                .breaker(breaker)
                .bulkhead(bulkhead)
                .timeout(settings.scale(250));
            let client = http_client(&stack);
            let fraud = Fraud {
                client,
                upstream: Arc::from(upstream),
            };
            let server = tonic::transport::Server::builder()
                .layer(server_stack.layer())
                .add_service(grpc::FraudDetectionServer::new(fraud));
            let incoming = grpc_incoming(listener);
            tokio::spawn(async move { Ok(server.serve_with_incoming(incoming).await?) })
        }
        Role::ExternalFraudApi => {
            let injector = Injector::from_env()?;
            if let Some(why) = injector.refusal() {
                return Err(format!("chaos refused: {why}").into());
            }
            chaos = Some(injector.handle());
            let app = Router::new()
                .route("/v1/score/{order}", get(score))
                .layer(server_stack.chaos(&injector).layer());
            tokio::spawn(serve_http(listener, app))
        }
    };

    let admin = admin_router(role, &recorder, metrics, Admin { chaos });
    let admin_task = tokio::spawn(async move { axum::serve(admin_listener, admin).await });

    // Ctrl-C in a terminal reaches the whole process group: leave it to the
    // parent, which closes our stdin so that we flush and exit.
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });

    // The parent waits for this line.
    println!(
        "{} {}",
        crate::READY,
        json!({"role": role.name(), "port": addr.port(), "admin": admin_addr.port()})
    );

    tokio::select! {
        r = serve => r??,
        r = admin_task => r??,
        () = parent_gone() => {}
    }
    // Flushes the exporters (OTLP when configured), bounded.
    drop(guard);
    Ok(())
}

/// A response with a status, an optional rejection header and a text body.
fn answer(status: StatusCode, rejected_by: Option<&str>, body: String) -> Response {
    let mut res = (status, body).into_response();
    if let Some(who) = rejected_by.and_then(|w| http::HeaderValue::from_str(w).ok()) {
        res.headers_mut().insert(REJECTED_BY, who);
    }
    res
}

async fn checkout(State((client, upstream)): State<(HttpClient, String)>, body: Bytes) -> Response {
    let req = http::Request::post(format!("{upstream}/pay"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("valid request");
    match client.oneshot(req).await {
        Ok(res) => {
            let status = res.status();
            let rejected = res
                .headers()
                .get(REJECTED_BY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = match res.into_body().collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(e) => {
                    return answer(StatusCode::BAD_GATEWAY, None, format!("payment body: {e}"));
                }
            };
            tracing::info!(%status, rejected_by = rejected.as_deref(), "checkout finished");
            if status.is_success() {
                answer(StatusCode::OK, None, format!("order confirmed: {text}"))
            } else {
                answer(
                    status,
                    rejected.as_deref(),
                    format!("payment failed: {text}"),
                )
            }
        }
        Err(e) => error_answer(&*e, "payment"),
    }
}

/// Why an outbound call failed, as both kinds of answer (HTTP and gRPC) need
/// it.
enum CallFailure {
    /// A breaker or bulkhead of this service refused the call: `by` names
    /// which (`circuit-breaker`, `bulkhead`).
    Rejected {
        by: &'static str,
        message: &'static str,
    },
    /// The call timed out.
    Timeout,
    /// Anything else.
    Other,
}

fn call_failure(err: &(dyn std::error::Error + 'static)) -> CallFailure {
    match telltale::resilience::Error::rejection_in(err) {
        Some(Rejection::Open(_)) => CallFailure::Rejected {
            by: "circuit-breaker",
            message: "circuit open",
        },
        Some(Rejection::Full(_)) => CallFailure::Rejected {
            by: "bulkhead",
            message: "bulkhead full",
        },
        _ if telltale::core::is_timeout(err) => CallFailure::Timeout,
        _ => CallFailure::Other,
    }
}

/// An outbound call's error as the answer of this service.
fn error_answer(err: &(dyn std::error::Error + 'static), peer: &str) -> Response {
    match call_failure(err) {
        CallFailure::Rejected { by, message } => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&format!("{peer}/{by}")),
            message.into(),
        ),
        CallFailure::Timeout => answer(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            format!("{peer} timed out"),
        ),
        CallFailure::Other => answer(StatusCode::BAD_GATEWAY, None, format!("{peer}: {err}")),
    }
}

#[derive(Deserialize)]
struct PayRequest {
    order_id: String,
    amount_cents: u64,
}

type GrpcClient = ClientStackService<tonic::transport::Channel>;

async fn pay(State(client): State<GrpcClient>, Json(pay): Json<PayRequest>) -> Response {
    let request = CheckRequest {
        order_id: pay.order_id,
        amount_cents: pay.amount_cents,
    };
    match grpc::check(client, request).await {
        Ok(reply) => {
            let CheckReply { approved, score } = reply.into_inner();
            tracing::info!(approved, score, "fraud check answered");
            if approved {
                answer(StatusCode::OK, None, format!("paid (risk {score:.2})"))
            } else {
                answer(StatusCode::PAYMENT_REQUIRED, None, "declined".into())
            }
        }
        Err(status) => {
            let rejected = status
                .metadata()
                .get(REJECTED_BY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let http = match (status.code(), &rejected) {
                (_, Some(_)) => StatusCode::SERVICE_UNAVAILABLE,
                (tonic::Code::DeadlineExceeded, _) => StatusCode::GATEWAY_TIMEOUT,
                (tonic::Code::Unavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            };
            answer(
                http,
                rejected.as_deref(),
                format!(
                    "fraud check failed: {:?} {}",
                    status.code(),
                    status.message()
                ),
            )
        }
    }
}

#[derive(Clone)]
struct Fraud {
    client: HttpClient,
    upstream: Arc<str>,
}

impl grpc::Check for Fraud {
    fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<CheckReply>, tonic::Status>>
                + Send,
        >,
    > {
        let this = self.clone();
        Box::pin(async move {
            let order = request.into_inner().order_id;
            let req = http::Request::get(format!("{}/v1/score/{order}", this.upstream))
                .body(Full::new(Bytes::new()))
                .expect("valid request");
            let res = match this.client.oneshot(req).await {
                Ok(res) => res,
                Err(e) => {
                    let status = status_of(&*e);
                    tracing::warn!(error = %e, code = ?status.code(), "external fraud API call failed");
                    return Err(status);
                }
            };
            if !res.status().is_success() {
                return Err(tonic::Status::unavailable(format!(
                    "external fraud API answered {}",
                    res.status()
                )));
            }
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("external fraud API body: {e}")))?
                .to_bytes();
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| tonic::Status::internal(format!("bad score: {e}")))?;
            let score = v["score"].as_f64().unwrap_or(1.0);
            Ok(tonic::Response::new(CheckReply {
                approved: score < 0.9,
                score,
            }))
        })
    }
}

fn status_of(err: &(dyn std::error::Error + 'static)) -> tonic::Status {
    match call_failure(err) {
        CallFailure::Rejected { by, message } => {
            let mut meta = tonic::metadata::MetadataMap::new();
            let who = format!("fraud-detection/{by}");
            meta.insert(REJECTED_BY, who.parse().expect("ASCII header value"));
            tonic::Status::with_metadata(tonic::Code::Unavailable, message, meta)
        }
        CallFailure::Timeout => tonic::Status::deadline_exceeded("external fraud API timed out"),
        CallFailure::Other => tonic::Status::unavailable(format!("external fraud API: {err}")),
    }
}

async fn score(Path(order): Path<String>) -> Json<Value> {
    // The API's own latency: 15 to 25 ms (demo time runs ten times faster:
    // "about 200 ms").
    let h = order.bytes().map(u64::from).sum::<u64>();
    tokio::time::sleep(Duration::from_millis(15 + h % 11)).await;
    let score = (h % 50) as f64 / 100.0;
    tracing::info!(%order, score, "scored");
    Json(json!({ "order": order, "score": score }))
}

#[cfg(test)]
mod nodelay_tests {
    use tonic::codegen::tokio_stream::StreamExt;

    use super::*;

    /// The gRPC server's accepted sockets and the HTTP clients' sockets
    /// have `TCP_NODELAY` (without it, the report blamed 25–28 ms per call
    /// on "network + client" on loopback).
    #[tokio::test]
    async fn grpc_server_and_http_client_sockets_have_nodelay() {
        let (listener, addr) = bind().await.unwrap();
        let mut incoming = grpc_incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());

        // The HTTP connector sets it on the sockets it opens: seen from the
        // client side of a real connection.
        let (listener, addr) = bind().await.unwrap();
        tokio::spawn(async move {
            let _ = listener.accept().await;
            std::future::pending::<()>().await;
        });
        let mut connector = nodelay_connector();
        let uri: http::Uri = format!("http://{addr}").parse().unwrap();
        let stream = tower::Service::call(&mut connector, uri).await.unwrap();
        assert!(stream.inner().nodelay().unwrap());
    }
}
