//! A fault-injecting HTTP proxy in front of moto, for the failures moto
//! cannot produce: throttling and server errors in each protocol's own error
//! shape, dropped connections, and "done but the answer was lost" for
//! CreateStack and DeleteStack, and scripted refusals (an error AWS would
//! give that moto does not). The real AWS SDK clients point at it
//! ([`FaultProxy::sdk_config`]); every call is forwarded to moto unless a
//! fault is drawn for it, and is recorded by service and operation. An
//! operation can also be held (its calls wait, unanswered) until released.

use super::github_fake::router::dropped;
use super::github_fake::serve;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// What the proxy did with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded; moto's answer was passed back with this status.
    Forwarded(u16),
    /// Answered 400 `Throttling` / `ThrottlingException`, not forwarded.
    Throttled,
    /// Answered with this server error, not forwarded.
    ServerError(u16),
    /// The connection was dropped before forwarding.
    Dropped,
    /// Answered with a scripted error ([`FaultProxy::refuse_next`]), not
    /// forwarded.
    Refused(u16),
    /// Forwarded (moto answered with this status), then the connection was
    /// dropped: done, but the answer lost.
    AnswerLost(u16),
}

/// One call through the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// The signing name: `cloudformation`, `elasticloadbalancing`, `ecs`, ...
    pub service: String,
    /// `CreateStack`, `DescribeServices`, ...; for Route53's REST calls, the
    /// method and path.
    pub operation: String,
    /// `None` while the call waits (held) or is on its way to moto.
    pub outcome: Option<Outcome>,
}

/// How a service speaks, which decides the shape of its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// awsQuery: form-encoded `Action=`, XML errors (CloudFormation, ELBv2,
    /// CloudWatch).
    Query,
    /// awsJson: `X-Amz-Target`, JSON errors with `__type` (ECS, ECR).
    Json,
    /// restXml: the operation is the path (Route53).
    RestXml,
}

struct Chaos {
    rate: f64,
    rng: StdRng,
}

#[derive(Default)]
struct Ledger {
    calls: Vec<Call>,
    chaos: Option<Chaos>,
    held: BTreeSet<String>,
    /// Operations forwarded one call at a time.
    serial: BTreeSet<String>,
    /// Scripted refusals: operation, status, code, message; each answers
    /// the next call of its operation once.
    refusals: Vec<(String, u16, String, String)>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    state: Mutex<Ledger>,
    /// Bumped whenever holds are released.
    released: watch::Sender<u64>,
    /// Held while a call of a serial operation is forwarded.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (moto's URL) on a free local port.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            state: Mutex::default(),
            released: watch::Sender::new(0),
            one_at_a_time: tokio::sync::Mutex::new(()),
        });
        let app = Router::new().fallback(proxy).with_state(shared.clone());
        FaultProxy {
            shutdown: Some(serve(listener, app)),
            shared,
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `sdk` pointed at this proxy, with SDK retries after `initial_backoff`
    /// (compressed for tests) and at most `attempts` tries.
    pub fn sdk_config(
        &self,
        sdk: &SdkConfig,
        attempts: u32,
        initial_backoff: Duration,
    ) -> SdkConfig {
        sdk.to_builder()
            .endpoint_url(self.url())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(initial_backoff)
                    .with_max_backoff(initial_backoff * 8),
            )
            .build()
    }

    /// From now on, a `rate` share of calls (seeded) get a fault: throttling,
    /// a server error, a dropped connection, or, for CreateStack and
    /// DeleteStack, a lost answer. `None` stops the faults.
    pub fn set_chaos(&self, chaos: Option<(u64, f64)>) {
        self.shared.lock().chaos = chaos.map(|(seed, rate)| Chaos {
            rate,
            rng: StdRng::seed_from_u64(seed),
        });
    }

    /// Calls of `operation` (any service) wait, unanswered, until
    /// [`FaultProxy::release`].
    pub fn hold(&self, operation: &str) {
        self.shared.lock().held.insert(operation.to_owned());
    }

    /// Calls of `operation` are forwarded one at a time, each once the one
    /// before was answered. moto answers concurrent `ReceiveMessage` calls
    /// without a lock, so two can hand out messages of one FIFO group;
    /// SQS never does.
    pub fn one_at_a_time(&self, operation: &str) {
        self.shared.lock().serial.insert(operation.to_owned());
    }

    /// Lets every held call (and every later one) through.
    pub fn release(&self) {
        self.shared.lock().held.clear();
        self.shared.released.send_modify(|n| *n += 1);
    }

    /// The next call of `operation` (any service) is answered with this
    /// error instead of being forwarded.
    pub fn refuse_next(&self, operation: &str, status: u16, code: &str, message: &str) {
        self.shared.lock().refusals.push((
            operation.to_owned(),
            status,
            code.to_owned(),
            message.to_owned(),
        ));
    }

    /// Every call so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Calls of `service`'s `operation` so far.
    pub fn count(&self, service: &str, operation: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.service == service && c.operation == operation)
            .count()
    }
}

