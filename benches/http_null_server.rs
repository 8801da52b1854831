//! The ceiling for the HTTP server: a hyper 1 server on tokio that does nothing. It reads each
//! request's body and answers a fixed `201` JSON body of the size of a real reservation answer,
//! with no routing, no engine and no metrics. It is built the way `flashsale-engine serve` is
//! (hyper http1 + tokio multi-thread + mimalloc, keep-alive, `TCP_NODELAY`), so wrk against it
//! and against the real server, interleaved, gives the ratio "how close is the server to the
//! speed of its stack" (`benches/http_vs_null.sh` runs that comparison).
//!
//! ```text
//! cargo run --release -p flashsale --example http_null_server -- 127.0.0.1:18082 [WORKERS]
//! ```
//! WORKERS is the runtime's worker count (default 2, the server's default on 2 CPUs).
//!
//! It owns nothing of the product and must not grow into a server: anything it does beyond
//! reading and answering makes the ceiling lower and the ratio flattering.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The size and shape of a real `201` answer to `POST /v1/orders`.
const ANSWER: &[u8] =
    br#"{"order_id":123456789012,"status":"held","sku_id":1,"qty":1,"expires_at_ms":3600000}"#;

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body as the real server does; a broken body still gets the fixed answer.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(ANSWER)));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("http_null_server listening on {addr}");
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer));
            // A client that hangs up mid-request is not this benchmark's concern.
            let _ = connection.await;
        });
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18082".to_string())
        .parse()
        .context("the first argument is the address to listen on, e.g. 127.0.0.1:18082")?;
    let workers: usize = match args.next() {
        Some(text) => text
            .parse()
            .context("the second argument is the number of runtime workers, e.g. 2")?,
        None => 2,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(serve(addr))
}
