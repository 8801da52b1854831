//! One test per outcome of the contract, run directly against a `Shard` (no threads), each also
//! checking the shard's full invariants afterwards.

use flashsale_core::{Command, OrderStatus, OrderView, Outcome, Reject, Shard, SkuConfig, SkuView};

const T0: u64 = 1_000_000;
const TTL: u64 = 900_000; // Taobao's 15 minutes

struct Fixture {
    shard: Shard,
    now_ms: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let mut fixture = Fixture {
            shard: Shard::new(),
            now_ms: T0,
        };
        let created = fixture.run(Command::UpsertSku(SkuConfig::simple(1, 10, 2, TTL)));
        assert!(matches!(created, Outcome::SkuCreated(_)), "{created:?}");
        fixture
    }

    fn run(&mut self, command: Command) -> Outcome {
        let mut outcomes = Vec::new();
        self.shard.apply(self.now_ms, &[command], &mut outcomes);
        self.shard
            .check_invariants()
            .unwrap_or_else(|broken| panic!("invariant broken after {command:?}: {broken}"));
        assert_eq!(outcomes.len(), 1);
        outcomes.swap_remove(0)
    }

    fn reserve(&mut self, order_id: u64, user_id: u64, qty: u32) -> Outcome {
        self.run(Command::Reserve {
            order_id,
            user_id,
            sku_id: 1,
            qty,
        })
    }

    fn sku(&mut self) -> SkuView {
        match self.run(Command::QuerySku { sku_id: 1 }) {
            Outcome::Sku(view) => *view,
            other => panic!("expected a sku view, got {other:?}"),
        }
    }
}

fn held(order_id: u64, user_id: u64, qty: u32, expires_at_ms: u64) -> OrderView {
    OrderView {
        order_id,
        user_id,
        sku_id: 1,
        qty,
        status: OrderStatus::Held,
        expires_at_ms,
    }
}

#[test]
fn reserve_holds_stock_until_the_ttl() {
    let mut f = Fixture::new();
    assert_eq!(
        f.reserve(10, 100, 2),
        Outcome::Created(held(10, 100, 2, T0 + TTL))
    );
    let sku = f.sku();
    assert_eq!((sku.available, sku.held, sku.sold), (8, 2, 0));
}

#[test]
fn reserve_repeat_returns_the_current_state_without_taking_stock() {
    let mut f = Fixture::new();
    f.reserve(10, 100, 1);
    f.now_ms += 5;
    assert_eq!(
        f.reserve(10, 100, 1),
        Outcome::Order(held(10, 100, 1, T0 + TTL))
    );
    assert_eq!(f.sku().held, 1);
    f.run(Command::Pay {
        order_id: 10,
        user_id: 100,
    });
    let repeat = f.reserve(10, 100, 1);
    assert_eq!(repeat.order().map(|o| o.status), Some(OrderStatus::Paid));
    assert_eq!((f.sku().held, f.sku().sold), (0, 1));
}

#[test]
fn reserve_with_a_known_id_and_other_fields_is_an_id_conflict() {
    let mut f = Fixture::new();
    f.reserve(10, 100, 1);
    assert_eq!(f.reserve(10, 101, 1), Outcome::Rejected(Reject::IdConflict));
    assert_eq!(f.reserve(10, 100, 2), Outcome::Rejected(Reject::IdConflict));
    let other_sku = f.run(Command::Reserve {
        order_id: 10,
        user_id: 100,
        sku_id: 2,
        qty: 1,
    });
    assert_eq!(other_sku, Outcome::Rejected(Reject::IdConflict));
    assert_eq!(f.sku().held, 1);
}

#[test]
fn reserve_beyond_stock_is_sold_out() {
    let mut f = Fixture::new();
    for user in 0..5 {
        assert!(matches!(f.reserve(user, user, 2), Outcome::Created(_)));
    }
    assert_eq!(f.reserve(99, 99, 1), Outcome::Rejected(Reject::SoldOut));
    let sku = f.sku();
    assert_eq!((sku.available, sku.held), (0, 10));
}

