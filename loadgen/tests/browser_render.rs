//! report.html and sweep.svg as a browser shows them: a real run's report and a real sweep's
//! chart rendered by headless Chromium (Debian's `chromium`). A document the browser cannot
//! parse fails the test (an SVG with an XML error renders as Chromium's `parsererror` page),
//! and the screenshots are kept as test artefacts in
//! `$CARGO_TARGET_TMPDIR/browser-render/` (report.png, sweep.png) for a person to look at.
//! Without `chromium` on PATH the test FAILS in CI (`CI` or `FLASHSALE_REQUIRE_CHROMIUM` set;
//! `.ci/run` installs it); elsewhere it says loudly that it was skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{loadgen, small_sweep, steady};

fn chromium() -> Option<&'static str> {
    let required = std::env::var_os("CI").is_some()
        || std::env::var_os("FLASHSALE_REQUIRE_CHROMIUM").is_some();
    let found = ["chromium", "chromium-browser"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            !required,
            "chromium is required here (CI): install it with `apt-get install -y chromium`"
        );
        eprintln!(
            "SKIPPED: `chromium` is not installed, so report.html and sweep.svg were not rendered. \
             Install it (`apt-get install -y chromium`) to run this test; CI requires it."
        );
    }
    found
}

/// Runs headless Chromium on `page` with `args`, at most 90 s; returns its stdout (through a
/// file: a DOM dump outgrows a pipe's buffer).
fn browse(bin: &str, page: &Path, profile: &Path, args: &[String]) -> String {
    let stdout = profile.join("stdout");
    let stderr = profile.join("stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish rendering {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium on {}: {}",
        page.display(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout).unwrap()
}

/// Renders `page`: its DOM as the browser parsed it, and a screenshot kept at `png`.
fn render(bin: &str, page: &Path, png: &Path, size: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let dom = browse(bin, page, profile.path(), &["--dump-dom".to_string()]);
    assert!(
        !dom.contains("parsererror") && !dom.contains("This page contains the following errors"),
        "{} does not parse: {dom}",
        page.display()
    );
    browse(
        bin,
        page,
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={size}"),
        ],
    );
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        png.display()
    );
    dom
}

#[test]
fn report_html_and_sweep_svg_render_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-render");
    std::fs::create_dir_all(&artefacts).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let out = dir.path().join("run");
    let mut args = steady("noop", "3s", "20k", out.to_str().unwrap());
    args.extend(["--slo", "reserve.p99<1us", "--slo", "reserve.rate>=100"]);
    let ran = loadgen(&args);
    assert_eq!(ran.code, 3, "{}", ran.text());
    let dom = render(
        bin,
        &out.join("report.html"),
        &artefacts.join("report.png"),
        "1000,2400",
    );
    assert_eq!(dom.matches("<svg").count(), 4, "four charts in the DOM");
    assert!(dom.contains("class=\"verdicts\""), "{dom}");

    let sweep = dir.path().join("sweep");
    let ran = small_sweep(&sweep);
    assert!(ran.code == 0 || ran.code == 3, "{}", ran.text());
    let dom = render(
        bin,
        &sweep.join("sweep.svg"),
        &artefacts.join("sweep.png"),
        "920,800",
    );
    assert!(dom.contains("capacity"), "{dom}");
    eprintln!("screenshots: {}", artefacts.display());
}
