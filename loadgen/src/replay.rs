//! Replay of a trace through the ordinary open-loop driver: the trace's order requests become
//! the driver's arrivals at their recorded times divided by the speed (optionally looped, with
//! order ids shifted per loop so loops do not collide), its `UpsertSku` records become the
//! catalog, and an open-loop trace (from `record`) gets its funnel regenerated from the
//! provenance's scenario and seed exactly as `run` does. A captured or imported trace is sent as
//! is, every request at its time regardless of outcomes. It owns the trace-to-arrivals
//! adapter and the replay report; it must not pace, record latency or verify on its own — that
//! is `run::execute_plan`'s job.

use crate::driver::Arrivals;
use crate::driver::schedule::{Batch, FollowUps, Meta, Op, Origin, Req};
use crate::run::{self, Plan, RunError, RunReport, RunSettings};
use crate::trace::{self, Provenance, TraceFileError, TraceInfo};
use flashsale_engine::Command;
use flashsale_engine::trace::{FLAG_OPEN_LOOP, TraceReader};
use serde::Serialize;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] TraceFileError),
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: reading failed during the replay: {detail}")]
    Midway { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Recorded times are divided by this (2.0: twice as fast).
    pub speed: f64,
    /// Lower the speed so the trace's busiest second offers at most this many requests/s.
    pub max_rate_per_s: Option<f64>,
    /// Times through the trace, back to back.
    pub loops: u64,
    /// Order ids are shifted by `(first_loop + loop) × (span of the trace's order ids)`; the
    /// sweep gives each step its own so steps against one server never reuse an order id.
    pub first_loop: u64,
    /// The run id (see `run`): the catalog's SKU ids (and the requests' within its range) are
    /// shifted by `run_id × span of the catalog's ids`, order ids by
    /// `run_id × LOOPS_PER_RUN_ID` spans more.
    pub run_id: u32,
}

/// How many loops' worth of order ids one run id of a replay spans.
pub const LOOPS_PER_RUN_ID: u64 = 1 << 16;

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            max_rate_per_s: None,
            loops: 1,
            first_loop: 0,
            run_id: 0,
        }
    }
}

/// A replay ready to run, and what it is based on.
pub struct ReplayPlan {
    pub plan: Plan,
    pub basis: ReplayBasis,
}

/// What a replay is based on and what it reports about itself.
pub struct ReplayBasis {
    pub info: TraceInfo,
    /// The speed actually used (after `max_rate_per_s`).
    pub speed: f64,
    /// The trace's order hash, when the replay must reproduce it (one loop, no id shift).
    pub expected_hash: Option<String>,
    errors: Arc<Mutex<Option<String>>>,
    skipped: Arc<AtomicU64>,
}

struct TraceArrivals {
    path: PathBuf,
    reader: TraceReader<BufReader<File>>,
    speed: f64,
    t0_ns: u64,
    period_ns: u64,
    loops: u64,
    loop_index: u64,
    first_loop: u64,
    order_span: u64,
    /// SKU ids in `sku_range` (the catalog's; none without one) are shifted by `sku_shift`.
    sku_range: Option<std::ops::RangeInclusive<u32>>,
    sku_shift: u32,
    next: Option<Meta>,
    done: bool,
    errors: Arc<Mutex<Option<String>>>,
    skipped: Arc<AtomicU64>,
}

impl TraceArrivals {
    fn fail(&mut self, message: String) {
        if let Ok(mut slot) = self.errors.lock() {
            slot.get_or_insert(message);
        }
        self.done = true;
        self.next = None;
    }

