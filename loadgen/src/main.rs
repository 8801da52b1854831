//! The `flashsale-loadgen` binary: parses the command line, builds the scenario and target,
//! runs, prints the summary table and the invariant verdict, and exits non-zero when an SLO is
//! breached or an invariant is violated. It owns the CLI only; everything else is the library.
//! Capacity planning commands: `record`, `replay`, `sweep`, `trace import`, `trace info`.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::placement::Placement;
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
    /// Write a scenario's exact request schedule (intended time + request) to a trace file.
    Record(RecordArgs),
    /// Replay a trace open-loop at its recorded times / --speed, with run's reports and SLOs.
    Replay(ReplayArgs),
    /// Find the highest offered rate that meets an SLO: climbing steps, then bisection.
    Sweep(SweepArgs),
    /// Trace files: import other systems' exports, print a trace's summary.
    Trace {
        #[command(subcommand)]
        command: TraceCmd,
    },
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Convert CSV or JSON Lines (timestamp_ms, op, order_id, user_id, sku_id, qty) to a trace.
    /// Any bad row refuses the import (each listed with its line number) unless --skip-bad.
    Import(ImportArgs),
    /// Check a trace end to end and print its duration, counts per op and peak rate.
    Info {
        trace: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Parser)]
struct ImportArgs {
    #[arg(long, conflicts_with = "jsonl", required_unless_present = "jsonl")]
    csv: Option<PathBuf>,
    #[arg(long)]
    jsonl: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// A catalog TOML (the server's --catalog format) to embed, so a replay creates the SKUs.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Import the good rows and list the bad ones instead of refusing the import.
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Parser)]
struct RecordArgs {
    /// Built-in profile: double11, steady or spike.
    #[arg(long, default_value = "double11")]
    profile: String,
    /// A scenario TOML file instead of a built-in profile.
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[arg(long, value_parser = parse_duration_s)]
    duration: Option<f64>,
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

/// Where requests go (shared by replay and sweep).
#[derive(clap::Args)]
struct TargetArgs {
    /// inproc (embedded engine), noop, limited:RATE, http://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, default_value = "inproc")]
    target: String,
    /// Connections (concurrent in-flight requests) for network targets.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Shards of the embedded engine (default: one per CPU the generator's threads leave it).
    #[arg(long, default_value_t = Placement::for_this_machine(true).inproc_shards)]
    shards: usize,
    /// Pacer period in microseconds.
    #[arg(long, default_value_t = 100)]
    tick_us: u64,
    /// A request sent later than this after its intended time counts as late.
    #[arg(long, default_value_t = 2_000)]
    late_threshold_us: u64,
}

impl TargetArgs {
    fn options(&self) -> Result<TargetOptions> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.shards == 0 {
            bail!("--shards must be at least 1");
        }
        Ok(TargetOptions {
            connections: self.connections,
            admin_token: std::env::var("FLASHSALE_ADMIN_TOKEN").ok(),
            inproc_shards: self.shards,
            ..TargetOptions::default()
        })
    }
    fn open(&self) -> Result<std::sync::Arc<dyn target::Target>> {
        let options = self.options()?;
        target::from_spec(&self.target, &options)
            .with_context(|| format!("opening target {}", self.target))
    }
}

#[derive(Parser)]
struct ReplayArgs {
    /// The trace file (from record, serve --capture or trace import).
    trace: PathBuf,
    /// Recorded times are divided by this (2.0 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Lower the speed so the trace's busiest second offers at most N requests/s.
    #[arg(long, value_parser = parse_rate)]
    max_rate: Option<f64>,
    /// Play the trace K times back to back (order ids shifted per loop).
    #[arg(long = "loop", default_value_t = 1)]
    loops: u64,
    #[command(flatten)]
    target: TargetArgs,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threshold such as 'reserve.p99<2ms'; repeatable. A breach exits with status 2.
    #[arg(long = "slo")]
    slos: Vec<String>,
    #[arg(long, default_value_t = 10_000)]
    drain_timeout_ms: u64,
    #[arg(long)]
    quiet: bool,
}

