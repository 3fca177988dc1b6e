//! The words of a schema diagnostic: expected types and values, found values, help.

use serde_json::Value;

use super::Fix;
use crate::diag::{did_you_mean, Diagnostic};
use crate::yaml::Located;

/// A short string as YAML would show it in a suggestion.
pub(super) fn short_quoted(s: &str) -> String {
    let one: String = s.chars().take(40).collect();
    let more = if s.chars().count() > 40 { "…" } else { "" };
    format!("\"{}{more}\"", one.replace('"', "\\\""))
}

/// A value outside a closed list is replaced by the option the diagnostic suggests (so that
/// `type: int` checks the input's `default` as an integer, not as a string), or is unfixed.
pub(super) fn settle(
    fixes: &mut Vec<Fix>,
    unfixed: &mut Vec<String>,
    ptr: &str,
    got: &Value,
    options: &[String],
) {
    let shown = got.as_str().map_or_else(|| got.to_string(), str::to_string);
    // Only a near-certain reading (`int` → `integer`, `on_failure` → `on-failure`): a guess
    // (`FETCH` → `PATCH`) would check something the author did not write.
    let norm = |x: &str| x.to_ascii_lowercase().replace(['-', '_'], "");
    let sure = did_you_mean(&shown, options.iter().map(String::as_str)).filter(|s| {
        norm(s) == norm(&shown) || (shown.len() >= 3 && norm(s).starts_with(&norm(&shown)))
    });
    match sure {
        Some(s) => fixes.push(Fix::Set(ptr.to_string(), Value::String(s.to_string()))),
        None => unfixed.push(ptr.to_string()),
    }
}

/// "`x` is not a valid value for `y`", with the closest option suggested.
pub(super) fn not_one_of(
    file: &str,
    doc: &Located,
    ptr: &str,
    what: &str,
    got: &Value,
    options: &[String],
) -> Diagnostic {
    let shown = got.as_str().map_or_else(|| got.to_string(), str::to_string);
    let d = Diagnostic::error(
        file,
        doc.value_loc(ptr),
        format!("`{shown}` is not a valid value for {what}"),
    )
    .with_code("invalid-value")
    .with_len(scalar_len(got));
    match did_you_mean(&shown, options.iter().map(String::as_str)) {
        Some(s) => d.with_help(format!(
            "did you mean `{s}`? expected one of: {}",
            list(options)
        )),
        None => d.with_help(format!("expected one of: {}", list(options))),
    }
}

/// How wide a caret to draw under a value: the whole scalar, or one character for collections.
pub(super) fn scalar_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Number(n) => n.to_string().len(),
        Value::Bool(b) => b.to_string().len(),
        _ => 1,
    }
}

/// A schema type named the way YAML authors think of it.
pub(super) fn yaml_type(t: &str) -> String {
    match t {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "a whole number".into(),
        "number" => "a number".into(),
        "string" => "a string".into(),
        "boolean" => "`true` or `false`".into(),
        "null" => "empty".into(),
        other => format!("a {other}"),
    }
}

/// What was found instead, with the value itself when it is short.
pub(super) fn found_value(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("the string `{s}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("`{b}`"),
        other => json_type(other).to_string(),
    }
}

/// The first sentence of a description, on one line ("e.g." does not end a sentence).
pub(super) fn first_sentence(d: &str) -> String {
    let one_line = d.replace('\n', " ");
    let mut end = one_line.len();
    for (i, _) in one_line.match_indices(". ") {
        let before = &one_line[..i];
        if !(before.ends_with("e.g") || before.ends_with("i.e")) {
            end = i;
            break;
        }
    }
    one_line[..end].trim_end_matches('.').to_string()
}

pub(super) fn pattern_help(ptr: &str) -> &'static str {
    if ptr.ends_with("/name") {
        "use lowercase letters, digits and dashes, e.g. `k8s-rollback`"
    } else if ptr.ends_with("/id") {
        "use letters, digits, `_` and `-`, starting with a letter, e.g. `check-health`"
    } else {
        "change the value to match the pattern"
    }
}

pub(super) fn type_help(expected: &str) -> String {
    match expected {
        "array" => "write a list, e.g. `[a, b]` or one `- item` per line".into(),
        "object" => "write a mapping of `key: value` lines".into(),
        "string" => "quote the value to make it a string".into(),
        "integer" => "write a whole number without quotes, e.g. `3`".into(),
        "number" => "write a number without quotes, e.g. `1.5`".into(),
        "boolean" => "write `true` or `false` without quotes".into(),
        other => format!("write a value of type {other}"),
    }
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(super) fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
