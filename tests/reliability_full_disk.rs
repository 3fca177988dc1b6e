//! A full disk under the journal: the run must stop before the next mutating step rather than
//! change the world unjournaled, and once space is back `resume` finishes it with every step
//! run exactly once.
//!
//! The journal directory is a real, tiny tmpfs (the test mounts it; it needs root, as CI has).
//! The run is paused after each event boundary in turn (`RUNBOOK_TEST_PAUSE_AFTER`), the disk is
//! filled to the last byte, and the run goes on.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Three mutating steps around a read-only one. The argv of `two` (32 KiB) is longer than the
/// newlines the journal has written ahead of its lines by then (at most about 14 KiB for a
/// journal this short, see `exec::journal`) and than the slack of a memory page, so its
/// `step_started` event can never fit in space the journal already holds: the journal breaks
/// exactly there when the disk fills after the step before.
fn runbook_text(work: &Path) -> String {
    let pad = "p".repeat(32 * 1024);
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: disk, title: Full disk }}
steps:
  - id: one
    shell: {{ argv: ["sh", "-c", "echo one >> {log}"] }}
    no_undo: test
  - id: look
    safety: read-only
    shell: {{ argv: ["sh", "-c", "echo look >> {looks}"] }}
  - id: two
    shell: {{ argv: ["sh", "-c", "echo two >> {log}", "{pad}"] }}
    no_undo: test
  - id: three
    shell: {{ argv: ["sh", "-c", "echo three >> {log}"] }}
    no_undo: test
"#,
        log = work.join("log").display(),
        looks = work.join("looks").display(),
    )
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Writes until the file system refuses: no page is left.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {}
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_or_skip(at: &Path) -> Option<Tmpfs> {
    let m = Tmpfs::mount(at);
    if m.is_none() {
        // Only root can mount; CI runs as root, so there this is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs for the full-disk test"
        );
        // Not `eprintln!` (captured by the harness): shown in a plain `cargo test` run.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\nSKIPPED: cannot mount a tmpfs (not root?); the full-disk test did not run\n",
        );
    }
    m
}

fn paused(runs: &Path, seq: u64) -> Option<PathBuf> {
    std::fs::read_dir(runs)
        .ok()?
        .flatten()
        .map(|r| r.path().join(format!("paused-{seq}")))
        .find(|p| p.exists())
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The journal as the engine reads it back: whole lines, at most a torn last one.
fn tolerant_events(path: &Path) -> (Vec<Value>, bool) {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let whole = text.ends_with('\n') || text.is_empty();
    let all: Vec<&str> = text.split_terminator('\n').collect();
    let mut ev = vec![];
    for (i, l) in all.iter().enumerate() {
        match serde_json::from_str::<Value>(l) {
            Ok(v) => ev.push(v),
            Err(e) => assert!(
                i + 1 == all.len() && !whole,
                "line {} of {} is not JSON: {e}",
                i + 1,
                path.display()
            ),
        }
    }
    (ev, !whole)
}

#[test]
fn a_full_journal_disk_stops_the_run_before_the_next_mutating_step() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let Some(disk) = mount_or_skip(&base.path().join("disk")) else {
        return;
    };
    let rb = write(&work, "rb.yaml", &runbook_text(&work));

    // The uninterrupted run, for the number of events.
    let runs = disk.0.join("runs");
    let out = runbook(&work)
        .arg("run")
        .arg(&rb)
        .args(["--non-interactive", "--journal-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let n = events(&journal_path(&runs)).len() as u64;
    let mut stopped_at_step_started = false;

    for k in 1..n {
        let _ = std::fs::remove_dir_all(&runs);
        let _ = std::fs::remove_file(work.join("log"));
        let child = runbook(&work)
            .arg("run")
            .arg(&rb)
            .args(["--non-interactive", "--journal-dir"])
            .arg(&runs)
            .env("RUNBOOK_TEST_PAUSE_AFTER", k.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let marker = loop {
            if let Some(m) = paused(&runs, k) {
                break m;
            }
            assert!(Instant::now() < deadline, "never paused after event {k}");
            std::thread::sleep(Duration::from_millis(2));
        };
        disk.fill();
        std::fs::remove_file(&marker).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");

        // Whatever ran, ran journaled: a mutating step's effect implies its attempt is durable.
        let jp = journal_path(&runs);
        let (ev, _torn) = tolerant_events(&jp);
        let log = lines(&work.join("log"));
        for step in ["one", "two", "three"] {
            let journaled = ev
                .iter()
                .any(|e| e["event"] == "attempt_started" && e["step"] == step);
            assert!(
                journaled || !log.contains(&step.to_string()),
                "after event {k}: `{step}` ran but its attempt is not in the journal\n{err}"
            );
        }
        let finished = ev.iter().any(|e| e["event"] == "run_finished");
        if !finished {
            assert_eq!(out.status.code(), Some(1), "after event {k}: {err}");
            assert!(err.contains("cannot write the journal"), "{err}");
        }
        if ev
            .last()
            .is_some_and(|e| e["event"] == "step_finished" && e["step"] == "look")
            && !log.contains(&"two".to_string())
        {
            stopped_at_step_started = true;
        }

        // Space is back: resume finishes the run, every mutating step exactly once.
        disk.free();
        if finished || ev.is_empty() {
            continue;
        }
        let id = ev[0]["run_id"].as_str().unwrap().to_string();
        let mut answers: Vec<String> = vec![];
        for _ in 0..3 {
            let mut c = runbook(&work);
            c.args(["resume", &id, "--non-interactive", "--journal-dir"])
                .arg(&runs);
            for a in &answers {
                c.args(["--answer", a]);
            }
            let out = c.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.code() == Some(4) {
                // A step started before the disk filled: the operator checks the world.
                let step = err
                    .split("--answer ")
                    .nth(1)
                    .and_then(|s| s.split('=').next())
                    .unwrap()
                    .to_string();
                let ran = lines(&work.join("log")).contains(&step);
                answers.push(format!("{step}={}", if ran { "skip" } else { "yes" }));
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "after event {k}: {err}");
            break;
        }
        assert_eq!(
            lines(&work.join("log")),
            ["one", "two", "three"],
            "after event {k}"
        );
        let (ev, torn) = tolerant_events(&jp);
        assert!(!torn, "resume left a torn line");
        assert_eq!(ev.last().unwrap()["outcome"], "succeeded");
    }
    assert!(
        stopped_at_step_started,
        "no case broke the journal at `two`'s step_started"
    );
}
