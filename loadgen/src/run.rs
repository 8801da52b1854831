//! One complete load run, shared by the binary and the tests: take ids of its own on the
//! target, create the catalog, drive the schedule, verify the sale's invariants, judge the
//! SLOs and the run's validity, and write the report directory — whatever happened: an
//! interrupted, aborted or failed run still leaves its report, marked as such. It wires the
//! other modules together; it must not parse command lines or decide the process's exit code.
//!
//! What is sent is a [`Plan`]: built from a scenario here, or from a trace by `replay`; both go
//! through [`execute_workload`], so replays get the same driver, recorder, reports and gates.
//!
//! A run never overwrites SKUs it did not create. Each run takes a run id k: its SKU ids are
//! the workload's shifted by k × (the span of its SKU ids) and its order ids are its own
//! (a scenario's: `order_id_base(seed) + k·2³²`). By default it takes the first run id whose
//! SKUs the target does not know, so a second run against a used server runs beside the first
//! one and verifies only what it did itself.

use crate::driver::schedule::{self, FollowUps, Schedule, ScheduleError, order_id_base};
use crate::driver::{self, AbortWhen, Arrivals, DriverConfig, RunOutput};
use crate::metrics::GeneratorMetrics;
use crate::recorder::{
    Live, N_LABELS, OPS, OpHistograms, Recording, Sinks, is_error_label, new_histogram,
};
use crate::report::intervals::IntervalsWriter;
use crate::report::{RunStatus, Summary, SummaryInput, hgrm, hlog::HlogWriter, html};
use crate::scenario::Scenario;
use crate::slo::{Slo, SloResult, Window};
use crate::targets::{Failure, Target, TargetError};
use crate::validity::Validity;
use crate::verify::{self, Ledger, Verdict};
use crate::windows::{PhaseSpan, Tripwire, Windows};
use flashsale_engine::{OutcomeCode, SkuConfig, SkuId};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The highest run id (a scenario's order ids keep 8 bits for it).
pub const MAX_RUN_ID: u32 = 255;

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
    #[error(
        "the target already holds SKU {sku_id} of run id {run_id}'s catalog (SKUs {first}..={last}), created by an earlier run; a run never overwrites SKUs it did not create: {hint}"
    )]
    UsedTarget {
        sku_id: SkuId,
        run_id: u32,
        first: SkuId,
        last: SkuId,
        hint: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Which run id a run takes on its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunIds {
    /// The first run id whose SKUs the target does not know (0 on a fresh target).
    #[default]
    Auto,
    /// Exactly this one; refused when the target knows any of its SKUs.
    Fixed(u32),
    /// Run id 0, refused unless the target knows none of its SKUs (`--fresh`).
    Fresh,
}

/// A workload's SKU ids at run id 0 and how far one run id shifts them.
#[derive(Clone, Debug)]
pub struct IdLayout {
    pub sku_ids: Vec<SkuId>,
    pub sku_span: u32,
}

impl IdLayout {
    /// The SKU ids at `run_id`, or why they do not fit in 32 bits.
    pub fn at(&self, run_id: u32) -> Result<Vec<SkuId>, RunError> {
        let shift = run_id.checked_mul(self.sku_span);
        self.sku_ids
            .iter()
            .map(|&id| shift.and_then(|s| id.checked_add(s)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                RunError::Invalid(format!(
                    "run id {run_id}: its SKU ids would overflow 32 bits (use a fresh target)"
                ))
            })
    }
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
    /// Every order the run may create (an estimate): the ledger's tables are sized for it
    /// before the clock starts, so they never grow — a rehash of millions of entries on the
    /// recorder stalled it for 300 ms — mid-run.
    pub expected_orders: usize,
    pub duration_s: f64,
    pub peak_offered_rate_per_s: f64,
    /// The scenario's phases, for per-phase thresholds (none for a trace).
    pub phases: Vec<PhaseSpan>,
    pub run_id: u32,
    /// The ids it uses, in words.
    pub ids: String,
}

impl Plan {
    /// The generated schedule of a scenario at run id 0.
    pub fn from_scenario(scenario: &Scenario, seed: u64) -> Result<Plan, RunError> {
        Plan::from_scenario_at(scenario, seed, 0)
    }

    /// The scenario's ids of run id `run_id`: SKUs shifted by `run_id × skus`, order ids from
    /// `order_id_base(seed) + run_id·2³²`.
    pub fn from_scenario_at(scenario: &Scenario, seed: u64, run_id: u32) -> Result<Plan, RunError> {
        if run_id > MAX_RUN_ID {
            return Err(RunError::Invalid(format!(
                "run id {run_id} is above {MAX_RUN_ID}"
            )));
        }
        let expected_orders = scenario.expected_arrivals_until(scenario.duration_s());
        if expected_orders * 1.2 >= (1u64 << 32) as f64 {
            return Err(RunError::Invalid(format!(
                "the run would create ~{expected_orders:.0} orders: more than one run id's 2^32 order ids"
            )));
        }
        let layout = scenario_layout(scenario);
        let ids = layout.at(run_id)?;
        let mut placed = scenario.clone();
        placed.catalog.first_sku_id = ids[0];
        let first_order = order_id_base(seed) + (u64::from(run_id) << 32);
        Ok(Plan {
            name: scenario.name.clone(),
            seed,
            catalog: schedule::catalog(&placed, seed),
            arrivals: Box::new(Schedule::with_order_id_base(&placed, seed, first_order)?),
            follow_ups: Some(FollowUps::new(&placed, seed)),
            ledger: Some((scenario.catalog.per_user_limit, scenario.hold_ttl_ms())),
            // Room for every reserve the funnel may send, duplicates and retries included.
            expected_orders: (expected_orders * 1.1) as usize,
            duration_s: scenario.duration_s(),
            peak_offered_rate_per_s: scenario.peak_offered_rate_per_s(),
            phases: scenario
                .phase_bounds_s()
                .into_iter()
                .map(|(name, start_s, end_s)| PhaseSpan {
                    name,
                    start_s,
                    end_s,
                })
                .collect(),
            run_id,
            ids: format!(
                "SKUs {}..={}, order ids from {first_order:#x}",
                ids[0],
                ids[ids.len() - 1]
            ),
        })
    }
}

/// A scenario's SKU ids: `first_sku_id ..` for `skus`, shifted by `skus` per run id.
pub fn scenario_layout(scenario: &Scenario) -> IdLayout {
    let c = &scenario.catalog;
    IdLayout {
        sku_ids: (0..c.skus).map(|i| c.first_sku_id + i).collect(),
        sku_span: c.skus,
    }
}

/// Everything about a run that is not the workload.
pub struct RunSettings {
    pub target: Arc<dyn Target>,
    /// Where reports go; None writes nothing.
    pub out_dir: Option<PathBuf>,
    pub slos: Vec<Slo>,
    /// Pacing; `driver.stop` is the external stop flag (SIGINT / SIGTERM).
    pub driver: DriverConfig,
    pub progress: bool,
    pub run_ids: RunIds,
    /// The `--metrics-addr` endpoint's figures, added to as the run goes (None: no endpoint).
    pub metrics: Option<Arc<GeneratorMetrics>>,
}

/// A scenario run.
pub struct RunOptions {
    pub scenario: Scenario,
    pub seed: u64,
    pub settings: RunSettings,
}

/// The result of a run: the summary (status, validity, verdict, SLO results) and where it
/// was written.
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
    let RunOptions {
        scenario,
        seed,
        settings,
    } = options;
    let layout = scenario_layout(&scenario);
    execute_workload(
        &layout,
        &mut |run_id| Plan::from_scenario_at(&scenario, seed, run_id),
        settings,
    )
}

