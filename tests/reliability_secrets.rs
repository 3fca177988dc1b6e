//! Secrets, across every output channel: the terminal in both modes, `-v`/`-vv` logs in text
//! and JSON (also with `RUST_LOG=trace` opening every crate's logs), the journal, every report
//! format, and the error messages of failed steps whose command line or URL held the secret.
//! Each channel is scanned for the secret's value and for its base64 and URL-encoded forms.

use crate::common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::json;

/// Characters that URL encoders treat differently (space, `/`, `+`, `=`, `&`), so each
/// encoding gives a distinct string; `ö` so that JSON may escape it (`\u00f6`).
const SECRET: &str = "s3cr3t Tök3n/with+chars=&more";

/// A multi-line secret (a private key), printed by a step line by line.
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZH\n-----END PRIVATE KEY-----";

/// Base64 of `user:secret` style values, with the secret at each of the three alignments
/// (offset 0, 1 and 2 in a group of three bytes): each answer of the server echoes one.
const BASIC_USERS: [&str; 3] = ["ab:", "abc:", "abcd:"];

/// The characters of the base64 of `prefix + secret` that come from the secret alone.
fn base64_core(prefix: &str, secret: &str) -> String {
    let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{prefix}{secret}"));
    let (k, n) = (prefix.len(), secret.len());
    enc[(8 * k).div_ceil(6)..(8 * (k + n)) / 6].to_string()
}

/// What a server that escapes more than serde writes: `\u0026` for `&`, `\/` for `/`,
/// `\u00f6` for `ö`, `\u003d` for `=`.
fn json_escaped_by_others() -> Vec<String> {
    vec![
        SECRET
            .replace('&', "\\u0026")
            .replace('/', "\\/")
            .replace('ö', "\\u00f6"),
        SECRET.replace('=', "\\u003d").replace('ö', "\\u00F6"),
    ]
}

fn forms() -> Vec<(&'static str, String)> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
    // What URL parsers leave of a query value: only space, quotes, `#`, `<`, `>` are encoded.
    const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let form: String = SECRET
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    vec![
        ("plain", SECRET.to_string()),
        ("base64", b64.encode(SECRET)),
        (
            "base64 unpadded",
            b64.encode(SECRET).trim_end_matches('=').to_string(),
        ),
        ("base64url", b64url.encode(SECRET)),
        (
            "percent-encoded",
            utf8_percent_encode(SECRET, NON_ALPHANUMERIC).to_string(),
        ),
        ("form-urlencoded", form),
        ("URL query", utf8_percent_encode(SECRET, QUERY).to_string()),
        (
            "JSON-escaped",
            serde_json::to_string(SECRET)
                .unwrap()
                .trim_matches('"')
                .to_string(),
        ),
        ("upper-cased by a capture", SECRET.to_uppercase()),
        ("reversed by a capture", SECRET.chars().rev().collect()),
        (
            "sliced by a capture",
            SECRET.chars().skip(2).take(14).collect(),
        ),
    ]
    .into_iter()
    .chain(
        BASIC_USERS
            .iter()
            .map(|u| ("base64 of user:secret", base64_core(u, SECRET))),
    )
    .chain(
        json_escaped_by_others()
            .into_iter()
            .map(|j| ("JSON-escaped by another encoder", j)),
    )
    .chain(
        PEM.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(|l| ("a line of the PEM secret", l.to_string())),
    )
    .collect()
}

fn assert_clean(what: &str, text: &str) {
    for (name, f) in forms() {
        assert!(
            !text.contains(&f),
            "{what} contains the secret ({name}: {f}):\n{text}"
        );
    }
    // Fragments too: a secret cut in half by a line break or a truncation still leaks.
    for half in [&SECRET[..12], &SECRET[SECRET.len() - 12..]] {
        assert!(
            !text.contains(half),
            "{what} contains part of the secret `{half}`:\n{text}"
        );
    }
}

/// Every string in a journal, decoded from its JSON: a form escaped in the file (`\\u0026`
/// written as `\\\\u0026`) is scanned as the text a reader of the journal gets.
fn journal_strings(journal: &str) -> String {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for line in journal.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            walk(&v, &mut out);
        }
    }
    out
}

fn runbook_text(url: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: secretive, title: Uses a token, description: "token in every place" }}
secrets:
  token: {{ env: TEST_TOKEN }}
  filed: {{ file: token.txt }}
  pem: {{ file: key.pem }}
env: [API_TOKEN]
backends:
  api: {{ http: {{ base_url: "{url}", headers: {{ Authorization: "Bearer {{{{ secrets.token }}}}" }} }} }}
preconditions:
  - that: "secrets.token != ''"
    message: "token is {{{{ secrets.token }}}}"
