//! `runbook check` validates drills: the runbook they drill exists and is valid, their inputs,
//! answers, faults and expected steps name what the runbook has, their world is consistent,
//! each problem at its line and column; and the checked-in drill schema is the generated one.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// `runbook check --format json` on one file: exit code and its diagnostics.
fn check(file: &Path) -> (i32, Vec<Value>) {
    let o = runbook(&root())
        .args(["check", "--format", "json"])
        .arg(file)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (
        o.status.code().unwrap(),
        v["diagnostics"].as_array().unwrap().clone(),
    )
}

/// The diagnostic with this code at this line, with its column and message.
fn at<'a>(diags: &'a [Value], line: u64, code: &str) -> &'a Value {
    diags
        .iter()
        .find(|d| d["line"] == line && d["code"] == code)
        .unwrap_or_else(|| panic!("no `{code}` at line {line} in {diags:#?}"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/drills").join(name)
}

#[test]
fn references_into_the_runbook_are_checked_at_their_location() {
    let (code, d) = check(&fixture("invalid/bad-refs.yaml"));
    assert_eq!(code, 2);
    let input = at(&d, 7, "unknown-input");
    assert_eq!(
        (input["column"].as_u64(), input["help"].as_str()),
        (Some(3), Some("did you mean `deployment`?"))
    );
    assert!(at(&d, 6, "missing-input")["message"]
        .as_str()
        .unwrap()
        .contains("missing input `deployment`"));
    let answer = at(&d, 10, "unknown-step");
    assert_eq!(
        (answer["column"].as_u64(), answer["help"].as_str()),
        (Some(3), Some("did you mean `approve`?"))
    );
    let bad = at(&d, 11, "drill-answer");
    assert_eq!(bad["column"], 9);
    assert!(bad["message"]
        .as_str()
        .unwrap()
        .contains("`maybe` does not answer `tell`: expected done, skipped or failed"));
    let fault = at(&d, 13, "unknown-step");
    assert_eq!(
        (fault["column"].as_u64(), fault["help"].as_str()),
        (Some(11), Some("did you mean `rollback`?"))
    );
    let step = at(&d, 17, "unknown-step");
    assert_eq!(
        (step["column"].as_u64(), step["help"].as_str()),
        (Some(5), Some("did you mean `healthy`?"))
    );
    assert_eq!(d.len(), 6, "{d:#?}");
}

#[test]
fn the_runbook_must_exist_and_be_valid() {
    let (code, d) = check(&fixture("invalid/missing-runbook.yaml"));
    assert_eq!(code, 2);
    let m = at(&d, 5, "drill-runbook");
    assert_eq!(m["column"], 10);
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .contains("runbook `../k8s-rollbak.yaml` not found"),
        "{m}"
    );

    let (code, d) = check(&fixture("invalid/broken-runbook.yaml"));
    assert_eq!(code, 2);
    let b = at(&d, 5, "drill-runbook");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("runbook `broken.runbook.yaml` has 2 errors"),
        "{b}"
    );
    // Its own diagnostics come along, located in the runbook.
    let help = b["help"].as_str().unwrap();
    assert!(
        help.contains("broken.runbook.yaml:6:5: error: unknown field `shel`"),
        "{help}"
    );
}

#[test]
fn the_world_and_faults_are_checked() {
    let (code, d) = check(&fixture("invalid/world.yaml"));
    assert_eq!(code, 2);
    assert!(at(&d, 10, "drill-world")["message"]
        .as_str()
        .unwrap()
        .contains("`soon` is not a duration"));
    assert_eq!(
        at(&d, 12, "drill-world")["help"],
        "did you mean `prod/flowengine`?"
    );
    assert!(at(&d, 13, "drill-world")["message"]
        .as_str()
        .unwrap()
        .contains("exactly one of `error`, `rollout_never_available` or `http_failing`"));
    assert_eq!(
        at(&d, 19, "drill-world")["help"],
        "did you mean `prod/flowengine`?"
    );
}

#[test]
fn schema_errors_are_located_with_suggestions() {
    let (code, d) = check(&fixture("invalid/schema.yaml"));
    assert_eq!(code, 2);
    assert_eq!(
        at(&d, 7, "unknown-field")["help"],
        "did you mean `kubernetes`?"
    );
    let outcome = at(&d, 9, "invalid-value");
    assert!(
        outcome["help"]
            .as_str()
            .unwrap()
            .contains("`succeeded`, `failed`, `aborted`, `needs-answer`"),
        "{outcome}"
    );
}

#[test]
fn valid_drills_check_clean_and_check_walks_directories() {
    for f in [
        "rollback-recovers.yaml",
        "rollback-stuck-fails.yaml",
        "failing/rollback-stuck.yaml",
    ] {
        let (code, d) = check(&fixture(f));
        assert_eq!((code, d.len()), (0, 0), "{f}: {d:#?}");
    }
    let o = runbook(&root())
        .args(["check", "--strict", "examples/drills"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("0 errors, 0 warnings"), "{err}");
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let o = runbook(&root()).args(["schema", "drill"]).output().unwrap();
    assert!(o.status.success());
    let generated = String::from_utf8(o.stdout).unwrap();
    let checked_in = std::fs::read_to_string(root().join("schemas/drill.schema.json")).unwrap();
    assert!(
        generated == checked_in,
        "schemas/drill.schema.json is stale: run `runbook schema drill > schemas/drill.schema.json`"
    );
    let v: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(v["title"], "Drill");
    assert!(v["properties"]["faults"]["description"]
        .as_str()
        .unwrap()
        .contains("injected"));
}

#[test]
fn drill_files_name_their_schema() {
    let mut files = vec![];
    for dir in ["tests/fixtures/drills", "examples/drills", "runbooks"] {
        collect(&root().join(dir), &mut files);
    }
    let drills: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("\nkind: Drill")
        })
        .collect();
    assert!(drills.len() >= 5, "{drills:?}");
    for f in drills {
        let first = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} does not start with the schema modeline", f.display()));
        assert!(
            rel.ends_with("schemas/drill.schema.json"),
            "{}: {rel}",
            f.display()
        );
        assert!(
            f.parent().unwrap().join(rel).is_file(),
            "{}: {rel} does not resolve",
            f.display()
        );
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn run_placeholders_are_only_the_runs_values_where_they_are_replaced() {
    let (code, d) = check(&fixture("invalid/run-placeholders.yaml"));
    assert_eq!(code, 2, "{d:#?}");
    let world: Vec<(u64, u64, &str)> = d
        .iter()
        .filter(|x| x["code"] == "drill-world")
        .map(|x| {
            (
                x["line"].as_u64().unwrap(),
                x["column"].as_u64().unwrap(),
                x["message"].as_str().unwrap(),
            )
        })
        .collect();
    // `{{ inputs.plan }}` in `match.json` and `{{ run.host }}` in an answer are not run
    // values; a placeholder in the URL (a glob) is never replaced. `{{ run.operator }}` is fine.
    assert_eq!(world.len(), 3, "{world:#?}");
    assert!(
        world
            .iter()
            .any(|(l, _, m)| *l == 9 && m.contains("not `{{ inputs.plan }}`")),
        "{world:#?}"
    );
    assert!(
        world.iter().any(|(l, _, m)| *l == 9
            && m.contains("`url`, `headers` and `body` of a `match` are literal text")),
        "{world:#?}"
    );
    assert!(
        world
            .iter()
            .any(|(l, _, m)| *l == 10 && m.contains("not `{{ run.host }}`")),
        "{world:#?}"
    );
}
