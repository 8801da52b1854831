//! The deterministic request schedule: from a scenario and a seed it generates the catalog and
//! the open-loop sequence of (intended send time, command) — fresh reserves and their client
//! duplicates — plus the per-order follow-up decisions (pay / cancel / abandon, bot retries)
//! that the driver applies once the target has answered. Everything here is a pure function of
//! (scenario, seed[, order id]); it must not read clocks, talk to targets or record latencies.

use crate::scenario::{DelaySpec, Scenario, StockSpec};
use flashsale_engine::{Command, CommandKind, OrderId, SkuConfig, SkuId, UserId};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, Poisson, StandardNormal};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;

const NS_PER_MS: u64 = 1_000_000;

/// Why a schedule could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("SKU popularity: {0}")]
    Popularity(String),
    #[error("the scenario's user population is too large for 64-bit user ids")]
    Population,
}

/// Where a scheduled request came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Origin {
    /// A new order's first reserve.
    #[default]
    Fresh = 0,
    /// A client that timed out and sent the same order id again.
    Duplicate = 1,
    /// A bot that got `sold_out` and tries again.
    BotRetry = 2,
    /// A pay or cancel for a held order.
    FollowUp = 3,
}

/// Which order operation a request is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    #[default]
    Reserve = 0,
    Pay = 1,
    Cancel = 2,
}

impl Op {
    /// Every op, in index order (`ALL[op.index()] == op`).
    pub const ALL: [Op; 3] = [Op::Reserve, Op::Pay, Op::Cancel];

    /// The engine command kind this op sends.
    pub const fn kind(self) -> CommandKind {
        match self {
            Op::Reserve => CommandKind::Reserve,
            Op::Pay => CommandKind::Pay,
            Op::Cancel => CommandKind::Cancel,
        }
    }

    /// The op a command kind is, if it is one the load generator sends as order traffic.
    pub const fn of(kind: CommandKind) -> Option<Op> {
        match kind {
            CommandKind::Reserve => Some(Op::Reserve),
            CommandKind::Pay => Some(Op::Pay),
            CommandKind::Cancel => Some(Op::Cancel),
            CommandKind::UpsertSku
            | CommandKind::Restock
            | CommandKind::QueryOrder
            | CommandKind::QuerySku => None,
        }
    }

    /// Dense index for per-op arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The op's name: its command kind's, from the command table.
    pub const fn name(self) -> &'static str {
        self.kind().name()
    }
}

/// A compact order request (32 bytes; an engine `Command` is 72): what the schedule, the
/// follow-up wheel and the recorder carry around.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Req {
    pub op: Op,
    pub qty: u32,
    pub sku_id: SkuId,
    pub order_id: OrderId,
    pub user_id: UserId,
}

const _: () = assert!(std::mem::size_of::<Req>() == 32);

impl Req {
    pub fn command(&self) -> Command {
        let (order_id, user_id) = (self.order_id, self.user_id);
        match self.op {
            Op::Reserve => Command::Reserve {
                order_id,
                user_id,
                sku_id: self.sku_id,
                qty: self.qty,
            },
            Op::Pay => Command::Pay { order_id, user_id },
            Op::Cancel => Command::Cancel { order_id, user_id },
        }
    }
}

/// What the driver keeps about each request it sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// When the request should have been sent, ns since the run's start.
    pub intended_ns: u64,
    pub origin: Origin,
    /// 0 for a first try, n for the n-th bot retry.
    pub attempt: u8,
    pub req: Req,
}

/// Requests in send order.
pub type Batch = Vec<Meta>;

/// SplitMix64's finaliser: a cheap, well-mixed, stable 64-bit hash.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The default first order id for a seed: 23 seed-derived high bits, 40 bits of sequence.
pub fn order_id_base(seed: u64) -> OrderId {
    ((mix64(seed ^ 0x0bad_5eed) >> 41) << 40).max(1 << 40)
}

/// Users: bots are ids `1 ..= bots`, people follow.
#[derive(Clone, Copy, Debug)]
pub struct UserSpace {
    pub bots: u64,
    pub people: u64,
}

impl UserSpace {
    pub fn of(scenario: &Scenario) -> UserSpace {
        let u = &scenario.users;
        let bots = if u.bot_fraction > 0.0 {
            ((u.population as f64 * u.bot_fraction / (1.0 - u.bot_fraction)).ceil() as u64).max(1)
        } else {
            0
        };
        UserSpace {
            bots,
            people: u.population,
        }
    }
    pub fn is_bot(&self, user: UserId) -> bool {
        user >= 1 && user <= self.bots
    }
}

