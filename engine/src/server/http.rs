//! The HTTP/JSON API (the contract table in issue 3 and `docs/protocol.md`): routing, strict
//! request parsing (every bad input is a 400/404/405/413 JSON error that names the problem),
//! admin bearer auth, the per-user rate limit, and mapping engine outcomes to status codes. It
//! also owns the HTTP accept loop with its connection limit, header-read and idle timeouts and
//! graceful drain. Commands go to the engine only through the gateway batcher; this module
//! must not decide stock or order rules.

// The `Err` of the helpers below is the finished HTTP response for a refused request, handed
// straight back to the client; boxing it would only add an allocation per refusal.
#![allow(clippy::result_large_err)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::Shared;
use super::io::IdleTimeout;
use super::metrics::{
    OUT_INVALID_REQUEST, OUT_RATE_LIMITED, OUT_UNAUTHORIZED, Transport, op_index, outcome_index,
};
use crate::types::{Command, CommandKind, OrderView, Outcome, Reject, SkuConfig, SkuView};

/// Accepts HTTP connections until shutdown, then drains them.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router(shared.clone());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            shared.config.header_read_timeout_ms.max(1),
        ))
        .keep_alive(true);
    let idle = Duration::from_millis(shared.config.idle_timeout_ms.max(1));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "http accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.metrics.connection_rejected(Transport::Http);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, idle));
        let connection = builder.serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        let metrics = shared.metrics.clone();
        metrics.connection_opened(Transport::Http);
        tokio::spawn(async move {
            // Errors here are a client's broken connection or a timeout: nothing to answer.
            let _ = connection.await;
            metrics.connection_closed(Transport::Http);
            drop(permit);
        });
    }
    drop(listener);
    let drain = Duration::from_millis(shared.config.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http connections still open after the drain timeout");
    }
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = br#"{"error":"busy","detail":"the server is at its connection limit; retry later"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// The API's routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/skus/{sku_id}", get(get_sku).put(put_sku))
        .route("/v1/skus/{sku_id}/restock", post(restock))
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/orders/{order_id}/pay", post(pay))
        .route("/v1/orders/{order_id}/cancel", post(cancel))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        error: code,
        detail,
    })
    .unwrap_or_default();
    let mut response = json(status, body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn bad_request(detail: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

#[derive(Serialize)]
struct OrderJson {
    order_id: u64,
    user_id: u64,
    sku_id: u32,
    qty: u32,
    status: &'static str,
    expires_at_ms: u64,
}

impl From<&OrderView> for OrderJson {
    fn from(view: &OrderView) -> Self {
        OrderJson {
            order_id: view.order_id,
            user_id: view.user_id,
            sku_id: view.sku_id,
            qty: view.qty,
            status: view.status.name(),
            expires_at_ms: view.expires_at_ms,
        }
    }
}

#[derive(Serialize)]
struct SkuJson {
    sku_id: u32,
    stock_total: u64,
    available: u64,
    held: u64,
    sold: u64,
    per_user_limit: u32,
    hold_ttl_ms: u64,
    sale_start_ms: Option<u64>,
    sale_end_ms: Option<u64>,
    price_cents: u64,
}

impl From<&SkuView> for SkuJson {
    fn from(view: &SkuView) -> Self {
        SkuJson {
            sku_id: view.config.sku_id,
            stock_total: view.config.stock_total,
            available: view.available,
            held: view.held,
            sold: view.sold,
            per_user_limit: view.config.per_user_limit,
            hold_ttl_ms: view.config.hold_ttl_ms,
            sale_start_ms: view.config.sale_start_ms,
            sale_end_ms: view.config.sale_end_ms,
            price_cents: view.config.price_cents,
        }
    }
}

/// HTTP status of a refusal.
pub fn reject_status(reject: Reject) -> StatusCode {
    match reject {
        Reject::UnknownSku | Reject::UnknownOrder => StatusCode::NOT_FOUND,
        Reject::InvalidQty | Reject::InvalidSku => StatusCode::BAD_REQUEST,
        Reject::NotOwner => StatusCode::FORBIDDEN,
        Reject::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Reject::SoldOut
        | Reject::LimitExceeded
        | Reject::NotOnSale
        | Reject::IdConflict
        | Reject::Expired
        | Reject::Cancelled
        | Reject::AlreadyPaid
        | Reject::InvalidRestock => StatusCode::CONFLICT,
    }
}

/// A human sentence for each refusal.
pub fn reject_detail(reject: Reject) -> &'static str {
    match reject {
        Reject::SoldOut => "not enough stock is available for this quantity",
        Reject::LimitExceeded => "this order would take the user over the per-user limit",
        Reject::NotOnSale => "the sku is not on sale at this time",
        Reject::UnknownSku => "no sku has this sku_id",
        Reject::InvalidQty => "qty must be at least 1",
        Reject::IdConflict => "order_id is already used by a different order",
        Reject::UnknownOrder => "no order has this order_id",
        Reject::NotOwner => "the order belongs to another user_id",
        Reject::Expired => "the hold expired before it was paid",
        Reject::Cancelled => "the order was cancelled",
        Reject::AlreadyPaid => "the order is already paid",
        Reject::InvalidRestock => {
            "the change would leave stock_total below held + sold units or out of range"
        }
        Reject::InvalidSku => "the sku settings are invalid",
        Reject::Busy => "the server is overloaded; retry later",
    }
}

fn outcome_response(outcome: &Outcome) -> Response {
    match outcome {
        Outcome::Created(view) => json(
            StatusCode::CREATED,
            serde_json::to_vec(&OrderJson::from(view)).unwrap_or_default(),
        ),
        Outcome::Order(view) => json(
            StatusCode::OK,
            serde_json::to_vec(&OrderJson::from(view)).unwrap_or_default(),
        ),
        Outcome::SkuCreated(view) => json(
            StatusCode::CREATED,
            serde_json::to_vec(&SkuJson::from(&**view)).unwrap_or_default(),
        ),
        Outcome::Sku(view) => json(
            StatusCode::OK,
            serde_json::to_vec(&SkuJson::from(&**view)).unwrap_or_default(),
        ),
        Outcome::Rejected(reject) => error(
            reject_status(*reject),
            reject.code(),
            reject_detail(*reject),
        ),
    }
}

/// One request's answer and the outcome label it is counted under.
type Answered = (Response, usize);

async fn execute(shared: &Shared, command: Command) -> Answered {
    shared.capture(std::slice::from_ref(&command));
    let outcome = shared.gateway.execute(command).await;
    if outcome == Outcome::Rejected(Reject::Busy) {
        shared.metrics.gateway_busy();
    }
    (outcome_response(&outcome), outcome_index(&outcome))
}

fn finish(
    shared: &Shared,
    kind: CommandKind,
    started: Instant,
    (response, outcome): Answered,
) -> Response {
    let op = op_index(kind);
    shared.metrics.count(Transport::Http, op, outcome, 1);
    let micros = started.elapsed().as_micros() as u64;
    shared.metrics.observe(Transport::Http, op, micros, 1);
    response
}

/// Parses a path id: decimal digits only, within the type's range.
fn parse_id<T: FromStr>(raw: &str, field: &str) -> Result<T, Answered> {
    let valid = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match valid.then(|| raw.parse::<T>().ok()).flatten() {
        Some(id) => Ok(id),
        None => Err((
            bad_request(&format!(
                "path parameter `{field}` must be a non-negative integer that fits in {}",
                std::any::type_name::<T>()
            )),
            OUT_INVALID_REQUEST,
        )),
    }
}

/// Reads and parses a JSON body: 413 over the size limit, 400 naming the field otherwise.
async fn read_json<T: DeserializeOwned>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Answered> {
    let max = shared.config.max_body_bytes;
    let too_large = || {
        (
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the request body is larger than {max} bytes"),
            ),
            OUT_INVALID_REQUEST,
        )
    };
    if let Some(length) = headers.get(header::CONTENT_LENGTH)
        && length
            .to_str()
            .ok()
            .and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|l| l > max as u64)
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, max);
    let timeout = Duration::from_millis(shared.config.body_read_timeout_ms.max(1));
    let bytes: Bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => {
            return Err((
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time",
                ),
                OUT_INVALID_REQUEST,
            ));
        }
        Ok(Err(failure)) => {
            if failure
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err((
                bad_request("the request body could not be read"),
                OUT_INVALID_REQUEST,
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    parse_json(&bytes).map_err(|detail| (bad_request(&detail), OUT_INVALID_REQUEST))
}

/// Parses a JSON document into `T`; the error sentence names the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|failure| {
        let path = failure.path().to_string();
        let syntax = !matches!(
            failure.inner().classify(),
            serde_json::error::Category::Data
        );
        if syntax || path == "." || path == "?" || path.is_empty() {
            format!("invalid JSON body: {}", failure.inner())
        } else {
            format!("invalid field `{path}`: {}", failure.inner())
        }
    })?;
    deserializer
        .end()
        .map_err(|failure| format!("invalid JSON body: {failure}"))?;
    Ok(value)
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Answered> {
    let refuse = |detail: &str| {
        Err((
            error(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            OUT_UNAUTHORIZED,
        ))
    };
    if !shared.admin_token.is_configured() {
        return refuse("admin endpoints are disabled: the server has no admin token");
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if shared.admin_token.matches(token) => Ok(()),
        _ => refuse("a valid `Authorization: Bearer <token>` header is required"),
    }
}

fn rate_limit(shared: &Shared, user_id: u64) -> Result<(), Answered> {
    match &shared.rate_limiter {
        Some(limiter) if !limiter.allow(user_id, Instant::now()) => Err((
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this user_id sent too many requests; slow down",
            ),
            OUT_RATE_LIMITED,
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    stock_total: u64,
    per_user_limit: u32,
    hold_ttl_ms: u64,
    #[serde(default)]
    sale_start_ms: Option<u64>,
    #[serde(default)]
    sale_end_ms: Option<u64>,
    #[serde(default)]
    price_cents: Option<u64>,
}

async fn put_sku(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let answered = async {
        authorize(&shared, &headers)?;
        let sku_id = parse_id::<u32>(&raw, "sku_id")?;
        let body: UpsertBody = read_json(&shared, &headers, body).await?;
        let config = SkuConfig {
            sku_id,
            stock_total: body.stock_total,
            per_user_limit: body.per_user_limit,
            hold_ttl_ms: body.hold_ttl_ms,
            sale_start_ms: body.sale_start_ms,
            sale_end_ms: body.sale_end_ms,
            price_cents: body.price_cents.unwrap_or(0),
        };
        if let Err(reason) = config.validate() {
            return Err((bad_request(reason), OUT_INVALID_REQUEST));
        }
        Ok(execute(&shared, Command::UpsertSku(config)).await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    finish(&shared, CommandKind::UpsertSku, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestockBody {
    delta: i64,
}

async fn restock(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let answered = async {
        authorize(&shared, &headers)?;
        let sku_id = parse_id::<u32>(&raw, "sku_id")?;
        let body: RestockBody = read_json(&shared, &headers, body).await?;
        Ok(execute(
            &shared,
            Command::Restock {
                sku_id,
                delta: body.delta,
            },
        )
        .await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    finish(&shared, CommandKind::Restock, started, answered)
}

async fn get_sku(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let started = Instant::now();
    let answered = match parse_id::<u32>(&raw, "sku_id") {
        Ok(sku_id) => execute(&shared, Command::QuerySku { sku_id }).await,
        Err(answered) => answered,
    };
    finish(&shared, CommandKind::QuerySku, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order_id: u64,
    user_id: u64,
    sku_id: u32,
    qty: u32,
}

async fn create_order(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let answered = async {
        let body: OrderBody = read_json(&shared, &headers, body).await?;
        rate_limit(&shared, body.user_id)?;
        Ok(execute(
            &shared,
            Command::Reserve {
                order_id: body.order_id,
                user_id: body.user_id,
                sku_id: body.sku_id,
                qty: body.qty,
            },
        )
        .await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    finish(&shared, CommandKind::Reserve, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user_id: u64,
}

async fn order_action(
    shared: &Shared,
    raw: &str,
    headers: &HeaderMap,
    body: Body,
    pay: bool,
) -> Answered {
    let answered = async {
        let order_id = parse_id::<u64>(raw, "order_id")?;
        let body: UserBody = read_json(shared, headers, body).await?;
        rate_limit(shared, body.user_id)?;
        let command = if pay {
            Command::Pay {
                order_id,
                user_id: body.user_id,
            }
        } else {
            Command::Cancel {
                order_id,
                user_id: body.user_id,
            }
        };
        Ok(execute(shared, command).await)
    };
    answered.await.unwrap_or_else(|answered| answered)
}

async fn pay(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let answered = order_action(&shared, &raw, &headers, body, true).await;
    finish(&shared, CommandKind::Pay, started, answered)
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let answered = order_action(&shared, &raw, &headers, body, false).await;
    finish(&shared, CommandKind::Cancel, started, answered)
}

async fn get_order(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let started = Instant::now();
    let answered = match parse_id::<u64>(&raw, "order_id") {
        Ok(order_id) => execute(&shared, Command::QueryOrder { order_id }).await,
        Err(answered) => answered,
    };
    finish(&shared, CommandKind::QueryOrder, started, answered)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.engine_snapshot().await;
    let text = shared.metrics.render(&snapshot);
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn healthz() -> Response {
    json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{method} is not allowed on {}", uri.path()),
    )
}
