//! Exit codes of a run that cannot start (README, "Exit codes"): a journal that cannot be
//! created is 5, not 1 ("a step failed"), and nothing runs; the same for a training run, which
//! goes through the same session layer, and for a `resume` whose journal cannot be reopened or
//! whose run lock is held (or cannot be taken). A runtime that cannot start is 6: the engine is
//! run with too few file descriptors for tokio's I/O driver and signal pipe.

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::*;

const RUNBOOK: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: marker, title: Marker }
steps:
  - id: touch
    shell: { argv: ["touch", "ran"] }
    safety: read-only
"#;

#[test]
fn a_journal_that_cannot_be_created_exits_5_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rb.yaml"), RUNBOOK).unwrap();
    // The journal directory is a regular file: no run directory can be made under it.
    std::fs::write(dir.path().join("runs"), "not a directory").unwrap();
    let o = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}{err}");
    assert!(err.contains("cannot create the journal in runs"), "{err}");
    assert!(err.contains("nothing was run"), "{err}");
    // Printed once, by `main`.
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        !dir.path().join("ran").exists(),
        "the step ran without a journal"
    );
}

#[test]
fn a_training_run_without_a_journal_exits_5_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runs"), "not a directory").unwrap();
    let drills = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/drills");
    let o = runbook(dir.path())
        .arg("run")
        .arg(drills.join("k8s-rollback.yaml"))
        .arg("--world")
        .arg(drills.join("rollback-recovers.yaml"))
        .args(["--fast", "--non-interactive", "--reason", "training"])
        .args(["--journal-dir", "runs"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}{err}");
    assert!(err.contains("cannot create the journal in runs"), "{err}");
}

