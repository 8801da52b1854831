//! One function per subcommand: each builds its run from the parsed flags, runs it, prints its
//! lines and returns the exit status. It owns what the binary prints; it must not parse flags.

use super::args::*;
use super::signals::{SIGINT, StopSignals};
use super::{Exit, default_dir_named, default_out_dir, unix_time_s};
use crate::driver::DriverConfig;
use crate::replay::ReplayOptions;
use crate::report::RunStatus;
use crate::run::{self, RunIds, RunOptions, RunSettings};
use crate::targets::{self, TargetOptions};
use crate::verify::Verification;
use anyhow::{Context, Result, bail};
use std::process::ExitCode;

pub(super) fn run(args: RunArgs, stop: &StopSignals) -> Result<ExitCode> {
    let scenario = args.scenario.load()?;
    let slos = args.gates.slos()?;
    // Every hold is a fresh arrival, so ∫λ over the run bounds the orders an embedded engine
    // must hold.
    let expected_orders = scenario.expected_arrivals_until(scenario.duration_s());
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    let metrics = args.target.metrics()?;
    let target = args.target.open(
        Some(expected_orders),
        Some((&out_dir, &scenario.name, args.seed)),
    )?;
    eprintln!(
        "running {} for {:.1}s at peak {:.0} req/s against {} (seed {}), report in {}",
        scenario.name,
        scenario.duration_s(),
        scenario.peak_offered_rate_per_s(),
        target.describe(),
        args.seed,
        out_dir.display()
    );
    let report = run::execute(RunOptions {
        scenario,
        seed: args.seed,
        settings: RunSettings {
            target: target.clone(),
            out_dir: Some(out_dir),
            slos,
            driver: stop.driver(args.target.driver(args.drain.ms())),
            progress: !args.quiet,
            run_ids: args.ids.run_ids(),
            metrics,
        },
    });
    target.shutdown();
    let report = report?;
    let exit = print_report(&report, args.gates.require_valid, stop)?;
    Ok(exit.code())
}

pub(super) fn calibrate(args: CalibrateArgs, stop: &StopSignals) -> Result<ExitCode> {
    let mut scenario = args.scenario.load()?;
    if args.scenario.duration.is_none() {
        scenario.set_duration_s(10.0)?;
    }
    let target = targets::from_spec("noop", &TargetOptions::default())?;
    eprintln!(
        "calibrating: {} for {:.1}s at peak {:.0} req/s against noop, a target that answers at once",
        scenario.name,
        scenario.duration_s(),
        scenario.peak_offered_rate_per_s()
    );
    let report = run::execute(RunOptions {
        scenario,
        seed: args.seed,
        settings: RunSettings {
            target,
            out_dir: args.out.clone(),
            slos: Vec::new(),
            driver: stop.driver(args.pacer.driver(DriverConfig::default().drain_timeout_ms)),
            progress: !args.quiet,
            run_ids: RunIds::Auto,
            metrics: None,
        },
    })?;
    let s = &report.summary;
    println!(
        "this machine's floor ({} requests sent in {:.1} s):",
        s.send.sent, s.elapsed_s
    );
    println!("{}", s.validity.health_line());
    println!("{}", s.validity_line());
    println!("corrected latency against a target that answers at once (what the generator adds):");
    for (op, o) in s.ops.iter().filter(|(_, o)| o.count > 0) {
        let c = &o.corrected;
        println!(
            "  {op:<8} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            c.p50_us / 1000.0,
            c.p99_us / 1000.0,
            c.p999_us / 1000.0,
            c.max_us / 1000.0
        );
    }
    if let Some(dir) = &report.out_dir {
        println!("report: {}", dir.join("report.html").display());
    }
    let exit = if let Some(signal) = stop.signal() {
        Exit::Interrupted(signal)
    } else if args.require_valid.is_some_and(|p| !s.validity.covers(p)) {
        Exit::NotValid
    } else {
        Exit::Success
    };
    Ok(exit.code())
}

