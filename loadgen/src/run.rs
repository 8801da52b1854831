//! One complete load run, shared by the binary and the tests: create the catalog on the target,
//! drive the schedule, verify the sale's invariants, evaluate SLOs and write the report
//! directory. It wires the other modules together; it must not parse command lines or decide
//! the process's exit code.
//!
//! What is sent is a [`Plan`]: built from a scenario here, or from a trace by `replay`; both go
//! through [`execute_plan`], so replays get the same driver, recorder, reports and SLO gating.

use crate::driver::{self, Arrivals, DriverConfig};
use crate::recorder::{Live, OPS};
use crate::report::{Summary, SummaryInput, hgrm, hlog::HlogWriter, html};
use crate::scenario::Scenario;
use crate::schedule::{self, FollowUps, Schedule, ScheduleError};
use crate::slo::Slo;
use crate::target::{Target, TargetError};
use crate::verify::{self, Ledger, Verdict};
use flashsale_engine::SkuConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

pub struct RunOptions {
    pub scenario: Scenario,
    pub seed: u64,
    pub target: Arc<dyn Target>,
    /// Where reports go; None writes nothing.
    pub out_dir: Option<PathBuf>,
    pub slos: Vec<Slo>,
    pub driver: DriverConfig,
    pub progress: bool,
}

/// What one run sends and how it is checked.
pub struct Plan {
    /// Shown in reports (the scenario's name, or `replay of FILE`).
    pub name: String,
    pub seed: u64,
    /// Created on the target before the clock starts (nothing when empty).
    pub catalog: Vec<SkuConfig>,
    pub arrivals: Box<dyn Arrivals + Send>,
    /// The funnel's pays, cancels and bot retries; None sends the arrivals only.
    pub follow_ups: Option<FollowUps>,
    /// (per-user limit, hold TTL in ms) for the ledger; None: invariants are not checked.
    pub ledger: Option<(u32, u64)>,
    pub duration_s: f64,
    pub peak_offered_rate_per_s: f64,
}

impl Plan {
    /// The generated schedule of a scenario, as `run` sends it.
    pub fn from_scenario(scenario: &Scenario, seed: u64) -> Result<Plan, RunError> {
        Ok(Plan {
            name: scenario.name.clone(),
            seed,
            catalog: schedule::catalog(scenario, seed),
            arrivals: Box::new(Schedule::new(scenario, seed)?),
            follow_ups: Some(FollowUps::new(scenario, seed)),
            ledger: Some((scenario.catalog.per_user_limit, scenario.hold_ttl_ms())),
            duration_s: scenario.duration_s(),
            peak_offered_rate_per_s: scenario.peak_offered_rate_per_s(),
        })
    }
}

/// Everything about a run that is not the workload.
pub struct RunSettings {
    pub target: Arc<dyn Target>,
    /// Where reports go; None writes nothing.
    pub out_dir: Option<PathBuf>,
    pub slos: Vec<Slo>,
    pub driver: DriverConfig,
    pub progress: bool,
}

/// The result of a run: the summary (with verdict and SLO results) and where it was written.
pub struct RunReport {
    pub summary: Summary,
    pub out_dir: Option<PathBuf>,
}

