//! The HTTP target against a stand-in server that speaks the documented HTTP/JSON contract over
//! an embedded engine (the real `flashsale-engine serve` is built elsewhere). It checks the
//! target's request shapes, answer mapping, keep-alive pool, catalog setup with the admin
//! token, and the after-run verification over HTTP.

use flashsale_engine::{
    Command, Engine, EngineConfig, OrderView, Outcome, Reject, SkuConfig, SkuView,
};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::run::{self, RunIds, RunOptions, RunSettings};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::targets::{self, TargetOptions};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const TOKEN: &str = "test-admin-token";

fn order_json(v: &OrderView) -> Value {
    json!({"order_id": v.order_id, "user_id": v.user_id, "sku_id": v.sku_id, "qty": v.qty,
           "status": v.status.name(), "expires_at_ms": v.expires_at_ms})
}

fn sku_json(v: &SkuView) -> Value {
    json!({"sku_id": v.config.sku_id, "stock_total": v.config.stock_total, "available": v.available,
           "held": v.held, "sold": v.sold, "per_user_limit": v.config.per_user_limit,
           "hold_ttl_ms": v.config.hold_ttl_ms, "price_cents": v.config.price_cents})
}

fn reject_status(r: Reject) -> u16 {
    match r {
        Reject::UnknownSku | Reject::UnknownOrder => 404,
        Reject::InvalidQty | Reject::InvalidSku | Reject::InvalidRestock => 400,
        Reject::NotOwner => 403,
        Reject::Busy => 503,
        _ => 409,
    }
}

fn answer(outcome: Outcome) -> (u16, Value) {
    match outcome {
        Outcome::Created(v) => (201, order_json(&v)),
        Outcome::Order(v) => (200, order_json(&v)),
        Outcome::SkuCreated(v) => (201, sku_json(&v)),
        Outcome::Sku(v) => (200, sku_json(&v)),
        Outcome::Rejected(r) => (reject_status(r), json!({"error": r.code(), "detail": "x"})),
    }
}

fn route(
    engine: &Engine,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let u = |k: &str| body[k].as_u64();
    match (method, parts.as_slice()) {
        ("PUT", ["v1", "skus", id]) => {
            if auth != Some(&format!("Bearer {TOKEN}")) {
                return (401, json!({"error": "unauthorized", "detail": ""}));
            }
            let config = SkuConfig {
                sku_id: id.parse().unwrap(),
                stock_total: u("stock_total").unwrap(),
                per_user_limit: u("per_user_limit").unwrap() as u32,
                hold_ttl_ms: u("hold_ttl_ms").unwrap(),
                sale_start_ms: u("sale_start_ms"),
                sale_end_ms: u("sale_end_ms"),
                price_cents: u("price_cents").unwrap_or(0),
            };
            answer(engine.execute(Command::UpsertSku(config)))
        }
        ("GET", ["v1", "skus", id]) => answer(engine.execute(Command::QuerySku {
            sku_id: id.parse().unwrap(),
        })),
        ("POST", ["v1", "orders"]) => answer(engine.execute(Command::Reserve {
            order_id: u("order_id").unwrap(),
            user_id: u("user_id").unwrap(),
            sku_id: u("sku_id").unwrap() as u32,
            qty: u("qty").unwrap() as u32,
        })),
        ("POST", ["v1", "orders", id, action]) => {
            let (order_id, user_id) = (id.parse().unwrap(), u("user_id").unwrap());
            let command = if *action == "pay" {
                Command::Pay { order_id, user_id }
            } else {
                Command::Cancel { order_id, user_id }
            };
            answer(engine.execute(command))
        }
        _ => (404, json!({"error": "not_found", "detail": path})),
    }
}

fn serve_connection(engine: Engine, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, path) = (
            it.next().unwrap_or("").to_string(),
            it.next().unwrap_or("").to_string(),
        );
        let (mut length, mut auth) = (0usize, None);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let (status, value) = route(&engine, &method, &path, auth.as_deref(), &body);
        let text = value.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn start_server() -> (String, Engine) {
    let engine = Engine::start(EngineConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let e = engine.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let e = e.clone();
            std::thread::spawn(move || serve_connection(e, stream));
        }
    });
    (addr, engine)
}

#[test]
fn double11_over_http_verifies_and_maps_answers() {
    let (addr, engine) = start_server();
    let mut scenario = Scenario::profile("double11").unwrap();
    scenario.catalog.skus = 200;
    scenario.set_duration_s(3.0).unwrap();
    scenario.set_peak_rate(2_000.0).unwrap();
    let options = TargetOptions {
        connections: 16,
        admin_token: Some(TOKEN.into()),
        ..TargetOptions::default()
    };
    let target = targets::from_spec(&addr, &options).unwrap();
    let report = run::execute(RunOptions {
        scenario,
        seed: 3,
        settings: RunSettings {
            target,
            out_dir: None,
            slos: vec![],
            driver: DriverConfig::default(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .unwrap();
    let s = &report.summary;
    assert_eq!(s.send.unanswered, 0, "{:?}", s.send);
    assert!(
        s.ops["reserve"].outcomes["held"] > 1_000,
        "{:?}",
        s.outcomes
    );
    assert!(
        !s.outcomes.contains_key("protocol_error"),
        "{:?}",
        s.outcomes
    );
    assert!(
        !s.outcomes.contains_key("transport_error"),
        "{:?}",
        s.outcomes
    );
    assert!(s.ops["pay"].count > 0);
    assert!(s.verdict.checked && s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.verdict.skus_checked, 200);
    engine.shutdown();
}

#[test]
fn missing_token_and_dead_server_are_clear_errors() {
    let (addr, engine) = start_server();
    let scenario = Scenario::profile("steady").unwrap();
    let no_token = targets::from_spec(&addr, &TargetOptions::default()).unwrap();
    let err = run::execute(RunOptions {
        scenario: scenario.clone(),
        seed: 1,
        settings: RunSettings {
            target: no_token,
            out_dir: None,
            slos: vec![],
            driver: DriverConfig::default(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("FLASHSALE_ADMIN_TOKEN"), "{err}");
    let wrong = TargetOptions {
        admin_token: Some("nope".into()),
        ..TargetOptions::default()
    };
    let t = targets::from_spec(&addr, &wrong).unwrap();
    let err = t
        .setup(&[SkuConfig::simple(1, 10, 1, 1000)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
    // Nothing listens on port 9 of loopback.
    let dead = targets::from_spec(
        "http://127.0.0.1:9",
        &TargetOptions {
            admin_token: Some(TOKEN.into()),
            ..TargetOptions::default()
        },
    )
    .unwrap();
    let err = dead
        .setup(&[SkuConfig::simple(1, 10, 1, 1000)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("SKU 1"), "{err}");
    engine.shutdown();
}
