//! The availability mirror: a fixed-capacity, insert-only, lock-free table of `sku_id →
//! available units`, written by the shard threads after each batch and read by every submitter
//! to answer `SoldOut` without entering a shard.
//!
//! It owns nothing authoritative: the shards own stock, and the mirror is a possibly stale copy.
//! It must never be consulted to *grant* stock, only to refuse it early. Consistency it gives:
//! a value is at most one shard batch old. A SKU whose last units were taken reads 0 until a
//! cancel, an expiry or a restock on its shard is published; in that window a reserve can be
//! answered `SoldOut` although a unit has just come back (the same answer it would have had a
//! moment earlier). A stale non-zero value only sends the request into the shard, which decides.
//!
//! Each SKU is written by exactly one shard (its owner), so values are single-writer; only the
//! claim of a new slot is contended, and that is a compare-and-swap.
//!
//! To keep a connection's requests in order (docs/protocol.md §2.2) the early `SoldOut` must
//! not overtake a request sent before it that can return units: each slot also counts the
//! commands routed to its SKU that may raise its availability (cancel, restock, upsert) and
//! are not yet published. While any is in flight, [`AvailabilityMirror::settled_available`]
//! answers `None` and the reserve goes to the shard, which decides.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::types::SkuId;

struct Slot {
    /// 0 while the slot is free; `sku_id + 1` once claimed. Never changes after the claim.
    key: AtomicU64,
    available: AtomicU64,
    /// Commands in flight that may raise `available` (see the module documentation).
    raising: AtomicU32,
}

/// See the module documentation.
pub struct AvailabilityMirror {
    slots: Box<[Slot]>,
    mask: usize,
    /// Set when a SKU could not be placed because the table is full: the fast path then simply
    /// does not apply to that SKU.
    overflowed: AtomicBool,
}

impl AvailabilityMirror {
    /// A mirror for up to `capacity_skus` SKUs (the table is twice that, rounded up to a power
    /// of two, so probes stay short).
    pub fn new(capacity_skus: usize) -> AvailabilityMirror {
        let slot_count = capacity_skus.max(1).saturating_mul(2).next_power_of_two();
        let slots = (0..slot_count)
            .map(|_| Slot {
                key: AtomicU64::new(0),
                available: AtomicU64::new(0),
                raising: AtomicU32::new(0),
            })
            .collect();
        AvailabilityMirror {
            slots,
            mask: slot_count - 1,
            overflowed: AtomicBool::new(false),
        }
    }

    fn home(&self, sku_id: SkuId) -> usize {
        // Fibonacci hashing: consecutive ids land far apart.
        (u64::from(sku_id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// Records `available` for `sku_id`. Called only by the shard that owns the SKU.
    pub fn publish(&self, sku_id: SkuId, available: u64) {
        let key = u64::from(sku_id) + 1;
        let mut index = self.home(sku_id);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[index];
            let current = slot.key.load(Ordering::Acquire);
            let claimed = current == key
                || (current == 0
                    && match slot
                        .key
                        .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => true,
                        Err(other) => other == key,
                    });
            if claimed {
                slot.available.store(available, Ordering::Release);
                return;
            }
            index = (index + 1) & self.mask;
        }
        self.overflowed.store(true, Ordering::Relaxed);
    }

    /// The slot of `sku_id`, if it was ever published.
    #[inline]
    fn slot(&self, sku_id: SkuId) -> Option<&Slot> {
        let key = u64::from(sku_id) + 1;
        let mut index = self.home(sku_id);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[index];
            match slot.key.load(Ordering::Acquire) {
                0 => return None,
                current if current == key => return Some(slot),
                _ => index = (index + 1) & self.mask,
            }
        }
        None
    }

    /// The last published availability of `sku_id`, or `None` if it was never published.
    #[inline]
    pub fn available(&self, sku_id: SkuId) -> Option<u64> {
        self.slot(sku_id)
            .map(|slot| slot.available.load(Ordering::Acquire))
    }