/// The catalog the generator creates on the target before the run (deterministic from seed).
pub fn catalog(scenario: &Scenario, seed: u64) -> Vec<SkuConfig> {
    let c = &scenario.catalog;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix64(seed ^ 0xca7a_1095));
    let ttl_ms = scenario.hold_ttl_ms();
    let n = c.skus as usize;
    let demand_weights: Vec<f64> = match c.stock {
        StockSpec::Demand { .. } => {
            let s = scenario.users.zipf_s;
            let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
            let h: f64 = w.iter().sum();
            w.into_iter().map(|x| x / h).collect()
        }
        _ => Vec::new(),
    };
    let expected_units = scenario.expected_arrivals_until(scenario.duration_s())
        * (1.0 + scenario.users.qty_max as f64)
        / 2.0;
    (0..n)
        .map(|i| {
            let stock_total = match c.stock {
                StockSpec::Fixed { units } => units,
                StockSpec::Uniform { min, max } => rng.random_range(min..=max),
                StockSpec::Demand { coverage, min } => {
                    ((coverage * expected_units * demand_weights[i]).round() as u64).max(min)
                }
            };
            SkuConfig {
                sku_id: c.first_sku_id + i as SkuId,
                stock_total,
                per_user_limit: c.per_user_limit,
                hold_ttl_ms: ttl_ms,
                sale_start_ms: None,
                sale_end_ms: None,
                price_cents: c.price_cents,
            }
        })
        .collect()
}

/// A client duplicate waiting for its send time: (due ns, order, user, SKU, qty).
type PendingDuplicate = (u64, OrderId, UserId, SkuId, u32);

/// Generates the open-loop schedule one millisecond bucket at a time. Within a bucket the
/// number of arrivals is Poisson(∫λ over the bucket) and their times are stratified-jittered,
/// so the sequence is sorted and cheap (a handful of RNG draws per request). It runs on the
/// pacer thread, so its buffers are sized for the scenario's peak and written once when it is
/// built: generating a bucket allocates nothing unless a bucket is far above the peak.
pub struct Schedule {
    scenario: Scenario,
    rng: Xoshiro256PlusPlus,
    popularity: WeightedAliasIndex<f64>,
    users: UserSpace,
    bot_share: f64,
    first_sku: SkuId,
    qty_max: u32,
    duplicate_rate: f64,
    client_timeout_ns: u64,
    next_order_id: OrderId,
    /// Next bucket to generate.
    bucket_ms: u64,
    end_ms: u64,
    /// Expected arrivals before `bucket_ms`.
    cum_expected: f64,
    duplicates: BinaryHeap<Reverse<PendingDuplicate>>,
    pending: Vec<Meta>,
    /// The bucket's duplicates, then the merge of fresh and duplicates (swapped with `pending`).
    due_duplicates: Vec<Meta>,
    merged: Vec<Meta>,
    cursor: usize,
    generated: u64,
}

/// A vector with room for `capacity` elements, its memory written once (so first use does not
/// fault pages in on the hot path) and then emptied.
pub(crate) fn touched_vec<T: Clone>(capacity: usize, filler: T) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    v.resize(capacity, filler);
    v.clear();
    v
}

impl Schedule {
    pub fn new(scenario: &Scenario, seed: u64) -> Result<Schedule, ScheduleError> {
        Schedule::with_order_id_base(scenario, seed, order_id_base(seed))
    }

