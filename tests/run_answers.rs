//! Answers that mean what they say (issue 12): what a confirmation guards, and what `yes`,
//! `no`, `skip` and `abort` each do to it; who runs; where the report is; why a capture failed.

use crate::common;

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

/// `rb.yaml` run non-interactively with `args`, and the events of its journal.
fn run(w: &Workdir, args: &[&str]) -> (Ran, Vec<Value>) {
    let r = w.run("rb.yaml", args);
    let ev = w.events();
    (r, ev)
}

#[test]
fn skip_at_a_confirmation_never_runs_the_change_it_guards() {
    let w = Workdir::with_runbook(GUARDED);
    let (r, ev) = run(&w, &["--answer", "approve=skip"]);
    r.assert_code(0);
    assert!(!w.has("switched"), "skip ran the guarded change");
    // The run goes on after the guarded change.
    assert!(w.has("after"));
    assert!(w.has("prepared"));
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
    let w = Workdir::with_runbook(GUARDED);
    let (r, ev) = run(&w, &["--answer", "approve=no"]);
    r.assert_code(3);
    assert!(!w.has("switched"));
    // Nothing is undone: what ran before stays.
    assert!(w.has("prepared"));
    assert!(of_kind(&ev, "undo_started").is_empty());
    r.assert_says(&["answered no", "runbook resume"]);
    // Resuming asks the question again; yes lets the change run.
    w.resume(
        &run_id(&ev),
        &["--non-interactive", "--answer", "approve=yes"],
    )
    .assert_code(0);
    assert!(w.has("switched"));
}

#[test]
fn abort_stops_and_undoes_what_the_run_changed() {
    let w = Workdir::with_runbook(GUARDED);
    let (r, ev) = run(&w, &["--answer", "approve=abort"]);
    r.assert_code(3);
    assert!(!w.has("switched"));
    assert!(!w.has("prepared"), "abort did not undo `prepare`");
    assert_eq!(of_kind(&ev, "undo_finished")[0]["ok"], true);
    r.assert_says(&["cannot be resumed"]);
    // An aborted run that undid its changes is not resumed.
    w.resume(&run_id(&ev), &["--non-interactive"])
        .assert_code(2);
}

#[test]
fn the_needs_answer_hint_says_what_each_answer_does() {
    let w = Workdir::with_runbook(GUARDED);
    let (r, _) = run(&w, &[]);
    r.assert_code(4).assert_says(&[
        "--answer approve=yes",
        "it guards `switch`: =skip goes on without it, =no stops here, =abort stops and undoes what the run changed",
    ]);
}

