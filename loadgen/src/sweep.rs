//! The capacity sweep: runs steps of increasing offered rate (a geometric series from `from` to
//! `to`), stops climbing at the first step that breaks the SLO, then bisects between the last
//! passing and the first failing rate, and reports the highest rate that met the SLO. A step
//! whose live reserve p99 is far past the SLO (×`far_factor`, two intervals running) is stopped
//! early. Each step is an ordinary run (`run::execute_plan`: same driver, recorder, SLO
//! evaluation) on a fresh target from the factory, with its own seed / order-id range so steps
//! against one server never collide. Output: `sweep.json` (every step's offered and achieved
//! rate and percentiles) and `sweep.svg` (latency percentiles and achieved rate against offered
//! rate). An optional warm-up step at `from` comes first and is not judged. It owns the search
//! and its output; it must not pace requests or judge SLOs itself.

use crate::driver::schedule::Op;
use crate::driver::{AbortWhen, DriverConfig};
use crate::metrics::GeneratorMetrics;
use crate::recorder::{LABELS, Live, Percentiles, is_error_label};
use crate::replay::{self, ReplayError, ReplayOptions};
use crate::report::chart::{self, Series, Style};
use crate::run::{self, Plan, RunError, RunIds, RunSettings};
use crate::scenario::{Scenario, ScenarioError};
use crate::slo::{Slo, SloResult};
use crate::targets::{Target, TargetError};
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("invalid sweep: {0}")]
    Invalid(String),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("opening the target for step {step}: {source}")]
    Target { step: usize, source: TargetError },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What each step sends.
#[derive(Clone, Debug)]
pub enum SweepWorkload {
    /// Scaled so its peak scheduled rate is the step's rate, stretched to the step's length.
    Scenario(Box<Scenario>),
    /// Replayed at the speed that makes its busiest second the step's rate, looped to fill the
    /// step's length.
    Trace(PathBuf),
}

pub struct SweepOptions {
    pub workload: SweepWorkload,
    pub seed: u64,
    pub from_rate_per_s: f64,
    pub to_rate_per_s: f64,
    /// Each climbing step's rate is the previous one's times this.
    pub step_factor: f64,
    pub step_duration_s: f64,
    /// A first step at `from` of this length, not judged (0: none): a fresh server's first
    /// seconds (page faults, table growth, connection set-up) are not its steady state.
    pub warmup_s: f64,
    /// Bisection stops once the failing rate is within this fraction above the passing one.
    pub precision: f64,
    pub max_refinements: u32,
    pub slos: Vec<Slo>,
    /// A step is stopped once its live reserve p99 exceeds this many times the largest SLO limit.
    pub far_factor: f64,
    /// Largest share of failed answers (busy, timeouts, transport errors, …) a passing step may
    /// have.
    pub max_error_ratio: f64,
    pub driver: DriverConfig,
    pub out_dir: PathBuf,
    /// Also write every step's full report directory (`step-NN/`).
    pub step_reports: bool,
    /// Print one line per step to stderr.
    pub verbose: bool,
    /// The `--metrics-addr` endpoint's figures: every step adds to them.
    pub metrics: Option<Arc<GeneratorMetrics>>,
}

/// Figures of one op in one step.
#[derive(Clone, Debug, Serialize)]
pub struct StepOp {
    pub corrected: Percentiles,
    pub service: Percentiles,
}

/// One step's result.
#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    pub index: usize,
    /// `warmup` (not judged), `climb` or `bisect`.
    pub phase: &'static str,
    /// The rate asked for: the scenario's peak scheduled (fresh) rate, or the trace's busiest
    /// second × speed.
    pub rate_per_s: f64,
    /// Requests sent per second of schedule (follow-ups included).
    pub offered_rate_per_s: f64,
    /// Answers per second of wall time (the drain included).
    pub achieved_rate_per_s: f64,
    pub sent: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub error_ratio: f64,
    pub sent_late_ratio: f64,
    pub aborted: bool,
    /// Stopped by SIGINT / SIGTERM: the sweep ended with this step.
    pub interrupted: bool,
    pub ops: BTreeMap<String, StepOp>,
    pub slo: Vec<SloResult>,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub why: String,
}