    /// The last published availability of `sku_id` if no command that may raise it is in
    /// flight; `None` otherwise (or if it was never published).
    #[inline]
    pub fn settled_available(&self, sku_id: SkuId) -> Option<u64> {
        let slot = self.slot(sku_id)?;
        if slot.raising.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(slot.available.load(Ordering::Acquire))
    }

    /// Counts a command that may raise `sku_id`'s availability as in flight. False if the SKU
    /// has no slot (there is then no early answer to hold back, and nothing to end).
    pub fn begin_raise(&self, sku_id: SkuId) -> bool {
        match self.slot(sku_id) {
            Some(slot) => {
                slot.raising.fetch_add(1, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    /// Ends a [`AvailabilityMirror::begin_raise`] that returned true, after its effect was
    /// published.
    pub fn end_raise(&self, sku_id: SkuId) {
        let slot = self
            .slot(sku_id)
            .expect("a raise was begun on a published slot");
        let before = slot.raising.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "sku {sku_id}: raise count underflow");
    }

    /// Every SKU published so far with its availability, sorted by id.
    pub fn entries(&self) -> Vec<(SkuId, u64)> {
        let mut entries: Vec<(SkuId, u64)> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let key = slot.key.load(Ordering::Acquire);
                let sku_id = SkuId::try_from(key.checked_sub(1)?).ok()?;
                Some((sku_id, slot.available.load(Ordering::Acquire)))
            })
            .collect();
        entries.sort_unstable();
        entries
    }

    /// Whether some SKU did not fit (the fast path is then off for it; nothing else changes).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_reads_back() {
        let mirror = AvailabilityMirror::new(4);
        assert_eq!(mirror.available(7), None);
        mirror.publish(7, 10);
        mirror.publish(0, 3);
        mirror.publish(u32::MAX, 1);
        assert_eq!(mirror.available(7), Some(10));
        mirror.publish(7, 0);
        assert_eq!(mirror.available(7), Some(0));
        assert_eq!(mirror.available(0), Some(3));
        assert_eq!(mirror.available(u32::MAX), Some(1));
        assert_eq!(mirror.entries(), vec![(0, 3), (7, 0), (u32::MAX, 1)]);
        assert!(!mirror.overflowed());
    }

    #[test]
    fn a_raise_in_flight_holds_the_settled_value_back() {
        let mirror = AvailabilityMirror::new(4);
        assert!(!mirror.begin_raise(5), "no slot yet");
        mirror.publish(5, 0);
        assert_eq!(mirror.settled_available(5), Some(0));
        assert!(mirror.begin_raise(5));
        assert_eq!(mirror.settled_available(5), None);
        mirror.publish(5, 1);
        mirror.end_raise(5);
        assert_eq!(mirror.settled_available(5), Some(1));
    }

    #[test]
    fn a_full_table_overflows_without_losing_placed_skus() {
        let mirror = AvailabilityMirror::new(1); // two slots
        mirror.publish(1, 1);
        mirror.publish(2, 2);
        mirror.publish(3, 3);
        assert!(mirror.overflowed());
        assert_eq!(mirror.available(1), Some(1));
        assert_eq!(mirror.available(2), Some(2));
        assert_eq!(mirror.available(3), None);
    }

    #[test]
    fn concurrent_claims_of_distinct_skus_all_land() {
        let mirror = std::sync::Arc::new(AvailabilityMirror::new(4096));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let mirror = mirror.clone();
                std::thread::spawn(move || {
                    for sku in (t * 1000)..(t * 1000 + 1000) {
                        mirror.publish(sku, u64::from(sku) * 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("publisher thread panicked");
        }
        for sku in 0..4000u32 {
            assert_eq!(mirror.available(sku), Some(u64::from(sku) * 2));
        }
        assert_eq!(mirror.entries().len(), 4000);
    }
}
