//! One service of the chain, run as a child process (`demo --role <name>`).
//!
//! Every service: telemetry from the environment (flight recorder always on),
//! Prometheus metrics, the telltale server stack around its API, the client
//! stack around its outbound calls, and an admin listener (no stack) with
//! `/metrics`, `/debug/spans`, `/debug/spans/recent`, `/debug/events` and, on
//! the external API, `/control/chaos`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
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
use telltale::resilience::{
    BreakerEvent, Bulkhead, BulkheadEvent, CircuitBreaker, Rejection, SlidingWindow,
};
use telltale::stack::{ClientStack, ClientStackService, ServerStack};
use telltale::telemetry::layer::{ClientTelemetryLayer, ServerTelemetryLayer};
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
    recorder: FlightRecorder,
    metrics: PrometheusHandle,
    events: Arc<Events>,
    chaos: Option<ChaosHandle>,
}

/// Breaker transitions and bulkhead rejections seen by this process.
#[derive(Default)]
struct Events {
    transitions: Mutex<Vec<Value>>,
    breaker_state: Mutex<String>,
    bulkhead_rejections: AtomicU64,
    breaker_rejections: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Deserialize)]
struct SpansQuery {
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
struct RecentQuery {
    n: Option<usize>,
}

fn admin_router(admin: Admin) -> Router {
    let mut router = Router::new()
        .route(
            "/debug/spans",
            get(
                |State(a): State<Admin>, Query(q): Query<SpansQuery>| async move {
                    let spans = match q.correlation_id {
                        Some(id) => a.recorder.by_correlation_id(&id),
                        None => a.recorder.recent(100),
                    };
                    Json(Value::Array(spans.iter().map(|s| s.to_json()).collect()))
                },
            ),
        )
        .route(
            "/debug/spans/recent",
            get(
                |State(a): State<Admin>, Query(q): Query<RecentQuery>| async move {
                    let spans = a.recorder.recent(q.n.unwrap_or(100));
                    Json(Value::Array(spans.iter().map(|s| s.to_json()).collect()))
                },
            ),
        )
        .route(
            "/debug/events",
            get(|State(a): State<Admin>| async move {
                let e = &a.events;
                Json(json!({
                    "breaker_state": e.breaker_state.lock().expect("not poisoned").clone(),
                    "breaker_transitions": e.transitions.lock().expect("not poisoned").clone(),
                    "breaker_rejections": e.breaker_rejections.load(Ordering::Relaxed),
                    "bulkhead_rejections": e.bulkhead_rejections.load(Ordering::Relaxed),
                    "spans_recorded": a.recorder.recorded(),
                }))
            }),
        );
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
    let metrics = admin.metrics.clone();
    router.with_state(admin).merge(metrics_router(metrics))
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
    let client = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ServiceBuilder::new().layer(stack.layer()).service(client)
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
    let events = Arc::new(Events::default());
    let upstream = settings.upstream.clone().unwrap_or_default();
    // The layers of every service, configured from TELLTALE_HTTP_*,
    // TELLTALE_METRICS_* and TELLTALE_CORRELATION_*; breakers, bulkheads and
    // chaos only where the story puts them (so TELLTALE_BREAKER_* and
    // TELLTALE_BULKHEAD_* tune fraud-detection's, and TELLTALE_CHAOS is the
    // incident). Spans record the chaos tag and the rejection header.
    let env = Env::process();
    let server_layer = ServerTelemetryLayer::builder()
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
            tokio::spawn(async move { Ok(axum::serve(listener, app).await?) })
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
            tokio::spawn(async move { Ok(axum::serve(listener, app).await?) })
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
            watch_resilience(&breaker, &bulkhead, &events);
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
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
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
            tokio::spawn(async move { Ok(axum::serve(listener, app).await?) })
        }
    };

    let admin = admin_router(Admin {
        recorder,
        metrics,
        events,
        chaos,
    });
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

fn watch_resilience(breaker: &CircuitBreaker, bulkhead: &Bulkhead, events: &Arc<Events>) {
    *events.breaker_state.lock().expect("not poisoned") = breaker.state().to_string();
    let mut rx = breaker.subscribe();
    let ev = events.clone();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(BreakerEvent::StateTransition {
                    from,
                    to,
                    reason,
                    correlation_id,
                    ..
                }) => {
                    *ev.breaker_state.lock().expect("not poisoned") = to.to_string();
                    ev.transitions.lock().expect("not poisoned").push(json!({
                        "at_unix_ms": unix_ms(),
                        "from": from.as_str(),
                        "to": to.as_str(),
                        "reason": reason.to_string(),
                        "correlation_id": correlation_id.map(|c| c.to_string()),
                    }));
                }
                Ok(BreakerEvent::Rejected { .. }) => {
                    ev.breaker_rejections.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    ev.transitions.lock().expect("not poisoned").push(json!({
                        "at_unix_ms": unix_ms(), "lost_events": n,
                    }));
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    let mut rx = bulkhead.subscribe();
    let ev = events.clone();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(BulkheadEvent::Rejected(_)) => {
                    ev.bulkhead_rejections.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                // Every bulkhead event is a rejection: the missed ones count too.
                Err(RecvError::Lagged(n)) => {
                    ev.bulkhead_rejections.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
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
