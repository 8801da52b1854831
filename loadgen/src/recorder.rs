//! Latency and outcome recording. Per op (reserve / pay / cancel) it keeps two HdrHistograms —
//! corrected latency (from the intended send time, as wrk2 does) and service time (from the
//! actual send) — for the current 1-second interval and for the whole run, plus outcome counts
//! and, per interval, the send lag. Each closed interval is streamed to its [`Sinks`] (the
//! `.hlog` writer, `intervals.jsonl`, the Prometheus endpoint) and reduced to a few numbers for
//! the charts, so memory stays bounded however long the run. It must not pace or send requests.

use crate::driver::schedule::Op;
use crate::metrics::{GeneratorMetrics, OpDelta};
use crate::report::hlog::HlogWriter;
use crate::report::intervals::{IntervalsWriter, OpInterval};
use crate::targets::Failure;
use flashsale_engine::{Outcome, OutcomeCode};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ops that get histograms, in index order ([`Op::index`]), named by the command table.
pub const OPS: [&str; 3] = {
    let mut names = [""; 3];
    let mut i = 0;
    while i < Op::ALL.len() {
        names[i] = Op::ALL[i].name();
        i += 1;
    }
    names
};

/// Highest latency a histogram holds (1 hour, in ns); larger values saturate.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;
const SIGFIG: u8 = 3;

/// Failures of the client's own, with no code in the engine's outcome table.
const CLIENT_FAILURES: usize = 4;

/// Labels: the engine's outcome table (each code at its [`OutcomeCode::index`]), then the
/// client's own failures.
pub const N_LABELS: usize = OutcomeCode::COUNT + CLIENT_FAILURES;

/// The label of every slot, in slot order.
pub const LABELS: [&str; N_LABELS] = {
    let mut labels = [""; N_LABELS];
    let mut i = 0;
    while i < OutcomeCode::COUNT {
        labels[i] = OutcomeCode::ALL[i].as_str();
        i += 1;
    }
    let mut f = 0;
    while f < Failure::ALL.len() {
        labels[failure_label(Failure::ALL[f])] = Failure::ALL[f].label();
        f += 1;
    }
    labels
};

/// Labels that mean something went wrong (not a business answer like `sold_out`): the
/// outcome table's errors and every client failure.
pub fn is_error_label(index: usize) -> bool {
    OutcomeCode::ALL
        .get(index)
        .is_none_or(|code| code.is_error())
}

/// The slot of an engine outcome.
#[inline]
pub fn outcome_label(outcome: &Outcome) -> usize {
    outcome.code().index()
}

