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

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    pub fn new<I: IntoIterator<Item = String>>(secrets: I) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(&s);
        }
        r
    }

    /// Adds a secret value (and its encoded forms).
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forms = [
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
        for f in forms {
            if f.len() >= MIN_SECRET_LEN && !self.needles.contains(&f) {
                self.needles.push(f);
            }
        }
        // Longest first, so a value is never half-masked by one of its own prefixes.
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn str(&self, s: &str) -> String {
        let mut out = s.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }

    /// Redacts a JSON tree, leaving the values of `keep` keys (enum tags) untouched so the
    /// tree still deserializes into its type.
    pub fn value_keeping(&self, v: &Value, keep: &[&str]) -> Value {
        match v {
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.value_keeping(x, keep)).collect())
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        if keep.contains(&k.as_str()) && x.is_string() {
                            (k.clone(), x.clone())
                        } else {
                            (self.str(k), self.value_keeping(x, keep))
                        }
                    })
                    .collect(),
            ),
            other => self.value(other),
        }
    }

    pub fn value(&self, v: &Value) -> Value {
        if self.needles.is_empty() {
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
}
