//! Answers that mean what they say (issue 12): what a confirmation guards, and what `yes`,
//! `no`, `skip` and `abort` each do to it; who runs; where the report is; why a capture failed.

use crate::common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A change with an undo, a confirmation, the change it guards, then a read-only step.
const GUARDED: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: guarded
  title: Guarded change
steps:
  - id: prepare
    shell: { argv: ["touch", "prepared"] }
    undo:
      title: Remove the preparation
      shell: { argv: ["rm", "-f", "prepared"] }
  - id: approve
    confirm: { prompt: "Switch the widget over?" }
  - id: switch
    shell: { argv: ["touch", "switched"] }
    no_undo: a test
  - id: after
    safety: read-only
    shell: { argv: ["touch", "after"] }
"#;

fn run(dir: &Path, args: &[&str]) -> (i32, String, Vec<Value>) {
    let o = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--journal-dir",
            "runs",
            "--non-interactive",
        ])
        .args(args)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    let ev = events(&journal_path(&dir.join("runs")));
    (o.status.code().unwrap(), err, ev)
}

fn skipped<'a>(ev: &'a [Value], step: &str) -> Option<&'a Value> {
    of_kind(ev, "step_skipped")
        .into_iter()
        .find(|e| e["step"] == step)
}

#[test]
fn skip_at_a_confirmation_never_runs_the_change_it_guards() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let (code, err, ev) = run(dir.path(), &["--answer", "approve=skip"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !dir.path().join("switched").exists(),
        "skip ran the guarded change"
    );
    // The run goes on after the guarded change.
    assert!(dir.path().join("after").exists());
    assert!(dir.path().join("prepared").exists());
    let s = skipped(&ev, "switch").expect("switch is journaled as skipped");
    assert_eq!(s["cause"], "answer");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("`approve` was answered skip"),
        "{s}"
    );
}

#[test]
fn no_stops_before_the_change_and_resume_asks_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let (code, err, ev) = run(dir.path(), &["--answer", "approve=no"]);
    assert_eq!(code, 3, "{err}");
    assert!(!dir.path().join("switched").exists());
    // Nothing is undone: what ran before stays.
    assert!(dir.path().join("prepared").exists());
    assert!(of_kind(&ev, "undo_started").is_empty());
    assert!(err.contains("answered no"), "{err}");
    assert!(err.contains("runbook resume"), "{err}");
    // Resuming asks the question again; yes lets the change run.
    let id = run_id(&ev);
    let o = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs", "--non-interactive"])
        .args(["--answer", "approve=yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert!(dir.path().join("switched").exists());
}

#[test]
fn abort_stops_and_undoes_what_the_run_changed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let (code, err, ev) = run(dir.path(), &["--answer", "approve=abort"]);
    assert_eq!(code, 3, "{err}");
    assert!(!dir.path().join("switched").exists());
    assert!(
        !dir.path().join("prepared").exists(),
        "abort did not undo `prepare`"
    );
    assert_eq!(of_kind(&ev, "undo_finished")[0]["ok"], true);
    assert!(err.contains("cannot be resumed"), "{err}");
    // An aborted run that undid its changes is not resumed.
    let o = runbook(dir.path())
        .args([
            "resume",
            &run_id(&ev),
            "--journal-dir",
            "runs",
            "--non-interactive",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
}

#[test]
fn the_needs_answer_hint_says_what_each_answer_does() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let (code, err, _) = run(dir.path(), &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("--answer approve=yes"), "{err}");
    assert!(
        err.contains("it guards `switch`: =skip goes on without it, =no stops here, =abort stops and undoes what the run changed"),
        "{err}"
    );
}

#[test]
fn an_explicit_guards_list_is_what_skip_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: guards
  title: Explicit guards
steps:
  - id: approve
    confirm: { prompt: "Go?", guards: [second] }
  - id: first
    shell: { argv: ["touch", "first"] }
    no_undo: a test
  - id: second
    shell: { argv: ["touch", "second"] }
    no_undo: a test
"#,
    );
    let (code, err, _) = run(dir.path(), &["--answer", "approve=skip"]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("first").exists());
    assert!(!dir.path().join("second").exists());
}

#[test]
fn check_rejects_guards_that_are_not_later_steps() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: guards
  title: Bad guards
