//! Clients that send in ways that used to lose their answer or pin a connection (issue 12 #4,
//! #5): a client that writes a whole oversized body before reading gets its 413 (lingering
//! close), and a client that trickles a TCP frame, HTTP headers or an HTTP body byte by byte
//! is cut off by a deadline counted from the start, not kept alive by each byte. Deadlines are
//! shortened through the server config so the tests take a second, not minutes.

mod server_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flashsale_engine::protocol::{self, Reply, Request};
use flashsale_engine::{Command, Outcome, Reject};
use flashsale_server::ServerConfig;
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The shortened deadline of these tests.
const DEADLINE_MS: u64 = 400;
/// The pause between two bytes of a trickling client: each byte alone would keep an idle
/// timeout from firing.
const TRICKLE: Duration = Duration::from_millis(60);

fn slow_client_config() -> ServerConfig {
    ServerConfig {
        header_read_timeout_ms: DEADLINE_MS,
        body_read_timeout_ms: DEADLINE_MS,
        idle_timeout_ms: 60_000,
        ..config()
    }
}

/// Writes `bytes` one at a time, `TRICKLE` apart, until the server closes the connection (or
/// they are all sent); returns when it stopped and how many bytes went out.
async fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> (Instant, usize) {
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            return (Instant::now(), sent);
        }
        tokio::time::sleep(TRICKLE).await;
        // A closed connection shows as a readable end of stream (or a reset).
        let mut probe = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (Instant::now(), sent + 1),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    (Instant::now(), bytes.len())
}

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
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
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
        if stream.write_all(&chunk).await.is_err() || started.elapsed() > Duration::from_secs(5) {
            break started.elapsed();
        }
    };
    assert!(
        stopped < Duration::from_secs(3),
        "still accepted after {stopped:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        Http::new(server.http_addr).get("/healthz").await.status,
        200
    );
    server.shutdown().await;
}

/// A TCP frame must be whole within the header timeout of its first byte: sending one byte at
/// a time keeps the connection from being idle, not the frame from being late. The client is
/// disconnected without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_frame_trickled_byte_by_byte_is_cut_off_at_its_deadline() {
    let server = start(slow_client_config()).await;
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let started = Instant::now();
    let frame = query_frame(9);
    let (stopped, sent) = trickle(&mut stream, &frame).await;
    let took = stopped - started;
    assert!(
        sent < frame.len(),
        "the whole frame was accepted byte by byte over {took:?}"
    );
    assert!(
        took >= Duration::from_millis(DEADLINE_MS - 50) && took < Duration::from_secs(2),
        "cut off after {took:?}, the deadline is {DEADLINE_MS} ms"
    );
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(
        rest.is_empty(),
        "no answer to a frame never completed: {rest:?}"
    );
    server.shutdown().await;
}

/// The frame deadline counts from a frame's first byte, not from the last answer: a client
/// may be quiet longer than it (up to the idle timeout) and then send, and a frame that comes
/// in two reads within the deadline is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tcp_client_and_a_frame_split_in_time_are_served() {
    let server = start(slow_client_config()).await;
    let mut stream = tcp_handshake(server.tcp_addr).await;
    tokio::time::sleep(Duration::from_millis(DEADLINE_MS * 2)).await;
    let frame = query_frame(1);
    stream.write_all(&frame[..7]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(DEADLINE_MS / 4)).await;
    stream.write_all(&frame[7..]).await.unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(
        protocol::decode_reply(&body).unwrap(),
        (1, Reply::Outcome(Outcome::Rejected(Reject::UnknownOrder)))
    );
    server.shutdown().await;
}

/// HTTP headers trickled byte by byte: closed at the header timeout counted from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_trickled_byte_by_byte_are_cut_off_at_their_deadline() {
    let server = start(slow_client_config()).await;
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    let started = Instant::now();
    let request =
        b"GET /healthz HTTP/1.1\r\nhost: trickle.example\r\nx-padding: 0123456789\r\n\r\n";
    let (stopped, sent) = trickle(&mut stream, request).await;
    let took = stopped - started;
    assert!(
        sent < request.len(),
        "headers accepted byte by byte over {took:?}"
    );
    assert!(
        took >= Duration::from_millis(DEADLINE_MS - 50) && took < Duration::from_secs(2),
        "cut off after {took:?}, the deadline is {DEADLINE_MS} ms"
    );
    server.shutdown().await;
}

/// An HTTP body trickled byte by byte: answered 408 at the body timeout counted from the start
/// of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_body_trickled_byte_by_byte_is_answered_408_at_its_deadline() {
    let server = start(slow_client_config()).await;
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    let body = br#"{"order_id":1,"user_id":1,"sku_id":1,"qty":1}"#;
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in body {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            break;
        }
        tokio::time::sleep(TRICKLE).await;
        let mut chunk = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut chunk)).await
        {
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "after {took:?}: {text:?}");
    assert!(
        took < Duration::from_secs(2),
        "answered after {took:?}, the deadline is {DEADLINE_MS} ms"
    );
    server.shutdown().await;
}

fn query_frame(request_id: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol::encode_request(
        request_id,
        &Request::Command(Command::QueryOrder { order_id: 42 }),
        &mut out,
    );
    out.to_vec()
}
