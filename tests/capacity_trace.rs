//! Record → read → replay: a recorded trace holds exactly the schedule `run` would send, a
//! replay sends the same requests in the same order (hash), honours --speed within a tolerance,
//! and a damaged trace is an error naming a byte offset. A capture at the real server holds
//! every request it received and replays as is.

use flashsale_engine::trace::{FLAG_OPEN_LOOP, FLAG_SERVER_CAPTURE};
use flashsale_engine::{Command, SkuConfig};
use flashsale_loadgen::driver::DriverConfig;
use flashsale_loadgen::driver::schedule::{self, Batch, Schedule};
use flashsale_loadgen::replay::{self, ReplayOptions, ReplayReport};
use flashsale_loadgen::run::{self, RunIds, RunOptions, RunSettings};
use flashsale_loadgen::scenario::Scenario;
use flashsale_loadgen::targets::{self, TargetOptions};
use flashsale_loadgen::trace::{self, ScenarioSource};
use flashsale_server::capture::Capture;
use flashsale_server::limits::AdminToken;
use flashsale_server::{ServerConfig, serve};
use std::path::Path;

fn small_double11() -> Scenario {
    let mut s = Scenario::profile("double11").unwrap();
    s.set_duration_s(2.0).unwrap();
    s.set_peak_rate(20_000.0).unwrap();
    s
}

fn record_small(path: &Path) -> Scenario {
    let scenario = small_double11();
    trace::record(
        &scenario,
        ScenarioSource::Profile("double11"),
        Some(2.0),
        Some(20_000.0),
        7,
        path,
    )
    .unwrap();
    scenario
}

fn replay_on(path: &Path, spec: &str, speed: f64) -> ReplayReport {
    let target = targets::from_spec(spec, &TargetOptions::default()).unwrap();
    let report = replay::replay(
        path,
        &ReplayOptions {
            speed,
            ..ReplayOptions::default()
        },
        RunSettings {
            target: target.clone(),
            out_dir: None,
            slos: vec![],
            driver: DriverConfig::default(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    )
    .unwrap();
    target.shutdown();
    report
}

#[test]
fn a_recorded_trace_holds_exactly_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d11.fst");
    let scenario = record_small(&path);

    let mut expected: Vec<(u64, Command)> = schedule::catalog(&scenario, 7)
        .into_iter()
        .map(|c| (0, Command::UpsertSku(c)))
        .collect();
    let mut sched = Schedule::new(&scenario, 7).unwrap();
    let mut batch = Batch::new();
    sched.fill_until(u64::MAX, &mut batch);
    expected.extend(batch.iter().map(|m| (m.intended_ns, m.req.command())));
    assert!(batch.len() > 10_000, "{}", batch.len());

    let mut reader = trace::open(&path).unwrap();
    assert_eq!(reader.header().flags, FLAG_OPEN_LOOP);
    assert_eq!(reader.header().seed, 7);
    let mut got = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        got.push((r.at_ns, r.command));
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "records differ from the schedule");

    let info = trace::info(&path).unwrap();
    assert_eq!(info.counts["reserve"], batch.len() as u64);
    assert_eq!(info.counts["upsert_sku"], scenario.catalog.skus as u64);
    assert_eq!(info.catalog.len(), scenario.catalog.skus as usize);
    assert!(
        info.duration_s > 1.9 && info.duration_s <= 2.0,
        "{}",
        info.duration_s
    );
    // The busiest second of a 2 s double11 at a 20k/s peak.
    assert!(
        info.peak_rate_per_s > 5_000 && info.peak_rate_per_s < 25_000,
        "{}",
        info.peak_rate_per_s
    );
    // The provenance rebuilds the same scenario (so a replay regenerates the same funnel).
    let provenance = trace::Provenance::parse(&info.provenance).unwrap();
    let rebuilt = provenance.scenario().unwrap().unwrap();
    assert_eq!(rebuilt.time_scale, scenario.time_scale);
    assert_eq!(rebuilt.peak_rate_per_s, scenario.peak_rate_per_s);
}

