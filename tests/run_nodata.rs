//! Comparisons and arithmetic with a missing or NaN value never silently evaluate (issue 14):
//! a `when:` guard fails its step closed (neither run nor skipped), a precondition stops the
//! run, a capture or an `assert` is inconclusive, and a template that computes with nothing
//! fails the step with "no data", each naming the expression and the value read. The value
//! comes from a real HTTP server on loopback answering `{"rate": null}` (how a JSON encoder
//! writes NaN) or leaving the field out.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn rb(url: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: nodata, title: No data }}
steps:
  - id: measure
    http: {{ request: {{ url: "{url}" }} }}
    capture: {{ rate: result.json.rate }}
{steps}"#
    )
}

/// A server whose `/m` answers `body`.
fn server(body: Value) -> Server {
    Server::start(vec![("/m", vec![Reply::json(200, body)])])
}

fn run(dir: &std::path::Path, text: &str) -> (std::process::Output, Vec<Value>) {
    write(dir, "rb.yaml", text);
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
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
    let ev = events(&journal_path(&runs));
    (out, ev)
}

fn finished<'a>(ev: &'a [Value], step: &str) -> &'a Value {
    of_kind(ev, "step_finished")
        .into_iter()
        .find(|e| e["step"] == step)
        .unwrap_or_else(|| panic!("`{step}` did not finish: {ev:?}"))
}

fn guarded(when: &str) -> String {
    format!(
        r#"  - id: act
    when: "{when}"
    shell: {{ argv: [touch, ran] }}
"#
    )
}

#[test]
fn a_guard_comparing_a_null_value_fails_its_step_closed_either_way() {
    let srv = server(json!({"rate": null}));
    let dir = tempfile::tempdir().unwrap();
    // minijinja alone: `none < 0.01` is true (the step would run), `none >= 0.01` false (it
    // would be skipped). Neither happens.
    for when in ["steps.measure.rate < 0.01", "steps.measure.rate >= 0.01"] {
        let (out, ev) = run(dir.path(), &rb(&srv.url("/m"), &guarded(when)));
        assert_eq!(out.status.code(), Some(1), "{when}: {}", text(&out).1);
        let fin = finished(&ev, "act");
        assert_eq!(fin["outcome"], "failed", "{when}");
        let err = fin["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("guard `{when}` is inconclusive")),
            "{err}"
        );
        assert!(
            err.contains("no data: `steps.measure.rate` has no value (null or NaN)"),
            "the value read: {err}"
        );
        assert!(err.contains("neither run nor skipped"), "{err}");
        assert!(!dir.path().join("ran").exists(), "{when}: the step ran");
        assert!(of_kind(&ev, "step_skipped").is_empty(), "{when}: skipped");
        // The operator sees it too.
        let (_, stderr) = text(&out);
        assert!(stderr.contains("is inconclusive"), "{stderr}");
    }
}

#[test]
fn a_guard_reading_a_skipped_steps_capture_fails_closed_and_an_explicit_guard_decides() {
    let srv = server(json!({"rate": 0.5}));
    let dir = tempfile::tempdir().unwrap();
    let text_rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: nodata, title: No data }}
inputs:
  probe: {{ type: boolean, default: false }}
