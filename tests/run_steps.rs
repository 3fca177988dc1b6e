//! Step kinds and lifecycle details: guards, inputs, assert, wait, call, continue_on_failure,
//! rollback_strategy: always, and captures flowing between steps.

use crate::common;

use common::*;
use serde_json::json;

#[test]
fn guards_inputs_asserts_waits_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "child.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: child, title: Child }
inputs:
  who: { type: string }
  times: { type: integer, default: 1 }
steps:
  - id: greet
    safety: read-only
    shell: { argv: ["printf", "%s x%s", "{{ inputs.who }}", "{{ inputs.times }}"] }
    capture: { said: "result.stdout" }
"#,
    );
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: parent, title: Parent }
inputs:
  mode: { type: string, enum: [fast, slow], default: fast }
steps:
  - id: slow-only
    title: Let the slow path settle
    when: "inputs.mode == 'slow'"
    wait: 10m
  - id: count
    input: { prompt: "How many?", type: integer, minimum: 1 }
  - id: pause
    wait: 50ms
  - id: sub
    call: { runbook: child.yaml, inputs: { who: "ops", times: "{{ steps.count.value }}" } }
  - id: check
    assert:
      - that: "steps.count.value == 3"
      - that: "steps.sub.greet.said == 'ops x3'"
        message: the called runbook's capture is visible to the caller
"#,
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--answer",
            "count=3",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let skipped = of_kind(&ev, "step_skipped");
    assert_eq!(skipped[0]["step"], "slow-only");
    // A skipped step keeps its title, in the journal and in the summary table.
    assert_eq!(skipped[0]["title"], "Let the slow path settle");
    assert!(
        err.lines().any(|l| l.starts_with("slow-only")
            && l.contains("skipped")
            && l.ends_with("Let the slow path settle")),
        "{err}"
    );
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("inputs.mode = \"fast\""),
        "{:?}",
        skipped[0]
    );
    let finished: Vec<_> = of_kind(&ev, "step_finished")
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_string(),
                e["outcome"].clone(),
            )
        })
        .collect();
    assert!(
        finished.contains(&("sub/greet".to_string(), json!("succeeded"))),
        "{finished:?}"
    );
    assert!(
        finished.contains(&("check".to_string(), json!("succeeded"))),
        "{finished:?}"
    );
    let gates = of_kind(&ev, "gate_answered");
    assert_eq!(gates[0]["answer"], "3");

    // A bad typed answer is refused before anything runs.
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--answer",
            "count=zero",
            "--journal-dir",
            "runs2",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("must be an integer"), "{err}");
    assert!(!dir.path().join("runs2").exists());
    // An answer for a step that does not exist is refused with a suggestion.
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--answer",
            "cuont=3",
            "--journal-dir",
            "runs3",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean `count`"), "{err}");
}

#[test]
fn continue_on_failure_and_rollback_always() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: rehearse, title: Rehearsal }
rollback_strategy: always
steps:
  - id: change
    shell: { script: "echo change >> log" }
    undo: { shell: { script: "echo revert >> log" } }
  - id: optional
    shell: { argv: ["false"] }
    continue_on_failure: true
    no_undo: test
  - id: after
    shell: { script: "echo after >> log" }
    no_undo: test
"#,
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    // The step marked continue_on_failure failed: the run goes on, then still fails.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "change\nafter\nrevert\n"
    );

    // With nothing failing, `always` still undoes (a rehearsal leaves no trace).
    let rb = std::fs::read_to_string(dir.path().join("rb.yaml"))
        .unwrap()
        .replace("argv: [\"false\"]", "argv: [\"true\"]");
    write(dir.path(), "rb.yaml", &rb);
    std::fs::remove_file(dir.path().join("log")).unwrap();
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "change\nafter\nrevert\n"
    );
}

#[test]
fn precondition_false_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: pre, title: Pre }
inputs:
  replicas: { type: integer, default: 0 }
preconditions:
  - that: "inputs.replicas > 0"
    message: refusing to act on a Deployment scaled to zero
steps:
  - id: act
    shell: { argv: ["touch", "acted"] }
    no_undo: test