steps:
  - id: call
    http: {{ backend: api, request: {{ method: POST, path: /echo, json: {{ token: "{{{{ secrets.token }}}}" }} }} }}
    capture:
      echoed: "result.body"
      kind: "result.headers['content-type']"
      up: "secrets.token | upper"
      rev: "secrets.token | reverse"
      part: "secrets.token[2:16]"
      shouted: "result.json.you_sent | upper"
    verify:
      - that: "result.status == 200"
        message: "server said {{{{ result.body }}}}"
    no_undo: test
  - id: from-file
    safety: read-only
    shell: {{ argv: ["echo", "{{{{ secrets.filed }}}}"] }}
  - id: derived
    safety: read-only
    shell: {{ argv: ["echo", "{{{{ steps.call.up }}}}", "{{{{ steps.call.rev }}}}", "{{{{ steps.call.part }}}}", "{{{{ steps.call.shouted }}}}"] }}
  - id: pem
    safety: read-only
    shell: {{ script: 'cat key.pem' }}
  - id: other-encoders
    safety: read-only
    http: {{ request: {{ url: "{url}/escaped" }} }}
    capture: {{ raw: "result.body" }}
  - id: basic
    safety: read-only
    shell:
      argv: ["sh", "-c", "for u in ab: abc: abcd:; do printf '%s%s' \"$u\" \"$1\" | base64 -w0; echo; done; cat escaped.json; cat escaped.txt", "x", "{{{{ secrets.token }}}}"]
  - id: from-env
    safety: read-only
    shell: {{ script: 'echo "$API_TOKEN"; echo "$API_TOKEN" | base64' }}
  - id: query
    safety: read-only
    http: {{ request: {{ url: "{url}/q?token={{{{ secrets.token | urlencode }}}}&raw={{{{ secrets.token }}}}" }} }}
    verify: [ {{ that: "result.status == 200" }} ]
  - id: show
    shell:
      argv: ["sh", "-c", "echo token=$1; echo b64=$(printf %s \"$1\" | base64); echo \"$1\" >&2; exit 3", "x", "{{{{ secrets.token }}}}"]
    retry: {{ attempts: 2, delay: 10ms }}
    no_undo: test
on_failure:
  - id: missing-program
    safety: read-only
    shell: {{ argv: ["/nonexistent/{{{{ secrets.token }}}}"] }}
  - id: refused
    safety: read-only
    http: {{ request: {{ url: "http://127.0.0.1:9/?t={{{{ secrets.token }}}}" }} }}
"#
    )
}

fn setup() -> (Server, tempfile::TempDir) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let basic: Vec<String> = BASIC_USERS
        .iter()
        .map(|u| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}{SECRET}"))
            )
        })
        .collect();
    let escaped = format!(
        r#"{{"echo": ["{}"], "basic": {}}}"#,
        json_escaped_by_others().join(r#"", ""#),
        serde_json::to_string(&basic).unwrap()
    );
    let srv = Server::start(vec![
        (
            "/echo",
            vec![Reply::json(200, json!({"you_sent": SECRET, "b64": b64}))],
        ),
        ("/q", vec![Reply::json(200, json!({"ok": true}))]),
        ("/escaped", vec![Reply::raw(200, &escaped)]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &runbook_text(&srv.url("")));
    write(dir.path(), "token.txt", &format!("{SECRET}\n"));
    write(dir.path(), "key.pem", &format!("{PEM}\n"));
    write(dir.path(), "escaped.json", &escaped);
    // One form a line, as a step that prints a server's answer shows it.
    write(
        dir.path(),
        "escaped.txt",
        &json_escaped_by_others().join("\n"),
    );
    (srv, dir)
}

fn run(dir: &Path, jd: &str, extra: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut c = runbook(dir);
    c.args(["run", "rb.yaml", "--non-interactive", "--journal-dir", jd])
        .args(extra)
        .env("TEST_TOKEN", SECRET)
        .env("API_TOKEN", SECRET);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    (o, e)
}

#[test]
fn secret_never_reaches_the_terminal_logs_journal_or_error_messages() {
    let (srv, dir) = setup();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (&[], &[]),
        (&["-v"], &[]),
        (&["-vv"], &[]),
        (&["-vv", "--log-format", "json"], &[]),
        (&["-vv"], &[("RUST_LOG", "trace")]),
        (&["-vv", "--log-format", "json"], &[("RUST_LOG", "trace")]),
    ];
    for (i, (extra, env)) in cases.iter().enumerate() {
        let jd = format!("runs{i}");
        let (o, e) = run(dir.path(), &jd, extra, env);
        let what = format!("{extra:?} {env:?}");
        assert_clean(&format!("stdout {what}"), &o);
        assert_clean(&format!("stderr {what}"), &e);
        let journal = std::fs::read_to_string(journal_path(&dir.path().join(&jd))).unwrap();
        assert_clean(&format!("journal {what}"), &journal);
        assert_clean(
            &format!("journal {what}, decoded"),
            &journal_strings(&journal),
        );
        // The failures happened, and their messages are there, masked.
        assert!(e.contains("exited with code 3"), "{e}");
        assert!(
            journal.contains("cannot start `/nonexistent/***`"),
            "{journal}"
        );
        assert!(journal.contains("***"));
    }
    // The backends did receive the real token: redaction is for output only.
    let seen = srv.seen.lock().unwrap();
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {SECRET}")));
}

#[test]
fn secret_never_reaches_the_guided_terminal() {
    use expectrl::{Eof, Expect, Session};
    let (_srv, dir) = setup();
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir.path())
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("RUNBOOK_OPERATOR", "alice")
        .env("TEST_TOKEN", SECRET)
        .env("API_TOKEN", SECRET)
        .args([
            "run",
            "rb.yaml",
            "--journal-dir",
            "runs",
            "--reason",
            "INC-1",
        ]);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    let mut screen = String::new();
    let c = s.expect("journal: ").unwrap();
    screen.push_str(&String::from_utf8_lossy(c.before()));
    if let Ok(c) = s.expect(Eof) {
        screen.push_str(&String::from_utf8_lossy(c.before()));
        for m in c.matches() {
            screen.push_str(&String::from_utf8_lossy(m));
        }
    }
    assert!(screen.contains("exited with code 3"), "{screen}");
    assert_clean("guided terminal", &screen);
}