    /// Loads the next order request into `self.next` (or marks the end).
    fn advance(&mut self) {
        while self.next.is_none() && !self.done {
            let record = match self.reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.loop_index += 1;
                    if self.loop_index >= self.loops {
                        self.done = true;
                        return;
                    }
                    match trace::open(&self.path) {
                        Ok(r) => self.reader = r,
                        Err(e) => self.fail(e.to_string()),
                    }
                    continue;
                }
                Err(e) => {
                    let message = format!("{}: {e}", self.path.display());
                    self.fail(message);
                    return;
                }
            };
            let shift = (self.first_loop + self.loop_index) * self.order_span;
            let follow_up = |op, order_id: u64, user_id| Req {
                op,
                qty: 0,
                sku_id: 0,
                order_id: order_id + shift,
                user_id,
            };
            let req = match record.command {
                Command::Reserve {
                    order_id,
                    user_id,
                    sku_id,
                    qty,
                } => Req {
                    op: Op::Reserve,
                    qty,
                    sku_id: if self.sku_range.as_ref().is_some_and(|r| r.contains(&sku_id)) {
                        sku_id + self.sku_shift
                    } else {
                        sku_id
                    },
                    order_id: order_id + shift,
                    user_id,
                },
                Command::Pay { order_id, user_id } => follow_up(Op::Pay, order_id, user_id),
                Command::Cancel { order_id, user_id } => follow_up(Op::Cancel, order_id, user_id),
                // The catalog went to setup; queries and restocks are not order traffic.
                Command::UpsertSku(_) => continue,
                Command::Restock { .. } | Command::QueryOrder { .. } | Command::QuerySku { .. } => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let trace_ns = (record.at_ns - self.t0_ns) + self.loop_index * self.period_ns;
            self.next = Some(Meta {
                intended_ns: (trace_ns as f64 / self.speed) as u64,
                origin: Origin::Fresh,
                attempt: 0,
                req,
            });
        }
    }
}

