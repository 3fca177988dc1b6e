//! Secrets and values under attack, through the real binary against real loopback servers:
//! a hostile server's redirects (issue 11 item 7), secrets that cannot be masked (item 9),
//! values that would change a URL's shape (item 12), and values that cannot reach their
//! destination, refused before the first step (item 13).

use crate::common;

use common::*;
use serde_json::json;

const KEY: &str = "k3y-0f-the-API/9f2c7e1a";

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = runbook(dir);
    c.args([
        "run",
        "rb.yaml",
        "--non-interactive",
        "--journal-dir",
        "runs",
    ])
    .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let (o, e) = text(&out);
    (out.status.code(), format!("{o}{e}"))
}

fn journal(dir: &std::path::Path) -> String {
    std::fs::read_to_string(journal_path(&dir.join("runs"))).unwrap()
}

/// An API (origin A) and a second origin (B, another port) that records what reaches it.
fn redirecting(status: u16) -> (Server, Server) {
    let other = Server::start(vec![("/landing", vec![Reply::json(200, json!({"b": 1}))])]);
    let api = Server::start(vec![
        (
            "/start",
            vec![Reply::redirect(status, &other.url("/landing"))],
        ),
        ("/old", vec![Reply::redirect(308, "/new")]),
        ("/new", vec![Reply::json(200, json!({"moved": true}))]),
    ]);
    (api, other)
}

fn redirect_runbook(api: &Server, follow: &str, method: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: redirects, title: Redirects }}
secrets:
  key: {{ env: TEST_KEY }}
backends:
  api:
    http:
      base_url: "{base}"
      headers: {{ X-Api-Key: "{{{{ secrets.key }}}}", Authorization: "Bearer {{{{ secrets.key }}}}", X-Plain: visible }}
      {follow}
steps:
  - id: same-origin
    safety: read-only
    http: {{ backend: api, request: {{ path: /old }} }}
    capture: {{ moved: "result.json.moved" }}
  - id: hop
    safety: idempotent
    http:
      backend: api
      request:
        method: {method}
        path: /start
        query: {{ token: "{{{{ secrets.key }}}}" }}
        headers: {{ X-Trace: trace-1 }}
"#,
        base = api.url(""),
    )
}

#[test]
fn a_redirect_to_another_origin_is_not_followed_and_is_the_steps_result() {
    for status in [302, 307] {
        let (api, other) = redirecting(status);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", &redirect_runbook(&api, "", "POST"));
        let (code, out) = run(dir.path(), &[], &[("TEST_KEY", KEY)]);
        assert_eq!(code, Some(1), "{out}");
        // Nothing reached the other origin: neither the key header nor the query's token.
        assert!(other.seen.lock().unwrap().is_empty(), "{status}: {out}");
        // The same-origin redirect was followed.
        let j = journal(dir.path());
        assert!(j.contains(r#""moved":true"#), "{j}");
        // The redirect is the step's result and its error names where it pointed.
        assert!(out.contains(&format!("returned {status}")), "{out}");
        assert!(out.contains(&other.url("/landing")), "{out}");
        assert!(out.contains("not followed"), "{out}");
        assert!(j.contains(r#""redirect":{"#), "{j}");
        assert!(!out.contains(KEY) && !j.contains(KEY), "{out}\n{j}");
    }
}

#[test]
fn follow_redirects_any_never_sends_a_secret_header_or_a_referer_to_another_origin() {
    let (api, other) = redirecting(302);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &redirect_runbook(&api, "follow_redirects: any", "GET"),
    );
    let (code, out) = run(dir.path(), &[], &[("TEST_KEY", KEY)]);
    assert_eq!(code, Some(0), "{out}");
    let seen = other.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{out}");
    let names: Vec<&str> = seen[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    for secret in ["x-api-key", "authorization", "referer", "cookie"] {
        assert!(!names.contains(&secret), "{secret} reached B: {names:?}");
    }
    assert!(
        seen[0].headers.iter().all(|(_, v)| !v.contains(KEY)),
        "{:?}",
        seen[0].headers
    );
    // Headers without a secret still go.
    assert!(
        names.contains(&"x-trace") && names.contains(&"x-plain"),
        "{names:?}"
    );
    // The origin the request was meant for did get the key.
    let first = &api.seen.lock().unwrap()[1];
    assert!(first
        .headers
        .iter()
        .any(|(k, v)| k == "x-api-key" && v == KEY));
}

#[test]
fn a_redirect_that_would_turn_a_post_into_a_get_is_not_followed() {
    let (api, other) = redirecting(302);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &redirect_runbook(&api, "follow_redirects: any", "POST"),
    );
    let (code, out) = run(dir.path(), &[], &[("TEST_KEY", KEY)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(other.seen.lock().unwrap().is_empty(), "{out}");
    assert!(out.contains("into a GET"), "{out}");
}

fn short_secret_runbook() -> &'static str {
    r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: weak, title: Weak secret }
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: step
    safety: read-only
    shell: { argv: ["touch", "ran"] }
"#
}

#[test]
fn a_secret_too_short_or_too_common_to_mask_is_refused_by_name_never_by_value() {
    for value in [
        "step",
        "2026",
        "20261206",
        "succeeded",
        "aaaaaaaaaaaa",
        "12345678901",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", short_secret_runbook());
        let (code, out) = run(dir.path(), &[], &[("TEST_TOKEN", value)]);
        assert_eq!(code, Some(2), "{value}: {out}");
        assert!(out.contains("secret `token`"), "{value}: {out}");
        assert!(out.contains("TEST_TOKEN"), "{value}: {out}");
        assert!(!out.contains("panicked"), "{value}: {out}");
        if value != "step" {
            assert!(!out.contains(value), "{value}: the value is quoted: {out}");
        }
        assert!(!dir.path().join("ran").exists(), "{value}");
    }
}

fn path_runbook(url: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: paths, title: Values in URLs }}
inputs:
  id: {{ type: string }}
backends:
  api: {{ http: {{ base_url: "{url}" }} }}
steps:
  - id: first
    shell: {{ argv: ["touch", "ran"] }}
    no_undo: test
  - id: get
    safety: read-only
    http: {{ backend: api, request: {{ path: "/items/{{{{ inputs.id }}}}", query: {{ v: "{{{{ inputs.id }}}}" }} }}, expect_status: [200, 404] }}
  - id: url
    safety: read-only
    http: {{ request: {{ url: "{url}/search?q={{{{ inputs.id }}}}&limit=1" }}, expect_status: [200, 404] }}
"#
    )
}

