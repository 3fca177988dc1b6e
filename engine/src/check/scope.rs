//! Scope and references: what a template may name at each point (`inputs.*`, `secrets.*`,
//! `env.*`, `run.*`, `steps.*`, a called runbook's steps), and the checks of templates and
//! expressions against it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::diag::{did_you_mean, Diagnostic};
use crate::spec::RunbookSpec;
use crate::template;
use crate::template::namespace::{RunFields, StepField};
use crate::yaml::{self};

use super::declarations::is_identifier;
use super::{read_limited, Ctx, Reports};

/// Facts about the runbook that reference checks need.
pub(super) struct Scope<'a> {
    pub(super) inputs: Vec<&'a str>,
    pub(super) secrets: Vec<&'a str>,
    pub(super) env: Vec<&'a str>,
    /// step id -> names it exposes under `steps.<id>.*`
    pub(super) exposes: HashMap<String, BTreeSet<String>>,
    /// step ids in order: main steps, then on_failure
    pub(super) order: Vec<String>,
    pub(super) main_len: usize,
    /// call step id -> the called runbook's step ids and what each exposes, when the called
    /// file could be read (`steps.<call>.<step>.<name>`); otherwise anything goes there and
    /// the called runbook's own check reports its problems.
    pub(super) calls: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

pub(super) fn build_scope<'a>(spec: &'a RunbookSpec, path: &Path, follow_calls: bool) -> Scope<'a> {
    let mut exposes = HashMap::new();
    let mut order = Vec::new();
    let mut calls = HashMap::new();
    for s in spec.steps.iter().chain(&spec.on_failure) {
        let mut names: BTreeSet<String> = s.capture.keys().cloned().collect();
        names.extend(StepField::of_step(s).map(|f| f.name().to_string()));
        if let Some(call) = &s.call {
            // A call exposes the called runbook's steps. One level is followed (a called
            // runbook's own calls are checked when it is); unreadable files allow anything.
            let child = follow_calls
                .then(|| called_spec(path, &call.runbook))
                .flatten();
            match child {
                Some(child) => {
                    let cpath = path.parent().unwrap_or(Path::new(".")).join(&call.runbook);
                    let cs = build_scope(&child, &cpath, false);
                    names.extend(cs.order.iter().cloned());
                    calls.insert(s.id.clone(), cs.exposes);
                }
                None => {
                    names.insert("*".into());
                }
            }
        }
        exposes.entry(s.id.clone()).or_insert(names);
        order.push(s.id.clone());
    }
    Scope {
        inputs: spec.inputs.keys().map(String::as_str).collect(),
        secrets: spec.secrets.keys().map(String::as_str).collect(),
        env: spec.env.iter().map(String::as_str).collect(),
        exposes,
        order,
        main_len: spec.steps.len(),
        calls,
    }
}

/// A path of names as a template writes it: `steps.check.rate`, but `steps['rolled-out'].rate`
/// for a name that is not an identifier (in a template, `rolled-out` is a subtraction).
pub(super) fn dotted(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if is_identifier(p) {
            if i > 0 {
                out.push('.');
            }
            out.push_str(p);
        } else {
            out.push_str(&format!("['{p}']"));
        }
    }
    out
}

