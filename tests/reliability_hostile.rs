//! Hostile inputs beyond tests/run_hostile.rs: newlines, template and shell syntax in every place
//! a value can reach (argv, env, stdin, HTTP URL, query, headers, body, captures, messages),
//! YAML 1.1 words that must stay words, non-UTF-8 bytes in process output and in HTTP bodies,
//! and malformed values that must be rejected with a clear error and nothing run.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// Newlines, quotes, template and shell syntax, a NUL-free control character, and non-ASCII.
const NASTY: &str = "line1\nline2 $(touch pwned) `touch pwned2` {{ 7*7 }} {% raw %} ; rm -rf ~ \"'\\ \t é ✓ \u{202e}";

fn run(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .args(args)
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code(), err)
}

#[test]
fn hostile_values_arrive_byte_for_byte_in_every_place() {
    let srv = Server::start(vec![("/p", vec![Reply::json(200, json!({"ok": true}))])]);
    let dir = tempfile::tempdir().unwrap();
    let rb = format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: hostile, title: Hostile values }}
inputs:
  v: {{ type: string }}
steps:
  - id: stdin
    safety: read-only
    shell: {{ argv: ["sh", "-c", "cat > from-stdin"], stdin: "{{{{ inputs.v }}}}" }}
  - id: argv
    safety: read-only
    shell: {{ argv: ["sh", "-c", "printf %s \"$1\" > from-argv", "x", "{{{{ inputs.v }}}}"] }}
  - id: env
    safety: read-only
    shell:
      script: printf %s "$V" > from-env
      env: {{ V: "{{{{ inputs.v }}}}" }}
  - id: echo
    safety: read-only
    shell: {{ script: 'printf %s "$RUNBOOK_INPUT_V"' }}
    capture: {{ out: "result.stdout" }}
    verify:
      - that: "result.stdout == inputs.v"
        message: "got {{{{ result.stdout }}}}"
  - id: post
    http:
      request:
        method: POST
        url: "{url}?q={{{{ inputs.v | urlencode }}}}"
        headers: {{ X-Value: "{{{{ inputs.v | replace('\n', ' ') }}}}" }}
        json: {{ v: "{{{{ inputs.v }}}}", captured: "{{{{ steps.echo.out }}}}" }}
    no_undo: test
  - id: same
    assert: [ {{ that: "steps.echo.out == inputs.v" }} ]
"#,
        url = srv.url("/p")
    );
    write(dir.path(), "rb.yaml", &rb);
    write(
        dir.path(),
        "inputs.json",
        &json!({ "v": NASTY }).to_string(),
    );
    let (code, err) = run(dir.path(), &["--inputs", "inputs.json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!dir.path().join("pwned").exists());
    assert!(!dir.path().join("pwned2").exists());
    for f in ["from-stdin", "from-argv", "from-env"] {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(f)).unwrap(),
            NASTY,
            "{f}"
        );
    }
    let seen = srv.seen.lock().unwrap();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["v"], NASTY);
    assert_eq!(body["captured"], NASTY);
    let header = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "x-value")
        .map(|(_, v)| v.clone());
    assert_eq!(header.as_deref(), Some(NASTY.replace('\n', " ").as_str()));
    // The journal holds the value as data, one event per line.
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(ev[0]["inputs"]["v"], NASTY);
    assert_eq!(of_kind(&ev, "capture")[0]["value"], NASTY);
}

#[test]
fn a_header_value_with_a_newline_is_a_clear_failure_not_a_split_request() {
    let srv = Server::start(vec![("/p", vec![Reply::json(200, json!({"ok": true}))])]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: header, title: Header injection }}
inputs:
  v: {{ type: string }}
steps:
  - id: post
    safety: read-only
    http: {{ request: {{ url: "{}", headers: {{ X-Value: "{{{{ inputs.v }}}}" }} }} }}
"#,
            srv.url("/p")
        ),
    );
    let (code, err) = run(dir.path(), &["--input", "v=a\r\nX-Injected: yes"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("header"), "{err}");
    assert!(
        srv.seen.lock().unwrap().is_empty(),
        "a request went out with an injected header"
    );
}

#[test]
fn yaml_1_1_words_stay_words() {
    // `n`, `y`, `on`, `no` are names and strings, not booleans (the YAML 1.1 "Norway problem").
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: norway, title: no }
inputs:
  n: { type: integer, default: 1 }
  y: { type: string, default: off }
  on: { type: string, default: NO }
steps:
  - id: echo
    safety: read-only
    shell: { argv: ["echo", "{{ inputs.n }} {{ inputs.y }} {{ inputs.on }}"] }
    capture: { n: "result.stdout | trim" }
  - id: check
    assert: [ { that: "steps.echo.n == '1 off NO'" } ]
"#,
    );
    let (code, err) = run(dir.path(), &[]);
    assert_eq!(code, Some(0), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(ev[0]["runbook"]["title"], "no");
    assert_eq!(of_kind(&ev, "capture")[0]["name"], "n");
}

#[test]
fn non_utf8_bytes_from_processes_and_servers_are_kept_as_text() {
    let srv_bytes = {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let body = b"ok \xff\xfe\x00 end";
                let mut head =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len()).into_bytes();
                head.extend_from_slice(b"x-bin: \xc3\x28\r\n\r\n");
                let _ = s.write_all(&head);
                let _ = s.write_all(body);
            }
        });
        addr
    };
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: bytes, title: Bytes }}
steps:
  - id: stderr
    safety: read-only
    shell: {{ script: "printf 'out \\377\\000 x'; printf 'err \\376\\n' >&2; exit 1" }}
    continue_on_failure: true
  - id: get
    safety: read-only
    http: {{ request: {{ url: "http://{srv_bytes}/" }} }}
    capture: {{ body: "result.body" }}
"#
        ),
    );
    let (code, err) = run(dir.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let finished = of_kind(&ev, "attempt_finished");
    let out = finished[0]["result"]["stdout"].as_str().unwrap();
    assert!(out.starts_with("out ") && out.ends_with(" x"), "{out}");
    let body = of_kind(&ev, "capture")[0]["value"].as_str().unwrap();
    assert!(body.starts_with("ok ") && body.ends_with(" end"), "{body}");
}

#[test]
fn malformed_values_are_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: typed, title: Typed }
inputs:
  n: { type: integer, minimum: 1, maximum: 5 }
  name: { type: string, pattern: "[a-z]+" }
steps:
  - id: touch
    shell: { argv: ["touch", "ran"] }
    no_undo: test
"#,
    );
    let huge = format!("n={}", "9".repeat(400));
    let cases: &[&[&str]] = &[
        &["--input", "n=1; rm -rf ~", "--input", "name=abc"],
        &["--input", "n={{ 1 }}", "--input", "name=abc"],
        &["--input", "n=3", "--input", "name=abc\ndef"],
        &["--input", "n=3", "--input", "name=abc$(x)"],
        &["--input", &huge, "--input", "name=abc"],
        &["--input", "n=3", "--input", "name=abc", "--input", "nope=1"],
        &["--input", "n=3"],
    ];
    for args in cases {
        let (code, err) = run(dir.path(), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!dir.path().join("ran").exists(), "{args:?} ran the step");
    }
    // A non-UTF-8 inputs file is an error too, not a panic.
    std::fs::write(dir.path().join("bad.yaml"), b"n: 3\nname: \xff\xfe\n").unwrap();
    let (code, err) = run(dir.path(), &["--inputs", "bad.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!dir.path().join("ran").exists());
}
