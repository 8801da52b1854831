//! Replays the mixed workload once through a shard, for instruction and cache-miss counts under
//! valgrind (this machine has no hardware counters):
//! `valgrind --tool=callgrind --cache-sim=yes target/release/deps/profile_mixed-*`.

#[path = "workloads.rs"]
mod workloads;

use flashsale::engine::Outcome;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let workload = workloads::mixed_zipf_workload(200_000);
    let mut shard = workloads::seeded_mixed_shard();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(1024);
    let mut created = 0usize;
    for (tick, batch) in workload.chunks(1024).enumerate() {
        outcomes.clear();
        shard.apply(tick as u64, batch, &mut outcomes);
        created += outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Created(_)))
            .count();
    }
    println!("{} commands, {created} holds created", workload.len());
}
