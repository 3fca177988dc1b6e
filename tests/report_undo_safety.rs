//! An undo's safety class (issue 13 §1): `undo_started` records the class the runner gated the
//! undo with, and every report format (Markdown, JSON, HTML) shows that class; a journal written
//! before the class was recorded says what it can tell (a terminal gate) and `unknown`
//! otherwise, never `reversible`.

use crate::report_support;

use report_support::{fixture, json, Workspace};
use serde_json::Value;

/// A reversible undo, a terminal one, and a step that fails: the rollback runs both.
const RB: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: drop, title: Terminal undo }
steps:
  - id: stage
    shell: { script: "echo stage >> log" }
    undo:
      title: Unstage
      shell: { script: "echo unstage >> log" }
  - id: create
    shell: { script: "echo create >> log" }
    undo:
      title: Drop the table
      safety: terminal
      shell: { script: "echo drop >> log" }
  - id: broken
    shell: { script: "exit 1" }
    no_undo: test
"#;

/// Runs `RB` to its failure with the terminal undo answered `yes`; returns the run.
fn failed_run(ws: &Workspace) -> report_support::Run {
    std::fs::write(ws.path().join("rb.yaml"), RB).unwrap();
    let run = ws.run("rb.yaml", &["--yes", "--answer", "create.undo=yes"]);
    assert_eq!(run.code, 1, "the step `broken` fails:\n{}", run.stderr);
    let log = std::fs::read_to_string(ws.path().join("log")).unwrap();
    assert_eq!(log, "stage\ncreate\ndrop\nunstage\n", "{}", run.stderr);
    run
}

fn events(journal: &str) -> Vec<Value> {
    journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn undo_started<'a>(events: &'a [Value], step: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "undo_started" && e["step"] == step)
        .unwrap_or_else(|| panic!("no undo_started for `{step}` in {events:#?}"))
}

/// The report's JSON summary of one step.
fn step<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {summary:#}"))
}

/// The Markdown report's `**Action:**` line of one step's section.
fn md_action(md: &str, id: &str) -> String {
    let head = format!("### `{id}` —");
    let section = md
        .split_once(&head)
        .unwrap_or_else(|| panic!("no section `{id}` in:\n{md}"))
        .1;
    section
        .lines()
        .find(|l| l.starts_with("- **Action:**"))
        .unwrap_or_else(|| panic!("no action line for `{id}` in:\n{md}"))
        .to_string()
}

/// The HTML report's `Action` item of one step's article.
fn html_action(html: &str, id: &str) -> String {
    let head = format!("<article class=\"step\" id=\"step-{id}\">");
    let article = html
        .split_once(&head)
        .unwrap_or_else(|| panic!("no article `{id}` in:\n{html}"))
        .1;
    article
        .lines()
        .find(|l| l.starts_with("<li><strong>Action:</strong>"))
        .unwrap_or_else(|| panic!("no action item for `{id}` in:\n{html}"))
        .to_string()
}

#[test]
fn a_terminal_undo_is_journaled_and_reported_as_terminal() {
    let ws = Workspace::new(&[]);
    let run = failed_run(&ws);
    let journal = std::fs::read_to_string(&run.journal).unwrap();
    let ev = events(&journal);
    assert_eq!(undo_started(&ev, "create")["safety"], "terminal");
    assert_eq!(undo_started(&ev, "create")["action"], "shell");
    assert_eq!(undo_started(&ev, "stage")["safety"], "reversible");
    // The class is the one the runner gated: the terminal undo asked, the other did not.
    let gates: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "gate_asked")
        .map(|e| &e["step"])
        .collect();
    assert_eq!(gates, ["create.undo"], "{journal}");

    let md = ws.report(&[&run.id]);
    assert_eq!(
        md_action(&md, "create.undo"),
        "- **Action:** shell, terminal: `sh -c 'echo drop >> log'`"
    );
    assert_eq!(
        md_action(&md, "stage.undo"),
        "- **Action:** shell, reversible: `sh -c 'echo unstage >> log'`"
    );
    assert!(
        md.contains("Undo of `create` started — Drop the table (shell, terminal)"),
        "{md}"
    );
    assert!(
        md.contains("Undo of `stage` started — Unstage (shell, reversible)"),
        "{md}"
    );

    let summary = json(&ws.report(&[&run.id, "--format", "json"]));
    assert_eq!(step(&summary, "create.undo")["safety"], "terminal");
    assert_eq!(step(&summary, "stage.undo")["safety"], "reversible");

    let html = ws.report(&[&run.id, "--format", "html"]);
    assert!(
        html_action(&html, "create.undo").contains("shell, terminal: "),
        "{html}"
    );
    assert!(
        html_action(&html, "stage.undo").contains("shell, reversible: "),
        "{html}"
    );
}

