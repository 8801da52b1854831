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

/// Latency buckets, in microseconds, exposed as the histogram's `le` bounds: a 1-2-5 ladder
/// from 10 µs to 10 s.
pub const BUCKETS_US: [u64; 19] = one_two_five_ladder();

const fn one_two_five_ladder() -> [u64; 19] {
    let mut bounds = [0; 19];
    let mut decade = 10;
    let mut at = 0;
    while at < 18 {
        bounds[at] = decade;
        bounds[at + 1] = 2 * decade;
        bounds[at + 2] = 5 * decade;
        decade *= 10;
        at += 3;
    }
    bounds[18] = decade;
    bounds
}

/// The `route` label of an HTTP answer: a template from the route table, never the raw path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRoute {
    Orders,
    Order,
    Pay,
    Cancel,
    Sku,
    Restock,
    Metrics,
    Healthz,
    OpenApi,
    /// A path no route matches (its answer is 404).
    Unmatched,
    /// Answered 503 at the connection limit, before any request was read.
    ConnectionLimit,
    /// Answered by hyper itself (400, 431) because the request head could not be parsed.
    Unparsed,
}

impl HttpRoute {
    pub const ALL: [HttpRoute; 12] = [
        HttpRoute::Orders,
        HttpRoute::Order,
        HttpRoute::Pay,
        HttpRoute::Cancel,
        HttpRoute::Sku,
        HttpRoute::Restock,
        HttpRoute::Metrics,
        HttpRoute::Healthz,
        HttpRoute::OpenApi,
        HttpRoute::Unmatched,
        HttpRoute::ConnectionLimit,
        HttpRoute::Unparsed,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            HttpRoute::Orders => "/v1/orders",
            HttpRoute::Order => "/v1/orders/{order_id}",
            HttpRoute::Pay => "/v1/orders/{order_id}/pay",
            HttpRoute::Cancel => "/v1/orders/{order_id}/cancel",
            HttpRoute::Sku => "/v1/skus/{sku_id}",
            HttpRoute::Restock => "/v1/skus/{sku_id}/restock",
            HttpRoute::Metrics => "/metrics",
            HttpRoute::Healthz => "/healthz",
            HttpRoute::OpenApi => "/openapi.json",
            HttpRoute::Unmatched => "unmatched",
            HttpRoute::ConnectionLimit => "connection_limit",
            HttpRoute::Unparsed => "unparsed",
        }
    }
}

