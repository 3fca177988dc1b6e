//! `runbook drill`: a rollback drill passes, the same drill with a stuck rollout fails naming the
//! step and the expectation, journals are byte-identical run to run, every mutating step
//! journals what it changed, JUnit, report directories and exit codes.

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

fn drill(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = runbook(dir).arg("drill").args(args).output().unwrap();
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A drill of the fixture runbook, with `extra` YAML appended (answers, faults, expect...).
fn drill_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let rb = fixture("k8s-rollback.yaml");
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: runbook/v1\nkind: Drill\nmetadata: {{ name: {name} }}\nrunbook: {}\ninputs: {{ deployment: web, namespace: prod, health_url: \"https://h/health\" }}\n{body}",
            rb.display()
        ),
    )
}

const WORLD: &str = r#"world:
  kubernetes:
    deployments:
      - { namespace: prod, name: web, replicas: 2, revisions: ["web:v1", "web:v2"], rollout: { takes: 30s } }
  http:
    - match: { url: "https://h/health" }
      respond: { status: 200 }
"#;

#[test]
fn a_rollback_drill_passes_and_a_stuck_rollout_fails_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = drill(dir.path(), &[path(&fixture("rollback-recovers.yaml"))]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().next().unwrap();
    assert!(line.starts_with("PASS   rollback-recovers"), "{out}");
    assert!(
        line.contains("45s") && line.contains("recovered in 45s (MTTR target 15m: met); 2 gates"),
        "{out}"
    );
    assert!(out.contains("1 drill: 1 passed, 0 failed"), "{out}");

    // The same drill with `rollout_never_available`: the first unmet expectation names the
    // step that stopped the run and what was expected instead.
    let (code, out, _) = drill(dir.path(), &[path(&fixture("failing/rollback-stuck.yaml"))]);
    assert_eq!(code, 1, "{out}");
    let line = out.lines().next().unwrap();
    assert!(line.starts_with("FAIL   rollback-stuck"), "{out}");
    assert!(
        line.contains("10m"),
        "the virtual duration is shown: {line}"
    );
    assert!(
        line.contains("outcome: expected succeeded, got failed at step `wait-rollout`")
            && line.contains("exceeded its progress deadline"),
        "{line}"
    );
    assert!(
        out.contains("also step `healthy`: expected succeeded, got not-run"),
        "{out}"
    );
    assert!(
        out.contains(r#"also world: kubernetes deployment prod/flowengine image: expected "flowengine:v1.0.0", got "flowengine:v1.1.0""#),
        "{out}"
    );

    // A drill that expects the failure (and the rollback) passes.
    let (code, out, err) = drill(dir.path(), &[path(&fixture("rollback-stuck-fails.yaml"))]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS   rollback-stuck-fails"), "{out}");
    assert!(
        out.contains("not recovered (the run failed after 10m)") && out.contains("1 undo"),
        "{out}"
    );
}

#[test]
fn the_same_drill_twice_gives_byte_identical_journals() {
    let dir = tempfile::tempdir().unwrap();
    let d = fixture("rollback-stuck-fails.yaml");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b, &a] {
        let (code, stdout, err) = drill(dir.path(), &[path(&d), "--report-dir", path(out)]);
        assert_eq!(code, 0, "{stdout}{err}");
    }
    let id = "20260101T000000Z-rollback-stuck-fails-drill";
    let ja = std::fs::read(a.join(id).join("journal.jsonl")).unwrap();
    let jb = std::fs::read(b.join(id).join("journal.jsonl")).unwrap();
    assert!(ja.len() > 1000);
    assert_eq!(ja, jb, "the same drill must give the same journal");
    assert!(
        a.join(id).join("report.md").is_file(),
        "each drill gets its PIR report"
    );
    // Issue 12, item 9: the report says it was a drill, on virtual time.
    let md = std::fs::read_to_string(a.join(id).join("report.md")).unwrap();
    let title = md.lines().find(|l| l.starts_with("# ")).unwrap_or_default();
    assert!(
        title.starts_with("# Post-Incident Review: Drill: "),
        "{title}"
    );
    assert!(md.contains("Times are virtual"), "{md}");
    assert!(
        md.contains("This was a drill against a simulated world: nothing real was changed."),
        "{md}"
    );
    let evs = events(&a.join(id).join("journal.jsonl"));
    assert_eq!(evs[0]["mode"], "drill");
    assert_eq!(
        evs.last().unwrap()["ts"],
        "2026-01-01T00:10:00.000Z",
        "timestamps come from the virtual clock"
    );
}

#[test]
fn every_mutating_step_journals_what_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("reports");
    let (code, out, err) = drill(
        dir.path(),
        &[
            path(&fixture("rollback-stuck-fails.yaml")),
            "--report-dir",
            path(&out_dir),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let evs = events(&journal_path(&out_dir));
    let changed = of_kind(&evs, "world_changed");
    let rollback = changed
        .iter()
        .find(|e| e["step"] == "rollback")
        .expect("rollback changed the world");
    let d = &rollback["diff"]["kubernetes deployment prod/flowengine"];
    assert_eq!(d["image"]["from"], "flowengine:v1.1.0");
    assert_eq!(d["image"]["to"], "flowengine:v1.0.0");
    assert_eq!(d["revision"]["to"], 3);
    let undo = changed
        .iter()
        .find(|e| e["step"] == "rollback.undo")
        .expect("the undo changed it back");
    assert_eq!(
        undo["diff"]["kubernetes deployment prod/flowengine"]["image"]["to"],
        "flowengine:v1.1.0"
    );
    // Every step that may change something and succeeded has a world diff; reads have none.
    for s in of_kind(&evs, "step_started") {
        let step = s["step"].as_str().unwrap();
        let mutating = s["safety"] != "read-only";
        let has_diff = changed.iter().any(|c| c["step"] == step);
        let ok = evs.iter().any(|e| {
            e["event"] == "step_finished" && e["step"] == step && e["outcome"] == "succeeded"
        });
        if mutating && ok {
            assert!(
                has_diff,
                "mutating step `{step}` journaled no world_changed"
            );
        }
        if !mutating {
            assert!(!has_diff, "read-only step `{step}` changed the world");
        }
    }
}

#[test]
fn junit_report_counts_and_escapes_results() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let (code, out, _) = drill(
        dir.path(),
        &[
            path(&fixture("rollback-recovers.yaml")),
            path(&fixture("failing/rollback-stuck.yaml")),
            "--junit",
            path(&junit),
        ],
    );
    assert_eq!(code, 1, "one drill fails: {out}");
    assert!(out.contains("2 drills: 1 passed, 1 failed"), "{out}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "),
        "{x}"
    );
    assert!(
        x.contains(r#"<testsuite name="runbook drills" tests="2" failures="1" errors="0""#),
        "{x}"
    );
    assert!(
        x.contains(r#"<testcase name="rollback-recovers" classname="k8s-rollback""#),
        "{x}"
    );
    assert!(x.contains(r#"<failure message="outcome: expected succeeded, got failed at step `wait-rollout` (kubernetes.rollout_status: Deployment prod/flowengine: deployment &quot;flowengine&quot; exceeded"#), "{x}");
    assert!(
        x.contains("<system-out>virtual duration: 45s\nscore: recovered in 45s"),
        "{x}"
    );
    assert_balanced(&x);
}

/// Every opened element is closed in order, and every `&` starts an entity: enough to catch
/// broken escaping.
fn assert_balanced(x: &str) {
    let mut stack: Vec<String> = vec![];
    for part in x.split('<').skip(1) {
        let tag = part.split(['>', ' ']).next().unwrap();
        if tag.starts_with('?') {
            continue;
        }
        let self_closing = part.split('>').next().unwrap().ends_with('/');
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name),
                "unbalanced </{name}> in {x}"
            );
        } else if !self_closing {
            stack.push(tag.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    for (i, _) in x.match_indices('&') {
        let rest = &x[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "raw & at {i} in {x}"
        );
    }
}

#[test]
fn an_unanswered_gate_ends_the_drill_as_needs_answer() {
    let dir = tempfile::tempdir().unwrap();
    let expected = drill_file(
        dir.path(),
        "no-approval",
        &format!("{WORLD}expect: {{ outcome: needs-answer, failed_step: approve, steps: {{ rollback: not-run }} }}\n"),
    );
    let (code, out, err) = drill(dir.path(), &[path(&expected)]);
    assert_eq!(code, 0, "{out}{err}");
    let surprised = drill_file(dir.path(), "surprised", WORLD);
    let (code, out, _) = drill(dir.path(), &[path(&surprised)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("outcome: expected succeeded, got needs-answer at step `approve` (step `approve` needs an answer: pass --answer approve=yes"),
        "{out}"
    );
}

#[test]
fn an_injected_error_is_retried_and_scored() {
    let dir = tempfile::tempdir().unwrap();
    let d = drill_file(
        dir.path(),
        "retried",
        &format!(
            "answers: {{ approve: yes, tell: done }}\n{WORLD}faults:\n  - {{ step: rollback, attempt: 1, error: connection refused }}\n\
             expect: {{ steps: {{ rollback: succeeded }}, within: 1m, world: {{ kubernetes: {{ deployments: {{ prod/web: {{ image: \"web:v1\", available: 2 }} }} }} }} }}\n"
        ),
    );
    let (code, out, err) = drill(dir.path(), &[path(&d)]);
    assert_eq!(code, 0, "{out}{err}");
    // 10s retry delay + 30s rollout.
    assert!(
        out.contains("recovered in 40s") && out.contains("1 step retried (1 retry)"),
        "{out}"
    );
}

#[test]
fn an_unscripted_call_fails_the_step_with_the_call_shown() {
    let dir = tempfile::tempdir().unwrap();
    let world = WORLD.replace("https://h/health", "https://h/other");
    let d = drill_file(
        dir.path(),
        "unscripted",
        &format!("answers: {{ approve: yes, tell: done, page: done }}\n{world}"),
    );
    let (code, out, _) = drill(dir.path(), &[path(&d)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("got failed at step `healthy` (drill world: GET https://h/health: no `world.http` rule matches this request"),
        "{out}"
    );
}

#[test]
fn drills_default_to_runbooks_and_report_finding_none() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = drill(dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("runbooks does not exist"), "{err}");
    std::fs::create_dir(dir.path().join("runbooks")).unwrap();
    std::fs::copy(
        fixture("k8s-rollback.yaml"),
        dir.path().join("runbooks/k8s-rollback.yaml"),
    )
    .unwrap();
    let (code, _, err) = drill(dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no drills found in runbooks"), "{err}");
    let text = std::fs::read_to_string(fixture("rollback-recovers.yaml")).unwrap();
    write(
        dir.path(),
        "runbooks/drills/recovers.yaml",
        &text.replace(
            "runbook: k8s-rollback.yaml",
            "runbook: ../k8s-rollback.yaml",
        ),
    );
    let (code, out, err) = drill(dir.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("PASS   rollback-recovers"), "{out}");
    // A runbook given by name is not a drill.
    let (code, _, err) = drill(dir.path(), &["runbooks/k8s-rollback.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a drill"), "{err}");
}

#[test]
fn two_drills_with_one_name_cannot_both_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = drill_file(
        dir.path(),
        "same",
        &format!("answers: {{ approve: yes, tell: done }}\n{WORLD}"),
    );
    let b = dir.path().join("copy.yaml");
    std::fs::copy(&a, &b).unwrap();
    let (code, out, _) = drill(dir.path(), &[path(&a), path(&b)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("ERROR") && out.contains("the drill name `same` is also used by"),
        "{out}"
    );
}

/// Issue 13 §3: a drill runs through the same session layer as a real run, so an environment
/// value whose name says TOKEN or SECRET is masked in its output, journal and report as a
/// real run masks it (drills used to mask only the drill's secrets).
#[test]
fn a_drills_token_environment_value_is_masked_like_a_real_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: envy, title: Envy }
env: [API_TOKEN]
steps:
  - id: show
    safety: read-only
    shell: { argv: ["echo", "token {{ env.API_TOKEN }}"] }
"#,
    );
    write(
        dir.path(),
        "envy.drill.yaml",
        r#"apiVersion: runbook/v1
kind: Drill
metadata: { name: envy }
runbook: rb.yaml
env: { API_TOKEN: drill-token-4417 }
world:
  shell:
    - match: { argv: [echo, "**"] }
      respond: { stdout: "token drill-token-4417\n" }
expect: { outcome: succeeded }
"#,
    );
    let (code, out, err) = drill(dir.path(), &["envy.drill.yaml", "--report-dir", "out"]);
    assert_eq!(code, 0, "{out}{err}");
    let run_dir = dir.path().join("out/20260101T000000Z-envy-drill");
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    for (what, text) in [
        ("output", format!("{out}{err}")),
        ("journal", journal.clone()),
        ("report", report),
    ] {
        assert!(
            !text.contains("drill-token-4417"),
            "the token is in the drill's {what}:\n{text}"
        );
    }
    assert!(journal.contains("token ***"), "{journal}");
}