impl Arrivals for TraceArrivals {
    fn fill_until_at_most(&mut self, until_ns: u64, out: &mut Batch, max_len: usize) {
        loop {
            if self.next.is_none() {
                self.advance();
            }
            match self.next {
                Some(meta) if meta.intended_ns < until_ns && out.len() < max_len => {
                    out.push(meta);
                    self.next = None;
                }
                _ => return,
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done && self.next.is_none()
    }
}

/// The trace catalog's SKU ids and how far a run id shifts them (their span).
pub fn layout(info: &TraceInfo) -> run::IdLayout {
    let sku_ids: Vec<u32> = info.catalog.iter().map(|c| c.sku_id).collect();
    let span = match (sku_ids.iter().min(), sku_ids.iter().max()) {
        (Some(lo), Some(hi)) => hi - lo + 1,
        _ => 0,
    };
    run::IdLayout {
        sku_ids,
        sku_span: span,
    }
}

/// Checks the whole trace and builds the replay.
pub fn plan(path: &Path, options: &ReplayOptions) -> Result<ReplayPlan, ReplayError> {
    let info = trace::info(path)?;
    plan_with_info(path, info, options)
}

/// Builds the replay of a trace already checked by `trace::info`.
pub fn plan_with_info(
    path: &Path,
    info: TraceInfo,
    options: &ReplayOptions,
) -> Result<ReplayPlan, ReplayError> {
    let invalid = |detail: String| ReplayError::Invalid {
        path: path.to_path_buf(),
        detail,
    };
    if !(options.speed.is_finite() && options.speed > 0.0) {
        return Err(invalid(format!("speed must be > 0, got {}", options.speed)));
    }
    if options.loops == 0 {
        return Err(invalid("--loop must be at least 1".into()));
    }
    if info.order_requests == 0 {
        return Err(invalid(
            "the trace holds no order requests (reserve / pay / cancel)".into(),
        ));
    }
    let mut speed = options.speed;
    if let Some(max) = options.max_rate_per_s {
        if !(max.is_finite() && max > 0.0) {
            return Err(invalid(format!("--max-rate must be > 0, got {max}")));
        }
        let peak = info.peak_rate_per_s as f64;
        if peak * speed > max {
            speed = max / peak;
        }
    }
    let provenance = Provenance::parse(&info.provenance).unwrap_or_default();
    let (follow_ups, ledger) = if info.flags & FLAG_OPEN_LOOP != 0 {
        let scenario = provenance
            .scenario()
            .map_err(|e| invalid(format!("the provenance's scenario: {e}")))?
            .ok_or_else(|| {
                invalid("an open-loop trace needs its scenario in the provenance".into())
            })?;
        let ledger = (scenario.catalog.per_user_limit, scenario.hold_ttl_ms());
        // The funnel's delays shrink with the arrivals: a 2x replay is the same sale, faster.
        let mut faster = scenario;
        faster.time_scale /= speed;
        (Some(FollowUps::new(&faster, info.seed)), Some(ledger))
    } else {
        (None, None)
    };
    let order_span = if info.max_order_id >= info.min_order_id {
        info.max_order_id - info.min_order_id + 1
    } else {
        0
    };
    let first_loop = u64::from(options.run_id)
        .checked_mul(LOOPS_PER_RUN_ID)
        .and_then(|l| l.checked_add(options.first_loop));
    let last_loop = first_loop.and_then(|l| l.checked_add(options.loops - 1));
    let fits = last_loop
        .and_then(|l| l.checked_mul(order_span))
        .and_then(|shift| shift.checked_add(info.max_order_id))
        .is_some();
    let (Some(first_loop), true) = (first_loop, fits) else {
        return Err(invalid(format!(
            "{} loops of order ids {}..={} at run id {} overflow 64 bits (replay against a fresh target)",
            options.loops, info.min_order_id, info.max_order_id, options.run_id
        )));
    };
    let ids = layout(&info);
    let sku_shift = ids.sku_span.checked_mul(options.run_id);
    let sku_range = match (ids.sku_ids.iter().min(), ids.sku_ids.iter().max()) {
        (Some(&lo), Some(&hi)) => Some(lo..=hi),
        _ => None,
    };
    let catalog: Option<Vec<_>> = info
        .catalog
        .iter()
        .map(|c| {
            let sku_id = c.sku_id.checked_add(sku_shift?)?;
            Some(flashsale_engine::SkuConfig { sku_id, ..*c })
        })
        .collect();
    let (Some(catalog), Some(sku_shift)) = (catalog, sku_shift) else {
        return Err(invalid(format!(
            "the catalog's SKU ids at run id {} overflow 32 bits (replay against a fresh target)",
            options.run_id
        )));
    };
    // One loop lasts from the first order request to 1 ms after the last.
    let period_ns = info.last_order_ns - info.first_order_ns + 1_000_000;
    let errors = Arc::new(Mutex::new(None));
    let skipped = Arc::new(AtomicU64::new(0));
    let arrivals = TraceArrivals {
        path: path.to_path_buf(),
        reader: trace::open(path)?,
        speed,
        t0_ns: info.first_order_ns,
        period_ns,
        loops: options.loops,
        loop_index: 0,
        first_loop,
        order_span,
        sku_range: sku_range.clone(),
        sku_shift,
        next: None,
        done: false,
        errors: errors.clone(),
        skipped: skipped.clone(),
    };
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let ids = match &sku_range {
        None => format!("the trace's own (no catalog), order ids + {first_loop} × {order_span}"),
        Some(r) => format!(
            "SKUs {}..={} (the trace's + {sku_shift}), order ids + {first_loop} × {order_span}",
            r.start() + sku_shift,
            r.end() + sku_shift,
        ),
    };
    let plan = Plan {
        name: format!("replay of {name} at {speed:.3}x"),
        seed: info.seed,
        catalog,
        arrivals: Box::new(arrivals),
        follow_ups,
        ledger,
        expected_orders: (info.counts.get("reserve").copied().unwrap_or(0) * options.loops)
            as usize,
        duration_s: (period_ns * options.loops) as f64 / speed / 1e9,
        peak_offered_rate_per_s: info.peak_rate_per_s as f64 * speed,
        phases: Vec::new(),
        run_id: options.run_id,
        ids,
    };
    let expected_hash = (options.loops == 1 && first_loop == 0 && options.run_id == 0)
        .then(|| info.order_hash.clone());
    Ok(ReplayPlan {
        plan,
        basis: ReplayBasis {
            info,
            speed,
            expected_hash,
            errors,
            skipped,
        },
    })
}

/// How a replay went, beyond the run's own summary.
#[derive(Clone, Debug, Serialize)]
pub struct ReplaySummary {
    pub trace: PathBuf,
    pub speed: f64,
    pub loops: u64,
    pub trace_order_requests: u64,
    pub trace_duration_s: f64,
    /// The recorded span divided by the speed, times the loops.
    pub intended_duration_s: f64,
    /// Wall time of the run, the drain of outstanding answers included.
    pub elapsed_s: f64,
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    pub max_send_lag_us: f64,
    pub sent_late: u64,
    pub late_threshold_us: u64,
    pub trace_order_hash: String,
    pub sent_order_hash: Option<String>,
    /// Whether the requests sent from the trace are exactly the trace's, in order (one loop,
    /// no id shift; None otherwise).
    pub same_requests: Option<bool>,
    /// Records that were neither catalog nor order requests (queries, restocks): not sent.
    pub skipped_records: u64,
}

/// The run's report and the replay's own figures.
pub struct ReplayReport {
    pub run: RunReport,
    pub replay: ReplaySummary,
}

/// Replays a trace against `settings.target` (see the module docs). Writes `replay.json` next
/// to the run's reports.
pub fn replay(
    path: &Path,
    options: &ReplayOptions,
    mut settings: RunSettings,
) -> Result<ReplayReport, ReplayError> {
    let info = trace::info(path)?;
    let layout = layout(&info);
    settings.driver.hash_sent = true;
    // The replay's own figures, kept from the plan the run takes.
    let mut kept = None;
    let mut build = |run_id: u32| -> Result<Plan, RunError> {
        let replay = plan_with_info(
            path,
            info.clone(),
            &ReplayOptions {
                run_id,
                ..options.clone()
            },
        )
        .map_err(|e| RunError::Invalid(e.to_string()))?;
        let ReplayPlan { plan, basis } = replay;
        kept = Some((basis, plan.duration_s));
        Ok(plan)
    };
    let run = run::execute_workload(&layout, &mut build, settings)?;
    let (basis, intended_duration_s) = kept.expect("the run built its plan");
    let ReplayBasis {
        info,
        speed,
        expected_hash,
        errors,
        skipped,
    } = basis;
    if let Some(detail) = errors.lock().ok().and_then(|mut e| e.take()) {
        return Err(ReplayError::Midway {
            path: path.to_path_buf(),
            detail,
        });
    }
    let send = &run.summary.send;
    let replay = ReplaySummary {
        trace: path.to_path_buf(),
        speed,
        loops: options.loops,
        trace_order_requests: info.order_requests,
        trace_duration_s: info.duration_s,
        intended_duration_s,
        elapsed_s: send.elapsed_s,
        send_lag_p50_us: send.send_lag_p50_us,
        send_lag_p99_us: send.send_lag_p99_us,
        max_send_lag_us: send.max_send_lag_us,
        sent_late: send.sent_late,
        late_threshold_us: send.late_threshold_us,
        trace_order_hash: info.order_hash.clone(),
        sent_order_hash: send.sent_order_hash.clone(),
        same_requests: expected_hash.map(|h| Some(&h) == send.sent_order_hash.as_ref()),
        skipped_records: skipped.load(Ordering::Relaxed),
    };
    if let Some(dir) = &run.out_dir {
        let path = dir.join("replay.json");
        let text = serde_json::to_string_pretty(&replay).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| ReplayError::Write { path, source })?;
    }
    Ok(ReplayReport { run, replay })
}