/// The slot of a client failure: its outcome code's slot when it is a server answer of the
/// outcome table (`rate_limited`), else one of the client's own after the table.
pub const fn failure_label(failure: Failure) -> usize {
    match failure {
        Failure::RateLimited => OutcomeCode::RateLimited.index(),
        Failure::Transport => OutcomeCode::COUNT,
        Failure::Timeout => OutcomeCode::COUNT + 1,
        Failure::Protocol => OutcomeCode::COUNT + 2,
        Failure::Server => OutcomeCode::COUNT + 3,
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Corrected and service-time histograms of one op.
#[derive(Clone)]
pub struct OpHistograms {
    pub corrected: Histogram<u64>,
    pub service: Histogram<u64>,
}

impl OpHistograms {
    fn new() -> OpHistograms {
        OpHistograms {
            corrected: new_histogram(),
            service: new_histogram(),
        }
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// One closed interval, reduced for the charts.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalPoint {
    pub start_s: f64,
    /// Requests scheduled (intended) within this second.
    pub offered: u64,
    /// Answers received within this second.
    pub completed: u64,
    pub outcomes: [u64; N_LABELS],
    /// Corrected latency per op.
    pub corrected: [Percentiles; 3],
}

/// Where each closed interval goes besides the charts' points; every one is optional.
#[derive(Default)]
pub struct Sinks {
    /// `latency.hlog` (and the per-phase windows it feeds).
    pub hlog: Option<HlogWriter>,
    /// `intervals.jsonl`.
    pub intervals: Option<IntervalsWriter>,
    /// The `--metrics-addr` endpoint's figures.
    pub metrics: Option<Arc<GeneratorMetrics>>,
}

/// The slot of (second, op) in the pacer's offered counts.
#[inline]
pub fn offered_slot(second: usize, op: usize) -> usize {
    second * OPS.len() + op
}

/// Figures the progress bar reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub last_rate_per_s: AtomicU64,
    pub last_reserve_p99_us: AtomicU64,
}

/// The per-interval and whole-run record.
pub struct Recorder {
    interval_ns: u64,
    current: u64,
    interval: [OpHistograms; 3],
    /// Send lag (actual − intended send time) of the interval's answers, per op.
    interval_lag: [Histogram<u64>; 3],
    total: [OpHistograms; 3],
    interval_outcomes: [[u64; N_LABELS]; 3],
    total_outcomes: [[u64; N_LABELS]; 3],
    interval_completed: u64,
    points: Vec<IntervalPoint>,
    sinks: Sinks,
    hlog_error: Option<String>,
    intervals_error: Option<String>,
    live: Arc<Live>,
    /// Offered requests per (second, op), at [`offered_slot`], counted by the pacer.
    offered_per_s: Arc<Vec<AtomicU64>>,
}

/// What the recorder hands over at the end.
pub struct Recording {
    pub total: [OpHistograms; 3],
    pub outcomes: [[u64; N_LABELS]; 3],
    pub points: Vec<IntervalPoint>,
    pub hlog_error: Option<String>,
    pub intervals_error: Option<String>,
}

impl Recorder {
    pub fn new(
        interval_ns: u64,
        sinks: Sinks,
        live: Arc<Live>,
        offered_per_s: Arc<Vec<AtomicU64>>,
    ) -> Recorder {
        Recorder {
            interval_ns: interval_ns.max(1),
            current: 0,
            interval: [
                OpHistograms::new(),
                OpHistograms::new(),
                OpHistograms::new(),
            ],
            interval_lag: [new_histogram(), new_histogram(), new_histogram()],
            total: [
                OpHistograms::new(),
                OpHistograms::new(),
                OpHistograms::new(),
            ],
            interval_outcomes: [[0; N_LABELS]; 3],
            total_outcomes: [[0; N_LABELS]; 3],
            interval_completed: 0,
            points: Vec::new(),
            sinks,
            hlog_error: None,
            intervals_error: None,
            live,
            offered_per_s,
        }
    }

    /// Records one answered request: its latency from the intended send time (corrected) and
    /// from the actual send (service), in ns; their difference is its send lag.
    #[inline]
    pub fn record(&mut self, op: usize, label: usize, corrected_ns: u64, service_ns: u64) {
        let h = &mut self.interval[op];
        h.corrected.saturating_record(corrected_ns.max(1));
        h.service.saturating_record(service_ns.max(1));
        self.interval_lag[op].saturating_record(corrected_ns.saturating_sub(service_ns).max(1));
        self.interval_outcomes[op][label] += 1;
        self.total_outcomes[op][label] += 1;
        self.interval_completed += 1;
    }

    /// Closes every interval that ended at or before `now_ns`.
    pub fn advance_to(&mut self, now_ns: u64) {
        while (self.current + 1) * self.interval_ns <= now_ns {
            self.close_interval();
        }
    }

    fn close_interval(&mut self) {
        let start_ns = self.current * self.interval_ns;
        let start_s = start_ns as f64 / 1e9;
        let duration_s = self.interval_ns as f64 / 1e9;
        if let Some(hlog) = self.sinks.hlog.as_mut()
            && self.hlog_error.is_none()
        {
            for (op, h) in OPS.iter().zip(&self.interval) {
                let result = hlog
                    .write_interval(op, &h.corrected, start_s, duration_s)
                    .and_then(|()| {
                        hlog.write_interval(
                            &format!("{op}_service"),
                            &h.service,
                            start_s,
                            duration_s,
                        )
                    });
                if let Err(e) = result {
                    self.hlog_error = Some(e.to_string());
                    break;
                }
            }
        }
        let corrected = [0, 1, 2].map(|i| Percentiles::of(&self.interval[i].corrected));
        let second = (start_ns / 1_000_000_000) as usize;
        let offered_by_op = [0, 1, 2].map(|op| {
            self.offered_per_s
                .get(offered_slot(second, op))
                .map_or(0, |c| c.load(Ordering::Relaxed))
        });
        let offered = offered_by_op.iter().sum();
        let mut outcomes = [0u64; N_LABELS];
        for by_op in &self.interval_outcomes {
            for (sum, n) in outcomes.iter_mut().zip(by_op) {
                *sum += n;
            }
        }
        self.write_sinks(start_s, duration_s, &offered_by_op);
        let errors: u64 = (0..N_LABELS)
            .filter(|&l| is_error_label(l))
            .map(|l| outcomes[l])
            .sum();
        self.live.errors.fetch_add(errors, Ordering::Relaxed);
        self.live.last_rate_per_s.store(
            (self.interval_completed as f64 / duration_s) as u64,
            Ordering::Relaxed,
        );
        self.live
            .last_reserve_p99_us
            .store(corrected[0].p99_us as u64, Ordering::Relaxed);
        self.points.push(IntervalPoint {
            start_s,
            offered,
            completed: self.interval_completed,
            outcomes,
            corrected,
        });
        for (total, interval) in self.total.iter_mut().zip(self.interval.iter_mut()) {
            // Same bounds on both sides: adding cannot fail.
            let _ = total.corrected.add(&interval.corrected);
            let _ = total.service.add(&interval.service);
            interval.corrected.reset();
            interval.service.reset();
        }
        self.interval_lag.iter_mut().for_each(Histogram::reset);
        self.interval_outcomes = [[0; N_LABELS]; 3];
        self.interval_completed = 0;
        self.current += 1;
    }

    /// Hands the closing interval, per op, to `intervals.jsonl` and the metrics endpoint.
    fn write_sinks(&mut self, start_s: f64, duration_s: f64, offered_by_op: &[u64; 3]) {
        if let Some(metrics) = &self.sinks.metrics {
            metrics.add_interval(&[0, 1, 2].map(|op| OpDelta {
                offered: offered_by_op[op],
                outcomes: &self.interval_outcomes[op],
                corrected: &self.interval[op].corrected,
                service: &self.interval[op].service,
                send_lag: &self.interval_lag[op],
            }));
        }
        if let Some(intervals) = self.sinks.intervals.as_mut()
            && self.intervals_error.is_none()
        {
            let ops = [0, 1, 2].map(|op| OpInterval {
                op: OPS[op],
                offered: offered_by_op[op],
                achieved: self.interval_outcomes[op].iter().sum(),
                outcomes: &self.interval_outcomes[op],
                corrected: &self.interval[op].corrected,
                service: &self.interval[op].service,
                send_lag: &self.interval_lag[op],
            });
            if let Err(e) = intervals.write_interval(start_s, duration_s, &ops) {
                self.intervals_error = Some(e.to_string());
            }
        }
    }

    /// Closes the last (partial) interval and hands over the record.
    pub fn finish(mut self, now_ns: u64) -> Recording {
        self.advance_to(now_ns);
        if self.interval_completed > 0 {
            self.close_interval();
        }
        if let Some(hlog) = self.sinks.hlog.as_mut()
            && let Err(e) = hlog.flush()
            && self.hlog_error.is_none()
        {
            self.hlog_error = Some(e.to_string());
        }
        Recording {
            total: self.total,
            outcomes: self.total_outcomes,
            points: self.points,
            hlog_error: self.hlog_error,
            intervals_error: self.intervals_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome code and every failure has exactly one slot, labelled with its code, and
    /// every slot belongs to one of them.
    #[test]
    fn recorder_slots_cover_every_outcome_exactly_once() {
        let mut owners = vec![Vec::new(); N_LABELS];
        for code in OutcomeCode::ALL {
            assert_eq!(LABELS[code.index()], code.as_str());
            owners[code.index()].push(code.as_str());
        }
        for failure in Failure::ALL {
            let slot = failure_label(failure);
            assert_eq!(LABELS[slot], failure.label(), "{failure:?}");
            match failure.outcome_code() {
                Some(code) => assert_eq!(slot, code.index()),
                None => owners[slot].push(failure.label()),
            }
        }
        for (slot, owner) in owners.iter().enumerate() {
            assert_eq!(owner.len(), 1, "slot {slot}: {owner:?}");
        }
        let mut unique = LABELS.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), N_LABELS);
        assert_eq!(
            LABELS[outcome_label(&Outcome::Rejected(flashsale_engine::Reject::InvalidSku))],
            "invalid_request"
        );
        assert!(!is_error_label(OutcomeCode::Sku.index()));
        assert!(is_error_label(failure_label(Failure::Timeout)));
    }

    #[test]
    fn intervals_close_and_totals_accumulate() {
        let live = Arc::new(Live::default());
        let offered = Arc::new((0..30).map(|_| AtomicU64::new(5)).collect::<Vec<_>>());
        let mut r = Recorder::new(1_000_000_000, Sinks::default(), live.clone(), offered);
        r.record(0, 0, 2_000_000, 1_000);
        r.advance_to(1_500_000_000);
        let busy = OutcomeCode::Busy.index();
        r.record(0, busy, 4_000_000, 2_000);
        r.record(1, 1, 1_000, 1_000);
        let rec = r.finish(2_500_000_000);
        assert_eq!(rec.points.len(), 2);
        assert_eq!(rec.points[0].completed, 1);
        assert_eq!(rec.points[0].offered, 15, "5 per op");
        assert_eq!(rec.points[1].outcomes[busy], 1);
        assert_eq!(rec.total[0].corrected.len(), 2);
        assert_eq!(rec.outcomes[0][busy], 1);
        assert_eq!(live.errors.load(Ordering::Relaxed), 1);
        let p = Percentiles::of(&rec.total[0].corrected);
        assert!((p.max_us - 4000.0).abs() < 5.0);
    }
}
