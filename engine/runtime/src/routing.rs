//! Routing: where each submitted command goes, and how a batch's outcomes come back in input
//! order. A reserve goes to its SKU's shard after claiming its order id in the
//! [`Directory`]; a pay, cancel or query follows the claim; admin commands and SKU queries go
//! to the SKU's shard. Three answers are given without a shard, each one the shard would give
//! at that point of the stream: `UnknownOrder` (no claim), `IdConflict` (the id's order exists
//! for a SKU on another shard) and `SoldOut` (the availability mirror is settled and short).
//!
//! A reserve whose id another shard's claim holds *pending* cannot be answered yet: its stream
//! waits. A [`Stream`] (one per client connection) then holds that command and every later one
//! it is given, in order, and routes them again when the claim settles — on the thread that
//! settled it. So a stream's requests are routed in the order they were sent, and each shard
//! applies what it gets in queue order: a stream's requests on one order or one SKU are
//! applied in order (docs/protocol.md §2.2).
//!
//! This module owns routing, held streams and reassembly. It decides no business rule, never
//! waits (a full shard queue answers `Busy`, undoing the claims the command took) and must not
//! touch shard state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::TrySendError;

use crate::directory::{FollowUp, ReserveClaim};
use crate::runtime::{Engine, Inner, ShardMessage, shard_of_sku};
use crate::types::{Command, Outcome, Reject, SkuConfig, SkuId};

pub(crate) type DoneCallback = Box<dyn FnOnce(Vec<Outcome>) + Send>;

/// Commands a stream may hold while it waits, beyond which its batches answer `Busy`.
const MAX_HELD_COMMANDS: usize = 1 << 16;

/// For tests: the order in which the engine applied or answered every command, with the time
/// it applied it at, so that a test can replay that sequence against the `Model` (which must
/// then answer the same). A command applied by a shard is stamped just before it is applied;
/// one answered by the router is stamped where its answer held — before the look-up for
/// `UnknownOrder` and `SoldOut`, after it for `IdConflict`. `Busy` is not recorded (nothing
/// was done). Off in production; on, it costs a lock per batch.
#[derive(Debug, Default)]
pub struct Linearisation {
    next: AtomicU64,
    entries: Mutex<Vec<Applied>>,
}

/// One command as the engine applied it; see [`Linearisation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub stamp: u64,
    pub now_ms: u64,
    pub command: Command,
    pub outcome: Outcome,
}

impl Linearisation {
    pub fn new() -> Arc<Linearisation> {
        Arc::new(Linearisation::default())
    }

    /// `count` consecutive stamps; the first is returned.
    pub(crate) fn stamps(&self, count: usize) -> u64 {
        self.next.fetch_add(count as u64, Ordering::SeqCst)
    }

    pub(crate) fn record(&self, applied: impl IntoIterator<Item = Applied>) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(applied);
    }

    /// Everything recorded so far, in stamp order; the record starts afresh.
    pub fn take(&self) -> Vec<Applied> {
        let mut entries =
            std::mem::take(&mut *self.entries.lock().unwrap_or_else(|e| e.into_inner()));
        entries.sort_unstable_by_key(|applied| applied.stamp);
        entries
    }
}

/// Outcomes of a batch that was split — across shards, or between what was routed now and
/// what waits — put back in input order. It completes when every part sent has answered and
/// the router has let go of its own part, which it holds while it may still add parts.
pub(crate) struct Assembly {
    outcomes: Mutex<Vec<Outcome>>,
    parts_remaining: AtomicUsize,
    on_done: Mutex<Option<DoneCallback>>,
}

