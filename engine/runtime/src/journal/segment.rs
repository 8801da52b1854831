//! Segment files of one shard's journal: their names (`journal-<first-seq>.log`), listing
//! them in order, and the append-only writer the journal thread uses (write, fdatasync, roll
//! to a new segment). The writer keeps the file zero-filled [`ZERO_AHEAD_BYTES`] ahead of the
//! data, so most fdatasyncs overwrite blocks that already exist and need no metadata update
//! (measured on this VM: 0.4 ms instead of 3-4 ms); the zeros after the last record are the
//! normal end of a segment, not a torn tail. Zero-filling is itself slow (the fdatasync after
//! it flushes megabytes of zeros and the new size), so the pipeline has whole segments prepared
//! ahead by another thread ([`prepare_segment`], `next-segment.prep`) and rolls into them
//! ([`SegmentWriter::roll_into`]); the writer's own zero-fill is the fallback. It owns file
//! handles and directory entries of segments only; what a record holds is the record module's
//! business, and when to sync or roll is the pipeline's.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{JournalError, sync_dir};

const SEGMENT_PREFIX: &str = "journal-";
/// Zeros written past the data at a time, when the data comes within half of it of the end.
pub const ZERO_AHEAD_BYTES: u64 = 4 << 20;
const SEGMENT_SUFFIX: &str = ".log";

/// The name of a prepared, not yet used segment in a shard directory. Not a segment name, so
/// recovery never reads it; a leftover one is replaced by the next preparation.
const PREPARED_NAME: &str = "next-segment.prep";

/// One segment file: the sequence of its first record (from its name) and its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
}

pub fn segment_path(shard_dir: &Path, first_seq: u64) -> PathBuf {
    shard_dir.join(format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}"))
}

/// The segments of a shard directory, by first sequence.
pub fn list_segments(shard_dir: &Path) -> Result<Vec<SegmentInfo>, JournalError> {
    let mut segments: Vec<SegmentInfo> =
        numbered_files(shard_dir, SEGMENT_PREFIX, SEGMENT_SUFFIX, "journal segment")?
            .into_iter()
            .map(|(first_seq, path)| SegmentInfo { first_seq, path })
            .collect();
    segments.sort_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// `(number, path)` of every file in `dir` named `{prefix}{number}{suffix}`; other files are
/// ignored, and a file with the prefix and suffix but no number between is a layout error
/// (`what` names the kind of file in the message).
pub(super) fn numbered_files(
    dir: &Path,
    prefix: &str,
    suffix: &str,
    what: &str,
) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(digits) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
        else {
            continue;
        };
        let number = digits.parse::<u64>().map_err(|_| JournalError::Layout {
            path: entry.path(),
            reason: format!("a {what} name must carry its sequence number"),
        })?;
        found.push((number, entry.path()));
    }
    Ok(found)
}

/// Appends to the newest segment of one shard.
pub struct SegmentWriter {
    shard_dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Bytes of records: where the next write goes.
    len_bytes: u64,
    /// The file is zero-filled up to here (its size).
    zeroed_to: u64,
}

