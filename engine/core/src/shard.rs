//! The shard: a pure, single-threaded state machine that owns the stock of the SKUs routed to it
//! and every order placed against them. `apply(now_ms, commands)` is its only way in; it takes
//! no locks, reads no clock and does no I/O, so the same inputs always give the same outputs —
//! which is what makes journal replay, recovery and model testing work.
//!
//! It must not know about threads, channels, the network or the journal. What the outside world
//! needs from a batch (which SKUs' availability changed, which orders were created) is recorded
//! in small lists that the runtime drains after each `apply`.
//!
//! Storage is laid out for the caches: orders and per-user allowances live in dense arrays in
//! creation order (a pay or cancel usually follows its reserve closely, and holds expire in
//! creation order, so both find their order in a recently touched line), reached through
//! [`SlotIndex`]es whose slots `apply` prefetches a few commands ahead.
//!
//! What is cheap and decisive is asserted in release builds too (`invariant!`): per-SKU
//! conservation after every change of a SKU's availability, legal state transitions (held →
//! paid | cancelled | expired, each at the right side of its expiry), units never taken from a
//! user or a SKU that does not have them, a user's units within the limit, and each TTL's expiry
//! FIFO in time order (time never goes backwards). Positions are bounds-checked by indexing. A violation panics; the runtime
//! catches it and stops the engine fail-stop, as a failed fsync does, instead of serving on from
//! a broken state. `check_invariants` is the full recount, for tests.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

mod snapshot;

pub use snapshot::StateDecodeError;

use crate::slot_index::{self, MAX_POSITION, Probe, SlotIndex};
use crate::types::{
    Command, MAX_STOCK_TOTAL, OrderId, OrderStatus, OrderView, Outcome, Reject, SkuConfig, SkuId,
    SkuView, UserId,
};

/// How many commands ahead `apply` prefetches the index slots a command will probe: far enough
/// for a cache miss to land, near enough that the line is still in L1 when it is used. The two
/// distances were chosen by interleaved runs of the mixed shard bench and the recovery bench
/// (docs/benchmarks.md); without prefetching the mixed load runs at a third of the speed.
const PREFETCH_DISTANCE: usize = 12;
/// How many commands ahead `apply` reads a Pay's or Cancel's (by then loaded) index slot and
/// prefetches the order it points at: an old order is a second, dependent miss.
const PREFETCH_ORDER_DISTANCE: usize = 6;

/// Commands between being prefetched and applied; a power of two above `PREFETCH_DISTANCE`.
const HASH_RING: usize = 16;
const _: () = assert!(HASH_RING > PREFETCH_DISTANCE && HASH_RING.is_power_of_two());

/// Asserts a shard invariant in every build. A violation means the shard's state is broken:
/// it panics (cold path, out of line), and the runtime stops the engine fail-stop.
macro_rules! invariant {
    ($condition:expr, $($reason:tt)+) => {
        if !$condition {
            invariant_violated(format_args!($($reason)+));
        }
    };
}

/// The panic of a failed [`invariant!`]; its message starts with [`INVARIANT_VIOLATED`].
#[cold]
#[inline(never)]
#[track_caller]
fn invariant_violated(reason: std::fmt::Arguments<'_>) -> ! {
    panic!("{INVARIANT_VIOLATED}: {reason}")
}

/// How the panic message of a violated shard invariant starts.
pub const INVARIANT_VIOLATED: &str = "shard invariant violated";

/// The index hashes a command probes with (0 where it probes none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KeyHashes {
    order: u32,
    allowance: u32,
}

impl KeyHashes {
    #[inline]
    fn of(command: &Command, hash_key: u64) -> KeyHashes {
        match *command {
            Command::Reserve {
                order_id,
                user_id,
                sku_id,
                ..
            } => KeyHashes {
                order: slot_index::hash_u64(hash_key, order_id),
                allowance: slot_index::hash_pair(hash_key, user_id, sku_id),
            },
            Command::Pay { order_id, .. }
            | Command::Cancel { order_id, .. }
            | Command::QueryOrder { order_id } => KeyHashes {
                order: slot_index::hash_u64(hash_key, order_id),
                allowance: 0,
            },
            Command::QuerySku { .. } | Command::UpsertSku(_) | Command::Restock { .. } => {
                KeyHashes::default()
            }
        }
    }
}

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

    /// Stock conservation, in every build: `available + held + sold == stock_total`. Each
    /// counter is at most 2^48 and every decrement is checked (`take_held`; `available` only
    /// drops after a check that it has the units), so the sum cannot wrap.
    #[inline(always)]
    fn check(&self) {
        let total = self
            .available
            .wrapping_add(self.held)
            .wrapping_add(self.sold);
        invariant!(
            total == self.config.stock_total,
            "stock conservation broken for sku {}: available {} + held {} + sold {} != stock_total {}",
            self.config.sku_id,
            self.available,
            self.held,
            self.sold,
            self.config.stock_total
        );
    }

    /// Takes `qty` held units off the SKU (a hold paid or ended); the SKU must have them.
    #[inline(always)]
    fn take_held(&mut self, qty: u32) {
        invariant!(
            self.held >= u64::from(qty),
            "sku {} releases {qty} held units but holds {}",
            self.config.sku_id,
            self.held
        );
        self.held -= u64::from(qty);
    }
}

