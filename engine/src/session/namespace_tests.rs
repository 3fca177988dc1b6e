//! The template namespace is one: every `run.*` and `steps.<id>.*` field `check` accepts is in
//! the runner's context after a run, and the runner's context holds nothing `check` rejects.

use std::collections::BTreeSet;
use std::path::Path;

use crate::drill::check::check_drill_path;
use crate::drill::expect::ending;
use crate::exec::runner::SEEN;
use crate::template::namespace::{RunFields, StepField};

const RUNBOOK: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: t, title: T }
steps:
  - id: fetch
    safety: read-only
    http: { request: { url: "https://svc.internal/n" } }
    capture: { n: "result.json.n" }
  - id: sure
    confirm: { prompt: go on? }
  - id: hand
    manual: { instructions: do it }
  - id: how_many
    input: { prompt: how many?, type: integer }
  - id: pause
    wait: 1m
  - id: all
    assert:
      - that: "steps.fetch.n == 3"
  - id: sub
    call: { runbook: child.yaml }
"#;

const CHILD: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: child, title: Child }
steps:
  - id: inner
    assert: [ { that: "1 == 1" } ]
"#;

const DRILL: &str = r#"apiVersion: runbook/v1
kind: Drill
metadata: { name: t }
runbook: rb.yaml
answers: { sure: yes, hand: "done: did it", how_many: "4" }
world:
  http:
    - match: { url: "https://svc.internal/n" }
      respond: { status: 200, json: { n: 3 } }
"#;

/// Whether `check` accepts a template reading `reference` in a step after `RUNBOOK`'s.
fn check_accepts(dir: &Path, reference: &str) -> bool {
    let text = format!(
        "{RUNBOOK}  - id: probe\n    safety: read-only\n    shell: {{ argv: [echo, \"{{{{ {reference} }}}}\"] }}\n"
    );
    let path = dir.join("probe.yaml");
    let report = crate::check::check_bytes("probe.yaml", &path, text.as_bytes());
    !report.has_errors()
}

/// What `check` accepts under `steps.<id>.` for each step of `RUNBOOK`, besides captures.
fn accepted(rb: &crate::model::Runbook, id: &str) -> BTreeSet<String> {
    let step = rb.steps.iter().find(|s| s.id == id).unwrap();
    let mut names: BTreeSet<String> = step.spec.capture.keys().cloned().collect();
    names.extend(StepField::of_step(&step.spec).map(|f| f.name().to_string()));
    if let crate::model::ActionKind::Call(child) = &step.action.kind {
        names.extend(child.steps.iter().map(|s| s.id.clone()));
    }
    names
}

#[test]
fn the_runners_context_has_every_field_check_accepts_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rb.yaml"), RUNBOOK).unwrap();
    std::fs::write(dir.path().join("child.yaml"), CHILD).unwrap();
    let path = dir.path().join("rb.drill.yaml");
    std::fs::write(&path, DRILL).unwrap();
    let report = check_drill_path(&path);
    let drill = match report.checked {
        Some(d) if !report.has_errors() => d,
        _ => panic!("the drill does not check: {:#?}", report.diagnostics),
    };
    let run = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(crate::session::drill::run(&drill, None))
        .unwrap();
    let end = ending(&run.events);
    assert_eq!(end.outcome, "succeeded", "{:?}", end.message);
    let ctx = SEEN
        .with(|c| c.borrow_mut().take())
        .expect("the runner's context");

    let run_fields: Vec<&str> = ctx["run"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(run_fields, RunFields::NAMES, "run.*");
    // Checked against `check` itself: each field is accepted, and a name not in the table is not.
    let rb = &drill.runbook;
    for name in RunFields::NAMES {
        assert!(
            check_accepts(dir.path(), &format!("run.{name}")),
            "check rejects run.{name}"
        );
    }
    assert!(!check_accepts(dir.path(), "run.nope"));

    for step in ["fetch", "sure", "hand", "how_many", "pause", "all", "sub"] {
        let set: BTreeSet<String> = ctx["steps"][step]
            .as_object()
            .unwrap_or_else(|| panic!("steps.{step}: {ctx:#}"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(set, accepted(rb, step), "steps.{step}.*");
        for name in &set {
            assert!(
                check_accepts(dir.path(), &format!("steps.{step}.{name}")),
                "check rejects steps.{step}.{name}"
            );
        }
        // What the step does not have, check rejects.
        for f in StepField::ALL.iter().filter(|f| !set.contains(f.name())) {
            let name = f.name();
            assert!(
                !check_accepts(dir.path(), &format!("steps.{step}.{name}")),
                "check accepts steps.{step}.{name}, which the runner never sets"
            );
        }
    }
    // A called runbook's steps are under its call step.
    assert!(check_accepts(dir.path(), "steps.sub.inner.outcome"));
    assert!(!check_accepts(dir.path(), "steps.fetch.value"));
    assert!(!check_accepts(dir.path(), "steps.sure.result"));
    assert!(!check_accepts(dir.path(), "steps.all.attempts"));
}
