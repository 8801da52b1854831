//! The runtime: N shard threads, each the single writer of one [`Shard`], fed batches of
//! commands over bounded crossbeam channels. It owns routing (SKU → shard by hash; order →
//! shard through the order directory), the clock (time is read here and handed to the shard),
//! the periodic tick that expires holds when no traffic comes, publication of availability to
//! the [`AvailabilityMirror`], and reassembling a batch's outcomes in input order.
//!
//! Data flows one way: submitter → shard queue → shard thread (apply, publish, reply). A full
//! queue answers `Busy` at once; nothing queues without bound. This module must not decide any
//! business rule — every decision that changes state is the shard's. The only answers given
//! without a shard are refusals that the shard would give: `SoldOut` for a SKU the mirror shows
//! at zero (when the order id is not known), and `UnknownOrder` for an order the directory has
//! never seen.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

use crate::journal::pipeline::JournalThreadSettings;
use crate::journal::record::RecordBuilder;
use crate::journal::segment::SegmentWriter;
use crate::journal::{
    Acknowledge, Durability, DurabilityFailure, JournalError, JournalHandle, JournalMessage,
    RecoveryReport, SyncMode,
};
use crate::mirror::AvailabilityMirror;
use crate::shard::Shard;
use crate::types::{Command, OrderId, Outcome, Reject, SkuId};

/// Where the runtime reads the time it hands to the shards.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Wall-clock epoch milliseconds.
    System,
    /// A clock that only moves when told: for tests and deterministic simulations.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System
    }

    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
            Clock::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock to `now_ms`; a system clock ignores it.
    pub fn set_ms(&self, now_ms: u64) {
        if let Clock::Manual(now) = self {
            now.store(now_ms, Ordering::Release);
        }
    }

    /// Moves a manual clock forward by `delta_ms`; a system clock ignores it.
    pub fn advance_ms(&self, delta_ms: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(delta_ms, Ordering::AcqRel);
        }
    }
}

/// How to start an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Shard threads. SKUs are spread over them by hash.
    pub shards: usize,
    /// Batches each shard's queue holds before submitters are answered `Busy`.
    pub queue_capacity_batches: usize,
    /// How often an idle shard wakes to expire holds.
    pub tick_interval_ms: u64,
    pub clock: Clock,
    /// SKUs the availability mirror can hold (beyond that, no fast path for the extra SKUs).
    pub mirror_capacity_skus: usize,
    /// At most this many queued batches are taken by a shard thread in one go.
    pub max_batches_per_wakeup: usize,
    /// Orders each shard (and the order directory) allocates room for at start, so a sale does not
    /// pause to grow a table of millions of entries. Reserved memory is paid for in page faults
    /// as orders first touch it; past this capacity tables grow by doubling, with a pause
    /// proportional to their size on that shard. Size it for the sale's expected orders.
    pub orders_capacity_per_shard: usize,
    /// Whether (and how) applied commands are journaled to disk; see [`crate::journal`].
    pub durability: Durability,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 2,
            queue_capacity_batches: 4096,
            tick_interval_ms: 10,
            clock: Clock::System,
            mirror_capacity_skus: 1 << 16,
            max_batches_per_wakeup: 64,
            orders_capacity_per_shard: 1 << 16,
            durability: Durability::Memory,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine config: {0}")]
    InvalidConfig(&'static str),
    #[error("could not start shard thread {shard}: {source}")]
    Spawn {
        shard: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("durability: {0}")]
    Journal(#[from] JournalError),
}

type DoneCallback = Box<dyn FnOnce(Vec<Outcome>) + Send>;

/// Outcomes of a batch that was split across shards, put back in input order.
struct Assembly {
    outcomes: Mutex<Vec<Outcome>>,
    parts_remaining: AtomicUsize,
    on_done: Mutex<Option<DoneCallback>>,
}

impl Assembly {
    /// Stores one part's outcomes; the last part to arrive hands the whole batch on.
    fn fill(&self, slots: &[u32], part: Vec<Outcome>) {
        debug_assert_eq!(slots.len(), part.len());
        {
            let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            for (&slot, outcome) in slots.iter().zip(part) {
                outcomes[slot as usize] = outcome;
            }
        }
        self.part_done();
    }

    fn part_done(&self) {
        if self.parts_remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let outcomes =
                std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|e| e.into_inner()));
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

enum ReplyTo {
    /// The whole batch went to one shard: its outcomes are the batch's outcomes.
    Whole(DoneCallback),
    /// One shard's part of a split batch: `slots[i]` is where outcome `i` belongs.
    Part {
        assembly: Arc<Assembly>,
        slots: Vec<u32>,
    },
}

impl ReplyTo {
    fn deliver(self, outcomes: Vec<Outcome>) {
        match self {
            ReplyTo::Whole(on_done) => on_done(outcomes),
            ReplyTo::Part { assembly, slots } => assembly.fill(&slots, outcomes),
        }
    }
}

struct ShardBatch {
    commands: Vec<Command>,
    reply: ReplyTo,
}

enum ShardMessage {
    Batch(ShardBatch),
    Stop,
}

/// Counters the runtime keeps; cheap to read at any time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Commands answered `Busy` because a shard queue was full.
    pub busy_rejections: u64,
    /// Reserves answered `SoldOut` by the mirror without entering a shard.
    pub fast_sold_out: u64,
    /// Pay / cancel / query answered `UnknownOrder` by the directory without entering a shard.
    pub fast_unknown_order: u64,
    /// Batches waiting in each shard's queue.
    pub queue_depths: Vec<usize>,
    /// Holds that expired, per shard total.
    pub expired_holds: u64,
}

