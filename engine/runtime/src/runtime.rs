//! The runtime: N shard threads, each the single writer of one [`Shard`], fed batches of
//! commands through bounded inboxes ([`crate::inbox`]: a submitter never waits for a shard).
//! It owns the clock (time is read here and handed to the shard), the shard threads — apply,
//! settle the order claims, publish availability to the [`AvailabilityMirror`], reply — and
//! their idle wake-ups, which come when the next hold falls due rather than on a fixed tick.
//! Routing and reassembly are [`crate::routing`]'s; the order claims are [`crate::directory`]'s.
//!
//! Data flows one way: submitter → shard queue → shard thread (apply, publish, reply). A full
//! queue answers `Busy` at once; nothing queues without bound. This module must not decide any
//! business rule — every decision that changes state is the shard's.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use crossbeam_channel::bounded;

use crate::directory::Directory;
use crate::inbox::{self, InboxEmpty, InboxReceiver, InboxSender};
use crate::journal::pipeline::JournalThreadSettings;
use crate::journal::record::RecordBuilder;
use crate::journal::segment::SegmentWriter;
use crate::journal::{
    Acknowledge, Durability, DurabilityFailure, JournalError, JournalHandle, JournalMessage,
    RecoveryReport, SyncMode,
};
use crate::mirror::AvailabilityMirror;
use crate::routing::{
    AfterUnlock, Applied, DoneCallback, Linearisation, ReplyTo, ShardBatch, StreamState,
};
use crate::shard::Shard;
use crate::types::{Command, Outcome, Reject, SkuId};

pub use crate::routing::Stream;

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
    /// The least time between two idle wake-ups of a shard. With the system clock an idle
    /// shard wakes only when its next hold falls due (no holds: never); with a manual clock,
    /// which moves unseen, it looks at the clock this often.
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
    /// For tests: records the order every command was applied in (see [`Linearisation`]).
    pub linearisation: Option<Arc<Linearisation>>,
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
            linearisation: None,
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

pub(crate) enum ShardMessage {
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
    /// Reserves that waited for another shard's claim on their order id to settle.
    pub waited_reserves: u64,
    /// Batches waiting in each shard's queue.
    pub queue_depths: Vec<usize>,
    /// Holds that expired, per shard total.
    pub expired_holds: u64,
}

