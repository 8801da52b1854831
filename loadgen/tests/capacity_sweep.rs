//! The sweep against a target with a known artificial capacity (`limited:C`: at most C
//! requests/s, the rest queued) finds C within 10%, stops climbing at the first breach, stops
//! a step that is far past the SLO, and writes sweep.json and the chart.

use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::scenario::{PROFILES, Scenario};
use flashsale_loadgen::slo::Slo;
use flashsale_loadgen::sweep::{self, SweepOptions, SweepWorkload};
use flashsale_loadgen::targets::{self, TargetOptions};
use std::path::Path;

const CAPACITY: f64 = 20_000.0;

/// The steady profile without pays or cancels: every request is a fresh reserve, so the
/// offered request rate is the scenario's rate.
fn reserves_only() -> Scenario {
    let text = PROFILES
        .iter()
        .find(|(n, _)| *n == "steady")
        .unwrap()
        .1
        .replace("pay_probability = 0.8", "pay_probability = 0.0")
        .replace("cancel_probability = 0.1", "cancel_probability = 0.0");
    Scenario::from_toml(&text).unwrap()
}

fn options(out: &Path, from: f64, to: f64, step_s: f64) -> SweepOptions {
    SweepOptions {
        workload: SweepWorkload::Scenario(Box::new(reserves_only())),
        seed: 1,
        from_rate_per_s: from,
        to_rate_per_s: to,
        step_factor: 1.6,
        step_duration_s: step_s,
        warmup_s: 0.0,
        precision: 0.04,
        max_refinements: 6,
        slos: vec![Slo::parse("reserve.p90<30ms").unwrap()],
        far_factor: 10.0,
        max_error_ratio: 0.001,
        driver: DriverConfig {
            drain_timeout_ms: 2_000,
            ..DriverConfig::default()
        },
        out_dir: out.to_path_buf(),
        step_reports: false,
        verbose: true,
        metrics: None,
    }
}

fn limited() -> Result<std::sync::Arc<dyn targets::Target>, targets::TargetError> {
    targets::from_spec(&format!("limited:{CAPACITY}"), &TargetOptions::default())
}

#[test]
fn the_sweep_finds_a_known_capacity_within_ten_percent() {
    let dir = tempfile::tempdir().unwrap();
    let result = sweep::sweep(&options(dir.path(), 4_000.0, 80_000.0, 1.5), &limited).unwrap();
    print!("{}", result.text());
    let found = result.max_offered_rate_per_s.expect("some step passed");
    assert!(
        (found - CAPACITY).abs() / CAPACITY < 0.10,
        "found {found:.0} requests/s for a capacity of {CAPACITY}"
    );
    let failing = result.first_failing_rate_per_s.expect("a step failed");
    assert!(failing > result.max_rate_per_s.unwrap());
    // Climbing stopped at the first breach: no climbing step above the first failing one.
    let first_fail = result
        .steps
        .iter()
        .find(|s| !s.passed)
        .map(|s| s.rate_per_s)
        .unwrap();
    assert!(
        result
            .steps
            .iter()
            .filter(|s| s.phase == "climb")
            .all(|s| s.rate_per_s <= first_fail)
    );
    assert!(result.steps.iter().any(|s| s.phase == "bisect"));
    // Below capacity the target keeps up; far above it, it cannot.
    for s in &result.steps {
        if s.offered_rate_per_s < 0.8 * CAPACITY {
            assert!(s.passed, "{s:?}");
        }
        if s.offered_rate_per_s > 1.2 * CAPACITY {
            assert!(!s.passed, "{s:?}");
            assert!(s.achieved_rate_per_s < 1.1 * CAPACITY, "{s:?}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(json["steps"].as_array().unwrap().len(), result.steps.len());
    assert!(json["steps"][0]["ops"]["reserve"]["corrected"]["p99_us"].is_number());
    let svg = std::fs::read_to_string(dir.path().join("sweep.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

#[test]
fn a_step_far_past_the_slo_is_stopped_early() {
    let dir = tempfile::tempdir().unwrap();
    // 3x the capacity for 8 s: latency passes 10x the SLO within the first second.
    let result = sweep::sweep(
        &options(dir.path(), 3.0 * CAPACITY, 4.0 * CAPACITY, 8.0),
        &limited,
    )
    .unwrap();
    assert_eq!(result.steps.len(), 1, "nothing above a failing first step");
    let step = &result.steps[0];
    assert!(step.aborted && !step.passed, "{step:?}");
    assert!(step.why.contains("stopped early"), "{}", step.why);
    let full = 3.0 * CAPACITY * 8.0;
    assert!(
        (step.sent as f64) < 0.6 * full,
        "sent {} of {full}",
        step.sent
    );
    assert!(result.max_rate_per_s.is_none());
    assert!(result.text().contains("below --from"));
}

#[test]
fn bad_sweeps_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), 10.0, 5.0, 1.0);
    let err = sweep::sweep(&o, &limited).unwrap_err().to_string();
    assert!(err.contains("--from <= --to"), "{err}");
    o.to_rate_per_s = 50.0;
    o.slos.clear();
    let err = sweep::sweep(&o, &limited).unwrap_err().to_string();
    assert!(err.contains("--slo"), "{err}");
}