steps:
  - id: measure
    when: inputs.probe
    http: {{ request: {{ url: "{}" }} }}
    capture: {{ rate: result.json.rate }}
{}"#,
        srv.url("/m"),
        guarded("steps.measure.rate > 0.01")
    );
    // `measure` was skipped: the rate `act` compares is absent.
    let (out, ev) = run(dir.path(), &text_rb);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(of_kind(&ev, "step_skipped")[0]["step"], "measure");
    let err = finished(&ev, "act")["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("guard `steps.measure.rate > 0.01` is inconclusive (no data: `steps.measure.rate` is absent)"),
        "{err}"
    );
    assert!(!dir.path().join("ran").exists());

    // The author says what no data means: the guard is an answer.
    let srv = server(json!({"rate": null}));
    let (out, ev) = run(
        dir.path(),
        &rb(
            &srv.url("/m"),
            &guarded("steps.measure.rate is none or steps.measure.rate > 0.01"),
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(finished(&ev, "act")["outcome"], "succeeded");
    assert!(dir.path().join("ran").exists());
    // A number is compared as usual.
    let _ = std::fs::remove_file(dir.path().join("ran"));
    let srv = server(json!({"rate": 0.002}));
    let (out, ev) = run(
        dir.path(),
        &rb(&srv.url("/m"), &guarded("steps.measure.rate > 0.01")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(of_kind(&ev, "step_skipped").len(), 1);
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn a_capture_computing_with_a_null_value_is_inconclusive_not_none() {
    let srv = server(json!({"rate": null}));
    let dir = tempfile::tempdir().unwrap();
    let steps = r#"  - id: pct
    http: { request: { url: "URL" } }
    capture: { pct: "result.json.rate * 100" }
    verify:
      - that: "steps.pct.pct < 5"
    until: { timeout: 1s, interval: 300ms }
"#
    .replace("URL", &srv.url("/m"));
    let (out, ev) = run(dir.path(), &rb(&srv.url("/m"), &steps));
    assert_eq!(out.status.code(), Some(1));
    let v: Vec<&Value> = of_kind(&ev, "verify_evaluated")
        .into_iter()
        .filter(|e| e["step"] == "pct")
        .collect();
    assert!(v.len() >= 2, "polled: {v:?}");
    assert!(v.iter().all(|e| e["verdict"] == "inconclusive"), "{v:?}");
    let err = finished(&ev, "pct")["error"].as_str().unwrap().to_string();
    assert!(err.contains("verify inconclusive: no data"), "{err}");
    assert!(
        err.contains("capture `pct` = `result.json.rate * 100`: `result.json.rate` has no value"),
        "{err}"
    );
    assert!(err.contains("still no data after 1s"), "{err}");
    assert!(
        of_kind(&ev, "capture").iter().all(|c| c["name"] != "pct"),
        "no capture of nothing"
    );
}

#[test]
fn an_assert_comparing_a_null_value_is_inconclusive() {
    let srv = server(json!({"rate": null}));
    let dir = tempfile::tempdir().unwrap();
    let steps = r#"  - id: check
    assert:
      - that: "steps.measure.rate < 0.01"
"#;
    let (out, ev) = run(dir.path(), &rb(&srv.url("/m"), steps));
    assert_eq!(out.status.code(), Some(1));
    let v = of_kind(&ev, "verify_evaluated");
    let c = v.iter().find(|e| e["step"] == "check").unwrap();
    assert_eq!(c["verdict"], "inconclusive");
    let err = finished(&ev, "check")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("verify inconclusive"), "{err}");
    assert!(err.contains("`steps.measure.rate`"), "{err}");
}

#[test]
fn a_template_computing_with_a_null_value_fails_the_step_with_no_data() {
    let srv = server(json!({"rate": null}));
    let dir = tempfile::tempdir().unwrap();
    for arg in [
        "{{ steps.measure.rate * 100 }}",
        "breaker tripped: {{ steps.measure.rate < 0.01 }}",
    ] {
        let steps = format!(
            r#"  - id: tell
    shell: {{ argv: [sh, -c, 'echo "$1" > told', sh, "{arg}"] }}
"#
        );
        let (out, ev) = run(dir.path(), &rb(&srv.url("/m"), &steps));
        assert_eq!(out.status.code(), Some(1), "{arg}");
        let err = finished(&ev, "tell")["error"].as_str().unwrap().to_string();
        assert!(
            err.contains("no data: `steps.measure.rate` has no value (null or NaN)"),
            "{arg}: {err}"
        );
        assert!(!dir.path().join("told").exists(), "{arg}: the step ran");
    }
    // Shown as it is, a null is not computed with: the step runs.
    let steps = r#"  - id: tell
    shell: { argv: [sh, -c, 'echo "$1" > told', sh, "rate {{ steps.measure.rate }}"] }
"#;
    let (out, _) = run(dir.path(), &rb(&srv.url("/m"), steps));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert!(dir.path().join("told").exists());
}
