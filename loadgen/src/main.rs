//! The `flashsale-loadgen` binary: parses the command line, builds the scenario and target,
//! runs, prints the summary table, the validity and invariant verdicts and the SLO results, and
//! exits with the status they imply (the table in [`EXIT_STATUS`]). SIGINT / SIGTERM stop a run,
//! which then drains and writes its report; a second signal ends the process at once. It owns
//! the CLI only; everything else is the library. Also: `calibrate` (this machine's floor) and
//! the capacity planning commands `record`, `replay`, `sweep`, `trace import`, `trace info`.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::metrics::GeneratorMetrics;
use flashsale_loadgen::replay::ReplayOptions;
use flashsale_loadgen::report::{RunStatus, SummaryInput};
use flashsale_loadgen::run::{self, RunIds, RunOptions, RunSettings};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::slo::Slo;
use flashsale_loadgen::target::{self, TargetError, TargetOptions};
use flashsale_loadgen::validity;
use flashsale_loadgen::verify::Verification;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// The exit status table, shown by `--help` and in the README.
const EXIT_STATUS: &str = "\
Exit status:
  0    success: every gate passed
  1    error: bad input, an unreachable target, a used target refused (--fresh, --run-id),
       a verification the target did not answer (invariants incomplete)
  2    usage error: an unknown flag or a malformed value (from the argument parser)
  3    an SLO breached (--slo; sweep: not even --from met it)
  4    an invariant violated (oversell, a user over the limit, paid units != sold)
  5    the run is not valid (--require-valid): its figures measure the generator
  6    replay: the requests sent differ from the trace's
  130  interrupted by SIGINT (143: by SIGTERM); the report covers what ran
When several apply, the first of 1, 4, 130/143, 6, 5, 3 wins.";

/// The process's exit status; `EXIT_STATUS` documents each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Success,
    SloBreached,
    InvariantsViolated,
    NotValid,
    ReplayDiffers,
    /// By the signal's number (2: SIGINT, 15: SIGTERM): 128 + n.
    Interrupted(u8),
}

impl Exit {
    fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Success => 0,
            Exit::SloBreached => 3,
            Exit::InvariantsViolated => 4,
            Exit::NotValid => 5,
            Exit::ReplayDiffers => 6,
            Exit::Interrupted(signal) => 128 + signal,
        })
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flashsale-loadgen",
    version,
    about = "Open-loop load generator for flashsale",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against a target and write a report directory.
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// Run a scenario against `noop` and print this machine's floor: how late the generator
    /// itself sends, and what that adds to corrected latency (default 10 s of double11).
    #[command(after_help = EXIT_STATUS)]
    Calibrate(CalibrateArgs),
    /// Print a built-in profile's TOML (a starting point for --scenario files).
    Profile { name: String },
    /// Write a scenario's exact request schedule (intended time + request) to a trace file.
    Record(RecordArgs),
    /// Replay a trace open-loop at its recorded times / --speed, with run's reports and SLOs.
    #[command(after_help = EXIT_STATUS)]
    Replay(ReplayArgs),
    /// Find the highest offered rate that meets an SLO: climbing steps, then bisection.
    #[command(after_help = EXIT_STATUS)]
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
struct CalibrateArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    pacer: PacerArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the run's report directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit with status 5 unless this machine's floor is valid (up to PERCENTILE if given).
    #[arg(long, value_name = "PERCENTILE", num_args = 0..=1, default_missing_value = "max",
          value_parser = validity::parse_percentile)]
    require_valid: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Parser)]
struct RecordArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

/// Where requests go and how the pacer sends them (run, replay, sweep).
#[derive(clap::Args)]
struct TargetArgs {
    /// inproc (embedded engine), noop, limited:RATE, http://HOST:PORT, tcp://HOST:PORT or
    /// redis://HOST:PORT[?pipeline=0|1][&flush=1] (the Redis + Lua baseline).
    #[arg(long, default_value = "inproc")]
    target: String,
    /// Connections (concurrent in-flight requests) for network targets.
    #[arg(long, default_value_t = TargetOptions::default().connections)]
    connections: usize,
    /// Shards of the embedded engine (default: one per CPU the generator's threads leave it).
    #[arg(long, default_value_t = TargetOptions::default().inproc_shards)]
    shards: usize,
    /// A network request unanswered after this long counts as a timeout (an error).
    #[arg(long, default_value_t = TargetOptions::default().request_timeout_ms)]
    request_timeout_ms: u64,
    /// Serve the generator's live metrics (Prometheus text format, GET /metrics) on this
    /// address while it runs, e.g. 127.0.0.1:9091 (port 0: any free port; the address is
    /// printed).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pacer: PacerArgs,
}

