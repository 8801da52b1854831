//! `/metrics` as an operator scrapes it from a live server: every HTTP answer counted by route
//! and status (404/405/408/413 included), the 1-2-5 latency ladder, build info, capacities next
//! to depths, the per-SKU gauge limit, `promtool check metrics` when it is installed, and the
//! Grafana dashboard in docs/grafana naming only metrics the server exports.

mod server_support;

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::Method;
use server_support::{Http, config, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SKU: &str = r#"{"stock_total":10,"per_user_limit":5,"hold_ttl_ms":60000}"#;

async fn scrape(http: &Http) -> String {
    String::from_utf8_lossy(&http.get("/metrics").await.body).into_owned()
}

/// The sample names in an exposition (`name{labels} value` or `name value`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The value of the one sample written exactly as `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Sends raw bytes and returns the status line of the answer.
async fn raw_status(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_answer_is_counted_by_route_template_and_status() {
    let server = start(flashsale_server::ServerConfig {
        body_read_timeout_ms: 100,
        max_body_bytes: 1024,
        ..config()
    })
    .await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.put_sku(7, SKU).await.status, 201);
    assert_eq!(http.order(1, 1, 7, 1).await.status, 201);
    assert_eq!(http.get("/v1/orders/1").await.status, 200);
    assert_eq!(http.get("/no/such/path/42").await.status, 404);
    assert_eq!(http.get("/v1/orders/999").await.status, 404);
    assert_eq!(
        http.send(Method::DELETE, "/v1/orders/1", None, "")
            .await
            .status,
        405
    );
    assert_eq!(http.post("/v1/orders", &"x".repeat(2048)).await.status, 413);
    let slow = raw_status(
        server.http_addr,
        "POST /v1/orders HTTP/1.1\r\nhost: t\r\ncontent-length: 40\r\n\r\n{",
    )
    .await;
    assert!(slow.contains(" 408 "), "{slow}");
    let garbage = raw_status(server.http_addr, "NOT A REQUEST\r\n\r\n").await;
    assert!(garbage.contains(" 400 "), "{garbage}");
    // hyper counts its own answer once the connection ends.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = scrape(&http).await;
    for (series, expected) in [
        (r#"{route="/v1/skus/{sku_id}",status="201"}"#, 1.0),
        (r#"{route="/v1/orders",status="201"}"#, 1.0),
        (r#"{route="/v1/orders/{order_id}",status="200"}"#, 1.0),
        (r#"{route="/v1/orders/{order_id}",status="404"}"#, 1.0),
        (r#"{route="/v1/orders/{order_id}",status="405"}"#, 1.0),
        (r#"{route="unmatched",status="404"}"#, 1.0),
        (r#"{route="/v1/orders",status="413"}"#, 1.0),
        (r#"{route="/v1/orders",status="408"}"#, 1.0),
        (r#"{route="unparsed",status="400"}"#, 1.0),
    ] {
        let series = format!("flashsale_http_responses_total{series}");
        assert_eq!(value(&text, &series), Some(expected), "{series} in\n{text}");
    }
    assert!(!text.contains("/no/such/path"), "a raw path became a label");
    // The ladder: 10 µs .. 10 s, 1-2-5.
    for le in [
        "0.00001", "0.00002", "0.00005", "0.0001", "0.5", "1", "2", "5", "10",
    ] {
        let bucket = format!(
            "flashsale_request_duration_seconds_bucket{{transport=\"http\",op=\"reserve\",le=\"{le}\"}}"
        );
        assert!(value(&text, &bucket).is_some(), "{bucket} in\n{text}");
    }
    assert!(text.contains(&format!(
        "flashsale_build_info{{version=\"{}\",",
        env!("CARGO_PKG_VERSION")
    )));
    let shards = server.engine().shard_count();
    for shard in 0..shards {
        assert!(
            value(
                &text,
                &format!("flashsale_shard_queue_depth{{shard=\"{shard}\"}}")
            )
            .is_some()
        );
        let capacity = value(
            &text,
            &format!("flashsale_shard_queue_capacity{{shard=\"{shard}\"}}"),
        );
        assert_eq!(
            capacity,
            Some(config().engine.queue_capacity_batches as f64)
        );
        let table = value(
            &text,
            &format!("flashsale_order_table_capacity{{shard=\"{shard}\"}}"),
        );
        assert_eq!(
            table,
            Some(config().engine.orders_capacity_per_shard as f64)
        );
    }
    assert_eq!(
        value(&text, r#"flashsale_durability_mode{mode="memory"}"#),
        Some(1.0)
    );
    promtool_accepts(&text);
    server.shutdown().await;
}

/// `promtool check metrics` reports nothing (skipped where promtool is not installed).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sku_gauges_stop_at_the_configured_limit() {
    let server = start(flashsale_server::ServerConfig {
        metrics_sku_limit: 2,
        ..config()
    })
    .await;
    let http = Http::new(server.http_addr);
    for sku in [5, 1, 9] {
        assert_eq!(http.put_sku(sku, SKU).await.status, 201);
    }
    let text = scrape(&http).await;
    let ids: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("flashsale_sku_stock_units{sku_id=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "5"]), "{text}");
    assert_eq!(value(&text, "flashsale_skus"), Some(3.0));
    server.shutdown().await;
}

/// Every metric the dashboard's expressions name, in every panel, is one a live server exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_names_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/flashsale.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file")).unwrap();
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(http.put_sku(1, SKU).await.status, 201);
    assert_eq!(http.order(1, 1, 1, 1).await.status, 201);
    let exported = sample_names(&scrape(&http).await);
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut checked = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "panel {title}: `{expr}` names no metric");
            for name in names {
                assert!(
                    exported.contains(&name),
                    "panel {title}: `{name}` is not exported; exported: {exported:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10);
    server.shutdown().await;
}

/// The `flashsale_…` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("flashsale_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
