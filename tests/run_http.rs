//! `runbook run` against a real HTTP server on loopback: verify + until polling.

use crate::common;

use common::*;
use serde_json::json;

fn runbook_for(url: &str, timeout: &str) -> String {
    format!(
        r#"# yaml-language-server: $schema=../schemas/runbook.schema.json
apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: health, title: Wait for health }}
steps:
  - id: healthy
    http: {{ request: {{ method: GET, url: "{url}" }} }}
    verify:
      - that: "result.status == 200"
      - that: "result.json.status == 'ok'"
        message: health endpoint reports ok
    until: {{ timeout: {timeout}, interval: 100ms }}
"#
    )
}

#[test]
fn flaky_endpoint_passes_through_verify_and_until() {
    let srv = Server::start(vec![(
        "/health",
        vec![
            Reply::json(503, json!({"status": "starting"})),
            Reply::json(503, json!({"status": "starting"})),
            Reply::json(200, json!({"status": "ok"})),
        ],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &runbook_for(&srv.url("/health"), "10s"),
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
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let statuses: Vec<_> = of_kind(&ev, "verify_evaluated")
        .iter()
        .map(|e| e["checks"][0]["observed"]["result.status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(503), json!(503), json!(200)]);
    assert_eq!(srv.seen.lock().unwrap().len(), 3);
    let finished = of_kind(&ev, "run_finished");
    assert_eq!(finished[0]["outcome"], "succeeded");
}

#[test]
fn endpoint_that_never_recovers_fails_at_the_poll_timeout_with_last_values() {
    let srv = Server::start(vec![(
        "/health",
        vec![Reply::json(503, json!({"status": "degraded"}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &runbook_for(&srv.url("/health"), "1s"),
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
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "step_finished");
    let msg = fin[0]["error"].as_str().unwrap();
    assert!(msg.contains("result.status = 503"), "{msg}");
    assert!(msg.contains("health endpoint reports ok"), "{msg}");
    assert!(msg.contains("result.json.status = \"degraded\""), "{msg}");
    assert!(msg.contains("1s of polling"), "{msg}");
    assert!(err.contains("result.status = 503"), "{err}");
    assert!(srv.seen.lock().unwrap().len() >= 2);
}

#[test]
fn connection_refused_is_a_failed_attempt_and_retried() {
    // Bind then drop a listener: the port is closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: refused, title: Refused }}
steps:
  - id: call
    http: {{ request: {{ url: "http://127.0.0.1:{port}/x" }} }}
    retry: {{ attempts: 3, delay: 50ms, backoff: 2.0 }}
"#
    );
    write(dir.path(), "rb.yaml", &rb);
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
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&journal_path(&dir.path().join("runs")));
    let attempts = of_kind(&ev, "attempt_finished");
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{:?}",
        attempts[0]
    );
}
