//! Helpers shared by the CLI tests: run the real `flashsale-loadgen` binary, small scenario
//! files, an in-process engine server, and a fake HTTP server that speaks the REST contract
//! but lies (oversells) or stops answering (an overloaded target).
#![allow(dead_code)]

use flashsale_server::limits::AdminToken;
use flashsale_server::{RunningServer, ServerConfig, serve};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "cli-test-token";

/// What a finished run of the binary said.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn text(&self) -> String {
        format!("{}{}", self.stderr, self.stdout)
    }
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flashsale-loadgen"));
    c.args(args).env("FLASHSALE_ADMIN_TOKEN", TOKEN);
    c
}

/// Runs the binary to the end.
pub fn loadgen(args: &[&str]) -> Ran {
    command(args).output().expect("the binary runs").into()
}

/// Starts the binary without waiting.
pub fn spawn(args: &[&str]) -> Child {
    command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Waits for `child` at most `limit`; kills it and panics past that.
pub fn wait(mut child: Child, limit: Duration) -> Ran {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("waiting works").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output").into()
}

/// Sends `signal` (`INT`, `TERM`) to the process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} failed");
}

/// `run --profile steady` against `target` for `duration` at `rate`, quiet, into `out`.
pub fn steady<'a>(target: &'a str, duration: &'a str, rate: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--profile",
        "steady",
        "--target",
        target,
        "--duration",
        duration,
        "--rate",
        rate,
        "--quiet",
        "--out",
        out,
    ]
}

/// A small `sweep` of `steady` against `limited:4k` (2k to 8k, 1 s steps, one refinement,
/// `reserve.p99<50ms`) into `out`: a few seconds, with passing and failing steps.
pub fn small_sweep(out: &Path) -> Ran {
    loadgen(&[
        "sweep",
        "--profile",
        "steady",
        "--target",
        "limited:4k",
        "--from",
        "2k",
        "--to",
        "8k",
        "--step-factor",
        "2",
        "--step-duration",
        "1s",
        "--warmup",
        "0",
        "--max-refinements",
        "1",
        "--slo",
        "reserve.p99<50ms",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The `steady` profile with a catalog of `skus` SKUs, `population` buyers and every other
/// line as shipped, written to `dir/steady.toml`.
pub fn small_steady(dir: &Path, skus: u32, population: u64) -> PathBuf {
    let text = flashsale_loadgen::scenario::PROFILES
        .iter()
        .find(|(n, _)| *n == "steady")
        .unwrap()
        .1
        .replace("skus = 1000", &format!("skus = {skus}"))
        .replace(
            "population = 1000000",
            &format!("population = {population}"),
        );
    assert!(
        text.contains(&format!("skus = {skus}")),
        "steady.toml changed"
    );
    let path = dir.join("steady.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json"))
        .unwrap_or_else(|e| panic!("{}/summary.json: {e}", dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// A real engine server on loopback (TCP and HTTP), with the admin token.
pub struct Server {
    pub runtime: tokio::runtime::Runtime,
    pub server: Option<RunningServer>,
}

impl Server {
    pub fn start(config: ServerConfig) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(serve(ServerConfig {
                admin_token: AdminToken::new(Some(TOKEN.to_string())),
                ..config
            }))
            .unwrap();
        Server {
            runtime,
            server: Some(server),
        }
    }

    pub fn tcp(&self) -> String {
        format!("tcp://{}", self.server.as_ref().unwrap().tcp_addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// How the fake HTTP server misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fake {
    /// Answers everything, but its SKUs report one unit more sold than they have.
    Oversells,
    /// Creates the catalog, then answers nothing once the first order arrives.
    StopsAnswering,
}

/// A fake target speaking the HTTP contract (`PUT/GET /v1/skus/{id}`, `POST /v1/orders`,
/// `POST /v1/orders/{id}/pay|cancel`), one thread per connection.
pub struct FakeHttp {
    pub addr: SocketAddr,
}

struct FakeState {
    mode: Fake,
    stock: Mutex<HashMap<u32, u64>>,
    silent: AtomicBool,
}

impl FakeHttp {
    pub fn start(mode: Fake) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            mode,
            stock: Mutex::new(HashMap::new()),
            silent: AtomicBool::new(false),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve_connection(stream, &state));
            }
        });
        FakeHttp { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve_connection(stream: TcpStream, state: &FakeState) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if state.mode == Fake::StopsAnswering && method == "POST" {
            state.silent.store(true, Ordering::Release);
        }
        if state.silent.load(Ordering::Acquire) {
            continue; // read, never answer
        }
        let (status, json) = answer(state, method, path, &body);
        let reason = if status < 300 { "OK" } else { "Not Found" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn answer(state: &FakeState, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("PUT", ["v1", "skus", id]) => {
            let id: u32 = id.parse().unwrap_or(0);
            let stock = json["stock_total"].as_u64().unwrap_or(0);
            state.stock.lock().unwrap().insert(id, stock);
            (200, sku_json(id, stock, state.mode))
        }
        ("GET", ["v1", "skus", id]) => {
            let id: u32 = id.parse().unwrap_or(0);
            match state.stock.lock().unwrap().get(&id) {
                Some(&stock) => (200, sku_json(id, stock, state.mode)),
                None => (404, r#"{"error":"unknown_sku"}"#.to_string()),
            }
        }
        ("POST", ["v1", "orders"]) => (
            201,
            order_json(
                json["order_id"].as_u64().unwrap_or(0),
                json["user_id"].as_u64().unwrap_or(0),
                json["sku_id"].as_u64().unwrap_or(0),
                json["qty"].as_u64().unwrap_or(1),
                "held",
            ),
        ),
        ("POST", ["v1", "orders", id, action]) => {
            let status = if *action == "pay" {
                "paid"
            } else {
                "cancelled"
            };
            let id = id.parse().unwrap_or(0);
            let user = json["user_id"].as_u64().unwrap_or(0);
            (200, order_json(id, user, 0, 0, status))
        }
        _ => (404, r#"{"error":"unknown_order"}"#.to_string()),
    }
}

fn sku_json(id: u32, stock: u64, mode: Fake) -> String {
    let sold = if mode == Fake::Oversells {
        stock + 1
    } else {
        0
    };
    serde_json::json!({
        "sku_id": id, "stock_total": stock, "available": 0, "held": 0, "sold": sold,
        "per_user_limit": 100, "hold_ttl_ms": 10_000,
    })
    .to_string()
}

fn order_json(order_id: u64, user_id: u64, sku_id: u64, qty: u64, status: &str) -> String {
    serde_json::json!({
        "order_id": order_id, "user_id": user_id, "sku_id": sku_id, "qty": qty,
        "status": status, "expires_at_ms": 60_000,
    })
    .to_string()
}
