//! The tcp:// and http:// targets against the real server (`flashsale_server::serve`,
//! what `flashsale-engine serve` runs), started in-process on loopback: the same double11
//! scenario, catalog created with the admin token, invariants verified over the wire.

use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::run::{self, RunIds, RunOptions, RunReport, RunSettings};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::targets::{self, TargetOptions};
use flashsale_server::limits::AdminToken;
use flashsale_server::{ServerConfig, serve};

const TOKEN: &str = "network-test-token";

fn run_against(spec: &str, token: Option<&str>) -> Result<RunReport, String> {
    let mut scenario = Scenario::profile("double11").unwrap();
    scenario.catalog.skus = 500;
    scenario.set_duration_s(3.0).unwrap();
    scenario.set_peak_rate(5_000.0).unwrap();
    let options = TargetOptions {
        connections: 8,
        admin_token: token.map(str::to_string),
        ..TargetOptions::default()
    };
    let target = targets::from_spec(spec, &options).map_err(|e| e.to_string())?;
    run::execute(RunOptions {
        scenario,
        seed: 21,
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
    .map_err(|e| e.to_string())
}

fn check(report: &RunReport) {
    let s = &report.summary;
    assert_eq!(s.send.unanswered, 0, "{:?}", s.send);
    assert!(
        s.ops["reserve"].outcomes["held"] > 2_000,
        "{:?}",
        s.outcomes
    );
    assert!(
        s.ops["pay"].outcomes.get("paid").copied().unwrap_or(0) > 100,
        "{:?}",
        s.outcomes
    );
    for bad in [
        "protocol_error",
        "transport_error",
        "timeout",
        "server_error",
    ] {
        assert!(!s.outcomes.contains_key(bad), "{bad}: {:?}", s.outcomes);
    }
    assert!(s.verdict.checked && s.verdict.passed, "{:?}", s.verdict);
    assert!(s.verdict.paid_matches_sold_checked);
    assert_eq!(s.verdict.skus_checked, 500);
}

#[test]
fn double11_over_tcp_and_http_against_the_real_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = || {
        runtime
            .block_on(serve(ServerConfig {
                admin_token: AdminToken::new(Some(TOKEN.to_string())),
                ..ServerConfig::default()
            }))
            .unwrap()
    };
    // A fresh server per transport: the same seed makes the same order ids, and against a
    // server that kept the first run's orders every reserve would be an idempotent repeat.
    let server = start();
    check(&run_against(&format!("tcp://{}", server.tcp_addr), Some(TOKEN)).unwrap());
    let err = run_against(&format!("tcp://{}", server.tcp_addr), None)
        .err()
        .unwrap();
    assert!(err.contains("FLASHSALE_ADMIN_TOKEN"), "{err}");
    let err = run_against(&format!("tcp://{}", server.tcp_addr), Some("wrong"))
        .err()
        .unwrap();
    assert!(err.contains("admin token refused"), "{err}");
    runtime.block_on(server.shutdown());

    let server = start();
    check(&run_against(&format!("http://{}", server.http_addr), Some(TOKEN)).unwrap());
    let err = run_against(&format!("http://{}", server.http_addr), Some("wrong"))
        .err()
        .unwrap();
    assert!(err.contains("401"), "{err}");
    runtime.block_on(server.shutdown());
}
