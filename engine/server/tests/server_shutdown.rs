//! Graceful shutdown: in-flight HTTP and TCP requests are answered before the server stops,
//! and the real binary exits 0 on SIGTERM.

mod server_support;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use flashsale_engine::client::Client;
use flashsale_engine::{Command, Outcome, SkuConfig};
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_answered() {
    let server = start(config()).await;
    let http = Http::new(server.http_addr);
    assert_eq!(
        http.put_sku(
            1,
            r#"{"stock_total":10,"per_user_limit":10,"hold_ttl_ms":60000}"#
        )
        .await
        .status,
        201
    );
    let tcp = Client::connect(server.tcp_addr).await.unwrap();
    // An HTTP request whose body is still arriving when shutdown starts.
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let body = br#"{"order_id":1,"user_id":1,"sku_id":1,"qty":1}"#;
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let handle = server.shutdown_handle();
    let stopped = tokio::spawn(server.wait());
    handle.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopped.is_finished(),
        "the server waits for the in-flight request"
    );

    stream.write_all(&body[10..]).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\"held\""), "{answer}");
    // The TCP connection that was open is closed cleanly, not answered with garbage.
    let after = tcp.execute(Command::QuerySku { sku_id: 1 }).await;
    assert!(after.is_err() || matches!(after, Ok(Outcome::Sku(_))));
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("server stops after draining")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_batches_read_before_shutdown_are_answered() {
    let server = start(config()).await;
    let admin = Client::connect(server.tcp_addr).await.unwrap();
    admin.authenticate(TOKEN).await.unwrap();
    admin
        .execute(Command::UpsertSku(SkuConfig::simple(
            1,
            1_000_000,
            u32::MAX,
            60_000,
        )))
        .await
        .unwrap();
    let client = Client::connect(server.tcp_addr).await.unwrap();
    let mut batches = Vec::new();
    for batch in 0..20u64 {
        let client = client.clone();
        batches.push(tokio::spawn(async move {
            let commands = (0..500u64)
                .map(|i| Command::Reserve {
                    order_id: batch * 1000 + i,
                    user_id: 1,
                    sku_id: 1,
                    qty: 1,
                })
                .collect();
            client.execute_batch(commands).await
        }));
    }
    // Give the server time to read everything, then stop it while it is still answering.
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.shutdown().await;
    let mut answered = 0;
    for batch in batches {
        if let Ok(replies) = batch.await.unwrap() {
            assert_eq!(replies.len(), 500);
            answered += replies.len();
        }
    }
    assert!(answered > 0, "batches sent before shutdown were answered");
}

#[test]
fn the_binary_exits_zero_on_sigterm() {
    let mut child = Process::new(env!("CARGO_BIN_EXE_flashsale-engine"))
        .args(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
        .env("FLASHSALE_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut http_addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        assert!(!line.contains(TOKEN), "the token must never be logged");
        if line.contains("ready") {
            http_addr = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("http="))
                .map(str::to_owned);
            break;
        }
    }
    let http_addr: std::net::SocketAddr = http_addr
        .expect("ready line names the http address")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = Http::new(http_addr);
        assert_eq!(http.get("/healthz").await.status, 200);
    });
    let status = Process::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    for line in lines {
        assert!(!line.unwrap().contains(TOKEN));
    }
}