impl SegmentWriter {
    /// Continues `segment`, whose valid bytes end at `len_bytes` (recovery has truncated any
    /// torn tail already).
    pub fn append_to(
        shard_dir: &Path,
        segment: &SegmentInfo,
        len_bytes: u64,
    ) -> Result<SegmentWriter, JournalError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&segment.path)
            .map_err(|e| JournalError::io(&segment.path, e))?;
        let size = file
            .metadata()
            .map_err(|e| JournalError::io(&segment.path, e))?
            .len();
        Ok(SegmentWriter {
            shard_dir: shard_dir.to_path_buf(),
            file,
            path: segment.path.clone(),
            len_bytes,
            zeroed_to: size.max(len_bytes),
        })
    }

    /// Starts a new segment whose first record will be `first_seq`.
    pub fn create(shard_dir: &Path, first_seq: u64) -> Result<SegmentWriter, JournalError> {
        let path = segment_path(shard_dir, first_seq);
        let file = create_empty(&path)?;
        // The first zeros now (at start-up, or a roll with no prepared segment), not at the
        // first write: that one may be the midnight step's.
        let zeros = vec![0u8; ZERO_AHEAD_BYTES as usize];
        file.write_all_at(&zeros, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| JournalError::io(&path, e))?;
        sync_dir(shard_dir).map_err(|e| JournalError::io(shard_dir, e))?;
        Ok(SegmentWriter {
            shard_dir: shard_dir.to_path_buf(),
            file,
            path,
            len_bytes: 0,
            zeroed_to: ZERO_AHEAD_BYTES,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Writes `bytes` at the end of the segment (to the page cache; see [`Self::sync`]).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        self.file
            .write_all_at(bytes, self.len_bytes)
            .map_err(|e| JournalError::io(&self.path, e))?;
        self.len_bytes += bytes.len() as u64;
        if self.len_bytes + ZERO_AHEAD_BYTES / 2 > self.zeroed_to {
            // Synced with the next fdatasync, which pays the metadata update once per
            // ZERO_AHEAD_BYTES instead of on every sync.
            let zeros = vec![0u8; ZERO_AHEAD_BYTES as usize];
            let from = self.zeroed_to.max(self.len_bytes);
            self.file
                .write_all_at(&zeros, from)
                .map_err(|e| JournalError::io(&self.path, e))?;
            self.zeroed_to = from + ZERO_AHEAD_BYTES;
        }
        Ok(())
    }

    /// fdatasync: everything written so far is on disk when this returns Ok.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file
            .sync_data()
            .map_err(|e| JournalError::io(&self.path, e))
    }

    /// A second handle on the current segment, for a thread that fdatasyncs while this one
    /// goes on writing.
    pub fn sync_handle(&self) -> Result<(File, PathBuf), JournalError> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| JournalError::io(&self.path, e))?;
        Ok((file, self.path.clone()))
    }

    /// Syncs this segment and starts a new one at `first_seq`.
    pub fn roll(&mut self, first_seq: u64) -> Result<(), JournalError> {
        self.sync()?;
        *self = SegmentWriter::create(&self.shard_dir, first_seq)?;
        Ok(())
    }

    /// Syncs this segment and goes on in `prepared`, renamed to the segment name of
    /// `first_seq` (and the directory synced, so the name is durable before any record in it).
    pub fn roll_into(
        &mut self,
        prepared: PreparedSegment,
        first_seq: u64,
    ) -> Result<(), JournalError> {
        self.sync()?;
        *self = SegmentWriter::install(&self.shard_dir, prepared, first_seq)?;
        Ok(())
    }

    /// A new segment at `first_seq`, zero-filled to `len_bytes` and synced before it is used
    /// (the first segment of a new data directory: a start-up cost instead of a stall later).
    pub fn create_prepared(
        shard_dir: &Path,
        first_seq: u64,
        len_bytes: u64,
    ) -> Result<SegmentWriter, JournalError> {
        let prepared = prepare_segment(shard_dir, len_bytes, None)?;
        SegmentWriter::install(shard_dir, prepared, first_seq)
    }

    /// Renames `prepared` to the segment name of `first_seq` and syncs the directory, so the
    /// name is durable before any record in it; a writer at its start.
    fn install(
        shard_dir: &Path,
        prepared: PreparedSegment,
        first_seq: u64,
    ) -> Result<SegmentWriter, JournalError> {
        let path = segment_path(shard_dir, first_seq);
        std::fs::rename(&prepared.path, &path).map_err(|e| JournalError::io(&path, e))?;
        sync_dir(shard_dir).map_err(|e| JournalError::io(shard_dir, e))?;
        Ok(SegmentWriter {
            shard_dir: shard_dir.to_path_buf(),
            file: prepared.file,
            path,
            len_bytes: 0,
            zeroed_to: prepared.len_bytes,
        })
    }

    /// How far the file is known to be zero-filled (or written).
    pub fn zeroed_to(&self) -> u64 {
        self.zeroed_to
    }
}

/// A zero-filled, synced file ready to become a segment: records written into it change no
/// metadata, so each fdatasync flushes just them.
#[derive(Debug)]
pub struct PreparedSegment {
    file: File,
    path: PathBuf,
    len_bytes: u64,
}

/// Zeros a paced preparation writes (and fdatasyncs) at a time: small enough that a journal
/// fdatasync queued behind one at the device waits well under a millisecond.
const PREPARE_CHUNK_BYTES: u64 = 256 << 10;

/// Writes `shard_dir/next-segment.prep` with `len_bytes` zeros and syncs it (data, size and
/// directory entry). With `pace`, it writes and fdatasyncs one chunk at a time with a pause
/// after each, so that it never keeps the disk busy for long while the journal is syncing next
/// to it; without, it writes everything and syncs once (at start-up).
pub fn prepare_segment(
    shard_dir: &Path,
    len_bytes: u64,
    pace: Option<std::time::Duration>,
) -> Result<PreparedSegment, JournalError> {
    let path = shard_dir.join(PREPARED_NAME);
    let file = create_empty(&path)?;
    let zeros = vec![0u8; PREPARE_CHUNK_BYTES as usize];
    let mut at = 0u64;
    while at < len_bytes {
        let chunk = (len_bytes - at).min(PREPARE_CHUNK_BYTES) as usize;
        file.write_all_at(&zeros[..chunk], at)
            .map_err(|e| JournalError::io(&path, e))?;
        at += chunk as u64;
        if let Some(pause) = pace {
            file.sync_data().map_err(|e| JournalError::io(&path, e))?;
            std::thread::sleep(pause);
        }
    }
    file.sync_all().map_err(|e| JournalError::io(&path, e))?;
    sync_dir(shard_dir).map_err(|e| JournalError::io(shard_dir, e))?;
    Ok(PreparedSegment {
        file,
        path,
        len_bytes,
    })
}

/// Opens `path` for writing, created or emptied.
fn create_empty(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(path, e))
}
