//! Exit codes of a run that cannot start (README, "Exit codes"): a journal that cannot be
//! created is 5, not 1 ("a step failed"), and nothing runs; the same for a training run, which
//! goes through the same session layer.

use crate::common;

use std::path::Path;

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