    pub fn with_order_id_base(
        scenario: &Scenario,
        seed: u64,
        first_order_id: OrderId,
    ) -> Result<Schedule, ScheduleError> {
        let users = UserSpace::of(scenario);
        if users.bots.checked_add(users.people).is_none() {
            return Err(ScheduleError::Population);
        }
        // Zipf(s) over the catalog's ranks as an alias table: O(1) per draw, no powf.
        let s = scenario.users.zipf_s;
        let weights: Vec<f64> = (1..=scenario.catalog.skus)
            .map(|k| f64::from(k).powf(-s))
            .collect();
        let popularity = WeightedAliasIndex::new(weights)
            .map_err(|e| ScheduleError::Popularity(e.to_string()))?;
        let u = &scenario.users;
        let w_bots = u.bot_fraction * u.bot_rate_multiplier;
        let bot_share = if users.bots == 0 {
            0.0
        } else {
            w_bots / (w_bots + (1.0 - u.bot_fraction))
        };
        // A bucket holds Poisson(peak / 1000) fresh arrivals (well under twice that plus a few
        // dozen) and the duplicates falling due in it; the heap holds a client timeout's worth.
        let client_timeout_ns = (scenario.funnel.client_timeout_ms as f64
            * scenario.time_scale
            * NS_PER_MS as f64) as u64;
        let peak_per_ms = scenario.peak_offered_rate_per_s() / 1000.0;
        let bucket_capacity = (peak_per_ms * (2.0 + scenario.funnel.duplicate_rate)) as usize + 64;
        let duplicates_capacity = (peak_per_ms
            * scenario.funnel.duplicate_rate
            * (client_timeout_ns as f64 / NS_PER_MS as f64 + 1.0)
            * 2.0) as usize
            + 64;
        let duplicates =
            BinaryHeap::from(touched_vec(duplicates_capacity, Reverse((0, 0, 0, 0, 0))));
        let empty_meta = Meta::default();
        Ok(Schedule {
            rng: Xoshiro256PlusPlus::seed_from_u64(mix64(seed)),
            popularity,
            users,
            bot_share,
            first_sku: scenario.catalog.first_sku_id,
            qty_max: u.qty_max,
            duplicate_rate: scenario.funnel.duplicate_rate,
            client_timeout_ns,
            next_order_id: first_order_id,
            bucket_ms: 0,
            end_ms: (scenario.duration_s() * 1000.0).ceil() as u64,
            cum_expected: 0.0,
            duplicates,
            pending: touched_vec(bucket_capacity, empty_meta),
            due_duplicates: touched_vec(bucket_capacity, empty_meta),
            merged: touched_vec(bucket_capacity, empty_meta),
            cursor: 0,
            generated: 0,
            scenario: scenario.clone(),
        })
    }

    /// The users this schedule draws from.
    pub fn users(&self) -> UserSpace {
        self.users
    }

    /// Requests generated so far.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// True once every request has been handed out.
    pub fn is_done(&self) -> bool {
        self.bucket_ms >= self.end_ms
            && self.duplicates.is_empty()
            && self.cursor >= self.pending.len()
    }

    /// Appends every request whose intended time is before `until_ns` to `out`, in order.
    pub fn fill_until(&mut self, until_ns: u64, out: &mut Batch) {
        self.fill_until_at_most(until_ns, out, usize::MAX);
    }

    /// Like `fill_until`, but stops once `out` holds `max_len` requests.
    pub fn fill_until_at_most(&mut self, until_ns: u64, out: &mut Batch, max_len: usize) {
        loop {
            while let Some(meta) = self.pending.get(self.cursor) {
                if meta.intended_ns >= until_ns || out.len() >= max_len {
                    return;
                }
                out.push(*meta);
                self.cursor += 1;
            }
            if self.bucket_ms * NS_PER_MS >= until_ns || self.is_done() {
                return;
            }
            self.generate_bucket();
        }
    }

    fn generate_bucket(&mut self) {
        self.pending.clear();
        self.cursor = 0;
        let ms = self.bucket_ms;
        self.bucket_ms += 1;
        let start_ns = ms * NS_PER_MS;
        if ms < self.end_ms {
            let cum = self
                .scenario
                .expected_arrivals_until((ms + 1) as f64 / 1000.0);
            let expected = (cum - self.cum_expected).max(0.0);
            self.cum_expected = cum;
            let count = if expected > 0.0 {
                match Poisson::new(expected) {
                    Ok(p) => p.sample(&mut self.rng) as u64,
                    Err(_) => 0,
                }
            } else {
                0
            };
            let step = NS_PER_MS as f64 / count.max(1) as f64;
            for i in 0..count {
                let jitter: f64 = self.rng.random();
                let t = start_ns + ((i as f64 + jitter) * step) as u64;
                self.push_fresh(t);
            }
        }
        let end_ns = start_ns + NS_PER_MS;
        self.due_duplicates.clear();
        while let Some(Reverse((due, order_id, user_id, sku_id, qty))) =
            self.duplicates.peek().copied()
        {
            if due >= end_ns {
                break;
            }
            self.duplicates.pop();
            self.due_duplicates.push(Meta {
                intended_ns: due,
                origin: Origin::Duplicate,
                attempt: 0,
                req: Req {
                    op: Op::Reserve,
                    qty,
                    sku_id,
                    order_id,
                    user_id,
                },
            });
        }
        if !self.due_duplicates.is_empty() {
            self.merge_duplicates();
        }
        self.generated += self.pending.len() as u64;
    }

