//! The Prometheus backend and three-valued verification against a real Prometheus
//! (tests/env/prom-up.sh: Debian's `prometheus`, scraping every second). Each test runs its
//! own loopback exporter whose metrics text it sets; its series carry `test="<name>"`.

use crate::backend_env;
use crate::common;

use std::path::Path;
use std::process::Output;

use backend_env::{Exporter, TestEnv};
use common::*;
use serde_json::{json, Value};

fn runbook_with(prom_url: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: prom-test, title: Prometheus test }}
backends:
  metrics: {{ prometheus: {{ url: "{prom_url}", timeout: 5s }} }}
steps:
{steps}"#
    )
}

fn run_rb(dir: &Path, text: &str, extra: &[&str]) -> (Output, Vec<Value>) {
    write(dir, "rb.yaml", text);
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    let out = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--reason",
            "test",
            "--journal-dir",
            "runs",
        ])
        .args(extra)
        .output()
        .unwrap();
    let ev = events(&journal_path(&runs));
    (out, ev)
}

fn env_or_skip() -> Option<TestEnv> {
    backend_env::prometheus()
}

fn url(env: &TestEnv) -> String {
    env.var("RUNBOOK_TEST_PROMETHEUS_URL").to_string()
}

fn step_error(ev: &[Value], step: &str) -> String {
    of_kind(ev, "step_finished")
        .iter()
        .find(|e| e["step"] == step)
        .map(|e| e["error"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn one_series_passes_and_fails_its_threshold_showing_the_value() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-thr");
    ex.set("rb_rate 0.002\n");
    let q = format!("rb_rate{{test=\"{}\"}}", ex.name);
    ex.wait_for(&q, |r| r[0]["value"][1] == "0.002");
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        r#"  - id: rate
    prometheus: {{ query: '{q}' }}
    capture: {{ rate: result.value }}
    verify:
      - that: "steps.rate.rate < 0.01"
        message: the rate is under 1%
"#
    );
    let rb = runbook_with(&url(&env), &steps);
    let (out, ev) = run_rb(dir.path(), &rb, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v[0]["verdict"], "pass");
    assert_eq!(
        v[0]["checks"][0]["observed"]["steps.rate.rate"],
        json!(0.002)
    );
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(
        fin[0]["result"]["query"],
        json!(q),
        "the query as sent is journaled"
    );

    ex.set("rb_rate 0.043\n");
    ex.wait_for(&q, |r| r[0]["value"][1] == "0.043");
    let (out, ev) = run_rb(dir.path(), &rb, &[]);
    assert_ne!(out.status.code(), Some(0));
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v[0]["verdict"], "fail");
    let err = step_error(&ev, "rate");
    assert!(err.contains("verify failed: the rate is under 1%"), "{err}");
    assert!(
        err.contains("steps.rate.rate = 0.043"),
        "the measured value: {err}"
    );
}

#[test]
fn an_empty_vector_is_inconclusive_and_says_no_data_with_the_query() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-empty");
    ex.set("rb_present 1\n");
    ex.wait_for(&format!("rb_present{{test=\"{}\"}}", ex.name), |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    });
    // A typo in the metric name: Prometheus answers an empty vector.
    let q = format!("rb_presnet{{test=\"{}\"}}", ex.name);
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        r#"  - id: recovered
    prometheus: {{ query: '{q}' }}
    verify:
      - that: "result.value < 0.01"
    until: {{ timeout: 2s, interval: 500ms }}
"#
    );
    let (out, ev) = run_rb(dir.path(), &runbook_with(&url(&env), &steps), &[]);
    assert_ne!(out.status.code(), Some(0), "no data never passes");
    let v = of_kind(&ev, "verify_evaluated");
    assert!(v.len() >= 2, "polled until the timeout: {v:?}");
    assert!(v.iter().all(|e| e["verdict"] == "inconclusive"));
    let err = step_error(&ev, "recovered");
    assert!(err.contains("no data"), "{err}");
    assert!(err.contains(&q), "the query as sent: {err}");
    assert!(err.contains("still no data after 2s"), "{err}");
}