impl RunReport {
    pub fn slo_breached(&self) -> bool {
        self.summary.slo.iter().any(|s| !s.passed)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn execute(options: RunOptions) -> Result<RunReport, RunError> {
    let plan = Plan::from_scenario(&options.scenario, options.seed)?;
    execute_plan(
        plan,
        RunSettings {
            target: options.target,
            out_dir: options.out_dir,
            slos: options.slos,
            driver: options.driver,
            progress: options.progress,
        },
    )
}

/// Runs a plan: catalog setup, the open-loop driver, verification, SLOs, reports.
pub fn execute_plan(plan: Plan, mut options: RunSettings) -> Result<RunReport, RunError> {
    let started = SystemTime::now();
    let hlog = match &options.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let path = dir.join("latency.hlog");
            Some(HlogWriter::create(&path, started).map_err(io_err(&path))?)
        }
        None => None,
    };
    let target = options.target.clone();
    let Plan {
        name,
        seed,
        catalog,
        mut arrivals,
        follow_ups,
        ledger: ledger_spec,
        duration_s,
        peak_offered_rate_per_s,
    } = plan;
    if !catalog.is_empty() {
        tracing::info!(skus = catalog.len(), target = %target.describe(), "creating the catalog");
        target.setup(&catalog)?;
    }
    let (limit, ttl_ms) = ledger_spec.unwrap_or((u32::MAX, 1));
    let ledger = Ledger::new(limit, ttl_ms);
    let verifiable = target.keeps_state() && ledger_spec.is_some();
    options.driver.track_ledger = verifiable;
    let live = Arc::new(Live::default());

    let stop = Arc::new(AtomicBool::new(false));
    let progress = options.progress.then(|| {
        let bar = ProgressBar::new((duration_s * 1000.0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        let (bar2, live2, stop2) = (bar.clone(), live.clone(), stop.clone());
        let started_at = std::time::Instant::now();
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                bar2.set_position(started_at.elapsed().as_millis() as u64);
                bar2.set_message(format!(
                    "rate {}/s  reserve p99 {:.3} ms  errors {}",
                    live2.last_rate_per_s.load(Ordering::Relaxed),
                    live2.last_reserve_p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
                    live2.errors.load(Ordering::Relaxed)
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        (bar, handle)
    });

    let output = driver::run(
        target.clone(),
        &mut *arrivals,
        follow_ups,
        ledger,
        duration_s,
        &options.driver,
        live,
        hlog,
    );
    stop.store(true, Ordering::Release);
    if let Some((bar, handle)) = progress {
        let _ = handle.join();
        bar.finish_and_clear();
    }

    let mut summary = Summary::build(
        SummaryInput {
            scenario: &name,
            target: target.describe(),
            seed,
            started_at_unix_s: started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            peak_offered_rate_per_s,
        },
        &output.recording,
        &output.send,
    );
    summary.verdict = if verifiable {
        let ids: Vec<_> = catalog.iter().map(|c| c.sku_id).collect();
        let views = target.query_skus(&ids)?;
        let failures: u64 = ["transport_error", "timeout", "protocol_error", "busy"]
            .iter()
            .map(|l| summary.outcomes.get(l).copied().unwrap_or(0))
            .sum();
        let complete = output.send.unanswered == 0 && failures == 0;
        verify::verify(&catalog, &views, &output.ledger, complete)
    } else if target.keeps_state() {
        Verdict::skipped("the workload has no ledger model (a captured or imported trace)")
    } else {
        Verdict::skipped("the target keeps no state")
    };
    summary.slo = options
        .slos
        .iter()
        .map(|s| s.evaluate(&summary.ops))
        .collect();

    if let Some(dir) = &options.out_dir {
        if let Some(e) = &output.recording.hlog_error {
            return Err(RunError::Io {
                path: dir.join("latency.hlog"),
                source: std::io::Error::other(e.clone()),
            });
        }
        let path = dir.join("summary.json");
        summary.write_json(&path).map_err(io_err(&path))?;
        for (i, op) in OPS.iter().enumerate() {
            let h = &output.recording.total[i];
            let path = dir.join(format!("{op}.hgrm"));
            std::fs::write(&path, hgrm::format(&h.corrected)).map_err(io_err(&path))?;
            let path = dir.join(format!("{op}_service.hgrm"));
            std::fs::write(&path, hgrm::format(&h.service)).map_err(io_err(&path))?;
        }
        let path = dir.join("report.html");
        let page = html::render(&summary, &output.recording.points, &output.recording.total);
        std::fs::write(&path, page).map_err(io_err(&path))?;
    }
    Ok(RunReport {
        summary,
        out_dir: options.out_dir,
    })
}
