//! Project automation, run as `cargo xtask <command>`. It owns the benchmark regression gates:
//! criterion exits 0 even when it detects a regression, so these commands run a suite, compare
//! it with a baseline, print a table of changes and exit non-zero past a threshold. It must not
//! contain product logic; it only drives cargo and reads the files the benchmark tools write.
//!
//! - `bench-gate criterion [--baseline NAME] [--threshold-pct P] [--save] [-- FILTER]`:
//!   wall-clock criterion suite (`benches/engine.rs`) against a criterion baseline saved on
//!   this machine. A benchmark fails when the *lower* bound of its median-time change is above
//!   P% (default 10), so noise alone does not trip it.
//! - `bench-gate instructions [--threshold-pct P] [--update]`: instruction counts (gungraun on
//!   callgrind, `benches/instructions.rs`) against `benches/instructions-baseline.json`, which
//!   is committed. Deterministic for a given toolchain, so the default threshold is tight (2%).
//!   `--update` rewrites the baseline: do that in the commit that changes performance on
//!   purpose, and say why in its message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::Value;

const INSTRUCTIONS_BASELINE: &str = "benches/instructions-baseline.json";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::from(2)
        }
    }
}

struct Options {
    baseline: String,
    threshold_pct: f64,
    save: bool,
    update: bool,
    filter: Option<String>,
}

fn parse_options(args: &[String], default_threshold_pct: f64) -> Result<Options> {
    let mut options = Options {
        baseline: "main".to_string(),
        threshold_pct: default_threshold_pct,
        save: false,
        update: false,
        filter: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--baseline" => {
                options.baseline = args.next().context("--baseline needs a name")?.clone();
            }
            "--threshold-pct" => {
                let value = args.next().context("--threshold-pct needs a number")?;
                options.threshold_pct = value
                    .parse()
                    .with_context(|| format!("--threshold-pct: {value:?} is not a number"))?;
                if options.threshold_pct.is_nan() || options.threshold_pct < 0.0 {
                    bail!("--threshold-pct must be zero or more");
                }
            }
            "--save" => options.save = true,
            "--update" => options.update = true,
            "--" => options.filter = args.next().cloned(),
            other => bail!("unknown option {other:?} (see the header of xtask/src/main.rs)"),
        }
    }
    Ok(options)
}

fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bench-gate", "criterion", ..] => criterion_gate(&parse_options(&args[2..], 10.0)?),
        ["bench-gate", "instructions", ..] => instructions_gate(&parse_options(&args[2..], 2.0)?),
        _ => bail!(
            "usage: cargo xtask bench-gate criterion [--baseline NAME] [--threshold-pct P] [--save] [-- FILTER]\n       cargo xtask bench-gate instructions [--threshold-pct P] [--update]"
        ),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> Result<PathBuf> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

fn cargo_bench(bench: &str, extra: &[String]) -> Result<()> {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["bench", "--package", "flashsale", "--bench", bench, "--"])
        .args(extra)
        .current_dir(workspace_root());
    eprintln!("xtask: running {command:?}");
    let status = command.status().context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench --bench {bench} failed with {status}");
    }
    Ok(())
}

/// Criterion's `change/estimates.json` of every benchmark under `dir`, keyed by its id.
fn criterion_changes(dir: &Path) -> Result<BTreeMap<String, (f64, f64, f64)>> {
    let mut changes = BTreeMap::new();
    let is_change = |path: &Path| {
        path.file_name().is_some_and(|n| n == "estimates.json")
            && path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "change")
    };
    for path in files_under(dir, is_change) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let estimates: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let median = &estimates["median"];
        let point = median["point_estimate"].as_f64();
        let low = median["confidence_interval"]["lower_bound"].as_f64();
        let high = median["confidence_interval"]["upper_bound"].as_f64();
        let (Some(point), Some(low), Some(high)) = (point, low, high) else {
            bail!("{} has no median change estimate", path.display());
        };
        let id = path
            .parent()
            .and_then(Path::parent)
            .and_then(|bench| bench.strip_prefix(dir).ok())
            .map(|id| id.display().to_string())
            .unwrap_or_default();
        changes.insert(id, (point * 100.0, low * 100.0, high * 100.0));
    }
    Ok(changes)
}

/// Every file below `dir` (recursively) for which `wanted` holds; a missing `dir` has none.
fn files_under(dir: &Path, wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                found.push(path);
            }
        }
    }
    found
}

