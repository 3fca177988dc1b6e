//! Secret redaction: every string that leaves the engine (journal, terminal, logs, reports,
//! error messages) passes through here. Secret values are replaced by `***`, and so are
//! their base64 and URL-encoded forms.

use base64::Engine;
use serde_json::Value;

pub const MASK: &str = "***";

/// Secrets shorter than this are not searched for: masking every `a` in the output would
/// destroy it while protecting nothing. `check`/`run` warn about such secrets.
pub const MIN_SECRET_LEN: usize = 4;

/// RFC 3986 unreserved characters stay as they are (how URL paths and queries encode).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// application/x-www-form-urlencoded keeps `*` too, and writes spaces as `+`.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// The templates' `urlencode` filter (minijinja) keeps `/` as well: another form again.
const TEMPLATE_URL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

/// What URL parsers (WHATWG, the `url` crate) leave of a query or a path: a URL with a secret
/// in it shows up this way in transport error messages.
const URL_QUERY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>');
const URL_PATH: &percent_encoding::AsciiSet = &URL_QUERY.add(b'?').add(b'`').add(b'{').add(b'}');

/// Shortest secret `run` accepts: a shorter value cannot be masked without masking ordinary
/// text (a 4-digit year masks every date and run id), and cannot be found when it leaks.
pub const MIN_SAFE_SECRET_LEN: usize = 8;

/// Words the engine itself writes in every journal, log and report (field and event names,
/// outcomes, classes, literals). A secret equal to one of them would mask the output's
/// structure, so `run` refuses it.
const ENGINE_WORDS: &[&str] = &[
    "aborted",
    "action",
    "answer",
    "attempt",
    "attempts",
    "body",
    "capture",
    "checks",
    "denied",
    "duration_ms",
    "elapsed_ms",
    "engine_version",
    "error",
    "event",
    "exit_code",
    "failed",
    "false",
    "gate",
    "headers",
    "host",
    "idempotent",
    "inputs",
    "journal",
    "message",
    "mode",
    "note",
    "null",
    "observed",
    "operator",
    "outcome",
    "phase",
    "polls",
    "prompt",
    "reason",
    "redirect",
    "rendered",
    "result",
    "reversible",
    "read-only",
    "run_id",
    "runbook",
    "safety",
    "secrets",
    "seq",
    "sha256",
    "skipped",
    "status",
    "stderr",
    "stdout",
    "step",
    "succeeded",
    "terminal",
    "title",
    "true",
    "undo",
    "value",
    "verify",
];

/// Why a secret's value cannot be masked safely, if it cannot (never quoting the value).
pub fn weakness(value: &str) -> Option<String> {
    let n = value.chars().count();
    if n == 0 {
        return None;
    }
    if n < MIN_SAFE_SECRET_LEN {
        return Some(format!(
            "it is shorter than {MIN_SAFE_SECRET_LEN} characters ({n})"
        ));
    }
    let lower = value.to_ascii_lowercase();
    if ENGINE_WORDS.contains(&lower.as_str()) {
        return Some("it is a word the engine writes in every journal and report".into());
    }
    if value
        .chars()
        .all(|c| c.is_ascii_digit() || "-:.TZ ".contains(c))
        && n < 16
    {
        return Some(format!(
            "it is only digits (and date punctuation), {n} of them: it would mask dates, times and run ids"
        ));
    }
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    if distinct.len() < 4 {
        return Some(format!(
            "it has only {} distinct characters",
            distinct.len()
        ));
    }
    None
}

/// Longest needle given a JSON-escape pattern (any mix of `\uXXXX`, `\/` and the short
/// escapes); longer ones are matched by their lines and literal forms.
const MAX_PATTERN_LEN: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every literal form of every secret, longest first.
    needles: Vec<String>,
    /// Values (a secret, or one line of a multi-line secret) also matched in any JSON-escaped
    /// spelling.
    json_forms: Vec<String>,
    /// One pattern for all of the above, rebuilt by `add`.
    matcher: Option<regex::Regex>,
}