/// One order, at its creation position in `Shard::orders` (40 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OrderRecord {
    order_id: OrderId,
    user_id: UserId,
    expires_at_ms: u64,
    sku_id: SkuId,
    qty: u32,
    /// Position of the order's (user, SKU) allowance in `Shard::allowances`.
    allowance: u32,
    status: OrderStatus,
}

const _: () = assert!(std::mem::size_of::<OrderRecord>() == 40);

impl OrderRecord {
    /// Ends a hold: the only legal transitions are held → paid | cancelled (before its expiry)
    /// and held → expired (at or after it). Terminal states are final.
    #[inline(always)]
    fn resolve(&mut self, to: OrderStatus, now_ms: u64) {
        let legal = self.status == OrderStatus::Held
            && match to {
                OrderStatus::Paid | OrderStatus::Cancelled => now_ms < self.expires_at_ms,
                OrderStatus::Expired => now_ms >= self.expires_at_ms,
                OrderStatus::Held => false,
            };
        invariant!(
            legal,
            "order {}: {:?} -> {:?} at {} ms is not a legal transition (expires at {} ms)",
            self.order_id,
            self.status,
            to,
            now_ms,
            self.expires_at_ms
        );
        self.status = to;
    }

    fn view(&self) -> OrderView {
        OrderView {
            order_id: self.order_id,
            user_id: self.user_id,
            sku_id: self.sku_id,
            qty: self.qty,
            status: self.status,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// Units (held + sold) one user has of one SKU. Created by the user's first hold on the SKU and
/// never removed (at zero it costs 16 bytes and keeps positions stable), like the orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Allowance {
    user_id: UserId,
    sku_id: SkuId,
    units: u32,
}

const _: () = assert!(std::mem::size_of::<Allowance>() == 16);

/// One shard's whole state. See the module documentation.
#[derive(Clone, Debug)]
pub struct Shard {
    /// The secret key of the indexes' hashes (see `slot_index::hash_u64`): where entries sit
    /// depends on it, what the shard answers never does.
    hash_key: u64,
    skus: FxHashMap<SkuId, SkuState>,
    /// Every order, in creation order; never removed (ids stay idempotent for ever).
    orders: Vec<OrderRecord>,
    /// Order id → position in `orders`.
    order_index: SlotIndex,
    /// Units per (user, SKU), in creation order.
    allowances: Vec<Allowance>,
    /// (user, SKU) → position in `allowances`.
    allowance_index: SlotIndex,
    /// Pending holds by expiry time, as positions in `orders`. Entries of orders that were paid
    /// or cancelled stay until their time comes and are then skipped, so each hold costs one
    /// push and one pop.
    expiry_queue: ExpiryQueue,
    /// The latest time this shard has been given; time never goes backwards inside a shard.
    now_ms: u64,
    changed_skus: Vec<SkuId>,
    created_orders: Vec<OrderId>,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::new()
    }
}

impl Shard {
    pub fn new() -> Shard {
        Shard::with_capacity(0)
    }

    /// A shard with room for `orders` orders (and as many allowances and pending holds)
    /// allocated up front, so a sale never pays for a table growing mid-peak.
    ///
    /// The tables' memory is written once here, in address order, so the pages are resident
    /// before the first order: otherwise the first orders of a sale — the midnight step — each
    /// pay a page fault into freshly reserved memory (seen as a stall in the first seconds of a
    /// fresh server). Costs about a memset of the tables at start-up.
    pub fn with_capacity(orders: usize) -> Shard {
        Shard::with_capacity_and_hash_key(orders, slot_index::random_hash_key())
    }

