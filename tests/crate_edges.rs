//! The crate edges the module docs promise, checked on `cargo tree` (normal and build
//! dependencies, transitively, for this machine's platform; dev-dependencies are the tests'
//! own): `flashsale-core` depends on no async runtime, HTTP, CLI or logging crate and on no
//! other flashsale crate, `flashsale-wire` on no HTTP, CLI or logging crate and not on the
//! runtime, the runtime not on HTTP, the CLI or the server, and the load generator not on the
//! server.

use std::collections::BTreeSet;
use std::process::Command;

/// The names of every package `member` needs to build, itself excluded.
fn dependencies(member: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-p", member, "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {member} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != member)
        .map(str::to_string)
        .collect()
}

fn assert_none(member: &str, forbidden: &[&str]) {
    let dependencies = dependencies(member);
    assert!(
        dependencies.len() > 1,
        "cargo tree listed nothing for {member}"
    );
    let found: Vec<&String> = dependencies
        .iter()
        .filter(|name| {
            forbidden
                .iter()
                .any(|f| *name == f || name.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "{member} must not depend on {found:?} (it depends on {dependencies:?})"
    );
}

#[test]
fn the_core_needs_no_runtime_network_cli_or_logging() {
    assert_none(
        "flashsale-core",
        &["tokio", "hyper", "axum", "clap", "tracing", "flashsale"],
    );
}

#[test]
fn the_codec_and_client_know_neither_the_engine_nor_http() {
    assert_none(
        "flashsale-wire",
        &[
            "hyper",
            "axum",
            "clap",
            "tracing",
            "flashsale-engine",
            "flashsale-server",
        ],
    );
}

#[test]
fn the_runtime_knows_no_http_cli_or_server() {
    assert_none(
        "flashsale-engine",
        &[
            "hyper",
            "axum",
            "clap",
            "tracing-subscriber",
            "flashsale-server",
        ],
    );
}

#[test]
fn the_load_generator_does_not_depend_on_the_server() {
    assert_none("flashsale-loadgen", &["flashsale-server"]);
}
