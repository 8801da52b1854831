//! The flags of every subcommand, grouped as clap structs shared between the subcommands
//! (target, pacer, scenario, gates, ids), and what each group builds from them. It owns the
//! flags' names, help texts and defaults (taken from the library's `Default` impls); it must
//! not run anything.

use super::unix_time_s;
use crate::driver::DriverConfig;
use crate::metrics::GeneratorMetrics;
use crate::replay::ReplayOptions;
use crate::report::SummaryInput;
use crate::run::{self, RunIds};
use crate::scenario::Scenario;
use crate::slo::Slo;
use crate::targets::{self, TargetError, TargetOptions};
use crate::validity;
use anyhow::{Context, Result, bail};
use clap::Parser;
use flashsale_core::units;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
pub(super) struct ImportArgs {
    /// The CSV file to import (a header row naming the columns).
    #[arg(long, conflicts_with = "jsonl", required_unless_present = "jsonl")]
    pub(super) csv: Option<PathBuf>,
    /// The JSON Lines file to import (one object per line).
    #[arg(long)]
    pub(super) jsonl: Option<PathBuf>,
    /// The trace file to write.
    #[arg(long)]
    pub(super) out: PathBuf,
    /// A catalog TOML (the server's --catalog format) to embed, so a replay creates the SKUs.
    #[arg(long)]
    pub(super) catalog: Option<PathBuf>,
    /// Import the good rows and list the bad ones instead of refusing the import.
    #[arg(long)]
    pub(super) skip_bad: bool,
}

#[derive(Parser)]
pub(super) struct CalibrateArgs {
    #[command(flatten)]
    pub(super) scenario: ScenarioArgs,
    #[command(flatten)]
    pub(super) pacer: PacerArgs,
    /// Seed of the workload's random draws: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Also write the run's report directory.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Exit with status 5 unless this machine's floor is valid (up to PERCENTILE if given).
    #[arg(long, value_name = "PERCENTILE", num_args = 0..=1, default_missing_value = "max",
          value_parser = validity::parse_percentile)]
    pub(super) require_valid: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub(super) quiet: bool,
}

#[derive(Parser)]
pub(super) struct RecordArgs {
    #[command(flatten)]
    pub(super) scenario: ScenarioArgs,
    /// Seed of the workload's random draws: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// The trace file to write.
    #[arg(long)]
    pub(super) out: PathBuf,
}

/// Where requests go and how the pacer sends them (run, replay, sweep).
#[derive(clap::Args)]
pub(super) struct TargetArgs {
    /// inproc (embedded engine), noop, limited:RATE, http://HOST:PORT, tcp://HOST:PORT or
    /// redis://HOST:PORT[?pipeline=0|1][&flush=1] (the Redis + Lua baseline).
    #[arg(long, default_value = "inproc")]
    pub(super) target: String,
    /// Connections (concurrent in-flight requests) for network targets.
    #[arg(long, default_value_t = TargetOptions::default().connections)]
    pub(super) connections: usize,
    /// Shards of the embedded engine (default: one per CPU the generator's threads leave it).
    #[arg(long, default_value_t = TargetOptions::default().inproc_shards)]
    pub(super) shards: usize,
    /// A network request unanswered after this long counts as a timeout (an error), e.g. 5s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = Span::positive,
          default_value_t = Span::from_ms(TargetOptions::default().request_timeout_ms))]
    pub(super) request_timeout: Span,
    /// --request-timeout in plain milliseconds (the older spelling).
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        conflicts_with = "request_timeout"
    )]
    pub(super) request_timeout_ms: Option<u64>,
    /// Serve the generator's live metrics (Prometheus text format, GET /metrics) on this
    /// address while it runs, e.g. 127.0.0.1:9091 (port 0: any free port; the address is
    /// printed).
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub(super) pacer: PacerArgs,
}

