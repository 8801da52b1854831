//! Durability: the write-ahead journal, snapshots and crash recovery. It owns the on-disk
//! layout of a data directory, the record and snapshot formats, the per-shard journal thread
//! (group commit: one write + one fdatasync per drain of pending wake-ups), recovery (newest
//! valid snapshot + the journal after it, torn-tail truncation, mid-log corruption reported
//! with file and offset) and the read-only `inspect` / `verify` tools.
//!
//! It must not decide any business rule (the shard's) nor route commands (the runtime's): it
//! stores exactly the commands a shard applied with the time the shard used, and gives them
//! back in the same order. The runtime's shard worker is its only writer.
//!
//! Layout of a data directory with N shards:
//! ```text
//! DIR/flashsale.meta                     format version and shard count (checked on open)
//! DIR/LOCK                               advisory lock: one engine per directory
//! DIR/shard-K/journal-<first-seq>.log    segments, 20-digit zero-padded first sequence
//! DIR/shard-K/snapshot-<seq>.snap        snapshot covering records 1..=seq
//! ```
//! See `docs/notes/durability-notes.md` for the record formats and the guarantees of each mode.

pub mod pipeline;
pub mod record;
pub mod recovery;
pub mod segment;
mod shard_journal;
pub mod snapshot;
pub mod tools;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use pipeline::{Acknowledge, DurabilityFailure, JournalHandle, JournalMessage};
pub use recovery::{RecoveryReport, ShardRecovery, recover_shard};
pub(crate) use shard_journal::{JournalStart, ShardJournal};

/// How the engine keeps its state across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// No journal: a restart forgets everything (benchmarks, tests, the embedded default).
    #[default]
    Memory,
    /// A write-ahead journal with snapshots in a data directory.
    Journal(JournalConfig),
}

/// When a reply may be sent relative to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// A reply is sent only after the record holding its commands is written and fdatasync'd.
    Sync,
    /// Records are written at once and fdatasync'd every `fsync_interval_ms`; replies do not
    /// wait. A crash of the machine can lose what was acknowledged in the last interval.
    Async { fsync_interval_ms: u64 },
}

/// Settings of a journaled engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    pub mode: SyncMode,
    /// A segment that has grown past this many bytes is closed and a new one started.
    pub segment_max_bytes: u64,
    /// A shard snapshots its state after journaling this many commands since its last
    /// snapshot; 0 turns periodic snapshots off.
    pub snapshot_every_commands: u64,
    /// Wake-up records the shard may have handed to its journal thread and not yet seen
    /// written; a full hand-off queue makes the shard wait (back-pressure).
    pub pipeline_capacity_records: usize,
}

impl JournalConfig {
    pub fn new(dir: impl Into<PathBuf>, mode: SyncMode) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            mode,
            segment_max_bytes: 64 << 20,
            snapshot_every_commands: 2_000_000,
            pipeline_capacity_records: 1024,
        }
    }
}

/// Everything that can go wrong reading or writing a data directory. Every variant that is
/// about a file names it, and every variant about a place in a file gives the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} at byte offset {offset}: corrupt record in the middle of the journal: {reason}"
    )]
    CorruptRecord {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} at byte offset {offset}: corrupt snapshot: {reason}")]
    CorruptSnapshot {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} at byte offset {offset}: expected record sequence {expected}, found {found}")]
    SequenceGap {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("{path}: another engine holds this data directory")]
    Locked { path: PathBuf },
}

impl JournalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub(crate) const META_FILE: &str = "flashsale.meta";
const META_FORMAT: &str = "flashsale-journal 1";

/// The directory of shard `index` inside a data directory.
pub fn shard_dir(data_dir: &Path, index: usize) -> PathBuf {
    data_dir.join(format!("shard-{index}"))
}

/// Opens (creating if new) a data directory for `shards` shards: checks the meta file, creates
/// the shard directories and takes the directory lock, which is held while the returned file
/// lives. A directory written with another shard count is refused, because SKUs are routed to
/// shards by a hash of the shard count.
pub fn open_data_dir(data_dir: &Path, shards: usize) -> Result<File, JournalError> {
    std::fs::create_dir_all(data_dir).map_err(|e| JournalError::io(data_dir, e))?;
    let lock_path = data_dir.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| JournalError::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(JournalError::Locked { path: lock_path });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::io(&lock_path, e)),
    }
    let meta_path = data_dir.join(META_FILE);
    let expected = format!("{META_FORMAT}\nshards={shards}\n");
    match std::fs::read_to_string(&meta_path) {
        Ok(found) if found == expected => {}
        Ok(found) => {
            return Err(JournalError::Layout {
                path: meta_path,
                reason: format!(
                    "written for {:?}, but this engine runs {shards} shards in format {META_FORMAT:?}",
                    found.trim().replace('\n', ", ")
                ),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if shard_dirs_present(data_dir)? {
                return Err(JournalError::Layout {
                    path: meta_path,
                    reason: "missing, but the directory holds shard data".to_string(),
                });
            }
            let tmp = data_dir.join(format!("{META_FILE}.tmp"));
            let mut file = File::create(&tmp).map_err(|e| JournalError::io(&tmp, e))?;
            file.write_all(expected.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| JournalError::io(&tmp, e))?;
            std::fs::rename(&tmp, &meta_path).map_err(|e| JournalError::io(&meta_path, e))?;
        }
        Err(e) => return Err(JournalError::io(&meta_path, e)),
    }
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        std::fs::create_dir_all(&dir).map_err(|e| JournalError::io(&dir, e))?;
    }
    sync_dir(data_dir).map_err(|e| JournalError::io(data_dir, e))?;
    Ok(lock)
}

fn shard_dirs_present(data_dir: &Path) -> Result<bool, JournalError> {
    let entries = std::fs::read_dir(data_dir).map_err(|e| JournalError::io(data_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(data_dir, e))?;
        if entry.file_name().to_string_lossy().starts_with("shard-") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
