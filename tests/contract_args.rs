//! One validation per verb, shared by the real backends, the drill world and `check`: an
//! argument the real backend rejects is rejected by `check` at its line and column when it is
//! literal, and in a drill with the real backend's message when it is only known once
//! rendered. An `assert` whose conditions do not deserialize fails closed.
//! (The real backends' side of the same messages: tests/contract_backends.rs.)

use crate::common;

use std::path::Path;

use common::*;

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = runbook(dir).args(args).output().unwrap();
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

/// `file:line:col` of the first occurrence of `needle` on line `line` (1-based).
fn at(file: &str, text: &str, line: usize, needle: &str) -> String {
    let l = text.lines().nth(line - 1).unwrap();
    let col = l
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {l}"))
        + 1;
    format!("{file}:{line}:{col}")
}

const LITERAL: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: literal-args, title: Arguments the backends reject }
backends:
  k8s: { kubernetes: { namespace: prod } }
  stack: { compose: { project: shop } }
steps:
  - id: image
    kubernetes:
      set_image: { name: web, image: "" }
  - id: env
    kubernetes:
      set_env: { name: web }
  - id: scale
    kubernetes:
      scale: { name: web, replicas: -2 }
  - id: compose_image
    compose:
      set_image: { service: web, image: "" }
  - id: templated
    kubernetes:
      set_image: { name: web, image: "{{ run.id }}" }
"#;

#[test]
fn check_reports_literal_arguments_the_backends_reject_at_their_location() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", LITERAL);
    let (code, _, err) = run(dir.path(), &["check", "rb.yaml"]);
    assert_eq!(code, 2, "{err}");
    for (line, needle, msg) in [
        (10, "\"\"", "kubernetes.set_image: `image` is empty"),
        (
            13,
            "set_env",
            "kubernetes.set_env: set_env needs `set` or `unset`",
        ),
        (
            16,
            "-2",
            "kubernetes.scale: replicas must be 0 or more, not -2",
        ),
        (
            19,
            "\"\"",
            "compose.set_image: set_image needs a `service` and an `image`",
        ),
    ] {
        let loc = at("rb.yaml", LITERAL, line, needle);
        // The message, then where it is: `╭─[rb.yaml:10:38]`.
        let after = err
            .find(msg)
            .map(|i| &err[i..])
            .unwrap_or_else(|| panic!("no `{msg}` in:\n{err}"));
        let shown = after.split('[').nth(1).and_then(|s| s.split(']').next());
        assert_eq!(shown, Some(loc.as_str()), "`{msg}` at {loc}:\n{err}");
    }
    // A template is known only once rendered: checked then, not here.
    assert_eq!(err.matches("`image` is empty").count(), 1, "{err}");
}

const RUNBOOK: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: rendered-args, title: An image known only once rendered }
inputs:
  image: { type: string, default: "" }
backends:
  k8s: { kubernetes: { namespace: prod } }
steps:
  - id: roll
    kubernetes:
      set_image: { name: web, image: "{{ inputs.image }}" }
"#;

const DRILL: &str = r#"apiVersion: runbook/v1
kind: Drill
metadata: { name: empty-image }
runbook: rb.yaml
inputs: { image: "" }
world:
  kubernetes:
    deployments:
      - { namespace: prod, name: web, revisions: ["web:v1"] }
expect:
  outcome: succeeded
"#;

#[test]
fn a_drill_rejects_a_rendered_empty_image_with_the_real_backends_message() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", RUNBOOK);
    write(dir.path(), "drill.yaml", DRILL);
    let (code, out, err) = run(dir.path(), &["drill", "drill.yaml"]);
    assert_eq!(code, 1, "the drill fails\n{out}{err}");
    assert!(
        out.contains("kubernetes.set_image: `image` is empty"),
        "the real backend's message\n{out}{err}"
    );
    // Training mode goes through the same validation.
    let (code, _, err) = run(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--world",
            "drill.yaml",
            "--fast",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(
        fin[0]["error"], "kubernetes.set_image: `image` is empty",
        "{fin:?}"
    );
    // Not retried and nothing changed: the call never reached the world.
    assert!(of_kind(&ev, "world_changed").is_empty());
}

#[test]
fn an_assert_without_conditions_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: empty-assert, title: An assert that proves nothing }
steps:
  - id: proves_nothing
    assert: []
  - id: after
    shell: { argv: ["true"] }
"#,
    );
    let (code, _, err) = run(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ],
    );
    assert_eq!(code, 1, "no conditions is not a pass\n{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "step_finished");
    assert_eq!(fin[0]["step"], "proves_nothing");
    assert_eq!(fin[0]["outcome"], "failed");
    assert_eq!(fin[0]["error"], "the assert has no conditions");
    assert!(of_kind(&ev, "step_started")
        .iter()
        .all(|e| e["step"] != "after"));
}