/// How the pacer sends.
#[derive(clap::Args)]
pub(super) struct PacerArgs {
    /// Pacer period, e.g. 100us.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = Span::positive,
          default_value_t = Span::from_us(DriverConfig::default().tick_us))]
    pub(super) tick: Span,
    /// --tick in plain microseconds (the older spelling).
    #[arg(long, hide = true, value_name = "US", conflicts_with = "tick")]
    pub(super) tick_us: Option<u64>,
    /// A request sent later than this after its intended time counts as late, e.g. 2ms.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = Span::parse,
          default_value_t = Span::from_us(DriverConfig::default().late_threshold_us))]
    pub(super) late_threshold: Span,
    /// --late-threshold in plain microseconds (the older spelling).
    #[arg(
        long,
        hide = true,
        value_name = "US",
        conflicts_with = "late_threshold"
    )]
    pub(super) late_threshold_us: Option<u64>,
    /// Leave the pacer and the recorder unpinned (the default pins them, see "Threads and
    /// cores" in loadgen/README.md); on a machine busy with other work a pinned pacer cannot
    /// move to an idle CPU.
    #[arg(long)]
    pub(super) no_pin: bool,
}

impl PacerArgs {
    /// The driver's settings with this pacing and `drain_timeout_ms`.
    pub(super) fn driver(&self, drain_timeout_ms: u64) -> DriverConfig {
        DriverConfig {
            tick_us: self.tick_us.unwrap_or(self.tick.as_us()).max(1),
            late_threshold_us: self
                .late_threshold_us
                .unwrap_or(self.late_threshold.as_us()),
            drain_timeout_ms,
            pin_threads: !self.no_pin,
            ..DriverConfig::default()
        }
    }
}

/// What a run is judged by.
#[derive(clap::Args)]
pub(super) struct GateArgs {
    /// Threshold, repeatable: latency 'reserve.p99<2ms', 'pay.service.p99.9<5ms'; error ratio
    /// 'errors<0.1%', 'reserve.errors<1%'; rate 'reserve.rate>=300k'; any of them within a
    /// phase of the scenario, 'midnight:reserve.p99<2ms'. Errors (busy, rate_limited,
    /// timeouts, connection errors, unanswered; not sold_out or limit_exceeded) count as
    /// slower than any latency limit. A breach exits with status 3.
    #[arg(long = "slo")]
    pub(super) slos: Vec<String>,
    /// Stop the run as soon as a --slo is breached (judged at every 1 s interval once it has
    /// enough answers); the report covers what ran.
    #[arg(long)]
    pub(super) abort_on_fail: bool,
    /// Exit with status 5 unless the run is valid: its figures measure the target, not the
    /// generator. With a percentile (--require-valid=p99.9), valid up to that percentile.
    #[arg(long, value_name = "PERCENTILE", num_args = 0..=1, default_missing_value = "max",
          value_parser = validity::parse_percentile)]
    pub(super) require_valid: Option<f64>,
}

