//! Recovery of one shard: the newest snapshot that reads back valid, then every journal record
//! after it replayed through [`Shard::apply`] with the time it was applied at. Also the journal
//! scan that recovery and the `inspect` / `verify` tools share. It owns the rules of what a
//! data directory may look like after a crash: a torn tail of the last segment is cut off (or
//! reported, for the read-only tools); a bad record anywhere else, a gap in the sequence, or a
//! journal that does not reach back to the snapshot stops start-up with the file and offset.
//! It must not write anything but that truncation.

use std::path::{Path, PathBuf};

use super::record::{Frame, RecordHeader, decode_record_commands, next_frame, record_header};
use super::segment::{SegmentInfo, list_segments};
use super::snapshot::{list_snapshots, read_snapshot};
use super::{JournalError, shard_dir};
use crate::shard::Shard;
use crate::types::{Command, Outcome};

/// What to do with a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailPolicy {
    /// Cut the last segment at the start of the torn record and fsync it (recovery).
    Truncate,
    /// Leave the file as it is and report it (read-only tools).
    Report,
}

/// A torn tail that was found: the file, the offset the valid data ends at, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
}

/// One record as the scan hands it out.
pub struct RecordRef<'a> {
    pub header: RecordHeader,
    pub commands: &'a [Command],
    pub path: &'a Path,
    /// Byte offset of the record's frame in its segment.
    pub offset: u64,
}

/// What a scan of one shard's journal found.
#[derive(Clone, Debug, Default)]
pub struct JournalScan {
    /// The sequence the next record written must carry.
    pub next_seq: u64,
    /// The last segment and the length of its valid bytes, where writing continues.
    pub tail: Option<(SegmentInfo, u64)>,
    pub torn: Option<TornTail>,
    /// Records and commands handed to the visitor (those after `after_seq`).
    pub records: u64,
    pub commands: u64,
    pub segments_read: usize,
}

/// Reads every record of a shard directory's journal in order and hands those with a sequence
/// above `after_seq` to `visit`. Segments wholly at or below `after_seq` are not read. Fails on
/// a bad record that is not a torn tail, on a gap in the sequence, and when the journal does
/// not reach back to `after_seq + 1`. Records up to `covered_through` (a snapshot's sequence)
/// may be missing: a snapshot can be durable while the last records it covers were written but
/// not yet synced (async mode) when the machine went down.
pub fn scan_journal(
    shard_dir: &Path,
    after_seq: u64,
    covered_through: u64,
    policy: TailPolicy,
    mut visit: impl FnMut(RecordRef<'_>) -> Result<(), JournalError>,
) -> Result<JournalScan, JournalError> {
    let segments = list_segments(shard_dir)?;
    let covered_through = covered_through.max(after_seq);
    // Whether `found` may follow `expected`: the next one, or a jump over covered records only.
    let continues = |expected: u64, found: u64| {
        found == expected || (found > expected && found <= covered_through + 1)
    };
    let mut scan = JournalScan {
        next_seq: after_seq + 1,
        ..JournalScan::default()
    };
    // Skip segments that the next one shows to hold only records up to `after_seq`.
    let first_needed = segments
        .windows(2)
        .take_while(|pair| pair[1].first_seq <= after_seq + 1)
        .count();
    let mut commands: Vec<Command> = Vec::new();
    let last_index = segments.len().saturating_sub(1);
    let mut expected: Option<u64> = None;
    for (index, segment) in segments.iter().enumerate().skip(first_needed) {
        match expected {
            None if segment.first_seq > after_seq + 1 => {
                return Err(JournalError::SequenceGap {
                    path: segment.path.clone(),
                    offset: 0,
                    expected: after_seq + 1,
                    found: segment.first_seq,
                });
            }
            Some(expected) if !continues(expected, segment.first_seq) => {
                return Err(JournalError::SequenceGap {
                    path: segment.path.clone(),
                    offset: 0,
                    expected,
                    found: segment.first_seq,
                });
            }
            _ => {}
        }
        let mut seq = segment.first_seq;
        let bytes = std::fs::read(&segment.path).map_err(|e| JournalError::io(&segment.path, e))?;
        scan.segments_read += 1;
        let mut offset = 0usize;
        loop {
            match next_frame(&bytes, offset, seq) {
                Frame::Record { payload, next } => {
                    let corrupt = |at: usize, reason: String| JournalError::CorruptRecord {
                        path: segment.path.clone(),
                        offset: (offset + at) as u64,
                        reason,
                    };
                    let header = record_header(payload).map_err(|reason| corrupt(0, reason))?;
                    if !continues(seq, header.seq) {
                        return Err(JournalError::SequenceGap {
                            path: segment.path.clone(),
                            offset: offset as u64,
                            expected: seq,
                            found: header.seq,
                        });
                    }
                    seq = header.seq;
                    if header.seq > after_seq {
                        decode_record_commands(payload, &header, &mut commands)
                            .map_err(|(at, reason)| corrupt(8 + at, reason))?;
                        scan.records += 1;
                        scan.commands += u64::from(header.count);
                        visit(RecordRef {
                            header,
                            commands: &commands,
                            path: &segment.path,
                            offset: offset as u64,
                        })?;
                    }
                    seq += 1;
                    offset = next;
                }
                Frame::End => break,
                Frame::TornTail { reason } => {
                    if index != last_index {
                        return Err(JournalError::CorruptRecord {
                            path: segment.path.clone(),
                            offset: offset as u64,
                            reason: format!(
                                "{reason}, in a segment that is not the last (segments are synced before a new one starts)"
                            ),
                        });
                    }
                    if policy == TailPolicy::Truncate {
                        truncate(&segment.path, offset as u64)?;
                    }
                    scan.torn = Some(TornTail {
                        path: segment.path.clone(),
                        offset: offset as u64,
                        reason,
                    });
                    break;
                }
                Frame::Corrupt { reason } => {
                    return Err(JournalError::CorruptRecord {
                        path: segment.path.clone(),
                        offset: offset as u64,
                        reason,
                    });
                }
            }
        }
        expected = Some(seq);
        scan.next_seq = scan.next_seq.max(seq);
        if seq <= after_seq && index == last_index {
            // The whole journal lies at or below the snapshot: writing goes on after it.
            scan.next_seq = after_seq + 1;
        }
        scan.tail = Some((segment.clone(), offset as u64));
    }
    Ok(scan)
}

fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::io(path, e))
}

