//! The whole engine against the reference `Model`: random SKUs spread over 1, 2 and 4 shards,
//! order ids reused across SKUs of different shards, dependent requests (reserve, then pay,
//! query and cancel of that order) inside one submitted batch, retries, several batches in
//! flight at once (a pipelining client), and time moving (sometimes backwards, which the engine
//! must ignore). The engine with N shards must answer exactly as the Model — one big shard, the
//! contract written plainly — does for the same stream in submission order.
//!
//! Each run checks at least `MIN_COMMANDS_PER_RUN` commands per shard count, over 10^6 in all.
//! The long run is the same test with a bigger budget: `FLASHSALE_MODEL_COMMANDS=10000000 cargo
//! test -p flashsale-engine --test engine_model -- --nocapture` (see docs/benchmarks.md for its
//! figure). Every round of 64 cases draws from its own seed, derived from a base seed that is
//! random and printed (so a failure names what reproduces it) unless `FLASHSALE_MODEL_SEED` fixes
//! it; a long run across seeds is several runs with different bases.

#[path = "../../core/tests/model_support/mod.rs"]
mod model_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flashsale_engine::model::Model;
use flashsale_engine::{
    Clock, Command, Engine, EngineConfig, Linearisation, Outcome, Reject, SkuConfig, Stream,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// SKU ids 0..SKUS: with 4 shards every shard owns at least one of them.
const SKUS: u32 = 8;
/// Order ids are drawn from a small range so that one id is often reused for another SKU —
/// on another shard — and by another user.
const ORDER_IDS: u64 = 16;
const USERS: u64 = 4;

/// Commands each shard count's test checks per run at least; three tests make the 10^6.
const MIN_COMMANDS_PER_RUN: u64 = 340_000;

fn command() -> impl Strategy<Value = Command> {
    model_support::command(SKUS, ORDER_IDS, USERS)
}

/// A few commands that depend on each other, sent together: a reserve followed by requests on
/// the same order (a pipelining client), the same order id reserved for two SKUs (which may
/// live on two shards), or a retry of the same reserve.
fn group() -> impl Strategy<Value = Vec<Command>> {
    let reserve = (0..ORDER_IDS, 0..USERS, 0..SKUS, 1u32..3);
    prop_oneof![
        6 => command().prop_map(|command| vec![command]),
        2 => (reserve.clone(), proptest::collection::vec(0u8..4, 1..4)).prop_map(
            |((order_id, user_id, sku_id, qty), follow_ups)| {
                let mut commands = vec![Command::Reserve { order_id, user_id, sku_id, qty }];
                commands.extend(follow_ups.into_iter().map(|kind| match kind {
                    0 => Command::Pay { order_id, user_id },
                    1 => Command::Cancel { order_id, user_id },
                    2 => Command::QueryOrder { order_id },
                    _ => Command::Reserve { order_id, user_id, sku_id, qty },
                }));
                commands
            }
        ),
        2 => (reserve, 0..SKUS, 0..USERS).prop_map(
            |((order_id, user_id, sku_id, qty), other_sku, other_user)| vec![
                Command::Reserve { order_id, user_id, sku_id, qty },
                Command::Reserve { order_id, user_id: other_user, sku_id: other_sku, qty },
            ]
        ),
    ]
}

fn batch() -> impl Strategy<Value = Vec<Command>> {
    proptest::collection::vec(group(), 1..5).prop_map(|groups| groups.concat())
}

/// A step: move the clock by `advance_ms` (sometimes backwards), then submit a few batches
/// back to back without waiting, and wait for all of them.
fn step() -> impl Strategy<Value = (i64, Vec<Vec<Command>>)> {
    (
        prop_oneof![6 => 0i64..5, 2 => 5i64..60, 1 => -20i64..0],
        proptest::collection::vec(batch(), 1..4),
    )
}

fn start(shards: usize, clock: Clock) -> Engine {
    Engine::start(EngineConfig {
        shards,
        clock,
        tick_interval_ms: 1,
        orders_capacity_per_shard: 64,
        mirror_capacity_skus: 64,
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

/// Submits every batch on one stream (a pipelining client's connection) before waiting for
/// any, so several are in the engine at once.
fn submit_pipelined(stream: &Stream, batches: &[Vec<Command>]) -> Vec<Vec<Outcome>> {
    let (sender, receiver) = crossbeam_channel::unbounded();
    for (index, batch) in batches.iter().enumerate() {
        let sender = sender.clone();
        stream.submit(batch.clone(), move |outcomes| {
            let _ = sender.send((index, outcomes));
        });
    }
    drop(sender);
    let mut answered: Vec<Option<Vec<Outcome>>> = vec![None; batches.len()];
    for _ in 0..batches.len() {
        let (index, outcomes) = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("every batch is answered within 10 s");
        answered[index] = Some(outcomes);
    }
    answered.into_iter().map(Option::unwrap).collect()
}

/// Everything the engine and the model can be asked about, as commands.
fn every_view() -> Vec<Command> {
    (0..=SKUS)
        .map(|sku_id| Command::QuerySku { sku_id })
        .chain((0..ORDER_IDS).map(|order_id| Command::QueryOrder { order_id }))
        .collect()
}

/// Runs one case; returns the number of commands the engine answered.
fn engine_matches_the_model(
    shards: usize,
    steps: &[(i64, Vec<Vec<Command>>)],
) -> Result<u64, TestCaseError> {
    let clock = Clock::manual(100);
    let engine = start(shards, clock.clone());
    let stream = engine.stream();
    let mut model = Model::new();
    let mut clock_ms: i64 = 100;
    let mut commands = 0u64;
    let views_checked = |model: &mut Model, now_ms: u64, index: usize| {
        let views = every_view();
        let got = stream.submit_wait(views.clone());
        let expected = model.apply(now_ms, &views);
        prop_assert_eq!(got, expected, "views after step {}", index);
        Ok(views.len() as u64)
    };
    let result = (|| {
        for (index, (advance_ms, batches)) in steps.iter().enumerate() {
            if *advance_ms < 0 {
                // Every shard reads the clock before it goes back (the views touch a SKU of
                // each), so each has seen the latest time — as the model, which keeps the
                // latest, assumes. A shard that never looked at an instant cannot have kept it.
                commands += views_checked(&mut model, clock_ms as u64, index)?;
            }
            clock_ms = (clock_ms + advance_ms).max(0);
            clock.set_ms(clock_ms as u64);
            let now_ms = clock_ms as u64;
            let answered = submit_pipelined(&stream, batches);
            for (batch, outcomes) in batches.iter().zip(&answered) {
                commands += batch.len() as u64;
                // Busy means nothing was done; nothing here should be busy, so it is a failure
                // like any other difference.
                let expected = model.apply(now_ms, batch);
                prop_assert_eq!(
                    outcomes,
                    &expected,
                    "{} shards, step {} at {} ms, batches in flight {:?}",
                    shards,
                    index,
                    now_ms,
                    batches
                );
            }
            if index % 8 == 7 || index + 1 == steps.len() {
                commands += views_checked(&mut model, now_ms, index)?;
            }
        }
        Ok(())
    })();
    WAITED.fetch_add(engine.stats().waited_reserves, Ordering::Relaxed);
    engine.shutdown();
    result.map(|()| commands)
}

/// Reserves that had to wait for another shard's claim, over all cases: the property must
/// reach that path, not just pass around it.
static WAITED: AtomicU64 = AtomicU64::new(0);

/// The base seed of this run: `FLASHSALE_MODEL_SEED`, or a random one.
fn base_seed() -> u64 {
    std::env::var("FLASHSALE_MODEL_SEED")
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_nanos()),
            );
            hasher.finish()
        })
}