pub(crate) struct Inner {
    pub(crate) senders: Vec<InboxSender<ShardMessage>>,
    pub(crate) mirror: Arc<AvailabilityMirror>,
    /// Which shard holds, or may create, each order id (claims made when routing).
    pub(crate) directory: Arc<Directory<Arc<StreamState>>>,
    /// Per shard, when its next hold falls due (`u64::MAX`: none), published by its thread
    /// after each wake-up: the mirror's values are exact only before that instant.
    pub(crate) next_expiry_ms: Arc<[AtomicU64]>,
    /// Per shard, cancels in flight of orders whose SKU is not final yet (see routing).
    pub(crate) shard_raising: Arc<[AtomicU32]>,
    pub(crate) linearisation: Option<Arc<Linearisation>>,
    pub(crate) busy_rejections: AtomicU64,
    pub(crate) fast_sold_out: AtomicU64,
    pub(crate) fast_unknown_order: AtomicU64,
    pub(crate) waited_reserves: AtomicU64,
    expired_holds: Arc<AtomicU64>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) clock: Clock,
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
        let directory = Arc::new(Directory::with_capacity(
            config
                .shards
                .saturating_mul(config.orders_capacity_per_shard),
        ));
        let next_expiry_ms: Arc<[AtomicU64]> = (0..config.shards)
            .map(|_| AtomicU64::new(u64::MAX))
            .collect();
        let shard_raising: Arc<[AtomicU32]> =
            (0..config.shards).map(|_| AtomicU32::new(0)).collect();
        // The shard threads reach the engine (to route the streams they wake) through this,
        // set once the engine exists; weak, so that dropping every `Engine` still stops them.
        let engine: Arc<OnceLock<Weak<Inner>>> = Arc::default();
        let expired_holds = Arc::new(AtomicU64::new(0));
        let durability_failure = Arc::new(DurabilityFailure::default());
        let mut journals: Vec<Option<JournalStart>> = journals.into_iter().map(Some).collect();
        journals.resize_with(config.shards, || None);
        let mut senders = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        for (index, mut shard) in shards.drain(..).enumerate() {
            // A recovered shard's state is published before any request can arrive.
            for view in shard.order_views() {
                directory.insert_committed(view.order_id, view.sku_id);
            }
            shard.drain_created_orders(|_| {});
            for view in shard.sku_views() {
                mirror.publish(view.config.sku_id, view.available);
            }
            shard.drain_changed_skus(|_, _| {});
            next_expiry_ms[index].store(
                shard.next_expiry_ms().unwrap_or(u64::MAX),
                Ordering::Release,
            );
            let (sender, receiver) = inbox::queue(config.queue_capacity_batches);
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
                engine: engine.clone(),
                next_expiry_ms: next_expiry_ms.clone(),
                linearisation: config.linearisation.clone(),
                clock: config.clock.clone(),
                tick: Duration::from_millis(config.tick_interval_ms),
                max_batches_per_wakeup: config.max_batches_per_wakeup.max(1),
                expired_holds: expired_holds.clone(),
                failure: durability_failure.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("flashsale-shard-{index}"))
                .spawn(move || worker.run())
                .map_err(|source| EngineError::Spawn {
                    shard: index,
                    source,
                })?;
            senders.push(InboxSender::new(sender, thread.thread().clone()));
            threads.push(thread);
        }
        let inner = Arc::new(Inner {
            senders,
            mirror,
            directory,
            next_expiry_ms,
            shard_raising,
            linearisation: config.linearisation,
            busy_rejections: AtomicU64::new(0),
            fast_sold_out: AtomicU64::new(0),
            fast_unknown_order: AtomicU64::new(0),
            waited_reserves: AtomicU64::new(0),
            expired_holds,
            threads: Mutex::new(threads),
            clock: config.clock,
            durability_failure,
            data_dir_lock: Mutex::new(data_dir_lock),
        });
        engine.set(Arc::downgrade(&inner)).expect("set once, here");
        Ok(Engine { inner })
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

    /// Why the engine stopped, if it did: its journal failed (a write or an fsync), or a shard
    /// found its state broken (a violated invariant). Fail-stop: it refuses every command with
    /// `Busy` until restarted, and a restart recovers from what is on disk.
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
    /// answers `Busy` for its part of the batch. The batch's commands are routed in order; use
    /// a [`Stream`] to keep that order across the batches of one client.
    pub fn submit(
        &self,
        commands: Vec<Command>,
        on_done: impl FnOnce(Vec<Outcome>) + Send + 'static,
    ) {
        self.submit_on(None, commands, Box::new(on_done));
    }

    /// A new stream: batches submitted through it are routed in the order submitted (one per
    /// client connection).
    pub fn stream(&self) -> Stream {
        Stream::new(self.clone())
    }

    pub(crate) fn submit_on(
        &self,
        stream: Option<&Arc<StreamState>>,
        commands: Vec<Command>,
        on_done: DoneCallback,
    ) {
        let inner = &*self.inner;
        if inner.durability_failure.is_failed() {
            // Fail-stop: the journal can no longer make anything durable.
            inner
                .busy_rejections
                .fetch_add(commands.len() as u64, Ordering::Relaxed);
            on_done(vec![Outcome::Rejected(Reject::Busy); commands.len()]);
            return;
        }
        inner.submit(stream, commands, on_done);
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
            waited_reserves: inner.waited_reserves.load(Ordering::Relaxed),
            queue_depths: inner.senders.iter().map(InboxSender::len).collect(),
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
            // The stop marker queues behind the work already accepted.
            sender.send_waiting(ShardMessage::Stop);
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
    receiver: InboxReceiver<ShardMessage>,
    mirror: Arc<AvailabilityMirror>,
    /// The engine, to settle claims and route the streams that waited on them.
    engine: Arc<OnceLock<Weak<Inner>>>,
    next_expiry_ms: Arc<[AtomicU64]>,
    linearisation: Option<Arc<Linearisation>>,
    clock: Clock,
    tick: Duration,
    max_batches_per_wakeup: usize,
    expired_holds: Arc<AtomicU64>,
    /// The engine's fail-stop state, shared with the journal threads and the submitters.
    failure: Arc<DurabilityFailure>,
}

