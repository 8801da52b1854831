//! End-to-end tests of the load generator's library: coordinated-omission correction against a
//! stalling target, the `.hlog` round trip through the hdrhistogram crate's reader, and a short
//! double11 run against the embedded engine with its report directory and invariant verdict.

use flashsale_engine::{Command, OrderStatus, OrderView, Outcome, SkuConfig, SkuId, SkuView};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::run::{self, RunIds, RunOptions, RunSettings};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::slo::Slo;
use flashsale_loadgen::targets::{self, Completion, Done, Target, TargetError, TargetOptions};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Answers like a no-op target, but the first submit after `stall_after` blocks the caller for
/// `stall` — a client that cannot send (a full connection, a GC pause) — as wrk2's CO example.
struct StallingTarget {
    created: Instant,
    stall_after: Duration,
    stall: Duration,
    stalled: AtomicBool,
}

impl Target for StallingTarget {
    fn describe(&self) -> String {
        "stalling".into()
    }
    fn max_batch(&self) -> usize {
        usize::MAX
    }
    fn keeps_state(&self) -> bool {
        false
    }
    fn setup(&self, _: &[SkuConfig]) -> Result<(), TargetError> {
        Ok(())
    }
    fn submit(&self, commands: Vec<Command>, done: Done) {
        if self.created.elapsed() >= self.stall_after && !self.stalled.swap(true, Ordering::AcqRel)
        {
            std::thread::sleep(self.stall);
        }
        let sent_at = Instant::now();
        let outcomes = commands
            .iter()
            .map(|c| match *c {
                Command::Reserve {
                    order_id,
                    user_id,
                    sku_id,
                    qty,
                } => Outcome::Created(OrderView {
                    order_id,
                    user_id,
                    sku_id,
                    qty,
                    status: OrderStatus::Held,
                    expires_at_ms: 0,
                }),
                _ => Outcome::Rejected(flashsale_engine::Reject::UnknownOrder),
            })
            .collect();
        done(Completion {
            result: Ok(outcomes),
            failed: Vec::new(),
            sent_at,
            done_at: Instant::now(),
        });
    }
    fn query_skus(&self, ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        Ok(vec![None; ids.len()])
    }
    fn shutdown(&self) {}
}

fn quiet_driver() -> DriverConfig {
    DriverConfig {
        drain_timeout_ms: 5_000,
        ..DriverConfig::default()
    }
}

#[test]
fn a_100ms_stall_shows_in_corrected_latency_but_not_in_service_time() {
    let mut scenario = Scenario::profile("steady").unwrap();
    scenario.set_duration_s(3.0).unwrap();
    scenario.set_peak_rate(20_000.0).unwrap();
    scenario.funnel.pay_probability = 0.0;
    scenario.funnel.cancel_probability = 0.0;
    let target = Arc::new(StallingTarget {
        created: Instant::now(),
        stall_after: Duration::from_millis(1500),
        stall: Duration::from_millis(100),
        stalled: AtomicBool::new(false),
    });
    let report = run::execute(RunOptions {
        scenario,
        seed: 5,
        settings: RunSettings {
            target,
            out_dir: None,
            slos: vec![Slo::parse("reserve.p99.9<50ms").unwrap()],
            driver: quiet_driver(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .unwrap();
    let reserve = &report.summary.ops["reserve"];
    assert!(reserve.count > 40_000, "{}", reserve.count);
    // ~2,000 of ~55,000 requests waited up to 100 ms behind the stall: p99.9 sees it.
    assert!(
        reserve.corrected.p999_us > 80_000.0,
        "corrected p99.9 {} µs",
        reserve.corrected.p999_us
    );
    assert!(reserve.corrected.max_us >= 95_000.0);
    // Service time starts at the actual send, after the stall: it stays small.
    assert!(
        reserve.service.p999_us < 50_000.0,
        "service p99.9 {} µs",
        reserve.service.p999_us
    );
    // The stalled requests were sent late, and that is reported.
    assert!(
        report.summary.send.sent_late > 1_000,
        "{:?}",
        report.summary.send
    );
    assert_eq!(report.summary.send.unanswered, 0);
    assert!(report.slo_breached(), "the stall breaches a 50 ms p99.9");
}

#[test]
fn short_double11_in_process_end_to_end_with_report_and_hlog_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let mut scenario = Scenario::profile("double11").unwrap();
    scenario.set_duration_s(6.0).unwrap();
    scenario.set_peak_rate(20_000.0).unwrap();
    let expected = scenario.expected_arrivals_until(scenario.duration_s());
    let target = targets::from_spec(
        "inproc",
        &TargetOptions {
            inproc_shards: 2,
            ..TargetOptions::default()
        },
    )
    .unwrap();
    let report = run::execute(RunOptions {
        scenario,
        seed: 11,
        settings: RunSettings {
            target: target.clone(),
            out_dir: Some(out.clone()),
            slos: vec![Slo::parse("reserve.p50<10s").unwrap()],
            driver: quiet_driver(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .unwrap();
    target.shutdown();
    let s = &report.summary;

    // Every scheduled reserve was sent and answered; nothing vanished.
    assert_eq!(s.send.unanswered, 0);
    assert_eq!(s.send.answered, s.send.sent);
    let fresh_and_dups = s.ops["reserve"].count as f64;
    assert!(
        fresh_and_dups > expected * 0.95 && fresh_and_dups < expected * 1.1,
        "{fresh_and_dups} reserves for {expected:.0} expected arrivals"
    );
    assert!(s.ops["reserve"].outcomes["held"] > 10_000);
    assert!(s.ops["pay"].outcomes.get("paid").copied().unwrap_or(0) > 1_000);
    assert!(s.verdict.checked && s.verdict.passed, "{:?}", s.verdict);
    assert!(!report.slo_breached());

    for file in [
        "summary.json",
        "latency.hlog",
        "reserve.hgrm",
        "pay.hgrm",
        "cancel.hgrm",
        "report.html",
    ] {
        let meta = std::fs::metadata(out.join(file)).unwrap();
        assert!(meta.len() > 100, "{file} is {} bytes", meta.len());
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "four inline charts");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        json["ops"]["reserve"]["corrected"]["p99_us"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(json["verdict"]["passed"].as_bool().unwrap());

    // The interval log: the Java header lines, then intervals that the crate's reader parses
    // and whose histograms add up to the summary's counts.
    let log = std::fs::read(out.join("latency.hlog")).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("#[Histogram log format version 1.3]\n"));
    assert!(text.contains("\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"));
    let mut deserializer = Deserializer::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut saw_start = false;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&log) {
        match entry.unwrap() {
            LogEntry::StartTime(_) => saw_start = true,
            LogEntry::BaseTime(_) => {}
            LogEntry::Interval(ilh) => {
                intervals += 1;
                let bytes = base64_decode(ilh.encoded_histogram());
                let h: hdrhistogram::Histogram<u64> =
                    deserializer.deserialize(&mut bytes.as_slice()).unwrap();
                let tag = ilh.tag().unwrap().as_str().to_string();
                *counts.entry(tag).or_default() += h.len();
            }
        }
    }
    assert!(saw_start);
    assert!(intervals >= 6 * 6, "{intervals} interval lines");
    for op in ["reserve", "pay", "cancel"] {
        assert_eq!(counts[op], s.ops[op].count, "{op}");
        assert_eq!(
            counts[&format!("{op}_service")],
            s.ops[op].count,
            "{op}_service"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