    /// Merges the bucket's duplicates (sorted, from the heap) into its fresh arrivals (sorted by
    /// construction), fresh first on a tie: the order a stable sort of the two gives, without
    /// the sort's scratch allocation.
    fn merge_duplicates(&mut self) {
        self.merged.clear();
        let (fresh, duplicates) = (&self.pending, &self.due_duplicates);
        let (mut i, mut j) = (0, 0);
        while i < fresh.len() && j < duplicates.len() {
            if duplicates[j].intended_ns < fresh[i].intended_ns {
                self.merged.push(duplicates[j]);
                j += 1;
            } else {
                self.merged.push(fresh[i]);
                i += 1;
            }
        }
        self.merged.extend_from_slice(&fresh[i..]);
        self.merged.extend_from_slice(&duplicates[j..]);
        std::mem::swap(&mut self.pending, &mut self.merged);
    }

    fn push_fresh(&mut self, t_ns: u64) {
        let users = self.users;
        let user_id = if self.bot_share > 0.0 && self.rng.random::<f64>() < self.bot_share {
            1 + self.rng.random_range(0..users.bots)
        } else {
            users.bots + 1 + self.rng.random_range(0..users.people)
        };
        let sku_id = self.first_sku + self.popularity.sample(&mut self.rng) as SkuId;
        let qty = if self.qty_max > 1 {
            self.rng.random_range(1..=self.qty_max)
        } else {
            1
        };
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        if self.duplicate_rate > 0.0 && self.rng.random::<f64>() < self.duplicate_rate {
            self.duplicates.push(Reverse((
                t_ns + self.client_timeout_ns,
                order_id,
                user_id,
                sku_id,
                qty,
            )));
        }
        self.pending.push(Meta {
            intended_ns: t_ns,
            origin: Origin::Fresh,
            attempt: 0,
            req: Req {
                op: Op::Reserve,
                qty,
                sku_id,
                order_id,
                user_id,
            },
        });
    }
}

/// A stable hash of the whole schedule (times, origins, commands) up to `until_ns`.
pub fn sequence_hash(schedule: &mut Schedule, until_ns: u64) -> (u64, u64) {
    let mut hasher = rustc_hash::FxHasher::default();
    let mut batch = Batch::with_capacity(4096);
    let mut count = 0;
    let mut t = 0;
    while t < until_ns && !schedule.is_done() {
        t = (t + 10 * NS_PER_MS).min(until_ns);
        batch.clear();
        schedule.fill_until(t, &mut batch);
        for meta in &batch {
            hasher.write_u64(meta.intended_ns);
            hasher.write_u8(meta.origin as u8);
            std::hash::Hash::hash(&meta.req.command(), &mut hasher);
        }
        count += batch.len() as u64;
    }
    (hasher.finish(), count)
}

/// What a held order's buyer does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Pay { delay_ns: u64 },
    Cancel { delay_ns: u64 },
    Abandon,
}

/// The funnel's per-order choices, each derived from (seed, order id) alone so a run is
/// reproducible given the same answers.
#[derive(Clone, Debug)]
pub struct FollowUps {
    seed: u64,
    pay_probability: f64,
    cancel_probability: f64,
    pay_delay: DelaySpec,
    cancel_delay: DelaySpec,
    time_scale: f64,
    users: UserSpace,
    bot_retry_max: u8,
    bot_retry_delay_ns: u64,
    pending_capacity: usize,
}

/// Mean of a log-normal delay (median · e^(σ²/2)), in ms.
fn mean_delay_ms(spec: DelaySpec) -> f64 {
    spec.median_ms * (spec.sigma * spec.sigma / 2.0).exp()
}

