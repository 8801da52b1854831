//! Instruction-count benchmarks (gungraun, on valgrind's callgrind) for the core hot paths.
//! Unlike wall-clock figures on a shared 2-core VM these are deterministic for a given binary,
//! so CI gates on them: `cargo xtask bench-gate instructions` compares a run with the baseline
//! committed in `benches/instructions-baseline.json` (see docs/benchmarks.md).
//!
//! Each case's setup (building a shard, generating commands) is not counted; only the call in
//! the benchmark function is.

#[path = "workloads.rs"]
mod workloads;

use std::hint::black_box;

use bytes::BytesMut;
use flashsale::engine::journal::record;
use flashsale::engine::{AvailabilityMirror, Command, Outcome, Shard, SkuConfig, protocol};
use gungraun::{library_benchmark, library_benchmark_group, main};
use hdrhistogram::Histogram;

const BATCH: u64 = 1024;

type ApplyInput = (Shard, Vec<Command>, Vec<Outcome>);

/// One SKU of stock 1,000 already sold out; a batch of reserves from new buyers (all losers).
fn sold_out_flood() -> ApplyInput {
    let mut shard = Shard::with_capacity_and_hash_key(4096, workloads::BENCH_HASH_KEY);
    let mut outcomes = Vec::new();
    shard.apply(
        0,
        &[Command::UpsertSku(SkuConfig::simple(1, 1_000, 1, 60_000))],
        &mut outcomes,
    );
    let winners: Vec<Command> = (0..1_000u64)
        .map(|i| Command::Reserve {
            order_id: i,
            user_id: i,
            sku_id: 1,
            qty: 1,
        })
        .collect();
    shard.apply(1, &winners, &mut outcomes);
    let losers = (0..BATCH)
        .map(|i| Command::Reserve {
            order_id: 10_000 + i,
            user_id: 10_000 + i,
            sku_id: 1,
            qty: 1,
        })
        .collect();
    (shard, losers, Vec::with_capacity(BATCH as usize))
}

/// A batch of reserves that all succeed, over 64 SKUs.
fn accepted_reserves() -> ApplyInput {
    let mut shard = Shard::with_capacity_and_hash_key(4096, workloads::BENCH_HASH_KEY);
    let mut outcomes = Vec::new();
    let upserts: Vec<Command> = (0..64u32)
        .map(|sku| Command::UpsertSku(SkuConfig::simple(sku, 1_000_000, 4, 60_000)))
        .collect();
    shard.apply(0, &upserts, &mut outcomes);
    let reserves = (0..BATCH)
        .map(|i| Command::Reserve {
            order_id: i,
            user_id: i,
            sku_id: (i % 64) as u32,
            qty: 1,
        })
        .collect();
    (shard, reserves, Vec::with_capacity(BATCH as usize))
}

/// Pays of a batch of held orders.
fn pays() -> ApplyInput {
    let (mut shard, reserves, mut outcomes) = accepted_reserves();
    shard.apply(1, &reserves, &mut outcomes);
    outcomes.clear();
    let pays = (0..BATCH)
        .map(|i| Command::Pay {
            order_id: i,
            user_id: i,
        })
        .collect();
    (shard, pays, outcomes)
}

/// The mixed 10,000-SKU Zipf workload of the criterion suite: 10 batches of 1,024.
fn mixed_zipf() -> ApplyInput {
    let shard = workloads::seeded_mixed_shard();
    (
        shard,
        workloads::mixed_zipf_workload(10 * BATCH as usize),
        Vec::with_capacity(BATCH as usize),
    )
}

#[library_benchmark]
#[bench::sold_out_flood(setup = sold_out_flood)]
#[bench::accepted_reserves(setup = accepted_reserves)]
#[bench::pays(setup = pays)]
fn shard_apply((mut shard, commands, mut outcomes): ApplyInput) -> (Shard, Vec<Outcome>) {
    shard.apply(2, black_box(&commands), &mut outcomes);
    (shard, outcomes)
}

#[library_benchmark]
#[bench::mixed_zipf(setup = mixed_zipf)]
fn shard_apply_mixed((mut shard, commands, mut outcomes): ApplyInput) -> Shard {
    for (tick, batch) in commands.chunks(BATCH as usize).enumerate() {
        outcomes.clear();
        shard.apply(tick as u64, black_box(batch), &mut outcomes);
    }
    shard
}

/// 10,000 SKUs' availability published, then a batch of fast-path lookups.
fn populated_mirror() -> AvailabilityMirror {
    let mirror = AvailabilityMirror::new(1 << 16);
    for sku in 0..10_000u32 {
        mirror.publish(sku, u64::from(sku % 3));
    }
    mirror
}

#[library_benchmark]
#[bench::lookups(setup = populated_mirror)]
fn mirror_lookups(mirror: AvailabilityMirror) -> u64 {
    let mut sold_out = 0;
    for sku in 0..BATCH as u32 {
        if mirror.available(black_box(sku * 7)) == Some(0) {
            sold_out += 1;
        }
    }
    sold_out
}

fn reserve_batch() -> Vec<Command> {
    workloads::reserve_batch(BATCH)
}

fn encoded_reserve_batch() -> Vec<u8> {
    workloads::encoded_commands(&workloads::reserve_batch(BATCH))
}

#[library_benchmark]
#[bench::reserves(setup = reserve_batch)]
fn wire_encode(commands: Vec<Command>) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(64 * BATCH as usize);
    for command in &commands {
        protocol::encode_command(black_box(command), &mut buffer);
    }
    buffer
}

#[library_benchmark]
#[bench::reserves(setup = encoded_reserve_batch)]
fn wire_decode(encoded: Vec<u8>) -> usize {
    workloads::decode_all(black_box(&encoded))
}

#[library_benchmark]
#[bench::reserves(setup = reserve_batch)]
fn journal_record(commands: Vec<Command>) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(64 * BATCH as usize);
    record::append_record(&mut buffer, 7, 1_000, black_box(&commands));
    buffer
}

fn histogram_and_samples() -> (Histogram<u64>, Vec<u64>) {
    (
        flashsale::loadgen::recorder::new_histogram(),
        workloads::latency_samples_ns(BATCH as usize),
    )
}

#[library_benchmark]
#[bench::latencies(setup = histogram_and_samples)]
fn histogram_record((mut histogram, samples): (Histogram<u64>, Vec<u64>)) -> Histogram<u64> {
    for &latency_ns in &samples {
        histogram.saturating_record(black_box(latency_ns));
    }
    histogram
}

library_benchmark_group!(name = shard; benchmarks = shard_apply, shard_apply_mixed);
library_benchmark_group!(name = fast_path; benchmarks = mirror_lookups);
library_benchmark_group!(name = codecs; benchmarks = wire_encode, wire_decode, journal_record);
library_benchmark_group!(name = loadgen; benchmarks = histogram_record);

main!(library_benchmark_groups = shard, fast_path, codecs, loadgen);