/// How the pacer sends.
#[derive(clap::Args)]
struct PacerArgs {
    /// Pacer period in microseconds.
    #[arg(long, default_value_t = DriverConfig::default().tick_us)]
    tick_us: u64,
    /// A request sent later than this after its intended time counts as late.
    #[arg(long, default_value_t = DriverConfig::default().late_threshold_us)]
    late_threshold_us: u64,
    /// Leave the pacer and the recorder unpinned (the default pins them, see "Threads and
    /// cores" in loadgen/README.md); on a machine busy with other work a pinned pacer cannot
    /// move to an idle CPU.
    #[arg(long)]
    no_pin: bool,
}

impl PacerArgs {
    /// The driver's settings with this pacing and `drain_timeout_ms`.
    fn driver(&self, drain_timeout_ms: u64) -> DriverConfig {
        DriverConfig {
            tick_us: self.tick_us,
            late_threshold_us: self.late_threshold_us,
            drain_timeout_ms,
            pin_threads: !self.no_pin,
            ..DriverConfig::default()
        }
    }
}

/// What a run is judged by.
#[derive(clap::Args)]
struct GateArgs {
    /// Threshold, repeatable: latency 'reserve.p99<2ms', 'pay.service.p99.9<5ms'; error ratio
    /// 'errors<0.1%', 'reserve.errors<1%'; rate 'reserve.rate>=300k'; any of them within a
    /// phase of the scenario, 'midnight:reserve.p99<2ms'. Errors (busy, rate_limited,
    /// timeouts, connection errors, unanswered; not sold_out or limit_exceeded) count as
    /// slower than any latency limit. A breach exits with status 3.
    #[arg(long = "slo")]
    slos: Vec<String>,
    /// Stop the run as soon as a --slo is breached (judged at every 1 s interval once it has
    /// enough answers); the report covers what ran.
    #[arg(long)]
    abort_on_fail: bool,
    /// Exit with status 5 unless the run is valid: its figures measure the target, not the
    /// generator. With a percentile (--require-valid=p99.9), valid up to that percentile.
    #[arg(long, value_name = "PERCENTILE", num_args = 0..=1, default_missing_value = "max",
          value_parser = validity::parse_percentile)]
    require_valid: Option<f64>,
}

impl GateArgs {
    fn slos(&self) -> Result<Vec<Slo>> {
        let mut slos = parse_slos(&self.slos)?;
        for slo in &mut slos {
            slo.abort = self.abort_on_fail;
        }
        if self.abort_on_fail && slos.is_empty() {
            bail!("--abort-on-fail needs at least one --slo");
        }
        Ok(slos)
    }
}

/// Which ids the run takes on its target.
#[derive(clap::Args)]
struct IdArgs {
    /// Refuse a target that already knows any SKU of this run's catalog (instead of running
    /// beside the earlier runs at the next free run id).
    #[arg(long, conflicts_with = "run_id")]
    fresh: bool,
    /// Take exactly this run id (SKU and order ids shifted per run id; refused if the target
    /// knows its SKUs). Default: the first free one.
    #[arg(long)]
    run_id: Option<u32>,
}

impl IdArgs {
    fn run_ids(&self) -> RunIds {
        match (self.fresh, self.run_id) {
            (true, _) => RunIds::Fresh,
            (false, Some(k)) => RunIds::Fixed(k),
            (false, None) => RunIds::Auto,
        }
    }
}