#[test]
fn nan_is_inconclusive_not_a_pass() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-nan");
    ex.set("rb_failed 0\nrb_total 0\n");
    let base = format!("{{test=\"{}\"}}", ex.name);
    ex.wait_for(&format!("rb_total{base}"), |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    });
    // 0/0: a breaker that pauses all traffic.
    let q = format!("sum(rb_failed{base}) / sum(rb_total{base})");
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        r#"  - id: recovered
    prometheus: {{ query: '{q}' }}
    capture: {{ rate: result.value }}
    verify:
      - that: "steps.recovered.rate < 0.01"
"#
    );
    let (out, ev) = run_rb(dir.path(), &runbook_with(&url(&env), &steps), &[]);
    assert_ne!(out.status.code(), Some(0));
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(
        fin[0]["result"]["text"], "NaN",
        "NaN is told apart from numbers"
    );
    assert_eq!(fin[0]["result"]["value"], Value::Null);
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v[0]["verdict"], "inconclusive");
    let err = step_error(&ev, "recovered");
    assert!(err.contains("verify inconclusive"), "{err}");
    assert!(
        err.contains("NaN, not a number"),
        "NaN is not reported as no series: {err}"
    );
}

#[test]
fn several_series_where_one_is_expected_is_inconclusive() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-many");
    ex.set("rb_lat{pod=\"a\"} 0.1\nrb_lat{pod=\"b\"} 9\n");
    let q = format!("rb_lat{{test=\"{}\"}}", ex.name);
    ex.wait_for(&q, |r| r.as_array().is_some_and(|a| a.len() == 2));
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        r#"  - id: latency
    prometheus: {{ query: '{q}' }}
    verify:
      - that: "result.value < 1"
"#
    );
    let (out, ev) = run_rb(dir.path(), &runbook_with(&url(&env), &steps), &[]);
    assert_ne!(out.status.code(), Some(0));
    let v = of_kind(&ev, "verify_evaluated");
    assert_eq!(v[0]["verdict"], "inconclusive");
    let err = step_error(&ev, "latency");
    assert!(err.contains("2 series where one was expected"), "{err}");
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(fin[0]["result"]["count"], 2);
    let labels: Vec<&Value> = fin[0]["result"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["labels"]["pod"])
        .collect();
    assert_eq!(labels, vec![&json!("a"), &json!("b")]);
}

