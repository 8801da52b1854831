//! The capacity commands from the command line: record → info → replay → sweep as the README
//! shows them (small), and bad input as clear errors with a non-zero exit, never a panic.

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
fn record_info_replay_sweep_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("d11.fst");
    let t = trace.to_str().unwrap();
    let (code, text) = loadgen(&[
        "record",
        "--profile",
        "double11",
        "--duration",
        "2s",
        "--rate",
        "10k",
        "--out",
        t,
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("recorded double11"), "{text}");

    let (code, text) = loadgen(&["trace", "info", t]);
    assert_eq!(code, 0, "{text}");
    for needle in [
        "open-loop arrivals",
        "reserve",
        "peak",
        "duration",
        "profile = \"double11\"",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    let out = dir.path().join("replay");
    let (code, text) = loadgen(&[
        "replay",
        t,
        "--speed",
        "2",
        "--target",
        "inproc",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--slo",
        "reserve.p99<10s",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("same requests in the same order"), "{text}");
    assert!(text.contains("invariants: PASS"), "{text}");
    assert!(out.join("replay.json").exists() && out.join("report.html").exists());

    let sweep_out = dir.path().join("sweep");
    let (code, text) = loadgen(&[
        "sweep",
        "--trace",
        t,
        "--from",
        "2k",
        "--to",
        "8k",
        "--step-factor",
        "2",
        "--step-duration",
        "1s",
        "--slo",
        "reserve.p99<500ms",
        "--target",
        "noop",
        "--out",
        sweep_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("every step passed"), "{text}");
    assert!(sweep_out.join("sweep.json").exists() && sweep_out.join("sweep.svg").exists());
}

#[test]
fn bad_capacity_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.fst");
    std::fs::write(&junk, b"this is not a trace").unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "timestamp_ms,op,order_id,user_id,sku_id,qty\n1,reserve,1,1,1,1\n2,buy,2,2,2,2\n",
    )
    .unwrap();
    let out = dir.path().join("o.fst");
    let (j, c, o) = (
        junk.to_str().unwrap(),
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    for (args, needle) in [
        (vec!["trace", "info", j], "bad magic"),
        (
            vec!["trace", "info", "/nonexistent.fst"],
            "/nonexistent.fst",
        ),
        (vec!["replay", j, "--target", "noop"], "bad magic"),
        (
            vec!["trace", "import", "--csv", c, "--out", o],
            "line 3: op `buy`",
        ),
        (vec!["sweep", "--from", "1k", "--to", "2k"], "--slo"),
        (
            vec![
                "sweep",
                "--from",
                "1k",
                "--to",
                "2k",
                "--slo",
                "reserve.p99<1ms",
                "--target",
                "limited:zero",
            ],
            "invalid target",
        ),
        (vec!["replay", j, "--speed", "fast"], "invalid value"),
    ] {
        let (code, text) = loadgen(&args);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
    let (code, text) = loadgen(&["trace", "import", "--csv", c, "--out", o, "--skip-bad"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("imported 1 of 2 rows") && text.contains("line 3"),
        "{text}"
    );
}
