//! The gateway batcher: HTTP handlers carry one command each, and submitting one engine batch
//! per request would cost a shard wake-up (and a worker wake-up for the answer) per request.
//! Handlers instead add (command, reply slot) to a pending batch owned by the worker thread
//! they run on, and each worker keeps at most one batch in the engine at a time:
//! - if the worker has no batch in the engine, the first handler to add a command becomes the
//!   leader, yields once (tokio defers the yield until the worker has polled every other
//!   ready task and the I/O driver), then submits what the worker's connections accumulated;
//! - while a batch is in the engine, new commands just wait in the pending batch. The batch's
//!   end (the engine's completion callback, on a shard or journal thread) only answers its
//!   handlers and wakes the slot's driver task, which submits the waiting commands as the
//!   next batch from the runtime. Nothing here is called back upstream: `Engine::submit` runs
//!   only on the gateway's own tasks, never on an engine thread, and a batch answered `Busy`
//!   synchronously does not recurse into the next submit.
//!
//! Batches therefore grow with load instead of with a timer; a batch holds at most
//! `max_batch` commands. A leader that is cancelled still submits (from its destructor) and a
//! batch the engine drops unanswered still releases its slot, so no command is ever stranded.
//! At most `capacity` commands may be pending or in the engine through the gateway; past
//! that, `execute` answers `Busy` at once (the caller maps it to 503). This module owns the
//! pending batches; it must not decide any business rule or touch the shards other than
//! through `Engine::submit`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{Notify, oneshot};

use crate::runtime::Engine;
use crate::types::{Command, Outcome, Reject};

/// Pending batches: one per worker thread normally (threads are assigned slots round robin;
/// two threads sharing a slot only share batches, which stays correct).
const SLOTS: usize = 8;

#[derive(Default)]
struct Pending {
    commands: Vec<Command>,
    replies: Vec<oneshot::Sender<Outcome>>,
    /// A handler has promised to submit this batch after its yield.
    led: bool,
    /// A batch from this slot is in the engine; its end wakes the driver for the next one.
    in_engine: bool,
}

struct Inner {
    engine: Engine,
    slots: Box<[Mutex<Pending>]>,
    /// One per slot: a batch's end wakes the slot's driver task through it.
    wakes: Arc<[Notify]>,
    capacity: usize,
    max_batch: usize,
    in_flight: AtomicUsize,
}

/// A cheap handle to the batcher.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

fn slot_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SLOT.with(|slot| match slot.get() {
        Some(index) => index,
        None => {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            slot.set(Some(index));
            index
        }
    })
}

/// One batch in the engine. Whether it is answered or dropped unanswered (the engine dropped
/// the callback), its end releases the capacity and wakes the slot's driver.
struct InEngine {
    inner: Arc<Inner>,
    slot: usize,
    senders: Vec<oneshot::Sender<Outcome>>,
}

impl InEngine {
    fn answer(mut self, outcomes: Vec<Outcome>) {
        let senders = std::mem::take(&mut self.senders);
        // Released before the answers go out, so a handler that has its answer never sees its
        // own command still counted.
        self.inner
            .in_flight
            .fetch_sub(senders.len(), Ordering::Relaxed);
        for (reply, outcome) in senders.into_iter().zip(outcomes) {
            // A handler whose client went away dropped its receiver: nothing to tell.
            let _ = reply.send(outcome);
        }
        // Dropping `self` hands the slot on.
    }
}

impl Drop for InEngine {
    fn drop(&mut self) {
        // Unanswered senders (if any) are dropped: their handlers see `Busy`.
        let unanswered = std::mem::take(&mut self.senders);
        self.inner
            .in_flight
            .fetch_sub(unanswered.len(), Ordering::Relaxed);
        drop(unanswered);
        let waiting = {
            let mut pending = self.inner.lock(self.slot);
            pending.in_engine = false;
            // A leader about to submit takes the waiting commands itself.
            !pending.commands.is_empty() && !pending.led
        };
        if waiting {
            self.inner.wakes[self.slot].notify_one();
        }
    }
}