#[test]
fn reserve_over_the_per_user_limit_is_refused_before_stock_is_touched() {
    let mut f = Fixture::new();
    f.reserve(1, 100, 1);
    f.reserve(2, 100, 1);
    assert_eq!(
        f.reserve(3, 100, 1),
        Outcome::Rejected(Reject::LimitExceeded)
    );
    assert_eq!(f.sku().available, 8);
    // Releasing units gives the allowance back.
    f.run(Command::Cancel {
        order_id: 1,
        user_id: 100,
    });
    assert!(matches!(f.reserve(3, 100, 1), Outcome::Created(_)));
}

#[test]
fn reserve_outside_the_sale_window_is_not_on_sale() {
    let mut f = Fixture::new();
    let mut config = SkuConfig::simple(2, 5, 1, TTL);
    config.sale_start_ms = Some(T0 + 100);
    config.sale_end_ms = Some(T0 + 200);
    f.run(Command::UpsertSku(config));
    let reserve = |order_id| Command::Reserve {
        order_id,
        user_id: 1,
        sku_id: 2,
        qty: 1,
    };
    assert_eq!(f.run(reserve(1)), Outcome::Rejected(Reject::NotOnSale));
    f.now_ms = T0 + 100;
    assert!(matches!(f.run(reserve(1)), Outcome::Created(_)));
    f.now_ms = T0 + 200;
    assert_eq!(f.run(reserve(2)), Outcome::Rejected(Reject::NotOnSale));
}

#[test]
fn reserve_of_an_unknown_sku_is_refused() {
    let mut f = Fixture::new();
    let outcome = f.run(Command::Reserve {
        order_id: 1,
        user_id: 1,
        sku_id: 42,
        qty: 1,
    });
    assert_eq!(outcome, Outcome::Rejected(Reject::UnknownSku));
}

#[test]
fn reserve_of_zero_or_more_than_the_limit_is_an_invalid_qty() {
    let mut f = Fixture::new();
    assert_eq!(f.reserve(1, 1, 0), Outcome::Rejected(Reject::InvalidQty));
    assert_eq!(f.reserve(2, 1, 3), Outcome::Rejected(Reject::InvalidQty));
    // More than is available is sold out first (docs/protocol.md §3.3), whatever the limit.
    assert_eq!(
        f.reserve(3, 1, u32::MAX),
        Outcome::Rejected(Reject::SoldOut)
    );
}

#[test]
fn pay_moves_held_to_sold_and_repeats_answer_paid() {
    let mut f = Fixture::new();
    f.reserve(10, 100, 2);
    let paid = f.run(Command::Pay {
        order_id: 10,
        user_id: 100,
    });
    assert_eq!(paid.order().map(|o| o.status), Some(OrderStatus::Paid));
    assert_eq!(
        f.run(Command::Pay {
            order_id: 10,
            user_id: 100
        }),
        paid
    );
    let sku = f.sku();
    assert_eq!((sku.available, sku.held, sku.sold), (8, 0, 2));
}

#[test]
fn pay_refusals() {
    let mut f = Fixture::new();
    assert_eq!(
        f.run(Command::Pay {
            order_id: 9,
            user_id: 1
        }),
        Outcome::Rejected(Reject::UnknownOrder)
    );
    f.reserve(10, 100, 1);
    assert_eq!(
        f.run(Command::Pay {
            order_id: 10,
            user_id: 101
        }),
        Outcome::Rejected(Reject::NotOwner)
    );
    f.run(Command::Cancel {
        order_id: 10,
        user_id: 100,
    });
    assert_eq!(
        f.run(Command::Pay {
            order_id: 10,
            user_id: 100
        }),
        Outcome::Rejected(Reject::Cancelled)
    );
}

