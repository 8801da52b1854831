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
    ///
    /// The tables' memory is touched once here (filled to capacity and cleared), so the pages
    /// are resident before the first order: otherwise the first orders of a sale — the midnight
    /// step — each pay page faults into freshly reserved memory (seen as a stall in the first
    /// seconds of a fresh server). Costs about one insert per slot at start-up.
    pub fn with_capacity(orders: usize) -> Shard {
        let mut shard = Shard {
            orders: FxHashMap::with_capacity_and_hasher(orders, Default::default()),
            user_units: FxHashMap::with_capacity_and_hasher(orders, Default::default()),
            expiry_queue: ExpiryQueue::with_capacity(orders),
            ..Shard::default()
        };
        shard.prefault_tables();
        shard
    }

    /// Writes every slot of the (empty) order and per-user tables once, then empties them;
    /// capacity and resident pages stay.
    fn prefault_tables(&mut self) {
        debug_assert!(self.orders.is_empty() && self.user_units.is_empty());
        let filler = OrderRecord {
            user_id: 0,
            sku_id: 0,
            qty: 0,
            status: OrderStatus::Cancelled,
            expires_at_ms: 0,
        };
        // Up to `capacity()` inserts never reallocate, so this touches exactly what is reserved.
        for order_id in 0..self.orders.capacity() as u64 {
            self.orders.insert(order_id, filler);
        }
        for user_id in 0..self.user_units.capacity() as u64 {
            self.user_units.insert((user_id, 0), 0);
        }
        self.orders.clear();
        self.user_units.clear();
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

// ---------------------------------------------------------------------------------------------
// Snapshots (owned by durability): a canonical encoding of the whole state, so that two
// replays of one journal give byte-identical snapshots. Everything is sorted by key; the expiry
// queue keeps only live entries (a held order whose expiry matches), FIFOs sorted by TTL, empty
// ones dropped; per-user units are derived from the orders on decode. Nothing above this line
// depends on it.
// ---------------------------------------------------------------------------------------------

/// Why a snapshot's state could not be decoded: what was wrong and at which byte of the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at state byte {offset}: {reason}")]
pub struct StateDecodeError {
    pub offset: usize,
    pub reason: String,
}

struct StateReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl StateReader<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, StateDecodeError> {
        Err(StateDecodeError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateDecodeError> {
        match self.bytes.get(self.pos..self.pos + N) {
            Some(slice) => {
                let mut out = [0u8; N];
                out.copy_from_slice(slice);
                self.pos += N;
                Ok(out)
            }
            None => self.fail(format!("truncated: {N} more bytes needed")),
        }
    }

    fn u8(&mut self) -> Result<u8, StateDecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, StateDecodeError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, StateDecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    /// A count of items of at least `item_len` bytes each, checked against the bytes left so a
    /// corrupt count cannot make decode allocate without bound.
    fn count(&mut self, item_len: usize) -> Result<usize, StateDecodeError> {
        let count = self.u64()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if count.saturating_mul(item_len as u64) > left {
            return self.fail(format!("count {count} is larger than the bytes left allow"));
        }
        Ok(count as usize)
    }
}

const SKU_STATE_LEN: usize = 4 + 8 + 4 + 8 + 8 + 1 + 8 + 8 + 8 + 8 + 8 + 4;
const ORDER_STATE_LEN: usize = 8 + 8 + 4 + 4 + 1 + 8;

impl Shard {
    /// Appends the canonical encoding of this shard's state to `out` (see the block comment).
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        out.reserve(
            64 + self.skus.len() * SKU_STATE_LEN + self.orders.len() * (ORDER_STATE_LEN + 16),
        );
        out.extend_from_slice(&self.now_ms.to_be_bytes());
        let mut skus: Vec<(&SkuId, &SkuState)> = self.skus.iter().collect();
        skus.sort_unstable_by_key(|(id, _)| **id);
        out.extend_from_slice(&(skus.len() as u64).to_be_bytes());
        for (_, sku) in skus {
            let c = &sku.config;
            out.extend_from_slice(&c.sku_id.to_be_bytes());
            out.extend_from_slice(&c.stock_total.to_be_bytes());
            out.extend_from_slice(&c.per_user_limit.to_be_bytes());
            out.extend_from_slice(&c.hold_ttl_ms.to_be_bytes());
            out.extend_from_slice(&c.price_cents.to_be_bytes());
            let flags =
                u8::from(c.sale_start_ms.is_some()) | (u8::from(c.sale_end_ms.is_some()) << 1);
            out.push(flags);
            out.extend_from_slice(&c.sale_start_ms.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&c.sale_end_ms.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&sku.available.to_be_bytes());
            out.extend_from_slice(&sku.held.to_be_bytes());
            out.extend_from_slice(&sku.sold.to_be_bytes());
            out.extend_from_slice(&sku.max_user_units.to_be_bytes());
        }
        let mut orders: Vec<(&OrderId, &OrderRecord)> = self.orders.iter().collect();
        orders.sort_unstable_by_key(|(id, _)| **id);
        out.extend_from_slice(&(orders.len() as u64).to_be_bytes());
        for (order_id, order) in orders {
            out.extend_from_slice(&order_id.to_be_bytes());
            out.extend_from_slice(&order.user_id.to_be_bytes());
            out.extend_from_slice(&order.sku_id.to_be_bytes());
            out.extend_from_slice(&order.qty.to_be_bytes());
            out.push(order.status as u8);
            out.extend_from_slice(&order.expires_at_ms.to_be_bytes());
        }
        let mut fifos: Vec<(u64, Vec<(u64, OrderId)>)> = self
            .expiry_queue
            .by_ttl
            .iter()
            .map(|(ttl, queue)| {
                let live = queue
                    .iter()
                    .copied()
                    .filter(|(expires_at_ms, order_id)| {
                        self.orders.get(order_id).is_some_and(|order| {
                            order.status == OrderStatus::Held
                                && order.expires_at_ms == *expires_at_ms
                        })
                    })
                    .collect();
                (*ttl, live)
            })
            .filter(|(_, live): &(u64, Vec<_>)| !live.is_empty())
            .collect();
        fifos.sort_unstable_by_key(|(ttl, _)| *ttl);
        out.extend_from_slice(&(fifos.len() as u64).to_be_bytes());
        for (ttl, entries) in fifos {
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(entries.len() as u64).to_be_bytes());
            for (expires_at_ms, order_id) in entries {
                out.extend_from_slice(&expires_at_ms.to_be_bytes());
                out.extend_from_slice(&order_id.to_be_bytes());
            }
        }
    }

    /// Rebuilds a shard from [`Shard::encode_snapshot`]'s bytes, with room for at least
    /// `orders_capacity` orders. Checks what a corrupt or hand-made state could get wrong: field
    /// values, key order, stock conservation, per-user limits, and that every held order has
    /// exactly one expiry entry. Never panics on any input.
    pub fn decode_snapshot(
        bytes: &[u8],
        orders_capacity: usize,
    ) -> Result<Shard, StateDecodeError> {
        let mut r = StateReader { bytes, pos: 0 };
        let now_ms = r.u64()?;
        let sku_count = r.count(SKU_STATE_LEN)?;
        let mut skus: FxHashMap<SkuId, SkuState> =
            FxHashMap::with_capacity_and_hasher(sku_count, Default::default());
        let mut previous_sku: Option<SkuId> = None;
        for _ in 0..sku_count {
            let sku_id = r.u32()?;
            if previous_sku.is_some_and(|previous| previous >= sku_id) {
                return r.fail(format!("sku {sku_id} is out of order"));
            }
            previous_sku = Some(sku_id);
            let stock_total = r.u64()?;
            let per_user_limit = r.u32()?;
            let hold_ttl_ms = r.u64()?;
            let price_cents = r.u64()?;
            let flags = r.u8()?;
            if flags > 0b11 {
                return r.fail("sku flags has unknown bits set");
            }
            let start = r.u64()?;
            let end = r.u64()?;
            let config = SkuConfig {
                sku_id,
                stock_total,
                per_user_limit,
                hold_ttl_ms,
                sale_start_ms: (flags & 1 != 0).then_some(start),
                sale_end_ms: (flags & 2 != 0).then_some(end),
                price_cents,
            };
            if let Err(reason) = config.validate() {
                return r.fail(format!("sku {sku_id}: {reason}"));
            }
            let available = r.u64()?;
            let held = r.u64()?;
            let sold = r.u64()?;
            let max_user_units = r.u32()?;
            let total = u128::from(available) + u128::from(held) + u128::from(sold);
            if total != u128::from(stock_total) {
                return r.fail(format!(
                    "sku {sku_id}: available {available} + held {held} + sold {sold} != stock_total {stock_total}"
                ));
            }
            skus.insert(
                sku_id,
                SkuState {
                    config,
                    available,
                    held,
                    sold,
                    max_user_units,
                    availability_dirty: false,
                },
            );
        }
        let order_count = r.count(ORDER_STATE_LEN)?;
        let capacity = orders_capacity.max(order_count);
        let mut orders: FxHashMap<OrderId, OrderRecord> =
            FxHashMap::with_capacity_and_hasher(capacity, Default::default());
        let mut user_units: FxHashMap<(UserId, SkuId), u32> =
            FxHashMap::with_capacity_and_hasher(capacity, Default::default());
        let mut held_by_sku: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut sold_by_sku: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut held_orders = 0usize;
        let mut previous_order: Option<OrderId> = None;
        for _ in 0..order_count {
            let order_id = r.u64()?;
            if previous_order.is_some_and(|previous| previous >= order_id) {
                return r.fail(format!("order {order_id} is out of order"));
            }
            previous_order = Some(order_id);
            let user_id = r.u64()?;
            let sku_id = r.u32()?;
            let qty = r.u32()?;
            let status = match r.u8()? {
                0 => OrderStatus::Held,
                1 => OrderStatus::Paid,
                2 => OrderStatus::Cancelled,
                3 => OrderStatus::Expired,
                other => return r.fail(format!("order {order_id}: unknown status {other}")),
            };
            let expires_at_ms = r.u64()?;
            let Some(sku) = skus.get(&sku_id) else {
                return r.fail(format!("order {order_id} names unknown sku {sku_id}"));
            };
            if qty == 0 {
                return r.fail(format!("order {order_id} has quantity 0"));
            }
            match status {
                OrderStatus::Held => {
                    if expires_at_ms <= now_ms {
                        return r.fail(format!("order {order_id} is held past its expiry"));
                    }
                    held_orders += 1;
                    *held_by_sku.entry(sku_id).or_default() += u64::from(qty);
                }
                OrderStatus::Paid => *sold_by_sku.entry(sku_id).or_default() += u64::from(qty),
                OrderStatus::Cancelled | OrderStatus::Expired => {}
            }
            if !status.is_terminal() || status == OrderStatus::Paid {
                let units = user_units.entry((user_id, sku_id)).or_default();
                *units = units.saturating_add(qty);
                if *units > sku.config.per_user_limit || *units > sku.max_user_units {
                    return r.fail(format!(
                        "user {user_id} has {units} units of sku {sku_id}, over its limit"
                    ));
                }
            }
            orders.insert(
                order_id,
                OrderRecord {
                    user_id,
                    sku_id,
                    qty,
                    status,
                    expires_at_ms,
                },
            );
        }
        for (sku_id, sku) in &skus {
            let held = held_by_sku.get(sku_id).copied().unwrap_or(0);
            let sold = sold_by_sku.get(sku_id).copied().unwrap_or(0);
            if sku.held != held || sku.sold != sold {
                return r.fail(format!(
                    "sku {sku_id}: counters held={} sold={} but orders say held={held} sold={sold}",
                    sku.held, sku.sold
                ));
            }
        }
        let fifo_count = r.count(16)?;
        let mut expiry_queue = ExpiryQueue::with_capacity(capacity);
        let mut entries_seen: rustc_hash::FxHashSet<OrderId> =
            rustc_hash::FxHashSet::with_capacity_and_hasher(held_orders, Default::default());
        let mut previous_ttl: Option<u64> = None;
        for _ in 0..fifo_count {
            let ttl = r.u64()?;
            if previous_ttl.is_some_and(|previous| previous >= ttl) {
                return r.fail(format!("expiry FIFO of ttl {ttl} is out of order"));
            }
            previous_ttl = Some(ttl);
            let entries = r.count(16)?;
            if entries == 0 {
                return r.fail(format!("expiry FIFO of ttl {ttl} is empty"));
            }
            let mut queue = VecDeque::with_capacity(entries.max(capacity.min(1 << 20)));
            let mut previous_expiry = 0u64;
            for _ in 0..entries {
                let expires_at_ms = r.u64()?;
                let order_id = r.u64()?;
                if expires_at_ms < previous_expiry {
                    return r.fail(format!("expiry FIFO of ttl {ttl} is not sorted"));
                }
                previous_expiry = expires_at_ms;
                let live = orders.get(&order_id).is_some_and(|order| {
                    order.status == OrderStatus::Held && order.expires_at_ms == expires_at_ms
                });
                if !live || !entries_seen.insert(order_id) {
                    return r.fail(format!(
                        "expiry entry of order {order_id} is not a live hold or is repeated"
                    ));
                }
                queue.push_back((expires_at_ms, order_id));
            }
            expiry_queue.by_ttl.push((ttl, queue));
        }
        if entries_seen.len() != held_orders {
            return r.fail(format!(
                "{held_orders} held orders but {} expiry entries",
                entries_seen.len()
            ));
        }
        if r.pos != bytes.len() {
            return r.fail(format!(
                "{} bytes left after the state",
                bytes.len() - r.pos
            ));
        }
        Ok(Shard {
            skus,
            orders,
            user_units,
            expiry_queue,
            now_ms,
            changed_skus: Vec::new(),
            created_orders: Vec::new(),
        })
    }
}
