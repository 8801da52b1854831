//! Server metrics and their Prometheus text exposition: request counters by transport, op and
//! outcome, latency histograms (HDR, microseconds) by transport and op, open connections, and
//! the engine's own figures (queue depths, busy rejections, SKU stock) read at scrape time.
//! It owns only counters; it must not change engine state or decide any answer. Hot paths
//! count into [`LocalCounts`] and flush once per write, so a million requests per second do
//! not mean a million contended atomic adds.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::types::{CommandKind, Outcome, Reject, SkuView};

/// Which front door a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http = 0,
    Tcp = 1,
}

const TRANSPORTS: [&str; 2] = ["http", "tcp"];

/// Ops: the seven command kinds plus `auth` and `unknown` (an undecodable TCP request).
pub const OP_AUTH: usize = 7;
pub const OP_UNKNOWN: usize = 8;
const OP_COUNT: usize = 9;
const OP_NAMES: [&str; OP_COUNT] = [
    "upsert_sku",
    "restock",
    "reserve",
    "pay",
    "cancel",
    "query_order",
    "query_sku",
    "auth",
    "unknown",
];

/// Op index of a command kind.
pub fn op_index(kind: CommandKind) -> usize {
    kind as usize - 1
}

/// Outcome labels: order statuses, `sku`, the reject codes, then server-level answers.
const OUTCOME_NAMES: [&str; 24] = [
    "held",
    "paid",
    "cancelled",
    "expired",
    "sku",
    "sold_out",
    "limit_exceeded",
    "not_on_sale",
    "unknown_sku",
    "invalid_qty",
    "id_conflict",
    "unknown_order",
    "not_owner",
    "expired_rejected",
    "cancelled_rejected",
    "already_paid",
    "invalid_restock",
    "invalid_sku",
    "busy",
    "invalid_request",
    "unauthorized",
    "rate_limited",
    "ok",
    "unknown_opcode",
];
const OUTCOME_COUNT: usize = OUTCOME_NAMES.len();
pub const OUT_INVALID_REQUEST: usize = 19;
pub const OUT_UNAUTHORIZED: usize = 20;
pub const OUT_RATE_LIMITED: usize = 21;
pub const OUT_OK: usize = 22;
pub const OUT_UNKNOWN_OPCODE: usize = 23;

/// Outcome label index of an engine outcome.
pub fn outcome_index(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Created(view) | Outcome::Order(view) => view.status as usize,
        Outcome::SkuCreated(_) | Outcome::Sku(_) => 4,
        Outcome::Rejected(reject) => reject_index(*reject),
    }
}

pub fn reject_index(reject: Reject) -> usize {
    4 + reject as usize
}

/// Latency buckets, in microseconds, exposed as the histogram's `le` bounds.
const BUCKETS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

struct Latency {
    histogram: Mutex<Histogram<u64>>,
    sum_us: AtomicU64,
}

/// Every counter the server keeps. One per server; shared by reference.
pub struct Metrics {
    requests: Vec<AtomicU64>,
    latency: Vec<Latency>,
    open_connections: [AtomicI64; 2],
    rejected_connections: [AtomicU64; 2],
    gateway_busy: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let latency = (0..2 * OP_COUNT)
            .map(|_| Latency {
                // Three significant digits up to an hour: far beyond any answer we give.
                histogram: Mutex::new(
                    Histogram::new_with_bounds(1, 3_600_000_000, 3)
                        .expect("constant histogram bounds are valid"),
                ),
                sum_us: AtomicU64::new(0),
            })
            .collect();
        Metrics {
            requests: (0..2 * OP_COUNT * OUTCOME_COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency,
            open_connections: [AtomicI64::new(0), AtomicI64::new(0)],
            rejected_connections: [AtomicU64::new(0), AtomicU64::new(0)],
            gateway_busy: AtomicU64::new(0),
        }
    }

    pub fn count(&self, transport: Transport, op: usize, outcome: usize, n: u64) {
        let index = (transport as usize * OP_COUNT + op) * OUTCOME_COUNT + outcome;
        self.requests[index].fetch_add(n, Ordering::Relaxed);
    }

    /// Records `n` requests of `op` that took `micros` each.
    pub fn observe(&self, transport: Transport, op: usize, micros: u64, n: u64) {
        let latency = &self.latency[transport as usize * OP_COUNT + op];
        let micros = micros.clamp(1, 3_600_000_000);
        latency
            .histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record_n(micros, n);
        latency.sum_us.fetch_add(micros * n, Ordering::Relaxed);
    }

