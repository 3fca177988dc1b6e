//! Resume and rollback under attack (issue 11, items 1–6): a failed step, an `on_failure`
//! step and an undo are never run again by `resume` without an answer; a terminal undo asks
//! like any terminal step; one process resumes a run at a time; a signal during a rollback
//! ends the run resumable; a step's process group that outlived a SIGKILL is found; a forged
//! journal or a changed called runbook is refused. Every case drives the real binary.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Starts `runbook run rb.yaml` without answers.
fn spawn_run(dir: &Path, extra: &[&str]) -> Child {
    spawn_run_with(dir, extra, &[])
}

/// [`spawn_run`] with environment variables (a test hook).
fn spawn_run_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
    runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The marker is made by a step's process, which can run before the engine has journaled
    // its `process_started` (the pid is known only once the spawn returns): wait for that
    // event too, so a kill lands after the process group is on record.
    let runs = path.parent().unwrap().join("runs");
    while !current_process_journaled(&runs) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its process_started was journaled");
        }
        assert!(
            Instant::now() < deadline,
            "no process_started after {} appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Does the journal record a `process_started` after the latest other `*_started` event? Read
/// while the run writes it, so a torn last line is skipped.
fn current_process_journaled(runs: &Path) -> bool {
    let Some(file) = std::fs::read_dir(runs)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("journal.jsonl"))
    else {
        return false;
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["event"].as_str().map(str::to_string))
        .collect();
    let last_other = kinds
        .iter()
        .rposition(|k| k.ends_with("_started") && k != "process_started");
    let last_process = kinds.iter().rposition(|k| k == "process_started");
    matches!((last_other, last_process), (Some(o), Some(p)) if p > o)
}

/// Runs until `marker` exists, then sends `signal`; returns the exit code (None: killed).
fn stop_at(dir: &Path, marker: &str, signal: i32) -> Option<i32> {
    let mut child = spawn_run(dir, &[]);
    wait_for(&dir.join(marker), &mut child);
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    child.wait().unwrap().code()
}

fn resume(dir: &Path, id: &str, answers: &[&str]) -> (Option<i32>, String) {
    let mut c = runbook(dir);
    c.args(["resume", id, "--non-interactive", "--journal-dir", "runs"]);
    for a in answers {
        c.args(["--answer", a]);
    }
    let out = c.output().unwrap();
    (out.status.code(), text(&out).1)
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

fn journal(dir: &Path) -> Vec<Value> {
    events(&journal_path(&dir.join("runs")))
}

/// The pid of the process group leader a step started (from the journal).
fn pgid_of(ev: &[Value], step: &str) -> i32 {
    of_kind(ev, "process_started")
        .into_iter()
        .rev()
        .find(|e| e["step"] == step)
        .unwrap_or_else(|| panic!("no process_started for {step}"))["pgid"]
        .as_i64()
        .unwrap() as i32
}

/// Is a process of the group alive (zombies waiting for a reaper do not count)?
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X"
    })
}

// Item 1: a continue_on_failure step that had its effect and failed is not run again.
const PAGE: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: page, title: Page then wait }
steps:
  - id: page
    shell: { script: "echo page >> log; exit 1" }
    continue_on_failure: true
    no_undo: a page cannot be unsent
  - id: wait-here
    shell: { script: "[ -e quick ] && exit 0; touch waiting; exec sleep 30" }
    safety: idempotent
    no_undo: test
"#;

#[test]
fn resume_never_runs_a_failed_continue_on_failure_step_again() {
    for signal in [libc::SIGKILL, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", PAGE);
        stop_at(dir.path(), "waiting", signal);
        let id = run_id(&journal(dir.path()));
        std::fs::write(dir.path().join("quick"), b"").unwrap();
        let (code, err) = resume(dir.path(), &id, &["wait-here.process=kill"]);
        // `wait-here` is idempotent and runs again; `page` failed and stays failed.
        assert_eq!(code, Some(1), "signal {signal}: {err}");
        assert_eq!(
            log(dir.path()),
            "page\n",
            "signal {signal}: the page was sent twice"
        );
        let ev = journal(dir.path());
        let fin = of_kind(&ev, "run_finished");
        assert_eq!(fin.last().unwrap()["outcome"], "failed");
        assert_eq!(fin.last().unwrap()["failed_step"], "page");
    }
}