/// Prints a run's table, verdicts and SLO lines; the exit status they imply (`EXIT_STATUS`'s
/// order: 1, 4, 130/143, 5, 3). An invariant check the target did not answer is an error.
pub(super) fn print_report(
    report: &run::RunReport,
    require_valid: Option<f64>,
    stop: &StopSignals,
) -> Result<Exit> {
    let s = &report.summary;
    print!("{}", s.table());
    for line in s.verdict.lines() {
        println!("{line}");
    }
    for slo in &s.slo {
        println!("{}", slo.line());
    }
    if let Some(dir) = &report.out_dir {
        println!("report: {}", dir.join("report.html").display());
    }
    match s.verdict.status {
        Verification::Incomplete => {
            bail!("the invariants could not be verified: {}", s.verdict.note)
        }
        Verification::Violated => return Ok(Exit::InvariantsViolated),
        Verification::Passed | Verification::NotChecked => {}
    }
    if s.status == RunStatus::Interrupted {
        return Ok(Exit::Interrupted(stop.signal().unwrap_or(SIGINT)));
    }
    if require_valid.is_some_and(|p| !s.validity.covers(p)) {
        return Ok(Exit::NotValid);
    }
    // A run stopped by --abort-on-fail breached, whatever its shorter window now says.
    if report.slo_breached() || s.status == RunStatus::Aborted {
        return Ok(Exit::SloBreached);
    }
    Ok(Exit::Success)
}

