//! Host effects: a called runbook's secrets and environment variables come from the host in a
//! real run, and never from it in a drill or a training run, even when the host has them.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

const VAR: &str = "RUNBOOK_HOSTEFFECTS_VAR";
const TOKEN: &str = "RUNBOOK_HOSTEFFECTS_TOKEN";
const HOST_VAR: &str = "from-the-host";
const HOST_TOKEN: &str = "host-token-8c1d5e2f9a7b43d6";
const HOST_KEY: &str = "host-key-5b0e9c3a71f2d84e";

/// A runbook that calls one asserting what it was given from the host equals its inputs.
fn runbooks(dir: &Path) {
    write(
        dir,
        "child.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: host-child, title: Compares what the host gives with what is expected }}
inputs:
  want_var: {{ type: string }}
  want_token: {{ type: string }}
  want_key: {{ type: string }}
env: [{VAR}]
secrets:
  token: {{ env: {TOKEN} }}
  key: {{ file: key.txt }}
steps:
  - id: compare
    assert:
      - that: "env.{VAR} == inputs.want_var"
      - that: "secrets.token == inputs.want_token"
      - that: "secrets.key == inputs.want_key"
"#
        ),
    );
    write(
        dir,
        "parent.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: host-parent, title: Calls a runbook that reads the host }
inputs:
  want_var: { type: string }
  want_token: { type: string }
  want_key: { type: string }
steps:
  - id: child
    call:
      runbook: child.yaml
      inputs:
        want_var: "{{ inputs.want_var }}"
        want_token: "{{ inputs.want_token }}"
        want_key: "{{ inputs.want_key }}"
"#,
    );
    write(dir, "key.txt", &format!("{HOST_KEY}\n"));
    // The drill's stand-ins: no env value, placeholder secrets.
    write(
        dir,
        "drill.yaml",
        r#"apiVersion: runbook/v1
kind: Drill
metadata: { name: host-isolated }
runbook: parent.yaml
inputs: { want_var: "", want_token: drill-secret-token, want_key: drill-secret-key }
"#,
    );
}

/// The binary with the host's environment variable and secret set.
fn with_host(dir: &Path) -> Command {
    let mut c = runbook(dir);
    c.env(VAR, HOST_VAR).env(TOKEN, HOST_TOKEN);
    c
}

fn inputs(var: &str, token: &str, key: &str) -> Vec<String> {
    [("want_var", var), ("want_token", token), ("want_key", key)]
        .iter()
        .flat_map(|(k, v)| ["--input".to_string(), format!("{k}={v}")])
        .collect()
}

const RUN: &[&str] = &[
    "--non-interactive",
    "--reason",
    "x",
    "--journal-dir",
    "runs",
];

#[test]
fn a_real_runs_called_runbook_reads_the_host() {
    let dir = tempfile::tempdir().unwrap();
    runbooks(dir.path());
    let o = with_host(dir.path())
        .args(["run", "parent.yaml"])
        .args(RUN)
        .args(inputs(HOST_VAR, HOST_TOKEN, HOST_KEY))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    // The host's secret is masked like any other.
    assert!(
        !out.contains(HOST_TOKEN) && !err.contains(HOST_TOKEN),
        "{out}{err}"
    );
}

#[test]
fn a_drills_called_runbook_never_reads_the_host() {
    let dir = tempfile::tempdir().unwrap();
    runbooks(dir.path());
    let o = with_host(dir.path())
        .args(["drill", "drill.yaml"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("PASS   host-isolated"), "{out}{err}");
}

#[test]
fn a_training_runs_called_runbook_never_reads_the_host() {
    let dir = tempfile::tempdir().unwrap();
    runbooks(dir.path());
    let o = with_host(dir.path())
        .args(["run", "parent.yaml", "--world", "drill.yaml", "--fast"])
        .args(RUN)
        .args(inputs("", "drill-secret-token", "drill-secret-key"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
}
