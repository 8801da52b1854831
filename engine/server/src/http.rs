//! The HTTP/JSON API (the contract table in issue 3 and `docs/protocol.md`): routing, strict
//! request parsing (every bad input is a 400/404/405/413 JSON error that names the problem),
//! admin bearer auth, the per-user rate limit, and mapping engine outcomes to status codes. It
//! also owns the HTTP accept loop with its connection limit, header-read and idle timeouts and
//! graceful drain. Routing is a small hand-written hyper `Service` over one route table,
//! [`ROUTES`] (one boxed future per request, no extractor layers, no header copies). Commands go to the engine only through
//! the gateway batcher; this module must not decide stock or order rules.

// The `Err` of the helpers below is the finished HTTP response for a refused request, handed
// straight back to the client; boxing it would only add an allocation per refusal.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::Shared;
use super::io::{IdleTimeout, LingeringClose};
use super::limits::{Guard, guard};
use super::metrics::{HttpRoute, Metrics, Op, Transport};
use flashsale_core::types::{
    Command, CommandKind, OrderView, Outcome, OutcomeCode, Reject, SkuConfig, SkuView,
};

/// What every handler answers.
pub type Response = hyper::Response<Full<Bytes>>;

/// Accepts HTTP connections until shutdown, then drains them.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api = Api {
        shared: shared.clone(),
    };
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            shared.config.header_read_timeout_ms.max(1),
        ))
        .keep_alive(true);
    let idle = Duration::from_millis(shared.config.idle_timeout_ms.max(1));
    let linger = Duration::from_millis(shared.config.lingering_close_ms);
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
            shared
                .metrics
                .http_response(HttpRoute::ConnectionLimit, 503);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(LingeringClose::new(IdleTimeout::new(stream, idle), linger));
        let connection = builder.serve_connection(io, api.clone());
        let connection = graceful.watch(connection);
        let metrics = shared.metrics.clone();
        metrics.connection_opened(Transport::Http);
        tokio::spawn(async move {
            // Errors here are a client's broken connection or a timeout: nothing to answer,
            // except a request head hyper could not parse, which hyper answers itself.
            if let Err(error) = connection.await {
                count_parse_error(&metrics, &error);
            }
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

/// Counts the answer hyper wrote itself for a request head it could not parse (hyper's
/// `on_error`: 431 for a head too large — and for a URI over 64 KiB, which it answers 414 —,
/// 400 otherwise; nothing for an HTTP/2 preface).
fn count_parse_error(metrics: &Metrics, error: &hyper::Error) {
    if !error.is_parse() || error.is_parse_version_h2() || error.is_parse_status() {
        return;
    }
    let status = if error.is_parse_too_large() { 431 } else { 400 };
    metrics.http_response(HttpRoute::Unparsed, status);
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

/// The API as a hyper service: one per server, cloned per connection.
#[derive(Clone)]
pub(crate) struct Api {
    shared: Arc<Shared>,
}

impl hyper::service::Service<Request<Incoming>> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let counted = route(request.uri().path())
                .map_or(HttpRoute::Unmatched, |(route, _)| route.endpoint.metric());
            let response = dispatch(&shared, request).await;
            shared
                .metrics
                .http_response(counted, response.status().as_u16());
            Ok(response)
        })
    }
}

/// What a route serves; the handler [`dispatch`] calls for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Orders,
    Order,
    Pay,
    Cancel,
    Sku,
    Restock,
    Metrics,
    Healthz,
    OpenApi,
}

impl Endpoint {
    /// The `route` label this endpoint's answers are counted under.
    fn metric(self) -> HttpRoute {
        match self {
            Endpoint::Orders => HttpRoute::Orders,
            Endpoint::Order => HttpRoute::Order,
            Endpoint::Pay => HttpRoute::Pay,
            Endpoint::Cancel => HttpRoute::Cancel,
            Endpoint::Sku => HttpRoute::Sku,
            Endpoint::Restock => HttpRoute::Restock,
            Endpoint::Metrics => HttpRoute::Metrics,
            Endpoint::Healthz => HttpRoute::Healthz,
            Endpoint::OpenApi => HttpRoute::OpenApi,
        }
    }
}

