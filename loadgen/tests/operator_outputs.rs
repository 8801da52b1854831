//! What operators' tools read, from the real binary: summary.json, intervals.jsonl and
//! sweep.json carry exactly the fields docs/report-schema.md names; intervals.jsonl is written
//! as the run goes, adds up to the summary and survives an interrupted or killed run; the
//! `--metrics-addr` endpoint is scraped during a run, in the Prometheus text format, and its
//! counters grow; report.html and sweep.svg put the verdicts first, draw the thresholds, keep
//! legends off the data and label ticks readably.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{loadgen, signal, small_sweep, spawn, steady, summary, wait};

const OPS: [&str; 3] = ["reserve", "pay", "cancel"];

fn schema_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report-schema.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of the table(s) under `## <heading>` (or `### <heading>`): (field, type).
fn rows(doc: &str, heading: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            inside = h.trim() == heading;
            continue;
        }
        if inside && line.starts_with("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let field = cells[1].trim_matches('`').to_string();
            out.push((field, cells[2].to_string()));
        }
    }
    assert!(
        !out.is_empty(),
        "docs/report-schema.md has no table under {heading}"
    );
    out
}

/// The documented fields of a file: (required, optional). A row typed as a linked table
/// (`[percentiles](#percentiles)`) stands for that table's fields under it.
fn documented(doc: &str, heading: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut required, mut optional) = (BTreeSet::new(), BTreeSet::new());
    for (field, kind) in rows(doc, heading) {
        let mut fields = vec![field.clone()];
        if let Some(anchor) = kind.split("](#").nth(1) {
            let table = anchor.trim_end_matches(')').replace('-', " ");
            for (sub, _) in rows(doc, &table) {
                fields.push(format!("{field}.{sub}"));
            }
        }
        let set = if kind.contains("optional") {
            &mut optional
        } else {
            &mut required
        };
        set.extend(fields);
    }
    (required, optional)
}

/// Every path in `value`: objects' keys dotted (the keys of `ops` maps as `<op>`, of
/// `outcomes` maps as `<code>`), arrays' elements as `[]` (scalar elements not listed).
fn paths(value: &Value, prefix: &str, parent_key: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = match parent_key {
                    "ops" => "<op>",
                    "outcomes" => "<code>",
                    _ => key.as_str(),
                };
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                paths(v, &path, key, out);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object() || i.is_array()) {
                paths(item, &format!("{prefix}[]"), "", out);
            }
        }
        _ => {}
    }
}

/// Fails unless `value` has every required field of the doc's `heading` and no field the doc
/// does not name.
fn assert_matches_doc(value: &Value, heading: &str) {
    let (required, optional) = documented(&schema_doc(), heading);
    let mut actual = BTreeSet::new();
    paths(value, "", "", &mut actual);
    let undocumented: Vec<_> = actual
        .iter()
        .filter(|p| !required.contains(*p) && !optional.contains(*p))
        .collect();
    let missing: Vec<_> = required.difference(&actual).collect();
    assert!(
        undocumented.is_empty(),
        "{heading}: fields docs/report-schema.md does not name: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "{heading}: documented fields the output lacks: {missing:?}"
    );
}

fn lines_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    complete_lines(&text)
}

