//! Trace files from the load generator's side: the provenance document stored in a trace's
//! header (which scenario, seed, duration and rate produced it, so a replay can regenerate the
//! funnel), `record` (a scenario's exact open-loop schedule written to a trace), and `info` (a
//! full checked scan: duration, counts per op, peak rate per second, catalog). The byte format
//! itself lives in `flashsale_engine::trace` and is not re-implemented here; this module must not
//! pace, send or time anything.

use crate::driver::schedule::{self, Batch, Schedule, ScheduleError};
use crate::scenario::{PROFILES, Scenario, ScenarioError};
use flashsale_engine::trace::{
    FLAG_OPEN_LOOP, FLAG_SERVER_CAPTURE, TraceError, TraceHeader, TraceReader, TraceTrailer,
    TraceWriter,
};
use flashsale_engine::{Command, SkuConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a trace could not be recorded, read or understood.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error("{path}: {source}")]
    Trace {
        path: PathBuf,
        #[source]
        source: TraceError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the header's provenance is not valid: {detail}")]
    Provenance { path: PathBuf, detail: String },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// What produced a trace, stored as TOML in the header's provenance text.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// `record`, `capture` or `import`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rate_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// The scenario's TOML text before `duration_s` / `peak_rate_per_s` scale it (last, so the
    /// short fields above print first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_toml: Option<String>,
}

impl Provenance {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<Provenance, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The scenario a recorded trace was generated from (None for captures and imports).
    pub fn scenario(&self) -> Result<Option<Scenario>, ScenarioError> {
        let Some(text) = &self.scenario_toml else {
            return Ok(None);
        };
        let mut scenario = Scenario::from_toml(text)?;
        if let Some(d) = self.duration_s {
            scenario.set_duration_s(d)?;
        }
        if let Some(r) = self.peak_rate_per_s {
            scenario.set_peak_rate(r)?;
        }
        Ok(Some(scenario))
    }
}

/// Where a scenario came from, for the provenance.
pub enum ScenarioSource<'a> {
    Profile(&'a str),
    File(&'a Path),
}

fn trace_err(path: &Path) -> impl FnOnce(TraceError) -> TraceFileError + '_ {
    move |source| TraceFileError::Trace {
        path: path.to_path_buf(),
        source,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TraceFileError + '_ {
    move |source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes the catalog (as `UpsertSku` records at time 0) and the scenario's whole open-loop
/// schedule (fresh reserves and client duplicates at their intended times) to `out`.
/// `duration_s` / `peak_rate_per_s` are the scalings applied to the source's TOML.
pub fn record(
    scenario: &Scenario,
    source: ScenarioSource<'_>,
    duration_s: Option<f64>,
    peak_rate_per_s: Option<f64>,
    seed: u64,
    out: &Path,
) -> Result<TraceTrailer, TraceFileError> {
    let (profile, scenario_file, scenario_toml) = match source {
        ScenarioSource::Profile(name) => {
            let text = PROFILES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| ScenarioError::UnknownProfile(name.to_string()))?;
            (Some(name.to_string()), None, text)
        }
        ScenarioSource::File(path) => (
            None,
            Some(path.display().to_string()),
            std::fs::read_to_string(path).map_err(io_err(path))?,
        ),
    };
    let provenance = Provenance {
        source: "record".into(),
        profile,
        scenario_file,
        scenario_toml: Some(scenario_toml),
        duration_s,
        peak_rate_per_s,
        writer: Some(format!("flashsale-loadgen {}", env!("CARGO_PKG_VERSION"))),
        ..Provenance::default()
    };
    // The provenance must rebuild this scenario, or a replay's funnel would differ.
    if let Some(rebuilt) = provenance.scenario()?
        && (rebuilt.time_scale - scenario.time_scale).abs() > 1e-9 * scenario.time_scale
    {
        return Err(TraceFileError::Provenance {
            path: out.to_path_buf(),
            detail: "the scenario does not rebuild from its provenance".into(),
        });
    }
    let header = TraceHeader::new(FLAG_OPEN_LOOP, now_epoch_ns(), seed, provenance.to_toml());
    let file = File::create(out).map_err(io_err(out))?;
    let mut writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &header)
        .map_err(trace_err(out))?;
    for sku in schedule::catalog(scenario, seed) {
        writer
            .push(0, &Command::UpsertSku(sku))
            .map_err(trace_err(out))?;
    }
    let mut schedule = Schedule::new(scenario, seed)?;
    let mut batch = Batch::with_capacity(64 * 1024);
    while !schedule.is_done() {
        batch.clear();
        schedule.fill_until_at_most(u64::MAX, &mut batch, 64 * 1024);
        for meta in &batch {
            writer
                .push(meta.intended_ns, &meta.req.command())
                .map_err(trace_err(out))?;
        }
    }
    let (_, trailer) = writer.finish(0).map_err(trace_err(out))?;
    Ok(trailer)
}

/// Opens a trace for streaming.
pub fn open(path: &Path) -> Result<TraceReader<BufReader<File>>, TraceFileError> {
    let file = File::open(path).map_err(io_err(path))?;
    TraceReader::new(BufReader::with_capacity(1 << 20, file)).map_err(trace_err(path))
}

