//! Crash consistency: a 10-step run is SIGKILLed at every event boundary (one run per
//! boundary, stopped there by the engine's `RUNBOOK_TEST_PAUSE_AFTER` hook), then resumed until
//! it ends. Every time: the journal parses line by line, the final outcome, step outcomes and
//! captures equal those of an uninterrupted run, and no non-idempotent step ran twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Ten steps covering every kind of boundary: captures, a non-idempotent step with an undo,
/// an idempotent one, a confirmation, a wait, retries, an assertion, a guard, a non-idempotent
/// step that reads an earlier capture, and polling.
const RB: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: ten, title: Ten steps }
inputs:
  who: { type: string, default: ops }
steps:
  - id: probe
    safety: read-only
    shell: { script: 'echo probe >> effects; echo "{\"v\": 7}"' }
    capture: { v: "result.json.v" }
  - id: append-a
    shell: { argv: ["sh", "-c", "echo a >> log"] }
    undo: { shell: { argv: ["sh", "-c", "echo undo-a >> log"] } }
  - id: mark
    safety: idempotent
    shell: { script: "echo mark >> effects; touch marked" }
    no_undo: idempotent marker
  - id: gate
    confirm: { prompt: "Go on?" }
  - id: pause
    wait: 10ms
  - id: flaky
    safety: idempotent
    shell: { script: 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; echo flaky >> effects; [ "$n" -ge 1 ]' }
    retry: { attempts: 3, delay: 10ms }
    no_undo: idempotent counter
  - id: check
    assert:
      - that: "steps.probe.v == 7"
  - id: never
    when: "inputs.who == 'nobody'"
    shell: { argv: ["sh", "-c", "echo never >> log"] }
    no_undo: never runs
  - id: append-b
    shell: { argv: ["sh", "-c", "echo \"$1\" >> log; echo '{\"n\": 2}'", "x", "b{{ steps.probe.v }}"] }
    capture: { num: "result.json.n" }
    no_undo: test
  - id: final
    safety: read-only
    shell: { script: "echo final >> effects; cat marked && echo ok" }
    verify: [ { that: "result.exit_code == 0" } ]
    until: { timeout: 5s, interval: 10ms }
"#;

/// What the non-idempotent steps leave in `log` when each ran exactly once.
const LOG: &str = "a\nb7\n";

/// The line each non-idempotent step appends: how the "operator" tells whether it ran.
fn effect_of(step: &str) -> Option<&'static str> {
    match step {
        "append-a" => Some("a"),
        "append-b" => Some("b7"),
        "never" => Some("never"),
        _ => None,
    }
}

fn start(dir: &Path, args: &[&str], pause_after: Option<u64>) -> Child {
    let mut c = runbook(dir);
    c.args(args)
        .args([
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "gate=yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match pause_after {
        Some(seq) => c.env("RUNBOOK_TEST_PAUSE_AFTER", seq.to_string()),
        None => c.env_remove("RUNBOOK_TEST_PAUSE_AFTER"),
    };
    c.spawn().unwrap()
}

/// Waits until the run paused after event `seq`, then SIGKILLs it. Gives the child back
/// if it ended first.
fn kill_at(dir: &Path, mut child: Child, seq: u64) -> Option<Child> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if paused_marker(dir, seq).is_some() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return None;
        }
        if child.try_wait().unwrap().is_some() {
            return Some(child);
        }
        assert!(Instant::now() < deadline, "never paused after event {seq}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn paused_marker(dir: &Path, seq: u64) -> Option<PathBuf> {
    let runs = std::fs::read_dir(dir.join("runs")).ok()?;
    runs.flatten()
        .map(|r| r.path().join(format!("paused-{seq}")))
        .find(|p| p.exists())
}

/// Every line of the journal is a whole JSON event, and sequence numbers have no gap.
fn strict_events(dir: &Path) -> Vec<Value> {
    let path = journal_path(&dir.join("runs"));
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "torn last line in {}",
        path.display()
    );
    let ev = events(&path);
    let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1),
        "sequence numbers {seqs:?}"
    );
    ev
}

/// Did the run end for good (not just stop at a gate)?
fn ended(ev: &[Value]) -> bool {
    of_kind(ev, "run_finished")
        .last()
        .is_some_and(|e| e["outcome"] == "succeeded" || e["outcome"] == "failed")
}