/// One row of the route table.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The path as an OpenAPI template: `{name}` stands for one non-empty segment.
    pub path: &'static str,
    /// The methods it answers; any other is `405` with these in `Allow`.
    pub methods: &'static [&'static str],
    pub endpoint: Endpoint,
}

/// The route table: the router matches requests against it (in this order, the order routes
/// first), `Allow` headers come from it, and the OpenAPI drift test holds `docs/openapi.yaml`
/// to it.
pub const ROUTES: [Route; 9] = {
    const fn at(path: &'static str, methods: &'static [&'static str], endpoint: Endpoint) -> Route {
        Route {
            path,
            methods,
            endpoint,
        }
    }
    const GET: &[&str] = &["GET", "HEAD"];
    const POST: &[&str] = &["POST"];
    [
        at("/v1/orders", POST, Endpoint::Orders),
        at("/v1/orders/{order_id}/pay", POST, Endpoint::Pay),
        at("/v1/orders/{order_id}/cancel", POST, Endpoint::Cancel),
        at("/v1/orders/{order_id}", GET, Endpoint::Order),
        at("/v1/skus/{sku_id}", &["GET", "HEAD", "PUT"], Endpoint::Sku),
        at("/v1/skus/{sku_id}/restock", POST, Endpoint::Restock),
        at("/metrics", GET, Endpoint::Metrics),
        at("/healthz", GET, Endpoint::Healthz),
        at("/openapi.json", GET, Endpoint::OpenApi),
    ]
};

/// The error codes the router and the health check answer with themselves, with their HTTP
/// status; every other error code comes from the outcome table (`OutcomeCode::spec`).
pub const ROUTER_ERRORS: [(&str, u16); 3] = [
    (NOT_FOUND, 404),
    (METHOD_NOT_ALLOWED, 405),
    (DURABILITY_FAILED, 503),
];
const NOT_FOUND: &str = "not_found";
const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
const DURABILITY_FAILED: &str = "durability_failed";

impl Route {
    fn allows(&self, method: &Method) -> bool {
        self.methods.contains(&method.as_str())
    }

    /// The path parameter of `path` if it matches this route (`""` for a route without one);
    /// ids are the raw, still percent-encoded segment.
    fn matches<'a>(&self, path: &'a str) -> Option<&'a str> {
        let mut template = self.path.split('/');
        let mut segments = path.split('/');
        let mut parameter = "";
        loop {
            match (template.next(), segments.next()) {
                (None, None) => return Some(parameter),
                (Some(expected), Some(segment)) if expected.starts_with('{') => {
                    if segment.is_empty() {
                        return None;
                    }
                    parameter = segment;
                }
                (Some(expected), Some(segment)) if expected == segment => {}
                _ => return None,
            }
        }
    }
}

fn route(path: &str) -> Option<(&'static Route, &str)> {
    ROUTES
        .iter()
        .find_map(|route| Some((route, route.matches(path)?)))
}

async fn dispatch(shared: &Shared, request: Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let Some((route, raw)) = route(path) else {
        return error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            &format!("no route for {} {path}", parts.method),
        );
    };
    if !route.allows(&parts.method) {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            METHOD_NOT_ALLOWED,
            &format!("{} is not allowed on {path}", parts.method),
        );
        if let Ok(allow) = HeaderValue::from_str(&route.methods.join(",")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    let headers = &parts.headers;
    match route.endpoint {
        Endpoint::Orders => create_order(shared, headers, body).await,
        Endpoint::Pay => order_action(shared, raw, headers, body, true).await,
        Endpoint::Cancel => order_action(shared, raw, headers, body, false).await,
        Endpoint::Order => get_order(shared, raw, headers).await,
        Endpoint::Sku if parts.method == Method::PUT => put_sku(shared, raw, headers, body).await,
        Endpoint::Sku => get_sku(shared, raw, headers).await,
        Endpoint::Restock => restock(shared, raw, headers, body).await,
        Endpoint::Metrics => metrics(shared).await,
        Endpoint::Healthz => healthz(shared.engine.durability_failure()),
        Endpoint::OpenApi => super::openapi::response(),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Full::new(Bytes::from(body)));
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
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750 §3: a 401 names the scheme the client must use.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"flashsale\""),
        );
    }
    response
}

