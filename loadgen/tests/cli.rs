//! The binary's handling of bad input: clear messages and a non-zero exit, never a panic.

use std::process::Command;

fn loadgen(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flashsale-loadgen"))
        .args(args)
        .output()
        .expect("the binary runs");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, needle) in [
        (&["run", "--rate", "fast"][..], "not a rate"),
        (&["run", "--duration=0s"][..], "duration must be > 0"),
        (&["run", "--profile", "black_friday"][..], "unknown profile"),
        (&["run", "--slo", "reserve.p99<2parsecs"][..], "invalid SLO"),
        (&["run", "--target", "ftp://x"][..], "invalid target"),
        (
            &["run", "--scenario", "/nonexistent.toml"][..],
            "cannot read scenario",
        ),
    ] {
        let (code, text) = loadgen(args);
        assert_ne!(code, 0, "{args:?}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}

#[test]
fn noop_run_writes_reports_and_an_slo_breach_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, text) = loadgen(&[
        "run",
        "--profile",
        "steady",
        "--target",
        "noop",
        "--duration",
        "2s",
        "--rate",
        "20k",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--slo",
        "reserve.p99<1us",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("BREACHED"), "{text}");
    assert!(out.join("summary.json").exists());
    assert!(out.join("report.html").exists());
}