impl Inner {
    fn lock(&self, slot: usize) -> MutexGuard<'_, Pending> {
        self.slots[slot].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits the slot's pending commands unless a batch is already in the engine (that
    /// batch's end will wake the driver). `lead_done` says the caller is the slot's leader.
    /// Called only from the gateway's tasks: handlers and the slot's driver.
    fn submit_next(this: &Arc<Inner>, slot: usize, lead_done: bool) {
        let (commands, senders) = {
            let mut pending = this.lock(slot);
            if lead_done {
                pending.led = false;
            }
            if pending.in_engine || pending.commands.is_empty() {
                return;
            }
            pending.in_engine = true;
            let take = pending.commands.len().min(this.max_batch);
            let commands: Vec<Command> = if take == pending.commands.len() {
                std::mem::take(&mut pending.commands)
            } else {
                pending.commands.drain(..take).collect()
            };
            let senders: Vec<oneshot::Sender<Outcome>> = if take == pending.replies.len() {
                std::mem::take(&mut pending.replies)
            } else {
                pending.replies.drain(..take).collect()
            };
            (commands, senders)
        };
        // Never submit under the lock: the engine may answer synchronously.
        let batch = InEngine {
            inner: this.clone(),
            slot,
            senders,
        };
        #[cfg(test)]
        let _probe = tests::SubmitProbe::enter();
        this.engine
            .submit(commands, move |outcomes| batch.answer(outcomes));
    }
}

/// A slot's driver: submits the slot's next batch whenever a batch's end wakes it. Holds the
/// gateway weakly, so it ends once the gateway is gone (whose drop wakes it a last time).
async fn drive(inner: Weak<Inner>, wakes: Arc<[Notify]>, slot: usize) {
    loop {
        wakes[slot].notified().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Inner::submit_next(&inner, slot, false);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for wake in self.wakes.iter() {
            wake.notify_one();
        }
    }
}

/// The leader's promise to submit its slot's batch, kept even if its request is cancelled
/// mid-yield.
struct Leader<'a> {
    inner: &'a Arc<Inner>,
    slot: usize,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        Inner::submit_next(self.inner, self.slot, true);
    }
}

impl Gateway {
    /// `capacity` bounds the commands pending or in the engine through the gateway;
    /// `max_batch` bounds one engine batch. Spawns the slots' driver tasks, so it must be
    /// called within a tokio runtime.
    pub fn new(engine: Engine, capacity: usize, max_batch: usize) -> Gateway {
        let wakes: Arc<[Notify]> = (0..SLOTS).map(|_| Notify::new()).collect();
        let inner = Arc::new(Inner {
            engine,
            slots: (0..SLOTS).map(|_| Mutex::new(Pending::default())).collect(),
            wakes: wakes.clone(),
            capacity: capacity.max(1),
            max_batch: max_batch.max(1),
            in_flight: AtomicUsize::new(0),
        });
        for slot in 0..SLOTS {
            tokio::spawn(drive(Arc::downgrade(&inner), wakes.clone(), slot));
        }
        Gateway { inner }
    }

    /// Runs one command through a shared batch. `Busy` when the gateway is full.
    pub async fn execute(&self, command: Command) -> Outcome {
        let inner = &self.inner;
        if inner.in_flight.fetch_add(1, Ordering::Relaxed) >= inner.capacity {
            inner.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Outcome::Rejected(Reject::Busy);
        }
        let (reply, answer) = oneshot::channel();
        let slot = slot_index();
        let leader = {
            let mut pending = inner.lock(slot);
            pending.commands.push(command);
            pending.replies.push(reply);
            if pending.led || pending.in_engine {
                None
            } else {
                pending.led = true;
                Some(Leader { inner, slot })
            }
        };
        if let Some(leader) = leader {
            // Let the worker's other ready connections add their commands first.
            tokio::task::yield_now().await;
            drop(leader);
        }
        answer.await.unwrap_or(Outcome::Rejected(Reject::Busy))
    }

