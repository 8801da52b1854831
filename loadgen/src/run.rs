//! One complete load run, shared by the binary and the tests: create the catalog on the target,
//! drive the schedule, verify the sale's invariants, evaluate SLOs and write the report
//! directory. It wires the other modules together; it must not parse command lines or decide
//! the process's exit code.

use crate::driver::{self, DriverConfig};
use crate::recorder::{Live, OPS};
use crate::report::{Summary, SummaryInput, hgrm, hlog::HlogWriter, html};
use crate::scenario::Scenario;
use crate::schedule::{self, FollowUps, Schedule, ScheduleError};
use crate::slo::Slo;
use crate::target::{Target, TargetError};
use crate::verify::{self, Ledger, Verdict};
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

pub fn execute(mut options: RunOptions) -> Result<RunReport, RunError> {
    let scenario = &options.scenario;
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
    let catalog = schedule::catalog(scenario, options.seed);
    tracing::info!(skus = catalog.len(), target = %target.describe(), "creating the catalog");
    target.setup(&catalog)?;

    let schedule = Schedule::new(scenario, options.seed)?;
    let follow_ups = FollowUps::new(scenario, options.seed);
    let ledger = Ledger::new(scenario.catalog.per_user_limit, scenario.hold_ttl_ms());
    options.driver.track_ledger = target.keeps_state();
    let live = Arc::new(Live::default());
    let duration_s = scenario.duration_s();

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
        schedule,
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
            scenario: &scenario.name,
            target: target.describe(),
            seed: options.seed,
            started_at_unix_s: started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            peak_offered_rate_per_s: scenario.peak_offered_rate_per_s(),
        },
        &output.recording,
        &output.send,
    );
    summary.verdict = if target.keeps_state() {
        let ids: Vec<_> = catalog.iter().map(|c| c.sku_id).collect();
        let views = target.query_skus(&ids)?;
        let failures: u64 = ["transport_error", "timeout", "protocol_error", "busy"]
            .iter()
            .map(|l| summary.outcomes.get(l).copied().unwrap_or(0))
            .sum();
        let complete = output.send.unanswered == 0 && failures == 0;
        verify::verify(&catalog, &views, &output.ledger, complete)
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
