//! Runs against a real engine server (started in-process, over TCP) as users run them (the
//! binary): a second run against a used server takes ids of its own and verifies what it did
//! (issue 13, goal 7), and refusals that are not business answers count as errors in the
//! gates (goal 6).

mod support;

use flashsale_server::ServerConfig;
use support::{Server, loadgen, small_steady, summary};

fn run_args<'a>(scenario: &'a str, target: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--scenario",
        scenario,
        "--target",
        target,
        "--connections",
        "4",
        "--duration",
        "2s",
        "--rate",
        "2k",
        "--quiet",
        "--out",
        out,
    ]
}

#[test]
fn a_second_run_against_the_same_server_is_verified_correctly() {
    let dir = tempfile::tempdir().unwrap();
    // Few SKUs with little stock, so both runs sell out and a mix-up would show.
    let scenario = small_steady(dir.path(), 20, 5_000);
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("units = 10000000", "units = 40");
    std::fs::write(&scenario, text).unwrap();
    let scenario = scenario.to_str().unwrap();
    let server = Server::start(ServerConfig::default());
    let target = server.tcp();
    let mut skus = Vec::new();
    for run in 0..2 {
        let out = dir.path().join(format!("run{run}"));
        let ran = loadgen(&run_args(scenario, &target, out.to_str().unwrap()));
        assert_eq!(ran.code, 0, "run {run}: {}", ran.text());
        assert!(
            ran.stdout.contains("invariants: PASS") && ran.stdout.contains("paid units == sold"),
            "run {run}: {}",
            ran.stdout
        );
        let s = summary(&out);
        assert_eq!(s["run_id"], run, "{s}");
        assert!(s["outcomes"]["sold_out"].as_u64().unwrap_or(0) > 0, "{s}");
        for bad in ["id_conflict", "invalid_restock", "unknown_sku"] {
            assert!(s["outcomes"].get(bad).is_none(), "run {run}: {bad} in {s}");
        }
        skus.push(s["ids"].as_str().unwrap().to_string());
    }
    assert!(skus[0].starts_with("SKUs 1..=20,"), "{skus:?}");
    assert!(skus[1].starts_with("SKUs 21..=40,"), "{skus:?}");
    assert_ne!(skus[0], skus[1]);

    // Asked for a fresh target, or for run id 0 again: refused, clearly, nothing overwritten.
    let out = dir.path().join("fresh");
    let ran = loadgen(
        &[
            &run_args(scenario, &target, out.to_str().unwrap())[..],
            &["--fresh"],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 1, "{}", ran.text());
    assert!(
        ran.stderr
            .contains("the target already holds SKU 1 of run id 0's catalog (SKUs 1..=20)")
            && ran
                .stderr
                .contains("--fresh wants a target that knows none of them"),
        "{}",
        ran.stderr
    );
    let ran = loadgen(
        &[
            &run_args(scenario, &target, out.to_str().unwrap())[..],
            &["--run-id", "1"],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 1, "{}", ran.text());
    assert!(
        ran.stderr.contains("SKU 21 of run id 1's catalog"),
        "{}",
        ran.stderr
    );
}

/// The server's per-user rate limit refuses nearly every request of ten buyers at 2k/s: a
/// latency threshold must not pass on the fast refusals, and the error ratio breaches.
#[test]
fn rate_limited_answers_are_errors_in_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = small_steady(dir.path(), 20, 10);
    let server = Server::start(ServerConfig {
        user_rate_limit_per_s: Some(1),
        ..ServerConfig::default()
    });
    let out = dir.path().join("r");
    let ran = loadgen(
        &[
            &run_args(
                scenario.to_str().unwrap(),
                &server.tcp(),
                out.to_str().unwrap(),
            )[..],
            &[
                "--slo",
                "reserve.p99<50ms",
                "--slo",
                "errors<0.1%",
                "--slo",
                "pay.p99<50ms",
            ],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 3, "{}", ran.text());
    let s = summary(&out);
    let limited = s["outcomes"]["rate_limited"].as_u64().unwrap();
    let reserves = s["ops"]["reserve"]["count"].as_u64().unwrap();
    assert!(limited * 10 > reserves * 9, "{s}");
    for (i, spec) in ["reserve.p99<50ms", "errors<0.1%"].iter().enumerate() {
        assert_eq!(s["slo"][i]["spec"], *spec);
        assert_eq!(s["slo"][i]["passed"], false, "{spec}: {s}");
    }
    assert!(
        s["slo"][0]["measured"].is_null(),
        "every rank of the p99 is an error: {s}"
    );
    assert!(
        ran.stdout
            .contains("slo reserve.p99<50ms: unbounded BREACHED"),
        "{}",
        ran.stdout
    );
    // The invariants still hold: a refusal changes nothing.
    assert!(ran.stdout.contains("invariants: PASS"), "{}", ran.stdout);
}
