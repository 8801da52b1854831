//! Criterion benchmarks of the engine's hot paths: shard apply (a hot-SKU flood and a mixed
//! reserve / pay / cancel load over 10,000 Zipf-popular SKUs), the sold-out fast path, and the
//! runtime end to end from submitter threads. Figures and the commands that reproduce them are
//! in docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flashsale::engine::journal::record;
use flashsale::engine::{
    Clock, Command, Engine, EngineConfig, Outcome, Shard, SkuConfig, protocol,
};

#[path = "workloads.rs"]
mod workloads;
use workloads::{mixed_zipf_workload, seeded_mixed_shard};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOLD_TTL_MS: u64 = 900_000;
const BATCH: usize = 1024;

/// Reserves from distinct users on one SKU of stock 1,000: after the first thousand, every
/// command is a loser — the shape of a flash sale after its first second.
fn hot_sku_flood(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("shard_apply");
    let commands: Vec<Command> = (0..1_000_000u64)
        .map(|i| Command::Reserve {
            order_id: i,
            user_id: i,
            sku_id: 1,
            qty: 1,
        })
        .collect();
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut shard = Shard::with_capacity_and_hash_key(0, workloads::BENCH_HASH_KEY);
    let mut outcomes = Vec::with_capacity(BATCH);
    shard.apply(
        0,
        &[Command::UpsertSku(SkuConfig::simple(
            1,
            1_000,
            1,
            HOLD_TTL_MS,
        ))],
        &mut outcomes,
    );
    let mut offset = 0;
    group.bench_function("hot_sku_flood", |bencher| {
        bencher.iter(|| {
            outcomes.clear();
            shard.apply(1, &commands[offset..offset + BATCH], &mut outcomes);
            offset = (offset + BATCH) % (commands.len() - BATCH);
            black_box(&outcomes);
        })
    });
    group.finish();
}

fn mixed_shard(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("shard_apply");
    let workload = mixed_zipf_workload(200_000);
    let seeded = seeded_mixed_shard();
    group.throughput(Throughput::Elements(workload.len() as u64));
    group.sample_size(20);
    group.bench_function("mixed_zipf_10k_skus", |bencher| {
        bencher.iter_batched(
            || (seeded.clone(), Vec::with_capacity(BATCH)),
            |(mut shard, mut outcomes)| {
                for (tick, batch) in workload.chunks(BATCH).enumerate() {
                    outcomes.clear();
                    shard.apply(tick as u64, batch, &mut outcomes);
                }
                black_box(shard)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn engine_with_sold_out_sku() -> Engine {
    let engine = Engine::start(EngineConfig {
        shards: 2,
        clock: Clock::system(),
        ..EngineConfig::default()
    })
    .expect("engine starts");
    engine.execute(Command::UpsertSku(SkuConfig::simple(1, 1, 1, HOLD_TTL_MS)));
    engine.execute(Command::Reserve {
        order_id: u64::MAX,
        user_id: 0,
        sku_id: 1,
        qty: 1,
    });
    engine
}

/// Reserves on a sold-out SKU answered by the submitter itself from the availability mirror.
fn sold_out_fast_path(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("sold_out_fast_path");
    let engine = engine_with_sold_out_sku();
    for threads in [1u64, 2] {
        group.throughput(Throughput::Elements(BATCH as u64 * threads));
        group.bench_function(format!("{threads}_threads"), |bencher| {
            bencher.iter_custom(|iters| {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..threads)
                        .map(|thread| {
                            let engine = engine.clone();
                            scope.spawn(move || {
                                let mut commands: Vec<Command> = (0..BATCH as u64)
                                    .map(|i| Command::Reserve {
                                        order_id: thread << 40 | i,
                                        user_id: i,
                                        sku_id: 1,
                                        qty: 1,
                                    })
                                    .collect();
                                let start = Instant::now();
                                for _ in 0..iters {
                                    let (sender, receiver) = crossbeam_channel::bounded(1);
                                    engine.submit(std::mem::take(&mut commands), move |outcomes| {
                                        let _ = sender.send(outcomes);
                                    });
                                    let outcomes = receiver.recv().expect("answered");
                                    debug_assert!(
                                        outcomes.iter().all(|o| matches!(o, Outcome::Rejected(_)))
                                    );
                                    // Reuse the allocation: the fast path answers all in place.
                                    commands = outcomes_back_to_commands(outcomes, thread);
                                }
                                start.elapsed()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("bench thread"))
                        .max()
                        .unwrap_or_default()
                })
            })
        });
    }
    group.finish();
}

fn outcomes_back_to_commands(outcomes: Vec<Outcome>, thread: u64) -> Vec<Command> {
    (0..outcomes.len() as u64)
        .map(|i| Command::Reserve {
            order_id: thread << 40 | i,
            user_id: i,
            sku_id: 1,
            qty: 1,
        })
        .collect()
}

/// The runtime end to end: two submitter threads keep up to 8 batches each in flight against
/// two shard threads. `accepted`: every reserve creates a hold (1,000 SKUs, ample stock).
/// `flash_sale`: 64 hot SKUs of 1,000 units each flooded by distinct buyers, most of them losers.
fn runtime_end_to_end(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("runtime");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (name, skus, stock) in [
        ("accepted_reserves", 1_000u32, 1u64 << 40),
        ("flash_sale_flood", 64, 1_000),
    ] {
        group.throughput(Throughput::Elements(BATCH as u64 * 2));
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                let engine = Engine::start(EngineConfig {
                    shards: 2,
                    ..EngineConfig::default()
                })
                .expect("engine starts");
                let upserts = (0..skus)
                    .map(|sku| {
                        Command::UpsertSku(SkuConfig::simple(sku, stock, u32::MAX, HOLD_TTL_MS))
                    })
                    .collect();
                engine.submit_wait(upserts);
                let elapsed = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..2u64)
                        .map(|thread| {
                            let engine = engine.clone();
                            scope.spawn(move || drive(&engine, thread, iters, skus))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("bench thread"))
                        .max()
                        .unwrap_or_default()
                });
                engine.shutdown();
                elapsed
            })
        });
    }
    group.finish();
}

