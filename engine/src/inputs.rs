//! Input values: parsing `--input k=v` and `--inputs FILE`, applying defaults, and checking
//! types, enums, bounds and patterns before anything runs.

use indexmap::IndexMap;
use serde_json::Value;

use crate::spec::{InputAction, InputSpec, InputType};

/// Compiles an input `pattern`, anchored to the whole value.
pub fn compile_pattern(p: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| e.to_string())
}

/// Does `v` have the JSON type the input type asks for?
pub fn has_type(kind: InputType, v: &Value) -> bool {
    match kind {
        InputType::String => v.is_string(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Number => v.is_number(),
        InputType::Boolean => v.is_boolean(),
    }
}

fn type_name(kind: InputType) -> &'static str {
    match kind {
        InputType::String => "string",
        InputType::Integer => "integer",
        InputType::Number => "number",
        InputType::Boolean => "boolean",
    }
}

/// Checks a value against an input's type, enum, bounds and pattern.
pub fn validate_value(name: &str, spec: &InputSpec, v: &Value) -> Result<(), String> {
    if !has_type(spec.kind, v) {
        return Err(format!(
            "input `{name}` must be {} {}, got {v}",
            if spec.kind == InputType::Integer {
                "an"
            } else {
                "a"
            },
            type_name(spec.kind)
        ));
    }
    if v.as_str().is_some_and(|s| s.contains('\0')) {
        return Err(format!(
            "input `{name}` contains a NUL byte, which no command argument, environment \
             variable or header can carry; remove it"
        ));
    }
    if let Some(allowed) = &spec.allowed {
        if !allowed.contains(v) {
            let opts: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!(
                "input `{name}` must be one of {}, got {v}",
                opts.join(", ")
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = spec.minimum {
            if n < min {
                return Err(format!("input `{name}` must be at least {min}, got {v}"));
            }
        }
        if let Some(max) = spec.maximum {
            if n > max {
                return Err(format!("input `{name}` must be at most {max}, got {v}"));
            }
        }
    }
    if let (Some(p), Some(s)) = (&spec.pattern, v.as_str()) {
        let re = compile_pattern(p)?;
        if !re.is_match(s) {
            return Err(format!("input `{name}` must match `{p}`, got {v}"));
        }
    }
    Ok(())
}

/// Converts command-line text into the input's type (`--input replicas=3` gives the integer 3).
pub fn coerce(name: &str, spec: &InputSpec, raw: &str) -> Result<Value, String> {
    let v = match spec.kind {
        InputType::String => Value::String(raw.to_string()),
        InputType::Integer => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("input `{name}` must be an integer, got `{raw}`"))?,
        InputType::Number => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("input `{name}` must be a number, got `{raw}`"))?,
        InputType::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "on" => Value::Bool(true),
            "false" | "no" | "n" | "0" | "off" => Value::Bool(false),
            _ => return Err(format!("input `{name}` must be true or false, got `{raw}`")),
        },
    };
    validate_value(name, spec, &v)?;
    Ok(v)
}

/// An `input:` step seen as an input declaration.
pub fn input_action_spec(a: &InputAction) -> InputSpec {
    InputSpec {
        kind: a.kind,
        description: Some(a.prompt.clone()),
        default: a.default.clone(),
        allowed: a.allowed.clone(),
        minimum: a.minimum,
        maximum: a.maximum,
        pattern: a.pattern.clone(),
        example: None,
    }
}

/// Where the values come from, in increasing priority: defaults, `--inputs FILE`, `--input k=v`.
#[derive(Debug, Default, Clone)]
pub struct Supplied {
    /// Values from an inputs file (already typed by YAML/JSON).
    pub file: IndexMap<String, Value>,
    /// `--input k=v` pairs, as text.
    pub args: Vec<(String, String)>,
}

impl Supplied {
    /// Parses `k=v` arguments.
    pub fn with_args(mut self, args: &[String]) -> Result<Self, String> {
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("`--input {a}` is not of the form NAME=VALUE"))?;
            self.args.push((k.trim().to_string(), v.to_string()));
        }
        Ok(self)
    }

    /// Reads an inputs file (YAML or JSON mapping).
    pub fn with_file(mut self, path: &std::path::Path) -> Result<Self, String> {
        let bytes = crate::files::read_input(path, "an inputs file")?;
        let file = path.display().to_string();
        let doc = crate::yaml::parse(&file, &bytes).map_err(|d| d.to_string())?;
        let Value::Object(m) = doc.value else {
            return Err(format!(
                "{file}: expected a mapping of input names to values"
            ));
        };
        self.file = m.into_iter().collect();
        Ok(self)
    }
}

/// Resolves every input of a runbook, reporting all problems together.
pub fn resolve(
    declared: &IndexMap<String, InputSpec>,
    supplied: &Supplied,
) -> Result<IndexMap<String, Value>, Vec<String>> {
    let mut out = IndexMap::new();
    let mut errors = Vec::new();
    let known: Vec<&str> = declared.keys().map(String::as_str).collect();
    for name in supplied
        .file
        .keys()
        .chain(supplied.args.iter().map(|(k, _)| k))
    {
        if !declared.contains_key(name) {
            let hint = crate::diag::did_you_mean(name, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_else(|| format!(" (inputs: {})", known.join(", ")));
            errors.push(format!("unknown input `{name}`{hint}"));
        }
    }
    for (name, spec) in declared {
        let arg = supplied.args.iter().rev().find(|(k, _)| k == name);
        let v = if let Some((_, raw)) = arg {
            coerce(name, spec, raw)
        } else if let Some(v) = supplied.file.get(name) {
            // Inputs files may quote numbers; accept text for typed inputs.
            match (v, spec.kind) {
                (Value::String(s), k) if k != InputType::String => coerce(name, spec, s),
                _ => validate_value(name, spec, v).map(|_| v.clone()),
            }
        } else if let Some(d) = &spec.default {
            Ok(d.clone())
        } else {
            Err(format!(
                "missing required input `{name}`{}: pass `--input {name}=<value>`",
                spec.description
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ))
        };
        match v {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: InputType) -> InputSpec {
        InputSpec {
            kind,
            description: None,
            default: None,
            allowed: None,
            minimum: Some(0.0),
            maximum: None,
            pattern: None,
            example: None,
        }
    }

    #[test]
    fn coerces_and_bounds() {
        let s = spec(InputType::Integer);
        assert_eq!(coerce("r", &s, "3").unwrap(), json!(3));
        assert!(coerce("r", &s, "-1").is_err());
        assert!(coerce("r", &s, "three").is_err());
    }

    #[test]
    fn reports_unknown_and_missing_together() {
        let mut declared = IndexMap::new();
        declared.insert("deployment".to_string(), spec(InputType::String));
        let sup = Supplied::default()
            .with_args(&["deploymnt=x".into()])
            .unwrap();
        let errs = resolve(&declared, &sup).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("did you mean `deployment`"));
    }
}