#[derive(Parser)]
struct SweepArgs {
    /// Built-in profile (default steady: a flat plateau).
    #[arg(long, default_value = "steady")]
    profile: String,
    #[arg(long, conflicts_with = "trace")]
    scenario: Option<PathBuf>,
    /// Sweep a trace's replay speed instead of a scenario's rate.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// First step's rate: the scenario's peak scheduled rate, or the trace's busiest second.
    #[arg(long, value_parser = parse_rate)]
    from: f64,
    /// Highest rate tried.
    #[arg(long, value_parser = parse_rate)]
    to: f64,
    /// Each climbing step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    step_factor: f64,
    /// Length of each step.
    #[arg(long, value_parser = parse_duration_s, default_value = "10s")]
    step_duration: f64,
    /// A first, unjudged step at --from of this length (a fresh server's first seconds are not
    /// its steady state); 0 for none.
    #[arg(long, value_parser = parse_duration_or_zero, default_value = "2s")]
    warmup: f64,
    /// Bisection stops when the failing rate is within this fraction of the passing one.
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    #[arg(long, default_value_t = 6)]
    max_refinements: u32,
    /// Threshold(s) the rate must meet, e.g. 'reserve.p99<1ms'; at least one.
    #[arg(long = "slo", required = true)]
    slos: Vec<String>,
    /// Stop a step once its live reserve p99 is this many times the SLO limit.
    #[arg(long, default_value_t = 10.0)]
    far_factor: f64,
    /// Largest share of failed answers (busy, timeouts, …) a passing step may have.
    #[arg(long, default_value_t = 0.001)]
    max_error_ratio: f64,
    #[command(flatten)]
    target: TargetArgs,
    /// Seed of the first step (step i uses seed + i). Default: the current Unix time, so a
    /// second sweep against the same server does not repeat the first one's order ids (it is
    /// printed and kept in sweep.json: pass it to reproduce a sweep against a fresh server).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory for sweep.json and sweep.svg (default reports/sweep-<timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every step's full report directory.
    #[arg(long)]
    step_reports: bool,
    /// How long a step waits for outstanding answers.
    #[arg(long, default_value_t = 2_000)]
    drain_timeout_ms: u64,
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
    /// Shards of the embedded engine (default: one per CPU the generator's threads leave it).
    #[arg(long, default_value_t = Placement::for_this_machine(true).inproc_shards)]
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
    #[arg(long, default_value_t = 100)]
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

fn parse_duration_or_zero(s: &str) -> Result<f64, String> {
    if s.trim().trim_end_matches(['s', 'm', 'h']).trim() == "0" {
        return Ok(0.0);
    }
    parse_duration_s(s)
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
    print_report(&report?)
}

/// Prints a run's table, verdict and SLO lines; the exit code they imply.
fn print_report(report: &run::RunReport) -> Result<ExitCode> {
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
        Cmd::Record(args) => record(args),
        Cmd::Replay(args) => replay(args),
        Cmd::Sweep(args) => sweep(args),
        Cmd::Trace {
            command: TraceCmd::Import(args),
        } => import(args),
        Cmd::Trace {
            command: TraceCmd::Info { trace, json },
        } => {
            let info = flashsale_loadgen::trace::info(&trace)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", info.text());
            }
            Ok(ExitCode::SUCCESS)
        }
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

fn load_scenario(
    profile: &str,
    file: Option<&PathBuf>,
    duration: Option<f64>,
    rate: Option<f64>,
) -> Result<Scenario> {
    let mut scenario = match file {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::profile(profile)?,
    };
    if let Some(d) = duration {
        scenario.set_duration_s(d)?;
    }
    if let Some(r) = rate {
        scenario.set_peak_rate(r)?;
    }
    Ok(scenario)
}

fn record(args: RecordArgs) -> Result<ExitCode> {
    use flashsale_loadgen::trace::{self, ScenarioSource};
    let scenario = load_scenario(
        &args.profile,
        args.scenario.as_ref(),
        args.duration,
        args.rate,
    )?;
    let source = match &args.scenario {
        Some(path) => ScenarioSource::File(path),
        None => ScenarioSource::Profile(&args.profile),
    };
    let trailer = trace::record(
        &scenario,
        source,
        args.duration,
        args.rate,
        args.seed,
        &args.out,
    )?;
    let bytes = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    println!(
        "recorded {} for {:.1}s (seed {}): {} records ({} order requests + catalog), {:.1} MB, order hash {:016x} -> {}",
        scenario.name,
        scenario.duration_s(),
        args.seed,
        trailer.records,
        trailer.records - scenario.catalog.skus as u64,
        bytes as f64 / 1e6,
        trailer.order_hash,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_slos(specs: &[String]) -> Result<Vec<Slo>> {
    Ok(specs
        .iter()
        .map(|s| Slo::parse(s))
        .collect::<Result<Vec<_>, _>>()?)
}

fn replay(args: ReplayArgs) -> Result<ExitCode> {
    use flashsale_loadgen::replay::{self, ReplayOptions};
    let slos = parse_slos(&args.slos)?;
    let options = ReplayOptions {
        speed: args.speed,
        max_rate_per_s: args.max_rate,
        loops: args.loops,
        first_loop: 0,
    };
    let target = args.target.open()?;
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    eprintln!(
        "replaying {} at {}x against {}, report in {}",
        args.trace.display(),
        args.speed,
        target.describe(),
        out_dir.display()
    );
    let result = replay::replay(
        &args.trace,
        &options,
        run::RunSettings {
            target: target.clone(),
            out_dir: Some(out_dir),
            slos,
            driver: DriverConfig {
                tick_us: args.target.tick_us,
                late_threshold_us: args.target.late_threshold_us,
                drain_timeout_ms: args.drain_timeout_ms,
                ..DriverConfig::default()
            },
            progress: !args.quiet,
        },
    );
    target.shutdown();
    let result = result?;
    let r = &result.replay;
    println!(
        "replay: {} order requests of {} at {:.3}x x{} loop(s): intended {:.2}s, wall {:.2}s; send lag p50 {:.0} us, p99 {:.0} us, max {:.0} us; {} sent > {} us late",
        r.trace_order_requests,
        r.trace.display(),
        r.speed,
        r.loops,
        r.intended_duration_s,
        r.elapsed_s,
        r.send_lag_p50_us,
        r.send_lag_p99_us,
        r.max_send_lag_us,
        r.sent_late,
        r.late_threshold_us
    );
    match r.same_requests {
        Some(true) => println!(
            "replay: same requests in the same order as the trace (order hash {})",
            r.trace_order_hash
        ),
        Some(false) => println!(
            "replay: SENT REQUESTS DIFFER from the trace (trace {}, sent {})",
            r.trace_order_hash,
            r.sent_order_hash.as_deref().unwrap_or("-")
        ),
        None => println!("replay: order ids shifted per loop; hash not comparable"),
    }
    if r.skipped_records > 0 {
        println!(
            "replay: {} query / restock records skipped (not order traffic)",
            r.skipped_records
        );
    }
    let code = print_report(&result.run)?;
    if r.same_requests == Some(false) {
        return Ok(ExitCode::from(4));
    }
    Ok(code)
}

fn sweep(args: SweepArgs) -> Result<ExitCode> {
    use flashsale_loadgen::sweep::{self, SweepOptions, SweepWorkload};
    let slos = parse_slos(&args.slos)?;
    let workload = match (&args.trace, &args.scenario) {
        (Some(trace), _) => SweepWorkload::Trace(trace.clone()),
        (None, file) => SweepWorkload::Scenario(Box::new(load_scenario(
            &args.profile,
            file.as_ref(),
            None,
            None,
        )?)),
    };
    args.target.options()?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from("reports").join(format!("sweep-{secs}"))
    });
    let options = SweepOptions {
        workload,
        seed,
        from_rate_per_s: args.from,
        to_rate_per_s: args.to,
        step_factor: args.step_factor,
        step_duration_s: args.step_duration,
        warmup_s: args.warmup,
        precision: args.precision,
        max_refinements: args.max_refinements,
        slos,
        far_factor: args.far_factor,
        max_error_ratio: args.max_error_ratio,
        driver: DriverConfig {
            tick_us: args.target.tick_us,
            late_threshold_us: args.target.late_threshold_us,
            drain_timeout_ms: args.drain_timeout_ms,
            ..DriverConfig::default()
        },
        out_dir: out_dir.clone(),
        step_reports: args.step_reports,
        verbose: true,
    };
    eprintln!(
        "sweeping {} .. {} /s against {} (steps of {:.1}s, seed {seed}), output in {}",
        args.from,
        args.to,
        args.target.target,
        args.step_duration,
        out_dir.display()
    );
    let open = || {
        let options = args
            .target
            .options()
            .map_err(|e| target::TargetError::Unsupported(e.to_string()))?;
        target::from_spec(&args.target.target, &options)
    };
    let result = sweep::sweep(&options, &open)?;
    print!("{}", result.text());
    let (json, svg) = sweep::outputs(&out_dir);
    println!("sweep: {} and {}", json.display(), svg.display());
    Ok(if result.max_rate_per_s.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    use flashsale_loadgen::import::{self, Format};
    let (input, format) = match (&args.csv, &args.jsonl) {
        (Some(csv), _) => (csv, Format::Csv),
        (None, Some(jsonl)) => (jsonl, Format::Jsonl),
        (None, None) => bail!("give --csv FILE or --jsonl FILE"),
    };
    let catalog = match &args.catalog {
        Some(path) => flashsale_engine::server::catalog::load_catalog(path)
            .with_context(|| format!("loading catalog {}", path.display()))?,
        None => Vec::new(),
    };
    let report = import::import(input, format, &args.out, &catalog, args.skip_bad)?;
    if !report.bad.is_empty() {
        eprintln!(
            "skipped {} bad row(s) of {}:\n{}",
            report.bad.len(),
            input.display(),
            report.bad_rows_text()
        );
    }
    println!(
        "imported {} of {} rows ({} catalog SKUs) from {} -> {} (order hash {:016x})",
        report.written,
        report.rows,
        catalog.len(),
        input.display(),
        args.out.display(),
        report.trailer.order_hash
    );
    Ok(ExitCode::SUCCESS)
}