#[test]
fn secret_never_reaches_any_report_format() {
    let (_srv, dir) = setup();
    for ext in ["md", "json", "html"] {
        let report = format!("report.{ext}");
        let (_, e) = run(
            dir.path(),
            &format!("runs-{ext}"),
            &["--report", &report],
            &[],
        );
        let body = std::fs::read_to_string(dir.path().join(&report))
            .unwrap_or_else(|err| panic!("no {report}: {err}\n{e}"));
        assert_clean(&report, &body);
        // `runbook report` on the journal, to stdout.
        let jd = format!("runs-{ext}");
        let id = run_id(&events(&journal_path(&dir.path().join(&jd))));
        let out = runbook(dir.path())
            .args(["report", &id, "--journal-dir", &jd, "--format", ext])
            .env("TEST_TOKEN", SECRET)
            .output()
            .unwrap();
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{e}");
        assert_clean(&format!("runbook report --format {ext}"), &o);
        assert_clean(&format!("runbook report --format {ext} (stderr)"), &e);
    }
}

#[test]
fn secret_never_reaches_a_drill_report_journal_or_output() {
    let dir = tempfile::tempdir().unwrap();
    let basic: Vec<String> = BASIC_USERS
        .iter()
        .map(|u| base64::engine::general_purpose::STANDARD.encode(format!("{u}{SECRET}")))
        .collect();
    // A simulated server that echoes the secret in every form another encoder might use.
    let body = format!(
        r#"{{"plain": "{SECRET}", "escaped": ["{}"], "basic": {}, "pem": {}}}"#,
        json_escaped_by_others().join(r#"", ""#),
        serde_json::to_string(&basic).unwrap(),
        serde_json::to_string(PEM).unwrap(),
    );
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: drilled, title: Secrets in a drill }
secrets:
  token: { env: DRILL_TOKEN }
  pem: { env: DRILL_PEM }
steps:
  - id: call
    safety: read-only
    http: { request: { url: "https://api.drill/echo", headers: { Authorization: "Bearer {{ secrets.token }}" } } }
    capture:
      body: "result.body"
      up: "secrets.token | upper"
      rev: "secrets.token | reverse"
      part: "secrets.token[2:16]"
  - id: again
    safety: read-only
    http: { request: { url: "https://api.drill/echo", headers: { X-Up: "{{ steps.call.up }}", X-Rev: "{{ steps.call.rev }}", X-Part: "{{ steps.call.part }}" } } }
    verify:
      - that: "result.status == 200"
        message: "got {{ result.body }} for {{ steps.call.up }}"
"#,
    );
    let q = |s: &str| serde_json::to_string(s).unwrap();
    write(
        dir.path(),
        "drill.yaml",
        &format!(
            "apiVersion: runbook/v1\nkind: Drill\nmetadata: {{ name: drilled-secrets }}\nrunbook: rb.yaml\noperator: drill-bot\nsecrets: {{ token: {}, pem: {} }}\nworld:\n  http:\n    - match: {{ url: \"https://api.drill/echo\" }}\n      respond: {{ status: 200, body: {} }}\n",
            q(SECRET),
            q(PEM),
            q(&body)
        ),
    );
    let out = runbook(dir.path())
        .args(["drill", "drill.yaml", "--report-dir", "out"])
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert_clean("drill stdout", &o);
    assert_clean("drill stderr", &e);
    let mut files = 0;
    let mut stack = vec![dir.path().join("out")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                assert_clean(&p.display().to_string(), &t);
                assert_clean(&format!("{}, decoded", p.display()), &journal_strings(&t));
                files += 1;
            }
        }
    }
    assert!(files >= 2, "the drill wrote its report and journal");
}
