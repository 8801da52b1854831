//! The HTTP/JSON contract, row by row, plus the bad-input table, admin auth, rate limiting,
//! overload, connection limit, header timeout and a concurrent hot-SKU run — all through a real
//! HTTP client against an in-process server on ephemeral ports.

mod server_support;

use std::time::Duration;

use hyper::Method;
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SKU: &str = r#"{"stock_total":3,"per_user_limit":2,"hold_ttl_ms":60000}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_are_closed_without_a_token() {
    let server = start(flashsale_server::ServerConfig::default()).await;
    let http = Http::new(server.http_addr);
    let answer = http.put_sku(1, SKU).await;
    assert_error(&answer, 401, "unauthorized", "no admin token");
    let answer = http
        .admin(Method::POST, "/v1/skus/1/restock", r#"{"delta":1}"#)
        .await;
    assert_error(&answer, 401, "unauthorized", "no admin token");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sku_rows() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    // PUT: 401 without / with a wrong token, 201 then 200, 400 naming the field.
    let answer = http.send(Method::PUT, "/v1/skus/1", None, SKU).await;
    assert_error(&answer, 401, "unauthorized", "Bearer");
    assert_eq!(
        answer.headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"flashsale\"",
        "a 401 names its scheme (RFC 6750 §3)"
    );
    let answer = http
        .send(Method::PUT, "/v1/skus/1", Some("nope"), SKU)
        .await;
    assert_error(&answer, 401, "unauthorized", "Bearer");
    assert!(answer.headers.contains_key("www-authenticate"));
    let answer = http.put_sku(1, SKU).await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.headers.get("location").unwrap(), "/v1/skus/1");
    let view = answer.json();
    assert_eq!(view["sku_id"], 1);
    assert_eq!(view["stock_total"], 3);
    assert_eq!(view["available"], 3);
    let answer = http
        .put_sku(
            1,
            r#"{"stock_total":5,"per_user_limit":2,"hold_ttl_ms":60000,"price_cents":250}"#,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["stock_total"], 5);
    assert_eq!(answer.json()["price_cents"], 250);
    let answer = http
        .put_sku(
            1,
            r#"{"stock_total":5,"per_user_limit":0,"hold_ttl_ms":60000}"#,
        )
        .await;
    assert_error(&answer, 400, "invalid_request", "per_user_limit");
    let answer = http
        .put_sku(1, r#"{"stock_total":5,"per_user_limit":1,"hold_ttl_ms":1,"sale_start_ms":10,"sale_end_ms":5}"#)
        .await;
    assert_error(&answer, 400, "invalid_request", "sale_end_ms");

    // Restock: 200, 404 unknown_sku, 409 invalid_restock, 401.
    let answer = http
        .admin(Method::POST, "/v1/skus/1/restock", r#"{"delta":-2}"#)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["stock_total"], 3);
    let answer = http
        .admin(Method::POST, "/v1/skus/99/restock", r#"{"delta":1}"#)
        .await;
    assert_error(&answer, 404, "unknown_sku", "sku");
    let answer = http
        .admin(Method::POST, "/v1/skus/1/restock", r#"{"delta":-10}"#)
        .await;
    assert_error(&answer, 409, "invalid_restock", "stock_total");
    let answer = http
        .send(Method::POST, "/v1/skus/1/restock", None, r#"{"delta":1}"#)
        .await;
    assert_error(&answer, 401, "unauthorized", "Bearer");

    // GET: every documented field; 404.
    let answer = http.get("/v1/skus/1").await;
    assert_eq!(answer.status, 200);
    let view = answer.json();
    for field in [
        "sku_id",
        "stock_total",
        "available",
        "held",
        "sold",
        "per_user_limit",
        "hold_ttl_ms",
    ] {
        assert!(view.get(field).is_some(), "missing {field} in {view}");
    }
    assert_eq!(view["held"], 0);
    assert_error(&http.get("/v1/skus/2").await, 404, "unknown_sku", "sku_id");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_rows() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.put_sku(1, SKU).await.status, 201);
    assert_eq!(
        http.put_sku(2, r#"{"stock_total":3,"per_user_limit":1,"hold_ttl_ms":60000,"sale_start_ms":99999999999999}"#)
            .await
            .status,
        201
    );
    assert_eq!(
        http.put_sku(
            3,
            r#"{"stock_total":10,"per_user_limit":5,"hold_ttl_ms":1}"#
        )
        .await
        .status,
        201
    );

    // POST /v1/orders: 201 held, idempotent 200, and every refusal.
    let answer = http.order(1, 100, 1, 1).await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.headers.get("location").unwrap(), "/v1/orders/1");
    let view = answer.json();
    assert_eq!(view["status"], "held");
    assert_eq!(view["order_id"], 1);
    assert!(view["expires_at_ms"].as_u64().unwrap() > 0);
    let answer = http.order(1, 100, 1, 1).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "held");
    assert_error(
        &http.order(1, 101, 1, 1).await,
        409,
        "id_conflict",
        "order_id",
    );
    assert_error(
        &http.order(2, 100, 1, 2).await,
        409,
        "limit_exceeded",
        "limit",
    );
    assert_eq!(http.order(3, 101, 1, 2).await.status, 201);
    assert_error(&http.order(4, 102, 1, 1).await, 409, "sold_out", "stock");
    assert_error(&http.order(5, 102, 2, 1).await, 409, "not_on_sale", "sale");
    assert_error(&http.order(6, 102, 77, 1).await, 404, "unknown_sku", "sku");
    assert_error(&http.order(7, 102, 1, 0).await, 400, "invalid_qty", "qty");
    assert_error(
        &http
            .post("/v1/orders", r#"{"order_id":8,"user_id":1,"sku_id":1}"#)
            .await,
        400,
        "invalid_request",
        "qty",
    );

    // Pay: 200 paid, repeat 200, 404, 403, 409 cancelled, 409 expired.
    let answer = http.post("/v1/orders/1/pay", r#"{"user_id":100}"#).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "paid");
    let answer = http.post("/v1/orders/1/pay", r#"{"user_id":100}"#).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "paid");
    assert_error(
        &http.post("/v1/orders/999/pay", r#"{"user_id":100}"#).await,
        404,
        "unknown_order",
        "order_id",
    );
    assert_error(
        &http.post("/v1/orders/3/pay", r#"{"user_id":100}"#).await,
        403,
        "not_owner",
        "user_id",
    );

    // Cancel: 200 cancelled, 409 already_paid, 404, 403; then paying it is 409 cancelled.
    let answer = http.post("/v1/orders/3/cancel", r#"{"user_id":101}"#).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "cancelled");
    assert_error(
        &http.post("/v1/orders/3/pay", r#"{"user_id":101}"#).await,
        409,
        "cancelled",
        "cancelled",
    );
    assert_error(
        &http.post("/v1/orders/1/cancel", r#"{"user_id":100}"#).await,
        409,
        "already_paid",
        "paid",
    );
    assert_error(
        &http.post("/v1/orders/999/cancel", r#"{"user_id":1}"#).await,
        404,
        "unknown_order",
        "order_id",
    );
    assert_error(
        &http.post("/v1/orders/1/cancel", r#"{"user_id":5}"#).await,
        403,
        "not_owner",
        "user_id",
    );

    // Expiry (1 ms holds on sku 3): pay and cancel answer 409 expired.
    assert_eq!(http.order(20, 200, 3, 1).await.status, 201);
    assert_eq!(http.order(21, 201, 3, 1).await.status, 201);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_error(
        &http.post("/v1/orders/20/pay", r#"{"user_id":200}"#).await,
        409,
        "expired",
        "expired",
    );
    assert_error(
        &http
            .post("/v1/orders/21/cancel", r#"{"user_id":201}"#)
            .await,
        409,
        "expired",
        "expired",
    );

    // GET order: every field and status; 404.
    let answer = http.get("/v1/orders/1").await;
    assert_eq!(answer.status, 200);
    let view = answer.json();
    assert_eq!(view["order_id"], 1);
    assert_eq!(view["user_id"], 100);
    assert_eq!(view["sku_id"], 1);
    assert_eq!(view["qty"], 1);
    assert_eq!(view["status"], "paid");
    assert!(view["expires_at_ms"].is_u64());
    assert_eq!(http.get("/v1/orders/3").await.json()["status"], "cancelled");
    assert_eq!(http.get("/v1/orders/20").await.json()["status"], "expired");
    assert_error(
        &http.get("/v1/orders/12345").await,
        404,
        "unknown_order",
        "order_id",
    );

    // The SKU's totals agree: 1 sold, 0 held, 2 available.
    let sku = http.get("/v1/skus/1").await.json();
    assert_eq!(
        (
            sku["sold"].as_u64(),
            sku["held"].as_u64(),
            sku["available"].as_u64()
        ),
        (Some(1), Some(0), Some(2))
    );

    // /metrics and /healthz.
    let answer = http.get("/healthz").await;
    assert_eq!(answer.status, 200);
    let answer = http.get("/metrics").await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8_lossy(&answer.body);
    for needle in [
        "flashsale_requests_total{transport=\"http\",op=\"reserve\",outcome=\"held\"}",
        "flashsale_requests_total{transport=\"http\",op=\"reserve\",outcome=\"sold_out\"} 1",
        "flashsale_request_duration_seconds_bucket{transport=\"http\",op=\"pay\",le=\"+Inf\"}",
        "flashsale_shard_queue_depth{shard=\"0\"}",
        "flashsale_busy_rejections_total{queue=\"shard\"} 0",
        "flashsale_open_connections{transport=\"http\"}",
        "flashsale_stock_units{state=\"sold\"} 1",
        "flashsale_sku_stock_units{sku_id=\"1\",state=\"available\"} 2",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.put_sku(1, SKU).await.status, 201);
    // A client placing good orders throughout; it must never see anything but success.
    let good = {
        let http = Http::new(server.http_addr);
        tokio::spawn(async move {
            for i in 0..50u64 {
                let answer = http.get("/v1/skus/1").await;
                assert_eq!(answer.status, 200);
                let answer = http.get(&format!("/v1/orders/{}", 1_000_000 + i)).await;
                assert_eq!(answer.code(), "unknown_order");
            }
        })
    };
    let huge = "x".repeat(20_000);
    let oversized = format!(r#"{{"order_id":1,"user_id":1,"sku_id":1,"qty":1,"pad":"{huge}"}}"#);
    let cases: Vec<(Method, &str, String, u16, &str, &str)> = vec![
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"#.into(),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            Method::POST,
            "/v1/orders",
            "not json".into(),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            Method::POST,
            "/v1/orders",
            "".into(),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            Method::POST,
            "/v1/orders",
            "[1,2]".into(),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":"1","user_id":1,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":-1,"user_id":1,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":18446744073709551616,"user_id":1,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1e30,"user_id":1,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1.5,"user_id":1,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":null,"sku_id":1,"qty":1}"#.into(),
            400,
            "invalid_request",
            "user_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":1,"sku_id":4294967296,"qty":1}"#.into(),
            400,
            "invalid_request",
            "sku_id",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":1,"sku_id":1,"qty":-1}"#.into(),
            400,
            "invalid_request",
            "qty",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":1,"sku_id":1}"#.into(),
            400,
            "invalid_request",
            "qty",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":1,"sku_id":1,"qty":1,"extra":1}"#.into(),
            400,
            "invalid_request",
            "extra",
        ),
        (
            Method::POST,
            "/v1/orders",
            r#"{"order_id":1,"user_id":1,"sku_id":1,"qty":1} trailing"#.into(),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            Method::POST,
            "/v1/orders",
            oversized,
            413,
            "payload_too_large",
            "bytes",
        ),
        (
            Method::POST,
            "/v1/orders/abc/pay",
            r#"{"user_id":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders/-1/pay",
            r#"{"user_id":1}"#.into(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::POST,
            "/v1/orders/1/pay",
            r#"{"user_id":-5}"#.into(),
            400,
            "invalid_request",
            "user_id",
        ),
        (
            Method::POST,
            "/v1/orders/1/cancel",
            r#"{}"#.into(),
            400,
            "invalid_request",
            "user_id",
        ),
        (
            Method::GET,
            "/v1/orders/18446744073709551616",
            String::new(),
            400,
            "invalid_request",
            "order_id",
        ),
        (
            Method::GET,
            "/v1/skus/4294967296",
            String::new(),
            400,
            "invalid_request",
            "sku_id",
        ),
        (
            Method::GET,
            "/v1/skus/1.5",
            String::new(),
            400,
            "invalid_request",
            "sku_id",
        ),
        (
            Method::PUT,
            "/v1/skus/1",
            r#"{"stock_total":-1,"per_user_limit":1,"hold_ttl_ms":1}"#.into(),
            400,
            "invalid_request",
            "stock_total",
        ),
        (
            Method::PUT,
            "/v1/skus/1",
            r#"{"stock_total":1,"per_user_limit":1}"#.into(),
            400,
            "invalid_request",
            "hold_ttl_ms",
        ),
        (
            Method::POST,
            "/v1/skus/1/restock",
            r#"{"delta":1.5}"#.into(),
            400,
            "invalid_request",
            "delta",
        ),
        (
            Method::POST,
            "/v1/skus/1/restock",
            r#"{"delta":9223372036854775808}"#.into(),
            400,
            "invalid_request",
            "delta",
        ),
        (
            Method::GET,
            "/v1/nothing",
            String::new(),
            404,
            "not_found",
            "/v1/nothing",
        ),
        (Method::GET, "/", String::new(), 404, "not_found", "/"),
        (
            Method::DELETE,
            "/v1/orders/1",
            String::new(),
            405,
            "method_not_allowed",
            "DELETE",
        ),
        (
            Method::GET,
            "/v1/orders",
            String::new(),
            405,
            "method_not_allowed",
            "GET",
        ),
        (
            Method::PATCH,
            "/v1/skus/1",
            String::new(),
            405,
            "method_not_allowed",
            "PATCH",
        ),
    ];
    for (method, path, body, status, code, mentions) in cases {
        let answer = http.send(method.clone(), path, Some(TOKEN), body).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{method} {path}: {}", answer.detail());
        assert!(
            answer.detail().contains(mentions),
            "{method} {path}: detail {:?} should mention {mentions:?}",
            answer.detail()
        );
    }
    good.await.unwrap();
    // Nothing above changed state: the SKU is untouched and the server still serves.
    let sku = http.get("/v1/skus/1").await.json();
    assert_eq!(sku["available"], 3);
    assert_eq!(http.order(1, 1, 1, 1).await.status, 201);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rate_limit_answers_429() {
    let server = start(flashsale_server::ServerConfig {
        user_rate_limit_per_s: Some(2),
        ..config()
    })
    .await;
    let http = Http::new(server.http_addr);
    assert_eq!(
        http.put_sku(
            1,
            r#"{"stock_total":100,"per_user_limit":100,"hold_ttl_ms":60000}"#
        )
        .await
        .status,
        201
    );
    assert_eq!(http.order(1, 7, 1, 1).await.status, 201);
    assert_eq!(http.order(2, 7, 1, 1).await.status, 201);
    let answer = http.order(3, 7, 1, 1).await;
    assert_error(&answer, 429, "rate_limited", "user_id");
    // Another user is not affected.
    assert_eq!(http.order(4, 8, 1, 1).await.status, 201);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_503_busy_with_retry_after() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.put_sku(1, SKU).await.status, 201);
    // An engine that takes no more work (its shard queues are gone) sheds every command
    // with `busy`, exactly as full queues do; the server keeps answering.
    server.engine().shutdown();
    for order_id in 0..5 {
        let answer = http.order(order_id, 1, 1, 1).await;
        assert_error(&answer, 503, "busy", "retry");
        assert_eq!(answer.headers.get("retry-after").unwrap(), "1");
    }
    assert_eq!(http.get("/healthz").await.status, 200);
    let text = String::from_utf8_lossy(&http.get("/metrics").await.body).into_owned();
    assert!(
        text.contains(
            "flashsale_requests_total{transport=\"http\",op=\"reserve\",outcome=\"busy\"} 5"
        ),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_header_timeout() {
    let server = start(flashsale_server::ServerConfig {
        max_connections: 1,
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    // The first connection holds the only slot, sending half a request line.
    let mut first = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    first.write_all(b"GET /healthz HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut second = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut answer = Vec::new();
    second.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"busy\""), "{answer}");
    // The slow first client is cut off by the header timeout, freeing the slot.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), first.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers must be disconnected"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_one_hot_sku_never_oversell() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(
        http.put_sku(
            1,
            r#"{"stock_total":50,"per_user_limit":1000,"hold_ttl_ms":600000}"#
        )
        .await
        .status,
        201
    );
    let mut tasks = Vec::new();
    for client in 0..32u64 {
        let addr = server.http_addr;
        tasks.push(tokio::spawn(async move {
            let http = Http::new(addr);
            let mut mine = Vec::new();
            for attempt in 0..8u64 {
                let order_id = client * 100 + attempt;
                let answer = http.order(order_id, client, 1, 1).await;
                match answer.status.as_u16() {
                    201 => mine.push(order_id),
                    409 => assert_eq!(answer.code(), "sold_out"),
                    other => panic!("unexpected {other}"),
                }
            }
            // Pay every other hold.
            let mut paid = 0;
            for (i, order_id) in mine.iter().enumerate() {
                if i % 2 == 0 {
                    let answer = http
                        .post(
                            &format!("/v1/orders/{order_id}/pay"),
                            &format!(r#"{{"user_id":{client}}}"#),
                        )
                        .await;
                    assert_eq!(answer.status, 200);
                    paid += 1;
                }
            }
            // The client's own view of each order matches what it did.
            for (i, order_id) in mine.iter().enumerate() {
                let view = http.get(&format!("/v1/orders/{order_id}")).await.json();
                assert_eq!(view["status"], if i % 2 == 0 { "paid" } else { "held" });
            }
            (mine.len() as u64, paid)
        }));
    }
    let (mut held_total, mut paid_total) = (0, 0);
    for task in tasks {
        let (held, paid) = task.await.unwrap();
        held_total += held;
        paid_total += paid;
    }
    assert_eq!(held_total, 50, "all stock sold, none twice");
    let sku = http.get("/v1/skus/1").await.json();
    assert_eq!(sku["sold"].as_u64(), Some(paid_total));
    assert_eq!(sku["held"].as_u64(), Some(held_total - paid_total));
    assert_eq!(sku["available"].as_u64(), Some(0));
    server.shutdown().await;
}

/// A restart with a journal keeps what the journal says about a SKU: the catalog only creates
/// SKUs the engine does not have, so a restock made through the admin API survives the
/// restart (re-upserting the file's settings would silently undo it), and a SKU added to the
/// catalog meanwhile is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_does_not_undo_journaled_changes_on_restart() {
    use flashsale_engine::SkuConfig;
    use flashsale_engine::journal::{Durability, JournalConfig, SyncMode};
    let tmp = tempfile::tempdir().unwrap();
    let server_config = |catalog: Vec<SkuConfig>| {
        let mut config = config();
        config.engine.durability =
            Durability::Journal(JournalConfig::new(tmp.path().join("data"), SyncMode::Sync));
        config.catalog = catalog;
        config
    };
    let first = start(server_config(vec![SkuConfig::simple(1, 10, 2, 60_000)])).await;
    let http = Http::new(first.http_addr);
    let restocked = http
        .admin(Method::POST, "/v1/skus/1/restock", r#"{"delta":5}"#)
        .await;
    assert_eq!(restocked.status, 200, "{:?}", restocked.body);
    assert_eq!(http.order(1, 7, 1, 2).await.status, 201);
    first.shutdown().await;

    let second = start(server_config(vec![
        SkuConfig::simple(1, 10, 2, 60_000),
        SkuConfig::simple(2, 3, 1, 60_000),
    ]))
    .await;
    let http = Http::new(second.http_addr);
    let sku = http.get("/v1/skus/1").await.json();
    assert_eq!(sku["stock_total"], 15, "the restock survives: {sku}");
    assert_eq!(sku["held"], 2, "{sku}");
    assert_eq!(sku["available"], 13, "{sku}");
    let added = http.get("/v1/skus/2").await.json();
    assert_eq!(
        added["stock_total"], 3,
        "a new catalog sku is created: {added}"
    );
    second.shutdown().await;
}
