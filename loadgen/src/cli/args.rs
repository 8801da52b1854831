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
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
pub(super) struct ImportArgs {
    #[arg(long, conflicts_with = "jsonl", required_unless_present = "jsonl")]
    pub(super) csv: Option<PathBuf>,
    #[arg(long)]
    pub(super) jsonl: Option<PathBuf>,
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
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
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
    /// A network request unanswered after this long counts as a timeout (an error).
    #[arg(long, default_value_t = TargetOptions::default().request_timeout_ms)]
    pub(super) request_timeout_ms: u64,
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
    /// Pacer period in microseconds.
    #[arg(long, default_value_t = DriverConfig::default().tick_us)]
    pub(super) tick_us: u64,
    /// A request sent later than this after its intended time counts as late.
    #[arg(long, default_value_t = DriverConfig::default().late_threshold_us)]
    pub(super) late_threshold_us: u64,
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
            request_timeout_ms: self.request_timeout_ms.max(1),
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
    #[arg(long, value_parser = parse_duration_s)]
    pub(super) duration: Option<f64>,
    /// Scale the scenario so its peak scheduled rate is N requests/s (e.g. 325k, 2M).
    #[arg(long, value_parser = parse_rate)]
    pub(super) rate: Option<f64>,
}

impl ScenarioArgs {
    pub(super) fn load(&self) -> Result<Scenario> {
        load_scenario(
            &self.profile,
            self.scenario.as_ref(),
            self.duration,
            self.rate,
        )
    }
}

#[derive(Parser)]
pub(super) struct ReplayArgs {
    /// The trace file (from record, serve --capture or trace import).
    pub(super) trace: PathBuf,
    /// Recorded times are divided by this (2.0 = twice as fast).
    #[arg(long, default_value_t = ReplayOptions::default().speed)]
    pub(super) speed: f64,
    /// Lower the speed so the trace's busiest second offers at most N requests/s.
    #[arg(long, value_parser = parse_rate)]
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
    #[arg(long, default_value_t = DriverConfig::default().drain_timeout_ms)]
    pub(super) drain_timeout_ms: u64,
    #[arg(long)]
    pub(super) quiet: bool,
}

#[derive(Parser)]
pub(super) struct SweepArgs {
    /// Built-in profile (default steady: a flat plateau).
    #[arg(long, default_value = "steady")]
    pub(super) profile: String,
    #[arg(long, conflicts_with = "trace")]
    pub(super) scenario: Option<PathBuf>,
    /// Sweep a trace's replay speed instead of a scenario's rate.
    #[arg(long)]
    pub(super) trace: Option<PathBuf>,
    /// First step's rate: the scenario's peak scheduled rate, or the trace's busiest second.
    #[arg(long, value_parser = parse_rate)]
    pub(super) from: f64,
    /// Highest rate tried.
    #[arg(long, value_parser = parse_rate)]
    pub(super) to: f64,
    /// Each climbing step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub(super) step_factor: f64,
    /// Length of each step.
    #[arg(long, value_parser = parse_duration_s, default_value = "10s")]
    pub(super) step_duration: f64,
    /// A first, unjudged step at --from of this length (a fresh server's first seconds are not
    /// its steady state); 0 for none.
    #[arg(long, value_parser = parse_duration_or_zero, default_value = "2s")]
    pub(super) warmup: f64,
    /// Bisection stops when the failing rate is within this fraction of the passing one.
    #[arg(long, default_value_t = 0.05)]
    pub(super) precision: f64,
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
    /// How long a step waits for outstanding answers.
    #[arg(long, default_value_t = 2_000)]
    pub(super) drain_timeout_ms: u64,
}

#[derive(Parser)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) scenario: ScenarioArgs,
    #[command(flatten)]
    pub(super) target: TargetArgs,
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Report directory (default reports/<timestamp>/).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) gates: GateArgs,
    #[command(flatten)]
    pub(super) ids: IdArgs,
    /// How long to wait for outstanding answers after the schedule ends.
    #[arg(long, default_value_t = DriverConfig::default().drain_timeout_ms)]
    pub(super) drain_timeout_ms: u64,
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
pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
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

pub(super) fn parse_duration_s(s: &str) -> Result<f64, String> {
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

pub(super) fn parse_duration_or_zero(s: &str) -> Result<f64, String> {
    if s.trim().trim_end_matches(['s', 'm', 'h']).trim() == "0" {
        return Ok(0.0);
    }
    parse_duration_s(s)
}
