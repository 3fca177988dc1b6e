//! The report's last line of defence against leaking secrets. The journal is redacted when it
//! is written; this masks again, on the events read back and on the finished document, with
//! the secret values the caller knows and with patterns of credential-shaped text (bearer
//! tokens, authorization headers, passwords in URLs, private keys), so that a journal written
//! by a buggy or older engine still cannot leak through a report.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::exec::events::Envelope;
use crate::exec::redact::{Redactor, MASK};

/// Journal fields whose values are enum tags: masking them would break the event's shape.
const TAGS: &[&str] = &["event", "outcome", "phase", "via", "run_id", "ts"];

#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    redactor: Redactor,
}

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        let p = |re: &str, with: &'static str| (Regex::new(re).expect("valid pattern"), with);
        vec![
            p(
                r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
                "[private key ***]",
            ),
            // Header-like pairs, in text (`Authorization: Bearer x`) and in JSON.
            p(
                r#"(?i)("?\b(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|api[-_]?key|x-auth-token|private[-_]?token)"?\s*[:=]\s*"?)[^"\r\n]{4,}"#,
                "${1}***",
            ),
            p(
                r#"(?i)(\b(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|api_token|access_key|secret_key)"?\s*[:=]\s*"?)[^\s"'&,;]{4,}"#,
                "${1}***",
            ),
            p(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", "${1} ***"),
            // Passwords in URLs: scheme://user:password@host.
            p(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", "${1}***@"),
            // JSON web tokens and well-known token shapes.
            p(
                r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                MASK,
            ),
            p(
                r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b",
                MASK,
            ),
        ]
    })
}

impl Scrubber {
    pub fn new(redactor: Redactor) -> Self {
        Scrubber { redactor }
    }

    /// Adds the secrets of the runbook the journal names, as far as they can be read now (its
    /// environment variables and files), read from its `secrets` alone (not a whole check).
    /// Best effort: a runbook that moved, or whose `secrets` lost their shape, adds nothing,
    /// and the patterns still apply.
    pub fn add_runbook_secrets(&mut self, runbook_path: &str) {
        let path = Path::new(runbook_path);
        if runbook_path.is_empty() || !path.is_file() {
            return;
        }
        let Some(secrets) = crate::check::declared_secrets(path) else {
            return;
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for s in secrets.values() {
            if let Some(v) = crate::exec::host::RealHost::secret(s, dir) {
                self.redactor.add(&v);
            }
        }
    }

    /// Masks known secret values only: the pass over a finished document, where a pattern
    /// could cut through the document's own syntax (a JSON string's escaped quote).
    pub fn known(&self, s: &str) -> String {
        self.redactor.str(s)
    }

    /// Masks known secret values and credential-shaped text.
    pub fn text(&self, s: &str) -> String {
        let mut out = self.redactor.str(s);
        for (re, with) in patterns() {
            if re.is_match(&out) {
                out = re.replace_all(&out, *with).into_owned();
            }
        }
        out
    }

    fn value(&self, v: &Value, key: Option<&str>) -> Value {
        match v {
            Value::String(s) if key.is_some_and(|k| TAGS.contains(&k)) => Value::String(s.clone()),
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x, None)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(x, Some(k))))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Masks every string of an event but its tags. An event that no longer fits its type
    /// afterwards (a secret equal to a field name) is kept as read; the document pass
    /// masks it.
    pub fn event(&self, e: &Envelope) -> Envelope {
        let Ok(v) = serde_json::to_value(e) else {
            return e.clone();
        };
        serde_json::from_value(self.value(&v, None)).unwrap_or_else(|_| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credential_shaped_text() {
        let s = Scrubber::default();
        let cases = [
            ("Authorization: Bearer abcdefghijkl", "abcdefghijkl"),
            (r#"{"authorization":"Basic dXNlcjpwYXNz"}"#, "dXNlcjpwYXNz"),
            ("curl https://admin:hunter22@db.internal/x", "hunter22"),
            ("password=correct-horse&user=x", "correct-horse"),
            ("token: tok_9f8e7d6c5b", "tok_9f8e7d6c5b"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
                "MIIEow",
            ),
            (
                "gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_abcdef",
            ),
        ];
        for (text, secret) in cases {
            let out = s.text(text);
            assert!(!out.contains(secret), "{text:?} -> {out:?}");
            assert!(out.contains("***"), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let s = Scrubber::default();
        for text in [
            "result.status 503 → 503 → 200 after 3 polls, 2s",
            "Step `rotate-token` succeeded in 3s",
            "secrets.token = ***",
            "GET http://127.0.0.1:8080/health",
        ] {
            assert_eq!(s.text(text), text);
        }
    }

    #[test]
    fn known_values_and_their_encodings_are_masked() {
        let s = Scrubber::new(Redactor::new(["s3cr3t-v4lue".to_string()]));
        let out = s.text("x s3cr3t-v4lue y czNjcjN0LXY0bHVl z");
        assert_eq!(out, "x *** y *** z");
    }
}