    /// [`Shard::with_capacity`] with a chosen hash key instead of a secret random one: the
    /// memory layout (never the answers) becomes reproducible, which instruction-count
    /// benchmarks need. A server should not use a key its clients could know.
    pub fn with_capacity_and_hash_key(orders: usize, hash_key: u64) -> Shard {
        let orders = orders.min(MAX_POSITION as usize + 1);
        Shard {
            hash_key,
            skus: FxHashMap::default(),
            orders: prefaulted_vec(
                orders,
                OrderRecord {
                    order_id: 0,
                    user_id: 0,
                    expires_at_ms: 0,
                    sku_id: 0,
                    qty: 0,
                    allowance: 0,
                    status: OrderStatus::Cancelled,
                },
            ),
            order_index: SlotIndex::with_capacity(orders),
            allowances: prefaulted_vec(
                orders,
                Allowance {
                    user_id: u64::MAX,
                    sku_id: 0,
                    units: 0,
                },
            ),
            allowance_index: SlotIndex::with_capacity(orders),
            expiry_queue: ExpiryQueue::with_capacity(orders),
            now_ms: 0,
            changed_skus: Vec::new(),
            created_orders: Vec::new(),
        }
    }

    /// Applies `commands` in order at time `now_ms`, appending one outcome per command to
    /// `outcomes`. Holds whose expiry is at or before `now_ms` expire first. A `now_ms` earlier
    /// than one seen before is treated as the earlier maximum (time is monotonic per shard).
    pub fn apply(&mut self, now_ms: u64, commands: &[Command], outcomes: &mut Vec<Outcome>) {
        self.advance_time(now_ms);
        outcomes.reserve(commands.len());
        // Each command's hashes are computed once, when its slots are prefetched, and kept here
        // until it is applied.
        let mut in_flight = [KeyHashes::default(); HASH_RING];
        for (index, command) in commands.iter().enumerate().take(PREFETCH_DISTANCE) {
            in_flight[index % HASH_RING] = self.prefetch(command);
        }
        for (index, command) in commands.iter().enumerate().take(PREFETCH_ORDER_DISTANCE) {
            self.prefetch_order(command, in_flight[index % HASH_RING]);
        }
        for (index, command) in commands.iter().enumerate() {
            let hashes = in_flight[index % HASH_RING];
            let ahead = index + PREFETCH_DISTANCE;
            if let Some(command) = commands.get(ahead) {
                in_flight[ahead % HASH_RING] = self.prefetch(command);
            }
            let ahead = index + PREFETCH_ORDER_DISTANCE;
            if let Some(command) = commands.get(ahead) {
                self.prefetch_order(command, in_flight[ahead % HASH_RING]);
            }
            outcomes.push(self.apply_one(command, hashes));
        }
    }

    /// Starts loading the order a Pay, Cancel or order query names, from its index slot (which
    /// `prefetch` asked for earlier). A hint: changes nothing.
    #[inline(always)]
    fn prefetch_order(&self, command: &Command, hashes: KeyHashes) {
        // A reserve names an order that usually does not exist yet: nothing to load.
        let reads_order = match command {
            Command::Pay { .. } | Command::Cancel { .. } | Command::QueryOrder { .. } => true,
            Command::Reserve { .. }
            | Command::QuerySku { .. }
            | Command::UpsertSku(_)
            | Command::Restock { .. } => false,
        };
        if reads_order && let Some(position) = self.order_index.candidate(hashes.order) {
            slot_index::prefetch_read(self.orders.as_ptr().wrapping_add(position as usize));
        }
    }

    /// Computes the hashes `command` will probe with and starts loading their index slots.
    /// Changes nothing.
    #[inline(always)]
    fn prefetch(&self, command: &Command) -> KeyHashes {
        let hashes = KeyHashes::of(command, self.hash_key);
        match command {
            Command::Reserve { .. } => {
                self.order_index.prefetch(hashes.order);
                self.allowance_index.prefetch(hashes.allowance);
            }
            Command::Pay { .. } | Command::Cancel { .. } | Command::QueryOrder { .. } => {
                self.order_index.prefetch(hashes.order);
            }
            Command::QuerySku { .. } | Command::UpsertSku(_) | Command::Restock { .. } => {}
        }
        hashes
    }

    /// Moves time forward to `now_ms` (if it is later) and expires every hold that is due.
    /// Returns how many holds expired.
    pub fn advance_time(&mut self, now_ms: u64) -> usize {
        self.now_ms = self.now_ms.max(now_ms);
        let mut expired = 0;
        for fifo in 0..self.expiry_queue.by_ttl.len() {
            while let Some(&position) = self.expiry_queue.by_ttl[fifo].positions.front() {
                if self.orders[position as usize].expires_at_ms > self.now_ms {
                    break;
                }
                self.expiry_queue.by_ttl[fifo].positions.pop_front();
                if self.expire(position) {
                    expired += 1;
                }
            }
        }
        self.expiry_queue.prune_idle();
        expired
    }

