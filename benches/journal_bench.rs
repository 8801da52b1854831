//! Measurements (ignored by default; run with `--release`): the machine's fdatasync rate, and
//! in-process throughput and batch latency of `memory`, `sync` and `async` durability with a
//! batch-submitting driver like `benches/engine.rs`'s `runtime_end_to_end` (2 submitter
//! threads, batches of 1024 accepted reserves, 8 batches in flight each).
//!
//! `cargo test --release -p flashsale --test journal_bench -- --ignored --nocapture --test-threads 1`

use std::io::Write as _;
use std::time::{Duration, Instant};

use flashsale_engine::journal::{Durability, JournalConfig, SyncMode};
use flashsale_engine::{Command, Engine, EngineConfig, Outcome, SkuConfig};
use hdrhistogram::Histogram;

const BATCH: usize = 1024;
const IN_FLIGHT: usize = 8;
const SKUS: u32 = 1_000;
const RUN: Duration = Duration::from_secs(4);

#[test]
#[ignore = "measurement"]
fn fdatasync_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [0x5au8; 4096];
    let count = 1000;
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "append 4 KiB + fdatasync: {count} in {elapsed:?}: {:.0}/s, {:.0} us each",
        f64::from(count) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(count)
    );
}

struct Run {
    commands: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

fn drive(engine: &Engine, thread: u64) -> Run {
    let (sender, receiver) = crossbeam_channel::bounded::<(Instant, Vec<Outcome>)>(IN_FLIGHT);
    let mut latency_us = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    let mut next_id = thread << 48;
    let mut in_flight = 0;
    let mut commands = 0u64;
    loop {
        let running = started.elapsed() < RUN;
        while running && in_flight < IN_FLIGHT {
            let batch: Vec<Command> = (0..BATCH)
                .map(|i| {
                    next_id += 1;
                    Command::Reserve {
                        order_id: next_id,
                        user_id: next_id,
                        sku_id: ((next_id ^ i as u64) % u64::from(SKUS)) as u32,
                        qty: 1,
                    }
                })
                .collect();
            let sent_at = Instant::now();
            let sender = sender.clone();
            engine.submit(batch, move |outcomes| {
                let _ = sender.send((sent_at, outcomes));
            });
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        let (sent_at, outcomes) = receiver.recv().unwrap();
        in_flight -= 1;
        latency_us
            .record(sent_at.elapsed().as_micros() as u64)
            .unwrap();
        assert!(
            matches!(outcomes[0], Outcome::Created(_)),
            "{:?}",
            outcomes[0]
        );
        commands += outcomes.len() as u64;
    }
    Run {
        commands,
        elapsed: started.elapsed(),
        latency_us,
    }
}

/// A 2-shard engine with room for `orders_capacity_per_shard` orders and `SKUS` SKUs of stock
/// that cannot run out (so every reserve is a real new hold).
fn engine_with_skus(durability: Durability, orders_capacity_per_shard: usize) -> Engine {
    let engine = Engine::start(EngineConfig {
        shards: 2,
        durability,
        orders_capacity_per_shard,
        ..EngineConfig::default()
    })
    .unwrap();
    let upserts = (0..SKUS)
        .map(|sku| Command::UpsertSku(SkuConfig::simple(sku, 1 << 40, u32::MAX, 900_000)))
        .collect();
    engine.submit_wait(upserts);
    engine
}

fn measure(name: &str, durability: Durability) -> f64 {
    let engine = engine_with_skus(durability, 1 << 22);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2u64)
            .map(|thread| {
                let engine = engine.clone();
                scope.spawn(move || drive(&engine, thread))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    engine.shutdown();
    let commands: u64 = runs.iter().map(|r| r.commands).sum();
    let elapsed = runs.iter().map(|r| r.elapsed).max().unwrap();
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for run in &runs {
        latency.add(&run.latency_us).unwrap();
    }
    let rate = commands as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{name:>6}: {:.2}M commands/s ({commands} in {elapsed:?}); batch of {BATCH} latency p50 {} us, p99 {} us, max {} us",
        rate / 1e6,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    rate
}

#[test]
#[ignore = "measurement"]
fn sync_vs_memory_throughput_and_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let memory = measure("memory", Durability::Memory);
    let mut sync = JournalConfig::new(tmp.path().join("sync"), SyncMode::Sync);
    sync.snapshot_every_commands = 0;
    let sync = measure("sync", Durability::Journal(sync));
    let mut async_ = JournalConfig::new(
        tmp.path().join("async"),
        SyncMode::Async {
            fsync_interval_ms: 10,
        },
    );
    async_.snapshot_every_commands = 0;
    let async_rate = measure("async", Durability::Journal(async_));
    eprintln!(
        "sync / memory = {:.0}%, async / memory = {:.0}%",
        sync / memory * 100.0,
        async_rate / memory * 100.0
    );
}

/// The double11 profile's peak (325k requests/s), offered open-loop from 2 threads in batches
/// of 128; latency is measured from each batch's scheduled send time (no coordinated omission).
const PEAK_PER_S: u64 = 325_000;
const PEAK_BATCH: u64 = 128;

fn peak(name: &str, durability: Durability) {
    let engine = engine_with_skus(durability, 1 << 21);
    let (sender, receiver) = crossbeam_channel::unbounded::<(u64, usize)>();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..2u64 {
            let engine = engine.clone();
            let sender = sender.clone();
            scope.spawn(move || {
                let interval = Duration::from_nanos(2 * PEAK_BATCH * 1_000_000_000 / PEAK_PER_S);
                let mut next_id = thread << 48;
                let mut scheduled = started + interval * thread as u32 / 2;
                while scheduled < started + RUN {
                    let now = Instant::now();
                    if scheduled > now {
                        std::thread::sleep(scheduled - now);
                    }
                    let batch: Vec<Command> = (0..PEAK_BATCH)
                        .map(|i| {
                            next_id += 1;
                            Command::Reserve {
                                order_id: next_id,
                                user_id: next_id,
                                sku_id: ((next_id ^ i) % u64::from(SKUS)) as u32,
                                qty: 1,
                            }
                        })
                        .collect();
                    let sender = sender.clone();
                    let at = scheduled;
                    engine.submit(batch, move |outcomes| {
                        let created = outcomes
                            .iter()
                            .filter(|o| matches!(o, Outcome::Created(_)))
                            .count();
                        let _ = sender.send((at.elapsed().as_micros() as u64, created));
                    });
                    scheduled += interval;
                }
            });
        }
    });
    drop(sender);
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut created = 0;
    for (micros, count) in receiver.iter() {
        latency.record(micros).unwrap();
        created += count;
    }
    let elapsed = started.elapsed();
    engine.shutdown();
    eprintln!(
        "{name:>6} at {PEAK_PER_S}/s offered: {created} reserves created in {elapsed:?}; batch latency p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max()
    );
}