/// Takes a run id on the target (see the module docs), builds the plan for it and runs it.
pub fn execute_workload(
    layout: &IdLayout,
    build: &mut dyn FnMut(u32) -> Result<Plan, RunError>,
    settings: RunSettings,
) -> Result<RunReport, RunError> {
    let run_id = take_run_id(&*settings.target, layout, settings.run_ids)?;
    execute_claimed(build(run_id)?, settings)
}

/// Runs a plan as it is; refused when the target already knows one of its SKUs.
pub fn execute_plan(plan: Plan, settings: RunSettings) -> Result<RunReport, RunError> {
    let layout = IdLayout {
        sku_ids: plan.catalog.iter().map(|c| c.sku_id).collect(),
        sku_span: 0,
    };
    take_run_id(&*settings.target, &layout, RunIds::Fixed(plan.run_id))?;
    execute_claimed(plan, settings)
}

/// The run id `choice` allows whose SKUs the target does not know.
fn take_run_id(target: &dyn Target, layout: &IdLayout, choice: RunIds) -> Result<u32, RunError> {
    let (candidates, hint) = match choice {
        RunIds::Auto => (
            0..=MAX_RUN_ID,
            "all run ids are taken on this target: restart it",
        ),
        RunIds::Fixed(k) => (
            k..=k,
            "choose another --run-id, or leave it out to take the next free one",
        ),
        RunIds::Fresh => (
            0..=0,
            "--fresh wants a target that knows none of them: restart it, or leave out --fresh to run beside the earlier runs at the next free run id",
        ),
    };
    if layout.sku_ids.is_empty() || !target.keeps_state() {
        return Ok(*candidates.start());
    }
    let mut used = None;
    for run_id in candidates {
        let ids = layout.at(run_id)?;
        // The first SKU alone settles most probes of a used run id in one small query.
        let first_known = target
            .query_skus(&ids[..1])?
            .first()
            .is_some_and(Option::is_some);
        let known = if first_known {
            Some(ids[0])
        } else {
            target
                .query_skus(&ids[1..])?
                .iter()
                .zip(&ids[1..])
                .find_map(|(view, &id)| view.as_ref().map(|_| id))
        };
        match known {
            None => return Ok(run_id),
            Some(sku_id) => used = Some((run_id, sku_id, ids[0], ids[ids.len() - 1])),
        }
    }
    let (run_id, sku_id, first, last) = used.expect("at least one run id was tried");
    Err(RunError::UsedTarget {
        sku_id,
        run_id,
        first,
        last,
        hint,
    })
}

