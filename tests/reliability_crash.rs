//! Crash consistency. Two runs — ten steps covering every kind of boundary, and a run that
//! fails a `continue_on_failure` step after its side effect, rolls back a non-idempotent step
//! and runs `on_failure` — are stopped at every event boundary (one run per boundary, paused
//! there by the engine's `RUNBOOK_TEST_PAUSE_AFTER` hook) by SIGKILL, SIGTERM or SIGINT, then
//! resumed until they end, an "operator" answering each resume question by looking at the
//! world. Every time: the journal parses line by line with strictly increasing sequence
//! numbers, a signal ends the run as `aborted` (130) with its end journaled, the final outcome
//! and step and undo outcomes equal those of an uninterrupted run, and every side effect
//! happened exactly once (a re-run only ever follows an answer).

use crate::common;

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

/// A run that fails a `continue_on_failure` step after its side effect (a page that cannot
/// be unsent), goes on, then fails: it rolls back a non-idempotent step and runs two
/// `on_failure` steps. Every action appends a line to `log`.
const FAILING: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: failing, title: "Fails, rolls back, runs on_failure" }
steps:
  - id: change
    shell: { argv: ["sh", "-c", "echo change >> log"] }
    undo: { shell: { argv: ["sh", "-c", "echo revert >> log"] } }
  - id: page
    shell: { argv: ["sh", "-c", "echo page >> log; exit 1"] }
    continue_on_failure: true
    no_undo: a page cannot be unsent
  - id: after
    shell: { argv: ["sh", "-c", "echo after >> log"] }
    no_undo: test
on_failure:
  - id: notify
    shell: { argv: ["sh", "-c", "echo notify >> log"] }
    no_undo: test
  - id: ticket
    shell: { argv: ["sh", "-c", "echo ticket >> log"] }
    no_undo: test
"#;

/// Each effect of `FAILING` exactly once, in order.
const FAILING_LOG: &str = "change\npage\nafter\nrevert\nnotify\nticket\n";

/// A scenario: the runbook, the answers every run gets, and for each step (or undo) with a
/// side effect the line it appends and what an operator answers at a resume gate on seeing
/// that line: `skip` (it completed) or `failed` (it ran and failed).
struct Scenario {
    rb: &'static str,
    answers: &'static [&'static str],
    effects: &'static [(&'static str, &'static str, &'static str)],
    log: &'static str,
    exit_code: i64,
    steps: usize,
}

const TEN: Scenario = Scenario {
    rb: RB,
    answers: &["gate=yes"],
    effects: &[
        ("append-a", "a", "skip"),
        ("append-b", "b7", "skip"),
        ("never", "never", "skip"),
    ],
    log: LOG,
    exit_code: 0,
    steps: 10,
};

const FAILS: Scenario = Scenario {
    rb: FAILING,
    answers: &[],
    effects: &[
        ("change", "change", "skip"),
        ("page", "page", "failed"),
        ("after", "after", "skip"),
        ("change.undo", "revert", "skip"),
        ("notify", "notify", "skip"),
        ("ticket", "ticket", "skip"),
    ],
    log: FAILING_LOG,
    exit_code: 1,
    // Five steps and the undo.
    steps: 6,
};