struct Inner {
    senders: Vec<Sender<ShardMessage>>,
    mirror: Arc<AvailabilityMirror>,
    /// Which shard holds each order that was ever created. Written by the owning shard thread
    /// before the creating batch is answered, so a client that saw `held` always finds it.
    directory: Arc<DashMap<OrderId, u32, FxBuildHasher>>,
    busy_rejections: AtomicU64,
    fast_sold_out: AtomicU64,
    fast_unknown_order: AtomicU64,
    expired_holds: Arc<AtomicU64>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    clock: Clock,
    /// Set by a journal thread whose write or fsync failed: every submission is refused then.
    durability_failure: Arc<DurabilityFailure>,
    /// The data directory's lock, held until the engine has shut down.
    data_dir_lock: Mutex<Option<std::fs::File>>,
}

/// A running engine. Cheap to clone; every clone submits to the same shards.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Where a command goes after the submit-side checks.
enum Route {
    Shard(usize),
    Answered(Outcome),
}

impl Engine {
    /// Starts an engine. With [`Durability::Journal`] this is [`Engine::recover`]: the state
    /// is rebuilt from the data directory first.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        if matches!(config.durability, Durability::Journal(_)) {
            return Engine::recover(config).map(|(engine, _)| engine);
        }
        let capacity = config.orders_capacity_per_shard;
        Engine::start_with_shards(
            config.clone(),
            (0..config.shards).map(|_| Shard::with_capacity(capacity)),
        )
    }

    /// Starts with given shard states (recovery hands in rebuilt shards). The iterator must
    /// yield exactly `config.shards` shards.
    pub fn start_with_shards(
        config: EngineConfig,
        shards: impl IntoIterator<Item = Shard>,
    ) -> Result<Engine, EngineError> {
        if matches!(config.durability, Durability::Journal(_)) {
            return Err(EngineError::InvalidConfig(
                "start_with_shards runs without a journal: use Engine::recover",
            ));
        }
        Engine::start_inner(config, shards, Vec::new(), None)
    }

    fn start_inner(
        config: EngineConfig,
        shards: impl IntoIterator<Item = Shard>,
        journals: Vec<JournalStart>,
        data_dir_lock: Option<std::fs::File>,
    ) -> Result<Engine, EngineError> {
        if config.shards == 0 || config.shards > 1024 {
            return Err(EngineError::InvalidConfig(
                "shards must be between 1 and 1024",
            ));
        }
        if config.queue_capacity_batches == 0 {
            return Err(EngineError::InvalidConfig(
                "queue_capacity_batches must be at least 1",
            ));
        }
        if config.tick_interval_ms == 0 {
            return Err(EngineError::InvalidConfig(
                "tick_interval_ms must be at least 1",
            ));
        }
        let mut shards: Vec<Shard> = shards.into_iter().collect();
        if shards.len() != config.shards {
            return Err(EngineError::InvalidConfig(
                "the number of shard states must equal config.shards",
            ));
        }
        let mirror = Arc::new(AvailabilityMirror::new(config.mirror_capacity_skus));
        // Sized up front like the shards' tables: growing a table of millions of entries stalls
        // every submitter that touches it (measured: ~1 s at ~4M orders over TCP).
        let directory: Arc<DashMap<OrderId, u32, FxBuildHasher>> =
            Arc::new(DashMap::with_capacity_and_hasher(
                config
                    .shards
                    .saturating_mul(config.orders_capacity_per_shard),
                FxBuildHasher,
            ));
        // Touch the directory's memory now, as the shards do theirs (see `Shard::with_capacity`).
        // 90%: the capacity is split over the map's internal shards by hash, and no internal
        // shard may be pushed past its share (that would grow it, the very thing avoided here).
        for order_id in 0..(directory.capacity() as u64) * 9 / 10 {
            directory.insert(order_id, 0);
        }
        directory.clear();
        let expired_holds = Arc::new(AtomicU64::new(0));
        let durability_failure = Arc::new(DurabilityFailure::default());
        let mut journals: Vec<Option<JournalStart>> = journals.into_iter().map(Some).collect();
        journals.resize_with(config.shards, || None);
        let mut senders = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        for (index, mut shard) in shards.drain(..).enumerate() {
            // A recovered shard's state is published before any request can arrive.
            for view in shard.order_views() {
                directory.insert(view.order_id, index as u32);
            }
            shard.drain_created_orders(|_| {});
            for view in shard.sku_views() {
                mirror.publish(view.config.sku_id, view.available);
            }
            shard.drain_changed_skus(|_, _| {});
            let (sender, receiver) = bounded(config.queue_capacity_batches);
            let journal = match (journals[index].take(), &config.durability) {
                (Some(start), Durability::Journal(settings)) => Some(ShardJournal {
                    handle: JournalHandle::start(
                        JournalThreadSettings {
                            shard: index as u32,
                            shards: config.shards as u32,
                            shard_dir: start.shard_dir,
                            mode: settings.mode,
                            segment_max_bytes: settings.segment_max_bytes,
                            capacity_messages: settings.pipeline_capacity_records,
                        },
                        start.writer,
                        durability_failure.clone(),
                    )
                    .map_err(|source| EngineError::Spawn {
                        shard: index,
                        source,
                    })?,
                    mode: settings.mode,
                    next_seq: start.next_seq,
                    snapshot_every_commands: settings.snapshot_every_commands,
                    commands_since_snapshot: 0,
                    encoder: BytesMut::with_capacity(1 << 16),
                }),
                _ => None,
            };
            let worker = ShardWorker {
                journal,
                index: index as u32,
                shard,
                receiver,
                mirror: mirror.clone(),
                directory: directory.clone(),
                clock: config.clock.clone(),
                tick: Duration::from_millis(config.tick_interval_ms),
                max_batches_per_wakeup: config.max_batches_per_wakeup.max(1),
                expired_holds: expired_holds.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("flashsale-shard-{index}"))
                .spawn(move || worker.run())
                .map_err(|source| EngineError::Spawn {
                    shard: index,
                    source,
                })?;
            senders.push(sender);
            threads.push(thread);
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                senders,
                mirror,
                directory,
                busy_rejections: AtomicU64::new(0),
                fast_sold_out: AtomicU64::new(0),
                fast_unknown_order: AtomicU64::new(0),
                expired_holds,
                threads: Mutex::new(threads),
                clock: config.clock,
                durability_failure,
                data_dir_lock: Mutex::new(data_dir_lock),
            }),
        })
    }

    /// Recovers a journaled engine: opens (or creates) the data directory, rebuilds every
    /// shard from its newest valid snapshot and the journal after it (shards in parallel),
    /// truncates torn tails, and starts with the journal threads continuing each journal.
    /// Fails, naming the file and offset, on a corrupt record in the middle of a journal.
    /// Without a journal configured it is [`Engine::start`] with no reports.
    pub fn recover(config: EngineConfig) -> Result<(Engine, Vec<RecoveryReport>), EngineError> {
        let Durability::Journal(settings) = &config.durability else {
            return Engine::start(config).map(|engine| (engine, Vec::new()));
        };
        if config.shards == 0 || config.shards > 1024 {
            return Err(EngineError::InvalidConfig(
                "shards must be between 1 and 1024",
            ));
        }
        if let SyncMode::Async { fsync_interval_ms } = settings.mode
            && fsync_interval_ms == 0
        {
            return Err(EngineError::InvalidConfig(
                "fsync_interval_ms must be at least 1",
            ));
        }
        let lock = crate::journal::open_data_dir(&settings.dir, config.shards)?;
        let dir = settings.dir.as_path();
        let capacity = config.orders_capacity_per_shard;
        let recovered = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..config.shards)
                .map(|index| {
                    scope.spawn(move || {
                        crate::journal::recover_shard(dir, index, config.shards, capacity)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Vec<_>>()
        });
        let mut shards = Vec::with_capacity(config.shards);
        let mut journals = Vec::with_capacity(config.shards);
        let mut reports = Vec::with_capacity(config.shards);
        for (index, recovery) in recovered.into_iter().enumerate() {
            let recovery = recovery?;
            let shard_dir = crate::journal::shard_dir(dir, index);
            let writer = match &recovery.tail {
                Some((segment, len_bytes)) => {
                    SegmentWriter::append_to(&shard_dir, segment, *len_bytes)?
                }
                None => SegmentWriter::create_prepared(
                    &shard_dir,
                    recovery.next_seq,
                    settings.segment_max_bytes + crate::journal::segment::ZERO_AHEAD_BYTES,
                )?,
            };
            tracing::info!(
                shard = index,
                snapshot = ?recovery.report.snapshot,
                records = recovery.report.records_replayed,
                commands = recovery.report.commands_replayed,
                torn_tail = ?recovery.report.torn_tail,
                "shard recovered"
            );
            for (path, reason) in &recovery.report.invalid_snapshots {
                tracing::warn!(path = %path.display(), %reason, "snapshot skipped: invalid");
            }
            journals.push(JournalStart {
                shard_dir,
                writer,
                next_seq: recovery.next_seq,
            });
            shards.push(recovery.shard);
            reports.push(recovery.report);
        }
        let engine = Engine::start_inner(config, shards, journals, Some(lock))?;
        Ok((engine, reports))
    }

    /// Why the engine stopped accepting writes, if its journal failed (fail-stop: it refuses
    /// every command with `Busy` until restarted).
    pub fn durability_failure(&self) -> Option<String> {
        self.inner.durability_failure.reason().map(str::to_string)
    }

    pub fn shard_count(&self) -> usize {
        self.inner.senders.len()
    }

    /// The shard that owns `sku_id`.
    pub fn shard_of_sku(&self, sku_id: SkuId) -> usize {
        shard_of_sku(sku_id, self.inner.senders.len())
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Submits a batch without blocking. `on_done` receives one outcome per command, in input
    /// order; it runs on a shard thread (or on the caller's thread when no shard was needed),
    /// so it should be cheap — hand the outcomes to a channel. A shard whose queue is full
    /// answers `Busy` for its part of the batch.
    pub fn submit(
        &self,
        commands: Vec<Command>,
        on_done: impl FnOnce(Vec<Outcome>) + Send + 'static,
    ) {
        let inner = &*self.inner;
        if inner.durability_failure.is_failed() {
            // Fail-stop: the journal can no longer make anything durable.
            self.count_busy(commands.len());
            on_done(vec![Outcome::Rejected(Reject::Busy); commands.len()]);
            return;
        }
        let shard_count = inner.senders.len();
        let mut routes: Vec<Route> = Vec::with_capacity(commands.len());
        let mut single_shard: Option<usize> = None;
        let mut mixed = false;
        let mut fast_sold_out = 0u64;
        let mut fast_unknown = 0u64;
        for command in &commands {
            let route = self.route(command, shard_count);
            match route {
                Route::Shard(shard) => match single_shard {
                    None => single_shard = Some(shard),
                    Some(previous) if previous != shard => mixed = true,
                    Some(_) => {}
                },
                Route::Answered(Outcome::Rejected(Reject::SoldOut)) => fast_sold_out += 1,
                Route::Answered(_) => fast_unknown += 1,
            }
            routes.push(route);
        }
        if fast_sold_out > 0 {
            inner
                .fast_sold_out
                .fetch_add(fast_sold_out, Ordering::Relaxed);
        }
        if fast_unknown > 0 {
            inner
                .fast_unknown_order
                .fetch_add(fast_unknown, Ordering::Relaxed);
        }
        let answered_here = fast_sold_out + fast_unknown;
        let Some(first_shard) = single_shard else {
            // Nothing needs a shard.
            let outcomes = routes
                .into_iter()
                .map(|route| match route {
                    Route::Answered(outcome) => outcome,
                    Route::Shard(_) => unreachable!("no command was routed to a shard"),
                })
                .collect();
            on_done(outcomes);
            return;
        };
        if !mixed && answered_here == 0 {
            let count = commands.len();
            let batch = ShardBatch {
                commands,
                reply: ReplyTo::Whole(Box::new(on_done)),
            };
            if let Err(rejected) = self.send(first_shard, batch) {
                self.count_busy(count);
                rejected.deliver(vec![Outcome::Rejected(Reject::Busy); count]);
            }
            return;
        }
        // Split: group commands by shard, keep the answered ones in place.
        let mut parts: Vec<(Vec<Command>, Vec<u32>)> = vec![(Vec::new(), Vec::new()); shard_count];
        let mut outcomes = Vec::with_capacity(commands.len());
        for (slot, (command, route)) in commands.iter().zip(routes).enumerate() {
            match route {
                Route::Shard(shard) => {
                    parts[shard].0.push(*command);
                    parts[shard].1.push(slot as u32);
                    outcomes.push(Outcome::Rejected(Reject::Busy));
                }
                Route::Answered(outcome) => outcomes.push(outcome),
            }
        }
        let part_count = parts.iter().filter(|(cmds, _)| !cmds.is_empty()).count();
        let assembly = Arc::new(Assembly {
            outcomes: Mutex::new(outcomes),
            // One extra part held by this function so the batch cannot complete while parts are
            // still being sent.
            parts_remaining: AtomicUsize::new(part_count + 1),
            on_done: Mutex::new(Some(Box::new(on_done))),
        });
        for (shard, (part_commands, slots)) in parts.into_iter().enumerate() {
            if part_commands.is_empty() {
                continue;
            }
            let count = part_commands.len();
            let batch = ShardBatch {
                commands: part_commands,
                reply: ReplyTo::Part {
                    assembly: assembly.clone(),
                    slots,
                },
            };
            if let Err(rejected) = self.send(shard, batch) {
                self.count_busy(count);
                rejected.deliver(vec![Outcome::Rejected(Reject::Busy); count]);
            }
        }
        assembly.part_done();
    }

    /// Submits a batch and waits for its outcomes.
    pub fn submit_wait(&self, commands: Vec<Command>) -> Vec<Outcome> {
        let count = commands.len();
        let (sender, receiver) = bounded(1);
        self.submit(commands, move |outcomes| {
            // The receiver below waits for exactly this message.
            let _ = sender.send(outcomes);
        });
        receiver
            .recv()
            .unwrap_or_else(|_| vec![Outcome::Rejected(Reject::Busy); count])
    }

    /// Submits a batch and awaits its outcomes (runtime-agnostic future).
    pub async fn submit_async(&self, commands: Vec<Command>) -> Vec<Outcome> {
        let count = commands.len();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.submit(commands, move |outcomes| {
            // The receiver may have been dropped by a cancelled caller: nothing to do then.
            let _ = sender.send(outcomes);
        });
        receiver
            .await
            .unwrap_or_else(|_| vec![Outcome::Rejected(Reject::Busy); count])
    }

    /// Runs one command and waits for its outcome.
    pub fn execute(&self, command: Command) -> Outcome {
        self.submit_wait(vec![command])
            .pop()
            .unwrap_or(Outcome::Rejected(Reject::Busy))
    }

    /// Runs one command and awaits its outcome.
    pub async fn execute_async(&self, command: Command) -> Outcome {
        self.submit_async(vec![command])
            .await
            .pop()
            .unwrap_or(Outcome::Rejected(Reject::Busy))
    }

    /// Every SKU the engine knows with its last published availability, sorted by id.
    pub fn published_availability(&self) -> Vec<(SkuId, u64)> {
        self.inner.mirror.entries()
    }

    pub fn stats(&self) -> EngineStats {
        let inner = &*self.inner;
        EngineStats {
            busy_rejections: inner.busy_rejections.load(Ordering::Relaxed),
            fast_sold_out: inner.fast_sold_out.load(Ordering::Relaxed),
            fast_unknown_order: inner.fast_unknown_order.load(Ordering::Relaxed),
            queue_depths: inner.senders.iter().map(Sender::len).collect(),
            expired_holds: inner.expired_holds.load(Ordering::Relaxed),
        }
    }

    /// Stops every shard after the batches already queued are done, and waits for the threads.
    /// Later submissions answer `Busy`. Safe to call more than once.
    pub fn shutdown(&self) {
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if threads.is_empty() {
            return;
        }
        for sender in &self.inner.senders {
            // A blocking send: the stop marker queues behind the work already accepted.
            let _ = sender.send(ShardMessage::Stop);
        }
        for thread in threads {
            // A shard thread that panicked has already reported it; nothing to add here.
            let _ = thread.join();
        }
        // Every journal thread has written and synced what it had: the directory is free.
        self.inner
            .data_dir_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    #[inline]
    fn route(&self, command: &Command, shard_count: usize) -> Route {
        let inner = &*self.inner;
        match *command {
            Command::Reserve {
                order_id,
                sku_id,
                qty,
                ..
            } => {
                // Fast path: a sold-out SKU refuses new orders without entering the shard. A
                // known order id still goes to its shard, so a retry sees its order.
                if qty > 0
                    && inner
                        .mirror
                        .available(sku_id)
                        .is_some_and(|available| available < u64::from(qty))
                    && !inner.directory.contains_key(&order_id)
                {
                    return Route::Answered(Outcome::Rejected(Reject::SoldOut));
                }
                Route::Shard(shard_of_sku(sku_id, shard_count))
            }
            Command::UpsertSku(config) => Route::Shard(shard_of_sku(config.sku_id, shard_count)),
            Command::Restock { sku_id, .. } | Command::QuerySku { sku_id } => {
                Route::Shard(shard_of_sku(sku_id, shard_count))
            }
            Command::Pay { order_id, .. }
            | Command::Cancel { order_id, .. }
            | Command::QueryOrder { order_id } => match inner.directory.get(&order_id) {
                Some(shard) => Route::Shard(*shard as usize),
                None => Route::Answered(Outcome::Rejected(Reject::UnknownOrder)),
            },
        }
    }

    fn send(&self, shard: usize, batch: ShardBatch) -> Result<(), ReplyTo> {
        match self.inner.senders[shard].try_send(ShardMessage::Batch(batch)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(ShardMessage::Batch(batch)))
            | Err(TrySendError::Disconnected(ShardMessage::Batch(batch))) => Err(batch.reply),
            Err(_) => unreachable!("only batches are sent with try_send"),
        }
    }

    fn count_busy(&self, count: usize) {
        self.inner
            .busy_rejections
            .fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// The shard that owns `sku_id` among `shard_count` shards.
#[inline]
pub fn shard_of_sku(sku_id: SkuId, shard_count: usize) -> usize {
    // Multiply-shift: consecutive ids spread evenly, and it costs no division.
    let hash = u64::from(sku_id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    ((hash * shard_count as u64) >> 32) as usize
}

/// One shard thread: the only code that touches its `Shard`.
struct ShardWorker {
    /// The shard's journal, when durable: each wake-up's mutations become one record.
    journal: Option<ShardJournal>,
    index: u32,
    shard: Shard,
    receiver: Receiver<ShardMessage>,
    mirror: Arc<AvailabilityMirror>,
    directory: Arc<DashMap<OrderId, u32, FxBuildHasher>>,
    clock: Clock,
    tick: Duration,
    max_batches_per_wakeup: usize,
    expired_holds: Arc<AtomicU64>,
}

impl ShardWorker {
    fn run(mut self) {
        let mut inbox: Vec<ShardBatch> = Vec::with_capacity(self.max_batches_per_wakeup);
        loop {
            let mut stop = false;
            match self.receiver.recv_timeout(self.tick) {
                Ok(ShardMessage::Batch(batch)) => inbox.push(batch),
                Ok(ShardMessage::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !stop && inbox.len() < self.max_batches_per_wakeup {
                match self.receiver.try_recv() {
                    Ok(ShardMessage::Batch(batch)) => inbox.push(batch),
                    Ok(ShardMessage::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            self.process(&mut inbox);
            if stop {
                self.snapshot_at_stop();
                return;
            }
        }
    }

    /// Applies everything taken from the queue at one instant, publishes what changed, then
    /// answers. Publication comes before the replies, and the directory before the mirror, so a
    /// client that saw an answer (or a zero in the mirror) always finds the order it implies.
    fn process(&mut self, inbox: &mut Vec<ShardBatch>) {
        let now_ms = self.clock.now_ms();
        let expired = self.shard.advance_time(now_ms);
        if expired > 0 {
            self.expired_holds
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        if inbox.is_empty() {
            // An idle tick: expiry only. It is not journaled — replay re-derives it from the
            // next record's time, before that record's commands, exactly as here.
            self.publish();
            return;
        }
        // The time the shard actually applies at (it never goes backwards).
        let applied_ms = self.shard.now_ms();
        let mut record = self.journal.as_mut().map(|journal| {
            let seq = journal.next_seq;
            RecordBuilder::begin(&mut journal.encoder, seq, applied_ms)
        });
        let mut answered: Vec<(ReplyTo, Vec<Outcome>)> = Vec::with_capacity(inbox.len());
        for batch in inbox.drain(..) {
            let mut outcomes = Vec::with_capacity(batch.commands.len());
            self.shard.apply(applied_ms, &batch.commands, &mut outcomes);
            if let (Some(record), Some(journal)) = (record.as_mut(), self.journal.as_mut()) {
                // A refusal changed nothing, so replay does not need it: in a sale most commands
                // that reach a shard after the sell-out are refusals.
                let changed = batch
                    .commands
                    .iter()
                    .zip(&outcomes)
                    .filter(|(command, outcome)| {
                        command.is_mutation() && !matches!(outcome, Outcome::Rejected(_))
                    });
                for (command, _) in changed {
                    record.push(&mut journal.encoder, command);
                }
            }
            answered.push((batch.reply, outcomes));
        }
        self.publish();
        match (self.journal.as_mut(), record) {
            (Some(journal), Some(record)) => {
                let count = record.finish(&mut journal.encoder);
                journal.hand_over(count, PendingReplies(answered));
                if journal.snapshot_due() {
                    let seq = journal.next_seq - 1;
                    let mut state = Vec::new();
                    self.shard.encode_snapshot(&mut state);
                    journal.snapshot(seq, state);
                }
            }
            _ => {
                for (reply, outcomes) in answered {
                    reply.deliver(outcomes);
                }
            }
        }
    }

    /// Publishes what the last apply changed: the directory before the mirror.
    fn publish(&mut self) {
        let index = self.index;
        let directory = &self.directory;
        self.shard.drain_created_orders(|order_id| {
            directory.insert(order_id, index);
        });
        let mirror = &self.mirror;
        self.shard
            .drain_changed_skus(|sku_id, available| mirror.publish(sku_id, available));
    }

    /// On a clean stop, a snapshot of whatever was journaled since the last one, so the next
    /// start replays little.
    fn snapshot_at_stop(&mut self) {
        if let Some(journal) = self.journal.as_mut()
            && journal.snapshot_every_commands > 0
            && journal.commands_since_snapshot > 0
        {
            let mut state = Vec::new();
            self.shard.encode_snapshot(&mut state);
            let seq = journal.next_seq - 1;
            journal.snapshot(seq, state);
        }
    }
}

/// Where a recovered shard's journal continues.
struct JournalStart {
    shard_dir: std::path::PathBuf,
    writer: SegmentWriter,
    next_seq: u64,
}

/// A shard thread's side of its journal.
struct ShardJournal {
    handle: JournalHandle<PendingReplies>,
    mode: SyncMode,
    /// Sequence the next record gets.
    next_seq: u64,
    snapshot_every_commands: u64,
    commands_since_snapshot: u64,
    /// The record being built; split off and handed to the journal thread per wake-up.
    encoder: BytesMut,
}

impl ShardJournal {
    /// Hands the wake-up's record (if it holds `count` > 0 commands) to the journal thread.
    /// Sync: the replies go with it and are sent once it is on disk. Async: they go now.
    fn hand_over(&mut self, count: u32, replies: PendingReplies) {
        let first_seq = self.next_seq;
        if count > 0 {
            self.next_seq += 1;
            self.commands_since_snapshot += u64::from(count);
        }
        let bytes = self.encoder.split();
        match self.mode {
            SyncMode::Sync => self.handle.send(JournalMessage::Write {
                bytes,
                first_seq,
                replies: Some(replies),
            }),
            SyncMode::Async { .. } => {
                if count > 0 {
                    self.handle.send(JournalMessage::Write {
                        bytes,
                        first_seq,
                        replies: None,
                    });
                }
                replies.acknowledge();
            }
        }
    }

    fn snapshot_due(&self) -> bool {
        self.snapshot_every_commands > 0
            && self.commands_since_snapshot >= self.snapshot_every_commands
    }

    fn snapshot(&mut self, seq: u64, state: Vec<u8>) {
        self.commands_since_snapshot = 0;
        self.handle.send(JournalMessage::Snapshot { seq, state });
    }
}

/// The replies of one wake-up, waiting for its record to be durable.
struct PendingReplies(Vec<(ReplyTo, Vec<Outcome>)>);

impl Acknowledge for PendingReplies {
    fn acknowledge(self) {
        for (reply, outcomes) in self.0 {
            reply.deliver(outcomes);
        }
    }

    fn refuse(self) {
        for (reply, outcomes) in self.0 {
            reply.deliver(vec![Outcome::Rejected(Reject::Busy); outcomes.len()]);
        }
    }
}