impl TargetArgs {
    /// The target's options; `expected_orders` (every order the run may create) sizes an
    /// embedded engine's tables so that their growth stays out of the measurement.
    fn options(&self, expected_orders: Option<f64>) -> Result<TargetOptions> {
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
            inproc_orders_capacity_per_shard: expected_orders.map(|orders| {
                (orders * 1.1 / self.shards as f64).clamp(1024.0, 16_000_000.0) as usize
            }),
            request_timeout_ms: self.request_timeout_ms.max(1),
        })
    }

    /// Opens the target; when it cannot be reached, `report` (the report directory and the
    /// workload's name and seed) still gets a report saying so.
    fn open(
        &self,
        expected_orders: Option<f64>,
        report: Option<(&Path, &str, u64)>,
    ) -> Result<Arc<dyn target::Target>> {
        let options = self.options(expected_orders)?;
        let opened = target::from_spec(&self.target, &options);
        // A target that cannot be reached still gets its report; a misspelt one is bad input.
        if let (Err(e), Some((dir, name, seed))) = (&opened, report)
            && !matches!(e, TargetError::Spec(_))
        {
            let input = SummaryInput {
                scenario: name,
                target: self.target.clone(),
                seed,
                started_at_unix_s: unix_time_s(),
                peak_offered_rate_per_s: 0.0,
            };
            let reason = format!("opening target {}: {e}", self.target);
            if run::write_failed_report(dir, input, 0, "", &reason).is_ok() {
                eprintln!("report: {}", dir.join("report.html").display());
            }
        }
        opened.with_context(|| format!("opening target {}", self.target))
    }

    fn driver(&self, drain_timeout_ms: u64) -> DriverConfig {
        self.pacer.driver(drain_timeout_ms)
    }

    /// Starts the `--metrics-addr` endpoint, when asked for, and says where it listens.
    fn metrics(&self) -> Result<Option<Arc<GeneratorMetrics>>> {
        let Some(addr) = self.metrics_addr else {
            return Ok(None);
        };
        let metrics = Arc::new(GeneratorMetrics::default());
        let bound = metrics
            .serve(addr)
            .with_context(|| format!("serving metrics on {addr}"))?;
        eprintln!("metrics: http://{bound}/metrics");
        Ok(Some(metrics))
    }
}

/// Which workload: a built-in profile or a scenario file, stretched and scaled.
#[derive(clap::Args)]
struct ScenarioArgs {
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
}

impl ScenarioArgs {
    fn load(&self) -> Result<Scenario> {
        load_scenario(
            &self.profile,
            self.scenario.as_ref(),
            self.duration,
            self.rate,
        )
    }
}

#[derive(Parser)]
struct ReplayArgs {
    /// The trace file (from record, serve --capture or trace import).
    trace: PathBuf,
    /// Recorded times are divided by this (2.0 = twice as fast).
    #[arg(long, default_value_t = ReplayOptions::default().speed)]
    speed: f64,
    /// Lower the speed so the trace's busiest second offers at most N requests/s.
    #[arg(long, value_parser = parse_rate)]
    max_rate: Option<f64>,
    /// Play the trace K times back to back (order ids shifted per loop).
    #[arg(long = "loop", default_value_t = ReplayOptions::default().loops)]
    loops: u64,
    #[command(flatten)]
    target: TargetArgs,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    gates: GateArgs,
    #[command(flatten)]
    ids: IdArgs,
    #[arg(long, default_value_t = DriverConfig::default().drain_timeout_ms)]
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
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    gates: GateArgs,
    #[command(flatten)]
    ids: IdArgs,
    /// How long to wait for outstanding answers after the schedule ends.
    #[arg(long, default_value_t = DriverConfig::default().drain_timeout_ms)]
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

fn unix_time_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `reports/<prefix><unix time>/`.
fn default_dir_named(prefix: &str) -> PathBuf {
    PathBuf::from("reports").join(format!("{prefix}{}", unix_time_s()))
}

fn default_out_dir() -> PathBuf {
    default_dir_named("")
}

fn run(args: RunArgs, stop: &StopSignals) -> Result<ExitCode> {
    let scenario = args.scenario.load()?;
    let slos = args.gates.slos()?;
    // Every hold is a fresh arrival, so ∫λ over the run bounds the orders an embedded engine
    // must hold.
    let expected_orders = scenario.expected_arrivals_until(scenario.duration_s());
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    let metrics = args.target.metrics()?;
    let target = args.target.open(
        Some(expected_orders),
        Some((&out_dir, &scenario.name, args.seed)),
    )?;
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
        settings: RunSettings {
            target: target.clone(),
            out_dir: Some(out_dir),
            slos,
            driver: stop.driver(args.target.driver(args.drain_timeout_ms)),
            progress: !args.quiet,
            run_ids: args.ids.run_ids(),
            metrics,
        },
    });
    target.shutdown();
    let report = report?;
    let exit = print_report(&report, args.gates.require_valid, stop)?;
    Ok(exit.code())
}