#[test]
fn an_undo_journaled_without_its_class_is_never_reported_reversible() {
    let ws = Workspace::new(&[]);
    let run = failed_run(&ws);
    // The same journal as written before `undo_started` recorded the class.
    let journal = std::fs::read_to_string(&run.journal).unwrap();
    let mut old = String::new();
    for mut e in events(&journal) {
        if e["event"] == "undo_started" {
            assert!(e.as_object_mut().unwrap().remove("safety").is_some());
        }
        old.push_str(&e.to_string());
        old.push('\n');
    }
    std::fs::write(ws.path().join("old.jsonl"), &old).unwrap();

    let md = ws.report(&["old.jsonl"]);
    // The terminal undo asked at its terminal gate: that says its class.
    assert_eq!(
        md_action(&md, "create.undo"),
        "- **Action:** shell, terminal: `sh -c 'echo drop >> log'`"
    );
    // A shell undo's class may have been declared anything: not known.
    assert_eq!(
        md_action(&md, "stage.undo"),
        "- **Action:** shell, safety class unknown: `sh -c 'echo unstage >> log'`"
    );
    assert!(md.contains("Undo of `stage` started — Unstage\n"), "{md}");

    let summary = json(&ws.report(&["old.jsonl", "--format", "json"]));
    assert_eq!(step(&summary, "create.undo")["safety"], "terminal");
    assert_eq!(step(&summary, "stage.undo")["safety"], "unknown");

    let html = ws.report(&["old.jsonl", "--format", "html"]);
    assert!(
        html_action(&html, "create.undo").contains("shell, terminal: "),
        "{html}"
    );
    assert!(
        html_action(&html, "stage.undo").contains("shell, safety class unknown: "),
        "{html}"
    );
}

#[test]
fn a_real_journal_from_before_the_class_says_unknown() {
    // Checked in from a real run of an engine that recorded neither the undo's action nor its
    // class: both undos are shell commands, with no gate.
    let ws = Workspace::new(&["payments-failed.jsonl"]);
    let text = std::fs::read_to_string(fixture("payments-failed.jsonl")).unwrap();
    assert!(events(&text)
        .iter()
        .filter(|e| e["event"] == "undo_started")
        .all(|e| e.get("safety").is_none() && e.get("action").is_none()));
    let summary = json(&ws.report(&["payments-failed.jsonl", "--format", "json"]));
    for id in ["pause-writers.undo", "snapshot.undo"] {
        assert_eq!(step(&summary, id)["action"], "shell");
        assert_eq!(step(&summary, id)["safety"], "unknown");
    }
    let md = ws.report(&["payments-failed.jsonl"]);
    assert_eq!(
        md_action(&md, "snapshot.undo"),
        "- **Action:** shell, safety class unknown: `echo 'snapshot dropped'`"
    );
}

/// A terminal undo answered `no`, or left without an answer, ran nothing: the runner journals
/// no `undo_finished` for it (a resume asks again), and the report says how the run left it,
/// never `in-flight` (which tells a reviewer it may have run).
#[test]
fn a_terminal_undo_stopped_at_its_gate_is_reported_as_not_run() {
    for (answer, code, outcome) in [
        (Some("create.undo=no"), 3, "aborted"),
        (None, 4, "needs-answer"),
    ] {
        let ws = Workspace::new(&[]);
        std::fs::write(ws.path().join("rb.yaml"), RB).unwrap();
        let mut extra = vec!["--yes"];
        if let Some(a) = answer {
            extra.extend(["--answer", a]);
        }
        let run = ws.run("rb.yaml", &extra);
        assert_eq!(run.code, code, "{answer:?}:\n{}", run.stderr);
        let log = std::fs::read_to_string(ws.path().join("log")).unwrap();
        assert_eq!(log, "stage\ncreate\n", "the undo must not run: {answer:?}");
        let journal = std::fs::read_to_string(&run.journal).unwrap();
        assert!(!journal.contains("\"undo_finished\""), "{journal}");

        let summary = json(&ws.report(&[&run.id, "--format", "json"]));
        let undo = step(&summary, "create.undo");
        assert_eq!(undo["outcome"], outcome, "{answer:?}: {undo:#}");
        assert_eq!(undo["attempts"], 0, "{undo:#}");
        assert!(summary["in_flight_step"].is_null(), "{summary:#}");
        let md = ws.report(&[&run.id]);
        let row = md
            .lines()
            .find(|l| l.starts_with("| `create.undo` |"))
            .unwrap_or_else(|| panic!("no row for the undo in:\n{md}"));
        assert!(row.contains(&format!("| {outcome} |")), "{row}");
        assert!(!md.contains("in-flight"), "{md}");
        assert!(
            md.contains(
                "Undo of `create` stopped at its gate, not run — Drop the table (shell, terminal)"
            ),
            "{md}"
        );
    }
}