/// Everything a full scan of a trace tells.
#[derive(Clone, Debug, Serialize)]
pub struct TraceInfo {
    pub path: PathBuf,
    pub version: u16,
    pub flags: u16,
    /// `open-loop arrivals` or `server capture` or `requests as sent`.
    pub kind: &'static str,
    pub start_epoch_ns: u64,
    pub seed: u64,
    pub provenance: String,
    pub records: u64,
    pub dropped: u64,
    /// Records per command kind (`reserve`, `pay`, `cancel`, `upsert_sku`, …).
    pub counts: BTreeMap<&'static str, u64>,
    /// Order requests (reserve / pay / cancel).
    pub order_requests: u64,
    /// Timestamp of the first and last order request, ns.
    pub first_order_ns: u64,
    pub last_order_ns: u64,
    pub duration_s: f64,
    /// Most order requests in any one second (seconds counted from the first order request).
    pub peak_rate_per_s: u64,
    pub mean_rate_per_s: f64,
    pub min_order_id: u64,
    pub max_order_id: u64,
    /// The trailer's order hash (hex), checked against the records during the scan.
    pub order_hash: String,
    /// `UpsertSku` records, last one per SKU, in first-seen order.
    #[serde(skip)]
    pub catalog: Vec<SkuConfig>,
}

pub fn kind_name(command: &Command) -> &'static str {
    command.kind().name()
}

/// A reserve, pay or cancel: the trace format's order requests, from the command table.
pub fn is_order_request(command: &Command) -> bool {
    flashsale_engine::trace::is_order_command(command.kind())
}

/// Reads the whole trace, checking every block and the trailer.
pub fn info(path: &Path) -> Result<TraceInfo, TraceFileError> {
    let mut reader = open(path)?;
    let header = reader.header().clone();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut catalog: Vec<SkuConfig> = Vec::new();
    let mut catalog_index: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut first, mut last, mut orders) = (None::<u64>, 0u64, 0u64);
    let mut per_second: Vec<u64> = Vec::new();
    while let Some(record) = reader.next_record().map_err(trace_err(path))? {
        *counts.entry(kind_name(&record.command)).or_default() += 1;
        if let Command::UpsertSku(config) = record.command {
            match catalog_index.get(&config.sku_id) {
                Some(&i) => catalog[i] = config,
                None => {
                    catalog_index.insert(config.sku_id, catalog.len());
                    catalog.push(config);
                }
            }
        }
        if is_order_request(&record.command) {
            let t0 = *first.get_or_insert(record.at_ns);
            last = record.at_ns;
            orders += 1;
            let second = ((record.at_ns - t0) / 1_000_000_000) as usize;
            if second >= per_second.len() {
                if second > 100_000_000 {
                    return Err(TraceFileError::Trace {
                        path: path.to_path_buf(),
                        source: TraceError::Corrupt {
                            offset: reader.offset(),
                            what: "trace spans more than 100 million seconds".into(),
                        },
                    });
                }
                per_second.resize(second + 1, 0);
            }
            per_second[second] += 1;
        }
    }
    let trailer = *reader
        .trailer()
        .expect("next_record returns None only after the trailer");
    let first = first.unwrap_or(0);
    let duration_s = (last - first) as f64 / 1e9;
    Ok(TraceInfo {
        path: path.to_path_buf(),
        version: header.version,
        flags: header.flags,
        kind: if header.flags & FLAG_OPEN_LOOP != 0 {
            "open-loop arrivals (replay regenerates pays / cancels / bot retries)"
        } else if header.flags & FLAG_SERVER_CAPTURE != 0 {
            "server capture (every request as it arrived)"
        } else {
            "requests as sent"
        },
        start_epoch_ns: header.start_epoch_ns,
        seed: header.seed,
        provenance: header.provenance,
        records: trailer.records,
        dropped: trailer.dropped,
        counts,
        order_requests: orders,
        first_order_ns: first,
        last_order_ns: last,
        duration_s,
        peak_rate_per_s: per_second.iter().copied().max().unwrap_or(0),
        mean_rate_per_s: if duration_s > 0.0 {
            orders as f64 / duration_s
        } else {
            orders as f64
        },
        min_order_id: trailer.min_order_id,
        max_order_id: trailer.max_order_id,
        order_hash: format!("{:016x}", trailer.order_hash),
        catalog,
    })
}

impl TraceInfo {
    /// A few lines for the terminal.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "trace       {}", self.path.display());
        let _ = writeln!(
            out,
            "format      version {}, flags {:#06x}: {}",
            self.version, self.flags, self.kind
        );
        let _ = writeln!(
            out,
            "started     {} ns after the Unix epoch; seed {}",
            self.start_epoch_ns, self.seed
        );
        let _ = writeln!(
            out,
            "records     {} ({} dropped by the writer)",
            self.records, self.dropped
        );
        let _ = writeln!(
            out,
            "duration    {:.3} s (first to last order request)",
            self.duration_s
        );
        let _ = writeln!(
            out,
            "rate        peak {} req/s (busiest second), mean {:.0} req/s",
            self.peak_rate_per_s, self.mean_rate_per_s
        );
        for (kind, n) in &self.counts {
            let _ = writeln!(out, "  {kind:<12} {n}");
        }
        let _ = writeln!(out, "order hash  {}", self.order_hash);
        if !self.provenance.is_empty() {
            let _ = writeln!(out, "provenance:");
            for line in self.provenance.lines().take(8) {
                if line.starts_with("scenario_toml") {
                    let _ = writeln!(out, "  scenario_toml = (the scenario's TOML, omitted)");
                    break;
                }
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}
