//! Checks drill files: the schema, then the references into the drilled runbook (its path,
//! inputs, gate ids, step ids, secrets, env) and the world, each problem at its line and
//! column. A drill that passes becomes a `Drill`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::model::{Drill, Expect, DEFAULT_START};
use super::spec::{drill_schema, DrillSpec, ExpectedOutcome};
use super::world::build::{self, Problem};
use crate::check::{check_path, schema_diagnostics, Reports};
use crate::diag::{did_you_mean, Diagnostic};
use crate::exec::gate::gate_ids;
use crate::exec::gate::{parse_answer, GateKind};
use crate::inputs;
use crate::model::{parse_duration, ActionKind, Runbook};
use crate::schema::prune_unknown;
use crate::spec::InputType;
use crate::yaml::{pointer_segment, Located};

fn validator() -> &'static (Value, jsonschema::Validator) {
    static V: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    V.get_or_init(|| {
        let schema = drill_schema();
        let v = jsonschema::validator_for(&schema).expect("the generated schema compiles");
        (schema, v)
    })
}

struct Cx<'a> {
    file: &'a str,
    doc: &'a Located,
    diags: Vec<Diagnostic>,
}

impl Reports for Cx<'_> {
    fn parts(&mut self) -> (&str, &Located, &mut Vec<Diagnostic>) {
        (self.file, self.doc, &mut self.diags)
    }
}

impl Cx<'_> {
    fn problems(&mut self, problems: Vec<Problem>) {
        for p in problems {
            let d = if p.at_key {
                self.key_err(&p.ptr, p.message, "drill-world")
            } else {
                self.err(&p.ptr, p.message, "drill-world")
            };
            d.help = p.help;
        }
    }

    /// An id (a key at `ptr`, or a value when `at_value`) that is not among `known`.
    fn unknown_id(&mut self, ptr: &str, id: &str, what: &str, known: &[String], at_value: bool) {
        let msg = format!("the runbook has no {what} `{id}`");
        let d = if at_value {
            self.err(ptr, msg, "unknown-step")
        } else {
            self.key_err(ptr, msg, "unknown-step")
        };
        d.help = Some(match did_you_mean(id, known.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("it has: {}", quoted(known)),
        });
    }
}

fn quoted(items: &[String]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and checks a drill file (`load::check_path` takes a file of either kind).
pub fn check_drill_path(path: &Path) -> crate::check::Report<Drill> {
    crate::check::check_path_with(path, |file, path, text, _bytes, doc| {
        check_drill(file, path, text, doc)
    })
}

/// Checks a parsed drill document.
pub fn check_drill(
    file: &str,
    path: &Path,
    _text: &str,
    doc: &Located,
) -> (Option<Drill>, Vec<Diagnostic>) {
    let (schema, validator) = validator();
    let mut cx = Cx {
        file,
        doc,
        diags: schema_diagnostics(file, doc, schema, validator),
    };
    // Past unknown keys only, keep checking so one run reports the other problems too.
    let spec: Option<DrillSpec> = if cx.diags.is_empty() {
        serde_json::from_value(doc.value.clone()).ok()
    } else if cx.diags.iter().all(|d| d.code == "unknown-field") {
        let mut pruned = doc.value.clone();
        prune_unknown(&mut pruned, schema);
        serde_json::from_value(pruned).ok()
    } else {
        None
    };
    let Some(spec) = spec else {
        if cx.diags.is_empty() {
            cx.err(
                "",
                "the document does not have the shape of a drill",
                "schema",
            );
        }
        return (None, cx.diags);
    };

    let start = match DateTime::parse_from_rfc3339(spec.start.as_deref().unwrap_or(DEFAULT_START)) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => {
            cx.err(
                "/start",
                format!("`start` is not an RFC 3339 time: {e}"),
                "drill-start",
            )
            .help = Some(format!("write it like `{DEFAULT_START}`"));
            DEFAULT_START.parse().expect("the default start parses")
        }
    };
    let (world, problems) = build::build(&spec, start);
    cx.problems(problems);
    let within = spec
        .expect
        .within
        .as_deref()
        .and_then(|w| match parse_duration(w) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.err("/expect/within", e, "duration");
                None
            }
        });
    if let Some(w) = &spec.expect.world {
        cx.problems(build::state_problems(&world, w, "/expect/world"));
    }

    let rb = runbook(&mut cx, path, &spec.runbook);
    let Some(rb) = rb else {
        return (None, cx.diags);
    };
    let inputs = check_inputs(&mut cx, &rb, &spec.inputs);
    let answers = check_answers(&mut cx, &rb, &spec);
    let (secrets, env) = check_sources(&mut cx, &rb, &spec);
    let steps = step_ids(&rb);
    for (i, f) in spec.faults.iter().enumerate() {
        if let Some(s) = f.step.as_ref().filter(|s| !steps.contains(s)) {
            cx.unknown_id(&format!("/faults/{i}/step"), s, "step", &steps, true);
        }
    }
    for id in spec.expect.steps.keys() {
        if !steps.contains(id) {
            cx.unknown_id(
                &format!("/expect/steps/{}", pointer_segment(id)),
                id,
                "step",
                &steps,
                false,
            );
        }
    }
    if let Some(s) = spec
        .expect
        .failed_step
        .as_ref()
        .filter(|s| !steps.contains(s))
    {
        cx.unknown_id("/expect/failed_step", s, "step", &steps, true);
    }
    let outcome = spec.expect.outcome.unwrap_or(ExpectedOutcome::Succeeded);
    if spec.expect.failed_step.is_some() && outcome == ExpectedOutcome::Succeeded {
        cx.err(
            "/expect/failed_step",
            "a run that succeeds stops at no step",
            "drill-expect",
        )
        .help =
            Some("expect `outcome: failed`, `aborted` or `needs-answer` with `failed_step`".into());
    }

    if cx.diags.iter().any(Diagnostic::is_error) {
        return (None, cx.diags);
    }
    let drill = Drill {
        name: spec.metadata.name.clone(),
        description: spec.metadata.description.clone(),
        file: file.to_string(),
        path: path.to_path_buf(),
        runbook: rb,
        inputs,
        operator: spec.operator.clone().unwrap_or_else(|| "drill".into()),
        reason: spec
            .reason
            .clone()
            .unwrap_or_else(|| format!("drill {}", spec.metadata.name)),
        answers,
        secrets,
        env,
        start,
        world,
        expect: Expect {
            outcome,
            failed_step: spec.expect.failed_step.clone(),
            message: spec.expect.message.clone(),
            steps: spec.expect.steps.clone(),
            world: spec.expect.world.clone(),
            within,
        },
    };
    (Some(drill), cx.diags)
}