impl GateArgs {
    pub(super) fn slos(&self) -> Result<Vec<Slo>> {
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
pub(super) struct IdArgs {
    /// Refuse a target that already knows any SKU of this run's catalog (instead of running
    /// beside the earlier runs at the next free run id).
    #[arg(long, conflicts_with = "run_id")]
    pub(super) fresh: bool,
    /// Take exactly this run id (SKU and order ids shifted per run id; refused if the target
    /// knows its SKUs). Default: the first free one.
    #[arg(long)]
    pub(super) run_id: Option<u32>,
}

impl IdArgs {
    pub(super) fn run_ids(&self) -> RunIds {
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
    pub(super) fn options(&self, expected_orders: Option<f64>) -> Result<TargetOptions> {
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
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(self.request_timeout.as_ms())
                .max(1),
        })
    }

    /// Opens the target; when it cannot be reached, `report` (the report directory and the
    /// workload's name and seed) still gets a report saying so.
    pub(super) fn open(
        &self,
        expected_orders: Option<f64>,
        report: Option<(&Path, &str, u64)>,
    ) -> Result<Arc<dyn targets::Target>> {
        let options = self.options(expected_orders)?;
        let opened = targets::from_spec(&self.target, &options);
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

    pub(super) fn driver(&self, drain_timeout_ms: u64) -> DriverConfig {
        self.pacer.driver(drain_timeout_ms)
    }

    /// Starts the `--metrics-addr` endpoint, when asked for, and says where it listens.
    pub(super) fn metrics(&self) -> Result<Option<Arc<GeneratorMetrics>>> {
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
pub(super) struct ScenarioArgs {
    /// Built-in profile: double11, steady or spike.
    #[arg(long, default_value = "double11", conflicts_with = "scenario")]
    pub(super) profile: String,
    /// A scenario TOML file instead of a built-in profile.
    #[arg(long)]
    pub(super) scenario: Option<PathBuf>,
    /// Stretch the scenario to this length (e.g. 60s, 2m, 90).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = units::parse_positive_duration)]
    pub(super) duration: Option<Duration>,
    /// Scale the scenario so its peak scheduled rate is N requests/s (e.g. 325k, 2M).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate)]
    pub(super) rate: Option<f64>,
}

impl ScenarioArgs {
    pub(super) fn load(&self) -> Result<Scenario> {
        load_scenario(
            &self.profile,
            self.scenario.as_ref(),
            self.duration.map(|d| d.as_secs_f64()),
            self.rate,
        )
    }
}

#[derive(Parser)]
pub(super) struct ReplayArgs {
    /// The trace file (from record, serve --capture or trace import).
    pub(super) trace: PathBuf,
    /// Recorded times are divided by this (2x or 2 = twice as fast, 0.5x half as fast).
    #[arg(long, value_name = "SPEED", allow_hyphen_values = true, value_parser = units::parse_speed,
          default_value_t = ReplayOptions::default().speed)]
    pub(super) speed: f64,
    /// Lower the speed so the trace's busiest second offers at most N requests/s.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate)]
    pub(super) max_rate: Option<f64>,
    /// Play the trace K times back to back (order ids shifted per loop).
    #[arg(long = "loop", default_value_t = ReplayOptions::default().loops)]
    pub(super) loops: u64,
    #[command(flatten)]
    pub(super) target: TargetArgs,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) gates: GateArgs,
    #[command(flatten)]
    pub(super) ids: IdArgs,
    #[command(flatten)]
    pub(super) drain: DrainArgs,
    /// No progress bar.
    #[arg(long)]
    pub(super) quiet: bool,
}

#[derive(Parser)]
pub(super) struct SweepArgs {
    /// Built-in profile (default steady: a flat plateau).
    #[arg(long, default_value = "steady")]
    pub(super) profile: String,
    /// A scenario TOML file instead of a built-in profile.
    #[arg(long, conflicts_with = "trace")]
    pub(super) scenario: Option<PathBuf>,
    /// Sweep a trace's replay speed instead of a scenario's rate.
    #[arg(long)]
    pub(super) trace: Option<PathBuf>,
    /// First step's rate: the scenario's peak scheduled rate, or the trace's busiest second.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate)]
    pub(super) from: f64,
    /// Highest rate tried.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true, value_parser = units::parse_rate)]
    pub(super) to: f64,
    /// Each climbing step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub(super) step_factor: f64,
    /// Length of each step.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = units::parse_positive_duration, default_value = "10s")]
    pub(super) step_duration: Duration,
    /// A first, unjudged step at --from of this length (a fresh server's first seconds are not
    /// its steady state); 0 for none.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = units::parse_duration, default_value = "2s")]
    pub(super) warmup: Duration,
    /// Bisection stops when the failing rate is within this fraction of the passing one.
    #[arg(long, default_value_t = 0.05)]
    pub(super) precision: f64,
    /// Bisection steps at most after the climb (each one more step run).
    #[arg(long, default_value_t = 6)]
    pub(super) max_refinements: u32,
    /// Threshold(s) the rate must meet, e.g. 'reserve.p99<1ms'; at least one.
    #[arg(long = "slo", required = true)]
    pub(super) slos: Vec<String>,
    /// Stop a step once its live reserve p99 is this many times the SLO limit.
    #[arg(long, default_value_t = 10.0)]
    pub(super) far_factor: f64,
    /// Largest share of failed answers (busy, timeouts, …) a passing step may have.
    #[arg(long, default_value_t = 0.001)]
    pub(super) max_error_ratio: f64,
    #[command(flatten)]
    pub(super) target: TargetArgs,
    /// Seed of the first step (step i uses seed + i). Default: the current Unix time, so a
    /// second sweep against the same server does not repeat the first one's order ids (it is
    /// printed and kept in sweep.json: pass it to reproduce a sweep against a fresh server).
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Output directory for sweep.json and sweep.svg (default reports/sweep-<timestamp>/).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Also write every step's full report directory.
    #[arg(long)]
    pub(super) step_reports: bool,
    /// How long a step waits for outstanding answers, e.g. 2s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = Span::parse, default_value_t = Span::from_ms(STEP_DRAIN_TIMEOUT_MS))]
    pub(super) drain_timeout: Span,
    /// --drain-timeout in plain milliseconds (the older spelling).
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "drain_timeout")]
    pub(super) drain_timeout_ms: Option<u64>,
}