/// `cmd` with at most `n` open file descriptors (RLIMIT_NOFILE), and none inherited past
/// stdin, stdout and stderr (whatever the test harness holds open is closed at exec), so that
/// the limit means the same on every machine.
fn with_fd_limit(mut cmd: Command, n: libc::rlim_t) -> Command {
    // SAFETY: between fork and exec, only async-signal-safe calls (fcntl, setrlimit).
    unsafe {
        cmd.pre_exec(move || {
            for fd in 3..1024 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn a_runtime_that_cannot_start_exits_6_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rb.yaml"), RUNBOOK).unwrap();
    // Four descriptors: stdin, stdout, stderr and one for the dynamic loader, which closes it
    // again; tokio's I/O driver needs two (epoll and its waker), so the runtime cannot be built.
    let mut cmd = runbook(dir.path());
    cmd.args([
        "run",
        "rb.yaml",
        "--non-interactive",
        "--journal-dir",
        "runs",
    ]);
    let o = with_fd_limit(cmd, 4).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(6), "{out}{err}");
    assert!(
        err.starts_with("error: cannot start the runtime: "),
        "{err}"
    );
    // The evidence and the way out.
    assert!(
        err.contains("the open-file limit is 4: raise it (ulimit -n)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "printed once: {err}");
    assert!(
        !dir.path().join("ran").exists(),
        "the step ran without a runtime"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "a journal was started for a run that could not start"
    );
}

#[test]
fn too_few_file_descriptors_exit_6_never_a_panic() {
    // tokio returns some of its failures to start and panics on others (its signal pipe, at 6
    // and 7 descriptors here): every one is exit 6 with one line, or the command works.
    let dir = tempfile::tempdir().unwrap();
    for n in 4..=16 {
        let mut cmd = runbook(dir.path());
        cmd.args(["schema", "drill"]);
        let o = with_fd_limit(cmd, n).output().unwrap();
        let (out, err) = text(&o);
        match o.status.code() {
            Some(0) => assert!(out.contains("\"$schema\""), "{n} descriptors: {out}"),
            Some(6) => {
                assert!(
                    err.starts_with("error: cannot start the runtime: "),
                    "{n} descriptors: {err}"
                );
                assert_eq!(err.lines().count(), 1, "{n} descriptors: {err}");
                assert!(
                    err.contains(&format!("the open-file limit is {n}: raise it")),
                    "{n} descriptors: {err}"
                );
            }
            other => panic!("{n} descriptors: exit {other:?}\n{err}"),
        }
    }
}

/// Runs `runbook ARGS` in `dir`: (exit code, stderr).
fn fails(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = runbook(dir).args(args).output().unwrap();
    (o.status.code(), text(&o).1)
}

#[test]
fn each_error_exits_with_its_code_from_the_one_table_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("rb.yaml"), RUNBOOK).unwrap();
    std::fs::write(
        d.join("bad.yaml"),
        "apiVersion: runbook/v1\nkind: Runbook\n",
    )
    .unwrap();
    let drills = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/drills");
    let drill = drills.join("rollback-recovers.yaml");
    let drill = drill.to_str().unwrap();
    // A finished run, for `report`.
    let (code, err) = fails(
        d,
        &[
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let run_id = std::fs::read_dir(d.join("runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["check", "nope"], 2, "nope does not exist"),
        (&["list", "nope"], 2, "nope does not exist"),
        (
            &["plan", "bad.yaml"],
            2,
            "bad.yaml has errors; nothing was run",
        ),
        (
            &["run", "rb.yaml", "--non-interactive", "--input", "x=1"],
            2,
            "x",
        ),
        (
            &["run", "rb.yaml", "--world", "rb.yaml", "--non-interactive"],
            2,
            "rb.yaml is not a drill",
        ),
        (&["resume", "nope", "--journal-dir", "runs"], 2, "nope"),
        (&["report", "nope", "--journal-dir", "runs"], 2, "nope"),
        (
            &[
                "report",
                &run_id,
                "--journal-dir",
                "runs",
                "-o",
                "rb.yaml/r.md",
            ],
            1,
            "cannot write the report rb.yaml/r.md",
        ),
        (&["drill", "nope"], 2, "nope does not exist"),
        (
            &["drill", drill, "--junit", "rb.yaml/j.xml"],
            1,
            "cannot write rb.yaml/j.xml",
        ),
    ];
    for (args, want, says) in cases {
        let (code, err) = fails(d, args);
        assert_eq!(code, Some(*want), "{args:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?} prints its error once: {err}");
        assert!(errors[0].contains(says), "{args:?}: {err}");
    }
}

/// A run that stopped at a gate (exit 4), resumable: `approve` needs an answer, then `touch`
/// marks that the resume ran a step.
const GATED: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: gated, title: Gated marker }
steps:
  - id: approve
    confirm: { prompt: "Go on?" }
  - id: touch
    shell: { argv: ["touch", "ran"] }
    safety: read-only
"#;

/// Stops a run of `GATED` at its gate; returns (run id, its journal's path).
fn stopped_run(dir: &Path) -> (String, std::path::PathBuf) {
    std::fs::write(dir.join("rb.yaml"), GATED).unwrap();
    let (code, err) = fails(
        dir,
        &[
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ],
    );
    assert_eq!(code, Some(4), "the run stops at `approve`: {err}");
    let journal = journal_path(&dir.join("runs"));
    (run_id(&events(&journal)), journal)
}

/// `runbook resume ID --answer approve=yes` in `dir`: (exit code, stderr).
fn resume(dir: &Path, id: &str) -> (Option<i32>, String) {
    fails(
        dir,
        &[
            "resume",
            id,
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--answer",
            "approve=yes",
        ],
    )
}

/// A resume refused with exit 5: said once, nothing journaled, nothing run.
fn refused_with_5(dir: &Path, id: &str, journal: &Path, says: &str) {
    let before = std::fs::read(journal).unwrap();
    let (code, err) = resume(dir, id);
    assert_eq!(code, Some(5), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "printed once: {err}");
    assert!(errors[0].contains(says), "{err}");
    assert_eq!(
        std::fs::read(journal).unwrap(),
        before,
        "the journal changed"
    );
    assert!(!dir.join("ran").exists(), "a step ran: {err}");
}

/// The journal can be read but not opened for writing, even by root: `chattr +a` (append-only
/// refuses the read-write open that `resume` makes to cut a torn last line) as root, a
/// read-only mode otherwise. Undone when dropped (an append-only file cannot be removed).
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(path: &Path) -> Option<Unwritable> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chattr")
                .arg("+a")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
        } else {
            let mut p = std::fs::metadata(path).unwrap().permissions();
            p.set_readonly(true);
            std::fs::set_permissions(path, p).unwrap();
        }
        Some(Unwritable(path.to_path_buf()))
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-a").arg(&self.0).status();
        if let Ok(m) = std::fs::metadata(&self.0) {
            let mut p = m.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            let _ = std::fs::set_permissions(&self.0, p);
        }
    }
}

#[test]
fn a_resume_whose_journal_cannot_be_reopened_exits_5_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (id, journal) = stopped_run(d);
    let Some(guard) = Unwritable::new(&journal) else {
        skip_or_fail(
            "chattr +a does not work here (a filesystem without it, or no CAP_LINUX_IMMUTABLE)",
        );
        return;
    };
    refused_with_5(
        d,
        &id,
        &journal,
        &format!(
            "cannot append to {}",
            journal.strip_prefix(d).unwrap().display()
        ),
    );
    drop(guard);
    // The same resume goes through once the journal can be written: the 5 was the journal's.
    let (code, err) = resume(d, &id);
    assert_eq!(code, Some(0), "{err}");
    assert!(d.join("ran").exists());
}

#[test]
fn a_resume_whose_run_lock_is_held_or_cannot_be_taken_exits_5_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (id, journal) = stopped_run(d);
    let lock = journal.with_file_name("lock");

    // Held by another live process (this one), as a running `run` or `resume` holds it.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
        .unwrap();
    held.try_lock().unwrap();
    refused_with_5(d, &id, &journal, "the run is held by");
    drop(held);

    // A lock that cannot be taken at all: its file is a directory.
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    refused_with_5(d, &id, &journal, "cannot open the run's lock");
    std::fs::remove_dir(&lock).unwrap();

    // Free again: the same resume goes through.
    let (code, err) = resume(d, &id);
    assert_eq!(code, Some(0), "{err}");
    assert!(d.join("ran").exists());
}
