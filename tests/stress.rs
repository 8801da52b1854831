//! Multi-threaded stress through the whole runtime: many submitter threads hammer one hot SKU.
//! Whatever the interleaving, exactly the stock is held, never more, and the engine's totals
//! agree with what the submitters were told.

use std::collections::HashMap;

use flashsale::engine::{
    Clock, Command, Engine, EngineConfig, OrderStatus, Outcome, Reject, SkuConfig,
};

const HOT_SKU: u32 = 11;
const STOCK: u64 = 1_000;
const SUBMITTERS: u64 = 8;
const BATCH: usize = 256;

fn start(shards: usize) -> Engine {
    Engine::start(EngineConfig {
        shards,
        clock: Clock::system(),
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

fn sku_view(engine: &Engine) -> flashsale::engine::SkuView {
    match engine.execute(Command::QuerySku { sku_id: HOT_SKU }) {
        Outcome::Sku(view) => *view,
        other => panic!("query failed: {other:?}"),
    }
}

/// Submits `commands` in batches, retrying the whole batch's `Busy` answers until every command
/// has a real answer. Returns each command's final outcome.
fn submit_all(engine: &Engine, commands: &[Command]) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(commands.len());
    for chunk in commands.chunks(BATCH) {
        let mut answers = engine.submit_wait(chunk.to_vec());
        while answers.contains(&Outcome::Rejected(Reject::Busy)) {
            std::thread::yield_now();
            let retry: Vec<usize> = (0..chunk.len())
                .filter(|&i| answers[i] == Outcome::Rejected(Reject::Busy))
                .collect();
            let again = engine.submit_wait(retry.iter().map(|&i| chunk[i]).collect());
            for (slot, outcome) in retry.into_iter().zip(again) {
                answers[slot] = outcome;
            }
        }
        outcomes.extend(answers);
    }
    outcomes
}

#[test]
fn a_million_distinct_buyers_never_oversell() {
    let engine = start(2);
    let created = engine.execute(Command::UpsertSku(SkuConfig::simple(
        HOT_SKU, STOCK, 1, 600_000,
    )));
    assert!(matches!(created, Outcome::SkuCreated(_)));
    let attempts_per_thread = 1_000_000 / SUBMITTERS + 1;
    let results: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SUBMITTERS)
            .map(|thread| {
                let engine = engine.clone();
                scope.spawn(move || {
                    let commands: Vec<Command> = (0..attempts_per_thread)
                        .map(|i| {
                            let id = thread * attempts_per_thread + i;
                            Command::Reserve {
                                order_id: id,
                                user_id: id,
                                sku_id: HOT_SKU,
                                qty: 1,
                            }
                        })
                        .collect();
                    let outcomes = submit_all(&engine, &commands);
                    let held = outcomes
                        .iter()
                        .filter(|o| matches!(o, Outcome::Created(_)))
                        .count();
                    let sold_out = outcomes
                        .iter()
                        .filter(|o| **o == Outcome::Rejected(Reject::SoldOut))
                        .count();
                    assert_eq!(
                        held + sold_out,
                        outcomes.len(),
                        "only held or sold_out expected"
                    );
                    (held as u64, sold_out as u64)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("submitter panicked"))
            .collect()
    });
    let held: u64 = results.iter().map(|r| r.0).sum();
    let attempts: u64 = results.iter().map(|r| r.0 + r.1).sum();
    assert!(attempts >= 1_000_000);
    assert_eq!(held, STOCK, "exactly the stock is held");
    let view = sku_view(&engine);
    assert_eq!((view.available, view.held, view.sold), (0, STOCK, 0));
    assert!(
        engine.stats().fast_sold_out > 0,
        "the flood of losers took the fast path"
    );
}

#[test]
fn users_retrying_with_a_limit_of_two_never_exceed_it() {
    let engine = start(2);
    engine.execute(Command::UpsertSku(SkuConfig::simple(
        HOT_SKU, STOCK, 2, 600_000,
    )));
    const USERS: u64 = 2_000;
    // Every user sends 3 orders (one over the limit) and each order twice (a client retry),
    // spread over threads so the same user's requests race each other.
    let per_thread: Vec<Vec<Command>> = (0..SUBMITTERS)
        .map(|thread| {
            let mut commands = Vec::new();
            for round in 0..3u64 {
                for user in 0..USERS {
                    if user % SUBMITTERS != (thread + round) % SUBMITTERS {
                        continue;
                    }
                    let order_id = user * 10 + round;
                    let command = Command::Reserve {
                        order_id,
                        user_id: user,
                        sku_id: HOT_SKU,
                        qty: 1,
                    };
                    commands.push(command);
                    commands.push(command);
                }
            }
            commands
        })
        .collect();
    let answers: Vec<(Command, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .iter()
            .map(|commands| {
                let engine = engine.clone();
                scope.spawn(move || {
                    let outcomes = submit_all(&engine, commands);
                    commands.iter().copied().zip(outcomes).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("submitter panicked"))
            .collect()
    });
    // Each order id is held at most once, its retry agrees, and no user holds more than 2.
    let mut held_orders: HashMap<u64, u64> = HashMap::new();
    for (command, outcome) in &answers {
        let Command::Reserve {
            order_id, user_id, ..
        } = *command
        else {
            unreachable!()
        };
        match outcome {
            Outcome::Created(view) | Outcome::Order(view) => {
                assert_eq!(view.status, OrderStatus::Held);
                held_orders.insert(order_id, user_id);
            }
            Outcome::Rejected(Reject::LimitExceeded | Reject::SoldOut) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut per_user: HashMap<u64, u64> = HashMap::new();
    for user in held_orders.values() {
        *per_user.entry(*user).or_default() += 1;
    }
    assert!(
        per_user.values().all(|&units| units <= 2),
        "a user went over the limit"
    );
    assert_eq!(
        held_orders.len() as u64,
        STOCK,
        "4,000 wanted units for 1,000 in stock: all held"
    );
    let view = sku_view(&engine);
    assert_eq!((view.available, view.held), (0, STOCK));
    // Every held order is really held by the engine, by the user the submitter was told.
    let queries: Vec<Command> = held_orders
        .keys()
        .map(|&order_id| Command::QueryOrder { order_id })
        .collect();
    for (outcome, (order_id, user_id)) in engine.submit_wait(queries).iter().zip(&held_orders) {
        let view = outcome.order().expect("held order exists");
        assert_eq!(
            (view.order_id, view.user_id, view.status),
            (*order_id, *user_id, OrderStatus::Held)
        );
    }
}