#[test]
fn an_explicit_guards_list_is_what_skip_leaves_out() {
    let w = Workdir::with_runbook(
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
    let (r, _) = run(&w, &["--answer", "approve=skip"]);
    r.assert_code(0);
    assert!(w.has("first"));
    assert!(!w.has("second"));
}

#[test]
fn check_rejects_guards_that_are_not_later_steps() {
    let w = Workdir::with_runbook(
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
    w.output(w.cmd().args(["check", "rb.yaml"]))
        .assert_code(2)
        .assert_says(&[
            "`guards` names `first`",
            "runs before this confirmation",
            "`guards` names `nowhere`",
        ]);
}

/// Item 1, the command of the issue: `approve=skip` in training must not roll back.
#[test]
fn training_skip_at_the_rollback_confirmation_does_not_roll_back() {
    let w = Workdir::new();
    let r = w.train_k8s_rollback(&[
        "approve=skip",
        "tell=done",
        "record=done",
        "metrics=done",
        "escalate=done",
    ]);
    let err = &r.stderr;
    let ev = w.events();
    let undo = skipped(&ev, "undo").unwrap_or_else(|| panic!("undo ran:\n{err}"));
    assert_eq!(undo["cause"], "answer");
    // Nothing changed the world: the rollback was not made.
    assert!(of_kind(&ev, "world_changed").is_empty(), "{err}");
    assert!(!err.contains("undo succeeded"), "{err}");
}

#[test]
fn a_terminal_runbook_without_an_identity_refuses_in_ci_naming_the_flag() {
    let w = Workdir::with_runbook(
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
        w.output(
            anonymous(w.run_cmd("rb.yaml"))
                .args(["--answer", "approve=yes", "--answer", "wipe=yes"])
                .args(extra),
        )
    };
    attempt(&[]).assert_code(2).assert_says(&["--operator"]);
    assert!(!w.has("wiped"));
    assert!(!w.has("runs"), "a journal was started");
    attempt(&["--operator", "dana"]).assert_code(0);
    let ev = w.events();
    assert_eq!(of_kind(&ev, "run_started")[0]["operator"], "dana");
    assert_eq!(of_kind(&ev, "gate_answered")[1]["by"], "dana");
}

/// The command without any identity of the operator (no RUNBOOK_OPERATOR, USER, LOGNAME).
fn anonymous(mut cmd: std::process::Command) -> std::process::Command {
    cmd.env_remove("RUNBOOK_OPERATOR")
        .env("USER", "")
        .env_remove("LOGNAME");
    cmd
}

#[test]
fn a_low_risk_runbook_without_an_identity_still_runs() {
    let w = Workdir::with_runbook(GUARDED);
    w.output(anonymous(w.run_cmd("rb.yaml")).arg("--yes"))
        .assert_code(0);
}

#[test]
fn the_end_of_a_run_points_to_its_report() {
    let w = Workdir::with_runbook(GUARDED);
    let (r, ev) = run(&w, &["--yes"]);
    r.assert_code(0);
    let id = run_id(&ev);
    r.assert_says(&[&format!("runbook report {id} --journal-dir runs")]);
    // The command works as printed.
    w.output(w.cmd().args(["report", &id, "--journal-dir", "runs"]))
        .assert_code(0);
}

#[test]
fn training_reports_say_training_and_virtual_time_and_count_by_design_skips_apart() {
    let w = Workdir::new();
    w.train_k8s_rollback(&["tell=done", "record=done", "metrics=done"])
        .assert_code(0);
    let report = w.output(w.cmd().args([
        "report",
        &run_id(&w.events()),
        "--journal-dir",
        "runs",
        "--format",
        "md",
    ]));
    report.assert_code(0);
    let md = &report.stdout;
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
    let w = Workdir::with_runbook(&format!(
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
    ));
    let (r, ev) = run(&w, &[]);
    r.assert_code(1);
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(msg.contains("capture `phase`"), "{msg}");
    assert!(
        msg.contains("the server answered HTTP 401 Unauthorized"),
        "{msg}"
    );
    assert!(msg.contains("token expired"), "{msg}");
    r.assert_says(&["HTTP 401 Unauthorized"]);
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
    let w = Workdir::with_runbook(GUARDED);
    w.write(
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
    // A run, and the id of the newest run under `runs` (the one it started).
    let go = |file: &str, args: &[&str]| {
        let r = w.run(file, args);
        let runs = std::fs::read_dir(w.path().join("runs")).unwrap();
        let newest = runs
            .map(|e| e.unwrap().path())
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        let id = newest.file_name().unwrap().to_str().unwrap().to_string();
        (r, id)
    };

    // A verification fails: the step, the value read, and the report.
    let (r, id) = go("check.yaml", &[]);
    r.assert_code(1).assert_says(&[
        &format!("run {id} failed at `health`"),
        "result.status=503",
        &format!("report: runbook report {id} --journal-dir runs"),
    ]);

    // A gate without an answer: the resume command with the answer to pass.
    let (r, id) = go("rb.yaml", &[]);
    r.assert_code(4).assert_says(&[
        "`approve`",
        &format!("runbook resume {id} --journal-dir runs --answer approve=yes"),
    ]);

    // `no`: the resume command.
    let (r, no_id) = go("rb.yaml", &["--answer", "approve=no"]);
    r.assert_code(3).assert_says(&[
        "the operator answered no at `approve`",
        &format!("to continue: runbook resume {no_id} --journal-dir runs"),
    ]);

    // `abort`: undone, not resumable; a new run is the next command.
    let (r, id) = go("rb.yaml", &["--answer", "approve=abort"]);
    r.assert_code(3).assert_says(&[
        "`approve`",
        "cannot be resumed. To start again: runbook run rb.yaml",
    ]);
    // ... and its resume is refused, pointing to its report.
    w.resume(&id, &["--non-interactive"])
        .assert_code(2)
        .assert_says(&[&format!(
            "its report: runbook report {id} --journal-dir runs"
        )]);

    // A resume of a run that already succeeded: its report.
    w.resume(&no_id, &["--non-interactive", "--answer", "approve=yes"])
        .assert_code(0);
    w.resume(&no_id, &[]).assert_code(2).assert_says(&[
        "already succeeded",
        &format!("runbook report {no_id} --journal-dir runs"),
    ]);
}