#[test]
fn values_in_a_url_path_or_query_never_change_its_shape() {
    for (id, path, query) in [
        (
            "x?role=admin&y=",
            "/items/x%3Frole=admin&y=",
            "q=x?role%3Dadmin%26y%3D&limit=1",
        ),
        ("a#frag", "/items/a%23frag", "q=a%23frag&limit=1"),
        (
            "100% sure",
            "/items/100%25%20sure",
            "q=100%25%20sure&limit=1",
        ),
    ] {
        let srv = Server::start(vec![]);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", &path_runbook(&srv.url("")));
        let input = format!("id={id}");
        let (code, out) = run(dir.path(), &["--input", &input], &[]);
        assert_eq!(code, Some(0), "{id}: {out}");
        let seen = srv.seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{id}: {seen:?}");
        assert_eq!(seen[0].path, path, "{id}");
        // The `query:` map was always encoded; the value did not add a parameter.
        assert_eq!(
            seen[0].query.as_deref().map(|q| q.matches('&').count()),
            Some(0),
            "{id}"
        );
        assert_eq!(seen[1].path, "/search", "{id}");
        assert_eq!(seen[1].query.as_deref(), Some(query), "{id}");
    }
}

#[test]
fn a_value_that_would_climb_out_of_the_path_is_refused_before_the_first_step() {
    for id in ["../../admin/delete", "..", "a/%2e%2e/admin"] {
        let srv = Server::start(vec![]);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb.yaml", &path_runbook(&srv.url("")));
        let input = format!("id={id}");
        let (code, out) = run(dir.path(), &["--input", &input], &[]);
        assert_eq!(code, Some(1), "{id}: {out}");
        assert!(
            out.contains("input `id`") && out.contains("step `get`"),
            "{id}: {out}"
        );
        assert!(out.contains("climb out of the path"), "{id}: {out}");
        assert!(!dir.path().join("ran").exists(), "{id}: the first step ran");
        assert!(srv.seen.lock().unwrap().is_empty(), "{id}");
    }
}

#[test]
fn a_header_value_with_a_line_break_is_refused_before_the_first_step() {
    let srv = Server::start(vec![("/p", vec![Reply::json(200, json!({}))])]);
    let dir = tempfile::tempdir().unwrap();
    let rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: header, title: Header values }}
inputs:
  v: {{ type: string }}
backends:
  api: {{ http: {{ base_url: "{url}", headers: {{ X-From-Backend: "{{{{ inputs.v }}}}" }} }} }}
steps:
  - id: first
    shell: {{ argv: ["touch", "ran"] }}
    no_undo: test
  - id: call
    safety: read-only
    http: {{ request: {{ url: "{url}/p", headers: {{ X-Value: "{{{{ inputs.v }}}}" }} }} }}
"#,
        url = srv.url("")
    );
    write(dir.path(), "rb.yaml", &rb);
    for v in ["a\r\nX-Injected: yes", "a\nb", "a\u{7}b"] {
        let input = format!("v={v}");
        let (code, out) = run(dir.path(), &["--input", &input], &[]);
        assert_eq!(code, Some(1), "{v:?}: {out}");
        assert!(
            !dir.path().join("ran").exists(),
            "{v:?}: the first step ran"
        );
        assert!(
            out.contains("input `v`") && out.contains("step `call`") && out.contains("`X-Value`"),
            "{v:?}: {out}"
        );
        assert!(out.contains("backend `api`"), "{v:?}: {out}");
        assert!(srv.seen.lock().unwrap().is_empty());
        std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    }
}