"#,
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to act on a Deployment scaled to zero"),
        "{err}"
    );
    assert!(!dir.path().join("acted").exists());
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(
        of_kind(&ev, "precondition")[0]["observed"]["inputs.replicas"],
        0
    );
    // A bad input value is a usage error (exit 2), before a journal exists.
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs2",
            "--input",
            "replicas=many",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("runs2").exists());
}

#[test]
fn a_wait_can_come_from_an_input() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: settle, title: Settle }
inputs:
  settle: { type: string, default: 40ms, description: how long the pods need after a change }
steps:
  - id: settle
    wait: "{{ inputs.settle }}"
"#,
    );
    let run = |settle: &str, journal: &str| {
        runbook(dir.path())
            .args([
                "run",
                "rb.yaml",
                "--non-interactive",
                "--journal-dir",
                journal,
                "--input",
                &format!("settle={settle}"),
            ])
            .output()
            .unwrap()
    };
    // The plan shows the template; the run waits for the rendered duration.
    let plan = runbook(dir.path())
        .args(["plan", "rb.yaml"])
        .output()
        .unwrap();
    let (plan_out, _) = text(&plan);
    assert!(plan_out.contains("wait 40ms"), "{plan_out}");
    let out = run("40ms", "ok");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ev = events(&journal_path(&dir.path().join("ok")));
    let fin = of_kind(&ev, "attempt_finished");
    assert!(
        fin[0]["result"]["waited_ms"].as_u64() == Some(40),
        "{fin:?}"
    );
    // A value that is not a duration fails the step (not the process) and says why.
    let out = run("soon", "bad");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`wait` rendered to something that is not a duration"),
        "{err}"
    );
}

#[test]
fn a_poll_budget_and_interval_can_come_from_inputs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: poll, title: Poll }
inputs:
  budget: { type: string, default: 10m, description: how long to wait }
  every: { type: string, default: 1m, description: how often to look }
steps:
  - id: never
    shell: { argv: ["true"] }
    verify:
      - that: "result.exit_code == 1"
        message: "the command exits 1 (it exited {{ result.exit_code }})"
    until: { timeout: "{{ inputs.budget }}", interval: "{{ inputs.every }}" }
"#,
    );
    let run = |budget: &str, every: &str, journal: &str| {
        runbook(dir.path())
            .args([
                "run",
                "rb.yaml",
                "--non-interactive",
                "--journal-dir",
                journal,
                "--input",
                &format!("budget={budget}"),
                "--input",
                &format!("every={every}"),
            ])
            .output()
            .unwrap()
    };
    let plan = runbook(dir.path())
        .args(["plan", "rb.yaml"])
        .output()
        .unwrap();
    let (plan_out, plan_err) = text(&plan);
    assert!(
        plan_out.contains("every {{ inputs.every }} for up to {{ inputs.budget }}"),
        "{plan_out}{plan_err}"
    );
    // With the defaults this would poll for 10 minutes; the inputs make it a few polls.
    let out = run("250ms", "100ms", "short");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("still failing after 250ms of polling"),
        "{err}"
    );
    // Each poll line says why, with the values read.
    assert!(
        err.contains("poll 1: not yet: the command exits 1 (it exited 0) (result.exit_code=0)"),
        "{err}"
    );
    // A value that is not a duration fails the step and names the field.
    let out = run("soon", "100ms", "bad");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`until.timeout` rendered to something that is not a duration"),
        "{err}"
    );
    let out = run("1s", "0s", "zero");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`until.interval` rendered to `0s`"), "{err}");
}

#[test]
fn a_step_timeout_can_come_from_an_input() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: slow, title: Slow }
inputs:
  limit: { type: string, default: 5m, description: how long the command may take }
steps:
  - id: slow
    shell: { argv: [sleep, "30"] }
    timeout: "{{ inputs.limit }}"
"#,
    );
    let plan = runbook(dir.path())
        .args(["plan", "rb.yaml"])
        .output()
        .unwrap();
    let (plan_out, _) = text(&plan);
    assert!(
        plan_out.contains("timeout {{ inputs.limit }}"),
        "{plan_out}"
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "j",
            "--input",
            "limit=300ms",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The budget is the input's, not the default's (the run would otherwise take 30 s).
    assert!(err.contains("`sleep` timed out after 3"), "{err}");
    assert!(err.contains("ms; its process group was killed"), "{err}");
}
