//! Helpers shared by the `server_*` integration tests: start an in-process server on ephemeral
//! ports and talk to it through a real HTTP client (hyper) or raw sockets.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use flashsale_server::limits::AdminToken;
use flashsale_server::{RunningServer, ServerConfig, serve};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const TOKEN: &str = "test-admin-token";

pub fn config() -> ServerConfig {
    ServerConfig {
        admin_token: AdminToken::new(Some(TOKEN.to_owned())),
        ..ServerConfig::default()
    }
}

pub async fn start(config: ServerConfig) -> RunningServer {
    serve(config).await.expect("server starts")
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The `error` code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("<none>").to_owned()
    }

    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = self.client.request(request).await.expect("http request");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.send(Method::POST, path, None, body.to_owned()).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: &str) -> Answer {
        self.send(method, path, Some(TOKEN), body.to_owned()).await
    }

    pub async fn put_sku(&self, sku_id: u32, body: &str) -> Answer {
        self.admin(Method::PUT, &format!("/v1/skus/{sku_id}"), body)
            .await
    }

    pub async fn order(&self, order_id: u64, user_id: u64, sku_id: u32, qty: u32) -> Answer {
        self.post(
            "/v1/orders",
            &format!(
                r#"{{"order_id":{order_id},"user_id":{user_id},"sku_id":{sku_id},"qty":{qty}}}"#
            ),
        )
        .await
    }
}

/// Asserts an error answer: status, code, and a detail that mentions `mentions`.
#[track_caller]
pub fn assert_error(answer: &Answer, status: u16, code: &str, mentions: &str) {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "body: {:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.code(), code, "detail: {}", answer.detail());
    assert!(
        answer.detail().contains(mentions),
        "detail {:?} should mention {mentions:?}",
        answer.detail()
    );
}

/// A TCP connection to `addr` past the binary protocol's handshake (asserted accepted).
pub async fn tcp_handshake(addr: SocketAddr) -> tokio::net::TcpStream {
    use flashsale_engine::protocol::{self, HandshakeStatus};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&protocol::client_handshake())
        .await
        .unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(
        protocol::parse_server_handshake(&answer),
        Ok(HandshakeStatus::Ok)
    );
    stream
}