/// The called runbook's spec, if its file can be read and has the shape of a runbook.
pub(super) fn called_spec(path: &Path, runbook: &str) -> Option<RunbookSpec> {
    let target = path.parent().unwrap_or(Path::new(".")).join(runbook);
    let bytes = read_limited(&target).ok()??;
    let doc = yaml::parse(runbook, &bytes).ok()?;
    serde_json::from_value(doc.value).ok()
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Usage {
    /// Action fields, guards, messages: no `result`.
    Plain,
    /// `capture` and `verify`: `result` is the action's result.
    WithResult,
    /// Backend settings: no steps either.
    Backend,
}

/// Checks that every dotted name a template or expression reads is defined and available.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_refs(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    refs: &BTreeSet<String>,
    usage: Usage,
    position: Option<usize>,
) {
    for r in refs {
        let parts: Vec<&str> = r.split('.').collect();
        let root = parts[0];
        let problem: Option<(String, Option<String>, &'static str)> = match root {
            "inputs" => parts.get(1).and_then(|n| {
                (!scope.inputs.contains(n)).then(|| {
                    (format!("undefined input `{n}`"),
                     did_you_mean(n, scope.inputs.iter().copied()).map(|s| format!("did you mean `inputs.{s}`?"))
                        .or(Some("declare it under `inputs:`".into())),
                     "undefined-reference")
                })
            }),
            "secrets" => parts.get(1).and_then(|n| {
                (!scope.secrets.contains(n)).then(|| {
                    (format!("undefined secret `{n}`"),
                     did_you_mean(n, scope.secrets.iter().copied()).map(|s| format!("did you mean `secrets.{s}`?"))
                        .or(Some("declare it under `secrets:` with `env:` or `file:`".into())),
                     "undefined-reference")
                })
            }),
            "env" => parts.get(1).and_then(|n| {
                (!scope.env.contains(n)).then(|| {
                    (format!("environment variable `{n}` is not declared"),
                     Some(did_you_mean(n, scope.env.iter().copied()).map_or_else(
                         || format!("add `{n}` to the runbook's `env:` list; only declared variables are visible"),
                         |s| format!("did you mean `env.{s}`?"))),
                     "undefined-reference")
                })
            }),
            "run" => parts.get(1).and_then(|n| {
                (!RunFields::NAMES.contains(n)).then(|| {
                    (format!("`run.{n}` does not exist"),
                     Some(format!("`run` has: {}", RunFields::NAMES.join(", "))),
                     "undefined-reference")
                })
            }),
            "result" => (usage != Usage::WithResult).then(|| {
                ("`result` is only available in `capture` and `verify`".to_string(),
                 Some("capture the value you need in the step that produced it, then use `steps.<id>.<capture>`".into()),
                 "undefined-reference")
            }),
            "steps" => {
                if usage == Usage::Backend {
                    Some(("backends cannot read `steps`: they are set up before the first step".into(),
                        Some("set the value in the step's own request instead (e.g. its `headers:`), where `steps.<id>.*` can be read".into()),
                        "undefined-reference"))
                } else {
                    match parts.get(1) {
                        None => None,
                        Some(id) => match scope.order.iter().position(|s| s == id) {
                            None => {
                                let earlier: Vec<&str> = scope.order.iter().take(position.unwrap_or(scope.order.len())).map(String::as_str).collect();
                                let help = did_you_mean(id, scope.order.iter().map(String::as_str))
                                    .map(|s| format!("did you mean `{}`?", dotted(&["steps", &s])))
                                    .unwrap_or_else(|| if earlier.is_empty() {
                                        "no step runs before this one, so there is nothing to read yet".to_string()
                                    } else {
                                        format!("refer to an earlier step: {}", earlier.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))
                                    });
                                Some((format!("undefined step `{id}`"), Some(help), "undefined-reference"))
                            }
                            Some(idx) => {
                                let later = match position {
                                    Some(pos) => idx >= pos && !(usage == Usage::WithResult && idx == pos),
                                    None => false,
                                };
                                let on_failure_from_main = position.is_some_and(|p| p < scope.main_len) && idx >= scope.main_len;
                                if later || on_failure_from_main {
                                    Some((format!("step `{id}` has not run yet at this point"),
                                        Some("a step can only read captures of steps before it; move this step after it".into()),
                                        "forward-reference"))
                                } else if let (Some(child), Some(field), Some(calls)) =
                                    (parts.get(2), parts.get(3), scope.calls.get(*id))
                                {
                                    // steps.<call>.<child step>.<name>
                                    match calls.get(*child) {
                                        None if StepField::of_every_step(child) => None,
                                        None => Some((
                                            format!("the runbook called by `{id}` has no step `{child}`"),
                                            Some(did_you_mean(child, calls.keys().map(String::as_str)).map_or_else(
                                                || {
                                                    let mut ids: Vec<String> = calls.keys().map(|k| format!("`{k}`")).collect();
                                                    ids.sort();
                                                    format!("its steps are: {}", ids.join(", "))
                                                },
                                                |s| format!("did you mean `{}`?", dotted(&["steps", id, &s, field])))),
                                            "undefined-reference")),
                                        Some(names) => {
                                        (!names.contains(*field) && !names.contains("*")).then(|| {
                                            (format!("step `{child}` of the runbook called by `{id}` has no capture `{field}`"),
                                             Some(did_you_mean(field, names.iter().map(String::as_str)).map_or_else(
                                                 || format!("add `capture: {{ {field}: <expression over result> }}` to step `{child}` of the called runbook"),
                                                 |s| format!("did you mean `{}`?", dotted(&["steps", id, child, &s])))),
                                             "undefined-reference")
                                        })
                                        }
                                    }
                                } else if let Some(field) = parts.get(2) {
                                    let names = &scope.exposes[*id];
                                    (!names.contains(*field) && !names.contains("*")).then(|| {
                                        let what = if scope.calls.contains_key(*id) { "step or field" } else { "capture" };
                                        (format!("step `{id}` has no {what} `{field}`"),
                                         Some(did_you_mean(field, names.iter().map(String::as_str)).map_or_else(
                                             || format!("add `capture: {{ {field}: <expression over result> }}` to step `{id}`"),
                                             |s| format!("did you mean `{}`?", dotted(&["steps", id, &s])))),
                                         "undefined-reference")
                                    })
                                } else {
                                    None
                                }
                            }
                        },
                    }
                }
            }
            other => {
                let roots: Vec<&str> = template::ROOTS.to_vec();
                Some((format!("unknown name `{other}`"),
                    Some(did_you_mean(other, roots.iter().copied()).map_or_else(
                        || format!("templates can read: {}", roots.join(", ")),
                        |s| format!("did you mean `{s}`?"))),
                    "undefined-reference"))
            }
        };
        if let Some((msg, help, code)) = problem {
            let needle = r.as_str();
            let (loc, len) = cx.loc_in_value(ptr, needle, None);
            let mut d = Diagnostic::error(cx.file, loc, format!("{msg} (in `{}`)", short(src)))
                .with_code(code)
                .with_len(len);
            if let Some(h) = help {
                d = d.with_help(h);
            }
            cx.diags.push(d);
        }
    }
}