/// A 201 answer with the `Location` of what it created (`/v1/orders/7`, `/v1/skus/3`).
fn created(body: Vec<u8>, collection: &str, id: u64) -> Response {
    use std::io::Write;
    let mut response = json(StatusCode::CREATED, body);
    let mut location = Vec::with_capacity(32);
    // Writing into a Vec cannot fail, and the path is ASCII: a valid header value.
    let _ = write!(location, "/v1/{collection}/{id}");
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(location)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The HTTP status of an error answer with `code`, from the outcome table.
fn error_status(code: OutcomeCode) -> StatusCode {
    code.http_status()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error answer with `code` (status and code from the outcome table), counted under it.
fn error_answer(code: OutcomeCode, detail: &str) -> Answered {
    (error(error_status(code), code.as_str(), detail), code)
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

/// A human sentence for each refusal.
pub fn reject_detail(reject: Reject) -> &'static str {
    match reject {
        Reject::SoldOut => "not enough stock is available for this quantity",
        Reject::LimitExceeded => "this order would take the user over the per-user limit",
        Reject::NotOnSale => "the sku is not on sale at this time",
        Reject::UnknownSku => "no sku has this sku_id",
        Reject::InvalidQty => "qty must be at least 1 and at most the sku's per_user_limit",
        Reject::IdConflict => "order_id is already used by a different order",
        Reject::UnknownOrder => "no order has this order_id",
        Reject::NotOwner => "the order belongs to another user_id",
        Reject::Expired => "the hold expired before it was paid",
        Reject::Cancelled => "the order was cancelled",
        Reject::AlreadyPaid => "the order is already paid",
        Reject::InvalidRestock => {
            "the change would leave stock_total below held + sold units or out of range"
        }
        Reject::InvalidSku => {
            "the sku settings are invalid: a per_user_limit below the most units one user already has of this sku, or a setting out of range"
        }
        Reject::Busy => "the server is overloaded; retry later",
    }
}

/// Serializes into a buffer sized for the largest answer, so it never grows.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(256);
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buffer, value);
    buffer
}

fn outcome_response(outcome: &Outcome) -> Response {
    match outcome {
        Outcome::Created(view) => created(to_json(&OrderJson::from(view)), "orders", view.order_id),
        Outcome::Order(view) => json(StatusCode::OK, to_json(&OrderJson::from(view))),
        Outcome::SkuCreated(view) => created(
            serde_json::to_vec(&SkuJson::from(&**view)).unwrap_or_default(),
            "skus",
            u64::from(view.config.sku_id),
        ),
        Outcome::Sku(view) => json(
            StatusCode::OK,
            serde_json::to_vec(&SkuJson::from(&**view)).unwrap_or_default(),
        ),
        Outcome::Rejected(reject) => error_answer(reject.outcome_code(), reject_detail(*reject)).0,
    }
}

/// One request's answer and the code it is counted under.
type Answered = (Response, OutcomeCode);

/// Runs one command through the gateway once its guard from the command table (the admin
/// token, the per-user rate limit) lets it pass.
async fn execute(shared: &Shared, headers: &HeaderMap, command: Command) -> Answered {
    let admitted = match guard(&command) {
        Guard::Admin => authorize(shared, headers),
        Guard::User(user_id) => rate_limit(shared, user_id),
        Guard::Open => Ok(()),
    };
    if let Err(refused) = admitted {
        return refused;
    }
    shared.capture(std::slice::from_ref(&command));
    let outcome = shared.gateway.execute(command).await;
    if outcome == Outcome::Rejected(Reject::Busy) {
        shared.metrics.gateway_busy();
    }
    (outcome_response(&outcome), outcome.code())
}

fn finish(
    shared: &Shared,
    kind: CommandKind,
    started: Instant,
    (response, outcome): Answered,
) -> Response {
    let op = Op::Command(kind);
    shared.metrics.count(Transport::Http, op, outcome, 1);
    let micros = started.elapsed().as_micros() as u64;
    shared.metrics.observe(Transport::Http, op, micros, 1);
    response
}

