//! Three-valued verification with any backend (here a real HTTP server on loopback): a
//! missing field or an empty list is inconclusive, never a pass; a failure shows the measured
//! value (the step's own capture), not only the threshold; a step without `until` does not
//! number polls.

use crate::common;

use common::*;
use serde_json::json;

fn rb(url: &str, until: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: verdicts, title: Verdicts }}
inputs:
  p95_target_seconds: {{ type: number, default: 120 }}
steps:
  - id: latency
    http: {{ request: {{ url: "{url}" }} }}
    capture: {{ p95: "result.json.p95" }}
    verify:
      - that: "steps.latency.p95 <= inputs.p95_target_seconds"
        message: the p95 latency is under the target
{until}"#
    )
}

fn run(dir: &std::path::Path) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let ev = events(&journal_path(&dir.join("runs")));
    (out, ev)
}

#[test]
fn a_failure_shows_the_measured_value_and_no_poll_number_without_until() {
    let srv = Server::start(vec![(
        "/lat",
        vec![Reply::json(200, json!({"p95": 310.5}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &rb(&srv.url("/lat"), ""));
    let (out, ev) = run(dir.path());
    assert_ne!(out.status.code(), Some(0));
    let (_, err) = text(&out);
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(
        msg.contains("steps.latency.p95 = 310.5"),
        "the measured value: {msg}"
    );
    assert!(!err.contains("poll 1"), "no until, no polls: {err}");
    assert_eq!(of_kind(&ev, "verify_evaluated")[0]["verdict"], "fail");
}

#[test]
fn a_missing_field_is_inconclusive_and_polled_until_the_timeout() {
    let srv = Server::start(vec![("/lat", vec![Reply::json(200, json!({"other": 1}))])]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &rb(
            &srv.url("/lat"),
            "    until: { timeout: 1s, interval: 200ms }\n",
        ),
    );
    let (out, ev) = run(dir.path());
    assert_ne!(out.status.code(), Some(0), "no data never passes");
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(msg.contains("no data"), "{msg}");
    assert!(msg.contains("still no data after 1s"), "{msg}");
    assert!(
        of_kind(&ev, "attempt_finished")[0]["polls"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[test]
fn a_null_value_is_inconclusive_where_minijinja_would_say_true() {
    // `none <= 120` is true in minijinja: the engine never lets that pass.
    let srv = Server::start(vec![("/lat", vec![Reply::json(200, json!({"p95": null}))])]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &rb(&srv.url("/lat"), ""));
    let (out, ev) = run(dir.path());
    assert_ne!(out.status.code(), Some(0));
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v[0]["verdict"], "inconclusive");
    assert_eq!(v[0]["checks"][0]["verdict"], "inconclusive");
    assert!(v[0]["checks"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("steps.latency.p95"));
}

#[test]
fn an_empty_list_where_one_item_is_expected_is_inconclusive() {
    let srv = Server::start(vec![(
        "/items",
        vec![Reply::json(200, json!({"items": []}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: verdicts, title: Verdicts }}
steps:
  - id: first
    http: {{ request: {{ url: "{}" }} }}
    verify:
      - that: "result.json.items[0].status != 'failed'"
"#,
            srv.url("/items")
        ),
    );
    let (out, ev) = run(dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        of_kind(&ev, "verify_evaluated")[0]["verdict"],
        "inconclusive"
    );
}
