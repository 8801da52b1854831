//! The runtime around the shards: routing, the fast paths, back-pressure, ticks and shutdown.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use flashsale_engine::{
    Clock, Command, Engine, EngineConfig, OrderStatus, Outcome, Reject, SkuConfig,
};

const TTL: u64 = 60_000;

fn engine(shards: usize, clock: Clock) -> Engine {
    Engine::start(EngineConfig {
        shards,
        clock,
        tick_interval_ms: 1,
        ..EngineConfig::default()
    })
    .expect("engine starts")
}

fn upsert(engine: &Engine, sku_id: u32, stock: u64, limit: u32) {
    let outcome = engine.execute(Command::UpsertSku(SkuConfig::simple(
        sku_id, stock, limit, TTL,
    )));
    assert!(matches!(outcome, Outcome::SkuCreated(_)), "{outcome:?}");
}

fn reserve(order_id: u64, user_id: u64, sku_id: u32) -> Command {
    Command::Reserve {
        order_id,
        user_id,
        sku_id,
        qty: 1,
    }
}

#[test]
fn invalid_configs_are_refused() {
    for config in [
        EngineConfig {
            shards: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            queue_capacity_batches: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            tick_interval_ms: 0,
            ..EngineConfig::default()
        },
    ] {
        let error = Engine::start(config).err().expect("refused");
        assert!(error.to_string().contains("must be"), "{error}");
    }
}

#[test]
fn pay_and_cancel_find_their_shard_from_the_order_id_alone() {
    let engine = engine(4, Clock::manual(1_000));
    for sku in 0..16 {
        upsert(&engine, sku, 5, 1);
    }
    let shards: std::collections::HashSet<usize> =
        (0..16).map(|s| engine.shard_of_sku(s)).collect();
    assert!(shards.len() > 1, "the SKUs must spread over several shards");
    let reserves: Vec<Command> = (0..16).map(|sku| reserve(u64::from(sku), 7, sku)).collect();
    for outcome in engine.submit_wait(reserves) {
        assert!(matches!(outcome, Outcome::Created(_)), "{outcome:?}");
    }
    let mut follow_ups = Vec::new();
    for order_id in 0..16u64 {
        follow_ups.push(if order_id % 2 == 0 {
            Command::Pay {
                order_id,
                user_id: 7,
            }
        } else {
            Command::Cancel {
                order_id,
                user_id: 7,
            }
        });
    }
    follow_ups.push(Command::Pay {
        order_id: 999,
        user_id: 7,
    });
    let outcomes = engine.submit_wait(follow_ups);
    for (order_id, outcome) in outcomes.iter().take(16).enumerate() {
        let expected = if order_id % 2 == 0 {
            OrderStatus::Paid
        } else {
            OrderStatus::Cancelled
        };
        assert_eq!(
            outcome.order().map(|o| (o.order_id, o.status)),
            Some((order_id as u64, expected))
        );
    }
    assert_eq!(outcomes[16], Outcome::Rejected(Reject::UnknownOrder));
    assert_eq!(engine.stats().fast_unknown_order, 1);
}

#[test]
fn a_split_batch_answers_in_input_order() {
    let engine = engine(3, Clock::manual(1_000));
    for sku in 0..9 {
        upsert(&engine, sku, 100, 100);
    }
    let commands: Vec<Command> = (0..300u64)
        .map(|i| match i % 3 {
            0 => reserve(i, i, (i % 9) as u32),
            1 => Command::QuerySku {
                sku_id: (i % 9) as u32,
            },
            _ => Command::QueryOrder { order_id: i - 2 },
        })
        .collect();
    let outcomes = engine.submit_wait(commands.clone());
    assert_eq!(outcomes.len(), commands.len());
    for (command, outcome) in commands.iter().zip(&outcomes) {
        match (command, outcome) {
            (Command::Reserve { order_id, .. }, Outcome::Created(view)) => {
                assert_eq!(view.order_id, *order_id)
            }
            (Command::QuerySku { sku_id }, Outcome::Sku(view)) => {
                assert_eq!(view.config.sku_id, *sku_id)
            }
            // The reserve ran in an earlier part of the same call only if on the same shard;
            // either answer is in order as long as it is about this order id.
            (Command::QueryOrder { order_id }, Outcome::Order(view)) => {
                assert_eq!(view.order_id, *order_id)
            }
            (Command::QueryOrder { .. }, Outcome::Rejected(Reject::UnknownOrder)) => {}
            other => panic!("out of order: {other:?}"),
        }
    }
}