#[test]
fn pay_at_the_expiry_instant_is_expired_and_the_stock_came_back() {
    let mut f = Fixture::new();
    f.reserve(10, 100, 2);
    f.now_ms = T0 + TTL - 1;
    assert_eq!(f.sku().held, 2);
    f.now_ms = T0 + TTL;
    assert_eq!(
        f.run(Command::Pay {
            order_id: 10,
            user_id: 100
        }),
        Outcome::Rejected(Reject::Expired)
    );
    let sku = f.sku();
    assert_eq!((sku.available, sku.held, sku.sold), (10, 0, 0));
    let query = f.run(Command::QueryOrder { order_id: 10 });
    assert_eq!(query.order().map(|o| o.status), Some(OrderStatus::Expired));
    // Expired units go back to the user's allowance too.
    assert!(matches!(f.reserve(11, 100, 2), Outcome::Created(_)));
}

#[test]
fn cancel_returns_stock_and_repeats_answer_cancelled() {
    let mut f = Fixture::new();
    f.reserve(10, 100, 2);
    let cancelled = f.run(Command::Cancel {
        order_id: 10,
        user_id: 100,
    });
    assert_eq!(
        cancelled.order().map(|o| o.status),
        Some(OrderStatus::Cancelled)
    );
    assert_eq!(
        f.run(Command::Cancel {
            order_id: 10,
            user_id: 100
        }),
        cancelled
    );
    assert_eq!(f.sku().available, 10);
}

#[test]
fn cancel_refusals() {
    let mut f = Fixture::new();
    assert_eq!(
        f.run(Command::Cancel {
            order_id: 9,
            user_id: 1
        }),
        Outcome::Rejected(Reject::UnknownOrder)
    );
    f.reserve(10, 100, 1);
    f.reserve(11, 101, 1);
    assert_eq!(
        f.run(Command::Cancel {
            order_id: 10,
            user_id: 101
        }),
        Outcome::Rejected(Reject::NotOwner)
    );
    f.run(Command::Pay {
        order_id: 10,
        user_id: 100,
    });
    assert_eq!(
        f.run(Command::Cancel {
            order_id: 10,
            user_id: 100
        }),
        Outcome::Rejected(Reject::AlreadyPaid)
    );
    f.now_ms += TTL;
    assert_eq!(
        f.run(Command::Cancel {
            order_id: 11,
            user_id: 101
        }),
        Outcome::Rejected(Reject::Expired)
    );
    // Terminal states never change.
    let paid = f.run(Command::QueryOrder { order_id: 10 });
    assert_eq!(paid.order().map(|o| o.status), Some(OrderStatus::Paid));
}

#[test]
fn queries_of_unknown_things_are_refused() {
    let mut f = Fixture::new();
    assert_eq!(
        f.run(Command::QueryOrder { order_id: 1 }),
        Outcome::Rejected(Reject::UnknownOrder)
    );
    assert_eq!(
        f.run(Command::QuerySku { sku_id: 9 }),
        Outcome::Rejected(Reject::UnknownSku)
    );
}

#[test]
fn restock_moves_the_total_but_never_below_held_plus_sold() {
    let mut f = Fixture::new();
    f.reserve(1, 1, 2);
    f.reserve(2, 2, 2);
    f.run(Command::Pay {
        order_id: 2,
        user_id: 2,
    });
    let restocked = f.run(Command::Restock {
        sku_id: 1,
        delta: 5,
    });
    let Outcome::Sku(view) = restocked else {
        panic!("{restocked:?}")
    };
    assert_eq!((view.config.stock_total, view.available), (15, 11));
    let restocked = f.run(Command::Restock {
        sku_id: 1,
        delta: -11,
    });
    let Outcome::Sku(view) = restocked else {
        panic!("{restocked:?}")
    };
    assert_eq!((view.config.stock_total, view.available), (4, 0));
    assert_eq!(
        f.run(Command::Restock {
            sku_id: 1,
            delta: -1
        }),
        Outcome::Rejected(Reject::InvalidRestock)
    );
    assert_eq!(
        f.run(Command::Restock {
            sku_id: 1,
            delta: i64::MAX
        }),
        Outcome::Rejected(Reject::InvalidRestock)
    );
    assert_eq!(
        f.run(Command::Restock {
            sku_id: 1,
            delta: i64::MIN
        }),
        Outcome::Rejected(Reject::InvalidRestock)
    );
    assert_eq!(
        f.run(Command::Restock {
            sku_id: 7,
            delta: 1
        }),
        Outcome::Rejected(Reject::UnknownSku)
    );
}