/// `a/b/../c` → `a/c`, so messages show the path a reader would write.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn runbook(cx: &mut Cx, drill_path: &Path, rel: &str) -> Option<Arc<Runbook>> {
    let path = normalize(&drill_path.parent().unwrap_or(Path::new(".")).join(rel));
    if !path.is_file() {
        cx.err(
            "/runbook",
            format!("runbook `{rel}` not found (looked for {})", path.display()),
            "drill-runbook",
        )
        .help = Some("the path is relative to the drill file".into());
        return None;
    }
    let report = check_path(&path);
    let errors: Vec<&Diagnostic> = report.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        let first: Vec<String> = errors.iter().take(3).map(|d| d.to_string()).collect();
        let more = errors.len().saturating_sub(3);
        cx.err(
            "/runbook",
            format!(
                "runbook `{rel}` has {} error{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
            "drill-runbook",
        )
        .help = Some(format!(
            "{}{}; run `runbook check {}`",
            first.join("; "),
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            },
            path.display()
        ));
        return None;
    }
    match report.checked {
        Some(rb) => Some(Arc::new(*rb)),
        _ => {
            cx.err(
                "/runbook",
                format!("`{rel}` is not a runbook"),
                "drill-runbook",
            )
            .help = Some("point `runbook:` at a `kind: Runbook` file".into());
            None
        }
    }
}

/// The drill's inputs, typed like `--inputs FILE` values and checked against the runbook.
fn check_inputs(
    cx: &mut Cx,
    rb: &Runbook,
    given: &IndexMap<String, Value>,
) -> IndexMap<String, Value> {
    let declared = &rb.spec.inputs;
    let known: Vec<String> = declared.keys().cloned().collect();
    for name in given.keys().filter(|n| !declared.contains_key(*n)) {
        let ptr = format!("/inputs/{}", pointer_segment(name));
        let d = cx.key_err(
            &ptr,
            format!("the runbook has no input `{name}`"),
            "unknown-input",
        );
        d.help = Some(match did_you_mean(name, known.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("its inputs: {}", quoted(&known)),
        });
    }
    let mut out = IndexMap::new();
    for (name, spec) in declared {
        let ptr = format!("/inputs/{}", pointer_segment(name));
        let v = match (given.get(name), &spec.default) {
            (Some(Value::String(s)), _) if spec.kind != InputType::String => {
                inputs::coerce(name, spec, s)
            }
            (Some(v), _) => inputs::validate_value(name, spec, v).map(|_| v.clone()),
            (None, Some(d)) => Ok(d.clone()),
            (None, None) => {
                cx.key_err(
                    "/inputs",
                    format!("missing input `{name}`: the runbook requires it"),
                    "missing-input",
                )
                .help = Some(format!("add `{name}: <value>` under `inputs:`"));
                continue;
            }
        };
        match v {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => {
                cx.err(&ptr, e, "input");
            }
        }
    }
    out
}