/// Parses every line; panics on a line that is not a whole JSON object, or a last line
/// without its newline.
fn complete_lines(text: &str) -> Vec<Value> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a partial last line: {:?}",
        text.lines().last()
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Per op: (achieved, outcome counts, offered) summed over the lines.
fn sums(lines: &[Value]) -> BTreeMap<String, (u64, BTreeMap<String, u64>, u64)> {
    let mut out: BTreeMap<String, (u64, BTreeMap<String, u64>, u64)> = BTreeMap::new();
    for line in lines {
        let entry = out
            .entry(line["op"].as_str().unwrap().to_string())
            .or_default();
        entry.0 += line["achieved"].as_u64().unwrap();
        entry.2 += line["offered"].as_u64().unwrap();
        for (code, n) in line["outcomes"].as_object().unwrap() {
            *entry.1.entry(code.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    out
}

/// The lines come in intervals of one line per op, in op order, one second apart; their
/// answers add up to the summary's, op by op and code by code.
fn assert_lines_add_up(lines: &[Value], s: &Value) {
    assert!(!lines.is_empty());
    assert!(lines.len().is_multiple_of(3), "{} lines", lines.len());
    for (i, interval) in lines.chunks(3).enumerate() {
        for (line, op) in interval.iter().zip(OPS) {
            assert_eq!(line["op"], op, "{line}");
            assert_eq!(line["schema_version"], 1, "{line}");
            assert_eq!(line["start_s"].as_f64().unwrap(), i as f64, "{line}");
            let outcomes: u64 = line["outcomes"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_u64().unwrap())
                .sum();
            assert_eq!(outcomes, line["achieved"].as_u64().unwrap(), "{line}");
        }
    }
    let sums = sums(lines);
    let mut offered = 0;
    for op in OPS {
        let (achieved, outcomes, op_offered) = &sums[op];
        let summary_op = &s["ops"][op];
        assert_eq!(*achieved, summary_op["count"].as_u64().unwrap(), "{op}");
        let nonzero: BTreeMap<String, u64> = outcomes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        let expected: BTreeMap<String, u64> = summary_op["outcomes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect();
        assert_eq!(nonzero, expected, "{op}");
        offered += op_offered;
    }
    // Only a request due in an interval's last instant and sent after its close escapes.
    let sent = s["send"]["offered"].as_u64().unwrap();
    assert!(
        offered <= sent && offered as f64 >= sent as f64 * 0.98,
        "offered {offered} in the lines, {sent} sent"
    );
}

/// `run --profile steady` against noop with `slos`, into a fresh directory; fails unless it
/// exits `code`. Returns the directory (kept alive) and the report's path.
fn noop_run(
    duration: &str,
    rate: &str,
    slos: &[&str],
    code: i32,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut args = steady("noop", duration, rate, out.to_str().unwrap());
    for slo in slos {
        args.extend(["--slo", slo]);
    }
    let ran = loadgen(&args);
    assert_eq!(ran.code, code, "{}", ran.text());
    (dir, out)
}

#[test]
fn summary_json_and_intervals_jsonl_carry_exactly_the_documented_fields() {
    let (_dir, out) = noop_run("3s", "2k", &["reserve.p99<10s", "pay.service.p99<10s"], 0);
    let s = summary(&out);
    assert_eq!(s["schema_version"], 1);
    assert!(s["ops"]["reserve"]["service"]["count"].as_u64().unwrap() > 0);
    assert!(s["ops"]["reserve"].get("uncorrected").is_none());
    assert_matches_doc(&s, "summary.json");
    let lines = lines_of(&out.join("intervals.jsonl"));
    assert!(lines.len() >= 9, "{} lines", lines.len());
    for line in &lines {
        assert_matches_doc(line, "intervals.jsonl");
    }
}

#[test]
fn intervals_jsonl_has_a_line_per_interval_and_op_adding_up_to_the_summary() {
    let (_dir, out) = noop_run("4s", "5k", &[], 0);
    let s = summary(&out);
    let lines = lines_of(&out.join("intervals.jsonl"));
    // Four seconds of schedule (and whatever the drain took): four intervals at least.
    assert!(lines.len() >= 12, "{} lines", lines.len());
    assert_lines_add_up(&lines, &s);
    // Steady ramps up over 5 s: the fourth second offers more reserves than the first.
    let reserves: Vec<u64> = lines
        .iter()
        .filter(|l| l["op"] == "reserve")
        .map(|l| l["offered"].as_u64().unwrap())
        .collect();
    assert!(reserves[3] > reserves[0], "{reserves:?}");
    let busy_second = &lines[9];
    assert!(busy_second["corrected"]["p99_us"].as_f64().unwrap() > 0.0);
    assert!(
        busy_second["corrected"]["max_us"].as_f64().unwrap()
            >= busy_second["service"]["max_us"].as_f64().unwrap()
    );
    assert!(busy_second["send_lag"]["max_us"].as_f64().unwrap() > 0.0);
}

/// Waits until `path` holds at least `n` lines, checking on every read that what is there is
/// complete JSON lines: the file is written as the run goes.
fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = lines_of(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "intervals.jsonl was not written live"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_interrupted_run_leaves_complete_interval_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let child = spawn(&steady("noop", "60s", "5k", out.to_str().unwrap()));
    let path = out.join("intervals.jsonl");
    wait_for_lines(&path, 6);
    signal(&child, "INT");
    let ran = wait(child, Duration::from_secs(30));
    assert_eq!(ran.code, 130, "{}", ran.text());
    let s = summary(&out);
    assert_eq!(s["status"], "interrupted");
    assert_lines_add_up(&lines_of(&path), &s);

    // Killed outright, it writes no summary, but every line it wrote is whole.
    let out = dir.path().join("killed");
    let child = spawn(&steady("noop", "60s", "5k", out.to_str().unwrap()));
    let path = out.join("intervals.jsonl");
    wait_for_lines(&path, 6);
    signal(&child, "KILL");
    let _ = wait(child, Duration::from_secs(30));
    let lines = lines_of(&path);
    assert!(
        lines.len() >= 6 && lines.len().is_multiple_of(3),
        "{}",
        lines.len()
    );
    assert!(!out.join("summary.json").exists());
}

#[test]
fn sweep_json_carries_exactly_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let ran = small_sweep(&out);
    assert!(ran.code == 0 || ran.code == 3, "{}", ran.text());
    let text = std::fs::read_to_string(out.join("sweep.json")).unwrap();
    let sweep: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sweep["schema_version"], 1);
    assert!(!sweep["steps"].as_array().unwrap().is_empty());
    assert_matches_doc(&sweep, "sweep.json");

    // The chart: the SLO line, the pass / fail dots and the capacity found in the legends,
    // beside the plots; readable ticks.
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert_legend_beside(&svg, &["p99.9", "SLO limit 50 ms", "step met the SLOs"]);
    if sweep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["passed"] == false)
    {
        assert_legend_beside(&svg, &["step failed"]);
    }
    let capacity = sweep["max_offered_rate_per_s"]
        .as_f64()
        .expect("a capacity");
    let marks: Vec<&str> = svg
        .split("</text>")
        .map(|t| t.rsplit('>').next().unwrap_or("").trim())
        .filter(|t| t.starts_with("capacity "))
        .collect();
    assert_eq!(marks.len(), 2, "the capacity on both panels: {marks:?}");
    let shown: f64 = marks[0]
        .trim_start_matches("capacity ")
        .trim_end_matches("k/s")
        .parse()
        .unwrap();
    assert!(
        (shown * 1000.0 - capacity).abs() <= 10.0,
        "{marks:?} for {capacity}"
    );
    assert_readable_ticks(&svg);
}

/// The x of every SVG `<text>` whose content is `label` (plotters writes the content on its
/// own line).
fn text_x(svg: &str, label: &str) -> Vec<u32> {
    svg.split("<text x=\"")
        .skip(1)
        .filter_map(|rest| {
            let (x, rest) = rest.split_once('"')?;
            let content = rest.split_once('>')?.1.split("</text>").next()?;
            (content.trim() == label).then(|| x.parse().ok())?
        })
        .collect()
}

/// No tick label is a bare long number (`450000.0`): large ones read `450k`, `1.2M`.
fn assert_readable_ticks(svg: &str) {
    for rest in svg.split("</text>") {
        let content = rest.rsplit('>').next().unwrap_or("").trim();
        let digits = content.chars().filter(char::is_ascii_digit).count();
        let numeric = !content.is_empty()
            && content
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
        assert!(!(numeric && digits >= 5), "tick label {content}");
        assert!(
            !(numeric && content.ends_with(".0")),
            "tick label {content}"
        );
    }
}

/// Legends sit in the strip right of the plot (x ≥ 700 of 900), never over the data.
fn assert_legend_beside(svg: &str, labels: &[&str]) {
    for label in labels {
        let xs = text_x(svg, label);
        assert!(!xs.is_empty(), "no legend entry {label}");
        assert!(xs.iter().all(|&x| x >= 700), "legend {label} at x {xs:?}");
    }
    // And the data stays left of that strip: every series' polyline (the legend's own
    // samples are two-point lines) ends at x ≤ 700.
    for points in svg.split("points=\"").skip(1) {
        let points = points.split('"').next().unwrap();
        let xs: Vec<f64> = points
            .split_whitespace()
            .filter_map(|p| p.split(',').next()?.parse().ok())
            .collect();
        if xs.len() > 2 {
            assert!(xs.iter().all(|&x| x <= 700.5), "data drawn at x {xs:?}");
        }
    }
}

#[test]
fn report_html_puts_the_verdicts_first_and_draws_thresholds_readably() {
    let (_dir, out) = noop_run("3s", "20k", &["reserve.p99<1us", "reserve.rate>=100"], 3);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let verdicts = html.find("class=\"verdicts\"").expect("a verdicts block");
    assert!(verdicts < html.find("<pre>").unwrap() && verdicts < html.find("<svg").unwrap());
    assert!(
        html.contains("<div class=\"verdict-fail\">✘ slo reserve.p99&lt;1us"),
        "the breach is red"
    );
    assert!(html.contains("<div class=\"verdict-pass\">✔ slo reserve.rate&gt;=100"));
    assert!(html.contains("<div class=\"verdict-none\">– invariants: not checked"));
    let svgs: Vec<&str> = html
        .split("<svg")
        .skip(1)
        .map(|s| s.split("</svg>").next().unwrap())
        .collect();
    assert_eq!(svgs.len(), 4);
    let (rate, latency, spectrum, outcomes) = (svgs[0], svgs[1], svgs[2], svgs[3]);
    // Thresholds drawn on the charts they bound, named in the legend.
    assert_legend_beside(rate, &["offered", "achieved", "SLO reserve.rate&gt;=100"]);
    assert_legend_beside(latency, &["reserve p99", "SLO reserve.p99&lt;1us"]);
    assert_legend_beside(spectrum, &["reserve corrected", "SLO reserve.p99&lt;1us"]);
    // The outcome chart is on a log scale: a flood and a trickle both show.
    assert!(outcomes.contains("log"), "outcome chart is linear");
    assert_legend_beside(outcomes, &["held", "paid"]);
    for svg in &svgs {
        assert_readable_ticks(svg);
    }
    assert!(text_x(rate, "20k").len() + text_x(rate, "10k").len() > 0);
}

/// `GET path` on `addr`: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Checks the text exposition format line by line and returns every sample's value by its
/// name and labels. Every family has HELP and TYPE before its samples, names are documented,
/// counters end in `_total`, a histogram's buckets rise to `+Inf`, which equals its `_count`.
fn parse_exposition(body: &str, documented: &BTreeSet<String>) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.trim().is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(documented.contains(name), "undocumented metric {name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            assert!(types.insert(name.to_string(), kind.to_string()).is_none());
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "twice: {line}"
        );
    }
    // Histograms: cumulative buckets, +Inf = _count.
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let prefix = format!("{family}_bucket{{");
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (series, value) in samples.range(prefix.clone()..) {
            let Some(labels) = series.strip_prefix(&prefix) else {
                break;
            };
            let (rest, le) = labels.rsplit_once(",le=\"").expect("le last");
            let le = le.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            by_series
                .entry(rest.to_string())
                .or_default()
                .push((le, *value));
        }
        assert!(!by_series.is_empty(), "{family} has no buckets");
        for (labels, mut buckets) in by_series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{{{labels}}}"
            );
            let count = samples[&format!("{family}_count{{{labels}}}")];
            assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
        }
    }
    samples
}

