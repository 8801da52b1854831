//! The read-only tools behind `flashsale-engine journal inspect|verify DIR`: print a data
//! directory's records readably, and check every CRC, sequence and snapshot, reporting the
//! first problem with its file and offset. They never modify a file (a torn tail is reported,
//! not truncated) and must not be used on a directory a running engine writes to for anything
//! but a best-effort look.

use std::io::Write;
use std::path::Path;

use super::recovery::{TailPolicy, TornTail, scan_journal};
use super::segment::list_segments;
use super::snapshot::{list_snapshots, read_snapshot};
use super::{JournalError, META_FILE, shard_dir};
use crate::shard::Shard;
use crate::types::Command;

/// The shard count a data directory was written with, from its meta file.
pub fn shard_count(data_dir: &Path) -> Result<usize, JournalError> {
    let path = data_dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| JournalError::io(&path, e))?;
    text.lines()
        .find_map(|line| line.strip_prefix("shards="))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| JournalError::Layout {
            path,
            reason: "no valid `shards=N` line".to_string(),
        })
}

/// One command, readably.
pub fn describe_command(command: &Command) -> String {
    match *command {
        Command::UpsertSku(c) => format!(
            "upsert_sku sku={} stock_total={} per_user_limit={} hold_ttl_ms={} price_cents={} sale_start_ms={:?} sale_end_ms={:?}",
            c.sku_id,
            c.stock_total,
            c.per_user_limit,
            c.hold_ttl_ms,
            c.price_cents,
            c.sale_start_ms,
            c.sale_end_ms
        ),
        Command::Restock { sku_id, delta } => format!("restock sku={sku_id} delta={delta}"),
        Command::Reserve {
            order_id,
            user_id,
            sku_id,
            qty,
        } => format!("reserve order={order_id} user={user_id} sku={sku_id} qty={qty}"),
        Command::Pay { order_id, user_id } => format!("pay order={order_id} user={user_id}"),
        Command::Cancel { order_id, user_id } => {
            format!("cancel order={order_id} user={user_id}")
        }
        Command::QueryOrder { order_id } => format!("query_order order={order_id}"),
        Command::QuerySku { sku_id } => format!("query_sku sku={sku_id}"),
    }
}

/// The sequence a read-only scan of a shard starts after: low enough to read every segment
/// present, so every CRC is checked.
fn scan_start(shard_dir: &Path, snapshot_seq: u64) -> Result<u64, JournalError> {
    let first = list_segments(shard_dir)?.first().map(|s| s.first_seq);
    Ok(match first {
        Some(first_seq) => snapshot_seq.min(first_seq.saturating_sub(1)),
        None => snapshot_seq,
    })
}

/// Prints every snapshot and record of every shard to `out`.
pub fn inspect(data_dir: &Path, out: &mut dyn Write) -> Result<(), JournalError> {
    let shards = shard_count(data_dir)?;
    let stdout_error = |e: std::io::Error| JournalError::io(Path::new("<output>"), e);
    writeln!(
        out,
        "data directory {} ({shards} shards)",
        data_dir.display()
    )
    .map_err(stdout_error)?;
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        writeln!(out, "shard {index}: {}", dir.display()).map_err(stdout_error)?;
        let mut snapshot_seq = 0;
        for (seq, path) in list_snapshots(&dir)? {
            let file = read_snapshot(&path, index as u32, shards as u32)?;
            snapshot_seq = snapshot_seq.max(seq);
            writeln!(
                out,
                "  snapshot {} covers records 1..={} ({} state bytes)",
                path.display(),
                file.seq,
                file.state.len()
            )
            .map_err(stdout_error)?;
        }
        let mut current: Option<std::path::PathBuf> = None;
        let scan = scan_journal(
            &dir,
            scan_start(&dir, snapshot_seq)?,
            snapshot_seq,
            TailPolicy::Report,
            |record| {
                if current.as_deref() != Some(record.path) {
                    current = Some(record.path.to_path_buf());
                    writeln!(out, "  segment {}", record.path.display()).map_err(stdout_error)?;
                }
                writeln!(
                    out,
                    "    @{} seq={} now_ms={} commands={}",
                    record.offset, record.header.seq, record.header.now_ms, record.header.count
                )
                .map_err(stdout_error)?;
                for command in record.commands {
                    writeln!(out, "      {}", describe_command(command)).map_err(stdout_error)?;
                }
                Ok(())
            },
        )?;
        if let Some(torn) = &scan.torn {
            writeln!(
                out,
                "  torn tail in {} at byte offset {}: {} (recovery will truncate it)",
                torn.path.display(),
                torn.offset,
                torn.reason
            )
            .map_err(stdout_error)?;
        }
    }
    Ok(())
}

/// What `verify` found in one shard.
#[derive(Clone, Debug)]
pub struct ShardVerify {
    pub index: usize,
    pub snapshot_seq: Option<u64>,
    pub records: u64,
    pub commands: u64,
    pub next_seq: u64,
    pub torn: Option<TornTail>,
}

/// Checks every snapshot (envelope, CRC and state) and every journal record (CRC, sequence,
/// command encoding) of a data directory. The first problem is the error, naming the file and
/// offset; a torn tail is not an error (recovery truncates it) and is reported per shard.
pub fn verify(data_dir: &Path) -> Result<Vec<ShardVerify>, JournalError> {
    let shards = shard_count(data_dir)?;
    let mut report = Vec::with_capacity(shards);
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        let mut snapshot_seq = None;
        for (seq, path) in list_snapshots(&dir)? {
            let file = read_snapshot(&path, index as u32, shards as u32)?;
            Shard::decode_snapshot(&file.state, 0).map_err(|e| JournalError::CorruptSnapshot {
                path: path.clone(),
                offset: file.state_offset + e.offset as u64,
                reason: e.reason,
            })?;
            snapshot_seq = Some(snapshot_seq.unwrap_or(seq).max(seq));
        }
        let start = scan_start(&dir, snapshot_seq.unwrap_or(0))?;
        let covered = snapshot_seq.unwrap_or(0);
        let scan = scan_journal(&dir, start, covered, TailPolicy::Report, |_| Ok(()))?;
        report.push(ShardVerify {
            index,
            snapshot_seq,
            records: scan.records,
            commands: scan.commands,
            next_seq: scan.next_seq,
            torn: scan.torn,
        });
    }
    Ok(report)
}
