//! Workloads shared by the criterion suite and the instruction-count profiles: generated from a
//! fixed seed so every run measures the same commands. Owns no measuring code.

#![allow(dead_code)] // each bench target uses its own subset

use flashsale::engine::{Command, Shard, SkuConfig};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

pub const MIXED_SKUS: u32 = 10_000;

/// The hash key of every benchmark shard: a fixed one keeps the memory layout, and so the
/// instruction counts, the same from run to run (a server's shards use secret random keys).
pub const BENCH_HASH_KEY: u64 = 0x5eed;

/// A shard with the mixed workload's 10,000 SKUs, ample stock, limit 4 and a 50 ms hold TTL.
/// Tables are allocated up front for the run (as the engine does, `orders_capacity_per_shard`).
pub fn seeded_mixed_shard() -> Shard {
    let mut shard = Shard::with_capacity_and_hash_key(256 * 1024, BENCH_HASH_KEY);
    let mut outcomes = Vec::new();
    let upserts: Vec<Command> = (0..MIXED_SKUS)
        .map(|sku| Command::UpsertSku(SkuConfig::simple(sku, 1_000_000, 4, 50)))
        .collect();
    shard.apply(0, &upserts, &mut outcomes);
    shard
}

/// A mixed load over 10,000 SKUs with Zipf(1.1) popularity: 60% reserves, 25% pays and 15%
/// cancels of earlier orders, with time advancing 1 ms per batch so holds keep expiring.
pub fn mixed_zipf_workload(commands: usize) -> Vec<Command> {
    let mut rng = SmallRng::seed_from_u64(42);
    let zipf = Zipf::new(10_000.0, 1.1).expect("valid zipf");
    let mut out = Vec::with_capacity(commands);
    let mut next_order: u64 = 0;
    while out.len() < commands {
        let roll: f64 = rng.random();
        if roll < 0.6 || next_order < 100 {
            let sku_id = zipf.sample(&mut rng) as u32 - 1;
            let user_id = rng.random_range(0..1_000_000u64);
            out.push(Command::Reserve {
                order_id: next_order,
                user_id,
                sku_id,
                qty: 1,
            });
            next_order += 1;
        } else {
            // Follow up a recent order with its real owner (recorded below), so most succeed.
            let back = rng.random_range(1..100u64);
            let order_id = next_order - back;
            let owner = match out.iter().rev().find_map(|c| match c {
                Command::Reserve {
                    order_id: id,
                    user_id,
                    ..
                } if *id == order_id => Some(*user_id),
                _ => None,
            }) {
                Some(owner) => owner,
                None => continue,
            };
            out.push(if roll < 0.85 {
                Command::Pay {
                    order_id,
                    user_id: owner,
                }
            } else {
                Command::Cancel {
                    order_id,
                    user_id: owner,
                }
            });
        }
    }
    out
}

/// `count` reserves from distinct buyers over 64 SKUs.
pub fn reserve_batch(count: u64) -> Vec<Command> {
    (0..count)
        .map(|i| Command::Reserve {
            order_id: i,
            user_id: i,
            sku_id: (i % 64) as u32,
            qty: 1,
        })
        .collect()
}

/// `commands` in the wire encoding, back to back.
pub fn encoded_commands(commands: &[Command]) -> Vec<u8> {
    let mut buffer = bytes::BytesMut::new();
    for command in commands {
        flashsale::engine::protocol::encode_command(command, &mut buffer);
    }
    buffer.to_vec()
}

/// Decodes back-to-back wire-encoded commands; returns how many there were.
pub fn decode_all(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while !bytes.is_empty() {
        let (command, used) =
            flashsale::engine::protocol::decode_command(bytes).expect("benchmark input is valid");
        std::hint::black_box(command);
        bytes = &bytes[used..];
        count += 1;
    }
    count
}

/// Latencies spread like a real run's: mostly sub-millisecond, a tail into seconds.
pub fn latency_samples_ns(count: usize) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..count)
        .map(|_| {
            let exponent: f64 = rng.random_range(3.0..9.5);
            10f64.powf(exponent) as u64
        })
        .collect()
}