/// The version of `sweep.json`'s layout (docs/report-schema.md); raised on every change that
/// renames, removes or retypes a field.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// The whole sweep (each field documented in docs/report-schema.md).
#[derive(Clone, Debug, Serialize)]
pub struct SweepResult {
    /// [`SWEEP_SCHEMA_VERSION`].
    pub schema_version: u32,
    pub workload: String,
    pub target: String,
    pub slos: Vec<String>,
    pub step_duration_s: f64,
    /// The first step's seed (step i uses seed + i).
    pub seed: u64,
    /// Highest step rate that met every SLO (None: even `from` failed).
    pub max_rate_per_s: Option<f64>,
    /// That step's measured offered and achieved request rates.
    pub max_offered_rate_per_s: Option<f64>,
    pub max_achieved_rate_per_s: Option<f64>,
    /// Lowest rate that failed (None: `to` passed, the capacity is at least `to`).
    pub first_failing_rate_per_s: Option<f64>,
    pub steps: Vec<StepResult>,
}

impl SweepResult {
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let op = self.chart_op();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>3} {:>7} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}  verdict",
            "#", "phase", "rate/s", "offered/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for s in &self.steps {
            let p = s.ops.get(&op).map(|o| o.corrected).unwrap_or_default();
            let _ = writeln!(
                out,
                "{:>3} {:>7} {:>12.0} {:>12.0} {:>12.0} {:>10.3} {:>10.3} {:>10.3}  {}",
                s.index,
                s.phase,
                s.rate_per_s,
                s.offered_rate_per_s,
                s.achieved_rate_per_s,
                p.p50_us / 1000.0,
                p.p99_us / 1000.0,
                p.p999_us / 1000.0,
                if s.passed { "pass" } else { &s.why }
            );
        }
        match (self.max_rate_per_s, self.first_failing_rate_per_s) {
            (Some(r), Some(f)) => {
                let _ = writeln!(
                    out,
                    "max rate meeting {}: {:.0}/s (offered {:.0} requests/s); {:.0}/s failed",
                    self.slos.join(", "),
                    r,
                    self.max_offered_rate_per_s.unwrap_or(0.0),
                    f
                );
            }
            (Some(r), None) => {
                let _ = writeln!(
                    out,
                    "every step passed: capacity is at least {r:.0}/s (raise --to)"
                );
            }
            (None, _) => {
                let _ = writeln!(out, "even the first step failed: capacity is below --from");
            }
        }
        out
    }

    /// The op the chart and table show: the first SLO's, else reserve.
    fn chart_op(&self) -> String {
        self.slos
            .first()
            .and_then(|s| s.split('.').next())
            .unwrap_or(Op::Reserve.name())
            .to_string()
    }
}

type Factory<'a> = dyn Fn() -> Result<Arc<dyn Target>, TargetError> + 'a;

fn check(options: &SweepOptions) -> Result<(), SweepError> {
    let bad = |m: String| Err(SweepError::Invalid(m));
    let (from, to) = (options.from_rate_per_s, options.to_rate_per_s);
    if !(from.is_finite() && from > 0.0 && to.is_finite() && to >= from) {
        return bad(format!("need 0 < --from <= --to, got {from} and {to}"));
    }
    if !(options.step_factor.is_finite() && options.step_factor > 1.0) {
        return bad(format!(
            "--step-factor must be > 1, got {}",
            options.step_factor
        ));
    }
    if !(options.step_duration_s.is_finite() && options.step_duration_s > 0.0) {
        return bad("--step-duration must be > 0".into());
    }
    if !(options.warmup_s.is_finite() && options.warmup_s >= 0.0) {
        return bad("--warmup must be >= 0".into());
    }
    if !(options.precision.is_finite() && options.precision > 0.0) {
        return bad("--precision must be > 0".into());
    }
    if options.slos.is_empty() {
        return bad(
            "give at least one --slo: the sweep looks for the highest rate meeting it".into(),
        );
    }
    if !(options.far_factor.is_finite() && options.far_factor > 1.0) {
        return bad("--far-factor must be > 1".into());
    }
    Ok(())
}

