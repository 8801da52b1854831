//! `SlotIndex`: an open-addressing hash index from keys to positions in a dense, append-only
//! array that its owner keeps (the shard's orders and per-user allowances). It exists for one
//! reason the general-purpose maps cannot serve: the shard's tables outgrow the CPU caches, and
//! the shard hides that latency by prefetching the slot a command will probe several commands
//! before it applies it (`prefetch`), which needs the slot's address from the key's hash alone.
//!
//! A slot is 8 bytes: the key's 32-bit hash (never 0) and its position + 1 (0: empty), so a probe
//! compares hashes without touching the array and reads a key only when the hashes match. Slots
//! come in buckets of eight, one cache line, compared all at once (as hashbrown's groups); a full
//! bucket overflows into the next. At most half the slots are used, so a probe almost always
//! reads one line. The home bucket is the hash scaled to the table (`hash * buckets >> 32`), so
//! growing doubles the table without reading the keys. Entries are never removed (orders and
//! allowances live as long as the shard).
//!
//! It owns the slots and the keyed hash of 64-bit keys ([`hash_u64`], [`hash_pair`]); it must
//! not know what the keys are (orders, users) or hold the array they index.

/// The table never grows past half full.
const MAX_LOAD_NUMERATOR: usize = 1;
const MAX_LOAD_DENOMINATOR: usize = 2;
const SLOTS_PER_BUCKET: usize = 8;
const MIN_BUCKETS: usize = 2;

/// The largest position an index can hold (positions are stored as `u32` + 1).
pub const MAX_POSITION: u32 = u32::MAX - 1;

/// Eight slots in one cache line: their keys' hashes and positions + 1, `0` when empty (hashes
/// are never 0). Slots fill from the front and are never emptied, so the empty ones are always
/// at the back. Hashes and positions are kept apart so the eight hashes compare at once.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    hashes: [u32; SLOTS_PER_BUCKET],
    positions: [u32; SLOTS_PER_BUCKET],
}

const EMPTY_BUCKET: Bucket = Bucket {
    hashes: [0; SLOTS_PER_BUCKET],
    positions: [0; SLOTS_PER_BUCKET],
};

impl Bucket {
    /// Bit `i` set for each slot `i` holding `hash`, and for each slot in use; computed for all
    /// eight slots at once with SSE2 compares (baseline on x86-64), without a branch per slot.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn masks(&self, hash: u32) -> (u32, u32) {
        use std::arch::x86_64::{
            __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_load_si128, _mm_movemask_ps,
            _mm_set1_epi32, _mm_setzero_si128,
        };
        // SAFETY: `hashes` is the first field of a 64-byte-aligned `repr(C)` bucket, so both
        // 16-byte halves are in bounds and 16-byte aligned, as `_mm_load_si128` needs; the
        // other intrinsics only need SSE2, which every x86-64 CPU has and this target enables.
        // Measured against a plain loop over the eight slots in docs/benchmarks.md.
        let (matching, empty) = unsafe {
            let low = _mm_load_si128(self.hashes.as_ptr().cast::<__m128i>());
            let high = _mm_load_si128(self.hashes.as_ptr().add(4).cast::<__m128i>());
            let bits = |lanes: __m128i| _mm_movemask_ps(_mm_castsi128_ps(lanes)) as u32;
            let wanted = _mm_set1_epi32(hash as i32);
            let zero = _mm_setzero_si128();
            (
                bits(_mm_cmpeq_epi32(low, wanted)) | (bits(_mm_cmpeq_epi32(high, wanted)) << 4),
                bits(_mm_cmpeq_epi32(low, zero)) | (bits(_mm_cmpeq_epi32(high, zero)) << 4),
            )
        };
        (matching, !empty & ((1 << SLOTS_PER_BUCKET) - 1))
    }

    /// Bit `i` set for each slot `i` holding `hash`, and for each slot in use.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    fn masks(&self, hash: u32) -> (u32, u32) {
        let mut matching = 0u32;
        let mut used = 0u32;
        for (index, &slot_hash) in self.hashes.iter().enumerate() {
            matching |= u32::from(slot_hash == hash) << index;
            used |= u32::from(slot_hash != 0) << index;
        }
        (matching, used)
    }
}

#[derive(Clone, Debug)]
pub struct SlotIndex {
    /// A power of two of them.
    buckets: Vec<Bucket>,
    len: usize,
}

/// Where a probe ended: the key's position, or the empty slot where it would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Found(u32),
    Vacant(Vacant),
}

/// An empty slot found by [`SlotIndex::probe`]; valid until the index is next changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vacant {
    bucket: usize,
    slot: usize,
    hash: u32,
}

impl Default for SlotIndex {
    fn default() -> SlotIndex {
        SlotIndex::with_capacity(0)
    }
}

