//! `flashsale-engine serve`'s flags that take a duration or a rate, run as a user runs them:
//! each with a good value starts the server, each with a bad value exits 2 (clap) with a
//! message naming the flag and the value, never a panic. The old `-ms` spellings still take a
//! plain number of milliseconds.

mod child_server;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flashsale-engine");

/// (flag, a good value, a bad value).
const TABLE: [(&str, &str, &str); 9] = [
    ("--idle-timeout", "1m30s", "30 parsecs"),
    ("--header-timeout", "250ms", "-5s"),
    ("--body-timeout", "10s", "0.1ms"),
    ("--fsync-interval", "20ms", "0"),
    ("--user-rate-limit", "10k", "-5k"),
    ("--idle-timeout-ms", "30000", "30s"),
    ("--header-timeout-ms", "5000", "5s"),
    ("--body-timeout-ms", "10000", "ten"),
    ("--fsync-interval-ms", "10", "2x"),
];

fn serve(extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"])
        .args(extra);
    command
}

#[test]
fn every_duration_and_rate_flag_takes_a_good_value_and_names_a_bad_one() {
    for (flag, good, bad) in TABLE {
        let running =
            child_server::spawn_until_ready(serve(&[flag, good]), Duration::from_secs(20));
        drop(running);
        let output = serve(&[flag, bad]).output().expect("run the binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {bad}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{bad}' for '{flag}")),
            "{flag} {bad}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag} {bad}: {stderr}");
    }
}

#[test]
fn a_new_spelling_and_its_old_alias_together_are_refused() {
    let output = serve(&["--idle-timeout", "1s", "--idle-timeout-ms", "1000"])
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn help_describes_every_flag_and_hides_the_old_spellings() {
    let output = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for flag in [
        "--idle-timeout <DURATION>",
        "--user-rate-limit <RATE>",
        "--metrics-sku-limit <N>",
    ] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
    assert!(!help.contains("-ms"), "{help}");
    // Every flag line is followed by its description (clap prints `--flag <V>  text` or puts
    // the text on the next line in long help).
    let lines: Vec<&str> = help.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        let flag = line.trim_start();
        if flag.starts_with("--") && !flag.starts_with("--help") && !flag.starts_with("--version") {
            let described = lines.get(at + 1).is_some_and(|next| {
                let next = next.trim();
                !next.is_empty() && !next.starts_with("--")
            });
            assert!(described, "no help text for `{flag}`:\n{help}");
        }
    }
}
