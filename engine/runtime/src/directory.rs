//! The order directory: which shard holds — or may create — each order id, as *claims* made
//! when a command is routed (on the submitter's thread), not when the order is published. A
//! reserve claims its id for its SKU's shard before it is sent there, so a second reserve of
//! the same id for a SKU on another shard finds the claim: `id_conflict` at once if the order
//! exists, or a wait for the first reserve's outcome if it is still on its way. A pay, cancel or
//! query follows the claim, so one sent after its reserve reaches the same shard behind it.
//!
//! A claim that is not yet committed counts the commands routed under it and not yet applied;
//! the shard thread settles each after applying it (committed if it created the order, one
//! fewer otherwise, gone at zero). A stream that waits on a claim is woken when it settles.
//!
//! This module owns the claims and the list of waiters; it decides no business rule (the shard
//! decides whether an order is created) and must not touch shards, queues or the mirror.

use std::sync::Mutex;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::types::{OrderId, SkuId};

/// One order id's claim: the SKU (hence the shard) it belongs to, and its state. 8 bytes, so
/// the directory costs what the old `order id → shard` map did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    sku_id: SkuId,
    /// `COMMITTED`, `WAITED_ON` and the pending count below them.
    state: u32,
}

const _: () = assert!(std::mem::size_of::<Claim>() == 8);

/// The order exists on the claim's shard. Final: a committed claim never changes again.
const COMMITTED: u32 = 1 << 31;
/// A stream waits for this claim to settle.
const WAITED_ON: u32 = 1 << 30;
const PENDING: u32 = WAITED_ON - 1;

impl Claim {
    fn is_committed(self) -> bool {
        self.state & COMMITTED != 0
    }

    fn pending(self) -> u32 {
        self.state & PENDING
    }
}

/// What a reserve's routing found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReserveClaim {
    /// Go to the SKU's shard; `counted` says the command holds a pending count to settle.
    Claimed { counted: bool },
    /// The order exists with a SKU on another shard: `id_conflict`.
    Conflict,
    /// Another shard's claim is still pending: wait for it to settle.
    Contested,
}

/// What a pay, cancel or query's routing found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FollowUp {
    /// Go to the shard of `sku_id`; `counted` as for [`ReserveClaim::Claimed`].
    Claimed { sku_id: SkuId, counted: bool },
    /// No order and no reserve on its way: `unknown_order`.
    Unknown,
}

/// See the module documentation. `W` is what waits (a stream's state).
pub(crate) struct Directory<W> {
    claims: DashMap<OrderId, Claim, FxBuildHasher>,
    waiters: Mutex<FxHashMap<OrderId, Vec<W>>>,
}

impl<W> Directory<W> {
    /// A directory with room for `capacity` orders, its memory touched now (as the shards
    /// touch theirs) so a sale does not pay page faults or a table growth mid-peak.
    pub fn with_capacity(capacity: usize) -> Directory<W> {
        let claims = DashMap::with_capacity_and_hasher(capacity, FxBuildHasher);
        // 90%: the capacity is split over the map's internal shards by hash, and no internal
        // shard may be pushed past its share (that would grow it, the very thing avoided here).
        for order_id in 0..(claims.capacity() as u64) * 9 / 10 {
            claims.insert(
                order_id,
                Claim {
                    sku_id: 0,
                    state: 0,
                },
            );
        }
        claims.clear();
        Directory {
            claims,
            waiters: Mutex::new(FxHashMap::default()),
        }
    }

    /// Records an order that exists (a recovered shard's).
    pub fn insert_committed(&self, order_id: OrderId, sku_id: SkuId) {
        self.claims.insert(
            order_id,
            Claim {
                sku_id,
                state: COMMITTED,
            },
        );
    }

    /// Whether any claim names `order_id` (a reserve of it would not be a new order).
    pub fn is_claimed(&self, order_id: OrderId) -> bool {
        self.claims.contains_key(&order_id)
    }

    /// Claims `order_id` for a reserve of `sku_id`, whose shard is `shard`; `shard_of` maps a
    /// SKU to its shard.
    pub fn claim_for_reserve(
        &self,
        order_id: OrderId,
        sku_id: SkuId,
        shard: usize,
        shard_of: impl Fn(SkuId) -> usize,
    ) -> ReserveClaim {
        match self.claims.entry(order_id) {
            Entry::Vacant(vacant) => {
                vacant.insert(Claim { sku_id, state: 1 });
                ReserveClaim::Claimed { counted: true }
            }
            Entry::Occupied(mut occupied) => {
                let claim = occupied.get_mut();
                if shard_of(claim.sku_id) == shard {
                    // Same shard: the shard decides (a repeat, `id_conflict`, or — if the
                    // pending reserve is refused — a new order).
                    if claim.is_committed() {
                        ReserveClaim::Claimed { counted: false }
                    } else {
                        assert!(claim.pending() < PENDING, "pending count overflow");
                        claim.state += 1;
                        ReserveClaim::Claimed { counted: true }
                    }
                } else if claim.is_committed() {
                    ReserveClaim::Conflict
                } else {
                    ReserveClaim::Contested
                }
            }
        }
    }

