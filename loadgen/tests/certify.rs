//! The binary as a CI job sees it (issue 13, goals 4–6): every exit status of the table in
//! `--help`, the validity verdict, an interrupted run (SIGINT / SIGTERM to the real process)
//! that still writes its whole report, an unreachable or overloaded target that still gets
//! one, and `--abort-on-fail`.

mod support;

use std::time::{Duration, Instant};
use support::{Fake, FakeHttp, Ran, loadgen, signal, small_steady, spawn, steady, summary, wait};

/// The small steady scenario against a fake HTTP target, for `duration` at 200 reserves/s.
fn against_fake(fake: &FakeHttp, dir: &std::path::Path, duration: &str, extra: &[&str]) -> Ran {
    let out = dir.join("r");
    let scenario = small_steady(dir, 20, 1_000);
    let args = [
        "run",
        "--scenario",
        scenario.to_str().unwrap(),
        "--target",
        &fake.url(),
        "--connections",
        "4",
        "--duration",
        duration,
        "--rate",
        "200",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    loadgen(&[&args[..], extra].concat())
}

#[test]
fn help_lists_the_exit_statuses_and_a_usage_error_is_2() {
    for args in [&["--help"][..], &["run", "--help"][..]] {
        let ran = loadgen(args);
        assert_eq!(ran.code, 0, "{}", ran.text());
        for line in [
            "Exit status:",
            "0    success",
            "1    error",
            "2    usage error",
            "3    an SLO breached",
            "4    an invariant violated",
            "5    the run is not valid",
            "130  interrupted by SIGINT (143: by SIGTERM)",
        ] {
            assert!(
                ran.stdout.contains(line),
                "{args:?} lacks `{line}`:\n{}",
                ran.stdout
            );
        }
    }
    for args in [&["run", "--no-such-flag"][..], &["run", "--rate"][..]] {
        assert_eq!(loadgen(args).code, 2, "{args:?}");
    }
}

#[test]
fn the_verdict_is_printed_and_require_valid_exits_5_on_a_generator_bound_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // A 5 ms pacer period sends most requests more than 1 ms late: generator-bound.
    let args = [
        steady("noop", "2s", "5k", out.to_str().unwrap()),
        vec!["--tick-us", "5000"],
    ]
    .concat();
    let ran = loadgen(&args);
    assert_eq!(ran.code, 0, "a verdict alone gates nothing: {}", ran.text());
    assert!(
        ran.stdout
            .contains("validity: GENERATOR-BOUND — send lag exceeded 1 ms for"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("are the generator's"), "{}", ran.stdout);
    let s = summary(&out);
    assert_eq!(s["validity"]["verdict"], "generator-bound");
    assert!(s["validity"]["valid_up_to_percentile"].as_f64().unwrap() < 99.0);
    assert!(
        s["validity"]["health"]["sent_over_lag_budget"]
            .as_u64()
            .unwrap()
            > 0
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("validity: GENERATOR-BOUND"));

    let ran = loadgen(&[&args[..], &["--require-valid"]].concat());
    assert_eq!(ran.code, 5, "{}", ran.text());
    let ran = loadgen(&[&args[..], &["--require-valid=p99.9"]].concat());
    assert_eq!(ran.code, 5, "{}", ran.text());
}

#[test]
fn calibrate_prints_this_machines_floor() {
    let ran = loadgen(&[
        "calibrate",
        "--profile",
        "steady",
        "--duration",
        "2s",
        "--rate",
        "5k",
        "--quiet",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.text());
    for needle in [
        "this machine's floor",
        "generator: send lag p50",
        "validity: ",
        "reserve  p50",
    ] {
        assert!(
            ran.stdout.contains(needle),
            "lacks `{needle}`: {}",
            ran.stdout
        );
    }
    let ran = loadgen(&[
        "calibrate",
        "--profile",
        "steady",
        "--duration",
        "1s",
        "--rate",
        "2k",
        "--tick-us",
        "5000",
        "--quiet",
        "--require-valid",
    ]);
    assert_eq!(ran.code, 5, "{}", ran.text());
}

/// Ctrl-C (or SIGTERM) 2 s into a 60 s run: sending stops, the run drains and writes the whole
/// report, marked interrupted; latency.hlog was being written (and flushed) all along.
#[test]
fn an_interrupted_run_writes_its_whole_report() {
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let child = spawn(&steady("inproc", "60s", "5k", out.to_str().unwrap()));
        // The hlog is flushed every interval: tail it until two intervals are in.
        let hlog = out.join("latency.hlog");
        let deadline = Instant::now() + Duration::from_secs(30);
        let intervals = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("Tag=reserve,"))
                .count()
        };
        while intervals(&std::fs::read_to_string(&hlog).unwrap_or_default()) < 2 {
            assert!(
                Instant::now() < deadline,
                "latency.hlog was not written live"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        signal(&child, sig);
        let ran = wait(child, Duration::from_secs(30));
        assert_eq!(ran.code, code, "SIG{sig}: {}", ran.text());
        assert!(ran.stdout.contains("run INTERRUPTED"), "{}", ran.stdout);
        assert!(ran.stdout.contains("invariants: PASS"), "{}", ran.stdout);
        let s = summary(&out);
        assert_eq!(s["status"], "interrupted", "{s}");
        assert!(s["send"]["interrupted"].as_bool().unwrap());
        assert!(s["elapsed_s"].as_f64().unwrap() < 30.0, "{s}");
        // 2 s into steady's 5 s ramp: some 2,000 reserves.
        assert!(s["ops"]["reserve"]["count"].as_u64().unwrap() > 500, "{s}");
        // The offered rate is over the time it ran, not over the 60 s it was meant to.
        assert!(s["offered_rate_per_s"].as_f64().unwrap() > 200.0, "{s}");
        assert_eq!(s["verdict"]["status"], "passed", "{s}");
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("run interrupted"), "report.html says nothing");
        assert!(out.join("reserve.hgrm").exists());
    }
}

