//! Input values with shell metacharacters and template syntax are data: they reach argv,
//! script environment and HTTP bodies byte for byte, and are never evaluated.

use crate::common;

use common::*;
use serde_json::{json, Value};

const NASTY: &str =
    "$(touch pwned) {{ 7*7 }} ; rm -rf ~ `touch pwned2` 'q\" {% if 1 %}x{% endif %}";

#[test]
fn hostile_input_is_passed_literally_everywhere() {
    let srv = Server::start(vec![("/body", vec![Reply::json(200, json!({"ok": true}))])]);
    let dir = tempfile::tempdir().unwrap();
    let rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: hostile, title: Hostile input }}
inputs:
  val: {{ type: string }}
steps:
  - id: argv
    safety: read-only
    shell: {{ argv: ["printf", "%s", "{{{{ inputs.val }}}}"] }}
    capture: {{ out: "result.stdout" }}
  - id: script
    safety: read-only
    shell:
      script: printf '%s' "$RUNBOOK_INPUT_VAL" > from-input-env; printf '%s' "$V" > from-step-env
      env: {{ V: "{{{{ inputs.val }}}}" }}
  - id: post
    http: {{ request: {{ method: POST, url: "{url}", json: {{ v: "{{{{ inputs.val }}}}", again: "{{{{ steps.argv.out }}}}" }} }} }}
    no_undo: test
"#,
        url = srv.url("/body")
    );
    write(dir.path(), "rb.yaml", &rb);
    let input = format!("val={NASTY}");
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--input",
            &input,
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!dir.path().join("pwned").exists());
    assert!(!dir.path().join("pwned2").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("from-input-env")).unwrap(),
        NASTY
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("from-step-env")).unwrap(),
        NASTY
    );
    let ev = events(&journal_path(&dir.path().join("runs")));
    let cap = of_kind(&ev, "capture");
    assert_eq!(cap[0]["value"], NASTY);
    let seen = srv.seen.lock().unwrap();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["v"], NASTY);
    assert_eq!(
        body["again"], NASTY,
        "a captured value is not rendered a second time"
    );
}

#[test]
fn nul_and_huge_inputs_are_handled_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: big, title: Big input }
inputs:
  val: { type: string }
steps:
  - id: len
    safety: read-only
    shell: { argv: ["wc", "-c"], stdin: "{{ inputs.val }}" }
    capture: { n: "result.stdout | trim | int" }
  - id: env
    safety: read-only
    shell: { script: 'printf %s "${RUNBOOK_INPUT_VAL-unset}"' }
    capture: { v: "result.stdout" }
"#,
    );
    // 1 MiB is over the kernel's limit for one argument: pass it in an inputs file.
    let big = "x".repeat(1 << 20);
    write(
        dir.path(),
        "inputs.json",
        &json!({ "val": big }).to_string(),
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--inputs",
            "inputs.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "capture")[0]["value"], json!(1 << 20));
    // Too big for the environment: left out rather than making every process fail to start.
    assert_eq!(of_kind(&ev, "capture")[1]["value"], "unset");
    // A NUL byte cannot travel in argv or the environment: the input is rejected clearly.
    write(dir.path(), "nul.json", r#"{"val": "a\u0000b"}"#);
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs-nul",
            "--inputs",
            "nul.json",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("NUL"), "{err}");
    // A journal line stays bounded even with a 1 MiB input in it.
    let journal = std::fs::read_to_string(journal_path(&dir.path().join("runs"))).unwrap();
    assert!(journal
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
}

#[test]
fn non_utf8_process_output_is_kept_as_text() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: bytes, title: Bytes }
steps:
  - id: bytes
    safety: read-only
    shell: { script: "printf 'ok \\377\\376 end'" }
    capture: { out: "result.stdout" }
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
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let ev = events(&journal_path(&dir.path().join("runs")));
    let v = of_kind(&ev, "capture")[0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(v.starts_with("ok ") && v.ends_with(" end"), "{v}");
}