/// One batch as a shard applied it: its first linearisation stamp (tests) and its outcomes.
type AppliedBatch = (Option<u64>, Vec<Outcome>);

impl ShardWorker {
    fn run(mut self) {
        let mut inbox: Vec<ShardBatch> = Vec::with_capacity(self.max_batches_per_wakeup);
        loop {
            let mut stop = false;
            match self.receiver.recv(self.idle_wait()) {
                Ok(ShardMessage::Batch(batch)) => inbox.push(batch),
                Ok(ShardMessage::Stop) | Err(InboxEmpty::Closed) => stop = true,
                Err(InboxEmpty::Timeout) => {}
            }
            while !stop && inbox.len() < self.max_batches_per_wakeup {
                match self.receiver.try_recv() {
                    Some(ShardMessage::Batch(batch)) => inbox.push(batch),
                    Some(ShardMessage::Stop) => stop = true,
                    None => break,
                }
            }
            self.process(&mut inbox);
            if stop {
                self.snapshot_at_stop();
                return;
            }
        }
    }

    /// How long an idle shard may sleep: until its next hold falls due (but at least a tick,
    /// so that a stream of expiries is handled in batches), or for ever if none is pending. A
    /// manual clock moves without telling anyone, so with it the shard looks every tick.
    fn idle_wait(&self) -> Option<Duration> {
        if self.failure.is_failed() {
            // Nothing is applied any more: wake only to refuse what arrives.
            return None;
        }
        match self.clock {
            Clock::Manual(_) => Some(self.tick),
            Clock::System => self.shard.next_expiry_ms().map(|due_ms| {
                Duration::from_millis(due_ms.saturating_sub(self.clock.now_ms())).max(self.tick)
            }),
        }
    }

