//! The shard: a pure, single-threaded state machine that owns the stock of the SKUs routed to it
//! and every order placed against them. `apply(now_ms, commands)` is its only way in; it takes
//! no locks, reads no clock and does no I/O, so the same inputs always give the same outputs —
//! which is what makes journal replay, recovery and model testing work.
//!
//! It must not know about threads, channels, the network or the journal. What the outside world
//! needs from a batch (which SKUs' availability changed, which orders were created) is recorded
//! in small lists that the runtime drains after each `apply`.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::types::{
    Command, MAX_STOCK_TOTAL, OrderId, OrderStatus, OrderView, Outcome, Reject, SkuConfig, SkuId,
    SkuView, UserId,
};

/// Stock and settings of one SKU. `available + held + sold == config.stock_total` always.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SkuState {
    config: SkuConfig,
    available: u64,
    held: u64,
    sold: u64,
    /// The most units any one user has had (held + sold) at once: `per_user_limit` may not be
    /// lowered below it, so the per-user invariant can never be broken by an upsert.
    max_user_units: u32,
    /// Set when `available` changed in the current batch; cleared when the runtime drains it.
    availability_dirty: bool,
}

impl SkuState {
    fn view(&self) -> SkuView {
        SkuView {
            config: self.config,
            available: self.available,
            held: self.held,
            sold: self.sold,
        }
    }

