//! The journal's facade for the runtime: everything a shard worker and engine start-up need of
//! the journal, so that they never touch its internals (segment writers, record framing, the
//! journal thread's settings). [`JournalStart`] is where a recovered shard's journal continues;
//! [`ShardJournal`] is a shard thread's side of its journal — one record per wake-up, handed to
//! the journal thread with the replies that wait for it, and the periodic snapshots.
//!
//! It must not decide what is journaled (the worker pushes the commands that changed state) nor
//! when replies are sent beyond what the [`SyncMode`] says.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

use super::pipeline::JournalThreadSettings;
use super::pipeline::{Acknowledge, DurabilityFailure, JournalHandle, JournalMessage};
use super::record::RecordBuilder;
use super::recovery::ShardRecovery;
use super::segment::{SegmentWriter, ZERO_AHEAD_BYTES};
use super::{JournalConfig, JournalError, SyncMode, shard_dir};
use crate::types::Command;

/// Where a recovered shard's journal continues.
pub(crate) struct JournalStart {
    shard_dir: PathBuf,
    writer: SegmentWriter,
    next_seq: u64,
}

impl JournalStart {
    /// Opens the segment shard `index`'s journal continues in after `recovery`: its torn-free
    /// tail, or a new segment starting at the next sequence.
    pub(crate) fn resume(
        data_dir: &Path,
        index: usize,
        recovery: &ShardRecovery,
        settings: &JournalConfig,
    ) -> Result<JournalStart, JournalError> {
        let shard_dir = shard_dir(data_dir, index);
        let writer = match &recovery.tail {
            Some((segment, len_bytes)) => {
                SegmentWriter::append_to(&shard_dir, segment, *len_bytes)?
            }
            None => SegmentWriter::create_prepared(
                &shard_dir,
                recovery.next_seq,
                settings.segment_max_bytes + ZERO_AHEAD_BYTES,
            )?,
        };
        Ok(JournalStart {
            shard_dir,
            writer,
            next_seq: recovery.next_seq,
        })
    }
}

/// A shard thread's side of its journal; `A` is the replies that wait for a record.
pub(crate) struct ShardJournal<A: Acknowledge> {
    handle: JournalHandle<A>,
    mode: SyncMode,
    /// Sequence the next record gets.
    next_seq: u64,
    snapshot_every_commands: u64,
    commands_since_snapshot: u64,
    /// The record being built; split off and handed to the journal thread per wake-up.
    encoder: BytesMut,
    /// The wake-up's record, between [`ShardJournal::begin`] and [`ShardJournal::commit`].
    record: Option<RecordBuilder>,
}

impl<A: Acknowledge> ShardJournal<A> {
    /// Starts shard `shard`'s journal thread (of `shards`), continuing at `start`.
    pub(crate) fn start(
        shard: usize,
        shards: usize,
        start: JournalStart,
        settings: &JournalConfig,
        failure: Arc<DurabilityFailure>,
    ) -> std::io::Result<Self> {
        let handle = JournalHandle::start(
            JournalThreadSettings {
                shard: shard as u32,
                shards: shards as u32,
                shard_dir: start.shard_dir,
                mode: settings.mode,
                segment_max_bytes: settings.segment_max_bytes,
                capacity_messages: settings.pipeline_capacity_records,
            },
            start.writer,
            failure,
        )?;
        Ok(ShardJournal {
            handle,
            mode: settings.mode,
            next_seq: start.next_seq,
            snapshot_every_commands: settings.snapshot_every_commands,
            commands_since_snapshot: 0,
            encoder: BytesMut::with_capacity(1 << 16),
            record: None,
        })
    }

    /// Begins the wake-up's record, applied at `now_ms`.
    pub(crate) fn begin(&mut self, now_ms: u64) {
        self.record = Some(RecordBuilder::begin(
            &mut self.encoder,
            self.next_seq,
            now_ms,
        ));
    }

    /// Adds a command that changed state to the record begun.
    #[inline]
    pub(crate) fn push(&mut self, command: &Command) {
        if let Some(record) = self.record.as_mut() {
            record.push(&mut self.encoder, command);
        }
    }

    /// Finishes the record begun and hands it to the journal thread with its `replies`; returns
    /// whether a periodic snapshot is due now.
    pub(crate) fn commit(&mut self, replies: A) -> bool {
        let count = self
            .record
            .take()
            .map_or(0, |record| record.finish(&mut self.encoder));
        self.hand_over(count, replies);
        self.snapshot_due()
    }

    /// Hands the wake-up's record (if it holds `count` > 0 commands) to the journal thread.
    /// Sync: the replies go with it and are sent once it is on disk. Async: they go now.
    fn hand_over(&mut self, count: u32, replies: A) {
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

    /// Whether a clean stop should snapshot: periodic snapshots are on and something was
    /// journaled since the last one.
    pub(crate) fn snapshot_wanted_at_stop(&self) -> bool {
        self.snapshot_every_commands > 0 && self.commands_since_snapshot > 0
    }

    /// Hands the journal thread a snapshot `state` covering every record written so far.
    pub(crate) fn snapshot(&mut self, state: Vec<u8>) {
        let seq = self.next_seq - 1;
        self.commands_since_snapshot = 0;
        self.handle.send(JournalMessage::Snapshot { seq, state });
    }
}
