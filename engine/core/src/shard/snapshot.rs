//! The snapshot codec of a [`Shard`] (owned by durability): a canonical encoding of the whole
//! state, so that two replays of one journal give byte-identical snapshots. SKUs are sorted by
//! id; orders are in creation order (deterministic: the journal fixes it), so encoding is one
//! pass with no sort; the expiry FIFOs keep only live holds, as positions in that order list,
//! sorted by TTL, empty ones dropped; allowances are derived from the orders on decode. The
//! state machine in `shard.rs` does not depend on it.
//!
//! Layout (big-endian): `now_ms u64`, then `count u64` and that many SKUs (`SKU_STATE_LEN`
//! bytes each), `count u64` and that many orders (`ORDER_STATE_LEN` bytes each), `count u64`
//! and that many expiry FIFOs (`ttl u64`, `count u64`, positions `u32`).

use rustc_hash::FxHashMap;

use super::{Allowance, OrderRecord, Shard, SkuState};
use crate::slot_index::{self, MAX_POSITION, Probe};
use crate::types::{OrderId, OrderStatus, SkuConfig, SkuId, UserId};

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

    /// Refuses `key` unless it is above `previous` (keys are stored strictly ascending, so this
    /// also refuses a repeated one), then makes it the previous key. `what` names the item.
    fn ascending<K: Copy + PartialOrd>(
        &self,
        previous: &mut Option<K>,
        key: K,
        what: impl FnOnce() -> String,
    ) -> Result<(), StateDecodeError> {
        if previous.is_some_and(|previous| previous >= key) {
            return self.fail(format!("{} is out of order", what()));
        }
        *previous = Some(key);
        Ok(())
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

/// One order as a snapshot holds it, before it is placed in the shard.
struct DecodedOrder {
    order_id: OrderId,
    user_id: UserId,
    sku_id: SkuId,
    qty: u32,
    status: OrderStatus,
    expires_at_ms: u64,
}

/// What the orders of a snapshot add up to, for checking the SKUs' counters and the expiry
/// FIFOs against them.
#[derive(Default)]
struct OrderTotals {
    held_by_sku: FxHashMap<SkuId, u64>,
    sold_by_sku: FxHashMap<SkuId, u64>,
    held_orders: usize,
}

impl Shard {
    /// Appends the canonical encoding of this shard's state to `out` (see the module's doc).
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        let fifos = self.live_expiry_fifos();
        let queued: usize = fifos.iter().map(|(_, live)| live.len()).sum();
        out.reserve(
            32 + self.skus.len() * SKU_STATE_LEN
                + self.orders.len() * ORDER_STATE_LEN
                + fifos.len() * 16
                + queued * 4,
        );
        out.extend_from_slice(&self.now_ms.to_be_bytes());
        let mut skus: Vec<(&SkuId, &SkuState)> = self.skus.iter().collect();
        skus.sort_unstable_by_key(|(id, _)| **id);
        out.extend_from_slice(&(skus.len() as u64).to_be_bytes());
        for (_, sku) in skus {
            encode_sku(sku, out);
        }
        out.extend_from_slice(&(self.orders.len() as u64).to_be_bytes());
        for order in &self.orders {
            encode_order(order, out);
        }
        out.extend_from_slice(&(fifos.len() as u64).to_be_bytes());
        for (ttl, positions) in fifos {
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(positions.len() as u64).to_be_bytes());
            for position in positions {
                out.extend_from_slice(&position.to_be_bytes());
            }
        }
    }

    /// The expiry FIFOs with only their live holds, sorted by TTL, empty ones dropped.
    fn live_expiry_fifos(&self) -> Vec<(u64, Vec<u32>)> {
        let mut fifos: Vec<(u64, Vec<u32>)> = self
            .expiry_queue
            .by_ttl
            .iter()
            .map(|fifo| {
                let live = fifo
                    .positions
                    .iter()
                    .copied()
                    .filter(|&position| self.orders[position as usize].status == OrderStatus::Held)
                    .collect();
                (fifo.ttl_ms, live)
            })
            .filter(|(_, live): &(u64, Vec<u32>)| !live.is_empty())
            .collect();
        fifos.sort_unstable_by_key(|(ttl, _)| *ttl);
        fifos
    }

    /// Rebuilds a shard from [`Shard::encode_snapshot`]'s bytes, with room for at least
    /// `orders_capacity` orders. Checks what a corrupt or hand-made state could get wrong: field
    /// values, key order, repeated ids, stock conservation, per-user limits, and that every held
    /// order has exactly one expiry entry. Never panics on any input.
    pub fn decode_snapshot(
        bytes: &[u8],
        orders_capacity: usize,
    ) -> Result<Shard, StateDecodeError> {
        let mut r = StateReader { bytes, pos: 0 };
        let now_ms = r.u64()?;
        let skus = decode_skus(&mut r)?;
        let order_count = r.count(ORDER_STATE_LEN)?;
        if order_count > MAX_POSITION as usize + 1 {
            return r.fail(format!(
                "{order_count} orders are more than a shard can hold"
            ));
        }
        let mut shard = Shard::with_capacity(orders_capacity.max(order_count));
        let mut totals = OrderTotals::default();
        for position in 0..order_count as u32 {
            let order = decode_order(&mut r)?;
            totals.count(&r, &order, &skus, now_ms)?;
            shard.place_decoded_order(&r, order, position, &skus)?;
        }
        totals.check_sku_counters(&r, &skus)?;
        shard.decode_expiry_fifos(&mut r, totals.held_orders)?;
        if r.pos != bytes.len() {
            return r.fail(format!(
                "{} bytes left after the state",
                bytes.len() - r.pos
            ));
        }
        shard.skus = skus;
        shard.now_ms = now_ms;
        Ok(shard)
    }

    /// Appends a decoded order at `position`, with its index slot and its user's allowance
    /// (made in the order the orders were, as the original shard made them); refuses a repeated
    /// id and units over the user's limit.
    fn place_decoded_order(
        &mut self,
        r: &StateReader<'_>,
        order: DecodedOrder,
        position: u32,
        skus: &FxHashMap<SkuId, SkuState>,
    ) -> Result<(), StateDecodeError> {
        let DecodedOrder {
            order_id,
            user_id,
            sku_id,
            qty,
            status,
            expires_at_ms,
        } = order;
        let orders = &self.orders;
        let order_slot = match self
            .order_index
            .probe(slot_index::hash_u64(self.hash_key, order_id), |at| {
                orders[at as usize].order_id == order_id
            }) {
            Probe::Found(_) => return r.fail(format!("order {order_id} appears twice")),
            Probe::Vacant(slot) => slot,
        };
        let allowances = &self.allowances;
        let allowance = match self.allowance_index.probe(
            slot_index::hash_pair(self.hash_key, user_id, sku_id),
            |at| {
                let allowance = &allowances[at as usize];
                allowance.user_id == user_id && allowance.sku_id == sku_id
            },
        ) {
            Probe::Found(at) => at,
            Probe::Vacant(slot) => {
                let at = self.allowances.len() as u32;
                self.allowances.push(Allowance {
                    user_id,
                    sku_id,
                    units: 0,
                });
                self.allowance_index.fill(slot, at);
                at
            }
        };
        if matches!(status, OrderStatus::Held | OrderStatus::Paid) {
            let sku = &skus[&sku_id];
            let units = &mut self.allowances[allowance as usize].units;
            *units = units.saturating_add(qty);
            if *units > sku.config.per_user_limit || *units > sku.max_user_units {
                return r.fail(format!(
                    "user {user_id} has {units} units of sku {sku_id}, over its limit"
                ));
            }
        }
        self.orders.push(OrderRecord {
            order_id,
            user_id,
            expires_at_ms,
            sku_id,
            qty,
            allowance,
            status,
        });
        self.order_index.fill(order_slot, position);
        Ok(())
    }

    /// Reads the expiry FIFOs into the shard's queue: sorted by TTL, none empty, each entry a
    /// live hold queued once, in expiry order, and as many entries as `held_orders`.
    fn decode_expiry_fifos(
        &mut self,
        r: &mut StateReader<'_>,
        held_orders: usize,
    ) -> Result<(), StateDecodeError> {
        let fifo_count = r.count(16)?;
        let mut queued = vec![false; self.orders.len()];
        let mut queued_count = 0usize;
        let mut previous_ttl: Option<u64> = None;
        for _ in 0..fifo_count {
            let ttl = r.u64()?;
            r.ascending(&mut previous_ttl, ttl, || {
                format!("expiry FIFO of ttl {ttl}")
            })?;
            let entries = r.count(4)?;
            if entries == 0 {
                return r.fail(format!("expiry FIFO of ttl {ttl} is empty"));
            }
            let queue = self.expiry_queue.fifo(ttl);
            queue.positions.reserve(entries);
            let mut previous_expiry = 0u64;
            for _ in 0..entries {
                let position = r.u32()?;
                let Some(order) = self.orders.get(position as usize) else {
                    return r.fail(format!("expiry entry {position} names no order"));
                };
                if order.status != OrderStatus::Held || queued[position as usize] {
                    return r.fail(format!(
                        "expiry entry of order {} is not a live hold or is repeated",
                        order.order_id
                    ));
                }
                if order.expires_at_ms < previous_expiry {
                    return r.fail(format!("expiry FIFO of ttl {ttl} is not sorted"));
                }
                previous_expiry = order.expires_at_ms;
                queued[position as usize] = true;
                queued_count += 1;
                queue.positions.push_back(position);
                queue.last_expires_at_ms = previous_expiry;
            }
        }
        if queued_count != held_orders {
            return r.fail(format!(
                "{held_orders} held orders but {queued_count} expiry entries"
            ));
        }
        Ok(())
    }
}

