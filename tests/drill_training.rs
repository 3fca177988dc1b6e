//! Training mode: `runbook run RUNBOOK --world DRILL` runs against the drill's simulated world
//! like any run (gates need answers; the drill's own answers are not used), never reads the
//! host's secrets, and cannot be resumed against real systems.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/drills")
        .join(name)
        .canonicalize()
        .unwrap()
}

fn train(dir: &Path, world: &Path, extra: &[&str]) -> (i32, String) {
    let o = runbook(dir)
        .arg("run")
        .arg(fixture("k8s-rollback.yaml"))
        .arg("--world")
        .arg(world)
        .args([
            "--non-interactive",
            "--reason",
            "training",
            "--journal-dir",
            "runs",
        ])
        .args(extra)
        .env_remove("ORCH_TOKEN")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), format!("{out}{err}"))
}

#[test]
fn a_training_run_uses_the_world_and_the_operators_answers() {
    let dir = tempfile::tempdir().unwrap();
    let world = fixture("rollback-recovers.yaml");
    let (code, out) = train(
        dir.path(),
        &world,
        &["--fast", "--answer", "approve=yes", "--answer", "tell=done"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "training: `k8s-rollback` against the simulated world of drill `rollback-recovers`"
        ),
        "{out}"
    );
    assert!(
        out.contains(r#"rollback: world: kubernetes deployment prod/flowengine image: "flowengine:v1.1.0" → "flowengine:v1.0.0""#),
        "the terminal shows what each step changed: {out}"
    );
    let evs = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(evs[0]["mode"], "training");
    assert_eq!(of_kind(&evs, "gate_answered")[0]["via"], "answer-flag");
    assert!(!of_kind(&evs, "world_changed").is_empty());
    // The secret was a stand-in (ORCH_TOKEN is unset), and it is masked like a real one.
    let rendered = &of_kind(&evs, "step_started")
        .iter()
        .find(|e| e["step"] == "healthy")
        .unwrap()["rendered"];
    assert_eq!(
        rendered["request"]["headers"]["Authorization"],
        "Bearer ***"
    );
}

#[test]
fn without_answers_a_training_run_stops_and_is_not_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = train(dir.path(), &fixture("rollback-recovers.yaml"), &["--fast"]);
    assert_eq!(
        code, 4,
        "the drill's scripted answers are not used in training: {out}"
    );
    assert!(
        out.contains("this was a training run; run it again and pass --answer approve=yes"),
        "{out}"
    );
    assert!(!out.contains("runbook resume"), "{out}");
    let journal = journal_path(&dir.path().join("runs"));
    let o = runbook(dir.path())
        .args(["resume", "--journal-dir", "runs"])
        .arg(journal.parent().unwrap().file_name().unwrap())
        .args(["--non-interactive", "--answer", "approve=yes"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("simulated world") && err.contains("--world"),
        "{err}"
    );
}

#[test]
fn training_runs_in_real_time_unless_fast() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("rollback-recovers.yaml")).unwrap();
    let world = write(
        dir.path(),
        "quick.yaml",
        &text
            .replace(
                "runbook: k8s-rollback.yaml",
                &format!("runbook: {}", fixture("k8s-rollback.yaml").display()),
            )
            .replace("takes: 45s", "takes: 1500ms"),
    );
    let (code, out) = train(
        dir.path(),
        &world,
        &["--answer", "approve=yes", "--answer", "tell=done"],
    );
    assert_eq!(code, 0, "{out}");
    let evs = events(&journal_path(&dir.path().join("runs")));
    let waited = of_kind(&evs, "step_finished")
        .into_iter()
        .find(|e| e["step"] == "wait-rollout")
        .unwrap()["duration_ms"]
        .as_u64()
        .unwrap();
    assert!(waited >= 1400, "the rollout took real time: {waited} ms");
}

#[test]
fn the_world_must_be_a_valid_drill() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = train(dir.path(), &fixture("k8s-rollback.yaml"), &[]);
    assert_eq!(code, 2);
    assert!(out.contains("is not a drill"), "{out}");
    let (code, out) = train(dir.path(), &fixture("invalid/bad-refs.yaml"), &[]);
    assert_eq!(code, 2);
    assert!(out.contains("has errors; nothing was run"), "{out}");
}

/// The built-in `control-plane-rollback` drills match the operator and reason the runbook
/// sends with `{{ run.operator }}` / `{{ run.reason }}`, so training works with any of them,
/// including a reason that looks like a placeholder or a glob (it is compared as data).
#[test]
fn control_plane_drills_train_with_any_operator_and_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let runbook_file = root.join("runbooks/control-plane-rollback.yaml");
    for (drill, answers) in [
        (
            "rollback-plan",
            &[
                "triage=done",
                "approve_rollback=yes",
                "rollback_plan=yes",
                "nodes=done",
                "evidence=done",
                "tell=done",
            ][..],
        ),
        (
            "halt-stage",
            &[
                "triage=done",
                "approve_halt=yes",
                "halt_stage=yes",
                "nodes=skipped",
                "evidence=done",
                "tell=done",
            ][..],
        ),
        (
            "ha-failover",
            &[
                "triage=done",
                "approve_failover=yes",
                "evidence=done",
                "tell=done",
            ][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let world = root.join(format!(
            "runbooks/drills/control-plane-rollback/{drill}.yaml"
        ));
        let mut cmd = runbook(dir.path());
        cmd.arg("run")
            .arg(&runbook_file)
            .arg("--world")
            .arg(&world)
            .args([
                "--fast",
                "--non-interactive",
                "--operator",
                "trainee.42@example.org",
                "--reason",
                "practice {{ run.operator }} * session",
                "--journal-dir",
                "runs",
            ]);
        for a in answers {
            cmd.args(["--answer", a]);
        }
        let o = cmd.output().unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{drill}:\n{out}{err}");
        let evs = events(&journal_path(&dir.path().join("runs")));
        let finished = of_kind(&evs, "run_finished");
        assert_eq!(finished[0]["outcome"], "succeeded", "{drill}: {err}");
        // The request carried the trainee's values, and the world's audit trail named them.
        let sent = of_kind(&evs, "step_started")
            .into_iter()
            .filter_map(|e| {
                e["rendered"]["request"]["json"]["operator"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect::<Vec<_>>();
        assert!(
            sent.contains(&"trainee.42@example.org".to_string()),
            "{drill}: {sent:?}"
        );
    }
}
