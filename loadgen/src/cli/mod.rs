//! The `flashsale-loadgen` command line: parses it, builds the scenario and target, runs,
//! prints the summary table, the validity and invariant verdicts and the SLO results, and
//! exits with the status they imply (the table in [`EXIT_STATUS`]). SIGINT / SIGTERM stop a run,
//! which then drains and writes its report; a second signal ends the process at once. Also:
//! `calibrate` (this machine's floor) and the capacity planning commands `record`, `replay`,
//! `sweep`, `trace import`, `trace info`. It owns the flags, their parsing and the exit status
//! only; it must not measure, pace or format a report: that is the rest of the library.

mod args;
mod commands;
mod signals;

use args::*;
use commands::*;
use signals::StopSignals;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit status table, shown by `--help` and in the README.
pub const EXIT_STATUS: &str = "\
Exit status:
  0    success: every gate passed
  1    error: bad input, an unreachable target, a used target refused (--fresh, --run-id),
       a verification the target did not answer (invariants incomplete)
  2    usage error: an unknown flag or a malformed value (from the argument parser)
  3    an SLO breached (--slo; sweep: not even --from met it)
  4    an invariant violated (oversell, a user over the limit, paid units != sold)
  5    the run is not valid (--require-valid): its figures measure the generator
  6    replay: the requests sent differ from the trace's
  130  interrupted by SIGINT (143: by SIGTERM); the report covers what ran
When several apply, the first of 1, 4, 130/143, 6, 5, 3 wins.";

/// The process's exit status; `EXIT_STATUS` documents each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Success,
    SloBreached,
    InvariantsViolated,
    NotValid,
    ReplayDiffers,
    /// By the signal's number (2: SIGINT, 15: SIGTERM): 128 + n.
    Interrupted(u8),
}

impl Exit {
    fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Success => 0,
            Exit::SloBreached => 3,
            Exit::InvariantsViolated => 4,
            Exit::NotValid => 5,
            Exit::ReplayDiffers => 6,
            Exit::Interrupted(signal) => 128 + signal,
        })
    }
}

#[derive(Parser)]
#[command(
    name = "flashsale-loadgen",
    version,
    about = "Open-loop load generator for flashsale",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against a target and write a report directory.
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// Run a scenario against `noop` and print this machine's floor: how late the generator
    /// itself sends, and what that adds to corrected latency (default 10 s of double11).
    #[command(after_help = EXIT_STATUS)]
    Calibrate(CalibrateArgs),
    /// Print a built-in profile's TOML (a starting point for --scenario files); without a
    /// name, list the profiles.
    Profile {
        /// The profile: double11, steady or spike.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(profile_names()))]
        name: Option<String>,
    },
    /// Write a scenario's exact request schedule (intended time + request) to a trace file.
    Record(RecordArgs),
    /// Replay a trace open-loop at its recorded times / --speed, with run's reports and SLOs.
    #[command(after_help = EXIT_STATUS)]
    Replay(ReplayArgs),
    /// Find the highest offered rate that meets an SLO: climbing steps, then bisection.
    #[command(after_help = EXIT_STATUS)]
    Sweep(SweepArgs),
    /// Trace files: import other systems' exports, print a trace's summary.
    Trace {
        #[command(subcommand)]
        command: TraceCmd,
    },
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Convert CSV or JSON Lines (timestamp_ms, op, order_id, user_id, sku_id, qty) to a trace.
    /// Any bad row refuses the import (each listed with its line number) unless --skip-bad.
    Import(ImportArgs),
    /// Check a trace end to end and print its duration, counts per op and peak rate.
    Info {
        /// The trace file.
        trace: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs the command; the binary's `main`. An error is printed once,
/// its causes on the same line (each only if the message before does not already say it), and
/// exits with status 1.
pub fn main() -> ExitCode {
    match dispatch() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, `: `-separated, leaving out a cause its context already quotes.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// The built-in profiles' names.
fn profile_names() -> Vec<&'static str> {
    crate::scenario::PROFILES
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

fn dispatch() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Only the commands that drive a target stop gracefully; the others keep the default.
    let stop = StopSignals::catch;
    match cli.command {
        Cmd::Run(args) => run(args, &stop()?),
        Cmd::Calibrate(args) => calibrate(args, &stop()?),
        Cmd::Record(args) => record(args),
        Cmd::Replay(args) => replay(args, &stop()?),
        Cmd::Sweep(args) => sweep(args, &stop()?),
        Cmd::Trace {
            command: TraceCmd::Import(args),
        } => import(args),
        Cmd::Trace {
            command: TraceCmd::Info { trace, json },
        } => {
            let info = crate::trace::info(&trace)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", info.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Profile { name: None } => {
            println!("built-in profiles (print one with `profile NAME`):");
            for (name, text) in crate::scenario::PROFILES {
                let about = text
                    .lines()
                    .find_map(|l| l.strip_prefix("description = "))
                    .map_or("", |d| d.trim_matches('"'));
                println!("  {name:<10} {about}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Profile { name: Some(name) } => {
            let text = crate::scenario::PROFILES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .with_context(|| format!("unknown profile `{name}` (double11, steady, spike)"))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn unix_time_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `reports/<prefix><unix time>/`.
fn default_dir_named(prefix: &str) -> PathBuf {
    PathBuf::from("reports").join(format!("{prefix}{}", unix_time_s()))
}

fn default_out_dir() -> PathBuf {
    default_dir_named("")
}