fn check_answers(cx: &mut Cx, rb: &Runbook, spec: &DrillSpec) -> HashMap<String, String> {
    let mut ids = vec![];
    gate_ids(rb, "", &mut ids);
    let asks = asking_ids(rb, "");
    let names: Vec<String> = ids.iter().map(|(i, _)| i.clone()).collect();
    let mut out = HashMap::new();
    for (id, value) in &spec.answers {
        let ptr = format!("/answers/{}", pointer_segment(id));
        let text = value.text();
        match ids.iter().find(|(i, _)| i == id) {
            None => cx.unknown_id(&ptr, id, "step", &names, false),
            Some((_, kind)) => {
                if let Err(e) = parse_answer(kind, &text) {
                    cx.err(
                        &ptr,
                        format!("`{text}` does not answer `{id}`: {e}"),
                        "drill-answer",
                    );
                    continue;
                }
                if matches!(kind, GateKind::Resume) && !asks.contains(id) {
                    cx.warn(&ptr, format!("step `{id}` never asks the operator; this answer is not used"), "drill-answer")
                        .help = Some("answers are for confirm, manual and input steps, terminal steps and manual undos".into());
                }
                out.insert(id.clone(), text);
            }
        }
    }
    out
}

/// Ids of steps that stop for an answer (gates), including those of called runbooks.
fn asking_ids(rb: &Runbook, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in rb.steps.iter().chain(&rb.on_failure) {
        let id = format!("{prefix}{}", s.id);
        if s.is_gate() || s.asks_on_inconclusive() {
            out.insert(id.clone());
        }
        if let ActionKind::Call(child) = &s.action.kind {
            out.extend(asking_ids(child, &format!("{id}/")));
        }
    }
    out
}

/// Every id a drill may name: steps, on_failure steps, `<call>/<step>`, `<step>.undo`.
pub fn step_ids(rb: &Runbook) -> Vec<String> {
    fn walk(rb: &Runbook, prefix: &str, out: &mut Vec<String>) {
        for s in rb.steps.iter().chain(&rb.on_failure) {
            let id = format!("{prefix}{}", s.id);
            out.push(id.clone());
            if s.undo.is_some() {
                out.push(format!("{id}.undo"));
            }
            if let ActionKind::Call(child) = &s.action.kind {
                walk(child, &format!("{id}/"), out);
            }
        }
    }
    let mut out = vec![];
    walk(rb, "", &mut out);
    out
}

/// Names of the secrets and env variables of a runbook and every runbook it calls.
fn declared(rb: &Runbook, secrets: &mut BTreeSet<String>, env: &mut BTreeSet<String>) {
    secrets.extend(rb.spec.secrets.keys().cloned());
    env.extend(rb.spec.env.iter().cloned());
    for s in rb.steps.iter().chain(&rb.on_failure) {
        if let ActionKind::Call(child) = &s.action.kind {
            declared(child, secrets, env);
        }
    }
}

/// Checks that the drill's `secrets` and `env` name what the runbooks declare.
fn check_sources(
    cx: &mut Cx,
    rb: &Runbook,
    spec: &DrillSpec,
) -> (IndexMap<String, String>, Map<String, Value>) {
    let (mut secret_names, mut env_names) = (BTreeSet::new(), BTreeSet::new());
    declared(rb, &mut secret_names, &mut env_names);
    for (field, given, known) in [
        ("secrets", spec.secrets.keys(), &secret_names),
        ("env", spec.env.keys(), &env_names),
    ] {
        let known: Vec<String> = known.iter().cloned().collect();
        for name in given.filter(|n| !known.contains(n)) {
            let what = if field == "secrets" {
                "secret"
            } else {
                "environment variable"
            };
            let ptr = format!("/{field}/{}", pointer_segment(name));
            let d = cx.key_err(
                &ptr,
                format!("the runbook declares no {what} `{name}`"),
                "drill-sources",
            );
            d.help = Some(match did_you_mean(name, known.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("it declares: {}", quoted(&known)),
            });
        }
    }
    stand_ins(rb, &spec.secrets, &spec.env)
}

/// A value for every secret and env variable `rb` and the runbooks it calls declare: the
/// given one, else a fixed placeholder (`drill-secret-<name>`, empty env). Never the host's.
pub fn stand_ins(
    rb: &Runbook,
    secrets: &IndexMap<String, String>,
    env: &IndexMap<String, String>,
) -> (IndexMap<String, String>, Map<String, Value>) {
    let (mut secret_names, mut env_names) = (BTreeSet::new(), BTreeSet::new());
    declared(rb, &mut secret_names, &mut env_names);
    let secrets = secret_names
        .iter()
        .map(|n| {
            (
                n.clone(),
                secrets
                    .get(n)
                    .cloned()
                    .unwrap_or_else(|| format!("drill-secret-{n}")),
            )
        })
        .collect();
    let env = env_names
        .iter()
        .map(|n| {
            (
                n.clone(),
                Value::String(env.get(n).cloned().unwrap_or_default()),
            )
        })
        .collect();
    (secrets, env)
}
