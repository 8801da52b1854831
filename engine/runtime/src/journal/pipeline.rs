//! The per-shard journal thread (LMAX-style): the shard thread hands it encoded records, the
//! replies that wait on them, and snapshots, over a bounded FIFO. The thread takes everything
//! pending, writes it with one `write` and (in sync mode) one fdatasync, and only then lets the
//! replies go, in order — so any reply implies that every earlier record of its shard is on
//! disk, while the shard goes on applying the next wake-up. In async mode replies never wait
//! here; the thread writes at once and hands an fdatasync every `fsync_interval_ms` to a
//! syncer thread, so a slow fdatasync never holds back writing (records queued behind a slow
//! fsync would be lost by a mere process crash). Snapshot files are written by a third
//! thread, so a snapshot never stalls the journal: it writes the file atomically, then deletes
//! the segments whose records the snapshot covers. A fourth thread prepares the next segment
//! (zero-filled and synced) once the current one has taken [`PREPARE_AFTER_BYTES`], so that
//! neither a roll nor the zero-fill ahead of the data stalls the journal thread at a peak.
//!
//! An I/O error is fail-stop: the thread records why in the shared [`DurabilityFailure`], logs
//! it, never writes or syncs again (no fsync is ever retried: after a failed fsync the kernel
//! may have dropped the dirty pages), and refuses every reply still waiting and to come. It
//! owns the segment writer and snapshot files of its shard; it must not touch shard state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use super::segment::{
    PreparedSegment, SegmentWriter, ZERO_AHEAD_BYTES, list_segments, prepare_segment,
};
use super::snapshot::{list_snapshots, write_snapshot};
use super::{JournalError, SyncMode, sync_dir};

/// Replies that wait for their record to be durable.
pub trait Acknowledge: Send + 'static {
    /// The records before and including this one's are durable: answer as applied.
    fn acknowledge(self);
    /// The journal has failed: answer that nothing was done.
    fn refuse(self);
}

/// The first fail-stop failure of an engine — a journal's failed write or fsync, or a shard's
/// violated invariant (`runtime`) — shared by its journal and shard threads and read by the
/// submit path, which refuses everything once it is set.
#[derive(Debug, Default)]
pub struct DurabilityFailure {
    failed: AtomicBool,
    reason: OnceLock<String>,
}

impl DurabilityFailure {
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<&str> {
        if self.is_failed() {
            self.reason.get().map(String::as_str)
        } else {
            None
        }
    }

    pub fn fail(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.failed.store(true, Ordering::Release);
    }
}

/// What a shard thread hands its journal thread.
pub enum JournalMessage<A> {
    /// Framed records (one wake-up, possibly none) and the replies that wait on them.
    Write {
        bytes: BytesMut,
        /// Sequence of the first record in `bytes` (meaningless when `bytes` is empty).
        first_seq: u64,
        replies: Option<A>,
    },
    /// A snapshot of the shard's state after record `seq` (see [`crate::shard::Shard::encode_snapshot`]).
    Snapshot { seq: u64, state: Vec<u8> },
}

/// What a journal thread needs to know about its shard.
#[derive(Clone, Debug)]
pub struct JournalThreadSettings {
    pub shard: u32,
    pub shards: u32,
    pub shard_dir: PathBuf,
    pub mode: SyncMode,
    pub segment_max_bytes: u64,
    /// Messages the hand-off queue holds before the shard waits.
    pub capacity_messages: usize,
}

/// The shard side of a journal thread.
pub struct JournalHandle<A: Acknowledge> {
    sender: Option<Sender<JournalMessage<A>>>,
    thread: Option<JoinHandle<()>>,
}

