//! SIGINT / SIGTERM for the commands that drive a target. It owns the signal thread and the
//! stop flag handed to the driver; it must not decide an exit status beyond reporting which
//! signal came.

use crate::driver::DriverConfig;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

pub(super) const SIGINT: u8 = 2;
pub(super) const SIGTERM: u8 = 15;

/// SIGINT / SIGTERM: the first stops the run (`DriverConfig::stop`: it stops sending, drains
/// briefly and writes its report); a second ends the process at once.
pub(super) struct StopSignals {
    stop: Arc<AtomicBool>,
    /// The first signal's number; 0 while none came.
    signal: Arc<AtomicU8>,
}

impl StopSignals {
    /// Installs the handlers on a thread of their own (before any run starts).
    pub(super) fn catch() -> Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the signal handler")?;
        let (mut interrupt, mut terminate) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt()).context("catching SIGINT")?,
                signal(SignalKind::terminate()).context("catching SIGTERM")?,
            )
        };
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicU8::new(0));
        let (stop2, which2) = (stop.clone(), which.clone());
        std::thread::Builder::new()
            .name("loadgen-signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let signal = tokio::select! {
                            Some(()) = interrupt.recv() => SIGINT,
                            Some(()) = terminate.recv() => SIGTERM,
                            else => return,
                        };
                        if stop2.swap(true, Ordering::AcqRel) {
                            eprintln!("second signal: exiting without a report");
                            std::process::exit(128 + i32::from(signal));
                        }
                        which2.store(signal, Ordering::Release);
                        eprintln!(
                            "stopping: draining and writing the report of what ran (signal again to quit at once)"
                        );
                    }
                })
            })
            .context("spawning the signal thread")?;
        Ok(StopSignals {
            stop,
            signal: which,
        })
    }

    /// `driver` stopped by these signals.
    pub(super) fn driver(&self, driver: DriverConfig) -> DriverConfig {
        DriverConfig {
            stop: Some(self.stop.clone()),
            ..driver
        }
    }

    pub(super) fn signal(&self) -> Option<u8> {
        match self.signal.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }
}