/// Runs the sweep. `target` opens a fresh target for each step.
pub fn sweep(options: &SweepOptions, target: &Factory<'_>) -> Result<SweepResult, SweepError> {
    check(options)?;
    std::fs::create_dir_all(&options.out_dir).map_err(|source| SweepError::Write {
        path: options.out_dir.clone(),
        source,
    })?;
    let mut steps: Vec<StepResult> = Vec::new();
    let mut described = String::new();
    let mut workload_name = String::new();
    // Ok(None): the step was interrupted (SIGINT / SIGTERM) and the search stops there.
    let mut run_step = |rate: f64, phase: &'static str| -> Result<Option<bool>, SweepError> {
        let duration_s = if phase == "warmup" {
            options.warmup_s
        } else {
            options.step_duration_s
        };
        let index = steps.len();
        let t = target().map_err(|source| SweepError::Target {
            step: index,
            source,
        })?;
        described = t.describe();
        let workload = step_workload(options, rate, index, duration_s)?;
        workload_name = workload.name.clone();
        let result = run_one(options, workload, t.clone(), index, rate, phase);
        t.shutdown();
        let step = result?;
        if options.verbose {
            eprintln!(
                "step {index:>2} {phase:>6} rate {rate:>10.0}/s offered {:>10.0}/s achieved {:>10.0}/s: {}",
                step.offered_rate_per_s,
                step.achieved_rate_per_s,
                if step.passed { "pass" } else { &step.why }
            );
        }
        let passed = (!step.interrupted).then_some(step.passed);
        steps.push(step);
        Ok(passed)
    };

    let mut rates = Vec::new();
    let mut r = options.from_rate_per_s;
    while r < options.to_rate_per_s * (1.0 - 1e-9) {
        rates.push(r);
        r *= options.step_factor;
    }
    rates.push(options.to_rate_per_s);
    let (mut lo, mut hi) = (None::<f64>, None::<f64>);
    let mut interrupted =
        options.warmup_s > 0.0 && run_step(options.from_rate_per_s, "warmup")?.is_none();
    for rate in rates {
        if interrupted {
            break;
        }
        match run_step(rate, "climb")? {
            Some(true) => lo = Some(rate),
            Some(false) => {
                hi = Some(rate);
                break;
            }
            None => interrupted = true,
        }
    }
    if let (Some(mut l), Some(mut h), false) = (lo, hi, interrupted) {
        let mut refinements = 0;
        while h / l > 1.0 + options.precision && refinements < options.max_refinements {
            let mid = (l * h).sqrt();
            match run_step(mid, "bisect")? {
                Some(true) => l = mid,
                Some(false) => h = mid,
                None => break,
            }
            refinements += 1;
        }
        lo = Some(l);
        hi = Some(h);
    }
    let best = lo.and_then(|l| {
        steps
            .iter()
            .find(|s| s.passed && s.phase != "warmup" && s.rate_per_s == l)
    });
    let result = SweepResult {
        schema_version: SWEEP_SCHEMA_VERSION,
        workload: workload_name,
        target: described,
        slos: options.slos.iter().map(|s| s.spec.clone()).collect(),
        step_duration_s: options.step_duration_s,
        seed: options.seed,
        max_rate_per_s: lo,
        max_offered_rate_per_s: best.map(|s| s.offered_rate_per_s),
        max_achieved_rate_per_s: best.map(|s| s.achieved_rate_per_s),
        first_failing_rate_per_s: hi,
        steps,
    };
    let write = |name: &str, text: String| {
        let path = options.out_dir.join(name);
        std::fs::write(&path, text).map_err(|source| SweepError::Write { path, source })
    };
    write(
        "sweep.json",
        serde_json::to_string_pretty(&result).unwrap_or_default(),
    )?;
    let limit_ms = options
        .slos
        .iter()
        .find_map(Slo::latency_limit_us)
        .map_or(0.0, |us| us / 1000.0);
    write("sweep.svg", chart(&result, limit_ms))?;
    Ok(result)
}

