//! How fast the generator's own hot paths are, without pacing or a target: schedule generation
//! (what the pacer does per request) and follow-up decisions (what the recorder does per hold).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flashsale_loadgen::driver::schedule::{Batch, FollowUps, Schedule};
use flashsale_loadgen::scenario::Scenario;
use std::hint::black_box;

fn schedule(c: &mut Criterion) {
    let mut scenario = Scenario::profile("double11").unwrap();
    scenario.set_peak_rate(3_000_000.0).unwrap();
    // The midnight phase at full rate: 100 ms of schedule ≈ 300,000 requests.
    let start_ns = 5_000_000_000u64;
    let mut probe = Schedule::new(&scenario, 1).unwrap();
    let mut batch = Batch::with_capacity(1 << 20);
    probe.fill_until(start_ns, &mut batch);
    let before = batch.len();
    probe.fill_until(start_ns + 100_000_000, &mut batch);
    let per_iter = (batch.len() - before) as u64;

    let mut group = c.benchmark_group("generator");
    group.throughput(Throughput::Elements(per_iter));
    group.sample_size(10);
    group.bench_function("schedule_100ms_at_3M_per_s", |b| {
        b.iter_batched(
            || {
                let mut s = Schedule::new(&scenario, 1).unwrap();
                let mut skip = Batch::with_capacity(1 << 20);
                s.fill_until(start_ns, &mut skip);
                (s, Batch::with_capacity(1 << 20))
            },
            |(mut s, mut out)| {
                s.fill_until(start_ns + 100_000_000, &mut out);
                black_box(out.len())
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let follow = FollowUps::new(&scenario, 1);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("decide_100k_follow_ups", |b| {
        b.iter(|| {
            (0..100_000u64)
                .map(|id| follow.decide(black_box(id)))
                .filter(|d| matches!(d, flashsale_loadgen::driver::schedule::Decision::Abandon))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, schedule);
criterion_main!(benches);
