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

use flashsale_core::types::{CommandKind, OutcomeCode, SkuView};

/// Which front door a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http = 0,
    Tcp = 1,
}

const TRANSPORTS: [&str; 2] = ["http", "tcp"];

/// What a request was, for the `op` label: a command of some kind, a TCP auth request, or a
/// TCP request that could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Command(CommandKind),
    Auth,
    Unknown,
}

impl Op {
    /// How many ops there are: every command kind, then `auth` and `unknown`.
    pub const COUNT: usize = CommandKind::COUNT + 2;

    /// Dense index for per-op arrays: a command kind's table index, then `auth`, `unknown`.
    pub const fn index(self) -> usize {
        match self {
            Op::Command(kind) => kind.index(),
            Op::Auth => CommandKind::COUNT,
            Op::Unknown => CommandKind::COUNT + 1,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Op::Command(kind) => kind.name(),
            Op::Auth => "auth",
            Op::Unknown => "unknown",
        }
    }

    /// Every op, in index order.
    pub fn all() -> impl Iterator<Item = Op> {
        CommandKind::ALL
            .into_iter()
            .map(Op::Command)
            .chain([Op::Auth, Op::Unknown])
    }
}

const OUTCOME_COUNT: usize = OutcomeCode::COUNT;

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
        let latency = (0..2 * Op::COUNT)
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
            requests: (0..2 * Op::COUNT * OUTCOME_COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency,
            open_connections: [AtomicI64::new(0), AtomicI64::new(0)],
            rejected_connections: [AtomicU64::new(0), AtomicU64::new(0)],
            gateway_busy: AtomicU64::new(0),
        }
    }

    fn request_index(transport: Transport, op: usize, outcome: usize) -> usize {
        (transport as usize * Op::COUNT + op) * OUTCOME_COUNT + outcome
    }

    pub fn count(&self, transport: Transport, op: Op, outcome: OutcomeCode, n: u64) {
        self.count_at(transport, op.index(), outcome.index(), n);
    }

    fn count_at(&self, transport: Transport, op: usize, outcome: usize, n: u64) {
        self.requests[Self::request_index(transport, op, outcome)].fetch_add(n, Ordering::Relaxed);
    }

    /// Records `n` requests of `op` that took `micros` each.
    pub fn observe(&self, transport: Transport, op: Op, micros: u64, n: u64) {
        let latency = &self.latency[transport as usize * Op::COUNT + op.index()];
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
        let op = Op::all().find(|o| o.name() == op);
        match (op, OutcomeCode::from_code(outcome)) {
            (Some(op), Some(outcome)) => self.requests
                [Self::request_index(transport, op.index(), outcome.index())]
            .load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Renders everything in Prometheus text format 0.0.4.
    pub fn render(&self, engine: &EngineSnapshot) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# HELP flashsale_requests_total Requests answered, by transport, op and outcome.\n# TYPE flashsale_requests_total counter\n");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (o, op) in Op::all().map(Op::name).enumerate() {
                for (k, outcome) in OutcomeCode::ALL.map(OutcomeCode::as_str).iter().enumerate() {
                    let value = self.requests[(t * Op::COUNT + o) * OUTCOME_COUNT + k]
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
            for (o, op) in Op::all().map(Op::name).enumerate() {
                let latency = &self.latency[t * Op::COUNT + o];
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
    counts: [[u64; OUTCOME_COUNT]; Op::COUNT],
    dirty: bool,
}

impl Default for LocalCounts {
    fn default() -> Self {
        LocalCounts {
            counts: [[0; OUTCOME_COUNT]; Op::COUNT],
            dirty: false,
        }
    }
}

impl LocalCounts {
    #[inline]
    pub fn add(&mut self, op: Op, outcome: OutcomeCode) {
        self.counts[op.index()][outcome.index()] += 1;
        self.dirty = true;
    }

    pub fn flush(&mut self, metrics: &Metrics, transport: Transport) {
        if !self.dirty {
            return;
        }
        for (op, row) in self.counts.iter_mut().enumerate() {
            for (outcome, cell) in row.iter_mut().enumerate() {
                if *cell > 0 {
                    metrics.count_at(transport, op, outcome, *cell);
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

    /// Every (op, outcome) pair of the tables is rendered under the table's names, and
    /// nothing else is.
    #[test]
    fn the_label_sets_are_the_command_and_outcome_tables() {
        let metrics = Metrics::new();
        for op in Op::all() {
            for code in OutcomeCode::ALL {
                metrics.count(Transport::Tcp, op, code, 1);
            }
        }
        let text = metrics.render(&EngineSnapshot::default());
        let mut rendered = std::collections::BTreeSet::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("flashsale_requests_total{"))
        {
            assert!(line.ends_with("} 1"), "{line}");
            rendered.insert(line.to_string());
        }
        let mut expected = std::collections::BTreeSet::new();
        for op in Op::all() {
            for code in OutcomeCode::ALL {
                expected.insert(format!(
                    "flashsale_requests_total{{transport=\"tcp\",op=\"{}\",outcome=\"{}\"}} 1",
                    op.name(),
                    code.as_str()
                ));
                assert_eq!(
                    metrics.request_count(Transport::Tcp, op.name(), code.as_str()),
                    1
                );
            }
        }
        assert_eq!(rendered, expected);
        let ops: Vec<&str> = Op::all().map(Op::name).collect();
        let kinds: Vec<&str> = CommandKind::ALL.map(CommandKind::name).to_vec();
        assert_eq!(ops[..CommandKind::COUNT], kinds[..]);
        assert_eq!(ops[CommandKind::COUNT..], ["auth", "unknown"]);
        for (index, op) in Op::all().enumerate() {
            assert_eq!(op.index(), index);
        }
    }

    #[test]
    fn local_counts_flush_into_their_own_cells() {
        let metrics = Metrics::new();
        let mut counts = LocalCounts::default();
        let op = Op::Command(CommandKind::QuerySku);
        counts.add(op, OutcomeCode::UnknownSku);
        counts.add(op, OutcomeCode::UnknownSku);
        counts.add(Op::Unknown, OutcomeCode::UnknownOpcode);
        counts.flush(&metrics, Transport::Tcp);
        assert_eq!(
            metrics.request_count(Transport::Tcp, "query_sku", "unknown_sku"),
            2
        );
        assert_eq!(
            metrics.request_count(Transport::Tcp, "unknown", "unknown_opcode"),
            1
        );
        assert_eq!(
            metrics.request_count(Transport::Http, "query_sku", "unknown_sku"),
            0
        );
    }

    #[test]
    fn render_shows_counts_and_histograms() {
        let metrics = Metrics::new();
        let reserve = Op::Command(CommandKind::Reserve);
        metrics.count(Transport::Http, reserve, OutcomeCode::Held, 3);
        metrics.observe(Transport::Http, reserve, 120, 3);
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