fn criterion_gate(options: &Options) -> Result<bool> {
    let mut extra = Vec::new();
    if let Some(filter) = &options.filter {
        extra.push(filter.clone());
    }
    if options.save {
        extra.extend(["--save-baseline".to_string(), options.baseline.clone()]);
        cargo_bench("engine", &extra)?;
        println!("saved criterion baseline {:?}", options.baseline);
        return Ok(true);
    }
    let criterion_dir = target_dir()?.join("criterion");
    // Stale comparisons from an earlier run must not be read as this run's.
    for (id, _) in criterion_changes(&criterion_dir)? {
        let _ = std::fs::remove_dir_all(criterion_dir.join(id).join("change"));
    }
    extra.extend(["--baseline".to_string(), options.baseline.clone()]);
    cargo_bench("engine", &extra)?;
    let changes = criterion_changes(&criterion_dir)?;
    if changes.is_empty() {
        bail!(
            "no comparison was written: save a baseline first with `cargo xtask bench-gate criterion --save --baseline {}`",
            options.baseline
        );
    }
    println!(
        "\n{:<48} {:>10} {:>22}  verdict",
        "benchmark", "median", "95% interval"
    );
    let mut passed = true;
    for (id, (point, low, high)) in &changes {
        let verdict = if *low > options.threshold_pct {
            passed = false;
            "REGRESSED"
        } else if *high < -options.threshold_pct {
            "faster"
        } else {
            "ok"
        };
        println!("{id:<48} {point:>+9.1}% [{low:>+8.1}%, {high:>+8.1}%]  {verdict}");
    }
    println!(
        "\n{} (threshold: median time +{}% beyond its confidence interval, baseline {:?})",
        if passed { "PASS" } else { "FAIL" },
        options.threshold_pct,
        options.baseline
    );
    Ok(passed)
}

/// Instruction counts of every gungraun benchmark, from the `summary.json` files it writes.
fn gungraun_instructions(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for path in files_under(dir, |path| {
        path.file_name().is_some_and(|n| n == "summary.json")
    }) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let summary: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let (id, instructions) = summary_instructions(&summary)
            .with_context(|| format!("reading the instruction count in {}", path.display()))?;
        counts.insert(id, instructions);
    }
    Ok(counts)
}

fn instructions_gate(options: &Options) -> Result<bool> {
    let summaries = target_dir()?.join("gungraun");
    let _ = std::fs::remove_dir_all(&summaries);
    cargo_bench("instructions", &["--save-summary=json".to_string()])?;
    let current = gungraun_instructions(&summaries)?;
    if current.is_empty() {
        bail!("gungraun wrote no summary under {}", summaries.display());
    }
    let baseline_path = workspace_root().join(INSTRUCTIONS_BASELINE);
    if options.update {
        let json: BTreeMap<&String, &u64> = current.iter().collect();
        std::fs::write(&baseline_path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", baseline_path.display()))?;
        println!(
            "wrote {} benchmarks to {}",
            current.len(),
            INSTRUCTIONS_BASELINE
        );
        return Ok(true);
    }
    let text = std::fs::read_to_string(&baseline_path).with_context(|| {
        format!(
            "reading {} (create it with --update)",
            baseline_path.display()
        )
    })?;
    let baseline: BTreeMap<String, u64> =
        serde_json::from_str(&text).with_context(|| format!("parsing {INSTRUCTIONS_BASELINE}"))?;
    println!(
        "\n{:<56} {:>14} {:>14} {:>9}  verdict",
        "benchmark", "baseline", "now", "change"
    );
    let mut passed = true;
    for (id, now) in &current {
        let Some(&before) = baseline.get(id) else {
            passed = false;
            println!(
                "{id:<56} {:>14} {now:>14} {:>9}  NEW: run with --update",
                "-", "-"
            );
            continue;
        };
        let change_pct = (*now as f64 - before as f64) / (before.max(1) as f64) * 100.0;
        let verdict = if change_pct > options.threshold_pct {
            passed = false;
            "REGRESSED"
        } else if change_pct < -options.threshold_pct {
            "faster: consider --update"
        } else {
            "ok"
        };
        println!("{id:<56} {before:>14} {now:>14} {change_pct:>+8.2}%  {verdict}");
    }
    for id in baseline.keys().filter(|id| !current.contains_key(*id)) {
        passed = false;
        println!("{id:<56} missing from this run: removed? run with --update");
    }
    println!(
        "\n{} (threshold: +{}% instructions against {INSTRUCTIONS_BASELINE})",
        if passed { "PASS" } else { "FAIL" },
        options.threshold_pct
    );
    Ok(passed)
}

/// `("module::function.id", instructions)` from one gungraun `summary.json`: the callgrind
/// profile's total `Ir`.
fn summary_instructions(summary: &Value) -> Result<(String, u64)> {
    let module_path = summary["module_path"].as_str().context("no module_path")?;
    let id = summary["id"].as_str().context("no id")?;
    let profiles = summary["profiles"].as_array().context("no profiles")?;
    let callgrind = profiles
        .iter()
        .find(|profile| profile["tool"].as_str() == Some("Callgrind"))
        .or_else(|| profiles.first())
        .context("no profile")?;
    let instructions = callgrind["data"]["total"]["metrics"]["Ir"]["values"]["new"]
        .as_u64()
        .context("no total Ir")?;
    Ok((format!("{module_path}.{id}"), instructions))
}
