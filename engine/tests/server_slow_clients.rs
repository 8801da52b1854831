//! Clients that send in ways that used to lose their answer (issue 12 #4): a client that writes
//! a whole oversized body before reading gets its 413 (lingering close).

mod server_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use flashsale_engine::server::ServerConfig;
use server_support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The client Python's `http.client` is: it writes the request and its whole body, then reads
/// the answer. With a body far over the limit (and over the socket buffers) the server answers
/// 413 after the headers; it must then read and drop the rest instead of closing on unread
/// data, which resets the connection and destroys the 413 before the client reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_whole_oversized_body_first_reads_the_413() {
    let server = start(config()).await;
    let addr = server.http_addr;
    let body_len = 8 << 20;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST /v1/orders HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n"
        );
        let mut request = head.into_bytes();
        request.resize(request.len() + body_len, b' ');
        let written = stream.write_all(&request);
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        (written, read, answer)
    })
    .await
    .unwrap();
    let (written, read, answer) = answer;
    let text = String::from_utf8_lossy(&answer);
    assert!(written.is_ok(), "writing the body: {written:?}");
    assert!(read.is_ok(), "reading the answer: {read:?} after {text:?}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    server.shutdown().await;
}

/// The lingering close is bounded: a client that keeps sending after the 413 is cut off once
/// the linger time is over, and its slot is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lingering_close_ends_for_a_client_that_never_stops_sending() {
    let server = start(ServerConfig {
        lingering_close_ms: 300,
        max_connections: 1,
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    stream
        .write_all(b"POST /v1/orders HTTP/1.1\r\nhost: t\r\ncontent-length: 1000000000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let chunk = vec![b' '; 64 * 1024];
    let stopped = loop {
        if stream.write_all(&chunk).await.is_err() || started.elapsed() > Duration::from_secs(5)
        {
            break started.elapsed();
        }
    };
    assert!(
        stopped < Duration::from_secs(3),
        "still accepted after {stopped:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(Http::new(server.http_addr).get("/healthz").await.status, 200);
    server.shutdown().await;
}

