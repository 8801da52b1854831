//! The HTTP API against its own OpenAPI document, by a property-based fuzzer: schemathesis
//! (PyPI) reads `GET /openapi.json` from a live in-process server and sends it generated
//! requests, valid and invalid, for every operation (examples, coverage, fuzzing and stateful
//! phases, a fixed seed and a bounded number of cases). Every answer must be no 5xx, with a
//! documented status, content type, headers and body schema (the checks in [`CHECKS`]); the
//! server must still serve afterwards. Its reports are kept in `$CARGO_TARGET_TMPDIR/openapi-fuzz/` (JUnit XML and a
//! HAR of every request and answer).
//!
//! The executable is `$SCHEMATHESIS`, else `schemathesis` on PATH. Without it the test FAILS in
//! CI (`CI` or `FLASHSALE_REQUIRE_SCHEMATHESIS` set; `.ci/run` installs it); elsewhere it says
//! loudly that it was skipped. `FLASHSALE_OPENAPI_FUZZ_EXAMPLES` (cases per operation, 100 by
//! default) and `FLASHSALE_OPENAPI_FUZZ_SEED` (1) change the run.

mod server_support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use flashsale_core::types::SkuConfig;
use flashsale_server::ServerConfig;
use hyper::{Method, StatusCode};
use server_support::{Http, TOKEN, config, start};

/// The checks every answer must pass: no 5xx; a documented status, content type, headers and
/// body; a 405 with `Allow` for an undocumented method; 401 for an admin operation without its
/// token; a 4xx for schema-invalid input.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      unsupported_method,allow_header_conformance,ignored_auth,\
                      negative_data_rejection,missing_required_header";

/// The whole run's limit; a run with the default settings takes about 20 s on 2 cores.
const TIME_LIMIT: Duration = Duration::from_secs(110);

fn schemathesis() -> Option<String> {
    let required = std::env::var_os("CI").is_some()
        || std::env::var_os("FLASHSALE_REQUIRE_SCHEMATHESIS").is_some();
    let bin = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let found = std::process::Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            !required,
            "schemathesis is required here (CI) but `{bin}` does not run: install it with \
             `pip install schemathesis` (`.ci/run` does) or point SCHEMATHESIS at it"
        );
        eprintln!(
            "SKIPPED: `{bin}` is not installed, so the HTTP API was not fuzzed against \
             docs/openapi.yaml. Install it (`pip install schemathesis`, or a venv and \
             SCHEMATHESIS=<venv>/bin/schemathesis) to run this test; CI requires it."
        );
    }
    found.then_some(bin)
}

fn setting(name: &str, default: u64) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| value.parse::<u64>().is_ok())
        .unwrap_or_else(|| default.to_string())
}

/// A server with SKU 1, the one the document's examples order from.
fn server_config() -> ServerConfig {
    ServerConfig {
        catalog: vec![SkuConfig {
            sku_id: 1,
            stock_total: 1_000,
            per_user_limit: 2,
            hold_ttl_ms: 60_000,
            sale_start_ms: None,
            sale_end_ms: None,
            price_cents: 999,
        }],
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_conforms_to_its_openapi_document_under_fuzzing() {
    let Some(bin) = schemathesis() else { return };
    let server = start(server_config()).await;
    let reports = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openapi-fuzz");
    let _ = std::fs::remove_dir_all(&reports);
    std::fs::create_dir_all(&reports).unwrap();
    let examples = setting("FLASHSALE_OPENAPI_FUZZ_EXAMPLES", 100);
    let seed = setting("FLASHSALE_OPENAPI_FUZZ_SEED", 1);
    let mut run = tokio::process::Command::new(&bin);
    run.arg("run")
        .arg(format!("http://{}/openapi.json", server.http_addr))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .args(["--report", "junit,har", "--report-dir"])
        .arg(&reports)
        .arg("--report-junit-path")
        .arg(reports.join("junit.xml"))
        .args(["--no-color", "--output-truncate", "false"])
        // Whatever it leaves behind stays with the reports, not in the checkout.
        .current_dir(&reports)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIME_LIMIT, run.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {TIME_LIMIT:?}"))
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(reports.join("stdout.txt"), stdout.as_bytes()).unwrap();
    assert!(
        output.status.success(),
        "schemathesis found answers that do not conform to docs/openapi.yaml ({}; reports in \
         {}):\n{stdout}\n{stderr}",
        output.status,
        reports.display()
    );
    // It did test the API: every operation but the document's own appears in its report.
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap_or_default();
    let cases = junit.matches("<testcase").count();
    assert!(
        cases >= 10,
        "schemathesis ran {cases} operations:\n{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    eprintln!("{}", lines[lines.len().saturating_sub(12)..].join("\n"));

    // The server still serves: health, the document, and a full create-reserve round trip.
    let http = Http::new(server.http_addr);
    assert_eq!(http.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(http.get("/openapi.json").await.status, StatusCode::OK);
    let sku = http
        .admin(
            Method::PUT,
            "/v1/skus/4000000000",
            r#"{"stock_total":5,"per_user_limit":1,"hold_ttl_ms":60000}"#,
        )
        .await;
    assert!(sku.status.is_success(), "{:?}", sku.body);
    let order = http
        .post(
            "/v1/orders",
            r#"{"order_id":18000000000000000001,"user_id":7,"sku_id":4000000000,"qty":1}"#,
        )
        .await;
    assert!(order.status.is_success(), "{:?}", order.body);
    assert_eq!(order.json()["status"], "held");
    server.shutdown().await;
}
