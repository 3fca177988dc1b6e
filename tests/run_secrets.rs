//! A secret passed through the environment never appears in the journal, the terminal output
//! (both modes) or the logs, in clear, base64 or URL-encoded form.

use crate::common;

use base64::Engine;
use common::*;
use serde_json::json;

const SECRET: &str = "s3cr3t-Tok3n/with+chars=";

fn forms() -> Vec<String> {
    vec![
        SECRET.to_string(),
        base64::engine::general_purpose::STANDARD.encode(SECRET),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET),
        percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what} contains the secret (as {f}):\n{text}"
        );
    }
}

fn runbook_text(url: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: secretive, title: Uses a token }}
secrets:
  token: {{ env: TEST_TOKEN }}
backends:
  api: {{ http: {{ base_url: "{url}", headers: {{ Authorization: "Bearer {{{{ secrets.token }}}}" }} }} }}
steps:
  - id: call
    http: {{ backend: api, request: {{ method: POST, path: /echo, json: {{ token: "{{{{ secrets.token }}}}" }} }} }}
    capture: {{ echoed: "result.body" }}
    verify:
      - that: "result.status == 200"
  - id: show
    shell:
      argv: ["sh", "-c", "echo token=$1; echo b64=$(printf %s \"$1\" | base64); exit 3", "x", "{{{{ secrets.token }}}}"]
    retry: {{ attempts: 2, delay: 10ms }}
    no_undo: test
"#
    )
}

#[test]
fn secret_never_leaks_to_journal_terminal_or_logs() {
    let srv = Server::start(vec![(
        "/echo",
        vec![Reply::json(
            200,
            json!({"you_sent": SECRET, "b64": base64::engine::general_purpose::STANDARD.encode(SECRET)}),
        )],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &runbook_text(&srv.url("")));
    for (i, extra) in [vec![], vec!["-v"], vec!["-vv", "--log-format", "json"]]
        .into_iter()
        .enumerate()
    {
        let jd = format!("runs{i}");
        let mut args = vec!["run", "rb.yaml", "--non-interactive", "--journal-dir", &jd];
        args.extend(extra);
        let out = runbook(dir.path())
            .args(&args)
            .env("TEST_TOKEN", SECRET)
            .output()
            .unwrap();
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{e}");
        assert_clean("stdout", &o);
        assert_clean("stderr", &e);
        let journal = std::fs::read_to_string(journal_path(&dir.path().join(&jd))).unwrap();
        assert_clean("journal", &journal);
        assert!(
            journal.contains("***"),
            "the journal shows where the secret was"
        );
        assert!(e.contains("exited with code 3"), "{e}");
    }
    // The server did receive the real token: redaction is for output only.
    let seen = srv.seen.lock().unwrap();
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {SECRET}")));
    assert!(String::from_utf8_lossy(&seen[0].body).contains(SECRET));
}
