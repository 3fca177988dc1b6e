//! Schema validation with locations: each JSON Schema violation of a document becomes a
//! diagnostic at the line and column of the offending key or value, saying what was expected
//! and how to fix it (with a "did you mean" for misspelt keys and values).

mod text;
mod walk;
use text::{
    found_value, list, not_one_of, pattern_help, scalar_len, settle, short_quoted, type_help,
    yaml_type,
};
pub use walk::{allowed_keys, describe_pointer, prune_unknown};
use walk::{deref, insert_at, property_description, schema_at};

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::diag::{did_you_mean, Diagnostic, Loc};
use crate::spec;
use crate::yaml::{self, Located};

/// The runbook schema and its compiled validator, built once per process.
pub fn runbook_validator() -> &'static (Value, jsonschema::Validator) {
    static V: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    V.get_or_init(|| {
        let schema = spec::cached_runbook_schema().clone();
        let v = jsonschema::validator_for(&schema).expect("the generated schema compiles");
        (schema, v)
    })
}

/// One schema violation, after looking through `anyOf`/`oneOf` wrappers (`Option<T>`, enums
/// whose variants carry descriptions, untagged unions) to the error that explains it.
enum Violation {
    Plain(jsonschema::ValidationError<'static>),
    /// A value outside a closed list (an enum written as `oneOf` of constants).
    NotOneOf {
        ptr: String,
        instance: Value,
        options: Vec<String>,
    },
    /// A value matching none of several types (`IntOrTemplate`: an integer or a template).
    NotOfTypes {
        ptr: String,
        instance: Value,
        types: Vec<&'static str>,
    },
}

impl Violation {
    fn ptr(&self) -> String {
        match self {
            Violation::Plain(e) => e.instance_path().to_string(),
            Violation::NotOneOf { ptr, .. } | Violation::NotOfTypes { ptr, .. } => ptr.clone(),
        }
    }
}

/// JSON type names a `type` error expected, in schema terms (`integer`, `object`, ...).
/// `null` (the "absent" of an optional field) is left out when another type is allowed.
fn type_names(kind: &jsonschema::error::TypeKind) -> Vec<&'static str> {
    use jsonschema::error::TypeKind;
    let all: Vec<&'static str> = match kind {
        TypeKind::Single(t) => vec![t.as_str()],
        TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect(),
    };
    if all.len() > 1 {
        all.into_iter().filter(|t| *t != "null").collect()
    } else {
        all
    }
}