/// Resumes until the run ends, answering resume gates the way an operator would: by looking
/// at the world (`log`) to see whether the interrupted step already took effect.
fn resume_to_end(dir: &Path, pause_after: Option<u64>) -> Option<u64> {
    let ev = strict_events(dir);
    if ended(&ev) {
        return None;
    }
    let id = run_id(&ev);
    let mut answers: Vec<String> = vec![];
    for _ in 0..5 {
        let mut args = vec!["resume".to_string(), id.clone()];
        for a in &answers {
            args.extend(["--answer".to_string(), a.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = start(dir, &args, pause_after);
        if let Some(seq) = pause_after {
            match kill_at(dir, child, seq) {
                None => return Some(seq),
                Some(c) => child = c,
            }
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(4) => {
                let step = err
                    .split("--answer ")
                    .nth(1)
                    .and_then(|s| s.split('=').next())
                    .unwrap_or_else(|| panic!("exit 4 without a hint: {err}"))
                    .to_string();
                let effect = effect_of(&step).unwrap_or_else(|| {
                    panic!("resume asked about `{step}`, which is safe to re-run: {err}")
                });
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                let ran = log.lines().any(|l| l == effect);
                answers.push(format!("{step}={}", if ran { "skip" } else { "yes" }));
            }
            _ => return None,
        }
    }
    panic!("the run did not end after five resumes");
}

/// The end state of a run as its journal tells it.
#[derive(Debug, PartialEq)]
struct EndState {
    outcome: String,
    exit_code: i64,
    steps: BTreeMap<String, String>,
    captures: BTreeMap<String, Value>,
    log: String,
}

fn end_state(dir: &Path) -> EndState {
    let ev = strict_events(dir);
    let fin = of_kind(&ev, "run_finished");
    let last = fin.last().expect("the run finished");
    let mut steps = BTreeMap::new();
    let mut captures = BTreeMap::new();
    for e in &ev {
        match e["event"].as_str().unwrap() {
            "step_finished" => {
                steps.insert(
                    e["step"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                );
            }
            "step_skipped" => {
                steps.insert(e["step"].as_str().unwrap().to_string(), "skipped".into());
            }
            "capture" => {
                captures.insert(
                    format!(
                        "{}.{}",
                        e["step"].as_str().unwrap(),
                        e["name"].as_str().unwrap()
                    ),
                    e["value"].clone(),
                );
            }
            _ => {}
        }
    }
    EndState {
        outcome: last["outcome"].as_str().unwrap().to_string(),
        exit_code: last["exit_code"].as_i64().unwrap(),
        steps,
        captures,
        log: std::fs::read_to_string(dir.join("log")).unwrap_or_default(),
    }
}

fn reference() -> (EndState, u64) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", RB);
    let out = start(dir.path(), &["run", "rb.yaml"], None)
        .wait_with_output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = strict_events(dir.path()).len() as u64;
    let s = end_state(dir.path());
    assert_eq!(s.log, LOG);
    assert_eq!(s.steps.len(), 10, "{s:?}");
    (s, n)
}

#[test]
fn sigkill_at_every_event_boundary_then_resume_ends_like_an_uninterrupted_run() {
    let (want, n) = reference();
    assert!(n > 30, "only {n} events");
    for k in 1..=n {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", RB);
        let child = start(dir.path(), &["run", "rb.yaml"], Some(k));
        assert!(
            kill_at(dir.path(), child, k).is_none(),
            "run ended before event {k}"
        );
        // A successful attempt and its captures are written together: a boundary inside that
        // write is the boundary after it.
        assert!(strict_events(dir.path()).len() as u64 >= k);
        resume_to_end(dir.path(), None);
        let got = end_state(dir.path());
        assert_eq!(got, want, "killed after event {k}");
    }
}

#[test]
fn a_second_sigkill_during_the_resume_is_survived_too() {
    let (want, n) = reference();
    // Kill the first run at every third boundary, and its resume two events after it starts.
    for k in (1..n).step_by(3) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", RB);
        let child = start(dir.path(), &["run", "rb.yaml"], Some(k));
        assert!(
            kill_at(dir.path(), child, k).is_none(),
            "run ended before event {k}"
        );
        if ended(&strict_events(dir.path())) {
            continue;
        }
        // run_resumed is event k + 1; stop after the one that follows it.
        let again = resume_to_end(dir.path(), Some(k + 2));
        if again.is_some() {
            resume_to_end(dir.path(), None);
        }
        let got = end_state(dir.path());
        assert_eq!(
            got,
            want,
            "killed after event {k}, then after event {}",
            k + 2
        );
    }
}
