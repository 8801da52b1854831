//! `intervals.jsonl`: one JSON object per closed interval and op, appended and flushed as each
//! interval closes (on the recorder's thread, never the pacer's), so the file can be tailed
//! during the run and an interrupted or killed run leaves only complete lines. Its layout is
//! [`INTERVALS_SCHEMA_VERSION`], documented in docs/report-schema.md. It owns the file format
//! only.

use crate::recorder::{LABELS, N_LABELS, Percentiles};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde::ser::SerializeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The version of a line's layout (docs/report-schema.md); raised on every change that
/// renames, removes or retypes a field. Every line carries it.
pub const INTERVALS_SCHEMA_VERSION: u32 = 1;

/// The percentiles a line gives of one histogram, in microseconds (all 0 when it is empty).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Brief {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Brief {
    pub fn of(h: &Histogram<u64>) -> Brief {
        let p = Percentiles::of(h);
        Brief {
            p50_us: p.p50_us,
            p90_us: p.p90_us,
            p99_us: p.p99_us,
            p999_us: p.p999_us,
            max_us: p.max_us,
        }
    }
}

/// Every outcome slot by its code, zeros included, in slot order: every line has the same keys.
struct Counts<'a>(&'a [u64; N_LABELS]);

impl Serialize for Counts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(N_LABELS))?;
        for (label, n) in LABELS.iter().zip(self.0) {
            map.serialize_entry(label, n)?;
        }
        map.end()
    }
}

/// One op's figures over one closed interval.
pub struct OpInterval<'a> {
    pub op: &'a str,
    /// Requests of this op whose intended send time falls in the interval.
    pub offered: u64,
    /// Answers of this op recorded in the interval (every outcome, errors included).
    pub achieved: u64,
    pub outcomes: &'a [u64; N_LABELS],
    pub corrected: &'a Histogram<u64>,
    pub service: &'a Histogram<u64>,
    pub send_lag: &'a Histogram<u64>,
}

#[derive(Serialize)]
struct Line<'a> {
    schema_version: u32,
    start_s: f64,
    duration_s: f64,
    op: &'a str,
    offered: u64,
    achieved: u64,
    outcomes: Counts<'a>,
    corrected: Brief,
    service: Brief,
    send_lag: Brief,
}

/// Appends the lines of each interval as it closes.
pub struct IntervalsWriter {
    out: BufWriter<File>,
    line: Vec<u8>,
}

impl IntervalsWriter {
    pub fn create(path: &Path) -> io::Result<IntervalsWriter> {
        Ok(IntervalsWriter {
            out: BufWriter::new(File::create(path)?),
            line: Vec::with_capacity(4096),
        })
    }

    /// Writes one line per op of the interval starting `start_s` seconds into the run, with a
    /// single write, then flushes: a reader sees whole lines only.
    pub fn write_interval(
        &mut self,
        start_s: f64,
        duration_s: f64,
        ops: &[OpInterval<'_>],
    ) -> io::Result<()> {
        self.line.clear();
        for op in ops {
            let line = Line {
                schema_version: INTERVALS_SCHEMA_VERSION,
                start_s,
                duration_s,
                op: op.op,
                offered: op.offered,
                achieved: op.achieved,
                outcomes: Counts(op.outcomes),
                corrected: Brief::of(op.corrected),
                service: Brief::of(op.service),
                send_lag: Brief::of(op.send_lag),
            };
            serde_json::to_writer(&mut self.line, &line).map_err(io::Error::other)?;
            self.line.push(b'\n');
        }
        self.out.write_all(&self.line)?;
        self.out.flush()
    }
}
