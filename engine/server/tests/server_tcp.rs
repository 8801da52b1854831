//! The binary TCP protocol against an in-process server: every command through the Rust
//! client, pipelining order, admin auth, the bad-input table on raw sockets (each case answered
//! with its documented error while another client keeps being served), and a concurrent
//! hot-SKU run.

mod server_support;

use std::time::Duration;

use bytes::BytesMut;
use flashsale_engine::client::{Client, ClientError};
use flashsale_engine::protocol::{self, ErrorCode, HandshakeStatus, MAX_FRAME_LEN, Reply, Request};
use flashsale_engine::{Command, OrderStatus, Outcome, Reject, SkuConfig};
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn admin_client(addr: std::net::SocketAddr) -> Client {
    let client = Client::connect(addr).await.unwrap();
    client.authenticate(TOKEN).await.unwrap();
    client
}

/// An authenticated client that has created SKU 1 with `stock` units.
async fn admin_with_sku(
    addr: std::net::SocketAddr,
    stock: u64,
    per_user_limit: u32,
    hold_ttl_ms: u64,
) -> Client {
    let admin = admin_client(addr).await;
    admin
        .execute(Command::UpsertSku(SkuConfig::simple(
            1,
            stock,
            per_user_limit,
            hold_ttl_ms,
        )))
        .await
        .unwrap();
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_through_the_client() {
    let server = start(config()).await;
    let client = Client::connect(server.tcp_addr).await.unwrap();
    // Admin before auth: refused, connection stays usable.
    let refused = client
        .execute(Command::UpsertSku(SkuConfig::simple(1, 3, 2, 60_000)))
        .await;
    assert!(matches!(
        refused,
        Err(ClientError::Server {
            code: ErrorCode::Unauthorized,
            ..
        })
    ));
    let wrong = client.authenticate("wrong").await;
    assert!(matches!(
        wrong,
        Err(ClientError::Server {
            code: ErrorCode::Unauthorized,
            ..
        })
    ));
    client.authenticate(TOKEN).await.unwrap();
    let created = client
        .execute(Command::UpsertSku(SkuConfig::simple(1, 3, 2, 60_000)))
        .await
        .unwrap();
    assert!(matches!(created, Outcome::SkuCreated(view) if view.available == 3));
    let restocked = client
        .execute(Command::Restock {
            sku_id: 1,
            delta: 1,
        })
        .await
        .unwrap();
    assert!(matches!(restocked, Outcome::Sku(view) if view.config.stock_total == 4));
    let reserve = Command::Reserve {
        order_id: 10,
        user_id: 5,
        sku_id: 1,
        qty: 1,
    };
    let held = client.execute(reserve).await.unwrap();
    assert!(matches!(held, Outcome::Created(view) if view.status == OrderStatus::Held));
    assert!(matches!(
        client.execute(reserve).await.unwrap(),
        Outcome::Order(_)
    ));
    let paid = client
        .execute(Command::Pay {
            order_id: 10,
            user_id: 5,
        })
        .await
        .unwrap();
    assert!(matches!(paid, Outcome::Order(view) if view.status == OrderStatus::Paid));
    let not_owner = client
        .execute(Command::Cancel {
            order_id: 10,
            user_id: 6,
        })
        .await
        .unwrap();
    assert_eq!(not_owner, Outcome::Rejected(Reject::NotOwner));
    let already = client
        .execute(Command::Cancel {
            order_id: 10,
            user_id: 5,
        })
        .await
        .unwrap();
    assert_eq!(already, Outcome::Rejected(Reject::AlreadyPaid));
    let query = client
        .execute(Command::QueryOrder { order_id: 10 })
        .await
        .unwrap();
    assert!(matches!(query, Outcome::Order(view) if view.status == OrderStatus::Paid));
    let sku = client
        .execute(Command::QuerySku { sku_id: 1 })
        .await
        .unwrap();
    assert!(matches!(sku, Outcome::Sku(view) if view.sold == 1 && view.available == 3));
    let unknown = client
        .execute(Command::QueryOrder { order_id: 99 })
        .await
        .unwrap();
    assert_eq!(unknown, Outcome::Rejected(Reject::UnknownOrder));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_come_back_in_order_with_their_ids() {
    let server = start(config()).await;
    let _admin = admin_with_sku(server.tcp_addr, 1_000_000, u32::MAX, 60_000).await;
    // Raw socket: 5000 requests in one write, ids chosen by us.
    let mut stream = tcp_handshake(server.tcp_addr).await;
    let mut out = BytesMut::new();
    for i in 0..5000u32 {
        let command = Command::Reserve {
            order_id: u64::from(i),
            user_id: 1,
            sku_id: 1,
            qty: 1,
        };
        protocol::encode_request(i * 7, &Request::Command(command), &mut out);
    }
    stream.write_all(&out).await.unwrap();
    for i in 0..5000u32 {
        let (id, reply) = read_reply(&mut stream).await.unwrap();
        assert_eq!(id, i * 7);
        assert!(
            matches!(reply, Reply::Outcome(Outcome::Created(view)) if view.order_id == u64::from(i)),
            "{reply:?}"
        );
    }
    server.shutdown().await;
}

/// Reads one reply frame; `None` at a clean end of stream.
async fn read_reply(stream: &mut TcpStream) -> Option<(u32, Reply)> {
    let mut len = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .expect("reply in time");
    if read.is_err() {
        return None;
    }
    let len = u32::from_be_bytes(len);
    assert!(len <= MAX_FRAME_LEN);
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await.unwrap();
    Some(protocol::decode_reply(&body).expect("server replies decode"))
}

/// After a fatal error the server closes: the next read is the end of the stream.
async fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection should close, got {rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let server = start(config()).await;
    let _admin = admin_with_sku(server.tcp_addr, 1_000_000, u32::MAX, 60_000).await;
    // A well-behaved client keeps working throughout.
    let bystander = {
        let client = Client::connect(server.tcp_addr).await.unwrap();
        tokio::spawn(async move {
            for order_id in 0..200u64 {
                let outcome = client
                    .execute(Command::Reserve {
                        order_id,
                        user_id: 9,
                        sku_id: 1,
                        qty: 1,
                    })
                    .await
                    .unwrap();
                assert!(matches!(outcome, Outcome::Created(_)));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Wrong handshake magic: status BadMagic, then closed.
    let mut stream = TcpStream::connect(server.tcp_addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(
        protocol::parse_server_handshake(&answer),
        Ok(HandshakeStatus::BadMagic)
    );
    assert_closed(&mut stream).await;

    // Wrong version.
    let mut stream = TcpStream::connect(server.tcp_addr).await.unwrap();
    let mut hello = protocol::client_handshake();
    hello[5] = 42;
    stream.write_all(&hello).await.unwrap();
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(
        protocol::parse_server_handshake(&answer),
        Ok(HandshakeStatus::UnsupportedVersion)
    );
    assert_closed(&mut stream).await;

    // Unknown opcode: an error reply with the request's id; the connection goes on.
    let mut stream = tcp_handshake(server.tcp_addr).await;
    stream
        .write_all(&[0, 0, 0, 5, 0, 0, 0, 77, 0x7e])
        .await
        .unwrap();
    let (id, reply) = read_reply(&mut stream).await.unwrap();
    assert_eq!(id, 77);
    assert!(
        matches!(
            reply,
            Reply::Error {
                code: ErrorCode::UnknownOpcode,
                ..
            }
        ),
        "{reply:?}"
    );
    let mut out = BytesMut::new();
    protocol::encode_request(
        78,
        &Request::Command(Command::QuerySku { sku_id: 1 }),
        &mut out,
    );
    stream.write_all(&out).await.unwrap();
    let (id, reply) = read_reply(&mut stream).await.unwrap();
    assert_eq!(id, 78);
    assert!(matches!(reply, Reply::Outcome(Outcome::Sku(_))));

    let fatal_cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        // A reserve whose frame is 6 bytes too short.
        (
            "truncated frame",
            {
                let mut frame = BytesMut::new();
                protocol::encode_request(
                    5,
                    &Request::Command(Command::Reserve {
                        order_id: 1,
                        user_id: 1,
                        sku_id: 1,
                        qty: 1,
                    }),
                    &mut frame,
                );
                let mut bytes = frame.to_vec();
                bytes.truncate(bytes.len() - 6);
                let len = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
                bytes
            },
            ErrorCode::MalformedFrame,
        ),
        (
            "trailing bytes",
            {
                let mut frame = BytesMut::new();
                protocol::encode_request(
                    6,
                    &Request::Command(Command::QuerySku { sku_id: 1 }),
                    &mut frame,
                );
                let mut bytes = frame.to_vec();
                bytes.push(0);
                let len = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
                bytes
            },
            ErrorCode::MalformedFrame,
        ),
        (
            "zero-length frame",
            vec![0, 0, 0, 0],
            ErrorCode::MalformedFrame,
        ),
        (
            "4 GiB length prefix",
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            ErrorCode::FrameTooLarge,
        ),
        (
            "just over the max frame",
            (MAX_FRAME_LEN + 1).to_be_bytes().to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        // Text where a frame should be: "GET " read as a length is about 1.2 GB.
        (
            "garbage bytes (http on the tcp port)",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        // A known opcode (reserve, 3) with four bytes of its 24-byte payload.
        (
            "garbage frame",
            b"\x00\x00\x00\x09garb\x03ge!!".to_vec(),
            ErrorCode::MalformedFrame,
        ),
        (
            "bad order status in upsert flags",
            {
                let mut frame = BytesMut::new();
                protocol::encode_request(
                    8,
                    &Request::Command(Command::UpsertSku(SkuConfig::simple(1, 1, 1, 1))),
                    &mut frame,
                );
                let mut bytes = frame.to_vec();
                // The flags byte (offset: len 4 + id 4 + opcode 1 + 32 bytes of fields).
                bytes[4 + 4 + 1 + 32] = 0xff;
                bytes
            },
            ErrorCode::MalformedFrame,
        ),
    ];
    for (name, bytes, code) in fatal_cases {
        let mut stream = tcp_handshake(server.tcp_addr).await;
        stream.write_all(&bytes).await.unwrap();
        let (_, reply) = read_reply(&mut stream)
            .await
            .unwrap_or_else(|| panic!("{name}: no reply"));
        assert!(
            matches!(&reply, Reply::Error { code: got, .. } if *got == code),
            "{name}: {reply:?}"
        );
        assert_closed(&mut stream).await;
    }

    // Random garbage and a frame cut off by the client's close: no reply needed, no harm done.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let mut stream = tcp_handshake(server.tcp_addr).await;
        let garbage: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = stream.write_all(&garbage).await;
        drop(stream);
    }
    let mut stream = tcp_handshake(server.tcp_addr).await;
    stream
        .write_all(&[0, 0, 0, 29, 0, 0, 0, 1, 3, 0, 0])
        .await
        .unwrap();
    drop(stream);

    bystander.await.unwrap();
    let check = Client::connect(server.tcp_addr).await.unwrap();
    let sku = check
        .execute(Command::QuerySku { sku_id: 1 })
        .await
        .unwrap();
    assert!(
        matches!(&sku, Outcome::Sku(view) if view.held == 200),
        "{sku:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_answers_busy_handshake() {
    let server = start(flashsale_server::ServerConfig {
        max_connections: 1,
        ..config()
    })
    .await;
    let first = Client::connect(server.tcp_addr).await.unwrap();
    let second = Client::connect(server.tcp_addr).await;
    assert!(matches!(
        second,
        Err(ClientError::Handshake(HandshakeStatus::Busy))
    ));
    assert!(first.execute(Command::QuerySku { sku_id: 1 }).await.is_ok());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let server = start(flashsale_server::ServerConfig {
        idle_timeout_ms: 200,
        header_read_timeout_ms: 200,
        ..config()
    })
    .await;
    // Silent before the handshake.
    let mut silent = TcpStream::connect(server.tcp_addr).await.unwrap();
    assert_closed(&mut silent).await;
    // Silent after it.
    let mut idle = tcp_handshake(server.tcp_addr).await;
    assert_closed(&mut idle).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_over_tcp() {
    let server = start(flashsale_server::ServerConfig {
        user_rate_limit_per_s: Some(3),
        ..config()
    })
    .await;
    let admin = admin_with_sku(server.tcp_addr, 100, 100, 60_000).await;
    let commands = (0..5u64)
        .map(|order_id| Command::Reserve {
            order_id,
            user_id: 4,
            sku_id: 1,
            qty: 1,
        })
        .collect();
    let replies = admin.execute_batch(commands).await.unwrap();
    let limited = replies
        .iter()
        .filter(|r| {
            matches!(
                r,
                Reply::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            )
        })
        .count();
    assert_eq!(limited, 2, "{replies:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_one_hot_sku_never_oversell() {
    let server = start(config()).await;
    let admin = admin_with_sku(server.tcp_addr, 1000, u32::MAX, 600_000).await;
    let mut tasks = Vec::new();
    for client_no in 0..8u64 {
        let addr = server.tcp_addr;
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(addr).await.unwrap();
            let mut inflight = Vec::new();
            for batch in 0..5u64 {
                let client = client.clone();
                inflight.push(tokio::spawn(async move {
                    let commands = (0..100u64)
                        .map(|i| Command::Reserve {
                            order_id: client_no * 1_000_000 + batch * 1000 + i,
                            user_id: client_no,
                            sku_id: 1,
                            qty: 1,
                        })
                        .collect();
                    client.execute_batch(commands).await.unwrap()
                }));
            }
            let mut mine = Vec::new();
            for task in inflight {
                for reply in task.await.unwrap() {
                    match reply {
                        Reply::Outcome(Outcome::Created(view)) => mine.push(view.order_id),
                        Reply::Outcome(Outcome::Rejected(Reject::SoldOut)) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            for order_id in &mine {
                let view = client.execute(Command::QueryOrder { order_id: *order_id }).await.unwrap();
                assert!(matches!(view, Outcome::Order(v) if v.user_id == client_no && v.status == OrderStatus::Held));
            }
            mine.len() as u64
        }));
    }
    let mut held = 0;
    for task in tasks {
        held += task.await.unwrap();
    }
    assert_eq!(held, 1000);
    let sku = admin
        .execute(Command::QuerySku { sku_id: 1 })
        .await
        .unwrap();
    assert!(matches!(sku, Outcome::Sku(view) if view.held == 1000 && view.available == 0));
    server.shutdown().await;
}