#[test]
fn an_unreachable_target_exits_1_with_a_report_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // Port 1 on loopback: nothing listens.
    let ran = loadgen(&steady(
        "tcp://127.0.0.1:1",
        "1s",
        "1k",
        out.to_str().unwrap(),
    ));
    assert_eq!(ran.code, 1, "{}", ran.text());
    assert!(ran.stderr.contains("cannot connect"), "{}", ran.stderr);
    assert!(!ran.text().contains("panicked"));
    let s = summary(&out);
    assert_eq!(s["status"], "failed");
    assert!(
        s["status_detail"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{s}"
    );
    assert_eq!(s["verdict"]["status"], "incomplete");
    assert!(out.join("report.html").exists());
}

/// A target that takes the catalog, then answers nothing: every order times out and so does
/// the verification's query. The run still writes its report, the verification incomplete
/// with the reason, and exits 1 (no invariant could be checked).
#[test]
fn an_overloaded_target_still_gets_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let fake = FakeHttp::start(Fake::StopsAnswering);
    let ran = against_fake(
        &fake,
        dir.path(),
        "2s",
        &[
            "--request-timeout-ms",
            "300",
            "--drain-timeout-ms",
            "1000",
            "--slo",
            "errors<0.1%",
        ],
    );
    assert_eq!(ran.code, 1, "{}", ran.text());
    assert!(
        ran.stdout.contains("invariants: INCOMPLETE"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains("could not be verified"),
        "{}",
        ran.stderr
    );
    let s = summary(&out);
    assert_eq!(s["status"], "complete", "{s}");
    assert_eq!(s["verdict"]["status"], "incomplete", "{s}");
    assert!(
        s["verdict"]["note"]
            .as_str()
            .unwrap()
            .contains("did not answer the SKU queries"),
        "{s}"
    );
    let timeouts =
        s["outcomes"]["timeout"].as_u64().unwrap_or(0) + s["send"]["unanswered"].as_u64().unwrap();
    assert!(timeouts > 0, "{s}");
    assert_eq!(s["slo"][0]["passed"], false, "{s}");
    assert!(out.join("report.html").exists() && out.join("latency.hlog").exists());
}

#[test]
fn an_oversold_target_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let fake = FakeHttp::start(Fake::Oversells);
    // Breached too: the invariant's status wins.
    let ran = against_fake(&fake, dir.path(), "1s", &["--slo", "reserve.p50<1us"]);
    assert_eq!(ran.code, 4, "{}", ran.text());
    assert!(
        ran.stdout.contains("invariants: FAIL — 20 stock"),
        "{}",
        ran.stdout
    );
    let s = summary(&out);
    assert_eq!(s["verdict"]["status"], "violated");
    // The failing SKUs are in the page too, in red under the verdict.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<div class=\"verdict-fail\">✘ invariants: FAIL"));
    let examples = s["verdict"]["examples"].as_array().unwrap();
    assert!(!examples.is_empty(), "{s}");
    for e in examples {
        let e = e
            .as_str()
            .unwrap()
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(html.contains(&e), "{e} is not in report.html");
    }
}

#[test]
fn abort_on_fail_stops_the_run_at_the_first_breach() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let started = Instant::now();
    let ran = loadgen(
        &[
            steady("noop", "60s", "5k", out.to_str().unwrap()),
            vec!["--slo", "reserve.max<1us", "--abort-on-fail"],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 3, "{}", ran.text());
    assert!(started.elapsed() < Duration::from_secs(30), "it ran on");
    let s = summary(&out);
    assert_eq!(s["status"], "aborted", "{s}");
    assert!(
        s["status_detail"]
            .as_str()
            .unwrap()
            .contains("reserve.max<1us breached"),
        "{s}"
    );
}

#[test]
fn thresholds_name_phases_of_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let base = steady("noop", "6s", "2k", out.to_str().unwrap());
    // steady at 6 s: a 0.5 s ramp, then the plateau at 2k reserves/s (plus pays and cancels).
    let ran = loadgen(
        &[
            &base[..],
            &[
                "--slo",
                "plateau:reserve.rate>=1000",
                "--slo",
                "plateau:reserve.p99<1s",
                "--slo",
                "plateau:errors<0.1%",
            ],
        ]
        .concat(),
    );
    assert_eq!(ran.code, 0, "{}", ran.text());
    let s = summary(&out);
    assert_eq!(s["slo"][0]["window"], "plateau");
    assert!(s["slo"][0]["measured"].as_f64().unwrap() >= 1000.0, "{s}");
    let ran = loadgen(&[&base[..], &["--slo", "plateau:reserve.rate>=5k"]].concat());
    assert_eq!(ran.code, 3, "{}", ran.text());
    let ran = loadgen(&[&base[..], &["--slo", "midnight:reserve.p99<2ms"]].concat());
    assert_eq!(ran.code, 1, "{}", ran.text());
    assert!(
        ran.stderr
            .contains("the scenario's phases are ramp, plateau"),
        "{}",
        ran.stderr
    );
}