    /// Finds the shard of the order a pay, cancel or query names.
    pub fn claim_for_follow_up(&self, order_id: OrderId) -> FollowUp {
        // Most follow-ups find a committed order: a shared read suffices for them.
        match self.claims.get(&order_id) {
            None => return FollowUp::Unknown,
            Some(claim) if claim.is_committed() => {
                return FollowUp::Claimed {
                    sku_id: claim.sku_id,
                    counted: false,
                };
            }
            Some(_) => {}
        }
        match self.claims.get_mut(&order_id) {
            None => FollowUp::Unknown,
            Some(mut claim) => {
                if claim.is_committed() {
                    FollowUp::Claimed {
                        sku_id: claim.sku_id,
                        counted: false,
                    }
                } else {
                    assert!(claim.pending() < PENDING, "pending count overflow");
                    claim.state += 1;
                    FollowUp::Claimed {
                        sku_id: claim.sku_id,
                        counted: true,
                    }
                }
            }
        }
    }

    /// Registers `waiter` to be woken when the claim on `order_id` settles, if it is still
    /// pending on a shard other than `shard`. False when it no longer is: route again.
    pub fn wait(
        &self,
        order_id: OrderId,
        shard: usize,
        shard_of: impl Fn(SkuId) -> usize,
        waiter: W,
    ) -> bool {
        let Some(mut claim) = self.claims.get_mut(&order_id) else {
            return false;
        };
        if claim.is_committed() || shard_of(claim.sku_id) == shard {
            return false;
        }
        claim.state |= WAITED_ON;
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(order_id)
            .or_default()
            .push(waiter);
        true
    }

    /// Settles one command routed to `shard` that held a pending count on `order_id`: the
    /// claim commits if the order now exists (`created` names its SKU), else counts one fewer
    /// and goes at zero. Waiters of a claim that settled are appended to `woken`.
    pub fn settle(
        &self,
        order_id: OrderId,
        created: Option<SkuId>,
        shard: usize,
        shard_of: impl Fn(SkuId) -> usize,
        woken: &mut Vec<W>,
    ) {
        // `remove_if_mut`, not `entry`: an entry reserves room for an insert, which can rehash
        // the whole table under its lock; settling never inserts.
        let mut found = false;
        let mut settled = false;
        let mut waited_on = false;
        self.claims.remove_if_mut(&order_id, |_, claim| {
            found = true;
            if claim.is_committed() {
                return false;
            }
            assert_eq!(
                shard_of(claim.sku_id),
                shard,
                "order {order_id}: settled by a shard that does not hold its claim"
            );
            assert!(
                claim.pending() > 0,
                "order {order_id}: pending count underflow"
            );
            waited_on = claim.state & WAITED_ON != 0;
            match created {
                Some(sku_id) => {
                    assert_eq!(
                        shard_of(sku_id),
                        shard,
                        "order {order_id} created elsewhere"
                    );
                    *claim = Claim {
                        sku_id,
                        state: COMMITTED,
                    };
                    settled = true;
                    false
                }
                None if claim.pending() == 1 => {
                    settled = true;
                    true
                }
                None => {
                    claim.state -= 1;
                    false
                }
            }
        });
        assert!(
            found,
            "order {order_id}: a counted command has no claim to settle"
        );
        if settled && waited_on {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            woken.extend(waiters.remove(&order_id).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_of(sku_id: SkuId) -> usize {
        sku_id as usize % 2
    }

    #[test]
    fn a_claim_commits_conflicts_elsewhere_and_follows_up_on_its_shard() {
        let directory: Directory<u8> = Directory::with_capacity(16);
        assert_eq!(directory.claim_for_follow_up(7), FollowUp::Unknown);
        assert_eq!(
            directory.claim_for_reserve(7, 2, 0, shard_of),
            ReserveClaim::Claimed { counted: true }
        );
        assert_eq!(
            directory.claim_for_reserve(7, 1, 1, shard_of),
            ReserveClaim::Contested
        );
        assert!(directory.wait(7, 1, shard_of, 42));
        assert_eq!(
            directory.claim_for_follow_up(7),
            FollowUp::Claimed {
                sku_id: 2,
                counted: true
            }
        );
        let mut woken = Vec::new();
        directory.settle(7, Some(2), 0, shard_of, &mut woken);
        assert_eq!(woken, [42]);
        directory.settle(7, None, 0, shard_of, &mut woken);
        assert_eq!(
            directory.claim_for_reserve(7, 1, 1, shard_of),
            ReserveClaim::Conflict
        );
        assert_eq!(
            directory.claim_for_follow_up(7),
            FollowUp::Claimed {
                sku_id: 2,
                counted: false
            }
        );
    }

    #[test]
    fn a_refused_claim_goes_when_its_last_count_settles() {
        let directory: Directory<u8> = Directory::with_capacity(16);
        directory.claim_for_reserve(9, 2, 0, shard_of);
        directory.claim_for_follow_up(9);
        assert!(directory.wait(9, 1, shard_of, 1));
        let mut woken = Vec::new();
        directory.settle(9, None, 0, shard_of, &mut woken);
        assert!(woken.is_empty() && directory.is_claimed(9));
        directory.settle(9, None, 0, shard_of, &mut woken);
        assert_eq!(woken, [1]);
        assert!(!directory.is_claimed(9));
        assert!(
            !directory.wait(9, 1, shard_of, 2),
            "nothing left to wait for"
        );
    }
}