#[test]
fn a_damaged_trace_is_an_error_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d11.fst");
    record_small(&path);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.fst");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = trace::info(&cut).unwrap_err().to_string();
    assert!(err.contains("truncated at byte offset"), "{err}");
    assert!(err.contains("cut.fst"), "{err}");
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&cut, &flipped).unwrap();
    let err = trace::info(&cut).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    // A replay refuses it before sending anything.
    let target = targets::from_spec("noop", &TargetOptions::default()).unwrap();
    let err = replay::plan(&cut, &ReplayOptions::default()).err().unwrap();
    assert!(err.to_string().contains("byte offset"), "{err}");
    target.shutdown();
}

#[test]
fn a_replay_sends_the_same_requests_and_regenerates_the_funnel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d11.fst");
    let scenario = record_small(&path);
    let info = trace::info(&path).unwrap();

    // Against an embedded engine: same arrivals (hash), funnel regenerated, invariants hold.
    let report = replay_on(&path, "inproc", 1.0);
    let r = &report.replay;
    assert_eq!(r.same_requests, Some(true), "{r:?}");
    assert_eq!(r.sent_order_hash.as_deref(), Some(info.order_hash.as_str()));
    let s = &report.run.summary;
    assert_eq!(s.send.unanswered, 0);
    assert!(
        s.ops["pay"].count > 0,
        "pays are regenerated from (seed, order id)"
    );
    assert!(s.verdict.checked && s.verdict.passed, "{:?}", s.verdict);

    // `run` with the same scenario and seed sends the same fresh requests and the same funnel
    // (the engine answers deterministically at this scale: no hold expires in 2 s).
    let target = targets::from_spec("inproc", &TargetOptions::default()).unwrap();
    let ran = run::execute(RunOptions {
        scenario,
        seed: 7,
        settings: RunSettings {
            target: target.clone(),
            out_dir: None,
            slos: vec![],
            driver: DriverConfig {
                hash_sent: true,
                ..DriverConfig::default()
            },
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .unwrap();
    target.shutdown();
    assert_eq!(ran.summary.send.sent_order_hash, r.sent_order_hash);
    assert_eq!(ran.summary.ops["reserve"].count, s.ops["reserve"].count);
}

#[test]
fn speed_scales_the_timing_within_a_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d11.fst");
    record_small(&path);
    let info = trace::info(&path).unwrap();
    let one = replay_on(&path, "noop", 1.0);
    let four = replay_on(&path, "noop", 4.0);
    for (report, speed) in [(&one, 1.0), (&four, 4.0)] {
        let r = &report.replay;
        assert_eq!(r.same_requests, Some(true));
        let intended = info.duration_s / speed;
        assert!(
            (r.intended_duration_s - intended).abs() < 0.01,
            "{} vs {intended}",
            r.intended_duration_s
        );
        // Wall time: the intended span plus a little (the pacer's tick, the drain).
        assert!(
            r.elapsed_s >= intended * 0.95 && r.elapsed_s < intended * 1.15 + 0.3,
            "speed {speed}: wall {} s for {intended} s intended",
            r.elapsed_s
        );
        // Open loop: the median request left within a few ms of its scaled intended time.
        assert!(r.send_lag_p50_us < 5_000.0, "speed {speed}: {r:?}");
    }
    let ratio = one.replay.elapsed_s / four.replay.elapsed_s;
    assert!(
        ratio > 3.0 && ratio < 4.6,
        "1x / 4x wall-time ratio {ratio}"
    );
    // The peak offered rate scales with the speed.
    let p1 = one.run.summary.peak_offered_rate_per_s;
    let p4 = four.run.summary.peak_offered_rate_per_s;
    assert!((p4 / p1 - 4.0).abs() < 0.01, "{p1} {p4}");
}

#[test]
fn max_rate_caps_the_speed_and_loops_shift_order_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d11.fst");
    record_small(&path);
    let info = trace::info(&path).unwrap();
    let cap = info.peak_rate_per_s as f64 / 2.0;
    let plan = replay::plan(
        &path,
        &ReplayOptions {
            speed: 3.0,
            max_rate_per_s: Some(cap),
            loops: 2,
            first_loop: 0,
            run_id: 0,
        },
    )
    .unwrap();
    assert!(
        (plan.basis.speed - 0.5).abs() < 1e-9,
        "{}",
        plan.basis.speed
    );
    assert!(plan.basis.expected_hash.is_none());
    // Two loops of a 2 s trace at 0.5x: 8 s of schedule.
    assert!(
        (plan.plan.duration_s - 2.0 * (info.duration_s + 0.001) / 0.5).abs() < 0.01,
        "{}",
        plan.plan.duration_s
    );
    let err = replay::plan(
        &path,
        &ReplayOptions {
            speed: 0.0,
            ..ReplayOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("speed must be > 0"), "{err}");
}

#[test]
fn a_server_capture_holds_every_request_and_replays_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.fst");
    let capture = Capture::create(&path, 65_536).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let catalog: Vec<SkuConfig> = (1..=3)
        .map(|id| SkuConfig::simple(id, 50, 2, 60_000))
        .collect();
    let server = runtime
        .block_on(serve(ServerConfig {
            admin_token: AdminToken::new(Some("t".into())),
            catalog: catalog.clone(),
            capture: Some(capture.clone()),
            ..ServerConfig::default()
        }))
        .unwrap();
    let mut scenario = Scenario::profile("double11").unwrap();
    scenario.catalog.skus = 200;
    scenario.set_duration_s(2.0).unwrap();
    scenario.set_peak_rate(3_000.0).unwrap();
    let target = targets::from_spec(
        &format!("tcp://{}", server.tcp_addr),
        &TargetOptions {
            connections: 4,
            admin_token: Some("t".into()),
            ..TargetOptions::default()
        },
    )
    .unwrap();
    let ran = run::execute(RunOptions {
        scenario,
        seed: 3,
        settings: RunSettings {
            target: target.clone(),
            out_dir: None,
            slos: vec![],
            driver: DriverConfig::default(),
            progress: false,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })
    .unwrap();
    target.shutdown();
    runtime.block_on(server.shutdown());
    let trailer = capture.finish().unwrap();
    assert_eq!(trailer.dropped, 0);

    let info = trace::info(&path).unwrap();
    assert_eq!(info.flags, FLAG_SERVER_CAPTURE);
    let s = &ran.summary;
    // Every order request the generator sent arrived and was captured, pays and cancels too.
    for op in ["reserve", "pay", "cancel"] {
        assert_eq!(info.counts[op], s.ops[op].count, "{op}");
    }
    // The start catalog (3) plus the generator's catalog (200). The server's SKUs 1..=3 are
    // not the generator's: it took run id 1 (SKUs 201..=400) instead of overwriting them.
    assert_eq!(info.counts["upsert_sku"], 203);
    assert_eq!(s.run_id, 1);
    assert!(s.ids.starts_with("SKUs 201..=400"), "{}", s.ids);
    // Its queries: SKU 1 (known: run id 0 is taken), SKUs 201..=400 (all new), and the
    // verification's 200.
    assert_eq!(info.counts["query_sku"], 1 + 200 + 200);

    // Replayed as is: every captured order request, in order; no funnel added.
    let report = replay_on(&path, "inproc", 2.0);
    let r = &report.replay;
    assert_eq!(r.same_requests, Some(true), "{r:?}");
    assert_eq!(r.skipped_records, 401);
    assert_eq!(report.run.summary.send.sent, info.order_requests);
    assert_eq!(report.run.summary.send.follow_ups_sent, 0);
    assert!(!report.run.summary.verdict.checked);
}
