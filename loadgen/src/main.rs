//! The `flashsale-loadgen` binary: parses the command line, builds the scenario and target,
//! runs, prints the summary table and the invariant verdict, and exits non-zero when an SLO is
//! breached or an invariant is violated. It owns the CLI only; everything else is the library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::run::{self, RunOptions};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::slo::Slo;
use flashsale_loadgen::target::{self, TargetOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flashsale-loadgen",
    version,
    about = "Open-loop load generator for flashsale"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against a target and write a report directory.
    Run(RunArgs),
    /// Print a built-in profile's TOML (a starting point for --scenario files).
    Profile { name: String },
}

#[derive(Parser)]
struct RunArgs {
    /// Built-in profile: double11, steady or spike.
    #[arg(long, default_value = "double11", conflicts_with = "scenario")]
    profile: String,
    /// A scenario TOML file instead of a built-in profile.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Stretch the scenario to this length (e.g. 60s, 2m, 90).
    #[arg(long, value_parser = parse_duration_s)]
    duration: Option<f64>,
    /// Scale the scenario so its peak scheduled rate is N requests/s (e.g. 325k, 2M).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// inproc (embedded engine), noop, http://HOST:PORT, tcp://HOST:PORT or
    /// redis://HOST:PORT[?pipeline=0|1][&flush=1] (the Redis + Lua baseline).
    #[arg(long, default_value = "inproc")]
    target: String,
    /// Connections (concurrent in-flight requests) for network targets.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Shards of the embedded engine.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threshold such as 'reserve.p99<2ms'; repeatable. A breach exits with status 2.
    #[arg(long = "slo")]
    slos: Vec<String>,
    /// Pacer period in microseconds.
    #[arg(long, default_value_t = 200)]
    tick_us: u64,
    /// A request sent later than this after its intended time counts as late.
    #[arg(long, default_value_t = 2_000)]
    late_threshold_us: u64,
    /// How long to wait for outstanding answers after the schedule ends.
    #[arg(long, default_value_t = 10_000)]
    drain_timeout_ms: u64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a rate (examples: 50000, 325k, 2M)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("rate must be > 0, got `{s}`"));
    }
    Ok(v * mult)
}

fn parse_duration_s(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 60s, 2m, 500ms)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("duration must be > 0, got `{s}`"));
    }
    Ok(v * mult)
}

fn default_out_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("reports").join(format!("{secs}"))
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::profile(&args.profile)?,
    };
    if let Some(d) = args.duration {
        scenario.set_duration_s(d)?;
    }
    if let Some(r) = args.rate {
        scenario.set_peak_rate(r)?;
    }
    let slos = args
        .slos
        .iter()
        .map(|s| Slo::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.shards == 0 {
        bail!("--shards must be at least 1");
    }
    // Every hold is a fresh arrival, so ∫λ over the run bounds the orders an embedded engine
    // must hold; sizing its tables for that keeps table growth out of the measurement.
    let expected_orders = scenario.expected_arrivals_until(scenario.duration_s());
    let options = TargetOptions {
        connections: args.connections,
        admin_token: std::env::var("FLASHSALE_ADMIN_TOKEN").ok(),
        inproc_shards: args.shards,
        inproc_orders_capacity_per_shard: Some(
            (expected_orders * 1.1 / args.shards as f64).clamp(1024.0, 16_000_000.0) as usize,
        ),
        ..TargetOptions::default()
    };
    let target = target::from_spec(&args.target, &options)
        .with_context(|| format!("opening target {}", args.target))?;
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    eprintln!(
        "running {} for {:.1}s at peak {:.0} req/s against {} (seed {}), report in {}",
        scenario.name,
        scenario.duration_s(),
        scenario.peak_offered_rate_per_s(),
        target.describe(),
        args.seed,
        out_dir.display()
    );
    let report = run::execute(RunOptions {
        scenario,
        seed: args.seed,
        target: target.clone(),
        out_dir: Some(out_dir),
        slos,
        driver: DriverConfig {
            tick_us: args.tick_us,
            late_threshold_us: args.late_threshold_us,
            drain_timeout_ms: args.drain_timeout_ms,
            ..DriverConfig::default()
        },
        progress: !args.quiet,
    });
    target.shutdown();
    let report = report?;
    let s = &report.summary;
    print!("{}", s.table());
    let v = &s.verdict;
    if !v.checked {
        println!("invariants: not checked ({})", v.note);
    } else if v.passed {
        println!(
            "invariants: PASS — sold + held <= stock on {} SKUs; no user over the limit{}",
            v.skus_checked,
            if v.paid_matches_sold_checked {
                "; paid units == sold"
            } else {
                ""
            }
        );
    } else {
        println!(
            "invariants: FAIL — {} stock, {} limit, {} paid/sold violations",
            v.stock_violations, v.limit_violations, v.paid_mismatches
        );
        for e in &v.examples {
            println!("  {e}");
        }
    }
    if !v.note.is_empty() && v.checked {
        println!("  note: {}", v.note);
    }
    for slo in &s.slo {
        println!(
            "slo {}: {:.3} ms {}",
            slo.spec,
            slo.measured_ms,
            if slo.passed { "pass" } else { "BREACHED" }
        );
    }
    if let Some(dir) = &report.out_dir {
        println!("report: {}", dir.join("report.html").display());
    }
    if !v.passed {
        return Ok(ExitCode::from(3));
    }
    if report.slo_breached() {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Profile { name } => {
            let text = flashsale_loadgen::scenario::PROFILES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .with_context(|| format!("unknown profile `{name}` (double11, steady, spike)"))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