/// The base64 text that holds `secret` whatever its offset in the encoded data: for each
/// alignment (0, 1 or 2 bytes before it), the characters whose 6 bits all come from the
/// secret. The base64 of `user:secret` holds one of these three.
fn base64_cores(secret: &str, engine: &impl Engine) -> Vec<String> {
    let n = secret.len();
    (0..3usize)
        .map(|k| {
            let mut data = vec![0u8; k];
            data.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&data);
            let first = (8 * k).div_ceil(6);
            let end = (8 * (k + n)) / 6;
            enc.get(first..end.min(enc.len()))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A regex for `value` in any JSON spelling: each character as itself, as `\uXXXX` (any
/// hex case; a surrogate pair beyond the BMP) or its short escape (`\/`, `\"`, `\n`...).
fn json_pattern(value: &str) -> String {
    let mut p = String::new();
    for c in value.chars() {
        let mut alts = vec![regex::escape(&c.to_string())];
        let mut units = [0u16; 2];
        let hex: Vec<String> = c
            .encode_utf16(&mut units)
            .iter()
            .map(|u| format!(r"\\u(?i:{u:04x})"))
            .collect();
        alts.push(hex.concat());
        let short = match c {
            '"' => Some(r#"\\""#),
            '\\' => Some(r"\\\\"),
            '/' => Some(r"\\/"),
            '\u{8}' => Some(r"\\b"),
            '\u{c}' => Some(r"\\f"),
            '\n' => Some(r"\\n"),
            '\r' => Some(r"\\r"),
            '\t' => Some(r"\\t"),
            _ => None,
        };
        alts.extend(short.map(str::to_string));
        p.push_str(&format!("(?:{})", alts.join("|")));
    }
    p
}

impl Redactor {
    pub fn new<I: IntoIterator<Item = String>>(secrets: I) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add_one(&s);
        }
        r.rebuild();
        r
    }

    /// Adds a secret value (and its encoded forms).
    pub fn add(&mut self, secret: &str) {
        if self.add_one(secret) {
            self.rebuild();
        }
    }

    /// Adds the forms of one secret; whether anything was new.
    fn add_one(&mut self, secret: &str) -> bool {
        if secret.chars().count() < MIN_SECRET_LEN {
            return false;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut forms = vec![
            secret.to_string(),
            b64.encode(secret),
            b64.encode(secret).trim_end_matches('=').to_string(),
            b64url.encode(secret),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            percent_encoding::utf8_percent_encode(secret, URI_COMPONENT).to_string(),
            percent_encoding::utf8_percent_encode(secret, FORM)
                .to_string()
                .replace("%20", "+"),
            percent_encoding::utf8_percent_encode(secret, TEMPLATE_URL).to_string(),
            percent_encoding::utf8_percent_encode(secret, URL_QUERY).to_string(),
            percent_encoding::utf8_percent_encode(secret, URL_PATH).to_string(),
            serde_json::to_string(secret)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
        ];
        forms.extend(base64_cores(secret, &b64));
        forms.extend(base64_cores(secret, &b64url));
        // A multi-line secret (a PEM key) is printed, and so streamed, line by line.
        let mut json = vec![secret.to_string()];
        if secret.contains('\n') {
            for line in secret.lines().map(|l| l.trim_end_matches('\r').trim()) {
                if line.chars().count() >= MIN_SECRET_LEN {
                    forms.push(line.to_string());
                    json.push(line.to_string());
                }
            }
        }
        let mut new = false;
        for f in forms {
            // Base64 cores of short secrets are short: at least 6 characters, so that they
            // stay specific.
            if f.len() >= MIN_SECRET_LEN.max(6) && !self.needles.contains(&f) {
                self.needles.push(f);
                new = true;
            }
        }
        for j in json {
            if j.len() <= MAX_PATTERN_LEN && !self.json_forms.contains(&j) {
                self.json_forms.push(j);
                new = true;
            }
        }
        new
    }

    /// Rebuilds the one pattern: longest alternatives first, so a value is never half-masked
    /// by one of its own prefixes.
    fn rebuild(&mut self) {
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut alts: Vec<(usize, String)> = self
            .json_forms
            .iter()
            .map(|j| (j.len(), json_pattern(j)))
            .collect();
        alts.extend(self.needles.iter().map(|n| (n.len(), regex::escape(n))));
        alts.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        if alts.is_empty() {
            self.matcher = None;
            return;
        }
        let pattern = alts
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
            .join("|");
        self.matcher = regex::RegexBuilder::new(&pattern)
            .size_limit(256 << 20)
            .build()
            .or_else(|_| {
                // Too big a pattern: the literal forms alone.
                let lits: Vec<String> = self.needles.iter().map(|n| regex::escape(n)).collect();
                regex::RegexBuilder::new(&lits.join("|"))
                    .size_limit(256 << 20)
                    .build()
            })
            .ok();
    }

    /// Whether `s` holds a secret in any form the redactor masks.
    pub fn holds_secret(&self, s: &str) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.is_match(s))
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty() && self.json_forms.is_empty()
    }

    pub fn str(&self, s: &str) -> String {
        match &self.matcher {
            Some(m) => m.replace_all(s, MASK).into_owned(),
            None => s.to_string(),
        }
    }

    /// Redacts a JSON tree, leaving the values of `keep` keys (enum tags) untouched so the
    /// tree still deserializes into its type.
    /// Object keys are redacted too when `keys` is set.
    pub fn value_keeping(&self, v: &Value, keep: &[&str], keys: bool) -> Value {
        match v {
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.value_keeping(x, keep, keys))
                    .collect(),
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        if keep.contains(&k.as_str()) && x.is_string() {
                            (k.clone(), x.clone())
                        } else {
                            let k = if keys { self.str(k) } else { k.clone() };
                            (k, self.value_keeping(x, keep, keys))
                        }
                    })
                    .collect(),
            ),
            other => self.value(other),
        }
    }

    pub fn value(&self, v: &Value) -> Value {
        if self.matcher.is_none() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.str(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (self.str(k), self.value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_encoded_forms() {
        let r = Redactor::new(["s3cr3t-t0ken/+=".to_string()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t-t0ken/+=");
        let url = "s3cr3t-t0ken%2F%2B%3D";
        let text = format!("a s3cr3t-t0ken/+= b {b64} c {url}");
        let out = r.str(&text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains(&b64), "{out}");
        assert_eq!(out.matches(MASK).count(), 3, "{out}");
    }

    #[test]
    fn masks_what_the_templates_urlencode_filter_produces() {
        let secret = "s3cr3t-V4lue/with+chars&more=1";
        let r = Redactor::new([secret.to_string()]);
        let env = minijinja::Environment::new();
        let encoded = env
            .render_str("{{ s | urlencode }}", minijinja::context! { s => secret })
            .unwrap();
        assert_ne!(encoded, secret);
        assert_eq!(r.str(&format!("url: {encoded}")), "url: ***");
        assert_eq!(r.str("s3cr3t-V4lue%2Fwith%2Bchars%26more%3D1"), "***");
    }

    #[test]
    fn masks_the_base64_of_a_longer_value_at_every_alignment() {
        let secret = "s3cr3t-Tok3n/with+chars";
        let r = Redactor::new([secret.to_string()]);
        for user in ["ab:", "abc:", "abcd:"] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}{secret}"));
            let out = r.str(&format!("Authorization: Basic {b64}"));
            assert!(out.contains(MASK), "{user}: {out}");
            assert!(out.len() < 40, "{user}: too much of it is left: {out}");
        }
    }

    #[test]
    fn masks_any_json_escape_spelling_and_each_line() {
        let r = Redactor::new([
            "s3cr3t&Tök3n/x=1".to_string(),
            "line-one-0123\nline-two-4567".to_string(),
        ]);
        for text in [
            r"s3cr3t\u0026Tök3n\/x=1",
            r"s3cr3t\u0026T\u00f6k3n/x\u003d1",
            r"s3cr3t&T\u00F6k3n\/x=1",
            r"\u0073\u0033cr3t&Tök3n/x=1",
        ] {
            assert_eq!(r.str(&format!("[{text}]")), "[***]", "{text}");
        }
        assert_eq!(r.str("> line-two-4567"), "> ***");
        assert!(r.holds_secret("line-one-0123"));
    }

    #[test]
    fn weak_secrets_are_named_without_their_value() {
        for v in [
            "step",
            "2026",
            "20261206",
            "succeeded",
            "aaaaaaaaaa",
            "2026-12-06",
        ] {
            let why = weakness(v).unwrap_or_else(|| panic!("{v} passed"));
            assert!(!why.contains(v), "{why}");
        }
        assert_eq!(weakness("k3y-0f-the-API"), None);
        assert_eq!(weakness(""), None);
    }
}