#[test]
fn upsert_updates_settings_and_guards_committed_stock_and_limits() {
    let mut f = Fixture::new();
    f.reserve(1, 1, 2);
    let mut config = SkuConfig::simple(1, 20, 3, TTL);
    config.price_cents = 999;
    let updated = f.run(Command::UpsertSku(config));
    let Outcome::Sku(view) = updated else {
        panic!("{updated:?}")
    };
    assert_eq!(
        (view.available, view.held, view.config.price_cents),
        (18, 2, 999)
    );
    // Below what is held: refused.
    assert_eq!(
        f.run(Command::UpsertSku(SkuConfig::simple(1, 1, 3, TTL))),
        Outcome::Rejected(Reject::InvalidRestock)
    );
    // A limit below what a user already has: refused.
    assert_eq!(
        f.run(Command::UpsertSku(SkuConfig::simple(1, 20, 1, TTL))),
        Outcome::Rejected(Reject::InvalidSku)
    );
    // Invalid on its own: refused.
    assert_eq!(
        f.run(Command::UpsertSku(SkuConfig::simple(3, 20, 0, TTL))),
        Outcome::Rejected(Reject::InvalidSku)
    );
}

#[test]
fn a_new_ttl_applies_to_new_holds_and_old_holds_keep_theirs() {
    let mut f = Fixture::new();
    f.reserve(1, 1, 1);
    f.run(Command::UpsertSku(SkuConfig::simple(1, 10, 2, 10)));
    f.reserve(2, 2, 1);
    f.now_ms += 10;
    assert_eq!(
        f.sku().held,
        1,
        "the short hold expired, the long one did not"
    );
    f.now_ms = T0 + TTL;
    assert_eq!(f.sku().held, 0);
}

#[test]
fn time_never_goes_backwards_inside_a_shard() {
    let mut f = Fixture::new();
    f.reserve(1, 1, 1);
    f.now_ms = T0 + TTL;
    f.sku();
    f.now_ms = T0; // a clock that stepped back
    assert_eq!(f.shard.now_ms(), T0 + TTL);
    assert_eq!(
        f.reserve(2, 2, 1).order().map(|o| o.expires_at_ms),
        Some(T0 + 2 * TTL)
    );
}

#[test]
fn the_runtime_learns_what_changed() {
    let mut shard = Shard::new();
    let mut outcomes = Vec::new();
    shard.apply(
        T0,
        &[
            Command::UpsertSku(SkuConfig::simple(1, 3, 3, TTL)),
            Command::Reserve {
                order_id: 7,
                user_id: 1,
                sku_id: 1,
                qty: 3,
            },
            Command::Reserve {
                order_id: 8,
                user_id: 2,
                sku_id: 1,
                qty: 1,
            },
        ],
        &mut outcomes,
    );
    let mut changed = Vec::new();
    shard.drain_changed_skus(|sku, available| changed.push((sku, available)));
    assert_eq!(changed, vec![(1, 0)]);
    let mut created = Vec::new();
    shard.drain_created_orders(|order| created.push(order));
    assert_eq!(created, vec![7]);
    shard.drain_changed_skus(|_, _| panic!("already drained"));
}
