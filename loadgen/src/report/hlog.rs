//! The HdrHistogram interval log (`latency.hlog`): V2 + DEFLATE compressed, base64, one tag per
//! op. The Rust crate's writer omits the format-version line and the CSV legend that the Java
//! HistogramLogReader / HistogramLogAnalyzer and HdrHistogram_py expect; this module writes those
//! itself and lets the crate encode the interval lines. Every line is flushed as it is written,
//! so the file can be tailed during the run. Each interval written is also handed to the run's
//! [`Windows`] (per-phase thresholds, abort-on-fail), with or without a file. It owns the file
//! format only.

use crate::windows::Windows;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Writes `latency.hlog` line by line as intervals close.
pub struct HlogWriter {
    out: Option<BufWriter<File>>,
    serializer: V2DeflateSerializer,
    line: Vec<u8>,
    windows: Option<Arc<Mutex<Windows>>>,
}

/// Java's `HistogramLogWriter` header: version, start time, base time, legend.
pub fn header(start: SystemTime) -> String {
    let secs = start
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    format!(
        "#[Histogram log format version 1.3]\n\
         #[Latencies in nanoseconds; tags: <op> = corrected for coordinated omission, <op>_service = service time]\n\
         #[StartTime: {secs:.3} (seconds since epoch)]\n\
         #[BaseTime: {secs:.3} (seconds since epoch)]\n\
         #[MaxValueDivisor: 1000000.000]\n\
         \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
    )
}

impl HlogWriter {
    pub fn create(path: &Path, start: SystemTime) -> io::Result<HlogWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(header(start).as_bytes())?;
        out.flush()?;
        Ok(HlogWriter {
            out: Some(out),
            ..HlogWriter::without_file()
        })
    }

    /// A writer with no file: it only feeds its windows.
    pub fn without_file() -> HlogWriter {
        HlogWriter {
            out: None,
            serializer: V2DeflateSerializer::new(),
            line: Vec::with_capacity(4096),
            windows: None,
        }
    }

    /// Also hands every interval to `windows`.
    pub fn feeding(mut self, windows: Arc<Mutex<Windows>>) -> HlogWriter {
        self.windows = Some(windows);
        self
    }

    /// Appends one interval histogram; `start_s` is relative to the BaseTime.
    pub fn write_interval(
        &mut self,
        tag: &str,
        histogram: &Histogram<u64>,
        start_s: f64,
        duration_s: f64,
    ) -> io::Result<()> {
        if let Some(windows) = &self.windows
            && let Ok(mut w) = windows.lock()
        {
            w.add(tag, histogram, start_s, duration_s);
        }
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let tag = Tag::new(tag)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad hlog tag"))?;
        self.line.clear();
        {
            let mut writer = IntervalLogWriterBuilder::new()
                .with_max_value_divisor(1_000_000.0)
                .begin_log_with(&mut self.line, &mut self.serializer)?;
            writer
                .write_histogram(
                    histogram,
                    Duration::from_secs_f64(start_s),
                    Duration::from_secs_f64(duration_s),
                    Some(tag),
                )
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
        }
        // The builder's own header line (the divisor) is already in our header: keep the
        // interval line only.
        let text = &self.line[..];
        let body = match text.iter().position(|&b| b == b'\n') {
            Some(i) if text.starts_with(b"#") => &text[i + 1..],
            _ => text,
        };
        out.write_all(body)?;
        out.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
