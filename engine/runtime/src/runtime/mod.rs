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

mod clock;
mod config;
mod recovery;
mod worker;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::bounded;

use crate::directory::Directory;
use crate::inbox::{self, InboxSender};
use crate::journal::{Durability, DurabilityFailure, JournalStart, ShardJournal};
use crate::mirror::AvailabilityMirror;
use crate::routing::{DoneCallback, Linearisation, ShardBatch, StreamState};
use crate::shard::Shard;
use crate::types::{Command, Outcome, Reject, SkuId};

pub use self::clock::Clock;
pub use self::config::{EngineConfig, EngineError};
use self::worker::ShardWorker;
pub use crate::routing::Stream;

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
        config.validate()?;
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
                (Some(start), Durability::Journal(settings)) => Some(
                    ShardJournal::start(
                        index,
                        config.shards,
                        start,
                        settings,
                        durability_failure.clone(),
                    )
                    .map_err(|source| EngineError::Spawn {
                        shard: index,
                        source,
                    })?,
                ),
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