    /// Applies everything taken from the queue at one instant, settles the order claims, publishes
    /// what changed, then answers. The claims come before the mirror and both before the replies,
    /// so a client that saw an answer (or a zero in the mirror) always finds the order it
    /// implies.
    ///
    /// Fail-stop: once the engine has failed (a journal's write or fsync, or a shard's violated
    /// invariant), nothing is applied any more and every batch is answered `Busy`. A violated
    /// invariant panics inside the shard; the panic is caught here before anything of that
    /// wake-up was published, journaled or answered, so the wake-up is refused as a whole.
    fn process(&mut self, inbox: &mut Vec<ShardBatch>) {
        if self.failure.is_failed() {
            self.refuse(inbox);
            return;
        }
        let now_ms = self.clock.now_ms();
        let applied = panic::catch_unwind(AssertUnwindSafe(|| self.apply_all(now_ms, inbox)));
        let (expired, applied) = match applied {
            Ok(applied) => applied,
            Err(panic) => {
                self.fail_stop(panic.as_ref());
                self.refuse(inbox);
                return;
            }
        };
        if expired > 0 {
            self.expired_holds
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        if inbox.is_empty() {
            // An idle wake-up: expiry only. It is not journaled — replay re-derives it from the
            // next record's time, before that record's commands, exactly as here.
            self.publish();
            return;
        }
        self.settle_and_answer(inbox, applied);
    }

    /// The shard's part of a wake-up: expire what is due at `now_ms`, then apply every batch.
    /// Returns how many holds expired and, per batch, its first linearisation stamp (tests) and
    /// its outcomes. All that can find the shard's state broken happens here.
    fn apply_all(&mut self, now_ms: u64, inbox: &[ShardBatch]) -> (usize, Vec<AppliedBatch>) {
        let expired = self.shard.advance_time(now_ms);
        // The time the shard actually applies at (it never goes backwards).
        let applied_ms = self.shard.now_ms();
        let applied = inbox
            .iter()
            .map(|batch| {
                let first_stamp = self
                    .linearisation
                    .as_ref()
                    .map(|l| l.stamps(batch.commands.len()));
                let mut outcomes = Vec::with_capacity(batch.commands.len());
                self.shard.apply(applied_ms, &batch.commands, &mut outcomes);
                (first_stamp, outcomes)
            })
            .collect();
        (expired, applied)
    }

    /// Stops the engine after a panic on this shard (a violated invariant): records why — from
    /// then on every command is refused — and never touches the shard's state again.
    fn fail_stop(&mut self, panic: &(dyn std::any::Any + Send)) {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        let reason = format!(
            "shard {} stopped, refusing all commands until restart: {what}",
            self.index
        );
        tracing::error!("{reason}");
        self.failure.fail(reason);
    }

    /// Answers every batch `Busy` without applying it (fail-stop), giving back what routing
    /// took for it, as a full queue does.
    fn refuse(&self, inbox: &mut Vec<ShardBatch>) {
        let engine = self.engine.get().and_then(Weak::upgrade);
        let mut after = AfterUnlock::default();
        for batch in inbox.drain(..) {
            let count = batch.commands.len();
            if let Some(engine) = &engine {
                engine.release(self.index as usize, &batch, None, &mut after);
                engine
                    .busy_rejections
                    .fetch_add(count as u64, Ordering::Relaxed);
            }
            batch
                .reply
                .deliver(vec![Outcome::Rejected(Reject::Busy); count]);
        }
        if let Some(engine) = &engine {
            engine.finish(after);
        }
    }

    /// Settles the claims of the batches just applied, journals what changed, publishes, then
    /// answers (in sync mode, once the journal has the record on disk).
    fn settle_and_answer(&mut self, inbox: &mut Vec<ShardBatch>, applied: Vec<AppliedBatch>) {
        let engine = self.engine.get().and_then(Weak::upgrade);
        let mut after = AfterUnlock::default();
        let applied_ms = self.shard.now_ms();
        let mut record = self.journal.as_mut().map(|journal| {
            let seq = journal.next_seq;
            RecordBuilder::begin(&mut journal.encoder, seq, applied_ms)
        });
        let mut answered: Vec<(ReplyTo, Vec<Outcome>)> = Vec::with_capacity(inbox.len());
        let mut raised: Vec<SkuId> = Vec::new();
        let mut shard_raised = 0u32;
        for (mut batch, (first_stamp, outcomes)) in inbox.drain(..).zip(applied) {
            if let (Some(linearisation), Some(first)) = (&self.linearisation, first_stamp) {
                linearisation.record(batch.commands.iter().zip(&outcomes).enumerate().map(
                    |(at, (command, outcome))| Applied {
                        stamp: first + at as u64,
                        now_ms: applied_ms,
                        command: *command,
                        outcome: outcome.clone(),
                    },
                ));
            }
            if let Some(engine) = &engine {
                engine.release(self.index as usize, &batch, Some(&outcomes), &mut after);
            }
            raised.append(&mut batch.raised);
            shard_raised += batch.shard_raised;
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
        if let Some(engine) = &engine {
            engine.end_raises(self.index as usize, &raised, shard_raised);
        }
        self.journal_and_reply(record, answered);
        // Streams that waited on a claim settled here go on now, routed from this thread.
        if let Some(engine) = &engine {
            engine.finish(after);
        }
    }

    /// Hands the wake-up's record and its replies to the journal (which answers once the record
    /// is durable, in sync mode), or answers at once without a journal.
    fn journal_and_reply(
        &mut self,
        record: Option<RecordBuilder>,
        answered: Vec<(ReplyTo, Vec<Outcome>)>,
    ) {
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

    /// Publishes what the last apply changed to the mirror, then when the next hold falls due
    /// (until then the mirror's values are exact).
    fn publish(&mut self) {
        // Creations were settled in the directory from the outcomes already.
        self.shard.drain_created_orders(|_| {});
        let mirror = &self.mirror;
        self.shard
            .drain_changed_skus(|sku_id, available| mirror.publish(sku_id, available));
        self.next_expiry_ms[self.index as usize].store(
            self.shard.next_expiry_ms().unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }

    /// On a clean stop, a snapshot of whatever was journaled since the last one, so the next
    /// start replays little.
    fn snapshot_at_stop(&mut self) {
        if self.failure.is_failed() {
            // A failed engine's state is not to be trusted, nor a broken shard's: recovery
            // starts from the last snapshot and journal as they are.
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{Corruption, INVARIANT_VIOLATED};
    use crate::types::SkuConfig;

    /// Two shards, SKU `broken` on one of them in a state a bug could leave (one unit counted
    /// held that no order holds), SKU `sound` on the other.
    fn engine_with_a_broken_shard() -> (Engine, u32, u32) {
        let config = EngineConfig {
            shards: 2,
            clock: Clock::manual(1_000),
            ..EngineConfig::default()
        };
        let (broken, sound) = (
            1u32,
            (2..100)
                .find(|&sku| shard_of_sku(sku, 2) != shard_of_sku(1, 2))
                .unwrap(),
        );
        let shards = (0..2).map(|index| {
            let mut shard = Shard::with_capacity(64);
            for sku in [broken, sound] {
                if shard_of_sku(sku, 2) == index {
                    let upsert = Command::UpsertSku(SkuConfig::simple(sku, 10, 5, 60_000));
                    shard.apply(1_000, &[upsert], &mut Vec::new());
                }
            }
            if shard_of_sku(broken, 2) == index {
                shard.corrupt(Corruption::HeldUnits(broken));
            }
            shard
        });
        let engine = Engine::start_with_shards(config, shards).expect("engine starts");
        (engine, broken, sound)
    }

    fn reserve(order_id: u64, sku_id: u32) -> Command {
        Command::Reserve {
            order_id,
            user_id: order_id,
            sku_id,
            qty: 1,
        }
    }

    #[test]
    fn a_sound_engine_serves_both_skus() {
        let (engine, broken, sound) = engine_with_a_broken_shard();
        assert!(matches!(
            engine.execute(reserve(1, sound)),
            Outcome::Created(_)
        ));
        assert!(matches!(
            engine.execute(Command::QuerySku { sku_id: broken }),
            Outcome::Sku(_)
        ));
        assert_eq!(engine.durability_failure(), None);
        engine.shutdown();
    }

    /// A violated invariant stops the engine fail-stop, as a failed fsync does: the wake-up that
    /// found it is refused `Busy` (nothing of it is kept), and so is everything after it, on
    /// every shard, with the reason on record; shutdown still completes.
    #[test]
    fn a_violated_invariant_stops_the_engine() {
        let (engine, broken, sound) = engine_with_a_broken_shard();
        let outcomes = engine.submit_wait(vec![reserve(1, broken), reserve(2, broken)]);
        assert_eq!(outcomes, vec![Outcome::Rejected(Reject::Busy); 2]);
        let reason = engine.durability_failure().expect("the engine has stopped");
        assert!(reason.contains(INVARIANT_VIOLATED), "{reason}");
        assert!(
            reason.contains("stock conservation broken for sku 1"),
            "{reason}"
        );
        // Nothing is served any more, on the broken shard or the sound one, nor by the router.
        for command in [
            reserve(3, sound),
            reserve(4, broken),
            Command::QuerySku { sku_id: broken },
            Command::QueryOrder { order_id: 1 },
        ] {
            assert_eq!(
                engine.execute(command),
                Outcome::Rejected(Reject::Busy),
                "{command:?}"
            );
        }
        assert!(engine.stats().busy_rejections >= 6);
        engine.shutdown();
    }

    /// The broken shard refuses what was already queued to it when the failure came, and gives
    /// back the claims those commands took (a stream waiting on one goes on, and is refused).
    #[test]
    fn batches_queued_behind_the_violation_are_refused_and_release_their_claims() {
        let (engine, broken, sound) = engine_with_a_broken_shard();
        let (sender, receiver) = crossbeam_channel::unbounded();
        let stream = engine.stream();
        for batch in [
            vec![reserve(1, broken)],
            vec![
                reserve(2, broken),
                Command::Pay {
                    order_id: 2,
                    user_id: 2,
                },
            ],
            // Order 2 again, for the other shard's SKU: it waits for the claim on the broken one.
            vec![reserve(2, sound)],
        ] {
            let sender = sender.clone();
            stream.submit(batch, move |outcomes| {
                let _ = sender.send(outcomes);
            });
        }
        for _ in 0..3 {
            let outcomes = receiver
                .recv_timeout(Duration::from_secs(10))
                .expect("every batch is answered");
            assert!(
                outcomes
                    .iter()
                    .all(|o| *o == Outcome::Rejected(Reject::Busy)),
                "{outcomes:?}"
            );
        }
        engine.shutdown();
    }
}