/// An upper bound on the follow-ups waiting at once during a run of `scenario`, by Little's law:
/// the waiting count at any instant, ∫ rate(s) · P(delay > t − s) ds, is at most the peak rate
/// times the mean delay. Every reserve is counted as creating a hold (an upper bound: a sold-out
/// one does not), duplicates and bot retries included; and no run waits on more follow-ups than
/// it causes in all.
fn pending_follow_ups_bound(scenario: &Scenario) -> usize {
    let f = &scenario.funnel;
    let u = &scenario.users;
    // The bots' share of fresh reserves, as the schedule draws them.
    let w_bots = u.bot_fraction * u.bot_rate_multiplier;
    let bot_share = w_bots / (w_bots + (1.0 - u.bot_fraction)).max(f64::MIN_POSITIVE);
    let bot_retries = bot_share * f64::from(u.bot_retry_max);
    let reserves_per_fresh = (1.0 + f.duplicate_rate) * (1.0 + bot_retries);
    let mean_wait_s = (f.pay_probability * mean_delay_ms(f.pay_delay)
        + f.cancel_probability * mean_delay_ms(f.cancel_delay)
        + bot_share * u.bot_retry_delay_ms as f64)
        * scenario.time_scale
        / 1000.0;
    let at_peak = scenario.peak_offered_rate_per_s() * reserves_per_fresh * mean_wait_s;
    let in_all = scenario.expected_arrivals_until(scenario.duration_s())
        * reserves_per_fresh
        * (f.pay_probability + f.cancel_probability + bot_share);
    // Poisson noise on millions is well under 5%; the floor covers tiny runs.
    (at_peak.min(in_all) * 1.05) as usize + 4096
}

impl FollowUps {
    pub fn new(scenario: &Scenario, seed: u64) -> FollowUps {
        FollowUps {
            pending_capacity: pending_follow_ups_bound(scenario),
            seed,
            pay_probability: scenario.funnel.pay_probability,
            cancel_probability: scenario.funnel.cancel_probability,
            pay_delay: scenario.funnel.pay_delay,
            cancel_delay: scenario.funnel.cancel_delay,
            time_scale: scenario.time_scale,
            users: UserSpace::of(scenario),
            bot_retry_max: scenario.users.bot_retry_max,
            bot_retry_delay_ns: (scenario.users.bot_retry_delay_ms as f64
                * scenario.time_scale
                * NS_PER_MS as f64) as u64,
        }
    }

    fn delay_ns(&self, rng: &mut Xoshiro256PlusPlus, spec: DelaySpec) -> u64 {
        let z: f64 = StandardNormal.sample(rng);
        let ms = spec.median_ms * (spec.sigma * z).exp() * self.time_scale;
        (ms * NS_PER_MS as f64).min(1e15) as u64
    }

