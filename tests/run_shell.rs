//! Shell steps: timeouts kill the whole process tree; stdin is never read.

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn alive(pid: i32) -> bool {
    // A zombie has exited; only its parent's reaping is pending.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: stuck, title: A stuck command }
steps:
  - id: stuck
    safety: read-only
    shell:
      script: |
        sleep 300 & echo $! >> pids
        sh -c 'sleep 300 & echo $! >> pids; sleep 300' & echo $! >> pids
        echo $$ >> pids
        sleep 300
    timeout: 1s
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
    assert!(err.contains("timed out"), "{err}");
    let pids: Vec<i32> = std::fs::read_to_string(dir.path().join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(pids.len() >= 4, "{pids:?}");
    // Killed processes may take a moment to be reaped by init on this machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn unanswered_gate_in_non_interactive_mode_exits_4_without_reading_stdin() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: gated, title: Gated }
steps:
  - id: approve
    confirm: { prompt: "Go?" }
  - id: after
    shell: { argv: ["touch", "ran"] }
    no_undo: test
"#,
    );
    let mut child = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Hold stdin open and unwritten: a process that read it would block forever.
    let stdin = child.stdin.take().unwrap();
    let watchdog = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > watchdog {
            child.kill().unwrap();
            panic!("runbook blocked on an unanswered gate");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (_, err) = text(&out);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains("--answer approve=yes"), "{err}");
    assert!(!dir.path().join("ran").exists());
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "gate_asked").len(), 1);
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "needs-answer");
    // The same with CI set and stdin a pipe with data waiting: still not read.
    let mut child = runbook(dir.path())
        .args(["run", "rb.yaml", "--journal-dir", "runs2"])
        .env("CI", "1")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"yes\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn yes_answers_reversible_confirmations_but_not_terminal_steps() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: halt, title: Halt }
steps:
  - id: approve
    confirm: { prompt: "Halt everything?" }
  - id: halt
    safety: terminal
    shell: { argv: ["touch", "halted"] }
"#,
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--yes",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--answer halt=yes"), "{err}");
    assert!(!dir.path().join("halted").exists());
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--yes",
            "--answer",
            "halt=yes",
            "--journal-dir",
            "runs2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert!(dir.path().join("halted").exists());
    let ev = events(&journal_path(&dir.path().join("runs2")));
    let answers: Vec<_> = of_kind(&ev, "gate_answered")
        .iter()
        .map(|e| (e["step"].clone(), e["via"].clone(), e["by"].clone()))
        .collect();
    assert_eq!(answers[0].1, "yes-flag");
    assert_eq!(answers[1].1, "answer-flag");
    assert_eq!(answers[1].2, "tester");
}

#[test]
fn declined_gate_aborts_with_exit_3_and_failure_rolls_back_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: roll, title: Roll }
steps:
  - id: one
    shell: { script: "echo one >> log" }
    undo: { shell: { script: "echo undo-one >> log" } }
  - id: two
    shell: { script: "echo two >> log" }
    undo: { shell: { script: "echo undo-two >> log" } }
  - id: approve
    confirm: { prompt: "Break it?" }
  - id: three
    shell: { argv: ["false"] }
    no_undo: fails on purpose
on_failure:
  - id: page
    shell: { script: "echo paged >> log" }
    no_undo: notification
"#,
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--answer",
            "approve=no",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "one\ntwo\n"
    );
    std::fs::remove_file(dir.path().join("log")).unwrap();
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--answer",
            "approve=yes",
            "--journal-dir",
            "runs2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "one\ntwo\nundo-two\nundo-one\npaged\n"
    );
    let ev = events(&journal_path(&dir.path().join("runs2")));
    assert_eq!(of_kind(&ev, "undo_finished").len(), 2);
    assert_eq!(of_kind(&ev, "run_finished")[0]["failed_step"], "three");
}

/// A step's process starts with every signal at its default action, except those the runner
/// itself was started with ignored (they survive `exec`, as POSIX says: `nohup runbook ...`
/// passes SIGHUP's on), and SIGPIPE at its default although Rust ignores it in the runner.
#[test]
fn a_steps_process_gets_default_signal_actions_and_keeps_the_ignored_ones() {
    use std::os::unix::process::CommandExt;
    let w = Workdir::with_runbook(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: signals, title: Signals }
steps:
  - id: look
    shell: { argv: ["awk", "/^SigIgn/ { print $2 > \"ignored\" }", "/proc/self/status"] }
"#,
    );
    let mut cmd = w.run_cmd("rb.yaml");
    // SAFETY: signal() is async-signal-safe; nothing else runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
    let ran = w.output(&mut cmd);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let mask = std::fs::read_to_string(w.path().join("ignored")).unwrap();
    let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
    let ignored = |sig: i32| mask & (1 << (sig - 1)) != 0;
    assert!(ignored(libc::SIGUSR1), "{mask:x}");
    for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        assert!(!ignored(sig), "signal {sig} ignored: {mask:x}");
    }
}
