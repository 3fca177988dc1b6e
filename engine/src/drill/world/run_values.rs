//! Values of the run in a drill's scripted HTTP: `{{ run.operator }}`, `{{ run.reason }}`,
//! `{{ run.id }}` and `{{ run.started_at }}` in a rule's `match.json` and in its answers' `json` and `body` stand for the
//! run's own values, so that one world serves any operator and reason (a trainee's, or the
//! drill's own `operator` and `reason`). The value is substituted once, as data: it is never
//! scanned for placeholders again, never a glob, never a template.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// The run's values a world may refer to.
#[derive(Debug, Clone, Default)]
pub struct RunValues {
    pub id: String,
    pub operator: String,
    pub reason: String,
    /// When the run started, as the runbook's `run.started_at` renders it (RFC 3339, ms, `Z`):
    /// a world's audit trail can date a record in the run's own time window, in a drill (its
    /// virtual start) as in training (now).
    pub started_at: String,
}

/// The names a placeholder may use.
pub const FIELDS: &[&str] = &["operator", "reason", "id", "started_at"];

/// `{{ ... }}`: every placeholder-shaped run of text, valid or not (the checker reports the
/// ones that are not `run.<field>`).
fn placeholder() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"\{\{\s*([^{}]*?)\s*\}\}").expect("valid regex"))
}

/// The problems of the placeholders in `s`: each one that is not `run.operator`,
/// `run.reason` or `run.id`, as (the placeholder, why).
pub fn problems(s: &str) -> Vec<(String, String)> {
    placeholder()
        .captures_iter(s)
        .filter_map(|c| {
            let inner = c.get(1).map_or("", |m| m.as_str());
            let field = inner.strip_prefix("run.").unwrap_or("");
            (!FIELDS.contains(&field)).then(|| {
                (
                    c[0].to_string(),
                    format!(
                        "a drill world replaces only `{{{{ run.operator }}}}`, `{{{{ run.reason }}}}`, `{{{{ run.id }}}}` and `{{{{ run.started_at }}}}`, not `{}`",
                        &c[0]
                    ),
                )
            })
        })
        .collect()
}

/// Every placeholder-bearing string under `v`, with its JSON pointer below `ptr`.
pub fn strings<'a>(v: &'a Value, ptr: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) if s.contains("{{") => out.push((ptr.to_string(), s)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, &format!("{ptr}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                strings(
                    x,
                    &format!("{ptr}/{}", crate::yaml::pointer_segment(k)),
                    out,
                );
            }
        }
        _ => {}
    }
}

/// `s` with each `{{ run.<field> }}` replaced by the run's value, in one pass.
pub fn bind_str(s: &str, run: &RunValues) -> String {
    if !s.contains("{{") {
        return s.to_string();
    }
    placeholder()
        .replace_all(s, |c: &regex::Captures| {
            match c.get(1).map_or("", |m| m.as_str()) {
                "run.operator" => run.operator.clone(),
                "run.reason" => run.reason.clone(),
                "run.id" => run.id.clone(),
                "run.started_at" => run.started_at.clone(),
                _ => c[0].to_string(),
            }
        })
        .into_owned()
}

/// Binds every string of a JSON value (keys stay as written).
pub fn bind(v: &mut Value, run: &RunValues) {
    match v {
        Value::String(s) if s.contains("{{") => *s = bind_str(s, run),
        Value::Array(a) => a.iter_mut().for_each(|x| bind(x, run)),
        Value::Object(m) => m.values_mut().for_each(|x| bind(x, run)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> RunValues {
        RunValues {
            id: "r1".into(),
            operator: "ana".into(),
            reason: "{{ run.operator }} *".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn values_are_substituted_once_as_data() {
        let mut v = json!({"reason": "{{ run.reason }}", "who": ["by {{run.operator}}"], "n": 3, "at": "{{ run.started_at }}"});
        bind(&mut v, &run());
        // The reason's own `{{ run.operator }}` is not expanded: a value is never re-read.
        assert_eq!(
            v,
            json!({"reason": "{{ run.operator }} *", "who": ["by ana"], "n": 3, "at": "2026-01-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn only_run_fields_are_placeholders() {
        assert!(problems("{{ run.reason }} and {{run.id}}").is_empty());
        let p = problems("{{ inputs.plan_id }} {{ run.host }}");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "{{ inputs.plan_id }}");
    }
}