impl SlotIndex {
    /// An index with room for `positions` entries before it grows. Its memory is written once
    /// here, so the pages are resident before the first entry (see `Shard::with_capacity`).
    pub fn with_capacity(positions: usize) -> SlotIndex {
        let slots = positions.saturating_mul(MAX_LOAD_DENOMINATOR) / MAX_LOAD_NUMERATOR;
        let bucket_count = slots
            .div_ceil(SLOTS_PER_BUCKET)
            .max(MIN_BUCKETS)
            .next_power_of_two();
        // Every bucket is written: `vec![..; n]` of zeros would map untouched zero pages, and
        // the opaque bucket keeps the compiler from turning these writes back into exactly that.
        let mut buckets = Vec::with_capacity(bucket_count);
        buckets.resize(bucket_count, std::hint::black_box(EMPTY_BUCKET));
        SlotIndex { buckets, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.buckets.len() as u64) >> 32) as usize
    }

    /// Asks the CPU to start loading the home bucket of `hash`; a hint with no effect on state.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        prefetch_read(self.buckets.as_ptr().wrapping_add(self.home(hash)));
    }

    /// The position of the first entry whose hash is `hash`, without checking its key: the
    /// likely position of the key, for prefetching what it points at before it is needed.
    #[inline]
    pub fn candidate(&self, hash: u32) -> Option<u32> {
        match self.probe(hash, |_| true) {
            Probe::Found(position) => Some(position),
            Probe::Vacant(_) => None,
        }
    }

    /// Looks `hash` up; `is_match(position)` says whether the key at `position` is the one
    /// sought (called only for entries whose hash matches).
    #[inline(always)]
    pub fn probe(&self, hash: u32, mut is_match: impl FnMut(u32) -> bool) -> Probe {
        debug_assert_ne!(hash, 0, "0 marks an empty slot");
        let mask = self.buckets.len() - 1;
        let mut bucket = self.home(hash);
        loop {
            let slots = &self.buckets[bucket];
            let (mut matching, used) = slots.masks(hash);
            while matching != 0 {
                let position = slots.positions[matching.trailing_zeros() as usize] - 1;
                if is_match(position) {
                    return Probe::Found(position);
                }
                matching &= matching - 1;
            }
            if used != (1 << SLOTS_PER_BUCKET) - 1 {
                return Probe::Vacant(Vacant {
                    bucket,
                    slot: used.trailing_ones() as usize,
                    hash,
                });
            }
            bucket = (bucket + 1) & mask;
        }
    }

    /// Looks `hash` up, see [`SlotIndex::probe`].
    #[inline]
    pub fn find(&self, hash: u32, is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        match self.probe(hash, is_match) {
            Probe::Found(position) => Some(position),
            Probe::Vacant(_) => None,
        }
    }

    /// Fills the slot a probe found empty with `position` (at most [`MAX_POSITION`]), growing
    /// the table if that made it more than half full.
    #[inline]
    pub fn fill(&mut self, vacant: Vacant, position: u32) {
        debug_assert!(position <= MAX_POSITION);
        let bucket = &mut self.buckets[vacant.bucket];
        debug_assert_eq!(
            bucket.hashes[vacant.slot], 0,
            "a vacant slot was filled twice"
        );
        bucket.hashes[vacant.slot] = vacant.hash;
        bucket.positions[vacant.slot] = position + 1;
        self.len += 1;
        if self.len * MAX_LOAD_DENOMINATOR
            > self.buckets.len() * SLOTS_PER_BUCKET * MAX_LOAD_NUMERATOR
        {
            self.grow();
        }
    }

    /// Doubles the table and re-places every entry from its stored hash (no key is read).
    #[cold]
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets = vec![EMPTY_BUCKET; old.len() * 2];
        let mask = self.buckets.len() - 1;
        for old_bucket in &old {
            for (&hash, &position) in old_bucket.hashes.iter().zip(&old_bucket.positions) {
                if hash == 0 {
                    break;
                }
                let mut bucket = self.home(hash);
                loop {
                    let (_, used) = self.buckets[bucket].masks(hash);
                    if used != (1 << SLOTS_PER_BUCKET) - 1 {
                        let slot = used.trailing_ones() as usize;
                        self.buckets[bucket].hashes[slot] = hash;
                        self.buckets[bucket].positions[slot] = position;
                        break;
                    }
                    bucket = (bucket + 1) & mask;
                }
            }
        }
    }
}

/// Asks the CPU to start loading the cache line at `pointer`; a hint that never faults.
#[inline]
pub fn prefetch_read<T>(pointer: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and does not read the value, whatever the
    // address. The pointer is also in bounds (a home slot is always `< slots.len()`).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(pointer.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pointer;
}

/// The murmur3 finaliser: a bijective mix of 64 bits.
#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A 32-bit hash of a 64-bit key, never 0, keyed by `hash_key`. Keys (order and user ids) are
/// chosen by clients: with an unkeyed hash a client could pick thousands of ids for one bucket
/// and make every probe there walk them all. A secret key per shard closes that; it changes
/// where entries sit, never what the shard answers.
#[inline]
pub fn hash_u64(hash_key: u64, key: u64) -> u32 {
    // Never 0: 0 marks an empty slot.
    (mix64(key ^ hash_key) >> 32) as u32 | 1
}

