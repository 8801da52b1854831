//! Strategies shared by the tests that compare the shard or the whole engine with the `Model`:
//! random SKU settings and commands over small id ranges, so that retries, conflicting ids and
//! other users' orders are frequent.
#![allow(dead_code)]

use flashsale_core::{Command, SkuConfig};
use proptest::prelude::*;

/// SKU settings for ids `0..skus`, windows and TTLs small enough for time steps to cross them.
pub fn sku_config(skus: u32) -> impl Strategy<Value = SkuConfig> {
    (
        0..skus,
        0u64..12,
        1u32..4,
        1u64..50,
        proptest::option::of(0u64..40),
        proptest::option::of(0u64..120),
        0u64..1000,
    )
        .prop_map(
            |(sku_id, stock_total, limit, ttl, start, end, price)| SkuConfig {
                sku_id,
                stock_total,
                per_user_limit: limit,
                hold_ttl_ms: ttl,
                sale_start_ms: start,
                sale_end_ms: end,
                price_cents: price,
            },
        )
}

/// Any command, over SKU ids `0..=skus` (the last one unknown), order ids `0..order_ids` and
/// user ids `0..users`; reserves dominate as in a sale.
pub fn command(skus: u32, order_ids: u64, users: u64) -> impl Strategy<Value = Command> {
    let order_id = 0..order_ids;
    let user_id = 0..users;
    prop_oneof![
        2 => sku_config(skus).prop_map(Command::UpsertSku),
        1 => (0..skus + 1, -8i64..8).prop_map(|(sku_id, delta)| Command::Restock { sku_id, delta }),
        1 => (0..skus, prop_oneof![Just(i64::MIN), Just(i64::MAX)])
            .prop_map(|(sku_id, delta)| Command::Restock { sku_id, delta }),
        10 => (order_id.clone(), user_id.clone(), 0..skus + 1, 0u32..4)
            .prop_map(|(order_id, user_id, sku_id, qty)| Command::Reserve { order_id, user_id, sku_id, qty }),
        4 => (order_id.clone(), user_id.clone())
            .prop_map(|(order_id, user_id)| Command::Pay { order_id, user_id }),
        3 => (order_id.clone(), user_id.clone())
            .prop_map(|(order_id, user_id)| Command::Cancel { order_id, user_id }),
        1 => order_id.prop_map(|order_id| Command::QueryOrder { order_id }),
        1 => (0..skus + 1).prop_map(|sku_id| Command::QuerySku { sku_id }),
    ]
}
