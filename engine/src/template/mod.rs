//! Templates (`"{{ inputs.deployment }}"`) and expressions (`result.status == 200`), both
//! minijinja with strict undefined: a typo is an error, never an empty string.
//!
//! A rendered value is data. It is produced once, and never rendered again, split into shell
//! words or evaluated: rendering walks a JSON tree and replaces each template string by its
//! result, so text that *looks* like a template inside an input value stays literal.

pub mod namespace;
mod nodata;
mod url;
use nodata::single_expression;
pub use nodata::{unusable_in_template, unusable_operand, Unusable};
pub use url::{render_url, UrlStart};

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

/// Shell-style placeholders (`${NAME}`, `$NAME`) in the literal text of a template, outside
/// `{{ }}`, `{% %}` and `{# #}`: (character offset, the text as written, NAME). `$$` and `\$`
/// are not placeholders.
pub fn shell_placeholders(src: &str) -> Vec<(usize, String, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        // Skip template tags: their content is an expression, not literal text.
        if c == '{' && matches!(chars.get(i + 1), Some('{' | '%' | '#')) {
            let close = match chars[i + 1] {
                '{' => '}',
                other => other,
            };
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == close && chars[j + 1] == '}') {
                j += 1;
            }
            i = j + 2;
            continue;
        }
        if c == '$' && !(i > 0 && matches!(chars[i - 1], '$' | '\\')) {
            if chars.get(i + 1) == Some(&'{') {
                let start = i + 2;
                let mut j = start;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                if j > start && ident_start(chars[start]) && chars.get(j) == Some(&'}') {
                    let name: String = chars[start..j].iter().collect();
                    out.push((i, format!("${{{name}}}"), name));
                    i = j + 1;
                    continue;
                }
            } else if chars.get(i + 1).is_some_and(|c| ident_start(*c)) {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push((i, format!("${name}"), name));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
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
    // `{{ steps.r.rate * 100 }}` with no rate: no data, never `none` computed with.
    if let Some(u) = unusable_in_template(src, ctx) {
        return Err(format!("no data: {}, in `{}`", u.describe(), src.trim()));
    }
    if let Some(inner) = single_expression(src) {
        return eval(inner, ctx);
    }
    env()
        .render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map(Value::String)
        .map_err(|e| describe(&e))
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
    fn shell_placeholders_are_found_in_literal_text_only() {
        let found: Vec<(usize, String)> =
            shell_placeholders("${A}/x/$b_1 {{ '$C' }} $$D \\$E $5 ${ not} é$F")
                .into_iter()
                .map(|(o, w, _)| (o, w))
                .collect();
        assert_eq!(
            found,
            vec![(0, "${A}".into()), (7, "$b_1".into()), (43, "$F".into())]
        );
    }

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
    fn templates_never_compute_with_nothing() {
        let ctx = json!({"steps": {"r": {"rate": null, "n": 2}}});
        let e = render_str("{{ steps.r.rate * 100 }}", &ctx).unwrap_err();
        assert!(e.contains("no data: `steps.r.rate` has no value"), "{e}");
        let e = render_str("rate {{ steps.r.rate < 0.01 }} now", &ctx).unwrap_err();
        assert!(e.contains("no data"), "{e}");
        let e = render_str("{% if steps.r.rate > 1 %}high{% endif %}", &ctx).unwrap_err();
        assert!(e.contains("no data"), "{e}");
        let e = render_url(
            "http://h/p?limit={{ steps.r.rate * 2 }}",
            &ctx,
            UrlStart::Url,
        )
        .unwrap_err();
        assert!(e.contains("no data"), "{e}");
        // A name the template defines itself is not the run's data.
        assert_eq!(
            render_str("{% set k = 2 %}{{ k * steps.r.n }}", &ctx).unwrap(),
            json!("4")
        );
        // Shown as it is, or asked about: fine.
        assert_eq!(render_str("{{ steps.r.n * 2 }}", &ctx).unwrap(), json!(4));
        assert!(render_str("rate {{ steps.r.rate }}", &ctx).is_ok());
        assert!(render_str(
            "{{ 'none' if steps.r.rate is none else steps.r.rate * 100 }}",
            &ctx
        )
        .is_ok());
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