/// Submits `batches` batches of reserves, keeping up to 8 in flight; returns the time taken.
fn drive(engine: &Engine, thread: u64, batches: u64, skus: u32) -> Duration {
    const IN_FLIGHT: u64 = 8;
    let (sender, receiver) = crossbeam_channel::bounded::<Vec<Outcome>>(IN_FLIGHT as usize);
    let start = Instant::now();
    let mut sent = 0;
    let mut received = 0;
    let mut next_id = thread << 48;
    while received < batches {
        while sent < batches && sent - received < IN_FLIGHT {
            let commands = (0..BATCH as u64)
                .map(|i| {
                    next_id += 1;
                    Command::Reserve {
                        order_id: next_id,
                        user_id: next_id,
                        sku_id: ((next_id ^ i) % u64::from(skus)) as u32,
                        qty: 1,
                    }
                })
                .collect();
            let sender = sender.clone();
            engine.submit(commands, move |outcomes| {
                let _ = sender.send(outcomes);
            });
            sent += 1;
        }
        black_box(receiver.recv().expect("answered"));
        received += 1;
    }
    start.elapsed()
}

/// The wire codec: a batch of reserves encoded into one buffer, and decoded back.
fn wire_codec(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("wire_codec");
    let commands = workloads::reserve_batch(BATCH as u64);
    let mut buffer = BytesMut::with_capacity(64 * BATCH);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_commands", |bencher| {
        bencher.iter(|| {
            buffer.clear();
            for command in &commands {
                protocol::encode_command(black_box(command), &mut buffer);
            }
            black_box(buffer.len())
        })
    });
    let encoded = workloads::encoded_commands(&commands);
    group.bench_function("decode_commands", |bencher| {
        bencher.iter(|| workloads::decode_all(black_box(&encoded)))
    });
    group.finish();
}

/// A journal record of a batch of reserves: framing, command encoding and CRC32C.
fn journal_record(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("journal_record");
    let commands = workloads::reserve_batch(BATCH as u64);
    let mut buffer = BytesMut::with_capacity(64 * BATCH);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_1024_commands", |bencher| {
        bencher.iter(|| {
            buffer.clear();
            black_box(record::append_record(
                &mut buffer,
                7,
                1_000,
                black_box(&commands),
            ))
        })
    });
    group.finish();
}

/// The load generator's per-answer cost: HdrHistogram records of spread-out latencies.
fn histogram_recording(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("histogram_recording");
    let latencies_ns = workloads::latency_samples_ns(BATCH);
    let mut histogram = flashsale::loadgen::recorder::new_histogram();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("record_1024", |bencher| {
        bencher.iter(|| {
            for &latency_ns in &latencies_ns {
                histogram.saturating_record(black_box(latency_ns));
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    hot_sku_flood,
    mixed_shard,
    sold_out_fast_path,
    runtime_end_to_end,
    wire_codec,
    journal_record,
    histogram_recording
);
criterion_main!(benches);