impl<A: Acknowledge> JournalHandle<A> {
    /// Starts the journal thread of one shard, writing with `writer`.
    pub fn start(
        settings: JournalThreadSettings,
        writer: SegmentWriter,
        failure: Arc<DurabilityFailure>,
    ) -> std::io::Result<JournalHandle<A>> {
        let (sender, receiver) = bounded(settings.capacity_messages.max(1));
        let shard = settings.shard;
        let syncer = match settings.mode {
            SyncMode::Sync => None,
            SyncMode::Async { .. } => Some(Syncer::start(shard, failure.clone())?),
        };
        let snapshots = Snapshotter::start(&settings, failure.clone())?;
        let preparer = Preparer::start(&settings)?;
        let worker = JournalWorker {
            snapshots,
            preparer,
            prepared: None,
            syncer,
            shard,
            writer,
            mode: settings.mode,
            segment_max_bytes: settings.segment_max_bytes,
            failure,
            receiver,
            buffer: Vec::with_capacity(1 << 20),
            buffer_first_seq: 0,
            waiting: Vec::new(),
            unsynced: false,
            last_sync: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("flashsale-journal-{shard}"))
            .spawn(move || worker.run())?;
        Ok(JournalHandle {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Hands a message over; waits while the hand-off queue is full (back-pressure). If the
    /// thread is gone the replies are refused.
    pub fn send(&self, message: JournalMessage<A>) {
        let Some(sender) = &self.sender else {
            refuse(message);
            return;
        };
        if let Err(crossbeam_channel::SendError(message)) = sender.send(message) {
            refuse(message);
        }
    }

    /// Lets the thread write and sync what it has, and waits for it to end.
    pub fn stop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A journal thread that panicked has already reported it.
            let _ = thread.join();
        }
    }
}

impl<A: Acknowledge> Drop for JournalHandle<A> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn refuse<A: Acknowledge>(message: JournalMessage<A>) {
    if let JournalMessage::Write {
        replies: Some(replies),
        ..
    } = message
    {
        replies.refuse();
    }
}

/// The async mode's fdatasync thread: takes a handle on the current segment and syncs it. One
/// request at a time; a request made while one runs is skipped and made again next interval.
struct Syncer {
    sender: Option<Sender<(std::fs::File, PathBuf)>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(shard: u32, failure: Arc<DurabilityFailure>) -> std::io::Result<Syncer> {
        let (sender, receiver) = bounded::<(std::fs::File, PathBuf)>(1);
        let thread = std::thread::Builder::new()
            .name(format!("flashsale-fsync-{shard}"))
            .spawn(move || {
                for (file, path) in receiver {
                    if failure.is_failed() {
                        continue;
                    }
                    if let Err(error) = file.sync_data() {
                        let reason = format!(
                            "journal of shard {shard} failed, refusing all writes until restart: {}",
                            JournalError::io(&path, error)
                        );
                        tracing::error!("{reason}");
                        failure.fail(reason);
                    }
                }
            })?;
        Ok(Syncer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Asks for an fdatasync; false when one is still running.
    fn request(&self, handle: (std::fs::File, PathBuf)) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|sender| sender.try_send(handle).is_ok())
    }

