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

#[test]
fn every_poll_line_and_the_report_show_the_measured_value_not_only_the_threshold() {
    // Issue 14: "ten lines of `not yet: steps.recovered.rate < inputs.failure_rate_threshold
    // (inputs.failure_rate_threshold=0.01)` never show the 0.043 measured".
    let srv = Server::start(vec![(
        "/lat",
        vec![
            Reply::json(200, json!({"p95": 310.5})),
            Reply::json(200, json!({"p95": 250.25})),
            Reply::json(200, json!({"p95": 180.75})),
        ],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let text_rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: verdicts, title: Verdicts }}
inputs:
  p95_target_seconds: {{ type: number, default: 120 }}
steps:
  - id: latency
    http: {{ request: {{ url: "{}" }} }}
    capture: {{ p95: "result.json.p95" }}
    verify:
      - that: "steps.latency.p95 <= inputs.p95_target_seconds"
    until: {{ timeout: 1s, interval: 300ms }}
"#,
        srv.url("/lat")
    );
    write(dir.path(), "rb.yaml", &text_rb);
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--report",
            "report.md",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (so, se) = text(&out);
    let all = format!("{so}{se}");
    // The view writes `name=value`, the status line `name = value`.
    let polls: Vec<String> = all
        .lines()
        .filter(|l| l.contains("not yet"))
        .map(|l| l.replace(" = ", "="))
        .collect();
    assert!(polls.len() >= 2, "poll lines: {all}");
    // Each poll line shows the value it measured, and each poll's own value.
    for l in &polls {
        assert!(
            l.contains("steps.latency.p95="),
            "a poll line without the value: {l}"
        );
    }
    for v in ["310.5", "250.25", "180.75"] {
        assert!(
            polls
                .iter()
                .any(|l| l.contains(&format!("steps.latency.p95={v}"))),
            "no poll line shows {v}: {all}"
        );
    }
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(msg.contains("steps.latency.p95 = 180.75"), "{msg}");
    // Captures of failed polls are journaled with each evaluation.
    let observed: Vec<&serde_json::Value> = of_kind(&ev, "verify_evaluated")
        .iter()
        .map(|e| &e["checks"][0]["observed"]["steps.latency.p95"])
        .collect();
    assert_eq!(
        observed[..3],
        [&json!(310.5), &json!(250.25), &json!(180.75)]
    );
    // The report's verification summary: the measured values, in order, not `120 → 120`.
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("steps.latency.p95 310.5 → 250.25 → 180.75"),
        "the report's verification summary: {md}"
    );
    assert!(!md.contains("120 → 120"), "{md}");
}