    pub fn connection_opened(&self, transport: Transport) {
        self.open_connections[transport as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self, transport: Transport) {
        self.open_connections[transport as usize].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_rejected(&self, transport: Transport) {
        self.rejected_connections[transport as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn open_connections(&self, transport: Transport) -> i64 {
        self.open_connections[transport as usize].load(Ordering::Relaxed)
    }

    pub fn gateway_busy(&self) {
        self.gateway_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Count of requests for one (transport, op, outcome label); for tests.
    pub fn request_count(&self, transport: Transport, op: &str, outcome: &str) -> u64 {
        let op = OP_NAMES.iter().position(|name| *name == op);
        let outcome = OUTCOME_NAMES.iter().position(|name| *name == outcome);
        match (op, outcome) {
            (Some(op), Some(outcome)) => self.requests
                [(transport as usize * OP_COUNT + op) * OUTCOME_COUNT + outcome]
                .load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Renders everything in Prometheus text format 0.0.4.
    pub fn render(&self, engine: &EngineSnapshot) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# HELP flashsale_requests_total Requests answered, by transport, op and outcome.\n# TYPE flashsale_requests_total counter\n");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (o, op) in OP_NAMES.iter().enumerate() {
                for (k, outcome) in OUTCOME_NAMES.iter().enumerate() {
                    let value = self.requests[(t * OP_COUNT + o) * OUTCOME_COUNT + k]
                        .load(Ordering::Relaxed);
                    if value > 0 {
                        let _ = writeln!(
                            out,
                            "flashsale_requests_total{{transport=\"{transport}\",op=\"{op}\",outcome=\"{outcome}\"}} {value}"
                        );
                    }
                }
            }
        }
        out.push_str("# HELP flashsale_request_duration_seconds Server-side latency from decode to reply, by transport and op.\n# TYPE flashsale_request_duration_seconds histogram\n");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (o, op) in OP_NAMES.iter().enumerate() {
                let latency = &self.latency[t * OP_COUNT + o];
                let histogram = latency
                    .histogram
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if histogram.is_empty() {
                    continue;
                }
                for bound in BUCKETS_US {
                    let count = histogram.count_between(0, bound);
                    let _ = writeln!(
                        out,
                        "flashsale_request_duration_seconds_bucket{{transport=\"{transport}\",op=\"{op}\",le=\"{}\"}} {count}",
                        bound as f64 / 1e6
                    );
                }
                let total = histogram.len();
                let _ = writeln!(
                    out,
                    "flashsale_request_duration_seconds_bucket{{transport=\"{transport}\",op=\"{op}\",le=\"+Inf\"}} {total}"
                );
                let _ = writeln!(
                    out,
                    "flashsale_request_duration_seconds_sum{{transport=\"{transport}\",op=\"{op}\"}} {}",
                    latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "flashsale_request_duration_seconds_count{{transport=\"{transport}\",op=\"{op}\"}} {total}"
                );
            }
        }
        out.push_str("# HELP flashsale_open_connections Connections currently open.\n# TYPE flashsale_open_connections gauge\n");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_open_connections{{transport=\"{transport}\"}} {}",
                self.open_connections[t].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP flashsale_rejected_connections_total Connections refused at the connection limit.\n# TYPE flashsale_rejected_connections_total counter\n");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_rejected_connections_total{{transport=\"{transport}\"}} {}",
                self.rejected_connections[t].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP flashsale_busy_rejections_total Commands answered busy, by where the queue was full.\n# TYPE flashsale_busy_rejections_total counter\n");
        let _ = writeln!(
            out,
            "flashsale_busy_rejections_total{{queue=\"shard\"}} {}",
            engine.busy_rejections
        );
        let _ = writeln!(
            out,
            "flashsale_busy_rejections_total{{queue=\"gateway\"}} {}",
            self.gateway_busy.load(Ordering::Relaxed)
        );
        out.push_str("# HELP flashsale_fast_path_total Commands answered without entering a shard.\n# TYPE flashsale_fast_path_total counter\n");
        let _ = writeln!(
            out,
            "flashsale_fast_path_total{{kind=\"sold_out\"}} {}\nflashsale_fast_path_total{{kind=\"unknown_order\"}} {}",
            engine.fast_sold_out, engine.fast_unknown_order
        );
        out.push_str("# HELP flashsale_expired_holds_total Holds that expired unpaid.\n# TYPE flashsale_expired_holds_total counter\n");
        let _ = writeln!(
            out,
            "flashsale_expired_holds_total {}",
            engine.expired_holds
        );
        out.push_str("# HELP flashsale_shard_queue_depth Batches waiting in each shard's queue.\n# TYPE flashsale_shard_queue_depth gauge\n");
        for (shard, depth) in engine.queue_depths.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_shard_queue_depth{{shard=\"{shard}\"}} {depth}"
            );
        }
        let (mut available, mut held, mut sold) = (0u64, 0u64, 0u64);
        for view in &engine.skus {
            available += view.available;
            held += view.held;
            sold += view.sold;
        }
        out.push_str(
            "# HELP flashsale_skus Number of SKUs the engine knows.\n# TYPE flashsale_skus gauge\n",
        );
        let _ = writeln!(out, "flashsale_skus {}", engine.skus.len());
        out.push_str("# HELP flashsale_stock_units Stock units summed over every SKU, by state.\n# TYPE flashsale_stock_units gauge\n");
        let _ = writeln!(
            out,
            "flashsale_stock_units{{state=\"available\"}} {available}\nflashsale_stock_units{{state=\"held\"}} {held}\nflashsale_stock_units{{state=\"sold\"}} {sold}"
        );
        out.push_str("# HELP flashsale_sku_stock_units Stock units of one SKU, by state (the lowest sku ids, up to the configured limit).\n# TYPE flashsale_sku_stock_units gauge\n");
        for view in engine.skus.iter().take(engine.per_sku_limit) {
            let id = view.config.sku_id;
            let _ = writeln!(
                out,
                "flashsale_sku_stock_units{{sku_id=\"{id}\",state=\"available\"}} {}\nflashsale_sku_stock_units{{sku_id=\"{id}\",state=\"held\"}} {}\nflashsale_sku_stock_units{{sku_id=\"{id}\",state=\"sold\"}} {}",
                view.available, view.held, view.sold
            );
        }
        let _ = writeln!(
            out,
            "# HELP flashsale_durability_failed 1 once the journal failed: every command is refused until a restart (GET /healthz says why).\n# TYPE flashsale_durability_failed gauge\nflashsale_durability_failed {}",
            u8::from(engine.durability_failure.is_some())
        );
        if let Some((records, dropped)) = engine.capture {
            let _ = writeln!(
                out,
                "# HELP flashsale_capture_records_total Requests written to the --capture trace.\n# TYPE flashsale_capture_records_total counter\nflashsale_capture_records_total {records}\n# HELP flashsale_capture_dropped_total Requests the --capture writer could not keep up with (not in the trace).\n# TYPE flashsale_capture_dropped_total counter\nflashsale_capture_dropped_total {dropped}"
            );
        }
        out
    }
}

/// What the engine reports at scrape time.
#[derive(Clone, Debug, Default)]
pub struct EngineSnapshot {
    pub busy_rejections: u64,
    pub fast_sold_out: u64,
    pub fast_unknown_order: u64,
    pub expired_holds: u64,
    pub queue_depths: Vec<usize>,
    /// Every SKU's view, sorted by id.
    pub skus: Vec<SkuView>,
    /// How many SKUs get their own gauges.
    pub per_sku_limit: usize,
    /// (records written, records dropped) of a running `--capture`.
    pub capture: Option<(u64, u64)>,
    /// Why the journal failed, once it has (fail-stop: every command is refused until a restart).
    pub durability_failure: Option<String>,
}

/// Per-connection counts, flushed to [`Metrics`] in one go.
pub struct LocalCounts {
    counts: [[u64; OUTCOME_COUNT]; OP_COUNT],
    dirty: bool,
}

impl Default for LocalCounts {
    fn default() -> Self {
        LocalCounts {
            counts: [[0; OUTCOME_COUNT]; OP_COUNT],
            dirty: false,
        }
    }
}

impl LocalCounts {
    #[inline]
    pub fn add(&mut self, op: usize, outcome: usize) {
        self.counts[op][outcome] += 1;
        self.dirty = true;
    }

    pub fn flush(&mut self, metrics: &Metrics, transport: Transport) {
        if !self.dirty {
            return;
        }
        for (op, row) in self.counts.iter_mut().enumerate() {
            for (outcome, cell) in row.iter_mut().enumerate() {
                if *cell > 0 {
                    metrics.count(transport, op, outcome, *cell);
                    *cell = 0;
                }
            }
        }
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_unique_and_cover_every_reject() {
        let mut names = OUTCOME_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OUTCOME_COUNT);
        for reject in Reject::ALL {
            assert!(reject_index(reject) < OUT_INVALID_REQUEST);
        }
        assert_eq!(OUTCOME_NAMES[reject_index(Reject::Busy)], "busy");
        assert_eq!(OUTCOME_NAMES[reject_index(Reject::SoldOut)], "sold_out");
    }

    #[test]
    fn render_shows_counts_and_histograms() {
        let metrics = Metrics::new();
        metrics.count(Transport::Http, op_index(CommandKind::Reserve), 0, 3);
        metrics.observe(Transport::Http, op_index(CommandKind::Reserve), 120, 3);
        let text = metrics.render(&EngineSnapshot::default());
        assert!(text.contains(
            "flashsale_requests_total{transport=\"http\",op=\"reserve\",outcome=\"held\"} 3"
        ));
        assert!(text.contains(
            "flashsale_request_duration_seconds_bucket{transport=\"http\",op=\"reserve\",le=\"0.0001\"} 0"
        ));
        assert!(text.contains(
            "flashsale_request_duration_seconds_bucket{transport=\"http\",op=\"reserve\",le=\"0.00025\"} 3"
        ));
        assert!(text.contains(
            "flashsale_request_duration_seconds_count{transport=\"http\",op=\"reserve\"} 3"
        ));
        assert!(text.contains("flashsale_durability_failed 0"), "{text}");
        let failed = metrics.render(&EngineSnapshot {
            durability_failure: Some("fsync failed".to_string()),
            ..EngineSnapshot::default()
        });
        assert!(failed.contains("flashsale_durability_failed 1"), "{failed}");
    }
}
