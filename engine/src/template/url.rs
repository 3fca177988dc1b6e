//! URL templates: each rendered value is percent-encoded for the part of the URL it lands in,
//! so a value never changes the URL's shape.

use std::sync::OnceLock;

use super::nodata::unusable_in_template;
use super::{describe, env, is_template};
use minijinja::Environment;
use serde_json::Value;

/// Where a URL template starts: a whole URL (`url:`, `base_url:`) or a path (`path:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStart {
    Url,
    Path,
}

/// Marks the start and the end of each value a URL template renders.
pub(super) const VALUE_START: char = '\u{E000}';

pub(super) const VALUE_END: char = '\u{E001}';

/// The environment for URL templates: every `{{ value }}` comes out between markers, so that
/// `render_url` knows which text is a value and where in the URL it landed.
pub(super) fn url_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = env().clone();
        env.set_formatter(|out, state, value| {
            use std::fmt::Write;
            let failed =
                |_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write a URL");
            out.write_char(VALUE_START).map_err(failed)?;
            minijinja::escape_formatter(out, state, value)?;
            out.write_char(VALUE_END).map_err(failed)?;
            Ok(())
        });
        env
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UrlPart {
    Scheme,
    Authority,
    Path,
    Query,
    Fragment,
}

/// Characters a value keeps in a path: unreserved, sub-delimiters, `:`, `@` and `/`.
/// Everything else (`?`, `#`, spaces, `\`, controls, non-ASCII) is percent-encoded.
pub(super) const PATH_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'%');

/// Characters a value keeps in a query or fragment: not `&`, `;`, `=`, `+` or `#`, which
/// would add a parameter, change a value or cut the URL.
pub(super) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?')
    .remove(b'%');

/// Percent-encodes `value` with `set`, and a `%` that does not start an escape (`%2F`): a
/// value already encoded (the `urlencode` filter's output) stays as it is.
pub(super) fn encode_value(value: &str, set: &'static percent_encoding::AsciiSet) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    for (start, c) in value.char_indices() {
        if start < i {
            continue;
        }
        let escape = c == '%'
            && bytes.len() > start + 2
            && bytes[start + 1].is_ascii_hexdigit()
            && bytes[start + 2].is_ascii_hexdigit();
        if c == '%' && !escape {
            out.push_str("%25");
        } else {
            let mut buf = [0u8; 4];
            out.extend(percent_encoding::utf8_percent_encode(
                c.encode_utf8(&mut buf),
                set,
            ));
        }
        i = start + c.len_utf8();
    }
    out
}

/// Renders a URL template (`url`, `path`, `base_url`) so that no value changes the URL's
/// shape. A value where the scheme and host go is taken as they are (a server's URL from an
/// input); a value in the path is percent-encoded except `/` and sub-delimiters, and refused
/// when one of its segments is `.` or `..` (in any encoding); a value in the query or the
/// fragment is percent-encoded so that it cannot add a parameter or cut the URL. A `%` that
/// starts an escape is kept, so `| urlencode` is not encoded twice.
pub fn render_url(src: &str, ctx: &Value, start: UrlStart) -> Result<String, String> {
    if !is_template(src) {
        return Ok(src.to_string());
    }
    if let Some(u) = unusable_in_template(src, ctx) {
        return Err(format!("no data: {}, in `{}`", u.describe(), src.trim()));
    }
    let marked = url_env()
        .render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    let mut part = match start {
        UrlStart::Url => UrlPart::Scheme,
        UrlStart::Path => UrlPart::Path,
    };
    let mut out = String::with_capacity(marked.len());
    let mut rest = marked.as_str();
    let step = |part: UrlPart, c: char, out: &str| -> UrlPart {
        match (part, c) {
            (UrlPart::Scheme, '/') if out.ends_with(":/") => UrlPart::Authority,
            (UrlPart::Scheme, '/') if !out.ends_with(':') => UrlPart::Path,
            (UrlPart::Scheme | UrlPart::Authority | UrlPart::Path, '?') => UrlPart::Query,
            (UrlPart::Scheme | UrlPart::Authority | UrlPart::Path | UrlPart::Query, '#') => {
                UrlPart::Fragment
            }
            (UrlPart::Authority, '/') => UrlPart::Path,
            (p, _) => p,
        }
    };
    while let Some(at) = rest.find(VALUE_START) {
        for c in rest[..at].chars() {
            part = step(part, c, &out);
            out.push(c);
        }
        let after = &rest[at + VALUE_START.len_utf8()..];
        let end = after
            .find(VALUE_END)
            .ok_or_else(|| "a value in a URL holds a private-use character".to_string())?;
        let value = &after[..end];
        if value.contains(VALUE_START) || value.contains(VALUE_END) {
            return Err("a value in a URL holds a private-use character (U+E000/U+E001)".into());
        }
        match part {
            UrlPart::Scheme | UrlPart::Authority => {
                for c in value.chars() {
                    part = step(part, c, &out);
                    out.push(c);
                }
            }
            UrlPart::Path => {
                for seg in value.split('/') {
                    let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
                    if decoded == "." || decoded == ".." {
                        return Err(format!(
                            "the value `{value}` in the URL's path has a `{decoded}` segment, which would climb out of the path; pass a name, not a relative path"
                        ));
                    }
                }
                out.push_str(&encode_value(value, PATH_VALUE));
            }
            UrlPart::Query | UrlPart::Fragment => out.push_str(&encode_value(value, QUERY_VALUE)),
        }
        rest = &after[end + VALUE_END.len_utf8()..];
    }
    for c in rest.chars() {
        if c == VALUE_END {
            return Err("a value in a URL holds a private-use character (U+E001)".into());
        }
        out.push(c);
    }
    Ok(out)
}
