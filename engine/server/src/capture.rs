//! `serve --capture FILE`: records every command the front doors hand to the engine, with its
//! arrival time, into a trace (`flashsale_wire::trace`). Request handling only timestamps the commands
//! and `try_send`s them to a bounded channel; a writer thread batches them into the file. When
//! the writer falls behind (or failed), records are dropped and counted — in `/metrics` and in
//! the trace's trailer — and the engine is never blocked. This module owns the channel, the
//! writer thread and the counters; it must not decide anything about requests.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use flashsale_core::types::Command;
use flashsale_wire::trace::{
    FLAG_SERVER_CAPTURE, TraceError, TraceHeader, TraceTrailer, TraceWriter,
};

/// Batches of (arrival ns since the capture started, commands).
type Batch = (u64, Vec<Command>);

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// A running capture. Cheap to call from any thread; see the module docs.
pub struct Capture {
    path: PathBuf,
    start: Instant,
    sender: Sender<Batch>,
    counters: Arc<Counters>,
    writer: Mutex<Option<JoinHandle<Result<TraceTrailer, TraceError>>>>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture").field("path", &self.path).finish()
    }
}

impl Capture {
    /// Creates `path` (replacing it), writes the header and starts the writer thread.
    /// `capacity_batches` bounds the batches waiting for the writer.
    pub fn create(path: &Path, capacity_batches: usize) -> Result<Arc<Capture>, TraceError> {
        let file = File::create(path)?;
        let epoch_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let header = TraceHeader::new(
            FLAG_SERVER_CAPTURE,
            epoch_ns,
            0,
            "source = \"capture\"\nwriter = \"flashsale-engine serve --capture\"\n".into(),
        );
        let writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &header)?;
        let (sender, receiver) = crossbeam_channel::bounded(capacity_batches.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let handle = std::thread::Builder::new()
            .name("flashsale-capture".into())
            .spawn(move || write_loop(writer, receiver, &thread_counters))?;
        Ok(Arc::new(Capture {
            path: path.to_path_buf(),
            start: Instant::now(),
            sender,
            counters,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// Records commands that just arrived. Never blocks: a full queue drops and counts them.
    pub fn record(&self, commands: &[Command]) {
        if commands.is_empty() {
            return;
        }
        let n = commands.len() as u64;
        if self.counters.closed.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let at_ns = self.start.elapsed().as_nanos() as u64;
        match self.sender.try_send((at_ns, commands.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Records written to the file so far.
    pub fn records(&self) -> u64 {
        self.counters.records.load(Ordering::Relaxed)
    }

    /// Records dropped so far (the writer fell behind or failed).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops recording, writes what is queued and the trailer, and closes the file. Later
    /// calls return an error; records arriving after this are counted as dropped only.
    pub fn finish(&self) -> Result<TraceTrailer, TraceError> {
        self.counters.closed.store(true, Ordering::Release);
        let handle = self
            .writer
            .lock()
            .map_err(|_| TraceError::Io(std::io::Error::other("capture lock poisoned")))?
            .take()
            .ok_or_else(|| TraceError::Io(std::io::Error::other("capture already finished")))?;
        handle
            .join()
            .map_err(|_| TraceError::Io(std::io::Error::other("capture writer panicked")))?
    }
}

fn write_loop(
    mut writer: TraceWriter<BufWriter<File>>,
    receiver: Receiver<Batch>,
    counters: &Counters,
) -> Result<TraceTrailer, TraceError> {
    // Batches from different connections can arrive a little out of order: clamp so the trace
    // stays monotonic (the clamp is at most the channel's queueing time).
    let mut last_ns = 0u64;
    let mut write = |(at_ns, commands): Batch| -> Result<(), TraceError> {
        last_ns = last_ns.max(at_ns);
        for command in &commands {
            writer.push(last_ns, command)?;
        }
        counters
            .records
            .fetch_add(commands.len() as u64, Ordering::Relaxed);
        Ok(())
    };
    let result = loop {
        match receiver.recv_timeout(Duration::from_millis(50)) {
            Ok(batch) => {
                if let Err(e) = write(batch) {
                    break Err(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if counters.closed.load(Ordering::Acquire) {
                    break Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "capture writer failed: further records are dropped");
        counters.closed.store(true, Ordering::Release);
        drop(receiver);
        return Err(e);
    }
    // Closed: write what is still queued, then the trailer.
    while let Ok(batch) = receiver.try_recv() {
        write(batch)?;
    }
    drop(receiver);
    let (_, trailer) = writer.finish(counters.dropped.load(Ordering::Acquire))?;
    Ok(trailer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_wire::trace::TraceReader;

    #[test]
    fn records_then_finishes_with_a_readable_trace() {
        let dir = std::env::temp_dir().join(format!("fs-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.fst");
        let capture = Capture::create(&path, 64).unwrap();
        let commands: Vec<Command> = (0..100u64)
            .map(|i| Command::Pay {
                order_id: i,
                user_id: i,
            })
            .collect();
        for chunk in commands.chunks(10) {
            capture.record(chunk);
        }
        let trailer = capture.finish().unwrap();
        assert_eq!(trailer.records + trailer.dropped, 100);
        capture.record(&commands[..1]);
        assert_eq!(capture.dropped(), trailer.dropped + 1);
        let mut reader = TraceReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.header().flags, FLAG_SERVER_CAPTURE);
        let mut n = 0;
        let mut last = 0;
        while let Some(r) = reader.next_record().unwrap() {
            assert!(r.at_ns >= last);
            last = r.at_ns;
            assert_eq!(r.command, commands[n]);
            n += 1;
        }
        assert_eq!(n as u64, trailer.records);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = std::env::temp_dir().join(format!("fs-capture-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.fst");
        let capture = Capture::create(&path, 1).unwrap();
        let command = [Command::QuerySku { sku_id: 1 }];
        let started = Instant::now();
        for _ in 0..100_000 {
            capture.record(&command);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let trailer = capture.finish().unwrap();
        assert_eq!(trailer.records + trailer.dropped, 100_000);
        assert!(
            trailer.dropped > 0,
            "a queue of one cannot keep up with 100k records"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metrics_show_written_and_dropped_records() {
        use crate::metrics::{EngineSnapshot, Metrics};
        let text = Metrics::new().render(&EngineSnapshot {
            capture: Some((5, 2)),
            ..EngineSnapshot::default()
        });
        assert!(text.contains("flashsale_capture_records_total 5"), "{text}");
        assert!(text.contains("flashsale_capture_dropped_total 2"), "{text}");
        let text = Metrics::new().render(&EngineSnapshot::default());
        assert!(
            !text.contains("flashsale_capture"),
            "no capture, no capture metrics"
        );
    }
}
