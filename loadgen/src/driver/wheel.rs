//! The follow-up timing wheel: pay / cancel / bot-retry requests the funnel caused, waiting
//! for their due time in one slab sized before the run, released each tick in due-time order.
//! It owns only that store; it must not know the target, the clock or the recorder.

use super::EXCHANGE_CAPACITY;
use super::schedule::{Batch, Meta, touched_vec};

/// The end of a bucket's list (or of the free list).
const NIL: u32 = u32::MAX;

/// One follow-up waiting in the wheel's slab: the request, and the next one of its bucket (or
/// the next free slot).
#[derive(Clone, Copy)]
struct Node {
    meta: Meta,
    next: u32,
}

/// A follow-up of the bucket being released, with its arrival order in the bucket (ties on the
/// due time go out in the order they came).
#[derive(Clone, Copy, Default)]
struct Due {
    meta: Meta,
    order: u64,
}

/// Follow-ups waiting for their due time, one bucket per millisecond of the run. Each bucket is
/// a list threaded through one slab of nodes sized up front, so adding is O(1) and allocates
/// nothing; the bucket that falls due is copied out once into `front` and sorted there, so each
/// tick takes exactly what is due, in due-time order.
pub(super) struct Wheel {
    nodes: Vec<Node>,
    free: u32,
    /// First and last node of each millisecond's bucket.
    heads: Vec<u32>,
    tails: Vec<u32>,
    /// The next bucket to copy into `front`; follow-ups for earlier milliseconds go straight
    /// into `front`.
    next_ms: u64,
    front: Vec<Due>,
    cursor: usize,
    front_sorted: bool,
    order: u64,
    pub(super) len: usize,
    /// Times the slab (or the bucket index) had to grow.
    pub(super) grown: u64,
}

impl Wheel {
    /// A wheel for follow-ups due within `duration_ms`, room for `capacity` of them at once,
    /// its memory written now.
    pub(super) fn new(duration_ms: u64, capacity: usize) -> Wheel {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        let buckets = duration_ms as usize + 2;
        let mut nodes = Vec::with_capacity(capacity);
        nodes.extend((1..=capacity as u32).map(|next| Node {
            meta: Meta::default(),
            next: if next as usize == capacity { NIL } else { next },
        }));
        Wheel {
            nodes,
            free: 0,
            heads: vec![NIL; buckets],
            tails: vec![NIL; buckets],
            next_ms: 0,
            front: touched_vec(EXCHANGE_CAPACITY * 16, Due::default()),
            cursor: 0,
            front_sorted: true,
            order: 0,
            len: 0,
            grown: 0,
        }
    }

    pub(super) fn push(&mut self, meta: Meta) {
        self.len += 1;
        let ms = meta.intended_ns / 1_000_000;
        if ms < self.next_ms {
            self.order += 1;
            self.front.push(Due {
                meta,
                order: self.order,
            });
            self.front_sorted = false;
            return;
        }
        let ms = ms as usize;
        if ms >= self.heads.len() {
            self.grown += 1;
            self.heads.resize(ms + 1, NIL);
            self.tails.resize(ms + 1, NIL);
        }
        let node = self.allocate(meta);
        match self.tails[ms] {
            NIL => self.heads[ms] = node,
            tail => self.nodes[tail as usize].next = node,
        }
        self.tails[ms] = node;
    }

    fn allocate(&mut self, meta: Meta) -> u32 {
        if self.free == NIL {
            self.grown += 1;
            self.nodes.push(Node { meta, next: NIL });
            return (self.nodes.len() - 1) as u32;
        }
        let node = self.free;
        let slot = &mut self.nodes[node as usize];
        self.free = slot.next;
        *slot = Node { meta, next: NIL };
        node
    }

    /// Moves what is due at or before `now_ns` into `out`, until `out` holds `max_len`;
    /// returns how many it moved.
    pub(super) fn pop_due(&mut self, now_ns: u64, out: &mut Batch, max_len: usize) -> u64 {
        let mut taken = 0u64;
        loop {
            if !self.front_sorted {
                self.front[self.cursor..].sort_unstable_by_key(|d| (d.meta.intended_ns, d.order));
                self.front_sorted = true;
            }
            while let Some(due) = self.front.get(self.cursor) {
                if due.meta.intended_ns > now_ns || out.len() >= max_len {
                    self.len -= taken as usize;
                    return taken;
                }
                out.push(due.meta);
                self.cursor += 1;
                taken += 1;
            }
            self.front.clear();
            self.cursor = 0;
            if self.next_ms * 1_000_000 > now_ns || self.next_ms as usize >= self.heads.len() {
                break;
            }
            self.take_bucket(self.next_ms as usize);
            self.next_ms += 1;
        }
        self.len -= taken as usize;
        taken
    }