/// A 32-bit hash of a (64-bit, 32-bit) key pair, never 0, keyed as [`hash_u64`]. The first
/// half is mixed with the key before the second joins it, so no choice of pairs collides
/// without knowing the key.
#[inline]
pub fn hash_pair(hash_key: u64, high: u64, low: u32) -> u32 {
    (mix64(mix64(high ^ hash_key) ^ u64::from(low)) >> 32) as u32 | 1
}

/// A fresh secret hash key, from the standard library's per-process random source.
pub fn random_hash_key() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_key(index: &SlotIndex, keys: &[u64], key: u64) -> Option<u32> {
        index.find(hash_u64(1, key), |position| keys[position as usize] == key)
    }

    fn insert_key(index: &mut SlotIndex, keys: &mut Vec<u64>, key: u64) -> bool {
        let probe = index.probe(hash_u64(1, key), |position| keys[position as usize] == key);
        match probe {
            Probe::Found(_) => false,
            Probe::Vacant(vacant) => {
                keys.push(key);
                index.fill(vacant, (keys.len() - 1) as u32);
                true
            }
        }
    }

    #[test]
    fn finds_every_key_inserted_across_growth_and_no_other() {
        let mut index = SlotIndex::with_capacity(0);
        let mut keys = Vec::new();
        for key in (0..50_000u64).map(|i| i.wrapping_mul(0x1234_5678_9abc_def1)) {
            assert!(insert_key(&mut index, &mut keys, key));
        }
        assert_eq!(index.len(), 50_000);
        for (position, key) in keys.clone().into_iter().enumerate() {
            assert_eq!(find_key(&index, &keys, key), Some(position as u32));
            assert!(
                !insert_key(&mut index, &mut keys, key),
                "a duplicate was inserted"
            );
        }
        for absent in 0..1_000u64 {
            let key = absent.wrapping_mul(0x1234_5678_9abc_def1) ^ 1;
            if !keys.contains(&key) {
                assert_eq!(find_key(&index, &keys, key), None);
            }
        }
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_key() {
        // Every key has the same hash: the index must still find each by comparing keys.
        let keys: Vec<u64> = (100..200).collect();
        let mut index = SlotIndex::with_capacity(4);
        for position in 0..keys.len() as u32 {
            match index.probe(7, |at| keys[at as usize] == keys[position as usize]) {
                Probe::Found(_) => panic!("found before insert"),
                Probe::Vacant(vacant) => index.fill(vacant, position),
            }
        }
        for (position, &key) in keys.iter().enumerate() {
            assert_eq!(
                index.find(7, |at| keys[at as usize] == key),
                Some(position as u32)
            );
        }
        assert_eq!(index.find(7, |at| keys[at as usize] == 5), None);
    }

    #[test]
    fn ids_chosen_to_share_a_bucket_under_one_key_spread_under_another() {
        // What a hostile client could do against a known key: 200 ids whose hashes all have the
        // same top 10 bits (one home bucket of 1,024). Under another key they scatter.
        let top_bits = |hash: u32| hash >> 22;
        let crafted: Vec<u64> = (0u64..)
            .filter(|&id| top_bits(hash_u64(0, id)) == 0)
            .take(200)
            .collect();
        let mut homes: Vec<u32> = crafted
            .iter()
            .map(|&id| top_bits(hash_u64(0x1234_5678, id)))
            .collect();
        homes.sort_unstable();
        homes.dedup();
        assert!(homes.len() > 150, "only {} distinct homes", homes.len());
        let mut pair_homes: Vec<u32> = crafted
            .iter()
            .map(|&user| top_bits(hash_pair(0x1234_5678, user, 7)))
            .collect();
        pair_homes.sort_unstable();
        pair_homes.dedup();
        assert!(
            pair_homes.len() > 150,
            "only {} distinct homes",
            pair_homes.len()
        );
    }

    #[test]
    fn stays_at_most_half_full() {
        let mut index = SlotIndex::with_capacity(10);
        let mut keys = Vec::new();
        for key in 0..10_000u64 {
            insert_key(&mut index, &mut keys, key);
            assert!(index.len() * 2 <= index.buckets.len() * SLOTS_PER_BUCKET);
        }
    }

    #[test]
    fn a_full_bucket_overflows_into_the_next_and_wraps_around() {
        // Hashes near u32::MAX all have the last bucket as home: the overflow must wrap to
        // bucket 0 and still be found.
        let keys: Vec<u64> = (0..12).collect();
        let mut index = SlotIndex::with_capacity(12);
        let hash_of = |key: u64| u32::MAX - key as u32;
        for (position, &key) in keys.iter().enumerate() {
            match index.probe(hash_of(key), |at| keys[at as usize] == key) {
                Probe::Found(_) => panic!("found before insert"),
                Probe::Vacant(vacant) => index.fill(vacant, position as u32),
            }
        }
        for (position, &key) in keys.iter().enumerate() {
            assert_eq!(
                index.find(hash_of(key), |at| keys[at as usize] == key),
                Some(position as u32)
            );
        }
    }
}