/// Where the run's files go, and the windows fed by its intervals.
struct Outputs {
    hlog: HlogWriter,
    intervals: Option<IntervalsWriter>,
    windows: Arc<Mutex<Windows>>,
    tripwire: Tripwire,
}

fn prepare_outputs(
    dir: Option<&Path>,
    started: SystemTime,
    phases: &[PhaseSpan],
    slos: &[Slo],
    live: &Arc<Live>,
) -> Result<Outputs, RunError> {
    let (hlog, intervals) = match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let path = dir.join("latency.hlog");
            let hlog = HlogWriter::create(&path, started).map_err(io_err(&path))?;
            let path = dir.join("intervals.jsonl");
            let intervals = IntervalsWriter::create(&path).map_err(io_err(&path))?;
            (hlog, Some(intervals))
        }
        None => (HlogWriter::without_file(), None),
    };
    let (windows, tripwire) = Windows::new(phases.to_vec(), slos, live.clone());
    let windows = Arc::new(Mutex::new(windows));
    Ok(Outputs {
        hlog: hlog.feeding(windows.clone()),
        intervals,
        windows,
        tripwire,
    })
}

/// Checks that every phase a threshold names is one of the plan's.
fn check_phases(slos: &[Slo], phases: &[PhaseSpan]) -> Result<(), RunError> {
    for slo in slos {
        let Some(name) = &slo.phase else { continue };
        if !phases.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
            return Err(RunError::Invalid(if known.is_empty() {
                format!(
                    "SLO `{}` names phase `{name}`, but this workload has no phases (a trace)",
                    slo.spec
                )
            } else {
                format!(
                    "SLO `{}` names phase `{name}`; the scenario's phases are {}",
                    slo.spec,
                    known.join(", ")
                )
            }));
        }
    }
    Ok(())
}

