//! The gateway batcher: HTTP handlers carry one command each, and submitting one engine batch
//! per request would cost a shard wake-up (and a worker wake-up for the answer) per request.
//! Handlers instead add (command, reply slot) to a pending batch owned by the worker thread
//! they run on, and each worker keeps at most one batch in the engine at a time:
//! - if the worker has no batch in the engine, the first handler to add a command becomes the
//!   leader, yields once (tokio defers the yield until the worker has polled every other
//!   ready task and the I/O driver), then submits what the worker's connections accumulated;
//! - while a batch is in the engine, new commands just wait in the pending batch. The batch's
//!   end (the engine's completion callback, on a shard or journal thread) only frees the slot
//!   and answers its handlers; each handler, as it ends, hands the slot on: the first to run
//!   submits the waiting commands as the next batch. (When no handler of the batch is left
//!   to do it, because every one was cancelled, the end wakes a task on the runtime that
//!   does.) So nothing is called back upstream: `Engine::submit` runs only on the gateway's
//!   own tasks, never on an engine thread, and a batch answered synchronously (`Busy`, or a
//!   fast-path refusal) does not recurse into the next submit.
//!
//! Batches therefore grow with load instead of with a timer; a batch holds at most
//! `max_batch` commands. A leader that is cancelled still submits (from its destructor), a
//! cancelled handler still hands the slot on, and a batch the engine drops unanswered still
//! frees its slot, so no command is ever stranded. At most `capacity` commands may be pending
//! or in the engine through the gateway; past that, `execute` answers `Busy` at once (the
//! caller maps it to 503). This module owns the pending batches; it must not decide any
//! business rule or touch the shards other than through `Engine::submit`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use flashsale_core::types::{Command, Outcome, Reject};
use flashsale_engine::runtime::Engine;

/// Pending batches: one per worker thread normally (threads are assigned slots round robin;
/// two threads sharing a slot only share batches, which stays correct).
const SLOTS: usize = 8;

#[derive(Default)]
struct Pending {
    commands: Vec<Command>,
    replies: Vec<oneshot::Sender<Outcome>>,
    /// A handler has promised to submit this batch after its yield.
    led: bool,
    /// A batch from this slot is in the engine; the handlers it answers submit the next one.
    in_engine: bool,
}

struct Inner {
    engine: Engine,
    /// Where a batch's end sends the next submit when none of its handlers is left to.
    runtime: Handle,
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
/// the callback), its end releases the capacity and frees the slot for the next batch.
struct InEngine {
    inner: Arc<Inner>,
    slot: usize,
    senders: Vec<oneshot::Sender<Outcome>>,
    ended: bool,
}

impl InEngine {
    /// Frees the slot, before any handler hears of the end (a handler that ends sees it
    /// free). Answers whether commands wait with no leader about to take them.
    fn end(&mut self) -> bool {
        self.ended = true;
        let mut pending = self.inner.lock(self.slot);
        pending.in_engine = false;
        !pending.commands.is_empty() && !pending.led
    }

    fn answer(mut self, outcomes: Vec<Outcome>) {
        let senders = std::mem::take(&mut self.senders);
        // Released before the answers go out, so a handler that has its answer never sees its
        // own command still counted.
        self.inner
            .in_flight
            .fetch_sub(senders.len(), Ordering::Relaxed);
        let waiting = self.end();
        let mut delivered = 0;
        for (reply, outcome) in senders.into_iter().zip(outcomes) {
            // A handler whose client went away dropped its receiver: nothing to tell.
            delivered += usize::from(reply.send(outcome).is_ok());
        }
        if waiting && delivered == 0 {
            self.inner.hand_on_from_runtime(self.slot);
        }
    }
}

impl Drop for InEngine {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Unanswered: the handlers see `Busy` once their senders are dropped.
        let unanswered = std::mem::take(&mut self.senders);
        self.inner
            .in_flight
            .fetch_sub(unanswered.len(), Ordering::Relaxed);
        let waiting = self.end();
        let live = unanswered.iter().filter(|reply| !reply.is_closed()).count();
        drop(unanswered);
        if waiting && live == 0 {
            self.inner.hand_on_from_runtime(self.slot);
        }
    }
}

impl Inner {
    fn lock(&self, slot: usize) -> MutexGuard<'_, Pending> {
        self.slots[slot].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits the slot's pending commands unless a batch is already in the engine (the
    /// handlers that batch answers will). `lead_done` says the caller is the slot's leader.
    /// Called only from the gateway's own tasks, never from an engine thread.
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
            ended: false,
        };
        #[cfg(test)]
        let _probe = tests::SubmitProbe::enter();
        this.engine
            .submit(commands, move |outcomes| batch.answer(outcomes));
    }

    /// The rare end of a batch none of whose handlers is left to hand the slot on: a task on
    /// the runtime submits what waits.
    fn hand_on_from_runtime(self: &Arc<Inner>, slot: usize) {
        let inner = self.clone();
        self.runtime
            .spawn(async move { Inner::submit_next(&inner, slot, false) });
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

/// A handler's promise to hand its slot on when it ends, answered or cancelled: if commands
/// wait and no batch is in the engine, it submits them.
struct HandOn<'a> {
    inner: &'a Arc<Inner>,
    slot: usize,
}

