//! The CLI table test: every flag of every subcommand that takes a duration, a rate or a speed
//! (found in clap's command tree by its value name, DURATION / RATE / SPEED, which only the
//! `flashsale_core::units` parsers are given) accepts the units people type and refuses a bad
//! value with exit status 2 and a message that names the value. Also: `--help` lists the exit
//! codes, and the older `-ms` spellings still take plain milliseconds.

use clap::{Command, CommandFactory, Parser};
use flashsale_loadgen::cli::Cli;
use std::process::Command as Process;

const BIN: &str = env!("CARGO_BIN_EXE_flashsale-loadgen");

/// The value names that mark a unit-taking flag, with a good value and a bad one for each.
const MARKERS: [(&str, &[&str], &[&str]); 3] = [
    (
        "DURATION",
        &["1m30s", "250ms", "2s", "0.5s"],
        &["-5s", "abc", "5parsecs"],
    ),
    ("RATE", &["10k", "1.5M", "50000"], &["-5k", "fast", "0"]),
    ("SPEED", &["2x", "0.5x", "1"], &["-2x", "quick"]),
];

/// One unit-taking flag: the subcommand path, the flag's long name and its marker.
struct UnitFlag {
    path: Vec<String>,
    long: String,
    marker: &'static str,
}

fn marker_of(arg: &clap::Arg) -> Option<&'static str> {
    let names = arg.get_value_names()?;
    MARKERS
        .iter()
        .map(|(m, _, _)| *m)
        .find(|m| names.iter().any(|n| n.as_str() == *m))
}

fn collect(cmd: &Command, path: &mut Vec<String>, out: &mut Vec<UnitFlag>) {
    for arg in cmd.get_arguments() {
        if let (Some(marker), Some(long)) = (marker_of(arg), arg.get_long()) {
            out.push(UnitFlag {
                path: path.clone(),
                long: long.to_string(),
                marker,
            });
        }
    }
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_string());
        collect(sub, path, out);
        path.pop();
    }
}

fn unit_flags() -> Vec<UnitFlag> {
    let mut out = Vec::new();
    collect(&Cli::command(), &mut Vec::new(), &mut out);
    out
}

fn find_sub<'a>(cmd: &'a Command, path: &[String]) -> &'a Command {
    path.iter().fold(cmd, |c, name| {
        c.find_subcommand(name).expect("subcommand in the tree")
    })
}

/// The subcommand's path and a value for each of its required arguments except `skip`.
fn argv_with_required(path: &[String], skip: &str) -> Vec<String> {
    let root = Cli::command();
    let sub = find_sub(&root, path);
    let mut argv = vec!["flashsale-loadgen".to_string()];
    argv.extend(path.iter().cloned());
    for arg in sub.get_arguments().filter(|a| a.is_required_set()) {
        let value = match marker_of(arg) {
            Some("RATE") => "1k",
            Some("DURATION") => "1s",
            Some("SPEED") => "1x",
            _ => "x",
        };
        match arg.get_long() {
            Some(long) if long == skip => {}
            Some(long) => argv.extend([format!("--{long}"), value.to_string()]),
            None => argv.push(value.to_string()),
        }
    }
    argv
}

#[test]
fn the_table_covers_every_unit_flag_the_cli_has() {
    let flags = unit_flags();
    let names: Vec<String> = flags
        .iter()
        .map(|f| format!("{} --{}", f.path.join(" "), f.long))
        .collect();
    // The flags the issue names must be among them (a guard against a marker gone missing).
    for expected in [
        "run --duration",
        "run --rate",
        "run --drain-timeout",
        "run --request-timeout",
        "run --tick",
        "run --late-threshold",
        "record --duration",
        "record --rate",
        "calibrate --duration",
        "replay --speed",
        "replay --max-rate",
        "replay --drain-timeout",
        "sweep --from",
        "sweep --to",
        "sweep --step-duration",
        "sweep --warmup",
        "sweep --drain-timeout",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
}

#[test]
fn every_unit_flag_accepts_good_values() {
    for flag in unit_flags() {
        let (_, good, _) = MARKERS.iter().find(|(m, _, _)| *m == flag.marker).unwrap();
        for value in *good {
            if flag.marker == "DURATION" && *value == "0.5s" && flag.long == "tick" {
                continue;
            }
            let mut argv = argv_with_required(&flag.path, &flag.long);
            argv.extend([format!("--{}", flag.long), value.to_string()]);
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{argv:?} refused: {e}");
            }
        }
    }
}

