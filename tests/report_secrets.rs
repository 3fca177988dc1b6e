//! No secret value, nor its base64 or URL-encoded form, appears in any report format: not
//! from a real run that prints, sends and captures it, and not from a journal that was
//! written without redaction (the report's own final check).

use crate::report_support;

use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use report_support::{fixture, Service, Workspace};

/// Every form of `secret` that must never appear.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    // What the templates' `urlencode` filter produces: it keeps `/ . - _`.
    const TEMPLATE_URL: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    let template_url = utf8_percent_encode(secret, TEMPLATE_URL).to_string();
    let html = secret.replace('&', "&amp;");
    vec![
        secret.to_string(),
        b64.clone(),
        b64.trim_end_matches('=').to_string(),
        url_safe,
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        template_url,
        html,
    ]
}

fn assert_clean(what: &str, text: &str, secret: &str) {
    for f in forms(secret) {
        assert!(
            !text.contains(&f),
            "{what} contains the secret as {f:?}:\n{text}"
        );
    }
}

#[test]
fn a_real_run_leaks_nothing_in_any_format() {
    const SECRET: &str = "s3cr3t-V4lue/with+chars&more=1";
    let svc = Service::start();
    let ws = Workspace::new(&["api-token.yaml"]);
    let base = format!("base_url={}", svc.url);
    let run = {
        let out = ws
            .command(&[
                "run",
                "api-token.yaml",
                "--non-interactive",
                "--operator",
                "alice",
                "-i",
                &base,
                "--report",
                "at-end.html",
            ])
            .env("REPORT_TEST_TOKEN", SECRET)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let journal = run
        .lines()
        .find_map(|l| l.strip_prefix("journal: "))
        .expect("journal path");
    // The premise: the run really handled the secret, and the journal already hid it.
    let journal_text = std::fs::read_to_string(ws.path().join(journal)).unwrap();
    assert_clean("the journal", &journal_text, SECRET);
    assert!(journal_text.contains("plain: ***"), "{journal_text}");
    assert!(
        journal_text.contains("you sent: Bearer ***"),
        "{journal_text}"
    );

    let at_end = std::fs::read_to_string(ws.path().join("at-end.html")).unwrap();
    assert_clean("run --report (html)", &at_end, SECRET);
    // Reports written later, with and without the secret in the environment.
    for env in [Some(SECRET), None] {
        for format in ["md", "json", "html"] {
            let mut c = ws.command(&["report", journal, "--format", format]);
            match env {
                Some(v) => c.env("REPORT_TEST_TOKEN", v),
                None => c.env_remove("REPORT_TEST_TOKEN"),
            };
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            assert_clean(&format!("the {format} report"), &text, SECRET);
            // The evidence is there, masked: a report that dropped it would pass vacuously.
            assert!(text.contains("plain: ***"), "{format}:\n{text}");
            assert!(text.contains("Bearer ***"), "{format}:\n{text}");
        }
    }
}

#[test]
fn a_journal_written_without_redaction_is_masked_by_the_report() {
    const SECRET: &str = "hunter2-Billing-Key/42";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiaWxsaW5nIn0.c2lnbmF0dXJlLXZhbHVl";
    let ws = Workspace::new(&["leaky.yaml", "leaky.jsonl"]);
    let raw = std::fs::read_to_string(fixture("leaky.jsonl")).unwrap();
    assert!(
        raw.contains(SECRET) && raw.contains(JWT),
        "the fixture must leak"
    );

    for format in ["md", "json", "html"] {
        let out = ws
            .command(&["report", "leaky.jsonl", "--format", format])
            .env("REPORT_LEAKY_TOKEN", SECRET)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_clean(&format!("the {format} report"), &text, SECRET);
        assert!(
            !text.contains(JWT),
            "{format}: the bearer token shows:\n{text}"
        );
        assert!(text.contains("token: ***"), "{format}:\n{text}");
        if format == "json" {
            report_support::json(&text);
        }
    }
    // Without the secret's value, credential-shaped text is still masked.
    let out = ws
        .command(&["report", "leaky.jsonl"])
        .env_remove("REPORT_LEAKY_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(JWT), "{text}");
    assert!(text.contains("Authorization: ***"), "{text}");
}