impl Drop for HandOn<'_> {
    fn drop(&mut self) {
        Inner::submit_next(self.inner, self.slot, false);
    }
}

impl Gateway {
    /// `capacity` bounds the commands pending or in the engine through the gateway;
    /// `max_batch` bounds one engine batch. Must be called within a tokio runtime: it is
    /// where the gateway submits from when no handler is left to.
    pub fn new(engine: Engine, capacity: usize, max_batch: usize) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                engine,
                runtime: Handle::current(),
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
        let slot = slot_index();
        // Declared before the receiver, so that a cancelled handler drops its receiver first
        // and hands on after: a batch's end then either finds the receiver gone or is seen
        // by this hand-on.
        let _hand_on = HandOn { inner, slot };
        let (reply, answer) = oneshot::channel();
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
    use flashsale_core::types::SkuConfig;
    use flashsale_engine::runtime::EngineConfig;

    /// An engine with SKU 1 (`stock` units) and a gateway over it.
    async fn gateway_with_sku(capacity: usize, max_batch: usize, stock: u64) -> (Engine, Gateway) {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), capacity, max_batch);
        let created = gateway
            .execute(Command::UpsertSku(SkuConfig::simple(1, stock, 1, 60_000)))
            .await;
        assert!(matches!(created, Outcome::SkuCreated(_)));
        (engine, gateway)
    }

    /// A reserve of one unit of SKU 1 by the user of the same id.
    fn reserve(order_id: u64) -> Command {
        Command::Reserve {
            order_id,
            user_id: order_id,
            sku_id: 1,
            qty: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_share_batches_and_keep_their_answers() {
        let (engine, gateway) = gateway_with_sku(1024, 64, 100).await;
        let mut handles = Vec::new();
        for order_id in 0..200u64 {
            let gateway = gateway.clone();
            handles.push(tokio::spawn(async move {
                let outcome = gateway.execute(reserve(order_id)).await;
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
        // Batches of two: nearly every batch's end finds commands waiting for the next one.
        let (engine, gateway) = gateway_with_sku(100_000, 2, 1_000_000).await;
        let mut handles = Vec::new();
        for order_id in 0..2_000u64 {
            let gateway = gateway.clone();
            handles.push(tokio::spawn(async move {
                gateway.execute(reserve(order_id)).await
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

    /// Handlers cancelled at random points (waiting, in the engine, answered) never strand
    /// the others: every handler that is not cancelled gets its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_handlers_never_strand_the_others() {
        let (engine, gateway) = gateway_with_sku(100_000, 3, 1_000_000).await;
        let mut kept = Vec::new();
        for order_id in 0..3_000u64 {
            let gateway = gateway.clone();
            let handler = async move { gateway.execute(reserve(order_id)).await };
            if order_id % 3 == 0 {
                // Cancelled after a few microseconds: waiting, in the engine, or answered.
                let wait = std::time::Duration::from_micros(order_id % 50);
                tokio::spawn(tokio::time::timeout(wait, handler));
            } else {
                kept.push(tokio::spawn(handler));
            }
        }
        let all = async {
            for handle in kept {
                assert!(matches!(handle.await.unwrap(), Outcome::Created(_)));
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("a handler was stranded");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while gateway.in_flight() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(gateway.in_flight(), 0);
        assert_eq!(OFF_RUNTIME.load(Ordering::Relaxed), 0);
        engine.shutdown();
    }

    /// A batch none of whose handlers is left (all cancelled) still hands the slot on to the
    /// commands waiting behind it.
    #[tokio::test]
    async fn a_batch_whose_handlers_all_left_still_hands_the_slot_on() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        let gateway = Gateway::new(engine.clone(), 16, 1);
        let query = |sku_id| gateway.execute(Command::QuerySku { sku_id });
        let (mut a, mut b, mut c) = (Box::pin(query(1)), Box::pin(query(2)), Box::pin(query(3)));
        assert!(futures_poll_once(a.as_mut()).await.is_none());
        assert!(futures_poll_once(b.as_mut()).await.is_none());
        assert!(futures_poll_once(c.as_mut()).await.is_none());
        // `b` leaves while its command waits; `a`'s end then submits it as a batch of its
        // own, whose end finds no handler to hand on to `c`.
        drop(b);
        assert_eq!(a.await, Outcome::Rejected(Reject::UnknownSku));
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), c);
        assert_eq!(
            c.await
                .expect("the command behind an abandoned batch was stranded"),
            Outcome::Rejected(Reject::UnknownSku)
        );
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
