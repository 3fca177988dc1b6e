//! Templates (`"{{ inputs.deployment }}"`) and expressions (`result.status == 200`), both
//! minijinja with strict undefined: a typo is an error, never an empty string.
//!
//! A rendered value is data. It is produced once, and never rendered again, split into shell
//! words or evaluated: rendering walks a JSON tree and replaces each template string by its
//! result, so text that *looks* like a template inside an input value stays literal.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Top-level names visible to templates and expressions.
pub const ROOTS: &[&str] = &["inputs", "secrets", "steps", "run", "env", "result"];

/// The shared, sandboxed environment: no loader, no includes, bounded work.
pub fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_recursion_limit(64);
        // Output is never HTML; do not escape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env
    })
}

/// Does any string in a JSON tree hold a template?
pub fn has_templates(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_templates),
        Value::Object(m) => m.values().any(has_templates),
        _ => false,
    }
}

/// Is `s` a template at all? Plain strings skip the engine entirely.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// A syntax error, with the character offset within the source text where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: Option<usize>,
}

fn syntax_error(e: &minijinja::Error, src: &str) -> SyntaxError {
    let offset = e
        .range()
        .map(|r| src[..r.start.min(src.len())].chars().count());
    SyntaxError {
        message: e.detail().unwrap_or(&e.kind().to_string()).to_string(),
        offset,
    }
}

/// Checks a template's syntax and returns the dotted names it reads (`inputs.x`, `steps.a.b`).
pub fn template_refs(src: &str) -> Result<BTreeSet<String>, SyntaxError> {
    if !is_template(src) {
        return Ok(BTreeSet::new());
    }
    let tmpl = env()
        .template_from_str(src)
        .map_err(|e| syntax_error(&e, src))?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

/// Checks an expression's syntax and returns the dotted names it reads.
pub fn expr_refs(src: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let expr = env()
        .compile_expression(src)
        .map_err(|e| syntax_error(&e, src))?;
    Ok(expr.undeclared_variables(true).into_iter().collect())
}

/// Renders one template string against `ctx`. A string that is exactly one `{{ expression }}`
/// keeps the expression's type (so `replicas: "{{ inputs.replicas }}"` stays an integer).
pub fn render_str(src: &str, ctx: &Value) -> Result<Value, String> {
    if !is_template(src) {
        return Ok(Value::String(src.to_string()));
    }
    if let Some(inner) = single_expression(src) {
        return eval(inner, ctx);
    }
    env()
        .render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map(Value::String)
        .map_err(|e| describe(&e))
}

/// `{{ x }}` with nothing around it, and no other tags inside.
fn single_expression(src: &str) -> Option<&str> {
    let t = src.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// Evaluates an expression against `ctx` into a JSON value.
pub fn eval(src: &str, ctx: &Value) -> Result<Value, String> {
    let expr = env().compile_expression(src).map_err(|e| describe(&e))?;
    let v = expr
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    if v.is_undefined() {
        return Err(format!("`{src}` is undefined"));
    }
    serde_json::to_value(&v).map_err(|e| format!("`{src}` gave a value that is not data: {e}"))
}

/// Evaluates a condition: the expression must give a boolean (or a truthy value).
pub fn eval_bool(src: &str, ctx: &Value) -> Result<bool, String> {
    let expr = env().compile_expression(src).map_err(|e| describe(&e))?;
    let v = expr
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    Ok(v.is_true())
}

/// Renders every string in a JSON tree (object keys are left as they are).
pub fn render_value(v: &Value, ctx: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => render_str(s, ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(k.clone(), render_value(v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// `render_value` for a plan: a string that cannot be rendered before the run (it computes
/// with a value only the run will know, such as `steps.x.rate * 100`) stays as its template
/// source, so the plan shows what will be asked or sent instead of nothing.
pub fn render_value_lenient(v: &Value, ctx: &Value) -> Value {
    match v {
        Value::String(s) => render_str(s, ctx).unwrap_or_else(|_| Value::String(s.clone())),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_value_lenient(i, ctx)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_value_lenient(v, ctx)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A one-line description of a minijinja error, without its debug dump.
pub fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Collects every template string in a JSON tree with its JSON pointer (relative to `base`).
pub fn strings_in(v: &Value, base: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((base.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_in(item, &format!("{base}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                strings_in(
                    item,
                    &format!("{base}/{}", crate::yaml::pointer_segment(k)),
                    out,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_expression_keeps_type() {
        let ctx = json!({"inputs": {"n": 3}});
        assert_eq!(render_str("{{ inputs.n }}", &ctx).unwrap(), json!(3));
        assert_eq!(render_str("n={{ inputs.n }}", &ctx).unwrap(), json!("n=3"));
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let ctx = json!({"inputs": {"n": 3}});
        assert!(render_str("{{ inputs.m }}", &ctx).is_err());
        assert!(render_str("x {{ inputs.m }} y", &ctx).is_err());
    }

    #[test]
    fn rendered_values_are_not_rendered_again() {
        let ctx = json!({"inputs": {"v": "{{ 7*7 }}"}});
        assert_eq!(
            render_str("a {{ inputs.v }} b", &ctx).unwrap(),
            json!("a {{ 7*7 }} b")
        );
        assert_eq!(
            render_str("{{ inputs.v }}", &ctx).unwrap(),
            json!("{{ 7*7 }}")
        );
    }

    #[test]
    fn refs_are_nested_names() {
        let r = template_refs("{{ steps.current.image }} {{ inputs.ns }}").unwrap();
        assert!(r.contains("steps.current.image"));
        assert!(r.contains("inputs.ns"));
    }

    #[test]
    fn syntax_error_has_offset() {
        let e = template_refs("ok {{ inputs. }}").unwrap_err();
        assert!(e.offset.is_some());
    }
}