fn encode_sku(sku: &SkuState, out: &mut Vec<u8>) {
    let c = &sku.config;
    out.extend_from_slice(&c.sku_id.to_be_bytes());
    out.extend_from_slice(&c.stock_total.to_be_bytes());
    out.extend_from_slice(&c.per_user_limit.to_be_bytes());
    out.extend_from_slice(&c.hold_ttl_ms.to_be_bytes());
    out.extend_from_slice(&c.price_cents.to_be_bytes());
    let flags = u8::from(c.sale_start_ms.is_some()) | (u8::from(c.sale_end_ms.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&c.sale_start_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&c.sale_end_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&sku.available.to_be_bytes());
    out.extend_from_slice(&sku.held.to_be_bytes());
    out.extend_from_slice(&sku.sold.to_be_bytes());
    out.extend_from_slice(&sku.max_user_units.to_be_bytes());
}

fn encode_order(order: &OrderRecord, out: &mut Vec<u8>) {
    let mut encoded = [0u8; ORDER_STATE_LEN];
    encoded[0..8].copy_from_slice(&order.order_id.to_be_bytes());
    encoded[8..16].copy_from_slice(&order.user_id.to_be_bytes());
    encoded[16..20].copy_from_slice(&order.sku_id.to_be_bytes());
    encoded[20..24].copy_from_slice(&order.qty.to_be_bytes());
    encoded[24] = order.status as u8;
    encoded[25..33].copy_from_slice(&order.expires_at_ms.to_be_bytes());
    out.extend_from_slice(&encoded);
}

/// Reads the SKUs: in ascending id order, each valid and conserving its stock.
fn decode_skus(r: &mut StateReader<'_>) -> Result<FxHashMap<SkuId, SkuState>, StateDecodeError> {
    let sku_count = r.count(SKU_STATE_LEN)?;
    let mut skus: FxHashMap<SkuId, SkuState> =
        FxHashMap::with_capacity_and_hasher(sku_count, Default::default());
    let mut previous_sku: Option<SkuId> = None;
    for _ in 0..sku_count {
        let sku_id = r.u32()?;
        r.ascending(&mut previous_sku, sku_id, || format!("sku {sku_id}"))?;
        let sku = decode_sku(r, sku_id)?;
        skus.insert(sku_id, sku);
    }
    Ok(skus)
}

/// Reads one SKU after its id: its configuration (validated) and its counters (conserving).
fn decode_sku(r: &mut StateReader<'_>, sku_id: SkuId) -> Result<SkuState, StateDecodeError> {
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
    Ok(SkuState {
        config,
        available,
        held,
        sold,
        max_user_units,
        availability_dirty: false,
    })
}

/// Reads one order's fields; only the status byte is checked here.
fn decode_order(r: &mut StateReader<'_>) -> Result<DecodedOrder, StateDecodeError> {
    let order_id = r.u64()?;
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
    Ok(DecodedOrder {
        order_id,
        user_id,
        sku_id,
        qty,
        status,
        expires_at_ms,
    })
}

impl OrderTotals {
    /// Adds `order` to the totals, refusing an unknown SKU, a quantity of 0 and a hold past its
    /// expiry.
    fn count(
        &mut self,
        r: &StateReader<'_>,
        order: &DecodedOrder,
        skus: &FxHashMap<SkuId, SkuState>,
        now_ms: u64,
    ) -> Result<(), StateDecodeError> {
        let DecodedOrder {
            order_id,
            sku_id,
            qty,
            ..
        } = *order;
        if !skus.contains_key(&sku_id) {
            return r.fail(format!("order {order_id} names unknown sku {sku_id}"));
        }
        if qty == 0 {
            return r.fail(format!("order {order_id} has quantity 0"));
        }
        match order.status {
            OrderStatus::Held => {
                if order.expires_at_ms <= now_ms {
                    return r.fail(format!("order {order_id} is held past its expiry"));
                }
                self.held_orders += 1;
                *self.held_by_sku.entry(sku_id).or_default() += u64::from(qty);
            }
            OrderStatus::Paid => *self.sold_by_sku.entry(sku_id).or_default() += u64::from(qty),
            OrderStatus::Cancelled | OrderStatus::Expired => {}
        }
        Ok(())
    }

    /// Every SKU's held and sold counters equal what its orders say.
    fn check_sku_counters(
        &self,
        r: &StateReader<'_>,
        skus: &FxHashMap<SkuId, SkuState>,
    ) -> Result<(), StateDecodeError> {
        for (sku_id, sku) in skus {
            let held = self.held_by_sku.get(sku_id).copied().unwrap_or(0);
            let sold = self.sold_by_sku.get(sku_id).copied().unwrap_or(0);
            if sku.held != held || sku.sold != sold {
                return r.fail(format!(
                    "sku {sku_id}: counters held={} sold={} but orders say held={held} sold={sold}",
                    sku.held, sku.sold
                ));
            }
        }
        Ok(())
    }
}
