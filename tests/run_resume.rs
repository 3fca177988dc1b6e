//! SIGKILL in the middle of a step, then `resume`: the journal survives, finished steps are
//! not run again, and a non-idempotent step in flight is not re-run without an answer.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const RB: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: crashy, title: Crash in the middle }
steps:
  - id: first
    shell: { script: "echo first >> log" }
    no_undo: test
  - id: second
    shell: { script: "echo second >> log; touch second-started; sleep 30" }
    no_undo: test
  - id: third
    shell: { script: "echo third >> log" }
    no_undo: test
"#;

fn kill_during_second(dir: &std::path::Path) -> String {
    let mut child = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("second-started").exists() {
        assert!(Instant::now() < deadline, "second step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The orphaned `sleep 30` of the killed run is not ours to wait for.
    let ev = events(&journal_path(&dir.join("runs")));
    assert!(of_kind(&ev, "run_finished").is_empty());
    run_id(&ev)
}

#[test]
fn resume_after_sigkill_does_not_rerun_a_non_idempotent_step_without_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", RB);
    let id = kill_during_second(dir.path());

    // Its process group (`sleep 30`) outlived the kill: it is dealt with first.
    let out = runbook(dir.path())
        .args(["resume", &id, "--non-interactive", "--journal-dir", "runs"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--answer second.process="), "{err}");

    // Without an answer for the step: stops at the resume gate (exit 4), runs nothing.
    let out = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "second.process=kill",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--answer second="), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "first\nsecond\n"
    );

    // The operator says it completed: skip it and finish.
    let out = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--answer",
            "second=skip",
            "--answer",
            "second.process=kill",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "first\nsecond\nthird\n"
    );
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "run_resumed").len(), 3);
    assert_eq!(
        of_kind(&ev, "run_finished").last().unwrap()["outcome"],
        "succeeded"
    );
    // Sequence numbers continue across resumes.
    let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // A finished run is not resumable.
    let out = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn idempotent_step_in_flight_is_rerun_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &RB.replace(
            "  - id: second\n",
            "  - id: second\n    safety: idempotent\n",
        ),
    );
    let id = kill_during_second(dir.path());
    std::fs::remove_file(dir.path().join("second-started")).unwrap();
    let mut child = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "second.process=kill",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It kills the orphan, then runs `second` again (sleep 30): wait for it to start, then interrupt with SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("second-started").exists() {
        assert!(Instant::now() < deadline, "second step was not re-run");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending SIGTERM to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "run_finished");
    assert_eq!(fin.last().unwrap()["outcome"], "aborted");
    assert_eq!(fin.last().unwrap()["exit_code"], 130);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "first\nsecond\nsecond\n"
    );
}

#[test]
fn resume_refuses_a_changed_runbook_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", RB);
    let id = kill_during_second(dir.path());
    write(dir.path(), "rb.yaml", &format!("{RB}\n# edited\n"));
    let out = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--answer",
            "second=skip",
            "--answer",
            "second.process=kill",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("changed since run"), "{err}");
    // Item 7 (issue 12): the message gives the command that resumes anyway.
    assert!(
        err.contains(&format!(
            "To resume anyway (it is journaled): runbook resume {id} --journal-dir runs --force"
        )),
        "{err}"
    );
    let out = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--force",
            "--answer",
            "second=skip",
            "--answer",
            "second.process=kill",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "run_resumed")[0]["forced"], true);
}