// Item 1: SIGKILL during an on_failure step, and during a rollback's undo.
const ROLLBACK: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: rollback, title: "Change, fail, roll back, notify" }
steps:
  - id: change
    shell: { script: "echo change >> log" }
    undo: { shell: { script: "echo revert >> log; touch reverting; sleep 30" } }
  - id: broken
    shell: { script: "echo broken >> log; exit 1" }
    no_undo: test
on_failure:
  - id: notify
    shell: { script: "echo notify >> log; touch notifying; sleep 30" }
    no_undo: test
"#;

#[test]
fn sigkill_during_an_undo_then_resume_finishes_the_rollback_without_repeating_anything() {
    let dir = tempfile::tempdir().unwrap();
    // The on_failure step does not sleep here: only the undo is interrupted.
    write(
        dir.path(),
        "rb.yaml",
        &ROLLBACK.replace("touch notifying; sleep 30", "true"),
    );
    assert_eq!(stop_at(dir.path(), "reverting", libc::SIGKILL), None);
    let ev = journal(dir.path());
    let id = run_id(&ev);
    let pgid = pgid_of(&ev, "change.undo");
    assert!(group_alive(pgid));

    // The undo's process group outlived the kill: resume says so and asks first.
    let (code, err) = resume(dir.path(), &id, &[]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--answer change.undo.process="), "{err}");
    assert!(err.contains("still running"), "{err}");
    // Killed on request; then the undo itself (non-idempotent, it reached its backend) needs
    // an answer: nothing is run again without one.
    let (code, err) = resume(dir.path(), &id, &["change.undo.process=kill"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(!group_alive(pgid), "the orphaned undo was not killed");
    assert!(err.contains("--answer change.undo="), "{err}");
    assert_eq!(log(dir.path()), "change\nbroken\nrevert\n");
    // The operator saw the revert: it completed. The rollback goes on from there.
    let (code, err) = resume(dir.path(), &id, &["change.undo=skip"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(log(dir.path()), "change\nbroken\nrevert\nnotify\n");
    let ev = journal(dir.path());
    let undone = of_kind(&ev, "undo_finished");
    assert_eq!(undone.len(), 1, "{undone:?}");
    assert_eq!(undone[0]["ok"], true);
}

#[test]
fn sigkill_during_on_failure_then_resume_asks_before_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &ROLLBACK.replace("touch reverting; sleep 30", "true"),
    );
    assert_eq!(stop_at(dir.path(), "notifying", libc::SIGKILL), None);
    let id = run_id(&journal(dir.path()));
    let (code, err) = resume(dir.path(), &id, &["notify.process=kill"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--answer notify="), "{err}");
    assert_eq!(log(dir.path()), "change\nbroken\nrevert\nnotify\n");
    let (code, err) = resume(dir.path(), &id, &["notify=skip"]);
    assert_eq!(code, Some(1), "{err}");
    // Neither the failed step, nor the undo, nor the handler ran again.
    assert_eq!(log(dir.path()), "change\nbroken\nrevert\nnotify\n");
}

// Item 4: SIGINT, SIGTERM or SIGHUP during an undo or an on_failure step: aborted (130),
// resumable, and the resume finishes the rollback.
#[test]
fn a_signal_during_an_undo_or_on_failure_ends_aborted_and_the_resume_finishes_it() {
    for (marker, signal) in [
        ("reverting", libc::SIGINT),
        ("reverting", libc::SIGTERM),
        ("reverting", libc::SIGHUP),
        ("notifying", libc::SIGTERM),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rb = if marker == "reverting" {
            ROLLBACK.replace("touch notifying; sleep 30", "true")
        } else {
            ROLLBACK.replace("touch reverting; sleep 30", "true")
        };
        write(dir.path(), "rb.yaml", &rb);
        let code = stop_at(dir.path(), marker, signal);
        assert_eq!(code, Some(130), "{marker} {signal}");
        let ev = journal(dir.path());
        let fin = of_kind(&ev, "run_finished");
        assert_eq!(
            fin.last().unwrap()["outcome"],
            "aborted",
            "{marker} {signal}"
        );
        assert_eq!(fin.last().unwrap()["exit_code"], 130);
        // The interrupted undo is not recorded as failed.
        assert!(of_kind(&ev, "undo_finished")
            .iter()
            .all(|e| e["ok"] == true));
        let id = run_id(&ev);
        let step = if marker == "reverting" {
            "change.undo"
        } else {
            "notify"
        };
        // It was interrupted after it reached its backend: the operator answers (it did
        // its part before the signal).
        let (code, err) = resume(dir.path(), &id, &[&format!("{step}=skip")]);
        assert_eq!(code, Some(1), "{marker} {signal}: {err}");
        let fin = of_kind(&journal(dir.path()), "run_finished")
            .last()
            .cloned()
            .cloned()
            .unwrap();
        assert_eq!(fin["outcome"], "failed");
    }
}

// Item 4: a second signal kills the step's process group, even children ignoring SIGTERM,
// and the journal still gets its end.
#[test]
fn a_second_signal_kills_the_process_group_and_the_run_records_its_end() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: stubborn, title: Stubborn }
steps:
  - id: stubborn
    shell: { script: "trap '' TERM; touch started; sleep 30 & wait; sleep 30" }
    no_undo: test
"#,
    );
    let mut child = spawn_run(dir.path(), &[]);
    wait_for(&dir.path().join("started"), &mut child);
    let pgid = pgid_of(&journal(dir.path()), "stubborn");
    let mut stderr = child.stderr.take().unwrap();
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("interrupting") {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !group_alive(pgid),
        "the step's children outlived the second Ctrl-C"
    );
    let ev = journal(dir.path());
    let fin = of_kind(&ev, "run_finished");
    assert_eq!(fin.last().expect("run_finished")["exit_code"], 130);
}

// Item 2: a terminal undo (and a terminal on_failure step) asks, like any terminal step.
const TERMINAL_UNDO: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: drop, title: Terminal undo }
steps:
  - id: create
    shell: { script: "echo create >> log" }
    undo:
      safety: terminal
      shell: { script: "echo drop >> log" }
  - id: broken
    shell: { script: "exit 1" }
    no_undo: test
"#;

#[test]
fn a_terminal_undo_needs_its_own_answer_and_counts_for_the_highest_class() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", TERMINAL_UNDO);
    // plan, list and check say it.
    let out = runbook(dir.path())
        .args(["plan", "rb.yaml", "--format", "json"])
        .output()
        .unwrap();
    let plan: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out).1));
    assert_eq!(plan["max_safety"], "terminal");
    let out = runbook(dir.path())
        .args(["list", ".", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"max_safety\":\"terminal\"")
            || String::from_utf8_lossy(&out.stdout).contains("\"max_safety\": \"terminal\""),
        "{}",
        text(&out).0
    );
    let out = runbook(dir.path())
        .args(["check", "rb.yaml"])
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(
        format!("{o}{e}").contains("undo of step `create` is terminal"),
        "{o}{e}"
    );

    // Non-interactive, no answer: the rollback stops before the undo, exit 4, resumable.
    let out = spawn_run(dir.path(), &["--yes"])
        .wait_with_output()
        .unwrap();
    let err = text(&out).1;
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--answer create.undo=yes"), "{err}");
    assert_eq!(log(dir.path()), "create\n");
    let id = run_id(&journal(dir.path()));
    let (code, err) = resume(dir.path(), &id, &["create.undo=yes"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(log(dir.path()), "create\ndrop\n");
}

/// A terminal undo answered `no` stops the rollback there (exit 3) with the earlier changes
/// still in place. The run says `runbook resume` continues it, and it does: the resume asks
/// the undo again (the `no` is not carried over, and `--yes` is not enough), and with a `yes`
/// it finishes the rollback. It is not refused as a run that "undid what it had changed".
#[test]
fn a_declined_terminal_undo_leaves_the_rollback_resumable_and_asks_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", TERMINAL_UNDO);
    let out = spawn_run(dir.path(), &["--yes", "--answer", "create.undo=no"])
        .wait_with_output()
        .unwrap();
    let err = text(&out).1;
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("to continue: runbook resume"), "{err}");
    assert_eq!(log(dir.path()), "create\n");
    let id = run_id(&journal(dir.path()));

    let (code, err) = resume(dir.path(), &id, &[]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--answer create.undo=yes"), "{err}");
    assert!(!err.contains("undid what it had changed"), "{err}");
    assert_eq!(
        log(dir.path()),
        "create\n",
        "nothing runs without its answer"
    );

    let (code, err) = resume(dir.path(), &id, &["create.undo=yes"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(log(dir.path()), "create\ndrop\n");
}

#[test]
fn a_terminal_on_failure_step_needs_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: wipe, title: Terminal handler }
steps:
  - id: broken
    shell: { script: "exit 1" }
    no_undo: test
on_failure:
  - id: wipe
    safety: terminal
    shell: { script: "echo wipe >> log" }
    no_undo: test
"#,
    );
    let out = spawn_run(dir.path(), &["--yes"])
        .wait_with_output()
        .unwrap();
    let err = text(&out).1;
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--answer wipe=yes"), "{err}");
    assert_eq!(log(dir.path()), "");
    let id = run_id(&journal(dir.path()));
    let (code, err) = resume(dir.path(), &id, &["wipe=yes"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(log(dir.path()), "wipe\n");
}

/// SIGKILLs, when dropped, every process whose environment holds this `NAME=value`: a failing
/// test leaves no orphan behind.
struct KillMarked(String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(env) = std::fs::read(e.path().join("environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|kv| kv == self.0.as_bytes()) {
                if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                    // SAFETY: kill(2); the pid was just read from /proc.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// A runner killed in the instant between starting a step's process and journaling it
/// (`process_started`) leaves a process group that no journal line names. Every step's
/// processes carry the run's and the step's ids (`RUNBOOK_RUN_ID`, `RUNBOOK_STEP_ID`):
/// `resume` finds the group by them, says it is still running, and kills it (or waits for it)
/// as answered before it asks about the step, so the step's effect happens once.
#[test]
fn a_process_the_journal_never_named_is_found_by_its_marks_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: slow, title: Unjournaled process }
steps:
  - id: slow
    shell:
      script: |
        if [ -e first ]; then echo "again $RUNBOOK_STEP_ID" >> log; exit 0; fi
        touch first
        sleep 60
        echo orphan >> log
    no_undo: test
"#,
    );
    let mut child = spawn_run_with(dir.path(), &[], &[("RUNBOOK_TEST_PAUSE_AT_SPAWN", "slow")]);
    let paused = wait_for_marker(&dir.path().join("runs"), "paused-spawn", &mut child);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    std::fs::remove_file(&paused).unwrap();
    let ev = journal(dir.path());
    assert_eq!(of_kind(&ev, "attempt_started").len(), 1);
    assert!(of_kind(&ev, "process_started").is_empty(), "{ev:#?}");
    let id = run_id(&ev);
    let _cleanup = KillMarked(format!("RUNBOOK_RUN_ID={id}"));

    // No answer: it names the group still running and the answer to give, and runs nothing.
    let (code, err) = resume(dir.path(), &id, &[]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--answer slow.process="), "{err}");
    let pgid: i32 = err
        .split("process group ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no process group named in:\n{err}"));
    assert!(group_alive(pgid), "the orphan should still run:\n{err}");
    assert_eq!(log(dir.path()), "");

    // Killed, then the step (it reached its backend) runs again on its own answer: once.
    let (code, err) = resume(dir.path(), &id, &["slow.process=kill", "slow=yes"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!group_alive(pgid), "the orphan survived the resume:\n{err}");
    assert_eq!(log(dir.path()), "again slow\n");
}

// Item 3: one process at a time per run; the second says who holds it.
#[test]
fn a_second_resume_of_the_same_run_is_refused_and_told_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", PAGE);
    stop_at(dir.path(), "waiting", libc::SIGKILL);
    std::fs::remove_file(dir.path().join("waiting")).unwrap();
    let id = run_id(&journal(dir.path()));
    let mut first = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "wait-here.process=kill",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("waiting"), &mut first);
    let before = journal(dir.path()).len();
    let (code, err) = resume(dir.path(), &id, &["wait-here.process=kill"]);
    // The journal cannot be locked: exit 5, as any journal that cannot be reopened or locked.
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.id()))
            && err.contains(&format!(
                "then resume: runbook resume {id} --journal-dir runs"
            )),
        "{err}"
    );
    // The second wrote nothing.
    assert_eq!(journal(dir.path()).len(), before);
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock went with the killed process: a resume gets past it (to its answers' check).
    let (code, err) = resume(dir.path(), &id, &["nosuch=yes"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no step `nosuch`"), "{err}");
    assert!(!err.contains("held by"), "{err}");
}

// Item 5: the process group recorded when the step started is found alive on resume.
#[test]
fn resume_finds_the_orphaned_process_group_and_waits_for_it_when_told() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: orphan, title: Orphan }
steps:
  - id: slow
    shell: { script: "touch started; while [ ! -e go ]; do sleep 0.05; done; echo slow >> log" }
    no_undo: test
"#,
    );
    assert_eq!(stop_at(dir.path(), "started", libc::SIGKILL), None);
    let ev = journal(dir.path());
    let id = run_id(&ev);
    let pgid = pgid_of(&ev, "slow");
    assert!(group_alive(pgid));
    let (code, err) = resume(dir.path(), &id, &[]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!("process group {pgid}")) && err.contains("still running"),
        "{err}"
    );
    // Told to wait: it waits until the orphan ends (let it), then asks about the step, which
    // the operator now sees completed.
    let waiting = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "slow.process=wait",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out).1);
    assert!(text(&out).1.contains("--answer slow="));
    assert_eq!(log(dir.path()), "slow\n");
    let (code, err) = resume(dir.path(), &id, &["slow=skip"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(log(dir.path()), "slow\n");
}

// Item 6: a journal that was edited is refused, precisely.
#[test]
fn resume_refuses_a_forged_or_spliced_journal() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", PAGE);
    stop_at(dir.path(), "waiting", libc::SIGKILL);
    let path = journal_path(&dir.path().join("runs"));
    let orig = std::fs::read_to_string(&path).unwrap();
    let ev = events(&path);
    let id = run_id(&ev);
    let last = ev.last().unwrap()["seq"].as_u64().unwrap();
    let line = |v: Value| format!("{v}\n");
    let cases = [
        (
            // A step that never ran, "finished".
            line(
                serde_json::json!({"v": 1, "seq": last + 1, "ts": "2026-01-01T00:00:00.000Z",
                "run_id": id, "event": "step_finished", "step": "ghost", "outcome": "succeeded",
                "phase": "main", "duration_ms": 0, "attempts": 1}),
            ),
            "`step_finished` for `ghost`, which has no `step_started`",
        ),
        (
            // Another run's line.
            line(
                serde_json::json!({"v": 1, "seq": last + 1, "ts": "2026-01-01T00:00:00.000Z",
                "run_id": "other-run", "event": "step_skipped", "step": "wait-here",
                "reason": "x", "phase": "main"}),
            ),
            "run id `other-run` is not this run's",
        ),
        (
            // A sequence number going back.
            line(
                serde_json::json!({"v": 1, "seq": 2, "ts": "2026-01-01T00:00:00.000Z",
                "run_id": id, "event": "step_skipped", "step": "wait-here",
                "reason": "x", "phase": "main"}),
            ),
            "sequence number 2 does not follow",
        ),
    ];
    for (extra, want) in cases {
        std::fs::write(&path, format!("{orig}{extra}")).unwrap();
        let (code, err) = resume(dir.path(), &id, &["wait-here.process=kill"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(
            err.contains(":5:") || err.contains("journal.jsonl:"),
            "{err}"
        );
    }
}

// Item 6: a called runbook changed since the run started.
#[test]
fn resume_refuses_a_changed_called_runbook_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "child.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: child, title: Child }
steps:
  - id: wait-here
    shell: { script: "touch waiting; exec sleep 30" }
    safety: idempotent
    no_undo: test
"#,
    );
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: parent, title: Parent }
steps:
  - id: sub
    call: { runbook: child.yaml }
"#,
    );
    stop_at(dir.path(), "waiting", libc::SIGKILL);
    let id = run_id(&journal(dir.path()));
    std::fs::write(
        dir.path().join("child.yaml"),
        std::fs::read_to_string(dir.path().join("child.yaml")).unwrap() + "# edited\n",
    )
    .unwrap();
    let (code, err) = resume(dir.path(), &id, &["sub/wait-here.process=kill"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("child.yaml changed"), "{err}");
    let mut c = runbook(dir.path());
    c.args([
        "resume",
        &id,
        "--non-interactive",
        "--journal-dir",
        "runs",
        "--force",
        "--answer",
        "sub/wait-here.process=kill",
    ]);
    std::fs::remove_file(dir.path().join("waiting")).unwrap();
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("waiting"), &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let ev = journal(dir.path());
    let resumed = of_kind(&ev, "run_resumed");
    assert_eq!(resumed.last().unwrap()["forced"], true);
    assert!(resumed.last().unwrap()["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"].as_str().unwrap().ends_with("child.yaml")));
}