/// What recovering one shard did, for the log and the tests.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// The snapshot recovery started from, with the sequence it covers.
    pub snapshot: Option<(u64, PathBuf)>,
    /// Snapshots that did not read back valid, newest first, with the reason.
    pub invalid_snapshots: Vec<(PathBuf, String)>,
    pub records_replayed: u64,
    pub commands_replayed: u64,
    pub segments_read: usize,
    pub torn_tail: Option<TornTail>,
}

/// A recovered shard and where its journal continues.
pub struct ShardRecovery {
    pub shard: Shard,
    pub next_seq: u64,
    pub tail: Option<(SegmentInfo, u64)>,
    pub report: RecoveryReport,
}

/// Recovers shard `index` of an engine with `shards` shards from `data_dir`.
pub fn recover_shard(
    data_dir: &Path,
    index: usize,
    shards: usize,
    orders_capacity: usize,
) -> Result<ShardRecovery, JournalError> {
    recover_shard_with(data_dir, index, shards, orders_capacity, |_, _| {})
}

/// [`recover_shard`], handing each replayed record's commands and outcomes to `observe` (for
/// replay-determinism tests and tools).
pub fn recover_shard_with(
    data_dir: &Path,
    index: usize,
    shards: usize,
    orders_capacity: usize,
    mut observe: impl FnMut(&[Command], &[Outcome]),
) -> Result<ShardRecovery, JournalError> {
    let dir = shard_dir(data_dir, index);
    let mut report = RecoveryReport::default();
    let mut start: Option<(u64, Shard)> = None;
    let mut first_snapshot_error: Option<JournalError> = None;
    for (seq, path) in list_snapshots(&dir)? {
        let decoded = read_snapshot(&path, index as u32, shards as u32).and_then(|file| {
            Shard::decode_snapshot(&file.state, orders_capacity).map_err(|e| {
                JournalError::CorruptSnapshot {
                    path: path.clone(),
                    offset: file.state_offset + e.offset as u64,
                    reason: e.reason,
                }
            })
        });
        match decoded {
            Ok(shard) => {
                report.snapshot = Some((seq, path));
                start = Some((seq, shard));
                break;
            }
            Err(error) => {
                report.invalid_snapshots.push((path, error.to_string()));
                first_snapshot_error.get_or_insert(error);
            }
        }
    }
    let (after_seq, mut shard) =
        start.unwrap_or_else(|| (0, Shard::with_capacity(orders_capacity)));
    let mut outcomes: Vec<Outcome> = Vec::new();
    let scan = scan_journal(&dir, after_seq, after_seq, TailPolicy::Truncate, |record| {
        outcomes.clear();
        shard.apply(record.header.now_ms, record.commands, &mut outcomes);
        observe(record.commands, &outcomes);
        // Nobody listens yet (the runtime publishes the recovered state as a whole): undrained,
        // this list would grow by an entry per replayed order. (Changed SKUs are listed once
        // each, so that list stays small; the runtime drains it.)
        shard.drain_created_orders(|_| {});
        Ok(())
    });
    let scan = match (scan, first_snapshot_error) {
        // A journal that cannot reach back past a bad snapshot: the bad snapshot is the news.
        (Err(JournalError::SequenceGap { .. }), Some(snapshot_error)) => {
            return Err(snapshot_error);
        }
        (scan, _) => scan?,
    };
    report.records_replayed = scan.records;
    report.commands_replayed = scan.commands;
    report.segments_read = scan.segments_read;
    report.torn_tail = scan.torn;
    Ok(ShardRecovery {
        shard,
        next_seq: scan.next_seq,
        tail: scan.tail,
        report,
    })
}
