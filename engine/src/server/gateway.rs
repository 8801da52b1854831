//! The gateway batcher: HTTP handlers carry one command each, and submitting one engine batch
//! per request would cost a shard wake-up (and a worker wake-up for the answer) per request.
//! Handlers instead add (command, reply slot) to a pending batch owned by the worker thread
//! they run on, and each worker keeps at most one batch in the engine at a time:
//! - if the worker has no batch in the engine, the first handler to add a command becomes the
//!   leader, yields once (tokio defers the yield until the worker has polled every other
//!   ready task and the I/O driver), then submits what the worker's connections accumulated;
//! - while a batch is in the engine, new commands just wait in the pending batch, and the
//!   engine's completion callback (on the shard thread) submits them as the next batch before
//!   it returns, so a busy shard picks the next batch up without going to sleep.
//!
//! Batches therefore grow with load instead of with a timer. No central task, no extra hop; a
//! batch holds at most `max_batch` commands. A leader that is cancelled still submits (from
//! its destructor) and a batch the engine drops unanswered still releases its slot, so no
//! command is ever stranded. At most `capacity` commands may be pending or in the engine
//! through the gateway; past that, `execute` answers `Busy` at once (the caller maps it to
//! 503). This module owns the pending batches; it must not decide any business rule or touch
//! the shards other than through `Engine::submit`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

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
    /// A batch from this slot is in the engine; its completion submits the next one.
    in_engine: bool,
}

struct Inner {
    engine: Engine,
    slots: Box<[Mutex<Pending>]>,
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
/// the callback), its end releases the capacity and hands the slot to the next batch.
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
        // Dropping `self` submits the next batch.
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
        Inner::submit_next(&self.inner, self.slot, true);
    }
}

impl Inner {
    fn lock(&self, slot: usize) -> MutexGuard<'_, Pending> {
        self.slots[slot].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits the slot's pending commands unless a batch is already in the engine (that
    /// batch's end will). `finished` says the caller is the end of the slot's batch.
    fn submit_next(this: &Arc<Inner>, slot: usize, finished: bool) {
        let (commands, senders) = {
            let mut pending = this.lock(slot);
            if finished {
                pending.in_engine = false;
            } else {
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
        // Never submit under the lock: the engine may answer (and so call back) synchronously.
        let batch = InEngine {
            inner: this.clone(),
            slot,
            senders,
        };
        this.engine
            .submit(commands, move |outcomes| batch.answer(outcomes));
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
        Inner::submit_next(self.inner, self.slot, false);
    }
}

impl Gateway {
    /// `capacity` bounds the commands pending or in the engine through the gateway;
    /// `max_batch` bounds one engine batch.
    pub fn new(engine: Engine, capacity: usize, max_batch: usize) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                engine,
                slots: (0..SLOTS).map(|_| Mutex::new(Pending::default())).collect(),
                capacity: capacity.max(1),
                max_batch: max_batch.max(1),
                in_flight: AtomicUsize::new(0),
            }),
        }
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
