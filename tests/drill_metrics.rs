//! Drills with scripted metrics (tests/fixtures/drills/metrics): the canary `analysis` step
//! over virtual time — recovering after three failed checks, staying bad, no data failing by
//! default or asking the operator — and a plain polled `verify` with `on_inconclusive: ask`,
//! with the same verdict code as a real run; the report's table of checks and the HTML chart.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/drills/metrics")
        .canonicalize()
        .unwrap()
}

fn drill(dir: &Path, name: &str) -> (std::process::Output, Vec<Value>, PathBuf) {
    let rd = dir.join(name);
    let out = runbook(dir)
        .arg("drill")
        .arg(fixtures().join(format!("{name}.yaml")))
        .arg("--report-dir")
        .arg(&rd)
        .output()
        .unwrap();
    let run = std::fs::read_dir(&rd)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ev = events(&run.join("journal.jsonl"));
    (out, ev, run)
}

#[test]
fn every_metrics_drill_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = runbook(dir.path())
        .arg("drill")
        .arg(fixtures())
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    assert!(so.contains("9 drills: 9 passed"), "{so}");
}

#[test]
fn a_canary_recovering_after_three_failed_checks_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (out, ev, run) = drill(dir.path(), "recovers");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let checks = of_kind(&ev, "analysis_check");
    let verdicts: Vec<&str> = checks
        .iter()
        .map(|c| c["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["fail", "fail", "fail", "pass", "pass", "pass", "pass", "pass", "pass", "pass"]
    );
    assert_eq!(checks[0]["metrics"][0]["name"], "success-rate");
    assert_eq!(checks[0]["metrics"][0]["value"], 92.0);
    assert!(checks[0]["metrics"][0]["query"]
        .as_str()
        .unwrap()
        .contains("http_requests_total"));
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("| 3 | 00:02:00 | 92 | 420 | fail | 3 |"),
        "{md}"
    );
    // The HTML report draws each metric over the checks, with its bound.
    let html = runbook(dir.path())
        .args(["report", "--format", "html"])
        .arg(&run)
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&html.stdout);
    assert!(page.contains("class=\"analysis-chart\""), "{page}");
    assert!(page.contains("<polyline"), "a line through the values");
    assert!(
        page.contains("stroke-dasharray"),
        "the bound as a dashed line"
    );
}

#[test]
fn a_canary_that_stays_bad_fails_at_failed_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ev, _) = drill(dir.path(), "stays-bad");
    let checks = of_kind(&ev, "analysis_check");
    assert_eq!(checks.len(), 5);
    assert_eq!(checks[4]["failed"], 5);
    assert_eq!(checks[4]["metrics"][1]["verdict"], "fail");
}

#[test]
fn no_data_and_nan_fail_the_checks_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ev, _) = drill(dir.path(), "no-data-fails");
    let checks = of_kind(&ev, "analysis_check");
    let v: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| {
            (
                c["verdict"].as_str().unwrap(),
                c["metrics"][1]["text"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        v,
        [
            ("pass", "-"),
            ("pass", "-"),
            ("inconclusive", "no data"),
            ("inconclusive", "no data"),
            ("inconclusive", "NaN"),
            ("inconclusive", "NaN"),
            ("inconclusive", "NaN"),
        ]
    );
    let fin = of_kind(&ev, "step_finished");
    let err = fin[0]["error"].as_str().unwrap();
    assert!(
        err.contains("5 failed checks of 7") && err.contains("no data"),
        "{err}"
    );
}

#[test]
fn no_data_asks_the_operator_when_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ev, _) = drill(dir.path(), "no-data-asks");
    let asked = of_kind(&ev, "gate_asked");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["gate"], "inconclusive");
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "needs-answer");
    let (_, ev, _) = drill(dir.path(), "no-data-accepted");
    assert_eq!(
        of_kind(&ev, "gate_answered").len(),
        10,
        "one answer per check without data"
    );
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "succeeded");
}