    fn stop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Prepares the next segment off the journal thread: one request at a time, answered with a
/// zero-filled, synced file (or why it could not be made).
struct Preparer {
    requests: Option<Sender<u64>>,
    ready: Receiver<Result<PreparedSegment, JournalError>>,
    thread: Option<JoinHandle<()>>,
    /// A request is out and not yet answered.
    pending: bool,
    /// Preparing failed once: the writer's own zero-fill does the job from then on.
    disabled: bool,
}

impl Preparer {
    fn start(settings: &JournalThreadSettings) -> std::io::Result<Preparer> {
        let (requests, requested) = bounded::<u64>(1);
        let (answer, ready) = bounded(1);
        let dir = settings.shard_dir.clone();
        let thread = std::thread::Builder::new()
            .name(format!("flashsale-prepare-{}", settings.shard))
            .spawn(move || {
                for len_bytes in requested {
                    let prepared = prepare_segment(&dir, len_bytes, Some(PREPARE_PAUSE));
                    if answer.send(prepared).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Preparer {
            requests: Some(requests),
            ready,
            thread: Some(thread),
            pending: false,
            disabled: false,
        })
    }

    fn request(&mut self, len_bytes: u64) {
        if self.pending || self.disabled {
            return;
        }
        if let Some(requests) = &self.requests {
            self.pending = requests.try_send(len_bytes).is_ok();
        }
    }

    /// A prepared segment, if one has become ready.
    fn take_ready(&mut self, shard: u32) -> Option<PreparedSegment> {
        match self.ready.try_recv() {
            Ok(Ok(prepared)) => {
                self.pending = false;
                Some(prepared)
            }
            Ok(Err(error)) => {
                // Not a durability failure (nothing acknowledged depends on it): say so and let
                // the writer zero-fill inline, as it does before the first preparation.
                tracing::warn!(
                    "shard {shard}: could not prepare the next journal segment, zero-filling inline from now on: {error}"
                );
                self.pending = false;
                self.disabled = true;
                None
            }
            Err(_) => None,
        }
    }

    fn stop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes snapshots off the journal thread. A mailbox of one: a snapshot handed over while an
/// older one still waits replaces it (the newer one covers more).
struct Snapshotter {
    sender: Option<Sender<(u64, Vec<u8>)>>,
    stale: Receiver<(u64, Vec<u8>)>,
    thread: Option<JoinHandle<()>>,
}

impl Snapshotter {
    fn start(
        settings: &JournalThreadSettings,
        failure: Arc<DurabilityFailure>,
    ) -> std::io::Result<Snapshotter> {
        let (sender, receiver) = bounded::<(u64, Vec<u8>)>(1);
        let stale = receiver.clone();
        let (shard, shards, dir) = (settings.shard, settings.shards, settings.shard_dir.clone());
        let thread = std::thread::Builder::new()
            .name(format!("flashsale-snapshot-{shard}"))
            .spawn(move || {
                for (seq, state) in receiver {
                    if failure.is_failed() {
                        continue;
                    }
                    if let Err(error) = write_and_prune(&dir, shard, shards, seq, &state) {
                        let reason = format!(
                            "snapshot of shard {shard} failed, refusing all writes until restart: {error}"
                        );
                        tracing::error!("{reason}");
                        failure.fail(reason);
                    }
                }
            })?;
        Ok(Snapshotter {
            sender: Some(sender),
            stale,
            thread: Some(thread),
        })
    }

    fn hand_over(&self, seq: u64, state: Vec<u8>) {
        let Some(sender) = &self.sender else {
            return;
        };
        if let Err(crossbeam_channel::TrySendError::Full(message)) = sender.try_send((seq, state)) {
            // Only this thread sends, so after taking the waiting one out there is room.
            let _ = self.stale.try_recv();
            let _ = sender.try_send(message);
        }
    }

    fn stop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes snapshot `seq` atomically, then removes what it covers: older snapshots, and every
/// segment whose successor starts at or before `seq + 1` (it holds only records up to `seq`).
/// The segment holding `seq` itself stays; recovery skips its covered records.
fn write_and_prune(
    dir: &std::path::Path,
    shard: u32,
    shards: u32,
    seq: u64,
    state: &[u8],
) -> Result<(), JournalError> {
    write_snapshot(dir, shard, shards, seq, state)?;
    let segments = list_segments(dir)?;
    for pair in segments.windows(2) {
        if pair[1].first_seq <= seq + 1 {
            std::fs::remove_file(&pair[0].path).map_err(|e| JournalError::io(&pair[0].path, e))?;
        }
    }
    for (old_seq, path) in list_snapshots(dir)? {
        if old_seq < seq {
            std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
        }
    }
    sync_dir(dir).map_err(|e| JournalError::io(dir, e))
}

struct JournalWorker<A> {
    snapshots: Snapshotter,
    preparer: Preparer,
    /// The next segment, zero-filled and synced, once the preparer has delivered it.
    prepared: Option<PreparedSegment>,
    syncer: Option<Syncer>,
    shard: u32,
    writer: SegmentWriter,
    mode: SyncMode,
    segment_max_bytes: u64,
    failure: Arc<DurabilityFailure>,
    receiver: Receiver<JournalMessage<A>>,
    buffer: Vec<u8>,
    buffer_first_seq: u64,
    waiting: Vec<A>,
    /// Bytes written since the last fdatasync.
    unsynced: bool,
    last_sync: Instant,
}

/// Bytes a segment takes before the next one is prepared (and at least a quarter of the segment
/// size): an engine that journals little (tests, a quiet shard) never writes a segment of zeros
/// ahead, and a busy one has three quarters of a segment's time for the paced preparation.
pub const PREPARE_AFTER_BYTES: u64 = 1 << 20;
/// The pause after each fdatasynced chunk of a preparation: 256 KiB per 10 ms is at most
/// 25 MB/s of zeros, a 64 MiB segment in under 3 s.
const PREPARE_PAUSE: Duration = Duration::from_millis(10);

/// Messages taken at most in one go, so replies are not held back behind an endless stream.
const MAX_MESSAGES_PER_DRAIN: usize = 4096;

impl<A: Acknowledge> JournalWorker<A> {
    fn run(mut self) {
        loop {
            let first = match self.mode {
                SyncMode::Async { fsync_interval_ms }
                    if self.unsynced && !self.failure.is_failed() =>
                {
                    // Wake when the interval since the last sync is over — at least a
                    // millisecond from now, so a sync refused because the last one still runs
                    // is asked again without spinning.
                    let interval = Duration::from_millis(fsync_interval_ms.max(1));
                    let wait = interval
                        .saturating_sub(self.last_sync.elapsed())
                        .max(Duration::from_millis(1));
                    self.receiver.recv_timeout(wait)
                }
                // Nothing unsynced (or sync mode): sleep until there is something to write. An
                // idle journal costs nothing.
                SyncMode::Sync | SyncMode::Async { .. } => self
                    .receiver
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let stop = match first {
                Ok(message) => {
                    self.take(message);
                    let mut stop = false;
                    for _ in 1..MAX_MESSAGES_PER_DRAIN {
                        match self.receiver.try_recv() {
                            Ok(message) => self.take(message),
                            Err(crossbeam_channel::TryRecvError::Empty) => break,
                            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                                stop = true;
                                break;
                            }
                        }
                    }
                    stop
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            self.flush();
            let sync_due = match self.mode {
                SyncMode::Sync => false,
                SyncMode::Async { fsync_interval_ms } => {
                    self.last_sync.elapsed() >= Duration::from_millis(fsync_interval_ms)
                }
            };
            if stop {
                if let Some(syncer) = self.syncer.as_mut() {
                    syncer.stop();
                }
                self.snapshots.stop();
                self.preparer.stop();
                if self.unsynced {
                    self.sync();
                }
                return;
            }
            if self.unsynced && sync_due {
                self.request_sync();
            }
        }
    }

    fn take(&mut self, message: JournalMessage<A>) {
        match message {
            JournalMessage::Write {
                bytes,
                first_seq,
                replies,
            } => {
                if !bytes.is_empty() {
                    if self.buffer.is_empty() {
                        self.buffer_first_seq = first_seq;
                    }
                    self.buffer.extend_from_slice(&bytes);
                }
                if let Some(replies) = replies {
                    self.waiting.push(replies);
                }
            }
            JournalMessage::Snapshot { seq, state } => {
                // Records up to `seq` are written before the snapshot can delete anything.
                self.flush();
                self.snapshots.hand_over(seq, state);
            }
        }
    }

    /// Writes the buffer (one write; in sync mode one fdatasync) and lets the replies go.
    fn flush(&mut self) {
        if !self.buffer.is_empty() && !self.failure.is_failed() {
            let result = self.write_buffer();
            if let Err(error) = result {
                self.fail(error);
            }
        }
        self.buffer.clear();
        if self.failure.is_failed() {
            for replies in self.waiting.drain(..) {
                replies.refuse();
            }
        } else {
            for replies in self.waiting.drain(..) {
                replies.acknowledge();
            }
        }
    }

    fn write_buffer(&mut self) -> Result<(), JournalError> {
        if self.prepared.is_none() {
            self.prepared = self.preparer.take_ready(self.shard);
        }
        let full = self.writer.len_bytes() >= self.segment_max_bytes;
        // A segment that was not prepared (the first, or one rolled to while none was ready)
        // is left as soon as a prepared one is: it would zero-fill inline as it grows.
        let unprepared = self.writer.zeroed_to() < self.segment_max_bytes;
        match self.prepared.take() {
            Some(prepared) if full || unprepared => {
                self.writer.roll_into(prepared, self.buffer_first_seq)?;
            }
            prepared => {
                self.prepared = prepared;
                if full {
                    self.writer.roll(self.buffer_first_seq)?;
                }
            }
        }
        let prepare_at = PREPARE_AFTER_BYTES.max(self.segment_max_bytes / 4);
        if self.prepared.is_none() && self.writer.len_bytes() >= prepare_at {
            // Room for a last write that starts just under the limit, without zero-filling.
            self.preparer
                .request(self.segment_max_bytes + ZERO_AHEAD_BYTES);
        }
        self.writer.write(&self.buffer)?;
        self.unsynced = true;
        if self.mode == SyncMode::Sync {
            self.writer.sync()?;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Async mode: hands an fdatasync of the current segment to the syncer thread.
    fn request_sync(&mut self) {
        if self.failure.is_failed() {
            return;
        }
        let Some(syncer) = &self.syncer else {
            self.sync();
            return;
        };
        match self.writer.sync_handle() {
            Ok(handle) => {
                if syncer.request(handle) {
                    self.unsynced = false;
                    self.last_sync = Instant::now();
                }
            }
            Err(error) => self.fail(error),
        }
    }

    fn sync(&mut self) {
        if self.failure.is_failed() {
            return;
        }
        match self.writer.sync() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: JournalError) {
        let reason = format!(
            "journal of shard {} failed, refusing all writes until restart: {error}",
            self.shard
        );
        tracing::error!("{reason}");
        self.failure.fail(reason);
    }
}
