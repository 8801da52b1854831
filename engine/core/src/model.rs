//! The reference model: the engine's contract written as plainly as possible, to test the
//! [`Shard`](crate::shard::Shard) against. It favours obviousness over speed — expiry scans every
//! order, per-user units are recounted from the orders on every reserve — and shares no code
//! with the shard beyond the public types. It must stay that way: a model that reuses the
//! shard's logic would only agree with itself.

use std::collections::HashMap;

use crate::types::{
    Command, MAX_STOCK_TOTAL, OrderStatus, OrderView, Outcome, Reject, SkuConfig, SkuView,
};

#[derive(Clone, Debug, Default)]
pub struct Model {
    skus: HashMap<u32, SkuConfig>,
    orders: HashMap<u64, OrderView>,
    /// Per SKU, the most units one user has held or bought at once, ever: `per_user_limit` may
    /// not be lowered below it.
    high_water: HashMap<u32, u64>,
    now_ms: u64,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    pub fn apply(&mut self, now_ms: u64, commands: &[Command]) -> Vec<Outcome> {
        self.now_ms = self.now_ms.max(now_ms);
        self.expire_due();
        commands
            .iter()
            .map(|command| self.apply_one(command))
            .collect()
    }

    fn expire_due(&mut self) {
        let now_ms = self.now_ms;
        for order in self.orders.values_mut() {
            if order.status == OrderStatus::Held && order.expires_at_ms <= now_ms {
                order.status = OrderStatus::Expired;
            }
        }
    }

    /// Units of `sku_id` in orders with `status`.
    fn units(&self, sku_id: u32, status: OrderStatus) -> u64 {
        self.orders
            .values()
            .filter(|order| order.sku_id == sku_id && order.status == status)
            .map(|order| u64::from(order.qty))
            .sum()
    }

    fn user_units(&self, user_id: u64, sku_id: u32) -> u64 {
        self.orders
            .values()
            .filter(|order| {
                order.user_id == user_id
                    && order.sku_id == sku_id
                    && matches!(order.status, OrderStatus::Held | OrderStatus::Paid)
            })
            .map(|order| u64::from(order.qty))
            .sum()
    }

    pub fn sku_view(&self, sku_id: u32) -> Option<SkuView> {
        let config = *self.skus.get(&sku_id)?;
        let held = self.units(sku_id, OrderStatus::Held);
        let sold = self.units(sku_id, OrderStatus::Paid);
        Some(SkuView {
            config,
            available: config.stock_total - held - sold,
            held,
            sold,
        })
    }

    pub fn order_view(&self, order_id: u64) -> Option<OrderView> {
        self.orders.get(&order_id).copied()
    }

    fn apply_one(&mut self, command: &Command) -> Outcome {
        match *command {
            Command::Reserve {
                order_id,
                user_id,
                sku_id,
                qty,
            } => {
                if let Some(order) = self.orders.get(&order_id) {
                    return if order.user_id == user_id && order.sku_id == sku_id && order.qty == qty
                    {
                        Outcome::Order(*order)
                    } else {
                        Outcome::Rejected(Reject::IdConflict)
                    };
                }
                let Some(view) = self.sku_view(sku_id) else {
                    return Outcome::Rejected(Reject::UnknownSku);
                };
                let config = view.config;
                if qty == 0 {
                    return Outcome::Rejected(Reject::InvalidQty);
                }
                if view.available < u64::from(qty) {
                    return Outcome::Rejected(Reject::SoldOut);
                }
                if qty > config.per_user_limit {
                    return Outcome::Rejected(Reject::InvalidQty);
                }
                if config
                    .sale_start_ms
                    .is_some_and(|start| self.now_ms < start)
                    || config.sale_end_ms.is_some_and(|end| self.now_ms >= end)
                {
                    return Outcome::Rejected(Reject::NotOnSale);
                }
                if self.user_units(user_id, sku_id) + u64::from(qty)
                    > u64::from(config.per_user_limit)
                {
                    return Outcome::Rejected(Reject::LimitExceeded);
                }
                let order = OrderView {
                    order_id,
                    user_id,
                    sku_id,
                    qty,
                    status: OrderStatus::Held,
                    expires_at_ms: self.now_ms.saturating_add(config.hold_ttl_ms),
                };
                self.orders.insert(order_id, order);
                let units = self.user_units(user_id, sku_id);
                let high_water = self.high_water.entry(sku_id).or_default();
                *high_water = (*high_water).max(units);
                Outcome::Created(order)
            }
            Command::Pay { order_id, user_id } => match self.orders.get_mut(&order_id) {
                None => Outcome::Rejected(Reject::UnknownOrder),
                Some(order) if order.user_id != user_id => Outcome::Rejected(Reject::NotOwner),
                Some(order) => match order.status {
                    OrderStatus::Held | OrderStatus::Paid => {
                        order.status = OrderStatus::Paid;
                        Outcome::Order(*order)
                    }
                    OrderStatus::Cancelled => Outcome::Rejected(Reject::Cancelled),
                    OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
                },
            },
            Command::Cancel { order_id, user_id } => match self.orders.get_mut(&order_id) {
                None => Outcome::Rejected(Reject::UnknownOrder),
                Some(order) if order.user_id != user_id => Outcome::Rejected(Reject::NotOwner),
                Some(order) => match order.status {
                    OrderStatus::Held | OrderStatus::Cancelled => {
                        order.status = OrderStatus::Cancelled;
                        Outcome::Order(*order)
                    }
                    OrderStatus::Paid => Outcome::Rejected(Reject::AlreadyPaid),
                    OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
                },
            },
            Command::QueryOrder { order_id } => match self.orders.get(&order_id) {
                Some(order) => Outcome::Order(*order),
                None => Outcome::Rejected(Reject::UnknownOrder),
            },
            Command::QuerySku { sku_id } => match self.sku_view(sku_id) {
                Some(view) => Outcome::Sku(Box::new(view)),
                None => Outcome::Rejected(Reject::UnknownSku),
            },
            Command::UpsertSku(config) => {
                if config.validate().is_err() {
                    return Outcome::Rejected(Reject::InvalidSku);
                }
                match self.sku_view(config.sku_id) {
                    None => {
                        self.skus.insert(config.sku_id, config);
                        Outcome::SkuCreated(Box::new(
                            self.sku_view(config.sku_id).expect("just inserted"),
                        ))
                    }
                    Some(view) => {
                        if config.stock_total < view.held + view.sold {
                            return Outcome::Rejected(Reject::InvalidRestock);
                        }
                        if u64::from(config.per_user_limit)
                            < self.high_water.get(&config.sku_id).copied().unwrap_or(0)
                        {
                            return Outcome::Rejected(Reject::InvalidSku);
                        }
                        self.skus.insert(config.sku_id, config);
                        Outcome::Sku(Box::new(self.sku_view(config.sku_id).expect("exists")))
                    }
                }
            }
            Command::Restock { sku_id, delta } => {
                let Some(view) = self.sku_view(sku_id) else {
                    return Outcome::Rejected(Reject::UnknownSku);
                };
                let new_total = i128::from(view.config.stock_total) + i128::from(delta);
                if new_total < i128::from(view.held + view.sold)
                    || new_total > i128::from(MAX_STOCK_TOTAL)
                {
                    return Outcome::Rejected(Reject::InvalidRestock);
                }
                let config = self.skus.get_mut(&sku_id).expect("exists");
                config.stock_total = new_total as u64;
                Outcome::Sku(Box::new(self.sku_view(sku_id).expect("exists")))
            }
        }
    }
}
