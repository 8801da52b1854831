//! The gateway batcher: HTTP handlers carry one command each, and submitting one engine batch
//! per request would cost a shard wake-up per request. Handlers instead put (command, reply
//! slot) on a bounded queue; one task drains whatever has accumulated and submits it to the
//! engine as a single batch, so concurrent connections share batches. A full queue answers
//! `Busy` at once (the caller maps it to 503). This module owns the queue and the drain task; it
//! must not decide any business rule or touch the shards other than through `Engine::submit`.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::runtime::Engine;
use crate::types::{Command, Outcome, Reject};

struct Job {
    command: Command,
    reply: oneshot::Sender<Outcome>,
}

/// A cheap handle to the batcher. When the last handle is dropped the drain task submits what
/// is left and ends.
#[derive(Clone)]
pub struct Gateway {
    sender: mpsc::Sender<Job>,
}

impl Gateway {
    /// Starts the drain task on the current tokio runtime. `capacity` bounds the commands
    /// waiting; `max_batch` bounds one engine batch.
    pub fn start(engine: Engine, capacity: usize, max_batch: usize) -> (Gateway, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(drain(engine, receiver, max_batch.max(1)));
        (Gateway { sender }, task)
    }

    /// Runs one command through a shared batch. `Busy` when the queue is full.
    pub async fn execute(&self, command: Command) -> Outcome {
        let (reply, answer) = oneshot::channel();
        if self.sender.try_send(Job { command, reply }).is_err() {
            return Outcome::Rejected(Reject::Busy);
        }
        answer.await.unwrap_or(Outcome::Rejected(Reject::Busy))
    }
}

async fn drain(engine: Engine, mut receiver: mpsc::Receiver<Job>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        if receiver.recv_many(&mut jobs, max_batch).await == 0 {
            return;
        }
        let mut commands = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            commands.push(job.command);
            replies.push(job.reply);
        }
        engine.submit(commands, move |outcomes| {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A handler whose client went away dropped its receiver: nothing to tell.
                let _ = reply.send(outcome);
            }
        });
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
        let (gateway, task) = Gateway::start(engine.clone(), 1024, 64);
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
        drop(gateway);
        task.await.unwrap();
        engine.shutdown();
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let engine = Engine::start(EngineConfig::default()).unwrap();
        // A queue of one with the drain task unable to run (current-thread runtime, no await
        // between the sends): the second command finds it full.
        let (gateway, task) = Gateway::start(engine.clone(), 1, 1);
        let (reply, _answer) = oneshot::channel();
        gateway
            .sender
            .try_send(Job {
                command: Command::QuerySku { sku_id: 1 },
                reply,
            })
            .unwrap();
        assert_eq!(
            gateway.execute(Command::QuerySku { sku_id: 1 }).await,
            Outcome::Rejected(Reject::Busy)
        );
        drop(gateway);
        task.await.unwrap();
        engine.shutdown();
    }
}