/// One step's workload: its SKU ids and its plan at the run id the step takes.
struct StepWorkload {
    layout: run::IdLayout,
    build: Box<dyn FnMut(u32) -> Result<Plan, RunError>>,
    name: String,
}

fn step_workload(
    options: &SweepOptions,
    rate: f64,
    index: usize,
    duration_s: f64,
) -> Result<StepWorkload, SweepError> {
    match &options.workload {
        SweepWorkload::Scenario(base) => {
            let mut scenario = base.clone();
            scenario.set_duration_s(duration_s)?;
            scenario.set_peak_rate(rate)?;
            // A seed per step: its own order ids (steps against one server never collide).
            let seed = options.seed.wrapping_add(index as u64);
            Ok(StepWorkload {
                layout: run::scenario_layout(&scenario),
                build: Box::new(move |run_id| Plan::from_scenario_at(&scenario, seed, run_id)),
                name: format!("scenario {}", base.name),
            })
        }
        SweepWorkload::Trace(path) => {
            let info = crate::trace::info(path).map_err(ReplayError::from)?;
            let peak = info.peak_rate_per_s.max(1) as f64;
            let speed = rate / peak;
            let span_s = (info.duration_s + 0.001) / speed;
            let loops = (duration_s / span_s).ceil().max(1.0) as u64;
            let path = path.clone();
            Ok(StepWorkload {
                layout: replay::layout(&info),
                name: format!("trace {}", path.display()),
                build: Box::new(move |run_id| {
                    let options = ReplayOptions {
                        speed,
                        max_rate_per_s: None,
                        loops,
                        // Order ids shifted past every earlier step's (a trace without a
                        // catalog always takes run id 0).
                        first_loop: index as u64 * 1_000,
                        run_id,
                    };
                    replay::plan_with_info(&path, info.clone(), &options)
                        .map(|r| r.plan)
                        .map_err(|e| RunError::Invalid(e.to_string()))
                }),
            })
        }
    }
}

