//! Snapshot files: `snapshot-<seq>.snap` in a shard directory, holding one shard's canonical
//! state (encoded by [`crate::shard::Shard::encode_snapshot`]) after journal record `seq`.
//! Written atomically: a temporary file, fsync, rename, fsync of the directory. It owns the
//! file envelope only (magic, shard, sequence, CRC); the state encoding is the shard's.
//!
//! Envelope, big-endian:
//! ```text
//! magic   8 bytes  "FSSNAP02" (02: orders in creation order, expiry entries as positions)
//! shard   u32      index of the shard
//! shards  u32      shard count of the engine that wrote it
//! seq     u64      last journal record the state includes
//! len     u64      bytes of state that follow
//! state   len bytes
//! crc     u32      CRC32C of every byte before it
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{JournalError, sync_dir};

const MAGIC: &[u8; 8] = b"FSSNAP02";
/// The magic of every format version; a file of another version is named as such.
const MAGIC_FAMILY: &[u8; 6] = b"FSSNAP";
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8;
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";

pub fn snapshot_path(shard_dir: &Path, seq: u64) -> PathBuf {
    shard_dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
}

/// Snapshot files of a shard directory as `(seq, path)`, newest first. Leftover temporary
/// files of an interrupted write are not snapshots and are not listed.
pub fn list_snapshots(shard_dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut found = super::segment::numbered_files(shard_dir, PREFIX, SUFFIX, "snapshot")?;
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(found)
}

/// Writes a snapshot atomically and returns its path.
pub fn write_snapshot(
    shard_dir: &Path,
    shard: u32,
    shards: u32,
    seq: u64,
    state: &[u8],
) -> Result<PathBuf, JournalError> {
    let path = snapshot_path(shard_dir, seq);
    let tmp = path.with_extension("snap.tmp");
    let mut bytes = Vec::with_capacity(HEADER_LEN + state.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&shard.to_be_bytes());
    bytes.extend_from_slice(&shards.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&(state.len() as u64).to_be_bytes());
    bytes.extend_from_slice(state);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let mut file = File::create(&tmp).map_err(|e| JournalError::io(&tmp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(shard_dir).map_err(|e| JournalError::io(shard_dir, e))?;
    Ok(path)
}

/// A snapshot file read back and checked.
#[derive(Debug)]
pub struct SnapshotFile {
    pub seq: u64,
    pub state: Vec<u8>,
    /// Where the state starts in the file, to turn state offsets into file offsets.
    pub state_offset: u64,
}

/// Reads a snapshot and checks its envelope and CRC (not yet the state inside).
pub fn read_snapshot(path: &Path, shard: u32, shards: u32) -> Result<SnapshotFile, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let corrupt = |offset: usize, reason: String| JournalError::CorruptSnapshot {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < HEADER_LEN + 4 {
        return Err(corrupt(
            0,
            format!("{} bytes is shorter than a snapshot envelope", bytes.len()),
        ));
    }
    if &bytes[..8] != MAGIC {
        let reason = if &bytes[..6] == MAGIC_FAMILY {
            format!(
                "snapshot format {} is not the supported {} (written by another version)",
                String::from_utf8_lossy(&bytes[6..8]),
                String::from_utf8_lossy(&MAGIC[6..8])
            )
        } else {
            "bad magic: not a flashsale snapshot".to_string()
        };
        return Err(corrupt(0, reason));
    }
    let u32_at =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let len = u64_at(24);
    let expected_len = (HEADER_LEN as u64)
        .checked_add(len)
        .and_then(|n| n.checked_add(4));
    if expected_len != Some(bytes.len() as u64) {
        return Err(corrupt(
            24,
            format!(
                "state length {len} does not match the file size {}",
                bytes.len()
            ),
        ));
    }
    let crc_at = bytes.len() - 4;
    if crc32c::crc32c(&bytes[..crc_at]) != u32_at(crc_at) {
        return Err(corrupt(crc_at, "CRC mismatch".to_string()));
    }
    if u32_at(8) != shard || u32_at(12) != shards {
        return Err(corrupt(
            8,
            format!(
                "written for shard {} of {}, read as shard {shard} of {shards}",
                u32_at(8),
                u32_at(12)
            ),
        ));
    }
    Ok(SnapshotFile {
        seq: u64_at(16),
        state: bytes[HEADER_LEN..crc_at].to_vec(),
        state_offset: HEADER_LEN as u64,
    })
}
