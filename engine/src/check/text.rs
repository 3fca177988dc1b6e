//! Text-level checks: control characters in a runbook's strings, located to the character.

use serde_json::Value;

use crate::diag::{Diagnostic, Loc};
use crate::yaml::{self};

/// Text in a runbook or drill (keys and string values: titles, prompts, descriptions,
/// instructions, arguments...) may not hold control characters other than tab and line feed,
/// nor Unicode bidirectional controls. YAML lets a double-quoted string write any of them
/// (`"\e[2J"`); shown on the operator's terminal, they could clear it or rewrite a prompt.
/// (The terminal shows them escaped anyway, see `term.rs`; this says so where they are written.)
pub(super) fn control_characters(file: &str, text: &str, doc: &yaml::Located) -> Vec<Diagnostic> {
    fn walk(
        file: &str,
        text: &str,
        doc: &yaml::Located,
        v: &Value,
        ptr: &mut String,
        out: &mut Vec<Diagnostic>,
    ) {
        let found = |s: &str| {
            s.chars()
                .enumerate()
                .find(|(_, c)| crate::term::is_unsafe(*c))
        };
        let diag = |loc: Loc, what: String, (at, c): (usize, char)| {
            Diagnostic::error(
                file,
                char_loc(text, loc, at),
                format!(
                    "{what} holds the control character U+{:04X} ({}) at character {}",
                    c as u32,
                    crate::term::visible(&c.to_string()),
                    at + 1
                ),
            )
            .with_code("control-character")
            .with_help(
                "remove it: runbook text may hold tabs and line breaks, not terminal control \
                 characters (they would reach the operator's terminal); a script that needs \
                 one can write it with printf, e.g. printf '\\033'",
            )
        };
        let name = |ptr: &str| {
            if ptr.is_empty() {
                "the document".to_string()
            } else {
                format!("`{ptr}`")
            }
        };
        match v {
            Value::String(s) => {
                if let Some(hit) = found(s) {
                    out.push(diag(
                        doc.value_loc(ptr),
                        format!("the value of {}", name(ptr)),
                        hit,
                    ));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = ptr.len();
                    ptr.push_str(&format!("/{i}"));
                    walk(file, text, doc, item, ptr, out);
                    ptr.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&yaml::pointer_segment(k));
                    if let Some(hit) = found(k) {
                        out.push(diag(
                            doc.key_loc(ptr),
                            format!("the key {}", name(ptr)),
                            hit,
                        ));
                    }
                    walk(file, text, doc, item, ptr, out);
                    ptr.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = vec![];
    walk(file, text, doc, &doc.value, &mut String::new(), &mut out);
    out
}

/// Where the `at`-th character of the scalar written at `start` is, when the scalar is on one
/// line: plain, single-quoted, or double-quoted with its escapes (`\e` is one character of
/// the value, two of the source). Otherwise the scalar's start.
pub(super) fn char_loc(text: &str, start: Loc, at: usize) -> Loc {
    let Some(line) = text.lines().nth((start.line as usize).saturating_sub(1)) else {
        return start;
    };
    let src: Vec<char> = line
        .chars()
        .skip((start.col as usize).saturating_sub(1))
        .collect();
    let (mut i, quote) = match src.first() {
        Some('"') => (1, Some('"')),
        Some('\'') => (1, Some('\'')),
        Some(_) => (0, None),
        None => return start,
    };
    let mut n = 0;
    while i < src.len() {
        let c = src[i];
        if n == at {
            return Loc::new(start.line, start.col + i as u32);
        }
        let width = match (quote, c) {
            (Some('"'), '"') => return start,
            (Some('"'), '\\') => match src.get(i + 1) {
                Some('x') => 4,
                Some('u') => 6,
                Some('U') => 10,
                _ => 2,
            },
            (Some('\''), '\'') if src.get(i + 1) == Some(&'\'') => 2,
            (Some('\''), '\'') => return start,
            _ => 1,
        };
        i += width;
        n += 1;
    }
    start
}