/// Runs a plan whose ids are the run's own: catalog setup, the open-loop driver,
/// verification, SLOs, validity, reports.
fn execute_claimed(plan: Plan, mut settings: RunSettings) -> Result<RunReport, RunError> {
    check_phases(&settings.slos, &plan.phases)?;
    let started = SystemTime::now();
    let live = Arc::new(Live::default());
    let outputs = prepare_outputs(
        settings.out_dir.as_deref(),
        started,
        &plan.phases,
        &settings.slos,
        &live,
    )?;
    let input = SummaryInput {
        scenario: &plan.name,
        target: settings.target.describe(),
        seed: plan.seed,
        started_at_unix_s: started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        peak_offered_rate_per_s: plan.peak_offered_rate_per_s,
    };
    let target = settings.target.clone();
    if !plan.catalog.is_empty() {
        tracing::info!(skus = plan.catalog.len(), target = %target.describe(), "creating the catalog");
        let started = std::time::Instant::now();
        if settings.progress {
            eprintln!(
                "creating the catalog: {} SKUs on {} ...",
                plan.catalog.len(),
                target.describe()
            );
        }
        let created = target.setup(&plan.catalog);
        if settings.progress && created.is_ok() {
            eprintln!(
                "catalog created in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if let Err(e) = created {
            if let Some(dir) = &settings.out_dir {
                let reason = format!("catalog setup failed: {e}");
                write_failed_report(dir, input, plan.run_id, &plan.ids, &reason)?;
            }
            return Err(e.into());
        }
    }
    let verifiable = target.keeps_state() && plan.ledger.is_some();
    settings.driver.track_ledger = verifiable;
    let abort_on_tripwire = settings.slos.iter().any(|s| s.abort);
    if abort_on_tripwire {
        settings.driver.abort = Some(abort_or_tripped(
            settings.driver.abort.take(),
            outputs.tripwire.clone(),
        ));
    }
    let output = drive(
        plan.arrivals,
        plan.follow_ups,
        plan.ledger
            .map(|(limit, ttl_ms)| (limit, ttl_ms, plan.expected_orders)),
        plan.duration_s,
        &settings,
        live,
        Sinks {
            hlog: Some(outputs.hlog),
            intervals: outputs.intervals,
            metrics: settings.metrics.clone(),
        },
    );

    let mut summary = Summary::build(
        input,
        &output.recording,
        &output.send,
        Validity::judge(&output.health),
    );
    summary.run_id = plan.run_id;
    summary.ids = plan.ids.clone();
    (summary.status, summary.status_detail) = status_of(&output, &outputs.tripwire);
    let started = std::time::Instant::now();
    if settings.progress && verifiable {
        eprintln!(
            "verifying the invariants of {} SKUs ...",
            plan.catalog.len()
        );
    }
    summary.verdict = verify_after(&*target, &plan.catalog, &output, &summary, verifiable);
    if settings.progress && verifiable {
        eprintln!("verified in {:.1} s", started.elapsed().as_secs_f64());
    }
    let windows = outputs
        .windows
        .lock()
        .map_err(|_| RunError::Invalid("the interval windows were poisoned by a panic".into()))?;
    summary.slo = judge_slos(&settings.slos, &output, &windows);
    summary
        .warnings
        .extend(short_phases(&settings.slos, &plan.phases));
    if let Some(e) = &output.recording.hlog_error {
        summary
            .warnings
            .push(format!("latency.hlog is incomplete: {e}"));
    }
    if let Some(e) = &output.recording.intervals_error {
        summary
            .warnings
            .push(format!("intervals.jsonl is incomplete: {e}"));
    }
    if let Some(dir) = &settings.out_dir {
        write_reports(dir, &summary, &output.recording)?;
    }
    Ok(RunReport {
        summary,
        out_dir: settings.out_dir,
    })
}

/// The driver's abort condition, or'ed with the abort-on-fail tripwire.
fn abort_or_tripped(previous: Option<AbortWhen>, tripwire: Tripwire) -> AbortWhen {
    AbortWhen(Arc::new(move |live: &Live| {
        tripwire.is_tripped() || previous.as_ref().is_some_and(|p| (p.0)(live))
    }))
}

/// The open-loop driver, with the progress bar when asked for.
fn drive(
    mut arrivals: Box<dyn Arrivals + Send>,
    follow_ups: Option<FollowUps>,
    ledger: Option<(u32, u64, usize)>,
    duration_s: f64,
    settings: &RunSettings,
    live: Arc<Live>,
    sinks: Sinks,
) -> RunOutput {
    let ledger = match ledger {
        Some((limit, ttl_ms, orders)) => Ledger::new(limit, ttl_ms).with_room_for(orders),
        None => Ledger::new(u32::MAX, 1),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let progress = settings.progress.then(|| {
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
        settings.target.clone(),
        &mut *arrivals,
        follow_ups,
        ledger,
        duration_s,
        &settings.driver,
        live,
        Some(sinks),
    );
    stop.store(true, Ordering::Release);
    if let Some((bar, handle)) = progress {
        let _ = handle.join();
        bar.finish_and_clear();
    }
    output
}

/// How the run ended and, when early, why.
fn status_of(output: &RunOutput, tripwire: &Tripwire) -> (RunStatus, String) {
    let send = &output.send;
    if send.interrupted {
        (
            RunStatus::Interrupted,
            format!(
                "stopped by a signal after {:.1} s of the {:.1} s schedule; the report covers what ran",
                send.elapsed_s, send.schedule_duration_s
            ),
        )
    } else if send.aborted {
        let why = tripwire
            .why()
            .unwrap_or_else(|| "its abort condition held".to_string());
        (
            RunStatus::Aborted,
            format!("stopped after {:.1} s: {why}", send.elapsed_s),
        )
    } else {
        (RunStatus::Complete, String::new())
    }
}

/// The invariant verdict from the target's SKU views and the ledger; a target that does not
/// answer its queries makes it `incomplete`, never an error that loses the run.
fn verify_after(
    target: &dyn Target,
    catalog: &[SkuConfig],
    output: &RunOutput,
    summary: &Summary,
    verifiable: bool,
) -> Verdict {
    if !verifiable {
        return if target.keeps_state() {
            Verdict::skipped("the workload has no ledger model (a captured or imported trace)")
        } else {
            Verdict::skipped("the target keeps no state")
        };
    }
    let ids: Vec<_> = catalog.iter().map(|c| c.sku_id).collect();
    let views = match target.query_skus(&ids) {
        Ok(views) => views,
        Err(e) => {
            return Verdict::incomplete(&format!(
                "the target did not answer the SKU queries after the run ({e})"
            ));
        }
    };
    // Answers that may hide an applied pay: only with none can paid units be compared.
    let unknown: u64 = [
        Failure::Transport.label(),
        Failure::Timeout.label(),
        Failure::Protocol.label(),
        OutcomeCode::Busy.as_str(),
    ]
    .iter()
    .map(|l| summary.outcomes.get(l).copied().unwrap_or(0))
    .sum();
    let complete = output.send.unanswered == 0 && unknown == 0;
    verify::verify(catalog, &views, &output.ledger, complete)
}

fn error_count(outcomes: &[u64; N_LABELS]) -> u64 {
    (0..N_LABELS)
        .filter(|&l| is_error_label(l))
        .map(|l| outcomes[l])
        .sum()
}

/// Judges every threshold: the run's over the whole recording, a phase's over its intervals.
fn judge_slos(slos: &[Slo], output: &RunOutput, windows: &Windows) -> Vec<SloResult> {
    let recording = &output.recording;
    let errors_by_op = [0, 1, 2].map(|op| error_count(&recording.outcomes[op]));
    let run = Window {
        histograms: &recording.total,
        errors_by_op: Some(errors_by_op),
        errors: errors_by_op.iter().sum(),
        unanswered: output.send.unanswered,
        duration_s: output.send.elapsed_s,
    };
    slos.iter()
        .map(|slo| match &slo.phase {
            None => slo.evaluate(&run),
            Some(name) => {
                let Some((index, histograms, _)) = windows.phase(name) else {
                    return slo.evaluate(&Window {
                        histograms: &empty_histograms(),
                        errors_by_op: None,
                        errors: 0,
                        unanswered: 0,
                        duration_s: 0.0,
                    });
                };
                // The phase's errors and length, exactly, from the intervals' own counts.
                let points: Vec<_> = recording
                    .points
                    .iter()
                    .filter(|p| windows.phase_of(p.start_s, 1.0) == Some(index))
                    .collect();
                slo.evaluate(&Window {
                    histograms,
                    errors_by_op: None,
                    errors: points.iter().map(|p| error_count(&p.outcomes)).sum(),
                    unanswered: 0,
                    duration_s: points.len() as f64,
                })
            }
        })
        .collect()
}

/// Phases a threshold names that are shorter than two of the 1 s intervals they are judged by.
fn short_phases(slos: &[Slo], phases: &[PhaseSpan]) -> Vec<String> {
    let mut named: Vec<&PhaseSpan> = slos
        .iter()
        .filter_map(|s| phases.iter().find(|p| Some(&p.name) == s.phase.as_ref()))
        .filter(|p| p.end_s - p.start_s < 2.0)
        .collect();
    named.dedup_by(|a, b| a.name == b.name);
    named
        .into_iter()
        .map(|p| {
            format!(
                "phase {} lasts {:.2} s, less than two of the 1 s intervals its thresholds are judged over: stretch the run (--duration) for a sharper window",
                p.name,
                p.end_s - p.start_s
            )
        })
        .collect()
}

fn empty_histograms() -> [OpHistograms; 3] {
    [0, 1, 2].map(|_| OpHistograms {
        corrected: new_histogram(),
        service: new_histogram(),
    })
}

fn write_reports(dir: &Path, summary: &Summary, recording: &Recording) -> Result<(), RunError> {
    let path = dir.join("summary.json");
    summary.write_json(&path).map_err(io_err(&path))?;
    for (i, op) in OPS.iter().enumerate() {
        let h = &recording.total[i];
        let path = dir.join(format!("{op}.hgrm"));
        std::fs::write(&path, hgrm::format(&h.corrected)).map_err(io_err(&path))?;
        let path = dir.join(format!("{op}_service.hgrm"));
        std::fs::write(&path, hgrm::format(&h.service)).map_err(io_err(&path))?;
    }
    let path = dir.join("report.html");
    let page = html::render(summary, &recording.points, &recording.total);
    std::fs::write(&path, page).map_err(io_err(&path))
}

/// Writes `summary.json` and `report.html` for a run that could not start — an unreachable
/// target, a failed catalog setup: status `failed`, nothing measured, the verification
/// incomplete with `reason`.
pub fn write_failed_report(
    dir: &Path,
    input: SummaryInput<'_>,
    run_id: u32,
    ids: &str,
    reason: &str,
) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let recording = Recording {
        total: empty_histograms(),
        outcomes: [[0; N_LABELS]; 3],
        points: Vec::new(),
        hlog_error: None,
        intervals_error: None,
    };
    let send = driver::SendStats::default();
    let mut summary = Summary::build(
        input,
        &recording,
        &send,
        Validity::judge(&Default::default()),
    );
    summary.status = RunStatus::Failed;
    summary.status_detail = reason.to_string();
    summary.run_id = run_id;
    summary.ids = ids.to_string();
    summary.verdict = Verdict::incomplete(reason);
    write_reports(dir, &summary, &recording)
}