#[test]
fn a_range_query_gives_the_series_over_time() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-range");
    ex.set("rb_up 1\n");
    let q = format!("rb_up{{test=\"{}\"}}", ex.name);
    ex.wait_for(&q, |r| r.as_array().is_some_and(|a| a.len() == 1));
    // At least three scrapes, one second apart.
    ex.wait_for(&format!("count_over_time({q}[1m])"), |r| {
        r[0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            >= Some(3.0)
    });
    let dir = tempfile::tempdir().unwrap();
    let steps = format!(
        r#"  - id: window
    prometheus: {{ query: '{q}', range: {{ last: 1m, step: 1s }} }}
    verify:
      - that: "result.type == 'matrix' and (result.series[0].values | length) >= 3"
      - that: "result.value == 1"
"#
    );
    let (out, ev) = run_rb(dir.path(), &runbook_with(&url(&env), &steps), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(
        fin[0]["result"]["range"],
        json!({"last": "1m", "step": "1s"})
    );
}

#[test]
fn prometheus_down_is_a_failed_attempt_and_is_retried() {
    let Some(_env) = env_or_skip() else { return };
    // A port nothing listens on: the server is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let steps = r#"  - id: rate
    prometheus: { query: 'up' }
    retry: { attempts: 3, delay: 100ms }
    verify:
      - that: "result.value == 1"
"#;
    let (out, ev) = run_rb(
        dir.path(),
        &runbook_with(&format!("http://127.0.0.1:{port}"), steps),
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(fin.len(), 3, "each attempt failed and was retried: {fin:?}");
    assert!(
        of_kind(&ev, "verify_evaluated").is_empty(),
        "nothing to verify"
    );
    let err = step_error(&ev, "rate");
    assert!(err.contains("/api/v1/query"), "{err}");
}

#[test]
fn a_polled_verification_without_data_fails_by_default_and_asks_when_told_to() {
    // NaN (0/0) on a plain step with `verify` and `until`, not the canary step: polled until
    // the timeout, then fails (default) or asks (`on_inconclusive: ask`).
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-verify-ask");
    ex.set("rb_failed 0\nrb_total 0\n");
    let base = format!("{{test=\"{}\"}}", ex.name);
    ex.wait_for(&format!("rb_total{base}"), |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    });
    let q = format!("sum(rb_failed{base}) / sum(rb_total{base})");
    let steps = |extra: &str| {
        format!(
            r#"  - id: recovered
    prometheus: {{ query: '{q}' }}
    capture: {{ rate: result.value }}
    verify:
      - that: "steps.recovered.rate < 0.01"
    until: {{ timeout: 2s, interval: 500ms }}
{extra}"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(dir.path(), &runbook_with(&url(&env), &steps("")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert!(of_kind(&ev, "gate_asked").is_empty(), "fail is the default");
    let err = step_error(&ev, "recovered");
    assert!(
        err.contains("NaN, not a number") && err.contains(&q),
        "{err}"
    );
    assert!(err.contains("still no data after 2s"), "{err}");

    let ask = runbook_with(&url(&env), &steps("    on_inconclusive: ask\n"));
    let (out, ev) = run_rb(dir.path(), &ask, &[]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "needs an answer: {}",
        text(&out).1
    );
    let v = of_kind(&ev, "verify_evaluated");
    assert!(v.len() >= 2, "polled until the timeout first: {v:?}");
    assert!(v.iter().all(|e| e["verdict"] == "inconclusive"));
    let asked = of_kind(&ev, "gate_asked");
    assert_eq!(asked.len(), 1, "asked once: {asked:?}");
    let prompt = asked[0]["prompt"].as_str().unwrap();
    assert!(prompt.contains("NaN") && prompt.contains(&q), "{prompt}");
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "needs-answer");
    let (_, stderr) = text(&out);
    assert!(stderr.contains("--answer recovered=yes"), "{stderr}");

    let (out, ev) = run_rb(dir.path(), &ask, &["--answer", "recovered=yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(of_kind(&ev, "gate_answered")[0]["answer"], "yes");
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "succeeded");

    let (out, ev) = run_rb(dir.path(), &ask, &["--answer", "recovered=no"]);
    assert_eq!(out.status.code(), Some(1));
    let err = step_error(&ev, "recovered");
    assert!(err.contains("the operator did not accept it"), "{err}");
}

fn analysis_rb(prom: &str, q: &str, extra: &str) -> String {
    runbook_with(
        prom,
        &format!(
            r#"  - id: canary
    analysis:
      interval: 1500ms
      failed_checks: 5
      checks: 8
      metrics:
        - {{ name: success-rate, query: '{q}', min: 99 }}
{extra}"#
        ),
    )
}

#[test]
fn canary_recovering_after_three_failed_checks_passes() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-canary-ok");
    ex.set("rb_success 92\n");
    let q = format!("rb_success{{test=\"{}\"}}", ex.name);
    ex.wait_for(&q, |r| r[0]["value"][1] == "92");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &analysis_rb(&url(&env), &q, ""));
    let child = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--reason",
            "t",
            "--journal-dir",
            "runs",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // After the third check, the canary recovers.
    let runs = dir.path().join("runs");
    let mut switched = false;
    for _ in 0..600 {
        let n = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).unwrap_or_default())
            .map(|t| t.matches("\"analysis_check\"").count())
            .unwrap_or(0);
        if n >= 3 {
            ex.set("rb_success 99.7\n");
            switched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(switched);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let ev = events(&journal_path(&runs));
    let checks = of_kind(&ev, "analysis_check");
    assert_eq!(checks.len(), 8);
    let failed = checks.last().unwrap()["failed"].as_u64().unwrap();
    assert!((3..5).contains(&failed), "3 or 4 failed checks: {failed}");
    assert_eq!(checks[0]["metrics"][0]["value"], json!(92.0));
    assert_eq!(checks[0]["metrics"][0]["query"], json!(q));
    assert_eq!(checks.last().unwrap()["verdict"], "pass");
}

#[test]
fn canary_that_stays_bad_fails_after_failed_checks() {
    let Some(env) = env_or_skip() else { return };
    let ex = Exporter::start(&env, "prom-canary-bad");
    ex.set("rb_success 92\n");
    let q = format!("rb_success{{test=\"{}\"}}", ex.name);
    ex.wait_for(&q, |r| r[0]["value"][1] == "92");
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(dir.path(), &analysis_rb(&url(&env), &q, ""), &[]);
    assert_ne!(out.status.code(), Some(0));
    let checks = of_kind(&ev, "analysis_check");
    assert_eq!(checks.len(), 5, "stops at failed_checks");
    let err = step_error(&ev, "canary");
    assert!(err.contains("5 failed checks of 5"), "{err}");
    assert!(err.contains("success-rate = 92"), "{err}");
}

#[test]
fn canary_without_data_fails_by_default_and_asks_when_told_to() {
    let Some(env) = env_or_skip() else { return };
    let q = "rb_no_such_metric{test=\"none\"}";
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(dir.path(), &analysis_rb(&url(&env), q, ""), &[]);
    assert_ne!(out.status.code(), Some(0));
    let checks = of_kind(&ev, "analysis_check");
    assert_eq!(checks.len(), 5);
    assert!(checks.iter().all(|c| c["verdict"] == "inconclusive"));
    assert!(step_error(&ev, "canary").contains("no data"));

    let ask = analysis_rb(&url(&env), q, "      on_inconclusive: ask\n");
    let (out, ev) = run_rb(dir.path(), &ask, &[]);
    assert_ne!(out.status.code(), Some(0));
    let asked = of_kind(&ev, "gate_asked");
    assert_eq!(asked.len(), 1, "the operator is asked: {ev:?}");
    assert!(asked[0]["prompt"].as_str().unwrap().contains("no data"));
    let fin = of_kind(&ev, "step_finished");
    assert_eq!(fin[0]["outcome"], "needs-answer");
    // With the answer, each check without data is accepted.
    let (out, ev) = run_rb(dir.path(), &ask, &["--answer", "canary=yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(of_kind(&ev, "analysis_check").len(), 8);
}

/// A one-shot HTTP server on loopback answering every request with `reply`; returns its
/// address and the requests it saw.
fn raw_server(reply: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            s2.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = c.write_all(reply.as_bytes());
        }
    });
    (addr, seen)
}

#[test]
fn headers_never_follow_a_redirect_to_another_origin() {
    // No Prometheus needed: a server that redirects to another port (another origin).
    let (other, other_seen) =
        raw_server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into());
    let (first, _) = raw_server(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{other}/api/v1/query\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let text_rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: redirect, title: Redirect }}
secrets:
  token: {{ env: PROM_TOKEN }}
backends:
  metrics: {{ prometheus: {{ url: "http://{first}", headers: {{ Authorization: "Bearer {{{{ secrets.token }}}}" }} }} }}
steps:
  - id: q
    prometheus: {{ query: up }}
"#
    );
    write(dir.path(), "rb.yaml", &text_rb);
    let out = runbook(dir.path())
        .env("PROM_TOKEN", "s3cr3t-token")
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--reason",
            "t",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "the other origin was reached"
    );
    let ev = events(&journal_path(&dir.path().join("runs")));
    let err = step_error(&ev, "q");
    assert!(err.contains("redirects to another origin"), "{err}");
    assert!(!err.contains("s3cr3t-token"));
}