    /// Commands pending or in the engine through the gateway; for tests.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EngineConfig;
    use crate::types::SkuConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_batches_and_keep_their_answers() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 1024, 64);
        let created = gateway
            .execute(Command::UpsertSku(SkuConfig::simple(1, 100, 1, 60_000)))
            .await;
        assert!(matches!(created, Outcome::SkuCreated(_)));
        let mut handles = Vec::new();
        for order_id in 0..200u64 {
            let gateway = gateway.clone();
            handles.push(tokio::spawn(async move {
                let outcome = gateway
                    .execute(Command::Reserve {
                        order_id,
                        user_id: order_id,
                        sku_id: 1,
                        qty: 1,
                    })
                    .await;
                (order_id, outcome)
            }));
        }
        let mut held = 0;
        for handle in handles {
            let (order_id, outcome) = handle.await.unwrap();
            match outcome {
                Outcome::Created(view) => {
                    assert_eq!(view.order_id, order_id);
                    held += 1;
                }
                Outcome::Rejected(Reject::SoldOut) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(held, 100);
        assert_eq!(gateway.in_flight(), 0);
        engine.shutdown();
    }

    #[tokio::test]
    async fn a_full_gateway_answers_busy() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 1, 64);
        // The first command leads its batch and is pending (not yet polled past its yield);
        // the second finds the gateway full.
        let first = gateway.execute(Command::QuerySku { sku_id: 1 });
        let mut first = Box::pin(first);
        assert!(futures_poll_once(first.as_mut()).await.is_none());
        assert_eq!(
            gateway.execute(Command::QuerySku { sku_id: 1 }).await,
            Outcome::Rejected(Reject::Busy)
        );
        assert_eq!(first.await, Outcome::Rejected(Reject::UnknownSku));
        assert_eq!(gateway.in_flight(), 0);
        engine.shutdown();
    }

    #[tokio::test]
    async fn a_cancelled_leader_still_submits_its_batch() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 16, 64);
        let mut leader = Box::pin(gateway.execute(Command::QuerySku { sku_id: 1 }));
        assert!(futures_poll_once(leader.as_mut()).await.is_none());
        // A follower joins the leader's batch, then the leader is dropped mid-yield.
        let mut follower = Box::pin(gateway.execute(Command::QuerySku { sku_id: 2 }));
        assert!(futures_poll_once(follower.as_mut()).await.is_none());
        drop(leader);
        assert_eq!(follower.await, Outcome::Rejected(Reject::UnknownSku));
        assert_eq!(gateway.in_flight(), 0);
        engine.shutdown();
    }

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }
    /// The deepest nesting of `Engine::submit` calls seen on any thread.
    static MAX_DEPTH: AtomicUsize = AtomicUsize::new(0);
    /// `Engine::submit` calls made outside the tokio runtime (on an engine thread).
    static OFF_RUNTIME: AtomicUsize = AtomicUsize::new(0);

    /// Notes where and how deep the gateway calls `Engine::submit`.
    pub(super) struct SubmitProbe;

    impl SubmitProbe {
        pub(super) fn enter() -> SubmitProbe {
            let depth = DEPTH.with(|depth| {
                depth.set(depth.get() + 1);
                depth.get()
            });
            MAX_DEPTH.fetch_max(depth, Ordering::Relaxed);
            if tokio::runtime::Handle::try_current().is_err() {
                OFF_RUNTIME.fetch_add(1, Ordering::Relaxed);
            }
            SubmitProbe
        }
    }

    impl Drop for SubmitProbe {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }

    /// Batch ends on shard threads that find commands waiting must not submit them there:
    /// every `Engine::submit` runs on the runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_batch_is_submitted_from_the_runtime_not_an_engine_thread() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        // Batches of two: nearly every batch's end finds commands waiting for the next one.
        let gateway = Gateway::new(engine.clone(), 100_000, 2);
        let created = gateway
            .execute(Command::UpsertSku(SkuConfig::simple(
                1, 1_000_000, 1, 60_000,
            )))
            .await;
        assert!(matches!(created, Outcome::SkuCreated(_)));
        let mut handles = Vec::new();
        for order_id in 0..2_000u64 {
            let gateway = gateway.clone();
            handles.push(tokio::spawn(async move {
                gateway
                    .execute(Command::Reserve {
                        order_id,
                        user_id: order_id,
                        sku_id: 1,
                        qty: 1,
                    })
                    .await
            }));
        }
        for handle in handles {
            assert!(matches!(handle.await.unwrap(), Outcome::Created(_)));
        }
        assert_eq!(OFF_RUNTIME.load(Ordering::Relaxed), 0);
        assert_eq!(gateway.in_flight(), 0);
        engine.shutdown();
    }

    /// A batch answered synchronously (here by the directory's unknown-order fast path, as a
    /// full queue answers `Busy`) must not submit the next batch from inside its own submit.
    #[tokio::test]
    async fn synchronous_answers_do_not_recurse_into_the_next_submit() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 10_000, 1);
        let mut queries = Vec::new();
        for order_id in 0..300u64 {
            let gateway = gateway.clone();
            queries.push(tokio::spawn(async move {
                gateway.execute(Command::QueryOrder { order_id }).await
            }));
        }
        for query in queries {
            assert_eq!(
                query.await.unwrap(),
                Outcome::Rejected(Reject::UnknownOrder)
            );
        }
        assert_eq!(MAX_DEPTH.load(Ordering::Relaxed), 1);
        assert_eq!(gateway.in_flight(), 0);
        engine.shutdown();
    }

    #[tokio::test]
    async fn drivers_end_with_the_gateway() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 16, 4);
        let wakes = gateway.inner.wakes.clone();
        assert_eq!(
            gateway.execute(Command::QuerySku { sku_id: 1 }).await,
            Outcome::Rejected(Reject::UnknownSku)
        );
        drop(gateway);
        // Each driver holds a clone of `wakes` and drops it as it ends. The last batch's end
        // (on the shard thread) may still hold the gateway for a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while Arc::strong_count(&wakes) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(Arc::strong_count(&wakes), 1);
        engine.shutdown();
    }

    /// Polls a future once; `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
