//! `runbook plan` renders what a run would do with the given inputs, and never shows a
//! secret's value, even when the secret is set in the environment.

use crate::lang_support;

use lang_support::{root, runbook_in};

const EXAMPLE: &str = "examples/feature-flag-kill-switch.yaml";
const FLAGS_TOKEN: &str = "flags-token-5f0c2a9e";
const METRICS_TOKEN: &str = "metrics-token-91d3b7c4";

fn plan(extra: &[&str]) -> lang_support::Output {
    let mut args = vec!["plan", EXAMPLE, "--input", "flag=checkout-v2"];
    args.extend(extra);
    runbook_in(
        &root(),
        &args,
        &[
            ("FLAGS_API_TOKEN", FLAGS_TOKEN),
            ("METRICS_TOKEN", METRICS_TOKEN),
        ],
    )
}

fn assert_no_secret(out: &lang_support::Output) {
    for secret in [FLAGS_TOKEN, METRICS_TOKEN] {
        assert!(
            !out.stdout.contains(secret),
            "secret in stdout:\n{}",
            out.stdout
        );
        assert!(
            !out.stderr.contains(secret),
            "secret in stderr:\n{}",
            out.stderr
        );
    }
}

#[test]
fn text_plan_shows_rendered_actions() {
    let out = plan(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_secret(&out);
    let text = &out.stdout;
    // Inputs and defaults are rendered into the actions, including the backend's base URL.
    assert!(text.contains("flag = \"checkout-v2\""));
    assert!(text.contains("GET https://flags.internal/api/v1/production/flags/checkout-v2"));
    assert!(text.contains("PATCH https://flags.internal/api/v1/production/flags/checkout-v2"));
    // The called runbook's steps are planned under the caller's step.
    assert!(text.contains("restart-workers/restart"));
    assert!(text.contains("kubernetes rollout_restart Deployment/checkout-worker"));
    // Gates, guards, budgets and values only known at run time are named.
    assert!(text.contains("--answer approve=yes"));
    assert!(text.contains("when     steps.state.enabled → decided at run time"));
    assert!(text.contains("poll every 30s for up to 10m"));
    assert!(text.contains("run-time steps.ticket.value"));
    insta::assert_snapshot!(text);
}

#[test]
fn json_plan_masks_secrets_where_they_are_used() {
    let out = plan(&["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_no_secret(&out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "error-rate")
        .expect("the error-rate step is planned");
    // The secret is referenced here, so the plan shows the mask in its place.
    assert_eq!(step["rendered"]["env"]["METRICS_TOKEN"], "***");
    assert_eq!(v["inputs"]["environment"], "production");
    assert_eq!(v["max_safety"], "reversible");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn plan_refuses_bad_inputs_before_anything_else() {
    let out = runbook_in(
        &root(),
        &["plan", EXAMPLE, "--input", "environment=prod"],
        &[],
    );
    assert_eq!(out.code, 2);
    // Both problems at once: the missing required input and the value outside the enum.
    assert!(
        out.stderr.contains("missing required input `flag`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("input `environment` must be one of"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_prompt_that_computes_with_run_time_values_is_shown_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rb.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: computed-prompt, title: Computed prompt }
steps:
  - id: rate
    safety: read-only
    shell: { argv: [echo, "0.004"] }
    capture: { value: "result.stdout | float" }
  - id: go
    confirm:
      prompt: "The rate is {{ '%.2f' | format(steps.rate.value * 100) }}%: go on?"
"#,
    )
    .unwrap();
    let out = runbook_in(dir.path(), &["plan", "rb.yaml"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Rendering needs the captured number, which only the run has: the plan shows the
    // prompt's template rather than an empty prompt or an error.
    assert!(
        out.stdout.contains(
            "confirm: The rate is {{ '%.2f' | format(steps.rate.value * 100) }}%: go on?"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("run-time steps.rate.value"),
        "{}",
        out.stdout
    );
}

#[test]
fn plan_live_names_arguments_the_verb_rejects_once_rendered() {
    // `--live` previews the typed call the run would make; an argument only known once
    // rendered (an empty image) is what the step would fail with, before any cluster is read.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rb.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: live-invalid, title: Live preview of an invalid argument }
inputs:
  image: { default: "app:1" }
backends:
  k: { kubernetes: {} }
steps:
  - id: image
    kubernetes: { set_image: { name: web, container: app, image: "{{ inputs.image }}" } }
    no_undo: a test
"#,
    )
    .unwrap();
    let out = runbook_in(
        dir.path(),
        &["plan", "rb.yaml", "--live", "--input", "image="],
        &[("KUBECONFIG", "/nonexistent")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("live     the step would fail: kubernetes.set_image: `image` is empty"),
        "{}",
        out.stdout
    );
}