#[test]
fn the_fast_path_refuses_sold_out_reserves_but_retries_still_see_their_order() {
    let engine = engine(2, Clock::manual(1_000));
    upsert(&engine, 1, 2, 1);
    assert!(matches!(
        engine.execute(reserve(1, 1, 1)),
        Outcome::Created(_)
    ));
    assert!(matches!(
        engine.execute(reserve(2, 2, 1)),
        Outcome::Created(_)
    ));
    let before = engine.stats().fast_sold_out;
    assert_eq!(
        engine.execute(reserve(3, 3, 1)),
        Outcome::Rejected(Reject::SoldOut)
    );
    assert_eq!(
        engine.stats().fast_sold_out,
        before + 1,
        "answered without the shard"
    );
    // A client retrying order 2 after its reply was lost must see its hold, not SoldOut.
    let retry = engine.execute(reserve(2, 2, 1));
    assert_eq!(retry.order().map(|o| o.status), Some(OrderStatus::Held));
    // A conflicting reuse of a known id still reaches the shard and is a conflict.
    assert_eq!(
        engine.execute(reserve(2, 9, 1)),
        Outcome::Rejected(Reject::IdConflict)
    );
    // Releasing a unit is published, and the next reserve gets it.
    engine.execute(Command::Cancel {
        order_id: 1,
        user_id: 1,
    });
    assert!(matches!(
        engine.execute(reserve(3, 3, 1)),
        Outcome::Created(_)
    ));
}

#[test]
fn idle_shards_expire_holds_on_their_tick() {
    let clock = Clock::manual(1_000);
    let engine = engine(2, clock.clone());
    upsert(&engine, 5, 1, 1);
    assert!(matches!(
        engine.execute(reserve(1, 1, 5)),
        Outcome::Created(_)
    ));
    assert_eq!(engine.published_availability(), vec![(5, 0)]);
    clock.advance_ms(TTL);
    // No command is sent: the tick alone must expire the hold and republish availability.
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.published_availability() != vec![(5, 1)] {
        assert!(Instant::now() < deadline, "the hold never expired");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(engine.stats().expired_holds, 1);
    let order = engine.execute(Command::QueryOrder { order_id: 1 });
    assert_eq!(order.order().map(|o| o.status), Some(OrderStatus::Expired));
}

#[test]
fn a_full_queue_answers_busy_at_once() {
    let engine = Engine::start(EngineConfig {
        shards: 1,
        queue_capacity_batches: 2,
        clock: Clock::manual(1_000),
        ..EngineConfig::default()
    })
    .expect("engine starts");
    upsert(&engine, 1, 100, 100);
    // Park the shard thread inside a reply callback so nothing drains the queue.
    let parked = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    {
        let (parked, release) = (parked.clone(), release.clone());
        engine.submit(vec![Command::QuerySku { sku_id: 1 }], move |_| {
            parked.wait();
            release.wait();
        });
    }
    parked.wait();
    let (sender, receiver) = crossbeam_channel::unbounded();
    for batch in 0..5u64 {
        let sender = sender.clone();
        engine.submit(vec![reserve(batch, batch, 1)], move |outcomes| {
            sender.send((batch, outcomes)).expect("test receiver alive");
        });
    }
    // Two batches fit the queue; the other three were answered Busy on this thread already.
    let mut busy: Vec<u64> = receiver
        .try_iter()
        .map(|(batch, outcomes)| {
            assert_eq!(outcomes, vec![Outcome::Rejected(Reject::Busy)]);
            batch
        })
        .collect();
    busy.sort_unstable();
    assert_eq!(busy, vec![2, 3, 4]);
    assert_eq!(engine.stats().busy_rejections, 3);
    assert_eq!(engine.stats().queue_depths, vec![2]);
    release.wait();
    for _ in 0..2 {
        let (_, outcomes) = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("queued batches run");
        assert!(matches!(outcomes[0], Outcome::Created(_)), "{outcomes:?}");
    }
}

#[test]
fn shutdown_finishes_queued_work_then_answers_busy() {
    let engine = engine(2, Clock::manual(1_000));
    upsert(&engine, 1, 1_000, 1);
    let (sender, receiver) = crossbeam_channel::unbounded();
    for i in 0..100u64 {
        let sender = sender.clone();
        engine.submit(vec![reserve(i, i, 1)], move |outcomes| {
            sender.send(outcomes).expect("test receiver alive");
        });
    }
    engine.shutdown();
    engine.shutdown();
    let answered: Vec<Vec<Outcome>> = receiver.try_iter().collect();
    assert_eq!(
        answered.len(),
        100,
        "every accepted batch was answered before shutdown returned"
    );
    assert!(answered.iter().all(|o| matches!(o[0], Outcome::Created(_))));
    assert_eq!(
        engine.execute(reserve(500, 500, 1)),
        Outcome::Rejected(Reject::Busy)
    );
}

#[tokio::test]
async fn the_async_api_answers() {
    let engine = engine(2, Clock::system());
    let created = engine
        .execute_async(Command::UpsertSku(SkuConfig::simple(3, 1, 1, TTL)))
        .await;
    assert!(matches!(created, Outcome::SkuCreated(_)));
    let outcomes = engine
        .submit_async(vec![reserve(1, 1, 3), reserve(2, 2, 3)])
        .await;
    assert!(matches!(outcomes[0], Outcome::Created(_)));
    assert_eq!(outcomes[1], Outcome::Rejected(Reject::SoldOut));
}