pub(super) fn short(s: &str) -> String {
    let one_line = s.trim().replace('\n', " ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
    }
}

pub(super) fn check_template(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    usage: Usage,
    position: Option<usize>,
) {
    shell_placeholders(cx, scope, ptr, src);
    match template::template_refs(src) {
        Ok(refs) => check_refs(cx, scope, ptr, src, &refs, usage, position),
        Err(e) => {
            let (loc, _) = cx.loc_in_value(ptr, "\u{0}", e.offset);
            cx.diags.push(
                Diagnostic::error(
                    cx.file,
                    loc,
                    format!("template syntax error: {}", e.message),
                )
                .with_code("template-syntax")
                .with_help("templates use `{{ expression }}`, e.g. `{{ inputs.namespace }}`"),
            );
        }
    }
}

/// `${NAME}` and `$NAME` in the literal text of a template: shell syntax, which nothing here
/// expands (argv runs without a shell, URLs and prompts are sent as written). Reported with the
/// template to write instead. `$name` in lowercase that names nothing declared is left alone
/// (a price, a regex's `$`, a jq path).
pub(super) fn shell_placeholders(cx: &mut Ctx, scope: &Scope, ptr: &str, src: &str) {
    for (offset, written, name) in template::shell_placeholders(src) {
        let braced = written.starts_with("${");
        let lower = name.to_ascii_lowercase();
        let input = scope
            .inputs
            .iter()
            .find(|i| i.eq_ignore_ascii_case(&name))
            .copied();
        let env = scope.env.iter().find(|e| **e == name).copied();
        let secret = scope
            .secrets
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&name))
            .copied();
        let shouty = name.chars().any(|c| c.is_ascii_uppercase())
            && !name.chars().any(|c| c.is_ascii_lowercase());
        if !(braced || shouty || input.is_some() || env.is_some() || secret.is_some()) {
            continue;
        }
        let (write, why) = if let Some(i) = input {
            (
                format!("{{{{ inputs.{i} }}}}"),
                format!("`{i}` is a declared input"),
            )
        } else if let Some(e) = env {
            (
                format!("{{{{ env.{e} }}}}"),
                format!("`{e}` is declared under `env:`"),
            )
        } else if let Some(s) = secret {
            (
                format!("{{{{ secrets.{s} }}}}"),
                format!("`{s}` is a declared secret"),
            )
        } else {
            (
                format!("{{{{ env.{name} }}}}"),
                format!(
                    "add `{name}` to the runbook's `env:` list first (only declared variables are visible), or declare an input `{lower}` and write `{{{{ inputs.{lower} }}}}`"
                ),
            )
        };
        let (loc, len) = cx.loc_in_value(ptr, &written, Some(offset));
        cx.diags.push(
            Diagnostic::error(
                cx.file,
                loc,
                format!("`{written}` is shell syntax, which is not expanded here: write `{write}`"),
            )
            .with_code("shell-placeholder")
            .with_len(len)
            .with_help(format!(
                "templates use `{{{{ ... }}}}`; {why}. For a literal `$`, write `{{{{ '{written}' }}}}`"
            )),
        );
    }
}

pub(super) fn check_expr(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    usage: Usage,
    position: Option<usize>,
) {
    if template::is_template(src) {
        cx.err(
            ptr,
            "expressions are written without `{{ }}`",
            "expression-syntax",
        )
        .help = Some(format!(
            "write `{}`",
            src.replace("{{", "").replace("}}", "").trim()
        ));
        return;
    }
    match template::expr_refs(src) {
        Ok(refs) => check_refs(cx, scope, ptr, src, &refs, usage, position),
        Err(e) => {
            let (loc, _) = cx.loc_in_value(ptr, "\u{0}", e.offset);
            cx.diags.push(
                Diagnostic::error(
                    cx.file,
                    loc,
                    format!("expression syntax error: {}", e.message),
                )
                .with_code("expression-syntax")
                .with_help(if single_equals(src) {
                    "compare with `==`: a single `=` is not an operator in expressions"
                } else {
                    "expressions look like `result.status == 200` or `inputs.replicas > 0`"
                }),
            );
        }
    }
}

/// Does `src` use `=` on its own, where `==` was surely meant?
pub(super) fn single_equals(src: &str) -> bool {
    let b = src.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'='
            && b.get(i + 1) != Some(&b'=')
            && !matches!(
                i.checked_sub(1).map(|j| b[j]),
                Some(b'=' | b'!' | b'<' | b'>')
            )
    })
}
