//! Latency and outcome recording. Per op (reserve / pay / cancel) it keeps two HdrHistograms —
//! corrected latency (from the intended send time, as wrk2 does) and service time (from the
//! actual send) — for the current 1-second interval and for the whole run, plus outcome counts.
//! Each closed interval is streamed to the `.hlog` writer and reduced to a few numbers for the
//! charts, so memory stays bounded however long the run. It must not pace or send requests.

use crate::report::hlog::HlogWriter;
use crate::target::Failure;
use flashsale_engine::{Command, Outcome, Reject};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ops that get histograms, in index order.
pub const OPS: [&str; 3] = ["reserve", "pay", "cancel"];

/// Highest latency a histogram holds (1 hour, in ns); larger values saturate.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;
const SIGFIG: u8 = 3;

/// Outcome labels, in index order: order statuses, reject codes, then client failures.
pub const LABELS: [&str; 21] = [
    "held",
    "paid",
    "cancelled",
    "expired",
    "sold_out",
    "limit_exceeded",
    "not_on_sale",
    "unknown_sku",
    "invalid_qty",
    "id_conflict",
    "unknown_order",
    "not_owner",
    "already_paid",
    "invalid_restock",
    "invalid_request",
    "busy",
    "transport_error",
    "timeout",
    "protocol_error",
    "rate_limited",
    "server_error",
];
pub const N_LABELS: usize = LABELS.len();

/// Labels that mean something went wrong (not a business answer like `sold_out`).
pub fn is_error_label(index: usize) -> bool {
    matches!(
        LABELS[index],
        "unknown_sku"
            | "invalid_qty"
            | "id_conflict"
            | "unknown_order"
            | "not_owner"
            | "invalid_restock"
            | "invalid_request"
            | "busy"
            | "transport_error"
            | "timeout"
            | "protocol_error"
            | "rate_limited"
            | "server_error"
    )
}

pub fn op_index(command: &Command) -> Option<usize> {
    match command {
        Command::Reserve { .. } => Some(0),
        Command::Pay { .. } => Some(1),
        Command::Cancel { .. } => Some(2),
        _ => None,
    }
}

pub fn outcome_label(outcome: &Outcome) -> usize {
    use flashsale_engine::OrderStatus::*;
    match outcome {
        Outcome::Created(v) | Outcome::Order(v) => match v.status {
            Held => 0,
            Paid => 1,
            Cancelled => 2,
            Expired => 3,
        },
        Outcome::Rejected(r) => match r {
            Reject::SoldOut => 4,
            Reject::LimitExceeded => 5,
            Reject::NotOnSale => 6,
            Reject::UnknownSku => 7,
            Reject::InvalidQty => 8,
            Reject::IdConflict => 9,
            Reject::UnknownOrder => 10,
            Reject::NotOwner => 11,
            Reject::Expired => 3,
            Reject::Cancelled => 2,
            Reject::AlreadyPaid => 12,
            Reject::InvalidRestock => 13,
            Reject::InvalidSku => 14,
            Reject::Busy => 15,
        },
        Outcome::SkuCreated(_) | Outcome::Sku(_) => 14,
    }
}

pub fn failure_label(failure: Failure) -> usize {
    match failure {
        Failure::Transport => 16,
        Failure::Timeout => 17,
        Failure::Protocol => 18,
        Failure::RateLimited => 19,
        Failure::Server => 20,
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
    total: [OpHistograms; 3],
    interval_outcomes: [u64; N_LABELS],
    total_outcomes: [[u64; N_LABELS]; 3],
    interval_completed: u64,
    points: Vec<IntervalPoint>,
    hlog: Option<HlogWriter>,
    hlog_error: Option<String>,
    live: Arc<Live>,
    offered_per_s: Arc<Vec<AtomicU64>>,
}

/// What the recorder hands over at the end.
pub struct Recording {
    pub total: [OpHistograms; 3],
    pub outcomes: [[u64; N_LABELS]; 3],
    pub points: Vec<IntervalPoint>,
    pub hlog_error: Option<String>,
}

impl Recorder {
    pub fn new(
        interval_ns: u64,
        hlog: Option<HlogWriter>,
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
            total: [
                OpHistograms::new(),
                OpHistograms::new(),
                OpHistograms::new(),
            ],
            interval_outcomes: [0; N_LABELS],
            total_outcomes: [[0; N_LABELS]; 3],
            interval_completed: 0,
            points: Vec::new(),
            hlog,
            hlog_error: None,
            live,
            offered_per_s,
        }
    }

    /// Records one answered request. Times are ns since the run's start.
    #[inline]
    pub fn record(&mut self, op: usize, label: usize, corrected_ns: u64, service_ns: u64) {
        let h = &mut self.interval[op];
        h.corrected.saturating_record(corrected_ns.max(1));
        h.service.saturating_record(service_ns.max(1));
        self.interval_outcomes[label] += 1;
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
        if let Some(hlog) = self.hlog.as_mut()
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
        let offered = self
            .offered_per_s
            .get(second)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let errors: u64 = (0..N_LABELS)
            .filter(|&l| is_error_label(l))
            .map(|l| self.interval_outcomes[l])
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
            outcomes: self.interval_outcomes,
            corrected,
        });
        for (total, interval) in self.total.iter_mut().zip(self.interval.iter_mut()) {
            // Same bounds on both sides: adding cannot fail.
            let _ = total.corrected.add(&interval.corrected);
            let _ = total.service.add(&interval.service);
            interval.corrected.reset();
            interval.service.reset();
        }
        self.interval_outcomes = [0; N_LABELS];
        self.interval_completed = 0;
        self.current += 1;
    }

    /// Closes the last (partial) interval and hands over the record.
    pub fn finish(mut self, now_ns: u64) -> Recording {
        self.advance_to(now_ns);
        if self.interval_completed > 0 {
            self.close_interval();
        }
        if let Some(hlog) = self.hlog.as_mut()
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_engine_codes() {
        for r in Reject::ALL {
            let label = LABELS[outcome_label(&Outcome::Rejected(r))];
            if r != Reject::InvalidSku {
                assert_eq!(label, r.code(), "{r:?}");
            }
        }
    }

    #[test]
    fn intervals_close_and_totals_accumulate() {
        let live = Arc::new(Live::default());
        let offered = Arc::new((0..10).map(|_| AtomicU64::new(5)).collect::<Vec<_>>());
        let mut r = Recorder::new(1_000_000_000, None, live.clone(), offered);
        r.record(0, 0, 2_000_000, 1_000);
        r.advance_to(1_500_000_000);
        r.record(0, 15, 4_000_000, 2_000);
        r.record(1, 1, 1_000, 1_000);
        let rec = r.finish(2_500_000_000);
        assert_eq!(rec.points.len(), 2);
        assert_eq!(rec.points[0].completed, 1);
        assert_eq!(rec.points[0].offered, 5);
        assert_eq!(rec.points[1].outcomes[15], 1);
        assert_eq!(rec.total[0].corrected.len(), 2);
        assert_eq!(rec.outcomes[0][15], 1);
        assert_eq!(live.errors.load(Ordering::Relaxed), 1);
        let p = Percentiles::of(&rec.total[0].corrected);
        assert!((p.max_us - 4000.0).abs() < 5.0);
    }
}