steps:
  - id: first
    shell: { argv: ["true"] }
    no_undo: a test
  - id: approve
    confirm: { prompt: "Go?", guards: [first, nowhere] }
"#,
    );
    let o = runbook(dir.path())
        .args(["check", "rb.yaml"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`guards` names `first`"), "{err}");
    assert!(err.contains("runs before this confirmation"), "{err}");
    assert!(err.contains("`guards` names `nowhere`"), "{err}");
}

/// Item 1, the command of the issue: `approve=skip` in training must not roll back.
#[test]
fn training_skip_at_the_rollback_confirmation_does_not_roll_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let o = runbook(dir.path())
        .arg("run")
        .arg(root.join("runbooks/k8s-rollback.yaml"))
        .arg("--world")
        .arg(root.join("runbooks/drills/k8s-rollback/recovers.yaml"))
        .args(["--fast", "--non-interactive", "--reason", "x", "--yes"])
        .args(["--answer", "approve=skip", "--answer", "tell=done"])
        .args(["--answer", "record=done", "--answer", "metrics=done"])
        .args(["--answer", "escalate=done", "--journal-dir", "runs"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    let ev = events(&journal_path(&dir.path().join("runs")));
    let undo = skipped(&ev, "undo").unwrap_or_else(|| panic!("undo ran:\n{err}"));
    assert_eq!(undo["cause"], "answer");
    // Nothing changed the world: the rollback was not made.
    assert!(of_kind(&ev, "world_changed").is_empty(), "{err}");
    assert!(!err.contains("undo succeeded"), "{err}");
}

#[test]
fn a_terminal_runbook_without_an_identity_refuses_in_ci_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: wipe
  title: Wipe
steps:
  - id: approve
    confirm: { prompt: "Wipe?" }
  - id: wipe
    safety: terminal
    shell: { argv: ["touch", "wiped"] }
"#,
    );
    let attempt = |extra: &[&str]| {
        runbook(dir.path())
            .env_remove("RUNBOOK_OPERATOR")
            .env("USER", "")
            .env_remove("LOGNAME")
            .args([
                "run",
                "rb.yaml",
                "--journal-dir",
                "runs",
                "--non-interactive",
            ])
            .args(["--answer", "approve=yes", "--answer", "wipe=yes"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = attempt(&[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--operator"), "{err}");
    assert!(!dir.path().join("wiped").exists());
    assert!(!dir.path().join("runs").exists(), "a journal was started");
    let o = attempt(&["--operator", "dana"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "run_started")[0]["operator"], "dana");
    assert_eq!(of_kind(&ev, "gate_answered")[1]["by"], "dana");
}

#[test]
fn a_low_risk_runbook_without_an_identity_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let o = runbook(dir.path())
        .env_remove("RUNBOOK_OPERATOR")
        .env("USER", "")
        .env_remove("LOGNAME")
        .args([
            "run",
            "rb.yaml",
            "--journal-dir",
            "runs",
            "--non-interactive",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
}

#[test]
fn the_end_of_a_run_points_to_its_report() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUARDED);
    let (code, err, ev) = run(dir.path(), &["--yes"]);
    assert_eq!(code, 0, "{err}");
    let id = run_id(&ev);
    let line = format!("runbook report {id} --journal-dir runs");
    assert!(err.contains(&line), "{err}");
    // The command works as printed.
    let o = runbook(dir.path())
        .args(["report", &id, "--journal-dir", "runs"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
}

#[test]
fn training_reports_say_training_and_virtual_time_and_count_by_design_skips_apart() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let o = runbook(dir.path())
        .arg("run")
        .arg(root.join("runbooks/k8s-rollback.yaml"))
        .arg("--world")
        .arg(root.join("runbooks/drills/k8s-rollback/recovers.yaml"))
        .args(["--fast", "--non-interactive", "--reason", "x", "--yes"])
        .args(["--answer", "tell=done", "--answer", "record=done"])
        .args(["--answer", "metrics=done", "--journal-dir", "runs"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let ev = events(&journal_path(&dir.path().join("runs")));
    let o = runbook(dir.path())
        .args([
            "report",
            &run_id(&ev),
            "--journal-dir",
            "runs",
            "--format",
            "md",
        ])
        .output()
        .unwrap();
    let (md, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let title = md.lines().find(|l| l.starts_with("# ")).unwrap_or_default();
    assert!(title.contains("Training run"), "{title}");
    assert!(md.contains("Times are virtual"), "{md}");
    // 14 main steps: `pin` and `pin_container` were skipped by design (strategy undo).
    assert!(
        md.contains("12 of 12 planned steps succeeded (100%) (2 more skipped by design"),
        "{md}"
    );
}

#[test]
fn a_failed_capture_shows_what_the_server_answered() {
    let srv = Server::start(vec![(
        "/status",
        vec![Reply::json(
            401,
            serde_json::json!({"error": "token expired"}),
        )],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: cap
  title: Capture
steps:
  - id: read
    http:
      request: {{ method: GET, url: "{}" }}
    capture:
      phase: "result.json.phase"
    verify:
      - that: "steps.read.phase == 'Running'"
"#,
            srv.url("/status")
        ),
    );
    let (code, err, ev) = run(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(msg.contains("capture `phase`"), "{msg}");
    assert!(
        msg.contains("the server answered HTTP 401 Unauthorized"),
        "{msg}"
    );
    assert!(msg.contains("token expired"), "{msg}");
    assert!(err.contains("HTTP 401 Unauthorized"), "{err}");
}

/// Item 7 (issue 12): every way a run ends short names the step, what was observed and the
/// next command to run, complete, for this run: a failed verification (the report), a gate
/// without an answer (the resume with the `--answer` to pass), `no` (the resume), `abort`
/// (a new run), a refused resume (the report, or the resume with `--world` for training).
#[test]
fn every_ending_names_the_step_the_value_and_the_next_command() {
    let srv = Server::start(vec![(
        "/health",
        vec![Reply::json(503, serde_json::json!({"status": "down"}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "check.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: check, title: Check }}
steps:
  - id: health
    http: {{ request: {{ method: GET, url: "{}" }} }}
    verify:
      - that: "result.status == 200"
        message: the service answers 200
"#,
            srv.url("/health")
        ),
    );
    write(dir.path(), "rb.yaml", GUARDED);
    let go = |file: &str, args: &[&str]| {
        let o = runbook(dir.path())
            .args(["run", file, "--journal-dir", "runs", "--non-interactive"])
            .args(args)
            .output()
            .unwrap();
        let runs = std::fs::read_dir(dir.path().join("runs")).unwrap();
        let newest = runs
            .map(|e| e.unwrap().path())
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        let id = newest.file_name().unwrap().to_str().unwrap().to_string();
        (o.status.code().unwrap(), text(&o).1, id)
    };

    // A verification fails: the step, the value read, and the report.
    let (code, err, id) = go("check.yaml", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("run {id} failed at `health`")),
        "{err}"
    );
    assert!(err.contains("result.status=503"), "{err}");
    assert!(
        err.contains(&format!("report: runbook report {id} --journal-dir runs")),
        "{err}"
    );

    // A gate without an answer: the resume command with the answer to pass.
    let (code, err, id) = go("rb.yaml", &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("`approve`"), "{err}");
    assert!(
        err.contains(&format!(
            "runbook resume {id} --journal-dir runs --answer approve=yes"
        )),
        "{err}"
    );

    // `no`: the resume command.
    let (code, err, no_id) = go("rb.yaml", &["--answer", "approve=no"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the operator answered no at `approve`"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "to continue: runbook resume {no_id} --journal-dir runs"
        )),
        "{err}"
    );

    // `abort`: undone, not resumable; a new run is the next command.
    let (code, err, id) = go("rb.yaml", &["--answer", "approve=abort"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`approve`"), "{err}");
    assert!(
        err.contains("cannot be resumed. To start again: runbook run rb.yaml"),
        "{err}"
    );
    // ... and its resume is refused, pointing to its report.
    let o = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs", "--non-interactive"])
        .output()
        .unwrap();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "its report: runbook report {id} --journal-dir runs"
        )),
        "{err}"
    );

    // A resume of a run that already succeeded: its report.
    let o = runbook(dir.path())
        .args([
            "resume",
            &no_id,
            "--journal-dir",
            "runs",
            "--non-interactive",
        ])
        .args(["--answer", "approve=yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let o = runbook(dir.path())
        .args(["resume", &no_id, "--journal-dir", "runs"])
        .output()
        .unwrap();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already succeeded")
            && err.contains(&format!("runbook report {no_id} --journal-dir runs")),
        "{err}"
    );
}