/// Parses a path id: decimal digits only, within the type's range.
fn parse_id<T: FromStr>(raw: &str, field: &str) -> Result<T, Answered> {
    // Path segments arrive percent-encoded; `%3x` digits are still digits.
    let decoded;
    let raw = if raw.contains('%') {
        decoded = percent_decode(raw).unwrap_or_default();
        decoded.as_str()
    } else {
        raw
    };
    let valid = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match valid.then(|| raw.parse::<T>().ok()).flatten() {
        Some(id) => Ok(id),
        None => Err(error_answer(
            OutcomeCode::InvalidRequest,
            &format!(
                "path parameter `{field}` must be a non-negative integer that fits in {}",
                std::any::type_name::<T>()
            ),
        )),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads and parses a JSON body: 413 over the size limit, 408 if it does not arrive in time,
/// 400 naming the field otherwise.
async fn read_json<T: DeserializeOwned>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<T, Answered> {
    let max = shared.config.max_body_bytes;
    let too_large = || {
        let (mut response, code) = error_answer(
            OutcomeCode::PayloadTooLarge,
            &format!("the request body is larger than {max} bytes"),
        );
        // The rest of the body is not read: the connection ends after this answer (with a
        // lingering close, so a client still writing its body gets to read it).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        (response, code)
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
    let mut collect = pin!(http_body_util::Limited::new(body, max).collect());
    // A small body has usually arrived with the headers: poll once before arming a timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(collected) => collected,
        Poll::Pending => {
            let timeout = Duration::from_millis(shared.config.body_read_timeout_ms.max(1));
            match tokio::time::timeout(timeout, collect).await {
                Ok(collected) => collected,
                Err(_) => {
                    return Err(error_answer(
                        OutcomeCode::RequestTimeout,
                        "the request body did not arrive in time",
                    ));
                }
            }
        }
    };
    let bytes: Bytes = match collected {
        Err(failure) => {
            if failure
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err(error_answer(
                OutcomeCode::InvalidRequest,
                "the request body could not be read",
            ));
        }
        Ok(collected) => collected.to_bytes(),
    };
    // The plain parse is the fast path; only a refused body is parsed again for the message
    // that names the field.
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(value),
        Err(_) => Err(error_answer(
            OutcomeCode::InvalidRequest,
            &match parse_json::<T>(&bytes) {
                Err(detail) => detail,
                Ok(_) => "invalid JSON body".to_owned(),
            },
        )),
    }
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
    let unauthorized = |detail: &str| Err(error_answer(OutcomeCode::Unauthorized, detail));
    if !shared.admin_token.is_configured() {
        return unauthorized("admin endpoints are disabled: the server has no admin token");
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if shared.admin_token.matches(token) => Ok(()),
        _ => unauthorized("a valid `Authorization: Bearer <token>` header is required"),
    }
}

fn rate_limit(shared: &Shared, user_id: u64) -> Result<(), Answered> {
    match &shared.rate_limiter {
        Some(limiter) if !limiter.allow(user_id, Instant::now()) => Err(error_answer(
            OutcomeCode::RateLimited,
            "this user_id sent too many requests; slow down",
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

async fn put_sku(shared: &Shared, raw: &str, headers: &HeaderMap, body: Incoming) -> Response {
    let started = Instant::now();
    let answered = async {
        authorize(shared, headers)?;
        let sku_id = parse_id::<u32>(raw, "sku_id")?;
        let body: UpsertBody = read_json(shared, headers, body).await?;
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
            return Err(error_answer(OutcomeCode::InvalidRequest, reason));
        }
        Ok(execute(shared, headers, Command::UpsertSku(config)).await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    finish(shared, CommandKind::UpsertSku, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestockBody {
    delta: i64,
}

async fn restock(shared: &Shared, raw: &str, headers: &HeaderMap, body: Incoming) -> Response {
    let started = Instant::now();
    let answered = async {
        authorize(shared, headers)?;
        let sku_id = parse_id::<u32>(raw, "sku_id")?;
        let body: RestockBody = read_json(shared, headers, body).await?;
        Ok(execute(
            shared,
            headers,
            Command::Restock {
                sku_id,
                delta: body.delta,
            },
        )
        .await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    finish(shared, CommandKind::Restock, started, answered)
}

async fn get_sku(shared: &Shared, raw: &str, headers: &HeaderMap) -> Response {
    let started = Instant::now();
    let answered = match parse_id::<u32>(raw, "sku_id") {
        Ok(sku_id) => execute(shared, headers, Command::QuerySku { sku_id }).await,
        Err(answered) => answered,
    };
    finish(shared, CommandKind::QuerySku, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order_id: u64,
    user_id: u64,
    sku_id: u32,
    qty: u32,
}

async fn create_order(shared: &Shared, headers: &HeaderMap, body: Incoming) -> Response {
    let started = Instant::now();
    let answered = async {
        let body: OrderBody = read_json(shared, headers, body).await?;
        Ok(execute(
            shared,
            headers,
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
    finish(shared, CommandKind::Reserve, started, answered)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user_id: u64,
}

/// Pay (`pay == true`) or cancel an order.
async fn order_action(
    shared: &Shared,
    raw: &str,
    headers: &HeaderMap,
    body: Incoming,
    pay: bool,
) -> Response {
    let started = Instant::now();
    let answered = async {
        let order_id = parse_id::<u64>(raw, "order_id")?;
        let body: UserBody = read_json(shared, headers, body).await?;
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
        Ok(execute(shared, headers, command).await)
    }
    .await
    .unwrap_or_else(|answered| answered);
    let kind = if pay {
        CommandKind::Pay
    } else {
        CommandKind::Cancel
    };
    finish(shared, kind, started, answered)
}

async fn get_order(shared: &Shared, raw: &str, headers: &HeaderMap) -> Response {
    let started = Instant::now();
    let answered = match parse_id::<u64>(raw, "order_id") {
        Ok(order_id) => execute(shared, headers, Command::QueryOrder { order_id }).await,
        Err(answered) => answered,
    };
    finish(shared, CommandKind::QueryOrder, started, answered)
}

async fn metrics(shared: &Shared) -> Response {
    let snapshot = shared.engine_snapshot().await;
    let text = shared.metrics.render(&snapshot);
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// 200 `{"status":"ok"}`, or 503 `durability_failed` with the reason once the journal has failed
/// (the engine then refuses every command until a restart: a load balancer should stop sending).
fn healthz(durability_failure: Option<String>) -> Response {
    match durability_failure {
        None => json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        Some(reason) => {
            let body = serde_json::to_vec(&ErrorBody {
                error: DURABILITY_FAILED,
                detail: &reason,
            })
            .unwrap_or_default();
            json(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_counted_under_its_own_path() {
        for row in ROUTES {
            assert_eq!(row.endpoint.metric().label(), row.path, "{row:?}");
        }
    }

    #[tokio::test]
    async fn healthz_says_ok_or_why_the_journal_failed() {
        assert_eq!(healthz(None).status(), StatusCode::OK);
        let failed = healthz(Some(
            "journal of shard 0 failed: No space left on device".to_string(),
        ));
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = failed.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "durability_failed");
        assert_eq!(
            body["detail"],
            "journal of shard 0 failed: No space left on device"
        );
    }

    async fn error_code_of(response: Response) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["error"].as_str().unwrap().to_string()
    }

    /// Every error answer carries its outcome code as the HTTP error code and is counted under
    /// that same code; the status is the outcome table's.
    #[tokio::test]
    async fn error_answers_use_the_outcome_table() {
        for code in OutcomeCode::ALL {
            let Some(status) = code.http_status() else {
                continue;
            };
            let (response, counted) = error_answer(code, "detail");
            assert_eq!(counted, code);
            assert_eq!(response.status().as_u16(), status, "{code:?}");
            assert_eq!(error_code_of(response).await, code.as_str());
        }
        for reject in Reject::ALL {
            let outcome = Outcome::Rejected(reject);
            let response = outcome_response(&outcome);
            let status = outcome.code().http_status().unwrap();
            assert_eq!(response.status().as_u16(), status, "{reject:?}");
            assert_eq!(error_code_of(response).await, outcome.label());
        }
    }
}