fn run_one(
    options: &SweepOptions,
    mut workload: StepWorkload,
    target: Arc<dyn Target>,
    index: usize,
    rate: f64,
    phase: &'static str,
) -> Result<StepResult, SweepError> {
    let mut driver = options.driver.clone();
    let limit_us = options
        .slos
        .iter()
        .filter_map(Slo::latency_limit_us)
        .fold(0.0f64, f64::max);
    let far_us = limit_us * options.far_factor;
    let strikes = Arc::new(AtomicU32::new(0));
    // The warm-up runs its whole length however slow it is: warming up is its purpose. Without
    // a latency threshold there is nothing to be far past.
    driver.abort = (phase != "warmup" && limit_us > 0.0).then(|| {
        AbortWhen(Arc::new(move |live: &Live| {
            let p99 = live.last_reserve_p99_us.load(Ordering::Relaxed) as f64;
            // `Live` is refreshed once per interval; count strikes per distinct reading.
            if p99 > far_us {
                strikes.fetch_add(1, Ordering::Relaxed) >= 20
            } else {
                strikes.store(0, Ordering::Relaxed);
                false
            }
        }))
    });
    let report = run::execute_workload(
        &workload.layout,
        &mut workload.build,
        RunSettings {
            target,
            out_dir: options
                .step_reports
                .then(|| options.out_dir.join(format!("step-{index:02}"))),
            slos: options.slos.clone(),
            driver,
            progress: false,
            run_ids: RunIds::Auto,
            metrics: options.metrics.clone(),
        },
    )?;
    let s = &report.summary;
    let errors: u64 = LABELS
        .iter()
        .enumerate()
        .filter(|(i, _)| is_error_label(*i))
        .map(|(_, l)| s.outcomes.get(l).copied().unwrap_or(0))
        .sum();
    let answered = s.send.answered.max(1);
    let error_ratio = errors as f64 / answered as f64;
    let mut why = Vec::new();
    if s.send.interrupted {
        why.push("interrupted".to_string());
    }
    if s.send.aborted {
        why.push(format!(
            "stopped early: reserve p99 > {:.1} ms",
            far_us / 1000.0
        ));
    }
    for slo in s.slo.iter().filter(|r| !r.passed) {
        why.push(format!("{} measured {}", slo.spec, slo.measured_text()));
    }
    if s.send.unanswered > 0 {
        why.push(format!("{} unanswered", s.send.unanswered));
    }
    if error_ratio > options.max_error_ratio {
        why.push(format!("{:.2}% errors", error_ratio * 100.0));
    }
    Ok(StepResult {
        index,
        phase,
        rate_per_s: rate,
        offered_rate_per_s: s.offered_rate_per_s,
        achieved_rate_per_s: s.achieved_rate_per_s,
        sent: s.send.sent,
        answered: s.send.answered,
        unanswered: s.send.unanswered,
        error_ratio,
        sent_late_ratio: s.send.sent_late as f64 / answered as f64,
        aborted: s.send.aborted,
        interrupted: s.send.interrupted,
        ops: s
            .ops
            .iter()
            .map(|(op, o)| {
                (
                    op.to_string(),
                    StepOp {
                        corrected: o.corrected,
                        service: o.service,
                    },
                )
            })
            .collect(),
        slo: s.slo.clone(),
        passed: why.is_empty(),
        why: why.join("; "),
    })
}

/// The capacity curve: corrected latency percentiles (log scale) and achieved rate against
/// offered rate, with the SLO's limit as a dashed line in a colour of its own, each step's
/// pass / fail dot, and the capacity found marked on both panels; legends beside the plots.
pub fn chart(result: &SweepResult, slo_limit_ms: f64) -> String {
    chart::svg((chart::WIDTH, 2 * HEIGHT), |root| draw(root, result, slo_limit_ms))
        .unwrap_or_else(|e| {
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">chart unavailable: {}</text></svg>",
                chart::escape(&e)
            )
        })
}

const HEIGHT: u32 = 380;

fn draw(root: chart::Area<'_>, result: &SweepResult, slo_limit_ms: f64) -> chart::DrawResult {
    let mut steps: Vec<&StepResult> = result
        .steps
        .iter()
        .filter(|s| s.phase != "warmup")
        .collect();
    steps.sort_by(|a, b| a.offered_rate_per_s.total_cmp(&b.offered_rate_per_s));
    let x_max = steps
        .iter()
        .map(|s| s.offered_rate_per_s.max(s.achieved_rate_per_s))
        .fold(1.0f64, f64::max)
        * 1.05;
    let (top, bottom) = root.split_vertically(HEIGHT + 20);
    // The capacity found: the offered rate of the highest step that met every SLO.
    let capacity = result.max_offered_rate_per_s;
    draw_latency(&top, result, &steps, x_max, slo_limit_ms, capacity)?;
    draw_achieved(&bottom, &steps, x_max, capacity)
}