#[test]
fn every_unit_flag_refuses_a_bad_value_with_status_2_naming_it() {
    for flag in unit_flags() {
        let (_, _, bad) = MARKERS.iter().find(|(m, _, _)| *m == flag.marker).unwrap();
        for value in *bad {
            let out = Process::new(BIN)
                .args(&flag.path)
                .arg(format!("--{}", flag.long))
                .arg(value)
                .output()
                .expect("running the binary");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{:?} --{} {value}: {stderr}",
                flag.path,
                flag.long
            );
            assert!(
                stderr.contains(&format!("`{value}`")),
                "{:?} --{} {value}: the message does not name the value: {stderr}",
                flag.path,
                flag.long
            );
            assert_eq!(
                stderr.matches("error:").count(),
                1,
                "one error line: {stderr}"
            );
        }
    }
}

#[test]
fn older_ms_spellings_take_plain_milliseconds() {
    for (path, flag) in [
        (&["run"][..], "--drain-timeout-ms"),
        (&["run"][..], "--request-timeout-ms"),
        (&["run"][..], "--tick-us"),
        (&["run"][..], "--late-threshold-us"),
        (&["replay", "t.fst"][..], "--drain-timeout-ms"),
        (
            &[
                "sweep",
                "--from",
                "1k",
                "--to",
                "2k",
                "--slo",
                "reserve.p99<1ms",
            ][..],
            "--drain-timeout-ms",
        ),
    ] {
        let mut argv = vec!["flashsale-loadgen"];
        argv.extend(path);
        argv.extend([flag, "1500"]);
        if let Err(e) = Cli::try_parse_from(&argv) {
            panic!("{argv:?} refused: {e}");
        }
    }
}

#[test]
fn the_binary_runs_with_a_unit_value_and_stops_at_a_bad_target() {
    // A good value gets past the parser: the run fails at the target (status 1), not 2.
    let out = Process::new(BIN)
        .args([
            "run",
            "--target",
            "bogus",
            "--duration",
            "1m30s",
            "--rate",
            "10k",
        ])
        .args([
            "--drain-timeout",
            "2s",
            "--request-timeout",
            "5s",
            "--quiet",
        ])
        .output()
        .expect("running the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
}

#[test]
fn help_lists_the_exit_codes() {
    for path in [&[][..], &["run"][..], &["replay"][..], &["sweep"][..]] {
        let out = Process::new(BIN)
            .args(path)
            .arg("--help")
            .output()
            .expect("running the binary");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{path:?} --help");
        assert!(help.contains("Exit status:"), "{path:?}: {help}");
        for code in [
            "  0 ", "  1 ", "  2 ", "  3 ", "  4 ", "  5 ", "  6 ", "  130 ",
        ] {
            assert!(
                help.contains(code),
                "{path:?} --help lacks exit code {code}: {help}"
            );
        }
    }
}

#[test]
fn every_flag_has_help_text() {
    fn check(cmd: &Command, path: &mut Vec<String>, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() {
                missing.push(format!("{} {id}", path.join(" ")));
            }
        }
        for sub in cmd.get_subcommands() {
            path.push(sub.get_name().to_string());
            check(sub, path, missing);
            path.pop();
        }
    }
    let mut missing = Vec::new();
    check(&Cli::command(), &mut Vec::new(), &mut missing);
    assert!(missing.is_empty(), "flags without help: {missing:?}");
}

#[test]
fn profile_lists_the_profiles() {
    let out = Process::new(BIN)
        .arg("profile")
        .output()
        .expect("running the binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for name in ["double11", "steady", "spike"] {
        assert!(text.contains(name), "{text}");
    }
}