fn violations(e: jsonschema::ValidationError<'static>, out: &mut Vec<Violation>) {
    use jsonschema::error::ValidationErrorKind as K;
    let ptr = e.instance_path().to_string();
    let (K::AnyOf { context } | K::OneOfNotValid { context }) = e.kind() else {
        out.push(Violation::Plain(e));
        return;
    };
    let only_here = |b: &Vec<jsonschema::ValidationError<'static>>| {
        b.len() == 1 && b[0].instance_path().to_string() == ptr
    };
    // The `null` branch of an optional field never explains anything: the value is there.
    let branches: Vec<usize> = context
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            !(only_here(b)
                && matches!(b[0].kind(), K::Type { kind } if type_names(kind) == ["null"]))
        })
        .map(|(i, _)| i)
        .collect();
    // A branch of another JSON type only says "not this shape" (a list where a mapping is
    // allowed too, say): when a branch of the right type remains, it explains the problem.
    let shaped: Vec<usize> = branches
        .iter()
        .copied()
        .filter(|&i| !(only_here(&context[i]) && matches!(context[i][0].kind(), K::Type { .. })))
        .collect();
    let branches = if shaped.is_empty() { branches } else { shaped };
    let consts: Option<Vec<String>> = branches
        .iter()
        .map(|&i| {
            let b = &context[i];
            match b[0].kind() {
                K::Constant { expected_value } if only_here(b) => Some(
                    expected_value
                        .as_str()
                        .map_or_else(|| expected_value.to_string(), str::to_string),
                ),
                _ => None,
            }
        })
        .collect();
    let types: Option<Vec<&'static str>> = branches
        .iter()
        .map(|&i| {
            let b = &context[i];
            match b[0].kind() {
                K::Type { kind } if only_here(b) => Some(type_names(kind)),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    match (consts, types) {
        (Some(options), _) if !options.is_empty() => out.push(Violation::NotOneOf {
            ptr,
            instance: e.instance().clone().into_owned(),
            options,
        }),
        (_, Some(types)) if branches.len() > 1 => out.push(Violation::NotOfTypes {
            ptr,
            instance: e.instance().clone().into_owned(),
            types,
        }),
        _ if branches.len() == 1 => {
            let (K::AnyOf { context } | K::OneOfNotValid { context }) = e.into_parts().kind else {
                unreachable!("matched above")
            };
            let branch = context.into_iter().nth(branches[0]).unwrap_or_default();
            for inner in branch {
                violations(inner, out);
            }
        }
        _ => out.push(Violation::Plain(e)),
    }
}

/// Validates `doc` against `schema`, turning each violation into a located diagnostic.
pub fn schema_diagnostics(
    file: &str,
    doc: &Located,
    schema: &Value,
    validator: &jsonschema::Validator,
) -> Vec<Diagnostic> {
    schema_check(file, doc, schema, validator).diagnostics
}

/// A schema check: the diagnostics, and the document as it reads once each suggested fix is
/// made and every other offending value is taken out, so that the later stages can still
/// check the rest of the file (one run of `check` reports both kinds of problem, and a
/// problem the schema reported does not come back as a cascade).
pub struct SchemaCheck {
    pub diagnostics: Vec<Diagnostic>,
    /// The document with the fixes made (`interval: 5` → `"5s"`, `confirm: "text"` →
    /// `{ prompt: "text" }`, a key moved to where it belongs) and unknown keys pruned.
    pub repaired: Value,
    /// Where the violations without a fix are; removing them may let the rest deserialize.
    pub unfixed: Vec<String>,
}

/// A fix the diagnostic suggests, made on the repaired document.
enum Fix {
    Set(String, Value),
    Move { from: String, to: String },
}

/// Fields whose value is a duration (`30s`, `5m`): a bare number there lacks its unit.
const DURATION_FIELDS: &[&str] = &[
    "timeout",
    "interval",
    "delay",
    "max_delay",
    "wait",
    "mttr_target",
    "takes",
    "after",
    "within",
    "at",
];

/// Is `ptr` a duration field of its object (a declared property, not a map entry)?
fn is_duration_field(schema: &Value, ptr: &str) -> bool {
    let Some((parent, key)) = ptr.rsplit_once('/') else {
        return false;
    };
    DURATION_FIELDS.contains(&key) && allowed_keys(schema, parent).iter().any(|k| k == key)
}

/// The one required text field of the object expected at `ptr` (`prompt` for `confirm`,
/// `instructions` for `manual`), when a string was written in its place.
fn single_text_field(schema: &Value, ptr: &str) -> Option<String> {
    let s = deref(schema, &schema_at(schema, ptr)?);
    let required: Vec<&str> = s
        .get("required")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let [only] = required.as_slice() else {
        return None;
    };
    let prop = deref(schema, s.get("properties")?.get(*only)?);
    (prop.get("type").and_then(Value::as_str) == Some("string")).then(|| only.to_string())
}

/// Where a key that is unknown at `ptr` belongs one level away: a child object of `ptr` that
/// has it (`json` beside `request` goes into `request`), or the object holding `ptr`
/// (`verify` inside `http` goes to the step). The pointer of the object it belongs in.
fn one_level_off(schema: &Value, doc: &Value, ptr: &str, key: &str) -> Option<String> {
    for child in allowed_keys(schema, ptr) {
        let cp = format!("{ptr}/{}", yaml::pointer_segment(&child));
        if allowed_keys(schema, &cp).iter().any(|k| k == key) {
            // A child that is there but not a mapping is not where it goes.
            if doc.pointer(&cp).is_none_or(Value::is_object) {
                return Some(cp);
            }
        }
    }
    let (parent, _) = ptr.rsplit_once('/')?;
    (doc.pointer(parent).is_some_and(Value::is_object)
        && allowed_keys(schema, parent).iter().any(|k| k == key))
    .then(|| parent.to_string())
}

/// Validates `doc`, with the repaired document (see `SchemaCheck`).
pub fn schema_check(
    file: &str,
    doc: &Located,
    schema: &Value,
    validator: &jsonschema::Validator,
) -> SchemaCheck {
    use jsonschema::error::ValidationErrorKind as K;
    let mut fixes: Vec<Fix> = Vec::new();
    let mut unfixed: Vec<String> = Vec::new();
    let mut found = Vec::new();
    for e in validator.iter_errors(&doc.value) {
        violations(e.to_owned(), &mut found);
    }
    let mut out = Vec::new();
    let mut unknown_at: HashMap<String, Vec<String>> = HashMap::new();
    for v in &found {
        if let Violation::Plain(e) = v {
            if let K::AdditionalProperties { unexpected } = e.kind() {
                unknown_at
                    .entry(v.ptr())
                    .or_default()
                    .extend(unexpected.iter().cloned());
            }
        }
    }
    for v in found {
        let ptr = v.ptr();
        let what = describe_pointer(&ptr);
        let e = match v {
            Violation::NotOneOf {
                instance, options, ..
            } => {
                let d = not_one_of(file, doc, &ptr, &what, &instance, &options);
                settle(&mut fixes, &mut unfixed, &ptr, &instance, &options);
                out.push(d);
                continue;
            }
            Violation::NotOfTypes {
                instance, types, ..
            } => {
                unfixed.push(ptr.clone());
                // `IntOrTemplate`: a number, or a template that renders to one.
                let int_or_template =
                    types.len() == 2 && types.contains(&"integer") && types.contains(&"string");
                let expected = if int_or_template {
                    "a whole number or a template string".to_string()
                } else {
                    types
                        .iter()
                        .map(|t| yaml_type(t))
                        .collect::<Vec<_>>()
                        .join(" or ")
                };
                out.push(
                    Diagnostic::error(
                        file,
                        doc.value_loc(&ptr),
                        format!(
                            "{what} must be {expected}, found {}",
                            found_value(&instance)
                        ),
                    )
                    .with_code("type")
                    .with_len(scalar_len(&instance))
                    .with_help(if int_or_template {
                        "write a number (`3`) or a template (`\"{{ inputs.replicas }}\"`)"
                            .to_string()
                    } else {
                        "write a single plain value".to_string()
                    }),
                );
                continue;
            }
            Violation::Plain(e) => e,
        };
        match e.kind() {
            K::AdditionalProperties { unexpected } => {
                let allowed = allowed_keys(schema, &ptr);
                for key in unexpected {
                    let kp = format!("{ptr}/{}", yaml::pointer_segment(key));
                    let loc = doc.key_loc(&kp);
                    let d =
                        Diagnostic::error(file, loc, format!("unknown field `{key}` in {what}"))
                            .with_code("unknown-field")
                            .with_len(key.chars().count())
                            .with_label("not a field here");
                    let d = if let Some(to) = one_level_off(schema, &doc.value, &ptr, key) {
                        let there = describe_pointer(&to);
                        let help = if to.len() > ptr.len() {
                            let child = to.rsplit('/').next().unwrap_or_default();
                            format!("`{key}` belongs one level down, in {there}: move it under `{child}:`")
                        } else {
                            format!(
                                "`{key}` belongs one level up, in {there}: move it out of {what}"
                            )
                        };
                        fixes.push(Fix::Move {
                            from: kp.clone(),
                            to: format!("{to}/{}", yaml::pointer_segment(key)),
                        });
                        d.with_label(format!("belongs in {there}")).with_help(help)
                    } else {
                        match did_you_mean(key, allowed.iter().map(String::as_str)) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!("expected one of: {}", list(&allowed))),
                        }
                    };
                    out.push(d);
                }
            }
            K::Required { property } => {
                let prop = property.as_str().unwrap_or_default().to_string();
                // A misspelt key already explains the missing one: report it once.
                let explained = unknown_at.get(&ptr).is_some_and(|keys| {
                    keys.iter()
                        .any(|k| did_you_mean(k, [prop.as_str()]).is_some())
                });
                // So does a key written one level up that belongs in it.
                let moved_in = unknown_at.get(&ptr).is_some_and(|keys| {
                    let cp = format!("{ptr}/{}", yaml::pointer_segment(&prop));
                    keys.iter().any(|k| {
                        one_level_off(schema, &doc.value, &ptr, k).as_deref() == Some(cp.as_str())
                    })
                });
                if explained || moved_in {
                    continue;
                }
                unfixed.push(ptr.clone());
                let loc = if ptr.is_empty() {
                    Loc::new(1, 1)
                } else {
                    doc.key_loc(&ptr)
                };
                let described = property_description(schema, &ptr, &prop)
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                out.push(
                    Diagnostic::error(file, loc, format!("missing field `{prop}` in {what}"))
                        .with_code("missing-field")
                        .with_len(ptr.rsplit('/').next().map_or(1, |k| k.chars().count()))
                        .with_help(format!("add `{prop}:`{described}")),
                );
            }
            K::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|o| o.as_str().map(str::to_string).unwrap_or(o.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(not_one_of(file, doc, &ptr, &what, e.instance(), &opts));
                settle(&mut fixes, &mut unfixed, &ptr, e.instance(), &opts);
            }
            K::Type { kind } => {
                let names = type_names(kind);
                let instance = e.instance();
                if names.contains(&"string")
                    && (instance.is_number() || instance.is_boolean())
                    && is_duration_field(schema, &ptr)
                {
                    // `interval: 5`: a duration without its unit, not a YAML typing problem.
                    let n = instance.to_string();
                    fixes.push(Fix::Set(ptr.clone(), Value::String(format!("{n}s"))));
                    out.push(
                        Diagnostic::error(
                            file,
                            doc.value_loc(&ptr),
                            format!("`{n}` is not a duration: write `{n}s`"),
                        )
                        .with_code("duration")
                        .with_len(scalar_len(instance))
                        .with_help(crate::model::DURATION_HELP),
                    );
                    continue;
                }
                if names == ["object"] {
                    if let (Some(text), Some(field)) =
                        (instance.as_str(), single_text_field(schema, &ptr))
                    {
                        // `confirm: "Roll back?"`: the text goes in the mapping's one field.
                        let key = ptr.rsplit('/').next().unwrap_or_default().to_string();
                        fixes.push(Fix::Set(
                            ptr.clone(),
                            serde_json::json!({ field.clone(): text }),
                        ));
                        out.push(
                            Diagnostic::error(
                                file,
                                doc.value_loc(&ptr),
                                format!("`{key}` takes a mapping, not text: write `{key}: {{ {field}: ... }}`"),
                            )
                            .with_code("type")
                            .with_len(scalar_len(instance) + 2)
                            .with_help(format!(
                                "put the text under `{field}:`, e.g. `{key}: {{ {field}: {} }}`",
                                short_quoted(text)
                            )),
                        );
                        continue;
                    }
                }
                unfixed.push(ptr.clone());
                let expected: Vec<String> = names.iter().map(|t| yaml_type(t)).collect();
                let first = names.first().copied().unwrap_or("value");
                out.push(
                    Diagnostic::error(
                        file,
                        doc.value_loc(&ptr),
                        format!(
                            "{what} must be {}, found {}",
                            expected.join(" or "),
                            found_value(e.instance())
                        ),
                    )
                    .with_code("type")
                    .with_len(scalar_len(e.instance()))
                    .with_help(type_help(first)),
                );
            }
            K::Constant { expected_value } => {
                let opts = vec![expected_value
                    .as_str()
                    .map_or_else(|| expected_value.to_string(), str::to_string)];
                out.push(not_one_of(file, doc, &ptr, &what, e.instance(), &opts));
                settle(&mut fixes, &mut unfixed, &ptr, e.instance(), &opts);
            }
            K::Pattern { pattern } => {
                unfixed.push(ptr.clone());
                out.push(
                    Diagnostic::error(
                        file,
                        doc.value_loc(&ptr),
                        format!(
                            "`{}` does not match the pattern `{pattern}` required for {what}",
                            e.instance()
                                .as_str()
                                .map_or_else(|| e.instance().to_string(), str::to_string)
                        ),
                    )
                    .with_code("pattern")
                    .with_len(scalar_len(e.instance()))
                    .with_help(pattern_help(&ptr)),
                );
            }
            K::Minimum { limit } | K::Maximum { limit } => {
                unfixed.push(ptr.clone());
                let bound = if matches!(e.kind(), K::Minimum { .. }) {
                    "at least"
                } else {
                    "at most"
                };
                out.push(
                    Diagnostic::error(
                        file,
                        doc.value_loc(&ptr),
                        format!("{what} must be {bound} {limit}, found {}", e.instance()),
                    )
                    .with_code("range")
                    .with_len(scalar_len(e.instance()))
                    .with_help(format!("use a value {bound} {limit}")),
                );
            }
            _ => {
                unfixed.push(ptr.clone());
                out.push(
                    Diagnostic::error(file, doc.value_loc(&ptr), format!("{what}: {e}"))
                        .with_code("schema")
                        .with_help("`runbook schema` describes every field"),
                );
            }
        }
    }
    let mut repaired = doc.value.clone();
    if out.is_empty() {
        // Nothing to repair (and pruning walks the schema for every node: not for free).
        return SchemaCheck {
            diagnostics: out,
            repaired,
            unfixed,
        };
    }
    for f in fixes {
        match f {
            Fix::Set(ptr, v) => {
                if let Some(slot) = repaired.pointer_mut(&ptr) {
                    *slot = v;
                }
            }
            Fix::Move { from, to } => {
                let Some((parent, key)) = from.rsplit_once('/') else {
                    continue;
                };
                let key = key.replace("~1", "/").replace("~0", "~");
                let taken = repaired
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove(&key));
                if let Some(v) = taken {
                    insert_at(&mut repaired, &to, v);
                }
            }
        }
    }
    prune_unknown(&mut repaired, schema);
    SchemaCheck {
        diagnostics: out,
        repaired,
        unfixed,
    }
}

#[cfg(test)]
mod tests {
    use super::text::first_sentence;
    use super::*;

    #[test]
    fn first_sentence_does_not_stop_at_abbreviations() {
        assert_eq!(
            first_sentence("Give up after this long, e.g. `5m`. Required."),
            "Give up after this long, e.g. `5m`"
        );
        assert_eq!(first_sentence("One line.\nMore."), "One line");
    }

    #[test]
    fn enum_errors_are_found_through_optional_wrappers() {
        let doc = yaml::parse_str(
            "t.yaml",
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: a, title: A }\n\
             steps:\n  - id: s\n    safety: reversable\n    wait: 1s\n",
        )
        .unwrap();
        let (schema, validator) = runbook_validator();
        let d = schema_diagnostics("t.yaml", &doc, schema, validator);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, "invalid-value");
        assert_eq!((d[0].line, d[0].column), (6, 13));
        assert!(d[0]
            .help
            .as_deref()
            .unwrap()
            .contains("did you mean `reversible`?"));
    }
}