#[test]
#[ignore = "measurement"]
fn double11_peak_latency() {
    let tmp = tempfile::tempdir().unwrap();
    peak("memory", Durability::Memory);
    // 8 MiB segments (64 MiB by default): at the peak's ~4 MB/s per shard the run includes the
    // background preparation of the next segment and a roll into it, as a long peak would.
    let mut sync = JournalConfig::new(tmp.path().join("sync"), SyncMode::Sync);
    sync.snapshot_every_commands = 0;
    sync.segment_max_bytes = 8 << 20;
    peak("sync", Durability::Journal(sync));
    report_segments(&tmp.path().join("sync"));
    let mut async_ = JournalConfig::new(
        tmp.path().join("async"),
        SyncMode::Async {
            fsync_interval_ms: 10,
        },
    );
    async_.snapshot_every_commands = 0;
    async_.segment_max_bytes = 8 << 20;
    peak("async", Durability::Journal(async_));
    report_segments(&tmp.path().join("async"));
}

/// Prints how many segments each shard of a data directory wrote (more than one: it rolled).
fn report_segments(dir: &std::path::Path) {
    for shard in 0..2 {
        let segments = flashsale_engine::journal::segment::list_segments(
            &flashsale_engine::journal::shard_dir(dir, shard),
        )
        .unwrap();
        let bytes: u64 = segments
            .iter()
            .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
            .sum();
        eprintln!(
            "        shard {shard}: {} segment(s), {} MiB of files",
            segments.len(),
            bytes >> 20
        );
    }
}
