//! Converts `docs/openapi.yaml` to JSON in `OUT_DIR` for `src/openapi.rs` (served at
//! `GET /openapi.json`): once per build, and a document that does not parse fails the build.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let source = Path::new(&manifest).join("../../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let yaml = std::fs::read_to_string(&source)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    let document: serde_json::Value = serde_norway::from_str(&yaml)
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", source.display()));
    let json = serde_json::to_vec(&document).expect("a JSON value serializes");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    std::fs::write(&out, json)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", out.display()));
}