#[test]
fn a_failed_verification_shows_the_measured_latency_not_only_the_target() {
    // Issue 12 item 5: timeout-recovery's latency-persists used to say only
    // "observed inputs.p95_target_seconds = 120".
    let dir = tempfile::tempdir().unwrap();
    let drill = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks/drills/timeout-recovery/latency-persists.yaml");
    let rd = dir.path().join("rd");
    let out = runbook(dir.path())
        .arg("drill")
        .arg(&drill)
        .arg("--report-dir")
        .arg(&rd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let run = std::fs::read_dir(&rd)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ev = events(&run.join("journal.jsonl"));
    let fin = of_kind(&ev, "step_finished");
    let err = fin
        .iter()
        .find(|e| e["step"] == "p95_recovered")
        .and_then(|e| e["error"].as_str())
        .unwrap();
    assert!(err.contains("steps.p95_recovered.seconds = 144.0"), "{err}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("verification failed: steps.p95\\_recovered.seconds 144.0 → 144.0"),
        "the report's chain shows the measured values, not the threshold: {md}"
    );
}

#[test]
fn a_polled_verification_without_data_asks_once_its_polls_are_spent() {
    // `on_inconclusive: ask` on a plain `prometheus` step with `verify` and `until` (not only
    // on the canary `analysis` step): NaN, then no data, polled until the timeout, then one
    // question; no answer stops the run as needing one.
    let dir = tempfile::tempdir().unwrap();
    let (out, ev, _) = drill(dir.path(), "verify-no-data-asks");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v.len(), 5, "polled every 30s for 2m: {v:?}");
    assert!(v.iter().all(|e| e["verdict"] == "inconclusive"), "{v:?}");
    let reasons: Vec<&str> = v
        .iter()
        .map(|e| e["checks"][0]["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(reasons[0].contains("NaN, not a number"), "{reasons:?}");
    assert!(
        reasons[4].contains("no data: the query returned no series"),
        "{reasons:?}"
    );
    let asked = of_kind(&ev, "gate_asked");
    assert_eq!(asked.len(), 1, "asked once, after the polls");
    assert_eq!(asked[0]["gate"], "inconclusive");
    let prompt = asked[0]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("no data") && prompt.contains("sum(rate(flow_runs_failed_total[5m]))"),
        "the prompt says no data and shows the query: {prompt}"
    );
    let fin = of_kind(&ev, "step_finished");
    assert_eq!(fin[0]["outcome"], "needs-answer");
    assert!(
        fin[0]["error"]
            .as_str()
            .unwrap()
            .contains("--answer recovered=yes"),
        "{fin:?}"
    );

    // yes: the step passes, once asked; no: it fails and says the operator did not accept it.
    let (_, ev, _) = drill(dir.path(), "verify-no-data-accepted");
    assert_eq!(of_kind(&ev, "gate_answered").len(), 1);
    assert_eq!(of_kind(&ev, "gate_answered")[0]["answer"], "yes");
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "succeeded");
    let (_, ev, run) = drill(dir.path(), "verify-no-data-refused");
    // The report's verification summary says no data at each poll, never `false`.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains(
            "capture `rate` = `result.value` no data → no data → no data → no data → no data \
             — still no data after 5 polls"
        ),
        "{md}"
    );
    let fin = of_kind(&ev, "step_finished");
    assert_eq!(fin[0]["outcome"], "failed");
    let err = fin[0]["error"].as_str().unwrap();
    assert!(
        err.contains("no data") && err.contains("the operator did not accept it"),
        "{err}"
    );
    // A wrong value is a failure, never a question.
    let (_, ev, _) = drill(dir.path(), "verify-wrong-value");
    assert!(of_kind(&ev, "gate_asked").is_empty());
    let fin = of_kind(&ev, "step_finished");
    assert!(
        fin[0]["error"]
            .as_str()
            .unwrap()
            .contains("observed steps.recovered.rate = 0.043"),
        "{fin:?}"
    );
}
