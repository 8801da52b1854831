//! A shard's inbox: the bounded queue submitters hand batches to, and the doorbell that wakes
//! the shard thread when something arrives. It owns the hand-off only — what a batch is and
//! what the shard does with it are the runtime's.
//!
//! **A submitter never waits for the shard thread.** With a blocking `recv`, crossbeam parks a
//! receiver by registering it under a mutex that every later send takes to wake it; a shard
//! thread descheduled while it held that mutex stalled the submitter (the load generator's
//! pacer) for as long as the thread stayed off its CPU — measured: the pacer blocked in
//! `SyncWaker::notify` → `Mutex::lock_contended`. Here the shard thread only ever polls the
//! queue (`try_recv`, which registers nothing) and sleeps in [`std::thread::park`]; a sender
//! pushes with `try_send` and rings with [`Thread::unpark`], an atomic swap plus — only when
//! the thread sleeps — one futex wake. Neither takes a lock the other can hold.
//!
//! A ring that comes before the thread sleeps is not lost: `unpark` leaves a token that makes
//! the next `park` return at once, so the thread always re-polls after the last push.

use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};

/// The sending half, kept by the engine, one per shard.
pub(crate) struct InboxSender<T> {
    /// `None` only while dropping: the queue is closed before the last ring.
    queue: Option<Sender<T>>,
    shard_thread: Thread,
}

/// The receiving half, owned by the shard thread, which must be the thread that calls
/// [`InboxReceiver::recv`] (it parks itself there).
pub(crate) struct InboxReceiver<T> {
    queue: Receiver<T>,
}

/// Why [`InboxReceiver::recv`] returned without a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InboxEmpty {
    /// The wait given ran out.
    Timeout,
    /// The engine dropped its sender: nothing will ever arrive.
    Closed,
}

/// A queue of `capacity` messages. The receiver goes to the shard thread; the sender is
/// completed with that thread's handle once it runs ([`InboxSender::new`]).
pub(crate) fn queue<T>(capacity: usize) -> (Sender<T>, InboxReceiver<T>) {
    let (sender, receiver) = bounded(capacity);
    (sender, InboxReceiver { queue: receiver })
}

impl<T> InboxSender<T> {
    /// The sender of a queue whose receiver runs on `shard_thread`.
    pub(crate) fn new(queue: Sender<T>, shard_thread: Thread) -> InboxSender<T> {
        InboxSender {
            queue: Some(queue),
            shard_thread,
        }
    }

    /// Queues `message` if there is room, and wakes the shard thread. Never blocks.
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        match &self.queue {
            Some(queue) => queue.try_send(message)?,
            None => return Err(TrySendError::Disconnected(message)),
        }
        self.shard_thread.unpark();
        Ok(())
    }

    /// Queues `message` behind everything already accepted, waiting for room if the queue is
    /// full (shutdown's stop marker only: the shard thread frees room as it drains).
    pub(crate) fn send_waiting(&self, message: T) {
        if let Some(queue) = &self.queue {
            // A full queue has an awake thread draining it. Disconnected: the thread has gone
            // already, nothing is left to stop.
            let _ = queue.send(message);
        }
        self.shard_thread.unpark();
    }

    /// Messages waiting in the queue.
    pub(crate) fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }
}

impl<T> Drop for InboxSender<T> {
    fn drop(&mut self) {
        // Close, then ring: woken, the shard thread finds the queue disconnected and stops.
        self.queue = None;
        self.shard_thread.unpark();
    }
}

impl<T> InboxReceiver<T> {
    /// The next message: at once if one is queued, otherwise after sleeping until one arrives,
    /// `wait` runs out (`None`: no limit) or the engine drops its sender.
    pub(crate) fn recv(&self, wait: Option<Duration>) -> Result<T, InboxEmpty> {
        // The clock is read only once the queue is found empty: a busy shard reads none here.
        let mut deadline: Option<Instant> = None;
        loop {
            match self.queue.try_recv() {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Disconnected) => return Err(InboxEmpty::Closed),
                Err(TryRecvError::Empty) => {}
            }
            match wait {
                None => thread::park(),
                Some(wait) => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + wait);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(InboxEmpty::Timeout);
                    }
                    thread::park_timeout(left);
                }
            }
        }
    }

    /// A queued message, if any; never sleeps.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.queue.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A receiver on its own thread, and the sender wired to that thread.
    fn spawn_receiver(
        capacity: usize,
        wait: Option<Duration>,
    ) -> (
        InboxSender<u32>,
        mpsc::Receiver<Result<u32, InboxEmpty>>,
        thread::JoinHandle<()>,
    ) {
        let (queue, receiver) = queue::<u32>(capacity);
        let (results, seen) = mpsc::channel();
        let handle = thread::spawn(move || {
            loop {
                let result = receiver.recv(wait);
                let end = matches!(result, Err(InboxEmpty::Closed));
                if results.send(result).is_err() || end {
                    return;
                }
            }
        });
        let sender = InboxSender::new(queue, handle.thread().clone());
        (sender, seen, handle)
    }

    #[test]
    fn every_message_sent_to_a_sleeping_thread_arrives_in_order() {
        let (sender, seen, handle) = spawn_receiver(4, None);
        for round in 0..2_000u32 {
            // Alternate bursts and pauses so the thread is caught both awake and asleep.
            if round % 100 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            while let Err(TrySendError::Full(_)) = sender.try_send(round) {
                thread::yield_now();
            }
        }
        for expected in 0..2_000u32 {
            let got = seen.recv_timeout(Duration::from_secs(10));
            assert_eq!(got, Ok(Ok(expected)), "message {expected}");
        }
        drop(sender);
        assert_eq!(
            seen.recv_timeout(Duration::from_secs(10)),
            Ok(Err(InboxEmpty::Closed)),
            "dropping the sender wakes the thread and closes the queue"
        );
        handle.join().expect("receiver thread");
    }

    #[test]
    fn a_full_queue_refuses_without_waiting() {
        let (queue, _receiver) = queue::<u32>(2);
        let sender = InboxSender::new(queue, thread::current());
        assert!(sender.try_send(1).is_ok());
        assert!(sender.try_send(2).is_ok());
        assert_eq!(sender.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(sender.len(), 2);
    }

    #[test]
    fn an_idle_wait_runs_out() {
        let (_sender, seen, _handle) = spawn_receiver(1, Some(Duration::from_millis(5)));
        assert_eq!(
            seen.recv_timeout(Duration::from_secs(10)),
            Ok(Err(InboxEmpty::Timeout))
        );
    }

    #[test]
    fn the_stop_marker_waits_for_room_behind_accepted_work() {
        let (sender, seen, handle) = spawn_receiver(1, None);
        for message in 0..50u32 {
            sender.send_waiting(message);
        }
        for expected in 0..50u32 {
            assert_eq!(seen.recv_timeout(Duration::from_secs(10)), Ok(Ok(expected)));
        }
        drop(sender);
        handle.join().expect("receiver thread");
    }
}