    fn debug_check(&self) {
        debug_assert_eq!(
            self.available + self.held + self.sold,
            self.config.stock_total,
            "stock conservation broken for sku {}",
            self.config.sku_id
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OrderRecord {
    user_id: UserId,
    sku_id: SkuId,
    qty: u32,
    status: OrderStatus,
    expires_at_ms: u64,
}

impl OrderRecord {
    fn view(&self, order_id: OrderId) -> OrderView {
        OrderView {
            order_id,
            user_id: self.user_id,
            sku_id: self.sku_id,
            qty: self.qty,
            status: self.status,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// One shard's whole state. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Shard {
    skus: FxHashMap<SkuId, SkuState>,
    orders: FxHashMap<OrderId, OrderRecord>,
    /// Units (held + sold) per (user, SKU); entries at zero are removed.
    user_units: FxHashMap<(UserId, SkuId), u32>,
    /// Pending holds by expiry time. Entries of orders that were paid or cancelled stay until
    /// their time comes and are then skipped, so each hold costs one push and one pop.
    expiry_queue: ExpiryQueue,
    /// The latest time this shard has been given; time never goes backwards inside a shard.
    now_ms: u64,
    changed_skus: Vec<SkuId>,
    created_orders: Vec<OrderId>,
}

impl Shard {
    pub fn new() -> Shard {
        Shard::default()
    }

    /// A shard with room for `orders` orders (and as many user allowances and pending holds)
    /// allocated up front, so a sale never pays for a table growing mid-peak.
    pub fn with_capacity(orders: usize) -> Shard {
        Shard {
            orders: FxHashMap::with_capacity_and_hasher(orders, Default::default()),
            user_units: FxHashMap::with_capacity_and_hasher(orders, Default::default()),
            expiry_queue: ExpiryQueue::with_capacity(orders),
            ..Shard::default()
        }
    }

    /// Applies `commands` in order at time `now_ms`, appending one outcome per command to
    /// `outcomes`. Holds whose expiry is at or before `now_ms` expire first. A `now_ms` earlier
    /// than one seen before is treated as the earlier maximum (time is monotonic per shard).
    pub fn apply(&mut self, now_ms: u64, commands: &[Command], outcomes: &mut Vec<Outcome>) {
        self.advance_time(now_ms);
        outcomes.reserve(commands.len());
        for command in commands {
            outcomes.push(self.apply_one(command));
        }
    }

    /// Moves time forward to `now_ms` (if it is later) and expires every hold that is due.
    /// Returns how many holds expired.
    pub fn advance_time(&mut self, now_ms: u64) -> usize {
        self.now_ms = self.now_ms.max(now_ms);
        let mut expired = 0;
        let mut due = std::mem::take(&mut self.expiry_queue);
        due.pop_due(self.now_ms, |order_id, expires_at_ms| {
            if self.expire(order_id, expires_at_ms) {
                expired += 1;
            }
        });
        self.expiry_queue = due;
        expired
    }

    /// The time the shard has reached.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Calls `publish(sku_id, available)` for each SKU whose availability changed since the last
    /// drain (in first-change order), then forgets them.
    pub fn drain_changed_skus(&mut self, mut publish: impl FnMut(SkuId, u64)) {
        for sku_id in self.changed_skus.drain(..) {
            if let Some(sku) = self.skus.get_mut(&sku_id) {
                sku.availability_dirty = false;
                publish(sku_id, sku.available);
            }
        }
    }

    /// Calls `publish(order_id)` for each order created since the last drain, then forgets them.
    pub fn drain_created_orders(&mut self, mut publish: impl FnMut(OrderId)) {
        for order_id in self.created_orders.drain(..) {
            publish(order_id);
        }
    }

    pub fn sku_view(&self, sku_id: SkuId) -> Option<SkuView> {
        self.skus.get(&sku_id).map(SkuState::view)
    }

    pub fn order_view(&self, order_id: OrderId) -> Option<OrderView> {
        self.orders.get(&order_id).map(|order| order.view(order_id))
    }

    /// Every SKU's view, sorted by id.
    pub fn sku_views(&self) -> Vec<SkuView> {
        let mut views: Vec<SkuView> = self.skus.values().map(SkuState::view).collect();
        views.sort_unstable_by_key(|view| view.config.sku_id);
        views
    }

    /// Every order's view, sorted by id.
    pub fn order_views(&self) -> Vec<OrderView> {
        let mut views: Vec<OrderView> = self
            .orders
            .iter()
            .map(|(&order_id, order)| order.view(order_id))
            .collect();
        views.sort_unstable_by_key(|view| view.order_id);
        views
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Full check of every invariant, by recomputing all derived state from the orders: stock
    /// conservation per SKU, per-user units within the limit, held/sold totals matching the
    /// orders, and a pending expiry entry for every hold. Costs a scan of everything: for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut sold: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut units: FxHashMap<(UserId, SkuId), u32> = FxHashMap::default();
        for (order_id, order) in &self.orders {
            let Some(sku) = self.skus.get(&order.sku_id) else {
                return Err(format!(
                    "order {order_id} names unknown sku {}",
                    order.sku_id
                ));
            };
            match order.status {
                OrderStatus::Held => *held.entry(order.sku_id).or_default() += u64::from(order.qty),
                OrderStatus::Paid => *sold.entry(order.sku_id).or_default() += u64::from(order.qty),
                OrderStatus::Cancelled | OrderStatus::Expired => continue,
            }
            let user_units = units.entry((order.user_id, order.sku_id)).or_default();
            *user_units += order.qty;
            if *user_units > sku.config.per_user_limit {
                return Err(format!(
                    "user {} has {} units of sku {}, over its limit {}",
                    order.user_id, user_units, order.sku_id, sku.config.per_user_limit
                ));
            }
            if order.status == OrderStatus::Held && order.expires_at_ms <= self.now_ms {
                return Err(format!("order {order_id} is held past its expiry"));
            }
        }
        for (&sku_id, sku) in &self.skus {
            let held = held.get(&sku_id).copied().unwrap_or(0);
            let sold = sold.get(&sku_id).copied().unwrap_or(0);
            if sku.held != held || sku.sold != sold {
                return Err(format!(
                    "sku {sku_id}: counters held={} sold={} but orders say held={held} sold={sold}",
                    sku.held, sku.sold
                ));
            }
            if sku.available + sku.held + sku.sold != sku.config.stock_total {
                return Err(format!(
                    "sku {sku_id}: available {} + held {} + sold {} != stock_total {}",
                    sku.available, sku.held, sku.sold, sku.config.stock_total
                ));
            }
        }
        if units != self.user_units {
            return Err("per-user unit counters disagree with the orders".to_string());
        }
        let pending: rustc_hash::FxHashSet<OrderId> = self.expiry_queue.order_ids().collect();
        for (order_id, order) in &self.orders {
            if order.status == OrderStatus::Held && !pending.contains(order_id) {
                return Err(format!("held order {order_id} has no expiry entry"));
            }
        }
        Ok(())
    }

    fn apply_one(&mut self, command: &Command) -> Outcome {
        match *command {
            Command::Reserve {
                order_id,
                user_id,
                sku_id,
                qty,
            } => self.reserve(order_id, user_id, sku_id, qty),
            Command::Pay { order_id, user_id } => self.pay(order_id, user_id),
            Command::Cancel { order_id, user_id } => self.cancel(order_id, user_id),
            Command::QueryOrder { order_id } => match self.orders.get(&order_id) {
                Some(order) => Outcome::Order(order.view(order_id)),
                None => Outcome::Rejected(Reject::UnknownOrder),
            },
            Command::QuerySku { sku_id } => match self.skus.get(&sku_id) {
                Some(sku) => Outcome::Sku(Box::new(sku.view())),
                None => Outcome::Rejected(Reject::UnknownSku),
            },
            Command::UpsertSku(config) => self.upsert_sku(config),
            Command::Restock { sku_id, delta } => self.restock(sku_id, delta),
        }
    }

    fn reserve(&mut self, order_id: OrderId, user_id: UserId, sku_id: SkuId, qty: u32) -> Outcome {
        // Dedup first: a retry must never take stock twice, whatever has happened since. One
        // probe of the order table serves both the check and the insert.
        let order_slot = match self.orders.entry(order_id) {
            Entry::Occupied(existing) => {
                let order = existing.get();
                if order.user_id == user_id && order.sku_id == sku_id && order.qty == qty {
                    return Outcome::Order(order.view(order_id));
                }
                return Outcome::Rejected(Reject::IdConflict);
            }
            Entry::Vacant(slot) => slot,
        };
        let now_ms = self.now_ms;
        let Some(sku) = self.skus.get_mut(&sku_id) else {
            return Outcome::Rejected(Reject::UnknownSku);
        };
        if qty == 0 || qty > sku.config.per_user_limit {
            return Outcome::Rejected(Reject::InvalidQty);
        }
        let before_start = sku.config.sale_start_ms.is_some_and(|start| now_ms < start);
        let after_end = sku.config.sale_end_ms.is_some_and(|end| now_ms >= end);
        if before_start || after_end {
            return Outcome::Rejected(Reject::NotOnSale);
        }
        // The per-user limit is checked before stock is touched: an over-limit user never burns
        // stock. A vacant entry inserts nothing unless written, so refusals leave no trace.
        let user_slot = self.user_units.entry((user_id, sku_id));
        let units_before = match &user_slot {
            Entry::Occupied(units) => *units.get(),
            Entry::Vacant(_) => 0,
        };
        // In u64: two u32 near the maximum must not wrap into a small number.
        let units_after = u64::from(units_before) + u64::from(qty);
        if units_after > u64::from(sku.config.per_user_limit) {
            return Outcome::Rejected(Reject::LimitExceeded);
        }
        // Fits: it is at most `per_user_limit`, a u32.
        let units_after = units_after as u32;
        if sku.available < u64::from(qty) {
            return Outcome::Rejected(Reject::SoldOut);
        }
        user_slot.insert_entry(units_after);
        sku.max_user_units = sku.max_user_units.max(units_after);
        sku.available -= u64::from(qty);
        sku.held += u64::from(qty);
        sku.debug_check();
        if !sku.availability_dirty {
            sku.availability_dirty = true;
            self.changed_skus.push(sku_id);
        }
        let hold_ttl_ms = sku.config.hold_ttl_ms;
        let expires_at_ms = now_ms.saturating_add(hold_ttl_ms);
        let order = OrderRecord {
            user_id,
            sku_id,
            qty,
            status: OrderStatus::Held,
            expires_at_ms,
        };
        order_slot.insert(order);
        self.expiry_queue.push(hold_ttl_ms, expires_at_ms, order_id);
        self.created_orders.push(order_id);
        Outcome::Created(order.view(order_id))
    }

    fn pay(&mut self, order_id: OrderId, user_id: UserId) -> Outcome {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return Outcome::Rejected(Reject::UnknownOrder);
        };
        if order.user_id != user_id {
            return Outcome::Rejected(Reject::NotOwner);
        }
        match order.status {
            OrderStatus::Paid => Outcome::Order(order.view(order_id)),
            OrderStatus::Cancelled => Outcome::Rejected(Reject::Cancelled),
            OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
            OrderStatus::Held => {
                // `advance_time` has already expired every hold due at `now_ms`.
                debug_assert!(order.expires_at_ms > self.now_ms);
                order.status = OrderStatus::Paid;
                let view = order.view(order_id);
                let sku = self
                    .skus
                    .get_mut(&view.sku_id)
                    .expect("an order's sku exists: skus are never removed");
                sku.held -= u64::from(view.qty);
                sku.sold += u64::from(view.qty);
                sku.debug_check();
                Outcome::Order(view)
            }
        }
    }

    fn cancel(&mut self, order_id: OrderId, user_id: UserId) -> Outcome {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return Outcome::Rejected(Reject::UnknownOrder);
        };
        if order.user_id != user_id {
            return Outcome::Rejected(Reject::NotOwner);
        }
        match order.status {
            OrderStatus::Cancelled => Outcome::Order(order.view(order_id)),
            OrderStatus::Paid => Outcome::Rejected(Reject::AlreadyPaid),
            OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
            OrderStatus::Held => {
                order.status = OrderStatus::Cancelled;
                let view = order.view(order_id);
                self.release_hold(&view);
                Outcome::Order(view)
            }
        }
    }

    /// Expires `order_id` if it is still the hold that the queue entry was made for.
    fn expire(&mut self, order_id: OrderId, expires_at_ms: u64) -> bool {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return false;
        };
        if order.status != OrderStatus::Held || order.expires_at_ms != expires_at_ms {
            return false;
        }
        order.status = OrderStatus::Expired;
        let view = order.view(order_id);
        self.release_hold(&view);
        true
    }

    /// Returns a held order's units to `available` and to its user's allowance.
    fn release_hold(&mut self, order: &OrderView) {
        let sku = self
            .skus
            .get_mut(&order.sku_id)
            .expect("an order's sku exists: skus are never removed");
        sku.held -= u64::from(order.qty);
        sku.available += u64::from(order.qty);
        sku.debug_check();
        if !sku.availability_dirty {
            sku.availability_dirty = true;
            self.changed_skus.push(order.sku_id);
        }
        let key = (order.user_id, order.sku_id);
        if let Some(units) = self.user_units.get_mut(&key) {
            debug_assert!(*units >= order.qty, "user units underflow");
            *units -= order.qty;
            if *units == 0 {
                self.user_units.remove(&key);
            }
        }
    }

    fn upsert_sku(&mut self, config: SkuConfig) -> Outcome {
        if config.validate().is_err() {
            return Outcome::Rejected(Reject::InvalidSku);
        }
        let sku_id = config.sku_id;
        match self.skus.get_mut(&sku_id) {
            None => {
                let sku = SkuState {
                    config,
                    available: config.stock_total,
                    held: 0,
                    sold: 0,
                    max_user_units: 0,
                    availability_dirty: true,
                };
                let view = sku.view();
                self.skus.insert(sku_id, sku);
                self.changed_skus.push(sku_id);
                Outcome::SkuCreated(Box::new(view))
            }
            Some(sku) => {
                let committed = sku.held + sku.sold;
                if config.stock_total < committed {
                    return Outcome::Rejected(Reject::InvalidRestock);
                }
                if config.per_user_limit < sku.max_user_units {
                    return Outcome::Rejected(Reject::InvalidSku);
                }
                sku.config = config;
                sku.available = config.stock_total - committed;
                sku.debug_check();
                if !sku.availability_dirty {
                    sku.availability_dirty = true;
                    self.changed_skus.push(sku_id);
                }
                Outcome::Sku(Box::new(sku.view()))
            }
        }
    }

    fn restock(&mut self, sku_id: SkuId, delta: i64) -> Outcome {
        let Some(sku) = self.skus.get_mut(&sku_id) else {
            return Outcome::Rejected(Reject::UnknownSku);
        };
        let committed = sku.held + sku.sold;
        let new_total = i128::from(sku.config.stock_total) + i128::from(delta);
        if new_total < i128::from(committed) || new_total > i128::from(MAX_STOCK_TOTAL) {
            return Outcome::Rejected(Reject::InvalidRestock);
        }
        // In range by the check above: committed >= 0 and new_total <= 2^48.
        let new_total = new_total as u64;
        sku.config.stock_total = new_total;
        sku.available = new_total - committed;
        sku.debug_check();
        if !sku.availability_dirty {
            sku.availability_dirty = true;
            self.changed_skus.push(sku_id);
        }
        Outcome::Sku(Box::new(sku.view()))
    }
}

/// Pending holds in expiry order, as one FIFO per distinct hold TTL. Time never goes backwards
/// inside a shard, so holds made with the same TTL expire in the order they were made: each
/// FIFO is sorted by construction, and push and pop are O(1) — no heap, no scan. Popping the
/// due holds costs one look at each FIFO's front plus one step per hold that is due; a flash
/// sale has a handful of distinct TTLs, and empty FIFOs are pruned once there are many.
const MAX_IDLE_TTL_QUEUES: usize = 16;
/// Pending holds a new TTL's FIFO reserves room for; it grows (amortised) past that.
const MAX_INITIAL_FIFO_CAPACITY: usize = 1 << 16;

#[derive(Clone, Debug, Default)]
struct ExpiryQueue {
    /// `(hold_ttl_ms, [(expires_at_ms, order_id)])`, each FIFO in non-decreasing expiry.
    by_ttl: Vec<(u64, VecDeque<(u64, OrderId)>)>,
    /// Room each new FIFO starts with.
    initial_capacity: usize,
}

impl ExpiryQueue {
    fn with_capacity(holds: usize) -> ExpiryQueue {
        ExpiryQueue {
            by_ttl: Vec::new(),
            // The first FIFO of a sale usually holds nearly everything; later TTLs start small.
            initial_capacity: holds.min(MAX_INITIAL_FIFO_CAPACITY),
        }
    }

    fn push(&mut self, hold_ttl_ms: u64, expires_at_ms: u64, order_id: OrderId) {
        let queue = match self.by_ttl.iter().position(|(ttl, _)| *ttl == hold_ttl_ms) {
            Some(index) => &mut self.by_ttl[index].1,
            None => {
                self.by_ttl
                    .push((hold_ttl_ms, VecDeque::with_capacity(self.initial_capacity)));
                &mut self.by_ttl.last_mut().expect("just pushed").1
            }
        };
        debug_assert!(
            queue.back().is_none_or(|&(last, _)| last <= expires_at_ms),
            "a TTL's FIFO must stay sorted: time went backwards"
        );
        queue.push_back((expires_at_ms, order_id));
    }

    /// Removes every entry due at `now_ms` and hands it to `expire`.
    fn pop_due(&mut self, now_ms: u64, mut expire: impl FnMut(OrderId, u64)) {
        for (_, queue) in &mut self.by_ttl {
            while let Some(&(expires_at_ms, order_id)) = queue.front() {
                if expires_at_ms > now_ms {
                    break;
                }
                queue.pop_front();
                expire(order_id, expires_at_ms);
            }
        }
        // Empty FIFOs are kept (the common TTL empties and refills all the time) unless TTLs
        // have multiplied, so the number of fronts looked at stays small.
        if self.by_ttl.len() > MAX_IDLE_TTL_QUEUES {
            self.by_ttl.retain(|(_, queue)| !queue.is_empty());
        }
    }

    fn order_ids(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.by_ttl
            .iter()
            .flat_map(|(_, queue)| queue.iter().map(|&(_, order_id)| order_id))
    }
}