impl Assembly {
    fn new(len: usize, on_done: DoneCallback) -> Arc<Assembly> {
        Arc::new(Assembly {
            outcomes: Mutex::new(vec![Outcome::Rejected(Reject::Busy); len]),
            parts_remaining: AtomicUsize::new(1),
            on_done: Mutex::new(Some(on_done)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Outcome>> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_part(&self) {
        self.parts_remaining.fetch_add(1, Ordering::AcqRel);
    }

    /// Stores an answer given without a shard.
    fn answer(&self, slot: usize, outcome: Outcome) {
        self.lock()[slot] = outcome;
    }

    /// Stores one part's outcomes; the last part to arrive hands the whole batch on.
    pub fn fill(&self, slots: &[u32], part: Vec<Outcome>) {
        assert_eq!(
            slots.len(),
            part.len(),
            "a part answers each of its commands"
        );
        {
            let mut outcomes = self.lock();
            for (&slot, outcome) in slots.iter().zip(part) {
                outcomes[slot as usize] = outcome;
            }
        }
        self.part_done();
    }

    pub fn part_done(&self) {
        if self.parts_remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let outcomes = std::mem::take(&mut *self.lock());
            let on_done = self
                .on_done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(on_done) = on_done {
                on_done(outcomes);
            }
        }
    }
}

pub(crate) enum ReplyTo {
    /// The whole batch went to one shard: its outcomes are the batch's outcomes.
    Whole(DoneCallback),
    /// One shard's part of a split batch: `slots[i]` is where outcome `i` belongs.
    Part {
        assembly: Arc<Assembly>,
        slots: Vec<u32>,
    },
}

impl ReplyTo {
    pub fn deliver(self, outcomes: Vec<Outcome>) {
        match self {
            ReplyTo::Whole(on_done) => on_done(outcomes),
            ReplyTo::Part { assembly, slots } => assembly.fill(&slots, outcomes),
        }
    }
}

/// Commands for one shard, and what routing them took that the shard thread gives back.
pub(crate) struct ShardBatch {
    pub commands: Vec<Command>,
    pub reply: ReplyTo,
    /// Positions in `commands` of those holding a pending claim count to settle.
    pub counted: Vec<u32>,
    /// SKUs whose mirror raise count these commands hold, to end once published.
    pub raised: Vec<SkuId>,
    /// Cancels of orders not yet created whose raise is counted on the whole shard.
    pub shard_raised: u32,
}

/// Where a command goes.
enum Route {
    Shard(usize),
    Answered(Outcome),
    /// A reserve whose id another shard's claim holds pending: the stream waits for it.
    Wait,
}

/// What routing one command took besides choosing its shard; undone if it cannot be queued.
#[derive(Clone, Copy, Default)]
struct Holds {
    counted: bool,
    raised: Option<SkuId>,
    shard_raised: bool,
}

/// One shard's part of a batch being routed.
#[derive(Default)]
struct Part {
    commands: Vec<Command>,
    slots: Vec<u32>,
    counted: Vec<u32>,
    raised: Vec<SkuId>,
    shard_raised: u32,
}

impl Part {
    fn push(&mut self, command: Command, slot: usize, holds: Holds) {
        self.note(self.commands.len(), holds);
        self.commands.push(command);
        self.slots.push(slot as u32);
    }

    /// Records what the command at `at` in this part holds.
    fn note(&mut self, at: usize, holds: Holds) {
        if holds.counted {
            self.counted.push(at as u32);
        }
        self.raised.extend(holds.raised);
        self.shard_raised += u32::from(holds.shard_raised);
    }

    fn into_batch(self, reply: ReplyTo) -> ShardBatch {
        ShardBatch {
            commands: self.commands,
            reply,
            counted: self.counted,
            raised: self.raised,
            shard_raised: self.shard_raised,
        }
    }
}

/// The clock, read at most once per routing pass.
#[derive(Default)]
struct RouteContext {
    now_ms: Option<u64>,
}

impl RouteContext {
    fn now_ms(&mut self, inner: &Inner) -> u64 {
        *self.now_ms.get_or_insert_with(|| inner.clock.now_ms())
    }
}

/// Work that must wait until no stream lock is held: batches whose last part is in, and
/// streams whose wait ended (routing them takes their lock).
#[derive(Default)]
pub(crate) struct AfterUnlock {
    pub finished: Vec<Arc<Assembly>>,
    pub woken: Vec<Arc<StreamState>>,
}

/// A batch a stream holds: routed up to `next`, the rest waiting.
struct HeldBatch {
    commands: Vec<Command>,
    next: usize,
    assembly: Arc<Assembly>,
}

#[derive(Default)]
pub(crate) struct Held {
    queue: VecDeque<HeldBatch>,
    commands: usize,
}

/// The state of one stream: the batches it holds while a reserve of it waits.
#[derive(Default)]
pub(crate) struct StreamState {
    held: Mutex<Held>,
}

impl StreamState {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One client's ordered stream of batches (a connection's). Batches submitted through one
/// stream are routed in submission order, so that its requests on one order or one SKU are
/// applied in the order sent, also when one reserve must wait for another shard's claim (it
/// then holds back the stream's later requests until it is decided). Cheap to clone; clones
/// are the same stream.
#[derive(Clone)]
pub struct Stream {
    engine: Engine,
    state: Arc<StreamState>,
}

impl Stream {
    pub(crate) fn new(engine: Engine) -> Stream {
        Stream {
            engine,
            state: Arc::default(),
        }
    }

    /// As [`Engine::submit`], in this stream's order.
    pub fn submit(
        &self,
        commands: Vec<Command>,
        on_done: impl FnOnce(Vec<Outcome>) + Send + 'static,
    ) {
        self.engine
            .submit_on(Some(&self.state), commands, Box::new(on_done));
    }

    /// Submits a batch on this stream and waits for its outcomes.
    pub fn submit_wait(&self, commands: Vec<Command>) -> Vec<Outcome> {
        let count = commands.len();
        let (sender, receiver) = crossbeam_channel::bounded(1);
        self.submit(commands, move |outcomes| {
            let _ = sender.send(outcomes);
        });
        receiver
            .recv()
            .unwrap_or_else(|_| vec![Outcome::Rejected(Reject::Busy); count])
    }
}

impl Inner {
    /// Routes and queues a batch (see the module documentation).
    pub(crate) fn submit(
        &self,
        stream: Option<&Arc<StreamState>>,
        commands: Vec<Command>,
        on_done: DoneCallback,
    ) {
        let mut after = AfterUnlock::default();
        match stream {
            Some(state) => {
                let mut held = state.lock();
                if held.queue.is_empty() {
                    self.route_batch(Some((state, &mut held)), commands, on_done, &mut after);
                } else if held.commands + commands.len() > MAX_HELD_COMMANDS {
                    drop(held);
                    self.count_busy(commands.len());
                    on_done(vec![Outcome::Rejected(Reject::Busy); commands.len()]);
                } else {
                    // Behind a waiting reserve: held in order, routed when the wait ends.
                    held.commands += commands.len();
                    let assembly = Assembly::new(commands.len(), on_done);
                    held.queue.push_back(HeldBatch {
                        commands,
                        next: 0,
                        assembly,
                    });
                }
            }
            None => self.route_batch(None, commands, on_done, &mut after),
        }
        self.finish(after);
    }

    /// Routes a new batch. The common case — one shard, nothing answered here, nothing waits —
    /// hands the batch over whole; otherwise it is split into parts, and if a reserve must
    /// wait, the rest of the batch is held by the stream (a stream of its own if none).
    fn route_batch(
        &self,
        stream: Option<(&Arc<StreamState>, &mut Held)>,
        commands: Vec<Command>,
        on_done: DoneCallback,
        after: &mut AfterUnlock,
    ) {
        let mut context = RouteContext::default();
        let mut routes: Vec<(Route, Holds)> = Vec::with_capacity(commands.len());
        let mut single_shard: Option<usize> = None;
        let mut mixed = false;
        let mut answered = false;
        for command in &commands {
            let (route, holds) = self.route(command, &mut context);
            match route {
                Route::Shard(shard) => match single_shard {
                    None => single_shard = Some(shard),
                    Some(previous) if previous != shard => mixed = true,
                    Some(_) => {}
                },
                Route::Answered(_) => answered = true,
                Route::Wait => {
                    routes.push((route, holds));
                    break;
                }
            }
            routes.push((route, holds));
        }
        let waits = matches!(routes.last(), Some((Route::Wait, _)));
        if !waits && !answered && !mixed {
            let Some(shard) = single_shard else {
                return on_done(Vec::new());
            };
            let mut part = Part {
                commands,
                ..Part::default()
            };
            for (at, (_, holds)) in routes.iter().enumerate() {
                part.note(at, *holds);
            }
            self.send(shard, part, ReplyTo::Whole(on_done), after);
            return;
        }
        if !waits && single_shard.is_none() {
            // Everything was answered here (a sold-out flood): no shard, no assembly.
            let outcomes = routes
                .into_iter()
                .map(|(route, _)| match route {
                    Route::Answered(outcome) => outcome,
                    Route::Shard(_) | Route::Wait => unreachable!("nothing went to a shard"),
                })
                .collect();
            return on_done(outcomes);
        }
        let assembly = Assembly::new(commands.len(), on_done);
        let mut parts: Vec<Part> = (0..self.senders.len()).map(|_| Part::default()).collect();
        let routed = routes.len() - usize::from(waits);
        for (slot, (route, holds)) in routes.into_iter().take(routed).enumerate() {
            match route {
                Route::Shard(shard) => parts[shard].push(commands[slot], slot, holds),
                Route::Answered(outcome) => assembly.answer(slot, outcome),
                Route::Wait => unreachable!("only the last route waits"),
            }
        }
        self.send_parts(parts, &assembly, after);
        if !waits {
            after.finished.push(assembly);
            return;
        }
        let held = HeldBatch {
            commands,
            next: routed,
            assembly,
        };
        match stream {
            Some((state, queue)) => {
                queue.commands += held.commands.len();
                queue.queue.push_back(held);
                self.advance(state, queue, after);
            }
            None => {
                let state: Arc<StreamState> = Arc::default();
                let mut queue = state.lock();
                queue.commands += held.commands.len();
                queue.queue.push_back(held);
                self.advance(&state, &mut queue, after);
            }
        }
    }

    /// Routes what a stream holds, front to back, until it is all routed or a reserve waits
    /// (the stream is then registered to be woken when that claim settles).
    fn advance(&self, state: &Arc<StreamState>, held: &mut Held, after: &mut AfterUnlock) {
        let shard_count = self.senders.len();
        let mut context = RouteContext::default();
        while let Some(front) = held.queue.front_mut() {
            let mut parts: Vec<Part> = (0..shard_count).map(|_| Part::default()).collect();
            let mut waiting = None;
            for slot in front.next..front.commands.len() {
                let command = front.commands[slot];
                match self.route(&command, &mut context) {
                    (Route::Shard(shard), holds) => parts[shard].push(command, slot, holds),
                    (Route::Answered(outcome), _) => front.assembly.answer(slot, outcome),
                    (Route::Wait, _) => {
                        waiting = Some(slot);
                        break;
                    }
                }
            }
            self.send_parts(parts, &front.assembly, after);
            let Some(slot) = waiting else {
                let done = held.queue.pop_front().expect("the front batch");
                held.commands -= done.commands.len();
                after.finished.push(done.assembly);
                continue;
            };
            front.next = slot;
            let Command::Reserve {
                order_id, sku_id, ..
            } = front.commands[slot]
            else {
                unreachable!("only a reserve waits");
            };
            let shard = shard_of_sku(sku_id, shard_count);
            let shard_of = |sku_id| shard_of_sku(sku_id, shard_count);
            if self
                .directory
                .wait(order_id, shard, shard_of, state.clone())
            {
                self.waited_reserves.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // The claim settled meanwhile: route the waiting reserve again.
        }
    }

    /// Releases finished batches and routes the streams whose wait ended, until none is left.
    /// Called with no stream lock held.
    pub(crate) fn finish(&self, mut after: AfterUnlock) {
        loop {
            for assembly in after.finished.drain(..) {
                assembly.part_done();
            }
            let Some(state) = after.woken.pop() else {
                return;
            };
            let mut held = state.lock();
            self.advance(&state, &mut held, &mut after);
        }
    }

    fn send_parts(&self, parts: Vec<Part>, assembly: &Arc<Assembly>, after: &mut AfterUnlock) {
        for (shard, mut part) in parts.into_iter().enumerate() {
            if part.commands.is_empty() {
                continue;
            }
            assembly.add_part();
            let slots = std::mem::take(&mut part.slots);
            let reply = ReplyTo::Part {
                assembly: assembly.clone(),
                slots,
            };
            self.send(shard, part, reply, after);
        }
    }

    /// Queues a part on its shard; a full queue answers `Busy` and undoes its claims.
    fn send(&self, shard: usize, part: Part, reply: ReplyTo, after: &mut AfterUnlock) {
        let batch = part.into_batch(reply);
        let batch = match self.senders[shard].try_send(ShardMessage::Batch(batch)) {
            Ok(()) => return,
            Err(TrySendError::Full(ShardMessage::Batch(batch)))
            | Err(TrySendError::Disconnected(ShardMessage::Batch(batch))) => batch,
            Err(_) => unreachable!("only batches are sent with try_send"),
        };
        self.release(shard, &batch, None, after);
        let count = batch.commands.len();
        self.count_busy(count);
        batch
            .reply
            .deliver(vec![Outcome::Rejected(Reject::Busy); count]);
    }

    /// Gives back what a batch's routing took: settles its counted claims (with the outcomes
    /// it was applied with, or as refused if it never was) and, unless the shard thread does
    /// it after publishing, its raise counts.
    pub(crate) fn release(
        &self,
        shard: usize,
        batch: &ShardBatch,
        outcomes: Option<&[Outcome]>,
        after: &mut AfterUnlock,
    ) {
        let shard_count = self.senders.len();
        let shard_of = |sku_id| shard_of_sku(sku_id, shard_count);
        for &at in &batch.counted {
            let at = at as usize;
            let order_id = batch.commands[at]
                .order_id()
                .expect("counted commands name an order");
            let created = outcomes.and_then(|outcomes| match &outcomes[at] {
                Outcome::Created(view) => Some(view.sku_id),
                Outcome::Order(_)
                | Outcome::SkuCreated(_)
                | Outcome::Sku(_)
                | Outcome::Rejected(_) => None,
            });
            self.directory
                .settle(order_id, created, shard, shard_of, &mut after.woken);
        }
        if outcomes.is_none() {
            self.end_raises(shard, &batch.raised, batch.shard_raised);
        }
    }

    pub(crate) fn end_raises(&self, shard: usize, raised: &[SkuId], shard_raised: u32) {
        for &sku_id in raised {
            self.mirror.end_raise(sku_id);
        }
        if shard_raised > 0 {
            let before = self.shard_raising[shard].fetch_sub(shard_raised, Ordering::AcqRel);
            assert!(
                before >= shard_raised,
                "shard {shard}: raise count underflow"
            );
        }
    }

    fn count_busy(&self, count: usize) {
        self.busy_rejections
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Whether the mirror's values for `shard`'s SKUs are exact now: no hold of it has fallen
    /// due unexpired, and no cancel of a not-yet-created order is in flight to it.
    fn settled(&self, shard: usize, context: &mut RouteContext) -> bool {
        context.now_ms(self) < self.next_expiry_ms[shard].load(Ordering::Acquire)
            && self.shard_raising[shard].load(Ordering::Acquire) == 0
    }

    /// An answer given here, recorded (for tests) at `stamp`.
    fn answered(
        &self,
        stamp: Option<u64>,
        context: &mut RouteContext,
        command: &Command,
        outcome: Outcome,
    ) -> Route {
        if let (Some(linearisation), Some(stamp)) = (&self.linearisation, stamp) {
            let now_ms = context.now_ms(self);
            linearisation.record([Applied {
                stamp,
                now_ms,
                command: *command,
                outcome: outcome.clone(),
            }]);
        }
        Route::Answered(outcome)
    }

    fn stamp(&self) -> Option<u64> {
        self.linearisation.as_ref().map(|l| l.stamps(1))
    }

    #[inline]
    fn route(&self, command: &Command, context: &mut RouteContext) -> (Route, Holds) {
        let shard_count = self.senders.len();
        let shard_of = |sku_id| shard_of_sku(sku_id, shard_count);
        // Taken before any look-up: an answer from an absence holds from here.
        let stamp = self.stamp();
        match *command {
            Command::Reserve {
                order_id,
                sku_id,
                qty,
                ..
            } => {
                let shard = shard_of(sku_id);
                // Fast path: a sold-out SKU refuses new orders without entering the shard —
                // exactly as the shard would (known ids go to it; sold out is checked right
                // after the SKU and a zero qty, docs/protocol.md §3.3).
                if qty > 0
                    && self.settled(shard, context)
                    && self
                        .mirror
                        .settled_available(sku_id)
                        .is_some_and(|available| available < u64::from(qty))
                    && !self.directory.is_claimed(order_id)
                {
                    self.fast_sold_out.fetch_add(1, Ordering::Relaxed);
                    let route =
                        self.answered(stamp, context, command, Outcome::Rejected(Reject::SoldOut));
                    return (route, Holds::default());
                }
                match self
                    .directory
                    .claim_for_reserve(order_id, sku_id, shard, shard_of)
                {
                    ReserveClaim::Claimed { counted } => (
                        Route::Shard(shard),
                        Holds {
                            counted,
                            ..Holds::default()
                        },
                    ),
                    ReserveClaim::Conflict => {
                        // The conflict holds from the moment the order was seen to exist.
                        let stamp = self.stamp();
                        let outcome = Outcome::Rejected(Reject::IdConflict);
                        (
                            self.answered(stamp, context, command, outcome),
                            Holds::default(),
                        )
                    }
                    ReserveClaim::Contested => (Route::Wait, Holds::default()),
                }
            }
            Command::Pay { order_id, .. }
            | Command::Cancel { order_id, .. }
            | Command::QueryOrder { order_id } => {
                match self.directory.claim_for_follow_up(order_id) {
                    FollowUp::Unknown => {
                        self.fast_unknown_order.fetch_add(1, Ordering::Relaxed);
                        let outcome = Outcome::Rejected(Reject::UnknownOrder);
                        (
                            self.answered(stamp, context, command, outcome),
                            Holds::default(),
                        )
                    }
                    FollowUp::Claimed { sku_id, counted } => {
                        let shard = shard_of(sku_id);
                        let mut holds = Holds {
                            counted,
                            ..Holds::default()
                        };
                        if matches!(command, Command::Cancel { .. }) {
                            if counted {
                                // The order's SKU is not final until it exists: hold back the
                                // early answers of the whole shard.
                                self.shard_raising[shard].fetch_add(1, Ordering::AcqRel);
                                holds.shard_raised = true;
                            } else if self.mirror.begin_raise(sku_id) {
                                holds.raised = Some(sku_id);
                            }
                        }
                        (Route::Shard(shard), holds)
                    }
                }
            }
            Command::UpsertSku(SkuConfig { sku_id, .. }) | Command::Restock { sku_id, .. } => {
                let holds = Holds {
                    raised: self.mirror.begin_raise(sku_id).then_some(sku_id),
                    ..Holds::default()
                };
                (Route::Shard(shard_of(sku_id)), holds)
            }
            Command::QuerySku { sku_id } => (Route::Shard(shard_of(sku_id)), Holds::default()),
        }
    }
}