    /// Copies bucket `ms` into `front` (in arrival order) and frees its nodes.
    fn take_bucket(&mut self, ms: usize) {
        let mut node = std::mem::replace(&mut self.heads[ms], NIL);
        self.tails[ms] = NIL;
        while node != NIL {
            let slot = &mut self.nodes[node as usize];
            self.order += 1;
            self.front.push(Due {
                meta: slot.meta,
                order: self.order,
            });
            let next = slot.next;
            slot.next = self.free;
            self.free = node;
            node = next;
        }
        self.front_sorted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::schedule::{Op, Origin, Req};

    fn due(due_ns: u64, order_id: u64) -> Meta {
        Meta {
            intended_ns: due_ns,
            origin: Origin::FollowUp,
            attempt: 0,
            req: Req {
                op: Op::Pay,
                qty: 0,
                sku_id: 0,
                order_id,
                user_id: 0,
            },
        }
    }

    impl Wheel {
        fn pop_due_all(&mut self, now_ns: u64, out: &mut Batch) -> u64 {
            self.pop_due(now_ns, out, usize::MAX)
        }
    }

    #[test]
    fn wheel_stops_at_the_limit_and_resumes() {
        let mut w = Wheel::new(10, 16);
        for s in 0..10 {
            w.push(due(1_000_000 + s, s));
        }
        let mut out = Batch::default();
        assert_eq!(w.pop_due(2_000_000, &mut out, 4), 4);
        assert_eq!(w.pop_due(2_000_000, &mut out, 4), 0, "out is full");
        out.clear();
        assert_eq!(w.pop_due(2_000_000, &mut out, 100), 6);
        assert_eq!(w.len, 0);
        let ids: Vec<u64> = out.iter().map(|m| m.req.order_id).collect();
        assert_eq!(ids, [4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn wheel_releases_exactly_what_is_due_in_order() {
        let mut w = Wheel::new(10, 16);
        for (t, s) in [
            (5_500_000, 1),
            (1_200_000, 2),
            (1_100_000, 3),
            (9_000_000, 4),
            (1_900_000, 5),
        ] {
            w.push(due(t, s));
        }
        let mut out = Batch::default();
        assert_eq!(w.pop_due_all(1_000_000, &mut out), 0);
        assert_eq!(w.pop_due_all(1_150_000, &mut out), 1);
        // A late arrival into the current bucket is still released in time.
        w.push(due(1_120_000, 6));
        assert_eq!(w.pop_due_all(1_500_000, &mut out), 2);
        assert_eq!(w.pop_due_all(6_000_000, &mut out), 2);
        let times: Vec<u64> = out.iter().map(|m| m.intended_ns).collect();
        assert_eq!(
            times,
            [1_100_000, 1_120_000, 1_200_000, 1_900_000, 5_500_000]
        );
        assert_eq!(w.len, 1);
        // Overdue pushes (before the wheel's current bucket) go out on the next call.
        w.push(due(10, 7));
        assert_eq!(w.pop_due_all(6_000_001, &mut out), 1);
        assert_eq!(w.pop_due_all(u64::MAX / 2, &mut out), 1);
        assert_eq!(w.len, 0);
        assert_eq!(w.grown, 0);
    }

    #[test]
    fn wheel_keeps_arrival_order_on_equal_due_times_and_reuses_its_slab() {
        let mut w = Wheel::new(100, 8);
        let mut out = Batch::default();
        for round in 0..20u64 {
            let at = round * 2_000_000 + 500_000;
            for id in 0..8 {
                w.push(due(at, round * 100 + id));
            }
            out.clear();
            assert_eq!(w.pop_due_all(at, &mut out), 8);
            let ids: Vec<u64> = out.iter().map(|m| m.req.order_id).collect();
            assert_eq!(ids, (0..8).map(|id| round * 100 + id).collect::<Vec<_>>());
        }
        assert_eq!(w.grown, 0, "8 waiting at a time fit the slab of 8");
        for id in 0..9 {
            w.push(due(90_000_000, id));
        }
        assert_eq!(w.grown, 1, "the ninth outgrows it, and is counted");
        // Beyond the run's last bucket: the index grows rather than release it early.
        w.push(due(500_000_000, 99));
        assert_eq!(w.pop_due_all(400_000_000, &mut out), 9);
        assert_eq!(w.pop_due_all(500_000_000, &mut out), 1);
        assert_eq!(w.len, 0);
    }
}