#[derive(Parser)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) scenario: ScenarioArgs,
    #[command(flatten)]
    pub(super) target: TargetArgs,
    /// Seed of the workload's random draws: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) gates: GateArgs,
    #[command(flatten)]
    pub(super) ids: IdArgs,
    #[command(flatten)]
    pub(super) drain: DrainArgs,
    /// No progress bar.
    #[arg(long)]
    pub(super) quiet: bool,
}

pub(super) fn load_scenario(
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

pub(super) fn parse_slos(specs: &[String]) -> Result<Vec<Slo>> {
    Ok(specs
        .iter()
        .map(|s| Slo::parse(s))
        .collect::<Result<Vec<_>, _>>()?)
}

/// How long a sweep's step waits for outstanding answers unless told (shorter than a run's: a
/// step is judged on what it answered in time).
const STEP_DRAIN_TIMEOUT_MS: u64 = 2_000;

impl SweepArgs {
    /// `--drain-timeout` (or the older `--drain-timeout-ms`) in milliseconds.
    pub(super) fn drain_timeout_ms(&self) -> u64 {
        self.drain_timeout_ms.unwrap_or(self.drain_timeout.as_ms())
    }
}

/// How long a run waits for outstanding answers once its schedule ends (run, replay).
#[derive(clap::Args)]
pub(super) struct DrainArgs {
    /// How long to wait for outstanding answers after the schedule ends, e.g. 10s, 500ms.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true,
          value_parser = Span::parse,
          default_value_t = Span::from_ms(DriverConfig::default().drain_timeout_ms))]
    drain_timeout: Span,
    /// --drain-timeout in plain milliseconds (the older spelling).
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "drain_timeout")]
    drain_timeout_ms: Option<u64>,
}

impl DrainArgs {
    /// The drain timeout in milliseconds.
    pub(super) fn ms(&self) -> u64 {
        self.drain_timeout_ms.unwrap_or(self.drain_timeout.as_ms())
    }
}

/// A duration flag's value, shown in `--help` the way it is typed (`10s`, `100us`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span(Duration);

impl Span {
    fn from_ms(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }

    fn from_us(us: u64) -> Span {
        Span(Duration::from_micros(us))
    }

    /// [`units::parse_duration`] (zero allowed).
    fn parse(text: &str) -> Result<Span, units::UnitError> {
        units::parse_duration(text).map(Span)
    }

    /// [`units::parse_positive_duration`].
    fn positive(text: &str) -> Result<Span, units::UnitError> {
        units::parse_positive_duration(text).map(Span)
    }

    fn as_ms(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    fn as_us(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = self.0.as_nanos();
        match ns {
            0 => write!(f, "0s"),
            _ if ns.is_multiple_of(1_000_000_000) => write!(f, "{}s", ns / 1_000_000_000),
            _ if ns.is_multiple_of(1_000_000) => write!(f, "{}ms", ns / 1_000_000),
            _ if ns.is_multiple_of(1_000) => write!(f, "{}us", ns / 1_000),
            _ => write!(f, "{ns}ns"),
        }
    }
}
