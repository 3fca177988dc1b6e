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

/// Item 8 (issue 12): a training run that stops at a gate says how to continue it against its
/// simulated world, and `runbook resume --world` does; without `--world` the resume is refused
/// (it would continue against real systems) and names the flag.
#[test]
fn without_answers_a_training_run_stops_and_resumes_against_its_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = fixture("rollback-recovers.yaml");
    let (code, out) = train(dir.path(), &world, &["--fast", "--answer", "approve=yes"]);
    assert_eq!(
        code, 4,
        "the drill's scripted answers are not used in training: {out}"
    );
    let journal = journal_path(&dir.path().join("runs"));
    let id = journal
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let hint = format!(
        "needs an answer: to continue this run, pass --answer tell=done: runbook resume {id} --journal-dir runs --world {} --answer tell=done",
        world.display()
    );
    assert!(out.contains(&hint), "{out}");
    // Without --world: refused, and told how.
    let o = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs"])
        .args(["--non-interactive", "--answer", "tell=done"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("simulated world")
            && err.contains(&format!("runbook resume {id} --journal-dir runs --world")),
        "{err}"
    );
    // With it, as printed: the run goes on and succeeds, the rollback not made again.
    let o = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs", "--world"])
        .arg(&world)
        .args(["--non-interactive", "--answer", "tell=done"])
        .env_remove("ORCH_TOKEN")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("training: resuming `k8s-rollback` against the simulated world of drill `rollback-recovers` (virtual time), rebuilt from 1 recorded change"),
        "{err}"
    );
    let evs = events(&journal);
    assert_eq!(
        of_kind(&evs, "run_finished").last().unwrap()["outcome"],
        "succeeded"
    );
    assert_eq!(of_kind(&evs, "world_changed").len(), 1, "{err}");
    assert_eq!(of_kind(&evs, "run_resumed").len(), 1);
    // A real run's journal does not take --world.
    let o = runbook(dir.path())
        .args(["resume", &id, "--journal-dir", "runs", "--world"])
        .arg(&world)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("already succeeded"), "{}", text(&o).1);
}

/// Item 8: the resumed session runs against the world the first one left, rebuilt from the
/// journal's recorded effects: the image it set, the revision history (3 revisions), and the
/// rollout still in progress on the virtual clock.
#[test]
fn a_resumed_training_run_finds_the_world_its_first_session_left() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pin.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: pin, title: Pin an image }
backends:
  cluster: { kubernetes: { namespace: prod } }
steps:
  - id: pin
    kubernetes: { set_image: { name: web, image: "web:v3" } }
    no_undo: a test
  - id: look
    manual: { instructions: "Look at the dashboards." }
  - id: after
    kubernetes: { get: { kind: Deployment, name: web } }
    capture:
      image: "result.spec.template.spec.containers[0].image"
      revision: "result.metadata.annotations['deployment.kubernetes.io/revision'] | int"
    verify:
      - that: "steps.after.image == 'web:v3'"
      - that: "steps.after.revision == 3"
      - that: "(result.status.updatedReplicas | default(0)) >= 2"
    until: { timeout: 2m, interval: 10s }
  - id: history
    safety: read-only
    kubernetes: { rollout_history: { name: web } }
"#,
    );
    let world = write(
        dir.path(),
        "world.yaml",
        r#"apiVersion: runbook/v1
kind: Drill
metadata: { name: pinned }
runbook: pin.yaml
world:
  kubernetes:
    deployments:
      - { namespace: prod, name: web, replicas: 2, revisions: ["web:v1", "web:v2"], rollout: { takes: 30s } }
"#,
    );
    let run = |args: &[&str]| {
        let o = runbook(dir.path())
            .args(args)
            .args([
                "--non-interactive",
                "--journal-dir",
                "runs",
                "--reason",
                "x",
            ])
            .output()
            .unwrap();
        (o.status.code().unwrap_or(-1), text(&o).1)
    };
    let (code, err) = run(&["run", "pin.yaml", "--world", "world.yaml", "--fast"]);
    assert_eq!(code, 4, "{err}");
    let journal = journal_path(&dir.path().join("runs"));
    let id = run_id(&events(&journal));
    let (code, err) = run(&[
        "resume",
        &id,
        "--world",
        world.to_str().unwrap(),
        "--answer",
        "look=done",
    ]);
    assert_eq!(code, 0, "{err}");
    let evs = events(&journal);
    let after = of_kind(&evs, "verify_evaluated")
        .into_iter()
        .filter(|e| e["step"] == "after")
        .collect::<Vec<_>>();
    // The rollout the first session started was still running: the check polled until it
    // finished, on the virtual clock.
    assert!(after.len() >= 2, "{err}");
    assert!(after.last().unwrap()["ok"].as_bool().unwrap(), "{err}");
    assert!(err.contains("3 revisions:"), "{err}");
    assert!(err.contains("3: web:v3 (current)"), "{err}");
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

/// Item 4 (issue 12): a read-only step's result is shown, not only "succeeded": the revision
/// history lists the revisions it read (newest first, the current one marked), and a `get`
/// shows the Deployment's image, revision and availability.
#[test]
fn a_read_only_step_shows_what_it_read() {
    let w = Workdir::new();
    let r = w.train_k8s_rollback(&["tell=done", "record=done", "metrics=done"]);
    r.assert_code(0);
    let err = &r.stderr;
    let lines: Vec<&str> = err
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest)) // the time
        .collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("✔ history succeeded"))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        lines[at + 1..at + 4],
        [
            "    2 revisions:",
            "      2: flowengine:v1.1.0 (current)",
            "      1: flowengine:v1.0.0"
        ],
        "{err}"
    );
    assert!(
        err.contains("Deployment flowengine: flowengine:v1.1.0, revision 2, 3/3 available"),
        "{err}"
    );
}

/// Issue 13 §3: a training run goes through the same session as a real run, so it holds the
/// run's lock while it runs: a `resume --world` of it meanwhile is refused and told who holds
/// it, and writes nothing (training runs used to take no lock).
#[test]
fn a_training_run_holds_its_lock_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: slow, title: Slow }\nsteps:\n  - id: pause\n    wait: 60s\n",
    );
    write(
        dir.path(),
        "slow.drill.yaml",
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: { name: slow }\nrunbook: rb.yaml\n",
    );
    // Real time: the wait keeps the run (and its lock) alive until it is killed.
    let mut first = runbook(dir.path())
        .args(["run", "rb.yaml", "--world", "slow.drill.yaml"])
        .args(["--non-interactive", "--journal-dir", "runs"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = dir.path().join("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let journal = loop {
        let started = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path().join("journal.jsonl"))
            .filter(|j| {
                std::fs::read_to_string(j).is_ok_and(|t| t.contains(r#""event":"step_started""#))
            });
        if let Some(j) = started {
            break j;
        }
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the training run ended ({status}) before its wait started");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let before = std::fs::read_to_string(&journal).unwrap();
    let id = run_id(&events(&journal));
    let o = runbook(dir.path())
        .args([
            "resume",
            &id,
            "--journal-dir",
            "runs",
            "--world",
            "slow.drill.yaml",
        ])
        .arg("--non-interactive")
        .output()
        .unwrap();
    let err = text(&o).1;
    first.kill().unwrap();
    first.wait().unwrap();
    // The journal cannot be locked: exit 5.
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&format!("held by `runbook run` (pid {}", first.id())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), before);
}
