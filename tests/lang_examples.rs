//! Every runbook the repository ships (`runbooks/`, `examples/`) starts with the schema
//! modeline, so editors validate it while it is written, and passes `runbook check`.

use crate::lang_support;

use std::path::{Path, PathBuf};

use lang_support::{root, runbook};

const RUNBOOK_MODELINE: &str = "# yaml-language-server: $schema=";

fn yaml_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // `runbooks/` may not exist yet
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            yaml_under(&path, out);
        } else if matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn shipped() -> Vec<PathBuf> {
    let mut files = vec![];
    for dir in ["runbooks", "examples"] {
        yaml_under(&root().join(dir), &mut files);
    }
    files.sort();
    files
}

/// The relative path from `file`'s directory to `schemas/<name>`.
fn schema_path_from(file: &Path, name: &str) -> String {
    let dir = file.parent().unwrap().strip_prefix(root()).unwrap();
    let up = "../".repeat(dir.components().count());
    format!("{up}schemas/{name}")
}

#[test]
fn there_are_examples() {
    let examples = shipped()
        .into_iter()
        .filter(|p| p.starts_with(root().join("examples")))
        .count();
    assert!(examples >= 3, "examples/ should show the format");
}

#[test]
fn every_shipped_runbook_starts_with_the_schema_modeline() {
    let mut wrong = vec![];
    for f in shipped() {
        let text = std::fs::read_to_string(&f).unwrap();
        let first = text.lines().next().unwrap_or_default();
        // Drills have their own schema; the modeline must name the one the file is.
        let is_drill = text.lines().any(|l| l.trim() == "kind: Drill");
        let schema = if is_drill {
            "drill.schema.json"
        } else {
            "runbook.schema.json"
        };
        let expected = format!("{RUNBOOK_MODELINE}{}", schema_path_from(&f, schema));
        if first.trim_end() != expected {
            wrong.push(format!(
                "{}: first line is `{first}`, expected `{expected}`",
                f.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_shipped_runbook_passes_check() {
    for f in shipped() {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let out = runbook(&["check", &rel]);
        assert_eq!(out.code, 0, "`runbook check {rel}` failed:\n{}", out.stderr);
    }
}

#[test]
fn examples_are_free_of_warnings() {
    // Examples are what authors copy: they show the careful form (undo or no_undo, a confirm
    // before anything terminal).
    let out = runbook(&["check", "--strict", "examples"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn examples_use_every_step_kind() {
    use runbook::load::{check_path, Checked};
    let mut kinds = std::collections::BTreeSet::new();
    let mut text = String::new();
    for f in shipped() {
        if !f.starts_with(root().join("examples")) {
            continue;
        }
        let rb = match check_path(&f).checked {
            Some(Checked::Runbook(rb)) => rb,
            Some(Checked::Drill(_)) => continue,
            None => panic!("{} is not a valid runbook", f.display()),
        };
        text.push_str(&std::fs::read_to_string(&f).unwrap());
        for step in rb.steps.iter().chain(&rb.on_failure) {
            kinds.insert(step.action.kind.field());
            if let Some(body) = step.action.body.as_object() {
                if step.action.kind.field() == "shell" {
                    kinds.extend(
                        ["argv", "script"]
                            .into_iter()
                            .filter(|k| body.contains_key(*k)),
                    );
                }
            }
        }
    }
    for kind in runbook::spec::ACTION_KINDS
        .iter()
        .chain(&["argv", "script"])
    {
        assert!(kinds.contains(kind), "no example has a `{kind}` step");
    }
    for field in [
        "verify:",
        "until:",
        "secrets:",
        "inputs:",
        "preconditions:",
        "undo:",
        "no_undo:",
        "on_failure:",
        "rollback_strategy:",
    ] {
        assert!(text.contains(field), "no example uses `{field}`");
    }
}

#[test]
fn list_shows_each_runbook_with_its_highest_safety_class() {
    let out = runbook(&["list", "examples"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("name "));
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("k8s-scale-out ") && l.contains(" P2 ") && l.contains(" 15m ")));
    insta::assert_snapshot!(out.stdout);
    let json = runbook(&["list", "examples", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(shipped_examples()));
}

#[test]
fn list_of_a_missing_directory_is_an_error() {
    let out = runbook(&["list", "no-such-directory"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no-such-directory does not exist"));
}

/// Runbooks (not drills) under examples/.
fn shipped_examples() -> usize {
    shipped()
        .iter()
        .filter(|p| p.starts_with(root().join("examples")))
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("kind: Drill")
        })
        .count()
}
