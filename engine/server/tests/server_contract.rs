//! The decisions of docs/protocol.md that a client author had to guess (issue 12 #6), each
//! checked where a client touches them: over HTTP and over TCP, against an in-process server
//! whose engine runs on a manual clock, so instants such as the end of a sale window or a
//! hold's expiry are hit exactly. Rules already covered elsewhere are named in the test that
//! sits nearest to them (`server_http.rs`, `server_tcp.rs`, `server_slow_clients.rs`).

mod server_support;

use std::time::Duration;

use bytes::BytesMut;
use flashsale_engine::client::Client;
use flashsale_engine::protocol::{self, ErrorCode, HandshakeStatus, Reply, Request};
use flashsale_engine::{
    Clock, Command, EngineConfig, OrderStatus, Outcome, Reject, SkuConfig, types::MAX_STOCK_TOTAL,
};
use flashsale_server::{RunningServer, ServerConfig};
use hyper::Method;
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the engine's manual clock starts (epoch ms).
const T0: u64 = 1_000_000;

/// A server with a token and an engine on a manual clock at `T0`, an HTTP client and an
/// authenticated TCP client.
async fn contract_server() -> (RunningServer, Http, Client) {
    let server = start(ServerConfig {
        engine: EngineConfig {
            clock: Clock::manual(T0),
            ..EngineConfig::default()
        },
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    let http = Http::new(server.http_addr);
    let tcp = Client::connect(server.tcp_addr).await.unwrap();
    tcp.authenticate(TOKEN).await.unwrap();
    (server, http, tcp)
}

fn set_clock(server: &RunningServer, now_ms: u64) {
    server.engine().clock().set_ms(now_ms);
}

async fn tcp(client: &Client, command: Command) -> Outcome {
    client.execute(command).await.expect("a tcp answer")
}

fn reserve(order_id: u64, user_id: u64, sku_id: u32, qty: u32) -> Command {
    Command::Reserve {
        order_id,
        user_id,
        sku_id,
        qty,
    }
}

fn sku_body(stock: u64, limit: u32, ttl: u64) -> String {
    format!(r#"{{"stock_total":{stock},"per_user_limit":{limit},"hold_ttl_ms":{ttl}}}"#)
}

/// §3.1: which SKU settings are valid. Stock 0 is (a SKU announced before its stock arrives),
/// up to 2^48 inclusive; limit 0, ttl 0 and an end not after the start are not. A restock may
/// not leave the total above 2^48, an upsert may not lower the limit below what a user has had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sku_settings_valid_and_invalid() {
    let (server, http, client) = contract_server().await;
    // HTTP.
    assert_eq!(http.put_sku(1, &sku_body(0, 1, 60_000)).await.status, 201);
    assert_error(&http.order(1, 1, 1, 1).await, 409, "sold_out", "stock");
    let restock = http
        .admin(Method::POST, "/v1/skus/1/restock", r#"{"delta":1}"#)
        .await;
    assert_eq!(restock.status, 200);
    assert_eq!(http.order(1, 1, 1, 1).await.status, 201);
    assert_eq!(
        http.put_sku(2, &sku_body(MAX_STOCK_TOTAL, 1, 60_000))
            .await
            .status,
        201
    );
    let over_cap = http
        .admin(Method::POST, "/v1/skus/2/restock", r#"{"delta":1}"#)
        .await;
    assert_error(&over_cap, 409, "invalid_restock", "range");
    let too_much = http
        .put_sku(3, &sku_body(MAX_STOCK_TOTAL + 1, 1, 60_000))
        .await;
    assert_error(&too_much, 400, "invalid_request", "stock_total");
    assert_error(
        &http.put_sku(3, &sku_body(5, 1, 0)).await,
        400,
        "invalid_request",
        "hold_ttl_ms",
    );
    let empty_window = http
        .put_sku(
            3,
            r#"{"stock_total":5,"per_user_limit":1,"hold_ttl_ms":1,"sale_start_ms":7,"sale_end_ms":7}"#,
        )
        .await;
    assert_error(&empty_window, 400, "invalid_request", "sale_end_ms");
    // Order 1 holds one unit of sku 1 (limit 1): the limit may not go below 1 — it may stay.
    assert_eq!(http.put_sku(1, &sku_body(9, 1, 60_000)).await.status, 200);
    // TCP: the same settings, refused with reject 13 (`invalid_request`).
    let config = |stock, limit, ttl| SkuConfig::simple(10, stock, limit, ttl);
    for refused in [
        config(MAX_STOCK_TOTAL + 1, 1, 60_000),
        config(5, 0, 60_000),
        config(5, 1, 0),
        SkuConfig {
            sale_start_ms: Some(7),
            sale_end_ms: Some(7),
            ..config(5, 1, 60_000)
        },
    ] {
        assert_eq!(
            tcp(&client, Command::UpsertSku(refused)).await,
            Outcome::Rejected(Reject::InvalidSku),
            "{refused:?}"
        );
    }
    assert!(matches!(
        tcp(&client, Command::UpsertSku(config(0, 1, 60_000))).await,
        Outcome::SkuCreated(view) if view.available == 0
    ));
    assert_eq!(
        tcp(&client, reserve(20, 1, 10, 1)).await,
        Outcome::Rejected(Reject::SoldOut)
    );
    assert!(matches!(
        tcp(
            &client,
            Command::UpsertSku(config(MAX_STOCK_TOTAL, 2, 60_000))
        )
        .await,
        Outcome::Sku(_)
    ));
    assert!(matches!(
        tcp(&client, reserve(20, 1, 10, 2)).await,
        Outcome::Created(_)
    ));
    assert_eq!(
        tcp(&client, Command::UpsertSku(config(5, 1, 60_000))).await,
        Outcome::Rejected(Reject::InvalidSku),
        "the limit may not go below the 2 units user 1 has"
    );
    assert_eq!(
        tcp(
            &client,
            Command::Restock {
                sku_id: 10,
                delta: 1
            }
        )
        .await,
        Outcome::Rejected(Reject::InvalidRestock)
    );
    server.shutdown().await;
}

/// §3.2: the window's start is inclusive, its end exclusive, and it governs new reserves only:
/// a hold made inside it can be paid or cancelled after it has closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sale_window_starts_inclusive_ends_exclusive_and_governs_reserves_only() {
    let (server, http, client) = contract_server().await;
    let (start, end) = (T0 + 100, T0 + 200);
    let window = format!(
        r#"{{"stock_total":10,"per_user_limit":5,"hold_ttl_ms":60000,"sale_start_ms":{start},"sale_end_ms":{end}}}"#
    );
    assert_eq!(http.put_sku(1, &window).await.status, 201);
    set_clock(&server, start - 1);
    assert_error(&http.order(1, 1, 1, 1).await, 409, "not_on_sale", "sale");
    assert_eq!(
        tcp(&client, reserve(2, 2, 1, 1)).await,
        Outcome::Rejected(Reject::NotOnSale)
    );
    set_clock(&server, start);
    assert_eq!(http.order(1, 1, 1, 1).await.status, 201);
    assert!(matches!(
        tcp(&client, reserve(2, 2, 1, 1)).await,
        Outcome::Created(_)
    ));
    set_clock(&server, end - 1);
    assert_eq!(http.order(3, 3, 1, 1).await.status, 201);
    set_clock(&server, end);
    assert_error(&http.order(4, 4, 1, 1).await, 409, "not_on_sale", "sale");
    assert_eq!(
        tcp(&client, reserve(5, 5, 1, 1)).await,
        Outcome::Rejected(Reject::NotOnSale)
    );
    // After the window: the holds made inside it are paid and cancelled as usual.
    set_clock(&server, end + 1_000);
    let paid = http.post("/v1/orders/1/pay", r#"{"user_id":1}"#).await;
    assert_eq!(paid.status, 200);
    assert_eq!(paid.json()["status"], "paid");
    assert!(matches!(
        tcp(&client, Command::Cancel { order_id: 2, user_id: 2 }).await,
        Outcome::Order(view) if view.status == OrderStatus::Cancelled
    ));
    assert!(matches!(
        tcp(&client, Command::Pay { order_id: 3, user_id: 3 }).await,
        Outcome::Order(view) if view.status == OrderStatus::Paid
    ));
    server.shutdown().await;
}

/// §3.3: the first failing check answers, in the documented order: known id, unknown SKU, qty
/// 0, sold out, qty over the limit, not on sale, the user's limit. The HTTP detail of
/// `invalid_qty` names both of its causes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserves_checks_answer_in_the_documented_order() {
    let (server, http, client) = contract_server().await;
    let later = T0 + 1_000_000;
    // Sku 1: 2 units, limit 1, not on sale yet.
    let not_yet = format!(
        r#"{{"stock_total":2,"per_user_limit":1,"hold_ttl_ms":60000,"sale_start_ms":{later}}}"#
    );
    assert_eq!(http.put_sku(1, &not_yet).await.status, 201);
    // Sku 2: 1 unit, limit 1, on sale.
    assert_eq!(http.put_sku(2, &sku_body(1, 1, 60_000)).await.status, 201);
    // More than available: sold out, though also over the limit and not on sale.
    assert_error(&http.order(1, 1, 1, 3).await, 409, "sold_out", "stock");
    assert_eq!(
        tcp(&client, reserve(1, 1, 1, 3)).await,
        Outcome::Rejected(Reject::SoldOut)
    );
    // Available, over the limit: invalid_qty, though also not on sale.
    let over_limit = http.order(1, 1, 1, 2).await;
    assert_error(&over_limit, 400, "invalid_qty", "per_user_limit");
    assert!(
        over_limit.detail().contains("at least 1"),
        "{}",
        over_limit.detail()
    );
    assert_eq!(
        tcp(&client, reserve(1, 1, 1, 2)).await,
        Outcome::Rejected(Reject::InvalidQty)
    );
    // Within the limit: not on sale.
    assert_error(&http.order(1, 1, 1, 1).await, 409, "not_on_sale", "sale");
    // Qty 0 on a sold-out SKU: invalid_qty comes before sold out; on an unknown SKU, unknown.
    assert_eq!(http.order(2, 1, 2, 1).await.status, 201);
    assert_error(&http.order(3, 1, 2, 0).await, 400, "invalid_qty", "qty");
    assert_error(&http.order(3, 1, 99, 0).await, 404, "unknown_sku", "sku");
    // User 1 holds sku 2's only unit: another unit is sold out, not over the user's limit.
    assert_eq!(
        tcp(&client, reserve(3, 1, 2, 1)).await,
        Outcome::Rejected(Reject::SoldOut)
    );
    // The known id comes first: another SKU (even an unknown one) is an id conflict.
    assert_error(
        &http.order(2, 1, 99, 0).await,
        409,
        "id_conflict",
        "order_id",
    );
    assert_eq!(
        tcp(&client, reserve(2, 1, 1, 1)).await,
        Outcome::Rejected(Reject::IdConflict)
    );
    server.shutdown().await;
}

/// §3.3 rule 1: a reserve of a known id with the same fields answers the order's current view,
/// whatever its status — held, cancelled, expired — and never takes stock again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_reserve_answers_the_orders_current_state() {
    let (server, http, client) = contract_server().await;
    assert_eq!(http.put_sku(1, &sku_body(5, 5, 1_000)).await.status, 201);
    assert_eq!(http.order(1, 1, 1, 1).await.status, 201);
    assert!(matches!(
        tcp(&client, reserve(2, 1, 1, 1)).await,
        Outcome::Created(_)
    ));
    assert_eq!(
        http.post("/v1/orders/1/cancel", r#"{"user_id":1}"#)
            .await
            .status,
        200
    );
    let retried = http.order(1, 1, 1, 1).await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.json()["status"], "cancelled");
    set_clock(&server, T0 + 1_000);
    assert!(matches!(
        tcp(&client, reserve(2, 1, 1, 1)).await,
        Outcome::Order(view) if view.status == OrderStatus::Expired
    ));
    assert_eq!(http.order(2, 1, 1, 1).await.json()["status"], "expired");
    assert_eq!(http.get("/v1/skus/1").await.json()["available"], 5);
    server.shutdown().await;
}

/// §3.4: the per-user limit counts held and paid units; cancelled and expired holds give their
/// units back to the user as well as to the stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_holds_give_the_user_their_units_back() {
    let (server, http, client) = contract_server().await;
    assert_eq!(http.put_sku(1, &sku_body(10, 1, 1_000)).await.status, 201);
    assert_eq!(http.order(1, 7, 1, 1).await.status, 201);
    assert_error(
        &http.order(2, 7, 1, 1).await,
        409,
        "limit_exceeded",
        "limit",
    );
    assert_eq!(
        http.post("/v1/orders/1/cancel", r#"{"user_id":7}"#)
            .await
            .status,
        200
    );
    assert_eq!(http.order(2, 7, 1, 1).await.status, 201);
    assert_eq!(
        tcp(&client, reserve(3, 7, 1, 1)).await,
        Outcome::Rejected(Reject::LimitExceeded)
    );
    set_clock(&server, T0 + 1_000);
    assert!(matches!(
        tcp(&client, reserve(3, 7, 1, 1)).await,
        Outcome::Created(_)
    ));
    // A paid unit keeps counting.
    assert_eq!(
        http.post("/v1/orders/3/pay", r#"{"user_id":7}"#)
            .await
            .status,
        200
    );
    assert_error(
        &http.order(4, 7, 1, 1).await,
        409,
        "limit_exceeded",
        "limit",
    );
    server.shutdown().await;
}

/// §3.5: pay and cancel in every state. Success, first or repeated, is HTTP 200 / TCP tag 0x02
/// with the order view; cancel twice is idempotent; a pay at the expiry instant is expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_and_cancel_answer_as_the_table_says() {
    let (server, http, _client) = contract_server().await;
    assert_eq!(http.put_sku(1, &sku_body(10, 5, 1_000)).await.status, 201);
    for order_id in 1..=4 {
        assert_eq!(http.order(order_id, 1, 1, 1).await.status, 201);
    }
    for _ in 0..2 {
        let cancelled = http.post("/v1/orders/1/cancel", r#"{"user_id":1}"#).await;
        assert_eq!(cancelled.status, 200);
        assert_eq!(cancelled.json()["status"], "cancelled");
    }
    assert_error(
        &http.post("/v1/orders/1/pay", r#"{"user_id":1}"#).await,
        409,
        "cancelled",
        "cancelled",
    );
    // Raw TCP: the reply tags of pay and cancel, first and repeated.
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let pay = Command::Pay {
        order_id: 2,
        user_id: 1,
    };
    let cancel = Command::Cancel {
        order_id: 3,
        user_id: 1,
    };
    for (command, status) in [
        (pay, OrderStatus::Paid),
        (pay, OrderStatus::Paid),
        (cancel, OrderStatus::Cancelled),
        (cancel, OrderStatus::Cancelled),
    ] {
        let (tag, reply) = raw_request(&mut stream, Request::Command(command)).await;
        assert_eq!(tag, 0x02, "{command:?}: {reply:?}");
        assert!(
            matches!(reply, Reply::Outcome(Outcome::Order(view)) if view.status == status),
            "{reply:?}"
        );
    }
    for (command, reject) in [
        (
            Command::Cancel {
                order_id: 2,
                user_id: 1,
            },
            Reject::AlreadyPaid,
        ),
        (
            Command::Pay {
                order_id: 3,
                user_id: 1,
            },
            Reject::Cancelled,
        ),
        (
            Command::Pay {
                order_id: 4,
                user_id: 2,
            },
            Reject::NotOwner,
        ),
        (
            Command::Pay {
                order_id: 99,
                user_id: 1,
            },
            Reject::UnknownOrder,
        ),
    ] {
        let (tag, reply) = raw_request(&mut stream, Request::Command(command)).await;
        assert_eq!(tag, 0x05, "{command:?}");
        assert_eq!(reply, Reply::Outcome(Outcome::Rejected(reject)));
    }
    // The expiry instant itself: too late to pay, and to cancel.
    set_clock(&server, T0 + 1_000);
    assert_error(
        &http.post("/v1/orders/4/pay", r#"{"user_id":1}"#).await,
        409,
        "expired",
        "expired",
    );
    assert_error(
        &http.post("/v1/orders/4/cancel", r#"{"user_id":1}"#).await,
        409,
        "expired",
        "expired",
    );
    server.shutdown().await;
}

/// §2.1: the handshake's reserved bytes may hold anything; a handshake not complete within the
/// header timeout is dropped without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_ignores_its_reserved_bytes_and_has_a_deadline() {
    let (server, _http, _client) = contract_server().await;
    let mut hello = protocol::client_handshake();
    hello[6..8].copy_from_slice(&[0xAB, 0xCD]);
    let mut stream = TcpStream::connect(server.tcp_addr).await.unwrap();
    stream.write_all(&hello).await.unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(
        protocol::parse_server_handshake(&answer),
        Ok(HandshakeStatus::Ok)
    );
    let (_, reply) = raw_request(
        &mut stream,
        Request::Command(Command::QueryOrder { order_id: 5 }),
    )
    .await;
    assert_eq!(
        reply,
        Reply::Outcome(Outcome::Rejected(Reject::UnknownOrder))
    );
    // Half a handshake, then nothing: closed at the header timeout (300 ms here), no answer.
    let mut slow = TcpStream::connect(server.tcp_addr).await.unwrap();
    slow.write_all(&hello[..5]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an incomplete handshake must be dropped");
    assert!(rest.is_empty(), "without an answer: {rest:?}");
    server.shutdown().await;
}

/// §2.3: a frame's shape is checked before its authority — an admin frame of the wrong size is
/// `malformed_frame` (closing) also unauthenticated — and a wrong token after a right one takes
/// the connection's authority away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_frames_shape_before_authority_and_the_last_auth_counts() {
    let (server, _http, _client) = contract_server().await;
    // Unauthenticated, an upsert with 10 bytes of its 49-byte payload.
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let mut frame = Vec::new();
    frame.extend_from_slice(&15u32.to_be_bytes());
    frame.extend_from_slice(&77u32.to_be_bytes());
    frame.push(0x01);
    frame.extend_from_slice(&[0u8; 10]);
    stream.write_all(&frame).await.unwrap();
    let (_, _, reply) = read_raw_reply(&mut stream).await.expect("an error reply");
    assert!(
        matches!(
            reply,
            Reply::Error {
                code: ErrorCode::MalformedFrame,
                ..
            }
        ),
        "{reply:?}"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed after it: {rest:?}"
    );
    // Right token, then a wrong one: admin commands are unauthorized again; the connection
    // stays open.
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let (_, ok) = raw_request(&mut stream, Request::Auth(TOKEN.as_bytes().to_vec())).await;
    assert_eq!(ok, Reply::AuthOk);
    let upsert = Request::Command(Command::UpsertSku(SkuConfig::simple(5, 1, 1, 1_000)));
    let (tag, created) = raw_request(&mut stream, upsert.clone()).await;
    assert_eq!(tag, 0x03, "{created:?}");
    let (_, wrong) = raw_request(&mut stream, Request::Auth(b"wrong".to_vec())).await;
    assert!(matches!(
        wrong,
        Reply::Error {
            code: ErrorCode::Unauthorized,
            ..
        }
    ));
    let (_, refused) = raw_request(&mut stream, upsert).await;
    assert!(
        matches!(
            refused,
            Reply::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{refused:?}"
    );
    let (_, still_open) = raw_request(
        &mut stream,
        Request::Command(Command::QuerySku { sku_id: 5 }),
    )
    .await;
    assert!(
        matches!(still_open, Reply::Outcome(Outcome::Sku(_))),
        "{still_open:?}"
    );
    server.shutdown().await;
}

/// §2.6: after a client's half-close the server answers every complete request it read, then
/// closes; the incomplete frame at the end is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_every_complete_answer_then_the_close() {
    let (server, _http, _client) = contract_server().await;
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let mut out = BytesMut::new();
    for request_id in 1..=3u32 {
        protocol::encode_request(
            request_id,
            &Request::Command(Command::QueryOrder { order_id: 8 }),
            &mut out,
        );
    }
    out.extend_from_slice(&out.clone()[..10]);
    stream.write_all(&out).await.unwrap();
    stream.shutdown().await.unwrap();
    for request_id in 1..=3u32 {
        let (id, _, reply) = read_raw_reply(&mut stream).await.expect("an answer");
        assert_eq!(id, request_id);
        assert_eq!(
            reply,
            Reply::Outcome(Outcome::Rejected(Reject::UnknownOrder))
        );
    }
    assert!(
        read_raw_reply(&mut stream).await.is_none(),
        "then the close"
    );
    server.shutdown().await;
}

/// Sends one request; its reply's tag byte and decoded reply.
async fn raw_request(stream: &mut TcpStream, request: Request) -> (u8, Reply) {
    let mut out = BytesMut::new();
    protocol::encode_request(42, &request, &mut out);
    stream.write_all(&out).await.unwrap();
    let (id, tag, reply) = read_raw_reply(stream).await.expect("a reply");
    assert_eq!(id, 42);
    (tag, reply)
}

/// One reply frame: its request id, tag and decoded reply; `None` at the end of the stream.
async fn read_raw_reply(stream: &mut TcpStream) -> Option<(u32, u8, Reply)> {
    let mut len = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .expect("a reply or the close in time");
    if read.is_err() {
        return None;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    let (id, reply) = protocol::decode_reply(&body).expect("replies decode");
    Some((id, body[4], reply))
}