/// One counter per possible HTTP status code (hyper's `StatusCode` is 100..=999).
const STATUS_SLOTS: usize = 1000;

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
    http_responses: Vec<AtomicU64>,
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
            http_responses: (0..HttpRoute::ALL.len() * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
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

    /// Counts one HTTP answer: every answer the server writes goes through here.
    pub fn http_response(&self, route: HttpRoute, status: u16) {
        let status = usize::from(status).min(STATUS_SLOTS - 1);
        self.http_responses[route as usize * STATUS_SLOTS + status].fetch_add(1, Ordering::Relaxed);
    }

    /// Count of HTTP answers for one (route, status); for tests.
    pub fn http_response_count(&self, route: HttpRoute, status: u16) -> u64 {
        let status = usize::from(status).min(STATUS_SLOTS - 1);
        self.http_responses[route as usize * STATUS_SLOTS + status].load(Ordering::Relaxed)
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

    /// Renders everything in Prometheus text format 0.0.4: one function per group of families.
    pub fn render(&self, engine: &EngineSnapshot) -> String {
        let mut out = String::with_capacity(16 * 1024);
        render_build_info(&mut out);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.render_http_responses(&mut out);
        self.render_connections(&mut out);
        self.render_queues(&mut out, engine);
        render_engine_counters(&mut out, engine);
        render_order_tables(&mut out, engine);
        render_stock(&mut out, engine);
        render_durability(&mut out, engine);
        out
    }

    fn render_requests(&self, out: &mut String) {
        family(
            out,
            "flashsale_requests_total",
            "counter",
            "Requests answered, by transport, op and outcome (the API's codes).",
        );
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
    }

    fn render_latency(&self, out: &mut String) {
        family(
            out,
            "flashsale_request_duration_seconds",
            "histogram",
            "Server-side latency from decode to reply, by transport and op.",
        );
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
                let labels = format!("transport=\"{transport}\",op=\"{op}\"");
                for bound in BUCKETS_US {
                    let count = histogram.count_between(0, bound);
                    let _ = writeln!(
                        out,
                        "flashsale_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {count}",
                        bound as f64 / 1e6
                    );
                }
                let total = histogram.len();
                let _ = writeln!(
                    out,
                    "flashsale_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}\nflashsale_request_duration_seconds_sum{{{labels}}} {}\nflashsale_request_duration_seconds_count{{{labels}}} {total}",
                    latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6
                );
            }
        }
    }

    fn render_http_responses(&self, out: &mut String) {
        family(
            out,
            "flashsale_http_responses_total",
            "counter",
            "Every HTTP answer, by route (the route table's template; unknown paths are `unmatched`) and status.",
        );
        for route in HttpRoute::ALL {
            for status in 0..STATUS_SLOTS {
                let value = self.http_responses[route as usize * STATUS_SLOTS + status]
                    .load(Ordering::Relaxed);
                if value > 0 {
                    let _ = writeln!(
                        out,
                        "flashsale_http_responses_total{{route=\"{}\",status=\"{status}\"}} {value}",
                        route.label()
                    );
                }
            }
        }
    }

    fn render_connections(&self, out: &mut String) {
        family(
            out,
            "flashsale_open_connections",
            "gauge",
            "Connections currently open.",
        );
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_open_connections{{transport=\"{transport}\"}} {}",
                self.open_connections[t].load(Ordering::Relaxed)
            );
        }
        family(
            out,
            "flashsale_rejected_connections_total",
            "counter",
            "Connections refused at the connection limit.",
        );
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_rejected_connections_total{{transport=\"{transport}\"}} {}",
                self.rejected_connections[t].load(Ordering::Relaxed)
            );
        }
    }

    fn render_queues(&self, out: &mut String, engine: &EngineSnapshot) {
        family(
            out,
            "flashsale_busy_rejections_total",
            "counter",
            "Commands answered busy, by where the queue was full.",
        );
        let _ = writeln!(
            out,
            "flashsale_busy_rejections_total{{queue=\"shard\"}} {}\nflashsale_busy_rejections_total{{queue=\"gateway\"}} {}",
            engine.busy_rejections,
            self.gateway_busy.load(Ordering::Relaxed)
        );
        family(
            out,
            "flashsale_shard_queue_depth",
            "gauge",
            "Batches waiting in each shard's queue.",
        );
        for (shard, depth) in engine.queue_depths.iter().enumerate() {
            let _ = writeln!(
                out,
                "flashsale_shard_queue_depth{{shard=\"{shard}\"}} {depth}"
            );
        }
        family(
            out,
            "flashsale_shard_queue_capacity",
            "gauge",
            "Batches each shard's queue holds before commands are answered busy (--queue-capacity-batches).",
        );
        for shard in 0..engine.queue_depths.len() {
            let _ = writeln!(
                out,
                "flashsale_shard_queue_capacity{{shard=\"{shard}\"}} {}",
                engine.queue_capacity
            );
        }
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_build_info(out: &mut String) {
    family(
        out,
        "flashsale_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let _ = writeln!(
        out,
        "flashsale_build_info{{version=\"{}\",profile=\"{profile}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

fn render_engine_counters(out: &mut String, engine: &EngineSnapshot) {
    family(
        out,
        "flashsale_fast_path_total",
        "counter",
        "Commands answered without entering a shard.",
    );
    let _ = writeln!(
        out,
        "flashsale_fast_path_total{{kind=\"sold_out\"}} {}\nflashsale_fast_path_total{{kind=\"unknown_order\"}} {}",
        engine.fast_sold_out, engine.fast_unknown_order
    );
    family(
        out,
        "flashsale_expired_holds_total",
        "counter",
        "Holds that expired unpaid.",
    );
    let _ = writeln!(
        out,
        "flashsale_expired_holds_total {}",
        engine.expired_holds
    );
}

fn render_order_tables(out: &mut String, engine: &EngineSnapshot) {
    family(
        out,
        "flashsale_order_table_capacity",
        "gauge",
        "Orders each shard's table holds before it grows, pausing the shard (--orders-capacity-per-shard).",
    );
    for shard in 0..engine.queue_depths.len() {
        let _ = writeln!(
            out,
            "flashsale_order_table_capacity{{shard=\"{shard}\"}} {}",
            engine.order_capacity_per_shard
        );
    }
}

fn render_stock(out: &mut String, engine: &EngineSnapshot) {
    let (mut available, mut held, mut sold) = (0u64, 0u64, 0u64);
    for view in &engine.skus {
        available += view.available;
        held += view.held;
        sold += view.sold;
    }
    family(
        out,
        "flashsale_skus",
        "gauge",
        "Number of SKUs the engine knows.",
    );
    let _ = writeln!(out, "flashsale_skus {}", engine.skus.len());
    family(
        out,
        "flashsale_stock_units",
        "gauge",
        "Stock units summed over every SKU, by state.",
    );
    let _ = writeln!(
        out,
        "flashsale_stock_units{{state=\"available\"}} {available}\nflashsale_stock_units{{state=\"held\"}} {held}\nflashsale_stock_units{{state=\"sold\"}} {sold}"
    );
    family(
        out,
        "flashsale_sku_stock_units",
        "gauge",
        "Stock units of one SKU, by state (the lowest sku ids, up to --metrics-sku-limit).",
    );
    for view in engine.skus.iter().take(engine.per_sku_limit) {
        let id = view.config.sku_id;
        let _ = writeln!(
            out,
            "flashsale_sku_stock_units{{sku_id=\"{id}\",state=\"available\"}} {}\nflashsale_sku_stock_units{{sku_id=\"{id}\",state=\"held\"}} {}\nflashsale_sku_stock_units{{sku_id=\"{id}\",state=\"sold\"}} {}",
            view.available, view.held, view.sold
        );
    }
}

fn render_durability(out: &mut String, engine: &EngineSnapshot) {
    family(
        out,
        "flashsale_durability_mode",
        "gauge",
        "1 for the journal mode this server runs with (sync, async or memory).",
    );
    let _ = writeln!(
        out,
        "flashsale_durability_mode{{mode=\"{}\"}} 1",
        engine.durability_mode
    );
    family(
        out,
        "flashsale_durability_failed",
        "gauge",
        "1 once the journal failed: every command is refused until a restart (GET /healthz says why).",
    );
    let _ = writeln!(
        out,
        "flashsale_durability_failed {}",
        u8::from(engine.durability_failure.is_some())
    );
    if let Some((records, dropped)) = engine.capture {
        family(
            out,
            "flashsale_capture_records_total",
            "counter",
            "Requests written to the --capture trace.",
        );
        let _ = writeln!(out, "flashsale_capture_records_total {records}");
        family(
            out,
            "flashsale_capture_dropped_total",
            "counter",
            "Requests the --capture writer could not keep up with (not in the trace).",
        );
        let _ = writeln!(out, "flashsale_capture_dropped_total {dropped}");
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
    /// Batches each shard queue holds.
    pub queue_capacity: usize,
    /// Orders each shard's table holds before it grows.
    pub order_capacity_per_shard: usize,
    /// `sync`, `async` or `memory`.
    pub durability_mode: &'static str,
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
            "flashsale_request_duration_seconds_bucket{transport=\"http\",op=\"reserve\",le=\"0.0002\"} 3"
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