/// A vertical line at the capacity found, from `y0` to `y1`, named with its rate.
fn capacity_mark(capacity: Option<f64>, y0: f64, y1: f64) -> Option<Series> {
    capacity.map(|x| Series {
        name: format!("capacity {}/s", chart::si(&x)),
        color: chart::LIMIT,
        style: Style::Line,
        points: vec![(x, y0), (x, y1)],
    })
}

fn draw_latency(
    area: &chart::Area<'_>,
    result: &SweepResult,
    steps: &[&StepResult],
    x_max: f64,
    slo_limit_ms: f64,
    capacity: Option<f64>,
) -> chart::DrawResult {
    let op = result.chart_op();
    type Pick = fn(&Percentiles) -> f64;
    let quantiles: [(&str, Pick); 4] = [
        ("p50", |p| p.p50_us),
        ("p90", |p| p.p90_us),
        ("p99", |p| p.p99_us),
        ("p99.9", |p| p.p999_us),
    ];
    let mut series = Series::palette(
        quantiles.iter().map(|(name, get)| {
            let data = steps
                .iter()
                .filter_map(|s| {
                    let o = s.ops.get(&op)?;
                    (o.corrected.count > 0).then(|| {
                        (
                            s.offered_rate_per_s,
                            (get(&o.corrected) / 1000.0).max(0.001),
                        )
                    })
                })
                .collect();
            (name.to_string(), data)
        }),
        Style::LineAndDots,
    );
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(slo_limit_ms.max(0.01), f64::max)
        * 2.0;
    if slo_limit_ms > 0.0 {
        series.push(Series {
            name: format!("SLO limit {} ms", chart::si(&slo_limit_ms)),
            color: chart::LIMIT,
            style: Style::Dashed,
            points: vec![(0.0, slo_limit_ms), (x_max, slo_limit_ms)],
        });
    }
    let caption = format!(
        "{op} latency (corrected) vs offered rate — {}",
        result.slos.join(", ")
    );
    series.extend(capacity_mark(capacity, 0.001, y_max));
    let (plot, legend) = chart::split_legend(area);
    let mut c = chart::build(&plot, &caption, 0f64..x_max, (0.001f64..y_max).log_scale())?;
    chart::draw_mesh(&mut c, "offered requests/s", "ms")?;
    chart::draw_series(&mut c, series, &legend)
}

fn draw_achieved(
    area: &chart::Area<'_>,
    steps: &[&StepResult],
    x_max: f64,
    capacity: Option<f64>,
) -> chart::DrawResult {
    let (plot, legend) = chart::split_legend(area);
    let mut c = chart::build(
        &plot,
        "Achieved vs offered rate (requests/s)",
        0f64..x_max,
        0f64..x_max,
    )?;
    chart::draw_mesh(&mut c, "offered requests/s", "achieved requests/s")?;
    let at = |s: &&StepResult| (s.offered_rate_per_s, s.achieved_rate_per_s);
    let mut series = vec![
        Series {
            name: "achieved = offered".into(),
            color: chart::GREY,
            style: Style::Dashed,
            points: vec![(0.0, 0.0), (x_max, x_max)],
        },
        Series {
            name: "achieved".into(),
            color: chart::PALETTE[0],
            style: Style::Line,
            points: steps
                .iter()
                .map(|s| (s.offered_rate_per_s, s.achieved_rate_per_s))
                .collect(),
        },
        // Each step's dot says whether it passed.
        Series {
            name: "step met the SLOs".into(),
            color: chart::GREEN,
            style: Style::Dots,
            points: steps.iter().filter(|s| s.passed).map(at).collect(),
        },
        Series {
            name: "step failed".into(),
            color: chart::RED,
            style: Style::Dots,
            points: steps.iter().filter(|s| !s.passed).map(at).collect(),
        },
    ];
    series.extend(capacity_mark(capacity, 0.0, x_max));
    chart::draw_series(&mut c, series, &legend)
}

/// The file names a sweep writes into its output directory.
pub fn outputs(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("sweep.json"), dir.join("sweep.svg"))
}
