//! `trace import`: converts traffic exported from other systems — CSV or JSON Lines with the
//! fields timestamp_ms, op, order_id, user_id, sku_id, qty — into a trace of requests as sent.
//! Rows are validated one by one and every bad row is reported with its 1-based line number.
//! Policy: by default any bad row refuses the whole import (nothing is written); with
//! `skip_bad` the good rows are imported and the bad ones listed. Rows are sorted by timestamp
//! (stable), and times start at the earliest row. It owns parsing and validation only; the
//! byte format is `flashsale_engine::trace`'s.

use crate::driver::schedule::Op;
use crate::trace::Provenance;
use flashsale_engine::trace::{TraceError, TraceHeader, TraceTrailer, TraceWriter};
use flashsale_engine::{Command, SkuConfig};
use serde::Deserialize;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// At most this many bad rows are listed in a message (all are counted).
pub const LISTED_BAD_ROWS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// A row that could not be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line number in the input file.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {count} bad row(s); import refused, nothing written (--skip-bad imports the rest):\n{list}", list = list(bad))]
    BadRows {
        path: PathBuf,
        count: usize,
        bad: Vec<BadRow>,
    },
    #[error("{path}: no rows to import")]
    Empty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: TraceError },
    #[error("cannot write {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list(bad: &[BadRow]) -> String {
    let mut out = String::new();
    for b in bad.iter().take(LISTED_BAD_ROWS) {
        let _ = writeln!(out, "  line {}: {}", b.line, b.message);
    }
    if bad.len() > LISTED_BAD_ROWS {
        let _ = writeln!(out, "  … and {} more", bad.len() - LISTED_BAD_ROWS);
    }
    out.trim_end().to_string()
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    pub rows: u64,
    pub written: u64,
    /// Bad rows skipped (only with `skip_bad`; otherwise the import fails).
    pub bad: Vec<BadRow>,
    pub trailer: TraceTrailer,
}

impl ImportReport {
    pub fn bad_rows_text(&self) -> String {
        list(&self.bad)
    }
}

const COLUMNS: [&str; 6] = ["timestamp_ms", "op", "order_id", "user_id", "sku_id", "qty"];

/// One row's fields, as text or JSON numbers.
#[derive(Deserialize)]
struct JsonRow {
    timestamp_ms: Option<serde_json::Value>,
    op: Option<String>,
    order_id: Option<serde_json::Value>,
    user_id: Option<serde_json::Value>,
    sku_id: Option<serde_json::Value>,
    qty: Option<serde_json::Value>,
}

fn json_field(value: &Option<serde_json::Value>) -> Option<String> {
    match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    }
}

fn int<T: std::str::FromStr>(name: &str, text: Option<&str>) -> Result<T, String> {
    let t = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(format!("{name} is missing"))?;
    t.parse()
        .map_err(|_| format!("{name} `{t}` is not a valid non-negative integer"))
}

/// Parses `123` or `123.456789` milliseconds exactly into nanoseconds (no float rounding:
/// epoch milliseconds need 41 bits, more than f64 keeps once multiplied to ns).
fn parse_ms(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err(format!("timestamp_ms `{text}` must be ≥ 0"));
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return Err(format!(
            "timestamp_ms `{text}` is not a number (milliseconds, e.g. 1700000000123.5)"
        ));
    }
    if frac.len() > 6 {
        return Err(format!(
            "timestamp_ms `{text}` has more than 6 decimals (finer than a nanosecond)"
        ));
    }
    let too_big = || format!("timestamp_ms `{text}` is too large");
    let ms: u64 = whole.parse().map_err(|_| too_big())?;
    let frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().map_err(|_| too_big())? * 10u64.pow(6 - frac.len() as u32)
    };
    ms.checked_mul(1_000_000)
        .and_then(|ns| ns.checked_add(frac_ns))
        .ok_or_else(too_big)
}