/// Runs the property for `shards` until at least `budget` commands were checked.
fn run(shards: usize) {
    let budget = std::env::var("FLASHSALE_MODEL_COMMANDS")
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .map_or(MIN_COMMANDS_PER_RUN, |total| total / 3);
    let base = base_seed();
    let checked = AtomicU64::new(0);
    let started = Instant::now();
    let mut rounds = 0u64;
    while checked.load(Ordering::Relaxed) < budget {
        // Each round its own seed, so one base seed reproduces the whole run.
        let seed = base
            .wrapping_add((shards as u64) << 32)
            .wrapping_add(rounds);
        rounds += 1;
        let mut runner = TestRunner::new(Config {
            cases: 64,
            max_shrink_iters: 4_000,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
            ..Config::default()
        });
        let outcome = runner.run(&proptest::collection::vec(step(), 20..120), |steps| {
            let count = engine_matches_the_model(shards, &steps)?;
            checked.fetch_add(count, Ordering::Relaxed);
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!(
                "{shards} shards, round {rounds} (FLASHSALE_MODEL_SEED={base} reproduces this run): the engine and the model differ: {failure}"
            );
        }
    }
    let checked = checked.into_inner();
    eprintln!(
        "engine_model: {shards} shards: {checked} commands in {} rounds of 64 cases from base seed {base}, {:.1} s ({} reserves waited, all tests so far)",
        rounds,
        started.elapsed().as_secs_f64(),
        WAITED.load(Ordering::Relaxed)
    );
    assert!(checked >= budget, "{checked} < {budget}");
    if shards > 1 {
        assert!(WAITED.load(Ordering::Relaxed) > 0, "no reserve ever waited");
    }
}

#[test]
fn one_shard_answers_as_the_model() {
    run(1);
}

#[test]
fn two_shards_answer_as_the_model() {
    run(2);
}

#[test]
fn four_shards_answer_as_the_model() {
    run(4);
}

/// Several threads submit at once, reusing order ids across SKUs of different shards. Whatever
/// the interleaving, one order id is at most one order: it is created once, and every other
/// reserve of it with other fields answers `id_conflict`.
#[test]
fn racing_submitters_never_create_one_order_id_twice() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 300;
    for shards in [2usize, 4] {
        let engine = start(shards, Clock::manual(100));
        let skus: Vec<u32> = (0..SKUS).collect();
        let upserts = skus
            .iter()
            .map(|&sku_id| Command::UpsertSku(SkuConfig::simple(sku_id, 1 << 40, 1 << 30, 60_000)))
            .collect();
        engine.submit_wait(upserts);
        let created: Vec<Vec<(u64, u32)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let engine = engine.clone();
                    scope.spawn(move || {
                        let mut created = Vec::new();
                        for round in 0..ROUNDS {
                            // Every thread reserves the same ids, each for its own SKU.
                            let sku_id = ((thread + round) % u64::from(SKUS)) as u32;
                            let batch: Vec<Command> = (0..4)
                                .map(|k| Command::Reserve {
                                    order_id: round * 4 + k,
                                    user_id: thread,
                                    sku_id,
                                    qty: 1,
                                })
                                .collect();
                            for (command, outcome) in
                                batch.iter().zip(engine.submit_wait(batch.clone()))
                            {
                                match (command, outcome) {
                                    (
                                        Command::Reserve {
                                            order_id, sku_id, ..
                                        },
                                        Outcome::Created(_),
                                    ) => created.push((*order_id, *sku_id)),
                                    (_, Outcome::Rejected(Reject::IdConflict | Reject::Busy)) => {}
                                    (_, other) => panic!("unexpected {other:?}"),
                                }
                            }
                        }
                        created
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen = std::collections::HashMap::new();
        for (order_id, sku_id) in created.into_iter().flatten() {
            if let Some(first) = seen.insert(order_id, sku_id) {
                panic!(
                    "{shards} shards: order {order_id} was created twice, for sku {first} and sku {sku_id}"
                );
            }
        }
        let held: u64 = skus
            .iter()
            .map(
                |&sku_id| match engine.execute(Command::QuerySku { sku_id }) {
                    Outcome::Sku(view) => view.held,
                    other => panic!("{other:?}"),
                },
            )
            .sum();
        assert_eq!(
            held,
            seen.len() as u64,
            "{shards} shards: held units != orders"
        );
        engine.shutdown();
    }
}

/// Several streams (connections) at once, racing on the same order ids and SKUs. Their
/// interleaving is the engine's to choose; the engine records the order it applied (or
/// answered) every command in, and the Model fed that sequence must answer every command the
/// same — and each stream must have been told exactly what was recorded for it.
fn streams_match_the_model_in_the_engines_order(
    shards: usize,
    steps: &[(i64, Vec<Vec<Vec<Command>>>)],
) -> Result<u64, TestCaseError> {
    let clock = Clock::manual(100);
    let linearisation = Linearisation::new();
    let engine = Engine::start(EngineConfig {
        shards,
        clock: clock.clone(),
        tick_interval_ms: 1,
        orders_capacity_per_shard: 64,
        mirror_capacity_skus: 64,
        linearisation: Some(linearisation.clone()),
        ..EngineConfig::default()
    })
    .expect("engine starts");
    let streams: Vec<Stream> = (0..STREAMS).map(|_| engine.stream()).collect();
    let mut clock_ms: i64 = 100;
    let mut told: Vec<(Command, Outcome)> = Vec::new();
    for (advance_ms, per_stream) in steps {
        if *advance_ms < 0 {
            // As in the single-stream test: every shard sees the latest time before it goes back.
            let views = every_view();
            told.extend(
                views
                    .iter()
                    .copied()
                    .zip(streams[0].submit_wait(views.clone())),
            );
        }
        clock_ms = (clock_ms + advance_ms).max(0);
        clock.set_ms(clock_ms as u64);
        let answered: Vec<Vec<Vec<Outcome>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = streams
                .iter()
                .zip(per_stream)
                .map(|(stream, batches)| scope.spawn(move || submit_pipelined(stream, batches)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (batches, outcomes) in per_stream.iter().zip(answered) {
            for (batch, outcomes) in batches.iter().zip(outcomes) {
                told.extend(batch.iter().copied().zip(outcomes));
            }
        }
    }
    engine.shutdown();
    let applied = linearisation.take();
    let mut model = Model::new();
    for (index, entry) in applied.iter().enumerate() {
        let expected = model.apply(entry.now_ms, std::slice::from_ref(&entry.command));
        prop_assert_eq!(
            &expected[0],
            &entry.outcome,
            "{} shards: entry {} of the engine's order: {:?} at {} ms; before it: {:?}",
            shards,
            index,
            entry.command,
            entry.now_ms,
            &applied[index.saturating_sub(12)..index]
        );
    }
    // What the streams were told is what was recorded, command for command (busy aside).
    let key = |(command, outcome): &(Command, Outcome)| format!("{command:?} {outcome:?}");
    let mut told: Vec<String> = told
        .iter()
        .filter(|(_, outcome)| *outcome != Outcome::Rejected(Reject::Busy))
        .map(key)
        .collect();
    let mut recorded: Vec<String> = applied
        .iter()
        .map(|entry| key(&(entry.command, entry.outcome.clone())))
        .collect();
    told.sort_unstable();
    recorded.sort_unstable();
    prop_assert_eq!(
        told,
        recorded,
        "{} shards: answers differ from the record",
        shards
    );
    Ok(applied.len() as u64)
}

const STREAMS: usize = 3;

#[test]
fn racing_streams_answer_as_the_model_in_the_engines_order() {
    for shards in [2usize, 4] {
        // The long run (FLASHSALE_MODEL_COMMANDS) races ten times as many cases.
        let cases = if std::env::var_os("FLASHSALE_MODEL_COMMANDS").is_some() {
            1_500
        } else {
            150
        };
        let base = base_seed();
        let mut runner = TestRunner::new(Config {
            cases,
            max_shrink_iters: 2_000,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(base.wrapping_add(shards as u64)),
            ..Config::default()
        });
        let per_step = (
            prop_oneof![6 => 0i64..5, 2 => 5i64..60, 1 => -20i64..0],
            proptest::collection::vec(proptest::collection::vec(batch(), 1..3), STREAMS),
        );
        let checked = AtomicU64::new(0);
        let outcome = runner.run(&proptest::collection::vec(per_step, 10..40), |steps| {
            let count = streams_match_the_model_in_the_engines_order(shards, &steps)?;
            checked.fetch_add(count, Ordering::Relaxed);
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!(
                "{shards} shards, {STREAMS} streams (cases from FLASHSALE_MODEL_SEED={base}; the interleaving is the threads'): {failure}"
            );
        }
        eprintln!(
            "engine_model: {shards} shards, {STREAMS} racing streams: {} commands from base seed {base}",
            checked.into_inner()
        );
    }
}