pub(super) fn record(args: RecordArgs) -> Result<ExitCode> {
    use crate::trace::{self, ScenarioSource};
    let scenario = args.scenario.load()?;
    let source = match &args.scenario.scenario {
        Some(path) => ScenarioSource::File(path),
        None => ScenarioSource::Profile(&args.scenario.profile),
    };
    let trailer = trace::record(
        &scenario,
        source,
        args.scenario.duration.map(|d| d.as_secs_f64()),
        args.scenario.rate,
        args.seed,
        &args.out,
    )?;
    let bytes = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    println!(
        "recorded {} for {:.1}s (seed {}): {} records ({} order requests + catalog), {:.1} MB, order hash {:016x} -> {}",
        scenario.name,
        scenario.duration_s(),
        args.seed,
        trailer.records,
        trailer.records - scenario.catalog.skus as u64,
        bytes as f64 / 1e6,
        trailer.order_hash,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn replay(args: ReplayArgs, stop: &StopSignals) -> Result<ExitCode> {
    use crate::replay;
    let slos = args.gates.slos()?;
    let options = ReplayOptions {
        speed: args.speed,
        max_rate_per_s: args.max_rate,
        loops: args.loops,
        first_loop: 0,
        run_id: 0,
    };
    let out_dir = args.out.unwrap_or_else(default_out_dir);
    let name = format!("replay of {}", args.trace.display());
    let metrics = args.target.metrics()?;
    let target = args.target.open(None, Some((&out_dir, &name, 0)))?;
    eprintln!(
        "replaying {} at {}x against {}, report in {}",
        args.trace.display(),
        args.speed,
        target.describe(),
        out_dir.display()
    );
    let result = replay::replay(
        &args.trace,
        &options,
        RunSettings {
            target: target.clone(),
            out_dir: Some(out_dir),
            slos,
            driver: stop.driver(args.target.driver(args.drain.ms())),
            progress: !args.quiet,
            run_ids: args.ids.run_ids(),
            metrics,
        },
    );
    target.shutdown();
    let result = result?;
    let r = &result.replay;
    println!(
        "replay: {} order requests of {} at {:.3}x x{} loop(s): intended {:.2}s, wall {:.2}s; send lag p50 {:.0} us, p99 {:.0} us, max {:.0} us; {} sent > {} us late",
        r.trace_order_requests,
        r.trace.display(),
        r.speed,
        r.loops,
        r.intended_duration_s,
        r.elapsed_s,
        r.send_lag_p50_us,
        r.send_lag_p99_us,
        r.max_send_lag_us,
        r.sent_late,
        r.late_threshold_us
    );
    match r.same_requests {
        Some(true) => println!(
            "replay: same requests in the same order as the trace (order hash {})",
            r.trace_order_hash
        ),
        Some(false) => println!(
            "replay: SENT REQUESTS DIFFER from the trace (trace {}, sent {})",
            r.trace_order_hash,
            r.sent_order_hash.as_deref().unwrap_or("-")
        ),
        None => println!("replay: ids shifted (loops or a run id); hash not comparable"),
    }
    if r.skipped_records > 0 {
        println!(
            "replay: {} query / restock records skipped (not order traffic)",
            r.skipped_records
        );
    }
    let exit = print_report(&result.run, args.gates.require_valid, stop)?;
    let exit = match exit {
        Exit::InvariantsViolated | Exit::Interrupted(_) => exit,
        _ if r.same_requests == Some(false) => Exit::ReplayDiffers,
        _ => exit,
    };
    Ok(exit.code())
}

pub(super) fn sweep(args: SweepArgs, stop: &StopSignals) -> Result<ExitCode> {
    use crate::sweep::{self, SweepOptions, SweepWorkload};
    let slos = parse_slos(&args.slos)?;
    let workload = match (&args.trace, &args.scenario) {
        (Some(trace), _) => SweepWorkload::Trace(trace.clone()),
        (None, file) => SweepWorkload::Scenario(Box::new(load_scenario(
            &args.profile,
            file.as_ref(),
            None,
            None,
        )?)),
    };
    args.target.options(None)?;
    let seed = args.seed.unwrap_or_else(|| unix_time_s().max(1));
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_dir_named("sweep-"));
    let options = SweepOptions {
        workload,
        seed,
        from_rate_per_s: args.from,
        to_rate_per_s: args.to,
        step_factor: args.step_factor,
        step_duration_s: args.step_duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        precision: args.precision,
        max_refinements: args.max_refinements,
        slos,
        far_factor: args.far_factor,
        max_error_ratio: args.max_error_ratio,
        driver: stop.driver(args.target.driver(args.drain_timeout_ms())),
        out_dir: out_dir.clone(),
        step_reports: args.step_reports,
        verbose: true,
        metrics: args.target.metrics()?,
    };
    eprintln!(
        "sweeping {} .. {} /s against {} (steps of {:.1}s, seed {seed}), output in {}",
        args.from,
        args.to,
        args.target.target,
        args.step_duration.as_secs_f64(),
        out_dir.display()
    );
    let open = || {
        let options = args
            .target
            .options(None)
            .map_err(|e| targets::TargetError::Unsupported(e.to_string()))?;
        targets::from_spec(&args.target.target, &options)
    };
    let result = sweep::sweep(&options, &open)?;
    print!("{}", result.text());
    let (json, svg) = sweep::outputs(&out_dir);
    println!("sweep: {} and {}", json.display(), svg.display());
    let exit = if let Some(signal) = stop.signal() {
        Exit::Interrupted(signal)
    } else if result.max_rate_per_s.is_some() {
        Exit::Success
    } else {
        Exit::SloBreached
    };
    Ok(exit.code())
}

pub(super) fn import(args: ImportArgs) -> Result<ExitCode> {
    use crate::import::{self, Format};
    let (input, format) = match (&args.csv, &args.jsonl) {
        (Some(csv), _) => (csv, Format::Csv),
        (None, Some(jsonl)) => (jsonl, Format::Jsonl),
        (None, None) => bail!("give --csv FILE or --jsonl FILE"),
    };
    let catalog = match &args.catalog {
        Some(path) => flashsale_engine::catalog::load_catalog(path)
            .with_context(|| format!("loading catalog {}", path.display()))?,
        None => Vec::new(),
    };
    let report = import::import(input, format, &args.out, &catalog, args.skip_bad)?;
    if !report.bad.is_empty() {
        eprintln!(
            "skipped {} bad row(s) of {}:\n{}",
            report.bad.len(),
            input.display(),
            report.bad_rows_text()
        );
    }
    println!(
        "imported {} of {} rows ({} catalog SKUs) from {} -> {} (order hash {:016x})",
        report.written,
        report.rows,
        catalog.len(),
        input.display(),
        args.out.display(),
        report.trailer.order_hash
    );
    Ok(ExitCode::SUCCESS)
}
