//! The runbook schema, generated from these types, and coercion of YAML scalars to the types
//! it expects.

use super::RunbookSpec;
use serde_json::Value;

/// The runbook schema, parsed once per process from the checked-in copy (the test
/// `lang_schema` fails when it differs from `runbook_schema()`): parsing it costs a tenth of
/// generating it, and every run, check and plan starts with it.
pub fn cached_runbook_schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(include_str!("../../../schemas/runbook.schema.json"))
            .unwrap_or_else(|_| runbook_schema())
    })
}

/// Makes a rendered action fit its type: where the schema wants a string and a template gave a
/// number or a boolean (`argv: ["{{ inputs.replicas }}"]`), the value becomes its text. Fields
/// that accept numbers (`replicas`) keep them.
pub fn coerce_to_schema(def: &str, v: &mut Value) {
    let schema = cached_runbook_schema();
    let defs = &schema["$defs"];
    if let Some(s) = defs.get(def) {
        coerce(v, s, defs, 0);
    }
}

pub(super) fn coerce(v: &mut Value, schema: &Value, defs: &Value, depth: usize) {
    if depth > 32 {
        return;
    }
    let schema = resolve(schema, defs);
    match v {
        Value::Number(_) | Value::Bool(_) => {
            let types = schema_types(schema, defs);
            let wants_string = types.iter().any(|t| t == "string");
            let takes_scalar = types
                .iter()
                .any(|t| matches!(t.as_str(), "integer" | "number" | "boolean"));
            if wants_string && !takes_scalar {
                *v = Value::String(match v {
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => unreachable!(),
                });
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for i in items {
                    coerce(i, item, defs, depth + 1);
                }
            }
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if let Some(p) = schema.get("properties").and_then(|p| p.get(k)) {
                    coerce(child, p, defs, depth + 1);
                } else if let Some(ap) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    coerce(child, ap, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Follows `$ref` and the non-null branch of `Option` unions.
pub(super) fn resolve<'a>(mut schema: &'a Value, defs: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match defs.get(r.rsplit('/').next().unwrap_or_default()) {
                Some(d) => schema = d,
                None => break,
            }
        } else if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = any
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 {
                schema = non_null[0];
            } else {
                break;
            }
        } else {
            break;
        }
    }
    schema
}

/// Every JSON type a schema (or any branch of its union) accepts.
pub(super) fn schema_types(schema: &Value, defs: &Value) -> Vec<String> {
    let mut out = vec![];
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(|t| t.as_str().map(str::to_string)))
        }
        _ => {}
    }
    if let Some(any) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        for b in any {
            out.extend(schema_types(resolve(b, defs), defs));
        }
    }
    if schema.get("enum").is_some() && out.is_empty() {
        out.push("string".into());
    }
    out
}

/// The JSON Schema of the runbook format, as checked in under `schemas/`.
pub fn runbook_schema() -> Value {
    let schema = schemars::schema_for!(RunbookSpec);
    serde_json::to_value(schema).expect("schema serializes")
}
