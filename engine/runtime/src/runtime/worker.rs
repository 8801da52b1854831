//! The shard worker: one thread per shard, the only code that touches its [`Shard`]. A wake-up
//! takes what is queued, applies it at one instant, settles the order claims, journals what
//! changed (through the journal's facade), publishes to the mirror, then answers. It owns the
//! idle wake-ups and fail-stop on a violated invariant. It must not route (that is
//! [`crate::routing`]'s) nor decide a business rule (the shard's).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::inbox::{InboxEmpty, InboxReceiver};
use crate::journal::{Acknowledge, DurabilityFailure, ShardJournal};
use crate::mirror::AvailabilityMirror;
use crate::routing::{AfterUnlock, Applied, Linearisation, ReplyTo, ShardBatch};
use crate::shard::Shard;
use crate::types::{Outcome, Reject, SkuId};

use super::{Clock, Inner, ShardMessage};

/// One shard thread: the only code that touches its `Shard`.
pub(super) struct ShardWorker {
    /// The shard's journal, when durable: each wake-up's mutations become one record.
    pub(super) journal: Option<ShardJournal<PendingReplies>>,
    pub(super) index: u32,
    pub(super) shard: Shard,
    pub(super) receiver: InboxReceiver<ShardMessage>,
    pub(super) mirror: Arc<AvailabilityMirror>,
    /// The engine, to settle claims and route the streams that waited on them.
    pub(super) engine: Arc<OnceLock<Weak<Inner>>>,
    pub(super) next_expiry_ms: Arc<[AtomicU64]>,
    pub(super) linearisation: Option<Arc<Linearisation>>,
    pub(super) clock: Clock,
    pub(super) tick: Duration,
    pub(super) max_batches_per_wakeup: usize,
    pub(super) expired_holds: Arc<AtomicU64>,
    /// The engine's fail-stop state, shared with the journal threads and the submitters.
    pub(super) failure: Arc<DurabilityFailure>,
}

/// One batch as a shard applied it: its first linearisation stamp (tests) and its outcomes.
type AppliedBatch = (Option<u64>, Vec<Outcome>);

impl ShardWorker {
    pub(super) fn run(mut self) {
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
        if let Some(journal) = self.journal.as_mut() {
            journal.begin(applied_ms);
        }
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
            if let Some(journal) = self.journal.as_mut() {
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
                    journal.push(command);
                }
            }
            answered.push((batch.reply, outcomes));
        }
        self.publish();
        if let Some(engine) = &engine {
            engine.end_raises(self.index as usize, &raised, shard_raised);
        }
        self.journal_and_reply(answered);
        // Streams that waited on a claim settled here go on now, routed from this thread.
        if let Some(engine) = &engine {
            engine.finish(after);
        }
    }

    /// Hands the wake-up's record and its replies to the journal (which answers once the record
    /// is durable, in sync mode), or answers at once without a journal.
    fn journal_and_reply(&mut self, answered: Vec<(ReplyTo, Vec<Outcome>)>) {
        match self.journal.as_mut() {
            Some(journal) => {
                if journal.commit(PendingReplies(answered)) {
                    let mut state = Vec::new();
                    self.shard.encode_snapshot(&mut state);
                    journal.snapshot(state);
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
            && journal.snapshot_wanted_at_stop()
        {
            let mut state = Vec::new();
            self.shard.encode_snapshot(&mut state);
            journal.snapshot(state);
        }
    }
}
/// The replies of one wake-up, waiting for its record to be durable.
pub(super) struct PendingReplies(Vec<(ReplyTo, Vec<Outcome>)>);

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