    /// When the next pending hold falls due, if any is pending: the earliest expiry at the
    /// front of a TTL's queue (possibly of a hold paid or cancelled since, which is then skipped
    /// — so this may be early, never late).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry_queue
            .by_ttl
            .iter()
            .filter_map(|fifo| fifo.positions.front())
            .map(|&position| self.orders[position as usize].expires_at_ms)
            .min()
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
        self.find_order(order_id)
            .map(|position| self.orders[position as usize].view())
    }

    /// Every SKU's view, sorted by id.
    pub fn sku_views(&self) -> Vec<SkuView> {
        let mut views: Vec<SkuView> = self.skus.values().map(SkuState::view).collect();
        views.sort_unstable_by_key(|view| view.config.sku_id);
        views
    }

    /// Every order's view, sorted by id.
    pub fn order_views(&self) -> Vec<OrderView> {
        let mut views: Vec<OrderView> = self.orders.iter().map(OrderRecord::view).collect();
        views.sort_unstable_by_key(|view| view.order_id);
        views
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Full check of every invariant, by recomputing all derived state from the orders: stock
    /// conservation per SKU, per-user units within the limit, held/sold totals matching the
    /// orders, every order and allowance reachable through its index, and a pending expiry
    /// entry for every hold. Costs a scan of everything: for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut sold: FxHashMap<SkuId, u64> = FxHashMap::default();
        let mut units: FxHashMap<(UserId, SkuId), u32> = FxHashMap::default();
        for (position, order) in self.orders.iter().enumerate() {
            let order_id = order.order_id;
            if self.find_order(order_id) != Some(position as u32) {
                return Err(format!("order {order_id} is not found at its position"));
            }
            let Some(sku) = self.skus.get(&order.sku_id) else {
                return Err(format!(
                    "order {order_id} names unknown sku {}",
                    order.sku_id
                ));
            };
            let allowance = self.allowances.get(order.allowance as usize);
            if allowance.is_none_or(|a| a.user_id != order.user_id || a.sku_id != order.sku_id) {
                return Err(format!(
                    "order {order_id} points at another user's allowance"
                ));
            }
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
        if self.order_index.len() != self.orders.len() {
            return Err("the order index and the orders differ in length".to_string());
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
        if self.allowance_index.len() != self.allowances.len() {
            return Err("the allowance index and the allowances differ in length".to_string());
        }
        for (position, allowance) in self.allowances.iter().enumerate() {
            let (user_id, sku_id) = (allowance.user_id, allowance.sku_id);
            if self.find_allowance(user_id, sku_id) != Some(position as u32) {
                return Err(format!(
                    "allowance of user {user_id} for sku {sku_id} is not found at its position"
                ));
            }
            let expected = units.remove(&(user_id, sku_id)).unwrap_or(0);
            if allowance.units != expected {
                return Err(format!(
                    "user {user_id} has {} units of sku {sku_id} counted but orders say {expected}",
                    allowance.units
                ));
            }
        }
        if let Some(((user_id, sku_id), _)) = units.into_iter().next() {
            return Err(format!(
                "user {user_id} holds sku {sku_id} without an allowance"
            ));
        }
        let pending: rustc_hash::FxHashSet<u32> = self.expiry_queue.positions().collect();
        for (position, order) in self.orders.iter().enumerate() {
            if order.status == OrderStatus::Held && !pending.contains(&(position as u32)) {
                return Err(format!("held order {} has no expiry entry", order.order_id));
            }
        }
        Ok(())
    }

    fn find_order(&self, order_id: OrderId) -> Option<u32> {
        self.find_order_hashed(order_id, slot_index::hash_u64(self.hash_key, order_id))
    }

    /// [`Shard::find_order`] with the id's hash already computed.
    #[inline]
    fn find_order_hashed(&self, order_id: OrderId, hash: u32) -> Option<u32> {
        debug_assert_eq!(hash, slot_index::hash_u64(self.hash_key, order_id));
        let orders = &self.orders;
        self.order_index.find(hash, |position| {
            orders[position as usize].order_id == order_id
        })
    }

    fn find_allowance(&self, user_id: UserId, sku_id: SkuId) -> Option<u32> {
        let allowances = &self.allowances;
        self.allowance_index.find(
            slot_index::hash_pair(self.hash_key, user_id, sku_id),
            |position| {
                let allowance = &allowances[position as usize];
                allowance.user_id == user_id && allowance.sku_id == sku_id
            },
        )
    }

    fn apply_one(&mut self, command: &Command, hashes: KeyHashes) -> Outcome {
        match *command {
            Command::Reserve {
                order_id,
                user_id,
                sku_id,
                qty,
            } => self.reserve(order_id, user_id, sku_id, qty, hashes),
            Command::Pay { order_id, user_id } => self.pay(order_id, user_id, hashes.order),
            Command::Cancel { order_id, user_id } => self.cancel(order_id, user_id, hashes.order),
            Command::QueryOrder { order_id } => {
                match self.find_order_hashed(order_id, hashes.order) {
                    Some(position) => Outcome::Order(self.orders[position as usize].view()),
                    None => Outcome::Rejected(Reject::UnknownOrder),
                }
            }
            Command::QuerySku { sku_id } => match self.skus.get(&sku_id) {
                Some(sku) => Outcome::Sku(Box::new(sku.view())),
                None => Outcome::Rejected(Reject::UnknownSku),
            },
            Command::UpsertSku(config) => self.upsert_sku(config),
            Command::Restock { sku_id, delta } => self.restock(sku_id, delta),
        }
    }

    fn reserve(
        &mut self,
        order_id: OrderId,
        user_id: UserId,
        sku_id: SkuId,
        qty: u32,
        hashes: KeyHashes,
    ) -> Outcome {
        debug_assert_eq!(
            hashes,
            KeyHashes::of(
                &Command::Reserve {
                    order_id,
                    user_id,
                    sku_id,
                    qty
                },
                self.hash_key
            )
        );
        // Dedup first: a retry must never take stock twice, whatever has happened since. One
        // probe of the order index serves both the check and the insert.
        let orders = &self.orders;
        let order_slot = match self.order_index.probe(hashes.order, |position| {
            orders[position as usize].order_id == order_id
        }) {
            Probe::Found(position) => {
                let order = &self.orders[position as usize];
                if order.user_id == user_id && order.sku_id == sku_id && order.qty == qty {
                    return Outcome::Order(order.view());
                }
                return Outcome::Rejected(Reject::IdConflict);
            }
            Probe::Vacant(slot) => slot,
        };
        // Positions are u32: a shard past 4 billion orders (160 GB of them) takes no more.
        let Ok(position) = u32::try_from(self.orders.len()) else {
            return Outcome::Rejected(Reject::Busy);
        };
        if position > MAX_POSITION {
            return Outcome::Rejected(Reject::Busy);
        }
        let now_ms = self.now_ms;
        let Some(sku) = self.skus.get_mut(&sku_id) else {
            return Outcome::Rejected(Reject::UnknownSku);
        };
        // The order of the checks is the contract's (docs/protocol.md §3.3): sold out comes
        // before the per-user and window checks, so the mirror's early `SoldOut` is exactly
        // what the shard would answer.
        if qty == 0 {
            return Outcome::Rejected(Reject::InvalidQty);
        }
        if sku.available < u64::from(qty) {
            return Outcome::Rejected(Reject::SoldOut);
        }
        if qty > sku.config.per_user_limit {
            return Outcome::Rejected(Reject::InvalidQty);
        }
        let before_start = sku.config.sale_start_ms.is_some_and(|start| now_ms < start);
        let after_end = sku.config.sale_end_ms.is_some_and(|end| now_ms >= end);
        if before_start || after_end {
            return Outcome::Rejected(Reject::NotOnSale);
        }
        // The per-user limit is checked before stock is touched: an over-limit user never burns
        // stock. A vacant probe inserts nothing unless filled, so refusals leave no trace.
        let allowances = &self.allowances;
        let allowance_probe = self.allowance_index.probe(hashes.allowance, |at| {
            let allowance = &allowances[at as usize];
            allowance.user_id == user_id && allowance.sku_id == sku_id
        });
        let units_before = match allowance_probe {
            Probe::Found(at) => self.allowances[at as usize].units,
            Probe::Vacant(_) => 0,
        };
        // In u64: two u32 near the maximum must not wrap into a small number.
        let units_after = u64::from(units_before) + u64::from(qty);
        if units_after > u64::from(sku.config.per_user_limit) {
            return Outcome::Rejected(Reject::LimitExceeded);
        }
        // Fits: it is at most `per_user_limit`, a u32.
        let units_after = units_after as u32;
        invariant!(
            units_after <= sku.config.per_user_limit,
            "user {user_id} would have {units_after} units of sku {sku_id}"
        );
        let allowance = match allowance_probe {
            Probe::Found(at) => {
                self.allowances[at as usize].units = units_after;
                at
            }
            Probe::Vacant(slot) => {
                // At most one allowance per order, so this position fits as the order's does.
                let at = self.allowances.len() as u32;
                self.allowances.push(Allowance {
                    user_id,
                    sku_id,
                    units: units_after,
                });
                self.allowance_index.fill(slot, at);
                at
            }
        };
        sku.max_user_units = sku.max_user_units.max(units_after);
        sku.available -= u64::from(qty);
        sku.held += u64::from(qty);
        sku.check();
        if !sku.availability_dirty {
            sku.availability_dirty = true;
            self.changed_skus.push(sku_id);
        }
        let hold_ttl_ms = sku.config.hold_ttl_ms;
        let order = OrderRecord {
            order_id,
            user_id,
            expires_at_ms: now_ms.saturating_add(hold_ttl_ms),
            sku_id,
            qty,
            allowance,
            status: OrderStatus::Held,
        };
        self.orders.push(order);
        self.order_index.fill(order_slot, position);
        self.expiry_queue
            .push(hold_ttl_ms, order.expires_at_ms, position);
        self.created_orders.push(order_id);
        Outcome::Created(order.view())
    }

    fn pay(&mut self, order_id: OrderId, user_id: UserId, order_hash: u32) -> Outcome {
        let Some(position) = self.find_order_hashed(order_id, order_hash) else {
            return Outcome::Rejected(Reject::UnknownOrder);
        };
        let now_ms = self.now_ms;
        let order = &mut self.orders[position as usize];
        if order.user_id != user_id {
            return Outcome::Rejected(Reject::NotOwner);
        }
        match order.status {
            OrderStatus::Paid => Outcome::Order(order.view()),
            OrderStatus::Cancelled => Outcome::Rejected(Reject::Cancelled),
            OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
            OrderStatus::Held => {
                // `advance_time` has already expired every hold due at `now_ms`.
                order.resolve(OrderStatus::Paid, now_ms);
                let view = order.view();
                let sku = self
                    .skus
                    .get_mut(&view.sku_id)
                    .expect("an order's sku exists: skus are never removed");
                // Units move from held to sold: the sum stays whole once `take_held` has found
                // them (conservation is asserted where `available` changes).
                sku.take_held(view.qty);
                sku.sold += u64::from(view.qty);
                Outcome::Order(view)
            }
        }
    }

    fn cancel(&mut self, order_id: OrderId, user_id: UserId, order_hash: u32) -> Outcome {
        let Some(position) = self.find_order_hashed(order_id, order_hash) else {
            return Outcome::Rejected(Reject::UnknownOrder);
        };
        let now_ms = self.now_ms;
        let order = &mut self.orders[position as usize];
        if order.user_id != user_id {
            return Outcome::Rejected(Reject::NotOwner);
        }
        match order.status {
            OrderStatus::Cancelled => Outcome::Order(order.view()),
            OrderStatus::Paid => Outcome::Rejected(Reject::AlreadyPaid),
            OrderStatus::Expired => Outcome::Rejected(Reject::Expired),
            OrderStatus::Held => {
                order.resolve(OrderStatus::Cancelled, now_ms);
                let order = *order;
                self.release_hold(&order);
                Outcome::Order(order.view())
            }
        }
    }

    /// Expires the order at `position` if it is still held (each hold has one queue entry; the
    /// entries of holds paid or cancelled since are skipped here).
    fn expire(&mut self, position: u32) -> bool {
        let now_ms = self.now_ms;
        let order = &mut self.orders[position as usize];
        if order.status != OrderStatus::Held {
            return false;
        }
        order.resolve(OrderStatus::Expired, now_ms);
        let order = *order;
        self.release_hold(&order);
        true
    }

    /// Returns a held order's units to `available` and to its user's allowance.
    fn release_hold(&mut self, order: &OrderRecord) {
        let sku = self
            .skus
            .get_mut(&order.sku_id)
            .expect("an order's sku exists: skus are never removed");
        sku.take_held(order.qty);
        sku.available += u64::from(order.qty);
        sku.check();
        if !sku.availability_dirty {
            sku.availability_dirty = true;
            self.changed_skus.push(order.sku_id);
        }
        let allowance = &mut self.allowances[order.allowance as usize];
        invariant!(
            allowance.user_id == order.user_id
                && allowance.sku_id == order.sku_id
                && allowance.units >= order.qty,
            "order {} of user {} for sku {} (qty {}) points at the allowance of user {} for sku {} with {} units",
            order.order_id,
            order.user_id,
            order.sku_id,
            order.qty,
            allowance.user_id,
            allowance.sku_id,
            allowance.units
        );
        allowance.units -= order.qty;
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
                sku.check();
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
        sku.check();
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
/// Entries are order positions (4 bytes); their expiry is read from the order.
const MAX_IDLE_TTL_QUEUES: usize = 16;
/// Pending holds a later TTL's FIFO reserves room for; it grows (amortised) past that.
const MAX_INITIAL_FIFO_CAPACITY: usize = 1 << 16;

#[derive(Clone, Debug, Default)]
struct ExpiryQueue {
    /// One FIFO per distinct hold TTL.
    by_ttl: Vec<TtlFifo>,
    /// Room for every hold the shard can make, written at start: the first FIFO takes it. The
    /// first TTL of a sale usually holds nearly everything, and a FIFO that grew by doubling
    /// instead stalled the shard 18–70 ms at each step (copy plus freshly faulted huge pages;
    /// measured at 2, 5, 11 and 18 s of the README's double11).
    first_fifo: Option<VecDeque<u32>>,
    /// Room each later TTL's FIFO starts with.
    later_fifo_capacity: usize,
}

impl ExpiryQueue {
    fn with_capacity(holds: usize) -> ExpiryQueue {
        ExpiryQueue {
            by_ttl: Vec::new(),
            first_fifo: Some(VecDeque::from(prefaulted_vec(holds, u32::MAX))),
            later_fifo_capacity: holds.min(MAX_INITIAL_FIFO_CAPACITY),
        }
    }

    fn fifo(&mut self, hold_ttl_ms: u64) -> &mut TtlFifo {
        match self
            .by_ttl
            .iter()
            .position(|fifo| fifo.ttl_ms == hold_ttl_ms)
        {
            Some(index) => &mut self.by_ttl[index],
            None => {
                // Later TTLs start small.
                let positions = self
                    .first_fifo
                    .take()
                    .unwrap_or_else(|| VecDeque::with_capacity(self.later_fifo_capacity));
                self.by_ttl.push(TtlFifo {
                    ttl_ms: hold_ttl_ms,
                    positions,
                    last_expires_at_ms: 0,
                });
                self.by_ttl.last_mut().expect("just pushed")
            }
        }
    }

    /// Queues the hold at `position` (which expires at `expires_at_ms`) behind the others of
    /// its TTL.
    #[inline]
    fn push(&mut self, hold_ttl_ms: u64, expires_at_ms: u64, position: u32) {
        let fifo = self.fifo(hold_ttl_ms);
        let last_expires_at_ms = fifo.last_expires_at_ms;
        invariant!(
            last_expires_at_ms <= expires_at_ms,
            "time went backwards: a hold of ttl {hold_ttl_ms} expiring at {expires_at_ms} ms queued behind one expiring at {last_expires_at_ms} ms"
        );
        fifo.last_expires_at_ms = expires_at_ms;
        fifo.positions.push_back(position);
    }

    /// Empty FIFOs are kept (the common TTL empties and refills all the time) unless TTLs have
    /// multiplied, so the number of fronts looked at stays small.
    fn prune_idle(&mut self) {
        if self.by_ttl.len() > MAX_IDLE_TTL_QUEUES {
            self.by_ttl.retain(|fifo| !fifo.positions.is_empty());
        }
    }

    fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_ttl
            .iter()
            .flat_map(|fifo| fifo.positions.iter().copied())
    }
}

/// The pending holds of one TTL, in the order they were made, which is their expiry order.
#[derive(Clone, Debug)]
struct TtlFifo {
    ttl_ms: u64,
    /// Order positions, in non-decreasing expiry.
    positions: VecDeque<u32>,
    /// The expiry of the last hold queued (0 before any): a later one may not be earlier, which
    /// is time going backwards (asserted in every build).
    last_expires_at_ms: u64,
}

/// A `Vec` with room for `capacity` items whose memory has been written once, in address order,
/// so its pages are resident (see `Shard::with_capacity`); it is empty. `filler` must not be all
/// zero bytes, or the compiler may turn the writes into a zeroed allocation that touches nothing.
fn prefaulted_vec<T: Copy>(capacity: usize, filler: T) -> Vec<T> {
    let mut items = Vec::with_capacity(capacity);
    items.resize(capacity, filler);
    items.clear();
    items
}

/// A state a bug could leave behind, made on purpose by the tests of the fail-stop path (the
/// production build has no way in: only the `testing` feature).
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Debug)]
pub enum Corruption {
    /// One unit of the SKU counted held that no order holds.
    HeldUnits(SkuId),
    /// The allowance of the order's user counts none of its units.
    AllowanceEmptied(OrderId),
    /// The shard's clock set back to this instant, below the time it had reached.
    TimeRewound(u64),
}

#[cfg(any(test, feature = "testing"))]
impl Shard {
    /// Leaves the shard in `corruption`, for the tests of the fail-stop path.
    pub fn corrupt(&mut self, corruption: Corruption) {
        match corruption {
            Corruption::HeldUnits(sku_id) => {
                self.skus.get_mut(&sku_id).expect("the sku exists").held += 1;
            }
            Corruption::AllowanceEmptied(order_id) => {
                let position = self.find_order(order_id).expect("the order exists");
                let allowance = self.orders[position as usize].allowance;
                self.allowances[allowance as usize].units = 0;
            }
            Corruption::TimeRewound(now_ms) => self.now_ms = now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_with_a_hold() -> Shard {
        let mut shard = Shard::with_capacity(16);
        let mut outcomes = Vec::new();
        shard.apply(
            10,
            &[
                Command::UpsertSku(SkuConfig::simple(1, 10, 2, 1_000)),
                reserve(7, 1),
            ],
            &mut outcomes,
        );
        assert!(matches!(outcomes[1], Outcome::Created(_)), "{outcomes:?}");
        shard
    }

    fn reserve(order_id: OrderId, user_id: UserId) -> Command {
        Command::Reserve {
            order_id,
            user_id,
            sku_id: 1,
            qty: 1,
        }
    }

    /// Applies `commands` at `now_ms` to a shard left in `corruption`; the invariant's message
    /// if it panics.
    fn violation(corruption: Corruption, now_ms: u64, commands: &[Command]) -> Option<String> {
        let mut shard = shard_with_a_hold();
        shard.corrupt(corruption);
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shard.apply(now_ms, commands, &mut Vec::new());
        }));
        applied.err().map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".to_string())
        })
    }

    #[test]
    fn the_same_commands_pass_on_a_sound_shard() {
        let mut shard = shard_with_a_hold();
        let mut outcomes = Vec::new();
        shard.apply(
            20,
            &[
                reserve(8, 2),
                Command::Cancel {
                    order_id: 7,
                    user_id: 1,
                },
            ],
            &mut outcomes,
        );
        assert!(matches!(outcomes[0], Outcome::Created(_)));
        assert!(matches!(outcomes[1], Outcome::Order(_)));
        shard.check_invariants().unwrap();
    }

    #[test]
    fn broken_stock_conservation_is_a_violation() {
        let reason = violation(Corruption::HeldUnits(1), 20, &[reserve(8, 2)]).expect("it panics");
        assert!(reason.starts_with(INVARIANT_VIOLATED), "{reason}");
        assert!(
            reason.contains("stock conservation broken for sku 1"),
            "{reason}"
        );
    }

    #[test]
    fn releasing_units_a_user_does_not_have_is_a_violation() {
        let cancel = Command::Cancel {
            order_id: 7,
            user_id: 1,
        };
        let reason = violation(Corruption::AllowanceEmptied(7), 20, &[cancel]).expect("it panics");
        assert!(reason.starts_with(INVARIANT_VIOLATED), "{reason}");
        assert!(reason.contains("points at the allowance"), "{reason}");
    }

    #[test]
    fn a_hold_queued_out_of_time_order_is_a_violation() {
        // The hold of order 7 was made at 10; with the clock back at 5, a new one would expire
        // before it, behind it in the FIFO.
        let reason = violation(Corruption::TimeRewound(0), 5, &[reserve(8, 2)]).expect("it panics");
        assert!(reason.starts_with(INVARIANT_VIOLATED), "{reason}");
        assert!(reason.contains("time went backwards"), "{reason}");
    }

    #[test]
    fn resolving_a_hold_on_the_wrong_side_of_its_expiry_is_a_violation() {
        let mut order = shard_with_a_hold().orders[0];
        let at_expiry = order.expires_at_ms;
        let paid_late =
            std::panic::catch_unwind(move || order.resolve(OrderStatus::Paid, at_expiry));
        assert!(paid_late.is_err());
        let mut order = shard_with_a_hold().orders[0];
        let expired_early =
            std::panic::catch_unwind(move || order.resolve(OrderStatus::Expired, at_expiry - 1));
        assert!(expired_early.is_err());
        let mut order = shard_with_a_hold().orders[0];
        order.resolve(OrderStatus::Cancelled, at_expiry - 1);
        let twice = std::panic::catch_unwind(move || order.resolve(OrderStatus::Paid, 0));
        assert!(twice.is_err(), "a terminal state is final");
    }
}