fn calibrate(args: CalibrateArgs, stop: &StopSignals) -> Result<ExitCode> {
    let mut scenario = args.scenario.load()?;
    if args.scenario.duration.is_none() {
        scenario.set_duration_s(10.0)?;
    }
    let target = target::from_spec("noop", &TargetOptions::default())?;
    eprintln!(
        "calibrating: {} for {:.1}s at peak {:.0} req/s against noop, a target that answers at once",
        scenario.name,
        scenario.duration_s(),
        scenario.peak_offered_rate_per_s()
    );
    let report = run::execute(RunOptions {
        scenario,
        seed: args.seed,
        settings: RunSettings {
            target,
            out_dir: args.out.clone(),
            slos: Vec::new(),
            driver: stop.driver(args.pacer.driver(DriverConfig::default().drain_timeout_ms)),
            progress: !args.quiet,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })?;
    let s = &report.summary;
    println!(
        "this machine's floor ({} requests sent in {:.1} s):",
        s.send.sent, s.elapsed_s
    );
    println!("{}", s.validity.health_line());
    println!("{}", s.validity_line());
    println!("corrected latency against a target that answers at once (what the generator adds):");
    for (op, o) in s.ops.iter().filter(|(_, o)| o.count > 0) {
        let c = &o.corrected;
        println!(
            "  {op:<8} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            c.p50_us / 1000.0,
            c.p99_us / 1000.0,
            c.p999_us / 1000.0,
            c.max_us / 1000.0
        );
    }
    if let Some(dir) = &report.out_dir {
        println!("report: {}", dir.join("report.html").display());
    }
    let exit = if let Some(signal) = stop.signal() {
        Exit::Interrupted(signal)
    } else if args.require_valid.is_some_and(|p| !s.validity.covers(p)) {
        Exit::NotValid
    } else {
        Exit::Success
    };
    Ok(exit.code())
}

/// Prints a run's table, verdicts and SLO lines; the exit status they imply (`EXIT_STATUS`'s
/// order: 1, 4, 130/143, 5, 3). An invariant check the target did not answer is an error.
fn print_report(
    report: &run::RunReport,
    require_valid: Option<f64>,
    stop: &StopSignals,
) -> Result<Exit> {
    let s = &report.summary;
    print!("{}", s.table());
    for line in s.verdict.lines() {
        println!("{line}");
    }
    for slo in &s.slo {
        println!("{}", slo.line());
    }
    if let Some(dir) = &report.out_dir {
        println!("report: {}", dir.join("report.html").display());
    }
    match s.verdict.status {
        Verification::Incomplete => {
            bail!("the invariants could not be verified: {}", s.verdict.note)
        }
        Verification::Violated => return Ok(Exit::InvariantsViolated),
        Verification::Passed | Verification::NotChecked => {}
    }
    if s.status == RunStatus::Interrupted {
        return Ok(Exit::Interrupted(stop.signal().unwrap_or(SIGINT)));
    }
    if require_valid.is_some_and(|p| !s.validity.covers(p)) {
        return Ok(Exit::NotValid);
    }
    // A run stopped by --abort-on-fail breached, whatever its shorter window now says.
    if report.slo_breached() || s.status == RunStatus::Aborted {
        return Ok(Exit::SloBreached);
    }
    Ok(Exit::Success)
}

const SIGINT: u8 = 2;
const SIGTERM: u8 = 15;

/// SIGINT / SIGTERM: the first stops the run (`DriverConfig::stop`: it stops sending, drains
/// briefly and writes its report); a second ends the process at once.
struct StopSignals {
    stop: Arc<AtomicBool>,
    /// The first signal's number; 0 while none came.
    signal: Arc<AtomicU8>,
}

impl StopSignals {
    /// Installs the handlers on a thread of their own (before any run starts).
    fn catch() -> Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the signal handler")?;
        let (mut interrupt, mut terminate) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt()).context("catching SIGINT")?,
                signal(SignalKind::terminate()).context("catching SIGTERM")?,
            )
        };
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicU8::new(0));
        let (stop2, which2) = (stop.clone(), which.clone());
        std::thread::Builder::new()
            .name("loadgen-signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let signal = tokio::select! {
                            Some(()) = interrupt.recv() => SIGINT,
                            Some(()) = terminate.recv() => SIGTERM,
                            else => return,
                        };
                        if stop2.swap(true, Ordering::AcqRel) {
                            eprintln!("second signal: exiting without a report");
                            std::process::exit(128 + i32::from(signal));
                        }
                        which2.store(signal, Ordering::Release);
                        eprintln!(
                            "stopping: draining and writing the report of what ran (signal again to quit at once)"
                        );
                    }
                })
            })
            .context("spawning the signal thread")?;
        Ok(StopSignals {
            stop,
            signal: which,
        })
    }

    /// `driver` stopped by these signals.
    fn driver(&self, driver: DriverConfig) -> DriverConfig {
        DriverConfig {
            stop: Some(self.stop.clone()),
            ..driver
        }
    }

    fn signal(&self) -> Option<u8> {
        match self.signal.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }
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
    // Only the commands that drive a target stop gracefully; the others keep the default.
    let stop = StopSignals::catch;
    match cli.command {
        Cmd::Run(args) => run(args, &stop()?),
        Cmd::Calibrate(args) => calibrate(args, &stop()?),
        Cmd::Record(args) => record(args),
        Cmd::Replay(args) => replay(args, &stop()?),
        Cmd::Sweep(args) => sweep(args, &stop()?),
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
    let scenario = args.scenario.load()?;
    let source = match &args.scenario.scenario {
        Some(path) => ScenarioSource::File(path),
        None => ScenarioSource::Profile(&args.scenario.profile),
    };
    let trailer = trace::record(
        &scenario,
        source,
        args.scenario.duration,
        args.scenario.rate,
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

fn replay(args: ReplayArgs, stop: &StopSignals) -> Result<ExitCode> {
    use flashsale_loadgen::replay;
    let slos = args.gates.slos()?;
    let options = ReplayOptions {
        speed: args.speed,
        max_rate_per_s: args.max_rate,
        loops: args.loops,
        first_loop: 0,
        run_id: 0,
    };
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    let name = format!("replay of {}", args.trace.display());
    let metrics = args.target.metrics()?;
    let target = args.target.open(None, Some((&out_dir, &name, 0)))?;
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
        RunSettings {
            target: target.clone(),
            out_dir: Some(out_dir),
            slos,
            driver: stop.driver(args.target.driver(args.drain_timeout_ms)),
            progress: !args.quiet,
            run_ids: args.ids.run_ids(),
            metrics,
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
        None => println!("replay: ids shifted (loops or a run id); hash not comparable"),
    }
    if r.skipped_records > 0 {
        println!(
            "replay: {} query / restock records skipped (not order traffic)",
            r.skipped_records
        );
    }
    let exit = print_report(&result.run, args.gates.require_valid, stop)?;
    let exit = match exit {
        Exit::InvariantsViolated | Exit::Interrupted(_) => exit,
        _ if r.same_requests == Some(false) => Exit::ReplayDiffers,
        _ => exit,
    };
    Ok(exit.code())
}

fn sweep(args: SweepArgs, stop: &StopSignals) -> Result<ExitCode> {
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
    args.target.options(None)?;
    let seed = args.seed.unwrap_or_else(|| unix_time_s().max(1));
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_dir_named("sweep-"));
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
        driver: stop.driver(args.target.driver(args.drain_timeout_ms)),
        out_dir: out_dir.clone(),
        step_reports: args.step_reports,
        verbose: true,
        metrics: args.target.metrics()?,
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
            .options(None)
            .map_err(|e| target::TargetError::Unsupported(e.to_string()))?;
        target::from_spec(&args.target.target, &options)
    };
    let result = sweep::sweep(&options, &open)?;
    print!("{}", result.text());
    let (json, svg) = sweep::outputs(&out_dir);
    println!("sweep: {} and {}", json.display(), svg.display());
    let exit = if let Some(signal) = stop.signal() {
        Exit::Interrupted(signal)
    } else if result.max_rate_per_s.is_some() {
        Exit::Success
    } else {
        Exit::SloBreached
    };
    Ok(exit.code())
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    use flashsale_loadgen::import::{self, Format};
    let (input, format) = match (&args.csv, &args.jsonl) {
        (Some(csv), _) => (csv, Format::Csv),
        (None, Some(jsonl)) => (jsonl, Format::Jsonl),
        (None, None) => bail!("give --csv FILE or --jsonl FILE"),
    };
    let catalog = match &args.catalog {
        Some(path) => flashsale_engine::catalog::load_catalog(path)
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