/// The fault one call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Throttle,
    ServerError(u16),
    Drop,
    LoseAnswer,
}

fn draw(chaos: &mut Chaos, operation: &str) -> Option<Fault> {
    if !chaos.rng.random_bool(chaos.rate) {
        return None;
    }
    let loses_answers = matches!(operation, "CreateStack" | "DeleteStack");
    Some(match chaos.rng.random_range(0..10) {
        0..=3 => Fault::Throttle,
        4..=5 => Fault::ServerError([500, 503][chaos.rng.random_range(0..2)]),
        6..=7 if loses_answers => Fault::LoseAnswer,
        _ => Fault::Drop,
    })
}

async fn proxy(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(body) => body,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let (service, operation, protocol) = identify(&parts.method, &parts.uri, &parts.headers, &body);
    let (index, fault, refusal) = {
        let mut state = shared.lock();
        let fault = state.chaos.as_mut().and_then(|c| draw(c, &operation));
        let refusal = state
            .refusals
            .iter()
            .position(|r| r.0 == operation)
            .map(|i| state.refusals.remove(i));
        state.calls.push(Call {
            service: service.clone(),
            operation: operation.clone(),
            outcome: None,
        });
        (state.calls.len() - 1, fault, refusal)
    };
    let mut released = shared.released.subscribe();
    while shared.lock().held.contains(&operation) {
        if released.changed().await.is_err() {
            break;
        }
    }
    let record = |outcome: Outcome| shared.lock().calls[index].outcome = Some(outcome);
    if let Some((_, status, code, message)) = refusal {
        record(Outcome::Refused(status));
        return aws_error(protocol, status, &code, &message);
    }
    match fault {
        Some(Fault::Throttle) => {
            record(Outcome::Throttled);
            return aws_error(protocol, 400, throttling_code(protocol), "Rate exceeded");
        }
        Some(Fault::ServerError(status)) => {
            record(Outcome::ServerError(status));
            let code = if status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalFailure"
            };
            return aws_error(protocol, status, code, "injected by the fault proxy");
        }
        Some(Fault::Drop) => {
            record(Outcome::Dropped);
            return dropped();
        }
        Some(Fault::LoseAnswer) | None => {}
    }
    let serial = shared.lock().serial.contains(&operation);
    let turn = match serial {
        true => Some(shared.one_at_a_time.lock().await),
        false => None,
    };
    let answer = forward(&shared, &parts, body).await;
    drop(turn);
    let status = answer.status().as_u16();
    if fault == Some(Fault::LoseAnswer) {
        record(Outcome::AnswerLost(status));
        return dropped();
    }
    record(Outcome::Forwarded(status));
    answer
}

/// Sends the call on to moto and returns its answer.
async fn forward(shared: &Shared, parts: &axum::http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(err) => {
            return (StatusCode::BAD_GATEWAY, format!("moto: {err}")).into_response();
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn hop_by_hop(name: &header::HeaderName) -> bool {
    [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
    ]
    .contains(name)
}

/// The service (from the SigV4 credential scope), the operation and the
/// protocol of a call.
fn identify(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (String, String, Protocol) {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Credential=AKID/20240101/us-east-1/cloudformation/aws4_request
    let service = text(header::AUTHORIZATION)
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let operation = target.rsplit('.').next().unwrap_or(target);
        return (service, operation.to_owned(), Protocol::Json);
    }
    let form = text(header::CONTENT_TYPE).is_some_and(|t| t.contains("x-www-form-urlencoded"));
    if form {
        let action = String::from_utf8_lossy(body)
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action=").map(str::to_owned));
        if let Some(action) = action {
            return (service, action, Protocol::Query);
        }
    }
    (
        service,
        format!("{method} {}", uri.path()),
        Protocol::RestXml,
    )
}

fn throttling_code(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "ThrottlingException",
        Protocol::Query | Protocol::RestXml => "Throttling",
    }
}

/// An AWS error answer in the protocol's own shape.
fn aws_error(protocol: Protocol, status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    let request_id = format!("fault-proxy-{:08x}", rand::random::<u32>());
    let (content_type, body) = match protocol {
        Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        ),
        Protocol::Query | Protocol::RestXml => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error><RequestId>{request_id}</RequestId>\
                 </ErrorResponse>",
                if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                }
            ),
        ),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&request_id).expect("request id"),
    );
    response
}