    /// The buyer's choice once `order_id` is held.
    pub fn decide(&self, order_id: OrderId) -> Decision {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix64(self.seed ^ mix64(order_id)));
        let u: f64 = rng.random();
        if u < self.pay_probability {
            Decision::Pay {
                delay_ns: self.delay_ns(&mut rng, self.pay_delay),
            }
        } else if u < self.pay_probability + self.cancel_probability {
            Decision::Cancel {
                delay_ns: self.delay_ns(&mut rng, self.cancel_delay),
            }
        } else {
            Decision::Abandon
        }
    }

    /// At most how many follow-ups can be waiting for their due time at once during the run
    /// (see [`pending_follow_ups_bound`]): what the driver sizes its follow-up store for.
    pub fn pending_capacity(&self) -> usize {
        self.pending_capacity
    }

    /// After a `sold_out`: whether (and after how long) this user tries again.
    pub fn bot_retry(&self, user_id: UserId, attempt: u8) -> Option<u64> {
        (self.users.is_bot(user_id) && attempt < self.bot_retry_max)
            .then_some(self.bot_retry_delay_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_the_command_kinds_of_order_traffic() {
        for (index, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), index);
            assert_eq!(Op::of(op.kind()), Some(op));
        }
        let ops = CommandKind::ALL.into_iter().filter_map(Op::of).count();
        assert_eq!(ops, Op::ALL.len());
        for op in Op::ALL {
            let req = Req {
                op,
                qty: 1,
                sku_id: 1,
                order_id: 2,
                user_id: 3,
            };
            assert_eq!(req.command().kind(), op.kind());
        }
    }

    fn hash_of(seed: u64, secs: u64) -> (u64, u64) {
        let mut s = Scenario::profile("spike").unwrap();
        s.set_peak_rate(20_000.0).unwrap();
        let mut schedule = Schedule::new(&s, seed).unwrap();
        sequence_hash(&mut schedule, secs * 1_000_000_000)
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a = hash_of(7, 30);
        let b = hash_of(7, 30);
        let c = hash_of(8, 30);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        assert!(a.1 > 100_000, "{a:?}");
    }

    #[test]
    fn schedule_is_sorted_and_ids_are_consistent() {
        let mut s = Scenario::profile("spike").unwrap();
        s.set_peak_rate(50_000.0).unwrap();
        let mut schedule = Schedule::new(&s, 1).unwrap();
        let users = schedule.users();
        let mut batch = Batch::default();
        schedule.fill_until(u64::MAX, &mut batch);
        assert!(schedule.is_done());
        let mut last = 0;
        let mut dups = 0;
        let mut bots = 0;
        for m in &batch {
            assert!(m.intended_ns >= last);
            last = m.intended_ns;
            let Command::Reserve {
                user_id,
                sku_id,
                qty,
                ..
            } = m.req.command()
            else {
                panic!("only reserves are scheduled")
            };
            assert!((1..=users.bots + users.people).contains(&user_id));
            assert!((1..=5000).contains(&sku_id));
            assert!((1..=2).contains(&qty));
            dups += (m.origin == Origin::Duplicate) as u64;
            bots += users.is_bot(user_id) as u64;
        }
        let n = batch.len() as f64;
        assert!(
            (dups as f64 / n - 0.02 / 1.02).abs() < 0.003,
            "dups {dups} of {n}"
        );
        // 0.1% bots at 10x: ~1% of requests.
        assert!(
            (bots as f64 / n - 0.0099).abs() < 0.002,
            "bots {bots} of {n}"
        );
    }

    #[test]
    fn arrivals_per_phase_match_the_rate_integral() {
        let mut s = Scenario::profile("double11").unwrap();
        s.set_peak_rate(100_000.0).unwrap();
        s.funnel.duplicate_rate = 0.0;
        let mut schedule = Schedule::new(&s, 42).unwrap();
        let mut batch = Batch::default();
        schedule.fill_until(u64::MAX, &mut batch);
        for (name, start_s, end_s) in s.phase_bounds_s() {
            let expected = s.expected_arrivals_until(end_s) - s.expected_arrivals_until(start_s);
            let (lo, hi) = ((start_s * 1e9) as u64, (end_s * 1e9) as u64);
            let got = batch
                .iter()
                .filter(|m| (lo..hi).contains(&m.intended_ns))
                .count() as f64;
            // Poisson: 5 standard deviations (plus a ms of boundary rounding).
            let tolerance = 5.0 * expected.sqrt() + s.peak_rate_per_s / 1000.0;
            assert!(
                (got - expected).abs() <= tolerance,
                "phase {name}: got {got}, expected {expected:.0} ± {tolerance:.0}"
            );
        }
    }

    #[test]
    fn follow_up_decisions_are_deterministic_and_match_probabilities() {
        let s = Scenario::profile("double11").unwrap();
        let f = FollowUps::new(&s, 3);
        let g = FollowUps::new(&s, 3);
        let (mut pay, mut cancel, mut delays) = (0, 0, Vec::new());
        for id in 0..100_000u64 {
            let d = f.decide(id);
            assert_eq!(d, g.decide(id));
            match d {
                Decision::Pay { delay_ns } => {
                    pay += 1;
                    delays.push(delay_ns);
                }
                Decision::Cancel { .. } => cancel += 1,
                Decision::Abandon => {}
            }
        }
        assert!((pay as f64 / 1e5 - 0.85).abs() < 0.01);
        assert!((cancel as f64 / 1e5 - 0.05).abs() < 0.005);
        delays.sort_unstable();
        let median_ms = delays[delays.len() / 2] as f64 / 1e6;
        let expected_ms = s.funnel.pay_delay.median_ms;
        assert!(
            (median_ms / expected_ms - 1.0).abs() < 0.02,
            "{median_ms} vs {expected_ms}"
        );
        let other = FollowUps::new(&s, 4);
        assert!((0..1000).any(|id| other.decide(id) != f.decide(id)));
    }

    #[test]
    fn demand_stock_follows_popularity() {
        let s = Scenario::profile("double11").unwrap();
        let cat = catalog(&s, 1);
        assert_eq!(cat.len(), 100_000);
        assert!(cat[0].stock_total > cat[1000].stock_total);
        assert!(
            cat.iter()
                .all(|c| c.stock_total >= 50 && c.validate().is_ok())
        );
        assert_eq!(cat, catalog(&s, 1));
    }
}
