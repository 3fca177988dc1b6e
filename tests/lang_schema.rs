//! The checked-in JSON Schema is exactly what `runbook schema` prints, so editors that read
//! `schemas/runbook.schema.json` (through the modeline) see the format the binary accepts.

use crate::lang_support;

use lang_support::{root, runbook};

#[test]
fn checked_in_schema_matches_the_binary() {
    let out = runbook(&["schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = root().join("schemas/runbook.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == out.stdout,
        "schemas/runbook.schema.json is out of date with the Rust types in engine/src/spec/.\n\
         Regenerate it with:\n\n    cargo run -q -- schema > schemas/runbook.schema.json\n"
    );
}

#[test]
fn schema_argument_defaults_to_runbook() {
    let default = runbook(&["schema"]);
    let explicit = runbook(&["schema", "runbook"]);
    assert_eq!(default.stdout, explicit.stdout);
    let v: serde_json::Value = serde_json::from_str(&default.stdout).expect("the schema is JSON");
    assert_eq!(v["title"], "Runbook");
}
