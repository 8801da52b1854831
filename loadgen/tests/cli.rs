//! The binary's handling of bad input: clear messages and a non-zero exit, never a panic.

mod support;

use support::{loadgen, steady, summary};

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, needle) in [
        (&["run", "--rate", "fast"][..], "not a rate"),
        (&["run", "--duration=0s"][..], "must be greater than zero"),
        (&["run", "--profile", "black_friday"][..], "unknown profile"),
        (&["run", "--slo", "reserve.p99<2parsecs"][..], "invalid SLO"),
        (&["run", "--slo", "errors>1%"][..], "bounded from above"),
        (
            &["run", "--slo", "reserve.rate<5k"][..],
            "bounded from below",
        ),
        (&["run", "--abort-on-fail"][..], "needs at least one --slo"),
        (&["run", "--require-valid=p101"][..], "a percentile lies in"),
        (
            &["run", "--fresh", "--run-id", "2"][..],
            "cannot be used with",
        ),
        (&["run", "--target", "ftp://x"][..], "invalid target"),
        (
            &["run", "--scenario", "/nonexistent.toml"][..],
            "cannot read scenario",
        ),
    ] {
        let ran = loadgen(args);
        let text = ran.text();
        assert_ne!(ran.code, 0, "{args:?}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}

#[test]
fn noop_run_writes_reports_and_an_slo_breach_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let ran = loadgen(
        &[
            steady("noop", "2s", "20k", out.to_str().unwrap()),
            vec!["--slo", "reserve.p99<1us"],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 3, "{}", ran.text());
    assert!(ran.stdout.contains("BREACHED"), "{}", ran.stdout);
    assert_eq!(summary(&out)["status"], "complete");
    assert!(out.join("report.html").exists());
}