#[test]
fn the_metrics_endpoint_is_scraped_during_the_run_and_its_counters_grow() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut child = spawn(
        &[
            steady("noop", "8s", "5k", out.to_str().unwrap()),
            vec!["--metrics-addr", "127.0.0.1:0"],
        ]
        .concat(),
    );
    // The address it bound is printed first.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("metrics: http://") {
            addr = Some(rest.trim_end_matches("/metrics").to_string());
            break;
        }
    }
    let addr = addr.expect("the metrics address is printed");
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let metric_names: BTreeSet<String> = rows(&schema_doc(), "/metrics (`--metrics-addr ADDR`)")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let reserves = |s: &BTreeMap<String, f64>| {
        (
            s["flashsale_loadgen_offered_total{op=\"reserve\"}"],
            s["flashsale_loadgen_answers_total{op=\"reserve\",outcome=\"held\"}"],
            s["flashsale_loadgen_latency_seconds_count{op=\"reserve\",kind=\"corrected\"}"],
            s["flashsale_loadgen_send_lag_seconds_count{op=\"reserve\"}"],
        )
    };
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = get(&addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    let first = parse_exposition(&body, &metric_names);
    std::thread::sleep(Duration::from_millis(2000));
    let (_, body) = get(&addr, "/metrics");
    let second = parse_exposition(&body, &metric_names);
    let (a, b) = (reserves(&first), reserves(&second));
    assert!(a.0 > 0.0 && a.1 > 0.0 && a.2 > 0.0, "{a:?}");
    assert!(
        b.0 > a.0 && b.1 > a.1 && b.2 > a.2 && b.3 > a.3,
        "{a:?} then {b:?}"
    );
    for name in &metric_names {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} is not exported"
        );
    }
    if let Ok(promtool) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        let mut promtool = promtool;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let checked = promtool.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&checked.stdout).to_string()
            + &String::from_utf8_lossy(&checked.stderr);
        assert!(
            checked.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
    let (status, _) = get(&addr, "/nothing");
    assert!(status.contains(" 404 "), "{status}");
    let status = child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    // The endpoint's answers are what the run recorded: the report agrees with the scrape.
    let s = summary(&out);
    assert!(s["ops"]["reserve"]["count"].as_f64().unwrap() >= b.1);
}