fn start(sc: &Scenario, dir: &Path, args: &[&str], pause_after: Option<u64>) -> Child {
    let mut c = runbook(dir);
    c.args(args)
        .args(["--non-interactive", "--journal-dir", "runs"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for a in sc.answers {
        c.args(["--answer", a]);
    }
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

/// Waits until the run paused after event `seq`, sends it `signal` (SIGINT or SIGTERM),
/// waits until it took the signal, lets it go on, and returns its exit code.
fn signal_at(dir: &Path, mut child: Child, seq: u64, signal: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let marker = loop {
        if let Some(m) = paused_marker(dir, seq) {
            break m;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before event {seq}"
        );
        assert!(Instant::now() < deadline, "never paused after event {seq}");
        std::thread::sleep(Duration::from_millis(2));
    };
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    // The engine says so on stderr when it takes the signal.
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("interrupting") {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(n > 0, "the run never took the signal");
        seen.extend_from_slice(&buf[..n]);
    }
    std::fs::remove_file(marker).unwrap();
    std::io::copy(&mut stderr, &mut std::io::sink()).unwrap();
    child.wait().unwrap().code().unwrap()
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

/// A journal whose process ended (not killed) ends with its last event: the newlines the
/// journal writes ahead of its lines are cut off (a SIGKILL leaves them; readers skip them).
fn assert_ends_clean(dir: &Path, at: &str) {
    let path = journal_path(&dir.join("runs"));
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.ends_with(b"}\n"),
        "{at}: {} ends with {:?}",
        path.display(),
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(40)..])
    );
}

/// Did the run end for good (not just stop at a gate)?
fn ended(ev: &[Value]) -> bool {
    of_kind(ev, "run_finished")
        .last()
        .is_some_and(|e| e["outcome"] == "succeeded" || e["outcome"] == "failed")
}

/// Resumes until the run ends, answering the questions the way an operator would: a process
/// group still running is waited for; a step that may have run is judged by looking at the
/// world (`log`): not there, run it again; there, it completed (or ran and failed).
fn resume_to_end(sc: &Scenario, dir: &Path, pause_after: Option<u64>) -> Option<u64> {
    let ev = strict_events(dir);
    if ended(&ev) {
        return None;
    }
    let id = run_id(&ev);
    let mut answers: Vec<String> = vec![];
    for _ in 0..10 {
        let mut args = vec!["resume".to_string(), id.clone()];
        for a in &answers {
            args.extend(["--answer".to_string(), a.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = start(sc, dir, &args, pause_after);
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
                if step.ends_with(".process") {
                    answers.push(format!("{step}=wait"));
                    continue;
                }
                let (_, effect, if_ran) = sc
                    .effects
                    .iter()
                    .find(|(s, _, _)| *s == step)
                    .unwrap_or_else(|| {
                        panic!("resume asked about `{step}`, which is safe to re-run: {err}")
                    });
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                let ran = log.lines().any(|l| l == *effect);
                answers.push(format!("{step}={}", if ran { if_ran } else { "yes" }));
            }
            Some(0 | 1) => return None,
            other => panic!("resume exited {other:?}: {err}"),
        }
    }
    panic!("the run did not end after ten resumes");
}

/// The end state of a run as its journal tells it.
#[derive(Debug, PartialEq)]
struct EndState {
    outcome: String,
    exit_code: i64,
    /// Step (and `<step>.undo`) -> outcome.
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
    // Steps the operator confirmed on resume as completed: their captures were never seen.
    let mut confirmed = vec![];
    for e in &ev {
        match e["event"].as_str().unwrap() {
            "step_finished" => {
                let step = e["step"].as_str().unwrap().to_string();
                if e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("operator confirmed on resume"))
                {
                    confirmed.push(step.clone());
                }
                steps.insert(step, e["outcome"].as_str().unwrap().to_string());
            }
            "step_skipped" => {
                steps.insert(e["step"].as_str().unwrap().to_string(), "skipped".into());
            }
            "undo_finished" => {
                steps.insert(
                    format!("{}.undo", e["step"].as_str().unwrap()),
                    if e["ok"] == true {
                        "undone"
                    } else {
                        "undo-failed"
                    }
                    .into(),
                );
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
    captures.retain(|k, _| !confirmed.iter().any(|s| k.starts_with(&format!("{s}."))));
    EndState {
        outcome: last["outcome"].as_str().unwrap().to_string(),
        exit_code: last["exit_code"].as_i64().unwrap(),
        steps,
        captures,
        log: std::fs::read_to_string(dir.join("log")).unwrap_or_default(),
    }
}

/// The same end as the uninterrupted run's; a step the operator confirmed on resume may lack
/// the captures that were never journaled.
fn assert_same_end(got: &EndState, want: &EndState, at: &str) {
    assert_eq!(got.outcome, want.outcome, "{at}: {got:?}");
    assert_eq!(got.exit_code, want.exit_code, "{at}: {got:?}");
    assert_eq!(got.steps, want.steps, "{at}");
    // Every side effect exactly once: nothing ran twice, nothing was lost.
    assert_eq!(got.log, want.log, "{at}");
    for (k, v) in &got.captures {
        assert_eq!(want.captures.get(k), Some(v), "{at}: capture {k}");
    }
}

fn reference(sc: &Scenario) -> (EndState, u64) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", sc.rb);
    let out = start(sc, dir.path(), &["run", "rb.yaml"], None)
        .wait_with_output()
        .unwrap();
    assert_eq!(
        out.status.code().map(i64::from),
        Some(sc.exit_code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = strict_events(dir.path()).len() as u64;
    assert_ends_clean(dir.path(), "the uninterrupted run");
    let s = end_state(dir.path());
    assert_eq!(s.log, sc.log);
    assert_eq!(s.steps.len(), sc.steps, "{s:?}");
    (s, n)
}

/// Stops a run of the scenario at every event boundary with `signal`, resumes it to its end,
/// and compares with the uninterrupted run.
fn every_boundary(sc: &Scenario, signal: i32) {
    let (want, n) = reference(sc);
    assert!(n > 25, "only {n} events");
    for k in 1..=n {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", sc.rb);
        let child = start(sc, dir.path(), &["run", "rb.yaml"], Some(k));
        if signal == libc::SIGKILL {
            assert!(
                kill_at(dir.path(), child, k).is_none(),
                "run ended before event {k}"
            );
            // A successful attempt and its captures are written together: a boundary inside
            // that write is the boundary after it.
            assert!(strict_events(dir.path()).len() as u64 >= k);
        } else {
            let code = signal_at(dir.path(), child, k, signal);
            assert_ends_clean(dir.path(), &format!("signal {signal} after event {k}"));
            let ev = strict_events(dir.path());
            let last = ev.last().unwrap();
            // The run journaled its end: aborted (130), resumable — or it was already done.
            assert_eq!(
                last["event"], "run_finished",
                "signal {signal} after event {k}"
            );
            if code == 130 {
                assert_eq!(last["outcome"], "aborted", "after event {k}");
                assert_eq!(last["exit_code"], 130, "after event {k}");
            } else {
                assert_eq!(
                    i64::from(code),
                    sc.exit_code,
                    "signal {signal} after event {k}"
                );
            }
        }
        let resumed = !ended(&strict_events(dir.path()));
        resume_to_end(sc, dir.path(), None);
        if resumed {
            assert_ends_clean(
                dir.path(),
                &format!("resumed after signal {signal}, event {k}"),
            );
        }
        assert_same_end(
            &end_state(dir.path()),
            &want,
            &format!("signal {signal} after event {k}"),
        );
    }
}

#[test]
fn sigkill_at_every_event_boundary_then_resume_ends_like_an_uninterrupted_run() {
    every_boundary(&TEN, libc::SIGKILL);
}

#[test]
fn a_failing_run_killed_at_every_boundary_never_repeats_a_side_effect_on_resume() {
    every_boundary(&FAILS, libc::SIGKILL);
}

#[test]
fn a_failing_run_interrupted_by_sigterm_at_every_boundary_ends_aborted_and_resumes() {
    every_boundary(&FAILS, libc::SIGTERM);
}

#[test]
fn a_failing_run_interrupted_by_sigint_at_every_boundary_ends_aborted_and_resumes() {
    every_boundary(&FAILS, libc::SIGINT);
}

#[test]
fn a_second_sigkill_during_the_resume_is_survived_too() {
    for sc in [&TEN, &FAILS] {
        let (want, n) = reference(sc);
        // Kill the first run at every third boundary, and its resume two events after it starts.
        for k in (1..n).step_by(3) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "rb.yaml", sc.rb);
            let child = start(sc, dir.path(), &["run", "rb.yaml"], Some(k));
            assert!(
                kill_at(dir.path(), child, k).is_none(),
                "run ended before event {k}"
            );
            if ended(&strict_events(dir.path())) {
                continue;
            }
            // run_resumed is event k + 1; stop after the one that follows it.
            let again = resume_to_end(sc, dir.path(), Some(k + 2));
            if again.is_some() {
                resume_to_end(sc, dir.path(), None);
            }
            assert_same_end(
                &end_state(dir.path()),
                &want,
                &format!("killed after event {k}, then after event {}", k + 2),
            );
        }
    }
}