/// Validates one row's fields into (timestamp ns, command).
fn to_command(fields: [Option<&str>; 6]) -> Result<(u64, Command), String> {
    let [ts, op, order, user, sku, qty] = fields;
    let ts_text = ts
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("timestamp_ms is missing")?;
    let at_ns = parse_ms(ts_text)?;
    let order_id: u64 = int("order_id", order)?;
    let user_id: u64 = int("user_id", user)?;
    let op = op
        .map(|o| o.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if op.is_empty() {
        return Err("op is missing".into());
    }
    let Some(op) = Op::ALL.into_iter().find(|o| o.name() == op) else {
        return Err(format!("op `{op}` is not reserve, pay or cancel"));
    };
    let command = match op {
        Op::Reserve => {
            let sku_id: u32 = int("sku_id", sku)?;
            let qty: u32 = int("qty", qty)?;
            if qty == 0 {
                return Err("qty must be at least 1 for a reserve".into());
            }
            Command::Reserve {
                order_id,
                user_id,
                sku_id,
                qty,
            }
        }
        Op::Pay => Command::Pay { order_id, user_id },
        Op::Cancel => Command::Cancel { order_id, user_id },
    };
    Ok((at_ns, command))
}

/// Reads rows from `input`; good rows into the result, bad ones into `bad`.
fn parse(
    input: &Path,
    format: Format,
    bad: &mut Vec<BadRow>,
) -> Result<(u64, Vec<(u64, Command)>), ImportError> {
    let read_err = |source| ImportError::Read {
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(read_err)?;
    let mut rows = Vec::new();
    let mut seen = 0u64;
    // Column positions in a CSV; a header row (naming the columns) may reorder them.
    let mut positions: [usize; 6] = [0, 1, 2, 3, 4, 5];
    let mut first = true;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line_no = index + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                bad.push(BadRow {
                    line: line_no,
                    message: "not UTF-8 text".into(),
                });
                continue;
            }
            Err(e) => return Err(read_err(e)),
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        let parsed = match format {
            Format::Csv => {
                let cells: Vec<&str> = trimmed.split(',').map(str::trim).collect();
                // The first row is a header when it names any of the columns.
                if was_first
                    && cells
                        .iter()
                        .any(|c| COLUMNS.iter().any(|n| c.eq_ignore_ascii_case(n)))
                {
                    let mut found = [usize::MAX; 6];
                    for (i, cell) in cells.iter().enumerate() {
                        if let Some(c) = COLUMNS.iter().position(|n| cell.eq_ignore_ascii_case(n)) {
                            found[c] = i;
                        }
                    }
                    if let Some(missing) = (0..6).find(|&c| found[c] == usize::MAX) {
                        bad.push(BadRow {
                            line: line_no,
                            message: format!("header lacks the column {}", COLUMNS[missing]),
                        });
                        // Every later row would be misread: stop here.
                        return Ok((seen, rows));
                    }
                    positions = found;
                    continue;
                }
                seen += 1;
                let get = |c: usize| cells.get(positions[c]).copied();
                to_command([get(0), get(1), get(2), get(3), get(4), get(5)])
            }
            Format::Jsonl => {
                seen += 1;
                match serde_json::from_str::<JsonRow>(trimmed) {
                    Ok(row) => {
                        let f = [
                            json_field(&row.timestamp_ms),
                            row.op.clone(),
                            json_field(&row.order_id),
                            json_field(&row.user_id),
                            json_field(&row.sku_id),
                            json_field(&row.qty),
                        ];
                        to_command([
                            f[0].as_deref(),
                            f[1].as_deref(),
                            f[2].as_deref(),
                            f[3].as_deref(),
                            f[4].as_deref(),
                            f[5].as_deref(),
                        ])
                    }
                    Err(e) => Err(format!("not a JSON object with the expected fields: {e}")),
                }
            }
        };
        match parsed {
            Ok(row) => rows.push(row),
            Err(message) => bad.push(BadRow {
                line: line_no,
                message,
            }),
        }
    }
    Ok((seen, rows))
}

/// Imports `input` into the trace `out`. `catalog` (if any) is written first as `UpsertSku`
/// records at time 0 so a replay can create it.
pub fn import(
    input: &Path,
    format: Format,
    out: &Path,
    catalog: &[SkuConfig],
    skip_bad: bool,
) -> Result<ImportReport, ImportError> {
    let mut bad = Vec::new();
    let (seen, mut rows) = parse(input, format, &mut bad)?;
    if !bad.is_empty() && !skip_bad {
        return Err(ImportError::BadRows {
            path: input.to_path_buf(),
            count: bad.len(),
            bad,
        });
    }
    if rows.is_empty() {
        return Err(ImportError::Empty {
            path: input.to_path_buf(),
        });
    }
    rows.sort_by_key(|(at, _)| *at);
    let t0 = rows[0].0;
    let provenance = Provenance {
        source: "import".into(),
        imported_from: Some(input.display().to_string()),
        writer: Some(format!("flashsale-loadgen {}", env!("CARGO_PKG_VERSION"))),
        ..Provenance::default()
    };
    let header = TraceHeader::new(0, t0, 0, provenance.to_toml());
    let write_err = |source| ImportError::Write {
        path: out.to_path_buf(),
        source,
    };
    let file = File::create(out).map_err(|source| ImportError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let mut writer =
        TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &header).map_err(write_err)?;
    for sku in catalog {
        writer
            .push(0, &Command::UpsertSku(*sku))
            .map_err(write_err)?;
    }
    for (at_ns, command) in &rows {
        writer.push(at_ns - t0, command).map_err(write_err)?;
    }
    let (_, trailer) = writer.finish(0).map_err(write_err)?;
    Ok(ImportReport {
        rows: seen,
        written: rows.len() as u64,
        bad,
        trailer,
    })
}
