//! The values templates and expressions read: `inputs`, `secrets`, `steps`, `run`, `env`,
//! and `result` inside captures and verifications. Two views of the same context: the real
//! one (secrets in clear, only ever handed to backends) and the display one (secrets `***`).

use std::collections::{BTreeSet, HashSet};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::redact::MASK;
use crate::template::namespace::StepField;

/// Largest input value exported as a `RUNBOOK_INPUT_*` variable.
pub const MAX_ENV_VALUE: usize = 100 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub inputs: IndexMap<String, Value>,
    pub secrets: IndexMap<String, String>,
    pub env: Map<String, Value>,
    pub run: Map<String, Value>,
    /// step id -> { capture names..., outcome, result, attempts, value, note }
    pub steps: Map<String, Value>,
    /// Captures derived from a secret (`steps.<id>.<name>`): secrets themselves, `***` in the
    /// display view.
    pub tainted: BTreeSet<(String, String)>,
}

impl RunContext {
    /// The context with real secret values: for rendering what backends receive.
    pub fn real(&self, result: Option<&Value>) -> Value {
        self.build(false, result)
    }

    /// The context with secrets masked: for everything shown or stored.
    pub fn display(&self, result: Option<&Value>) -> Value {
        self.build(true, result)
    }

    /// `real`, with only the steps in `only` (all of them when `None`): building the context
    /// copies every step's values, so a step that reads two earlier steps should not pay for
    /// a thousand.
    pub fn real_reading(&self, result: Option<&Value>, only: Option<&HashSet<String>>) -> Value {
        self.build_with(false, result, only)
    }

    /// `display`, with only the steps in `only` (all of them when `None`).
    pub fn display_reading(&self, result: Option<&Value>, only: Option<&HashSet<String>>) -> Value {
        self.build_with(true, result, only)
    }

    /// A copy holding only the steps in `only` (all of them when `None`).
    pub fn subset(&self, only: Option<&HashSet<String>>) -> RunContext {
        RunContext {
            inputs: self.inputs.clone(),
            secrets: self.secrets.clone(),
            env: self.env.clone(),
            run: self.run.clone(),
            steps: self.steps_in(only),
            tainted: self.tainted.clone(),
        }
    }

    /// The steps in `only` (all of them when `None`), copied.
    fn steps_in(&self, only: Option<&HashSet<String>>) -> Map<String, Value> {
        match only {
            None => self.steps.clone(),
            Some(ids) => self
                .steps
                .iter()
                .filter(|(k, _)| ids.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn build(&self, mask: bool, result: Option<&Value>) -> Value {
        self.build_with(mask, result, None)
    }

    fn build_with(
        &self,
        mask: bool,
        result: Option<&Value>,
        only: Option<&HashSet<String>>,
    ) -> Value {
        let secrets: Map<String, Value> = self
            .secrets
            .iter()
            .map(|(k, v)| {
                let v = if mask { MASK.to_string() } else { v.clone() };
                (k.clone(), Value::String(v))
            })
            .collect();
        let mut m = Map::new();
        m.insert(
            "inputs".into(),
            Value::Object(
                self.inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        );
        m.insert("secrets".into(), Value::Object(secrets));
        let mut steps = self.steps_in(only);
        if mask {
            for (step, name) in &self.tainted {
                if let Some(v) = steps.get_mut(step).and_then(|s| s.get_mut(name)) {
                    *v = Value::String(MASK.to_string());
                }
            }
        }
        m.insert("steps".into(), Value::Object(steps));
        m.insert("run".into(), Value::Object(self.run.clone()));
        m.insert("env".into(), Value::Object(self.env.clone()));
        if let Some(r) = result {
            m.insert("result".into(), r.clone());
        }
        Value::Object(m)
    }

    /// Sets `steps.<id>.<field>`.
    pub fn set_step_field(&mut self, step: &str, field: StepField, value: Value) {
        self.set_step_entry(step, field.name(), value);
    }

    /// Sets `steps.<id>.<name>`: a capture, or a called runbook's step under its call step.
    pub fn set_step_entry(&mut self, step: &str, name: &str, value: Value) {
        let entry = self
            .steps
            .entry(step.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(name.to_string(), value);
        }
    }

    /// Environment variables a shell step gets for every input: `RUNBOOK_INPUT_<NAME>`.
    /// Values longer than `MAX_ENV_VALUE` are left out: the kernel refuses to start a process
    /// with one environment string over 128 KiB. Pass such values with `stdin:`.
    pub fn input_env(&self) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .filter_map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (text.len() <= MAX_ENV_VALUE && !text.contains('\0'))
                    .then(|| (format!("RUNBOOK_INPUT_{}", k.to_ascii_uppercase()), text))
            })
            .collect()
    }
}

/// Reads the dotted names an expression uses, for the journal's `observed` values.
pub fn observe(expr: &str, ctx: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Ok(names) = crate::template::expr_refs(expr) {
        for name in names {
            let root = name.split('.').next().unwrap_or_default();
            // Whole objects (e.g. `result`) would flood the journal; leaves are what matter.
            if !crate::template::ROOTS.contains(&root) || name == root {
                continue;
            }
            if let Ok(v) = crate::template::eval(&name, ctx) {
                out.insert(name, bound(&v));
            }
        }
    }
    out
}

/// Keeps a journaled value small: long strings are cut, big structures summarized.
pub fn bound(v: &Value) -> Value {
    const MAX: usize = 2048;
    match v {
        Value::String(s) if s.len() > MAX => {
            let mut cut = MAX;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(format!(
                "{}… [{} bytes truncated]",
                &s[..cut],
                s.len() - cut
            ))
        }
        Value::Array(_) | Value::Object(_) => {
            let text = v.to_string();
            if text.len() > 4 * MAX {
                Value::String(format!(
                    "[{} of {} bytes of JSON, truncated]",
                    v_kind(v),
                    text.len()
                ))
            } else {
                v.clone()
            }
        }
        _ => v.clone(),
    }
}

fn v_kind(v: &Value) -> &'static str {
    if v.is_array() {
        "a list"
    } else {
        "an object"
    }
}

/// `steps_read` over expressions and every template string in action bodies (or any JSON
/// trees of templates).
pub fn steps_read_in<'a>(
    exprs: impl IntoIterator<Item = &'a str>,
    bodies: impl IntoIterator<Item = &'a Value>,
) -> Option<HashSet<String>> {
    let mut strings = vec![];
    for b in bodies {
        crate::template::strings_in(b, "", &mut strings);
    }
    steps_read(exprs, strings.iter().map(|(_, t)| t.as_str()))
}

/// The step ids that expressions and templates read (`steps.<id>...`), or `None` when one of
/// them reads `steps` as a whole or cannot be parsed: then every step must be there.
pub fn steps_read<'e, 't>(
    exprs: impl IntoIterator<Item = &'e str>,
    templates: impl IntoIterator<Item = &'t str>,
) -> Option<HashSet<String>> {
    let mut ids = HashSet::new();
    let names = exprs
        .into_iter()
        .map(crate::template::expr_refs)
        .chain(templates.into_iter().map(crate::template::template_refs));
    for n in names {
        for name in n.ok()? {
            let mut parts = name.split('.');
            if parts.next() != Some("steps") {
                continue;
            }
            ids.insert(parts.next()?.to_string());
        }
    }
    Some(ids)
}
