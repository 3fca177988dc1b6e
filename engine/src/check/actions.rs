//! Actions: each action kind's arguments, its backend, and literal arguments the backend
//! would reject.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backends::shell;
use crate::diag::{did_you_mean, Diagnostic};
use crate::model::{Action, ActionKind};
use crate::spec::{self, RunbookSpec, StepSpec};
use crate::template;

use super::calls::check_call;
use super::declarations::backend_kind;
use super::scope::{check_expr, check_template, Scope, Usage};
use super::{Ctx, LenMut, Reports};

/// Reports an argument the backends would reject, found in the literal text (an empty
/// `image`, a `set_env` with neither `set` nor `unset`), at the field or the verb. The same
/// validation runs on the rendered arguments before every call, real or simulated. False
/// when there was one.
pub(super) fn literal_arg_error(
    cx: &mut Ctx,
    ptr: &str,
    verb: &str,
    args: &Value,
    err: Option<crate::backends::calls::ArgError>,
    code: &'static str,
) -> bool {
    let Some(e) = err.filter(|e| !e.shape) else {
        return true;
    };
    let at = args.get(e.field).filter(|_| !e.field.is_empty());
    if at
        .and_then(Value::as_str)
        .is_some_and(template::is_template)
    {
        // Known only once rendered; checked then.
        return true;
    }
    let field_ptr = match at {
        Some(_) => format!("{ptr}/{verb}/{}", e.field),
        None => format!("{ptr}/{verb}"),
    };
    if at.is_some() {
        cx.err(&field_ptr, format!("{code}.{verb}: {}", e.message), code);
    } else {
        cx.key_err(&field_ptr, format!("{code}.{verb}: {}", e.message), code);
    }
    false
}

/// Picks the backend an action uses and checks that it is of the right kind.
pub(super) fn resolve_backend(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    ptr: &str,
    kind: &str,
    named: Option<&str>,
    required: bool,
) -> Option<String> {
    let of_kind: Vec<&str> = spec
        .backends
        .iter()
        .filter(|(_, b)| backend_kind(b).first() == Some(&kind))
        .map(|(n, _)| n.as_str())
        .collect();
    match named {
        Some(name) => {
            if template::is_template(name) {
                cx.err(
                    &format!("{ptr}/backend"),
                    "a backend name cannot be a template",
                    "backend",
                );
                return None;
            }
            match spec.backends.get(name) {
                None => {
                    let help = did_you_mean(name, spec.backends.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!(
                                "declare it under `backends:` as `{name}: {{ {kind}: {{...}} }}`"
                            )
                        });
                    cx.err(
                        &format!("{ptr}/backend"),
                        format!("undefined backend `{name}`"),
                        "undefined-backend",
                    )
                    .with_len_mut(name.chars().count())
                    .help = Some(help);
                    None
                }
                Some(b) => {
                    let actual = backend_kind(b).first().copied().unwrap_or("none");
                    if actual != kind {
                        let help = if of_kind.is_empty() {
                            format!("declare a `{kind}` backend and name it here")
                        } else {
                            format!(
                                "name a `{kind}` backend: {}",
                                of_kind
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        cx.err(&format!("{ptr}/backend"), format!("backend `{name}` is {} `{actual}` backend, but this is a `{kind}` action", if actual == "http" { "an" } else { "a" }), "backend-kind")
                            .with_len_mut(name.chars().count())
                            .help = Some(help);
                        None
                    } else {
                        Some(name.to_string())
                    }
                }
            }
        }
        None => {
            match of_kind.len() {
                0 if required => {
                    cx.key_err(
                        ptr,
                        format!(
                            "this `{kind}` action names no backend and the runbook declares none"
                        ),
                        "undefined-backend",
                    )
                    .help = Some("declare one under `backends:` and add `backend: <name>`".into());
                    None
                }
                0 => None,
                1 => Some(of_kind[0].to_string()),
                _ => {
                    cx.key_err(ptr, format!("this `{kind}` action names no backend, and the runbook has several: {}", of_kind.join(", ")), "ambiguous-backend")
                    .help = Some("add `backend: <name>`".into());
                    None
                }
            }
        }
    }
}

/// The action's typed arguments, deserialized once here for the model. The schema has checked
/// their shape already; a failure is still reported, at the action, never ignored.
fn typed<T: serde::de::DeserializeOwned>(
    cx: &mut Ctx,
    ptr: &str,
    field: &'static str,
    body: &Value,
) -> Option<T> {
    match serde_json::from_value(body.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            cx.err(
                ptr,
                format!("this `{field}` action does not read: {e}"),
                field,
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_action(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    field: &str,
    body: &Value,
    step: &StepSpec,
    position: Option<usize>,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Action> {
    let _ = step;
    // Template references in every string of the action, except shell scripts (never rendered).
    let mut strings = vec![];
    template::strings_in(body, ptr, &mut strings);
    for (p, s) in &strings {
        if field == "shell" && p == &format!("{ptr}/script") {
            if template::is_template(s) {
                let tag = ["{{", "{%", "{#"]
                    .into_iter()
                    .find(|t| s.contains(t))
                    .unwrap_or("{{");
                let (loc, _) = cx.loc_in_value(p, tag, None);
                cx.diags.push(Diagnostic::error(cx.file, loc, "a `script` is not a template: runbook values are never spliced into shell text").with_code("script-template").with_len(2));
                cx.diags.last_mut().expect("just pushed")
                    .help = Some("pass values as environment variables: `env: { NS: \"{{ inputs.namespace }}\" }` and use \"$NS\" in the script (inputs are also in $RUNBOOK_INPUT_<NAME>)".into());
            }
            continue;
        }
        check_template(cx, scope, p, s, Usage::Plain, position);
    }
    let backend_name = body.get("backend").and_then(Value::as_str);
    if field == "shell" {
        let env = body.get("env").and_then(Value::as_object);
        for name in [shell::RUN_ID_VAR, shell::STEP_ID_VAR] {
            if env.is_some_and(|e| e.contains_key(name)) {
                cx.warn(
                    &format!("{ptr}/env/{name}"),
                    format!("`{name}` is set by the engine for every step's process; this value is not used"),
                    "engine-variable",
                )
                .help = Some(
                    "`resume` finds a process left running by its run and step ids: use another name"
                        .into(),
                );
            }
        }
    }
    let kind = match field {
        "shell" => {
            let argv = body.get("argv");
            let script = body.get("script");
            match (argv, script) {
                (Some(_), Some(_)) | (None, None) => {
                    cx.key_err(
                        ptr,
                        "a shell action needs exactly one of `argv` or `script`",
                        "shell",
                    )
                    .help = Some(
                        "`argv: [git, log, -1]` runs without a shell; `script:` runs `sh -c`"
                            .into(),
                    );
                    return None;
                }
                (Some(a), None) if a.as_array().is_some_and(|a| a.is_empty()) => {
                    cx.err(&format!("{ptr}/argv"), "`argv` is empty", "shell")
                        .help = Some("give the program and its arguments".into());
                    return None;
                }
                _ => {}
            }
            if backend_name.is_some() {
                resolve_backend(cx, spec, ptr, "shell", backend_name, false)?;
            }
            ActionKind::Shell(Box::new(typed(cx, ptr, "shell", body)?))
        }
        "http" => {
            let typed_http: spec::HttpAction = typed(cx, ptr, "http", body)?;
            let req = body.get("request").cloned().unwrap_or(Value::Null);
            let has_url = req.get("url").is_some();
            let has_path = req.get("path").is_some();
            if has_url == has_path {
                cx.key_err(
                    &format!("{ptr}/request"),
                    "an HTTP request needs exactly one of `url` or `path`",
                    "http",
                )
                .help = Some(
                    "`url:` is absolute; `path:` is appended to the backend's `base_url`".into(),
                );
                return None;
            }
            if req.get("json").is_some() && req.get("body").is_some() {
                cx.key_err(
                    &format!("{ptr}/request/body"),
                    "`json` and `body` cannot both be set",
                    "http",
                );
                return None;
            }
            let b = resolve_backend(cx, spec, ptr, "http", backend_name, has_path);
            if has_path {
                let name = b.clone()?;
                let base = spec
                    .backends
                    .get(&name)
                    .and_then(|b| b.http.as_ref())
                    .and_then(|h| h.base_url.as_ref());
                if base.is_none() {
                    cx.key_err(
                        &format!("{ptr}/request/path"),
                        format!("backend `{name}` has no `base_url` for this `path`"),
                        "http",
                    )
                    .help = Some("add `base_url:` to the backend, or use `url:`".into());
                    return None;
                }
            }
            ActionKind::Http(Box::new(typed_http))
        }
        "kubernetes" => {
            let verb = one_verb(cx, ptr, body, "kubernetes", spec::KUBE_VERBS)?;
            resolve_backend(cx, spec, ptr, "kubernetes", backend_name, false);
            let args = crate::backends::KubeCall::from_args(verb, &body[verb]).err();
            if !literal_arg_error(cx, ptr, verb, &body[verb], args, "kubernetes") {
                return None;
            }
            ActionKind::Kubernetes {
                verb: crate::backends::KubeVerb::parse(verb)?,
            }
        }
        "compose" => {
            let verb = one_verb(cx, ptr, body, "compose", spec::COMPOSE_VERBS)?;
            resolve_backend(cx, spec, ptr, "compose", backend_name, false);
            let args = crate::backends::ComposeCall::from_args(verb, &body[verb]).err();
            if !literal_arg_error(cx, ptr, verb, &body[verb], args, "compose") {
                return None;
            }
            ActionKind::Compose {
                verb: crate::backends::ComposeVerb::parse(verb)?,
            }
        }
        "prometheus" => {
            let p: spec::PrometheusAction = typed(cx, ptr, "prometheus", body)?;
            resolve_backend(cx, spec, ptr, "prometheus", backend_name, false);
            if let Some(r) = body.get("range") {
                if let Some(l) = r.get("last").and_then(Value::as_str) {
                    if !template::is_template(l) {
                        cx.duration(&format!("{ptr}/range/last"), l)?;
                    }
                }
                if let Some(st) = r.get("step").and_then(Value::as_str) {
                    if !template::is_template(st) {
                        cx.duration(&format!("{ptr}/range/step"), st)?;
                    }
                }
            }
            ActionKind::Prometheus(Box::new(p))
        }
        "analysis" => {
            resolve_backend(cx, spec, ptr, "prometheus", backend_name, false);
            let a: spec::AnalysisAction = typed(cx, ptr, "analysis", body)?;
            let interval = cx.duration(&format!("{ptr}/interval"), &a.interval)?;
            if a.failed_checks == 0 || a.checks == 0 {
                cx.key_err(
                    ptr,
                    "`checks` and `failed_checks` must be at least 1",
                    "analysis",
                );
                return None;
            }
            if a.metrics.is_empty() {
                cx.key_err(ptr, "an analysis needs at least one metric", "analysis")
                    .help =
                    Some("`metrics: [ { name: success-rate, query: \"...\", min: 99 } ]`".into());
                return None;
            }
            let mut names = HashSet::new();
            for (i, m) in a.metrics.iter().enumerate() {
                if m.min.is_none() && m.max.is_none() {
                    cx.key_err(
                        &format!("{ptr}/metrics/{i}"),
                        format!("metric `{}` has neither `min` nor `max`", m.name),
                        "analysis",
                    )
                    .help = Some(
                        "a metric without bounds can never fail a check: add `min:` or `max:`"
                            .into(),
                    );
                }
                if !names.insert(m.name.clone()) {
                    cx.key_err(
                        &format!("{ptr}/metrics/{i}"),
                        format!("two metrics are named `{}`", m.name),
                        "analysis",
                    );
                }
            }
            ActionKind::Analysis {
                interval,
                spec: Box::new(a),
            }
        }
        "confirm" => ActionKind::Confirm(typed(cx, ptr, "confirm", body)?),
        "manual" => ActionKind::Manual(typed(cx, ptr, "manual", body)?),
        "input" => {
            let ia: spec::InputAction = typed(cx, ptr, "input", body)?;
            let as_input = crate::inputs::input_action_spec(&ia);
            if let Some(d) = &ia.default {
                if let Err(e) = crate::inputs::validate_value("value", &as_input, d) {
                    cx.err(
                        &format!("{ptr}/default"),
                        format!("default does not fit: {e}"),
                        "input-default",
                    )
                    .help = Some(
                        "change the default, or the `type`, `enum`, bounds or `pattern`".into(),
                    );
                }
            }
            ActionKind::Input(Box::new(ia))
        }
        "wait" => {
            let s = body.as_str().unwrap_or_default();
            if template::is_template(s) {
                // e.g. `wait: "{{ inputs.settle }}"`: its names were checked above; the value
                // is parsed when the step runs.
                ActionKind::Wait(None)
            } else {
                ActionKind::Wait(Some(cx.duration(ptr, s)?))
            }
        }
        "assert" => {
            let conditions: Vec<spec::ConditionSpec> = typed(cx, ptr, "assert", body)?;
            for (i, c) in conditions.iter().enumerate() {
                check_expr(
                    cx,
                    scope,
                    &format!("{ptr}/{i}/that"),
                    &c.that,
                    Usage::Plain,
                    position,
                );
            }
            ActionKind::Assert(conditions)
        }
        "call" => {
            let call: spec::CallAction = typed(cx, ptr, "call", body)?;
            check_call(cx, ptr, &call, path, stack)?
        }
        _ => unreachable!("action fields come from ACTION_KINDS"),
    };
    let backend = match &kind {
        ActionKind::Kubernetes { .. }
        | ActionKind::Compose { .. }
        | ActionKind::Http(_)
        | ActionKind::Prometheus(_)
        | ActionKind::Analysis { .. }
        | ActionKind::Shell(_) => {
            let k = match kind.field() {
                "analysis" => "prometheus",
                other => other,
            };
            backend_name.map(str::to_string).or_else(|| {
                let of_kind: Vec<&String> = spec
                    .backends
                    .iter()
                    .filter(|(_, b)| backend_kind(b).first() == Some(&k))
                    .map(|(n, _)| n)
                    .collect();
                (of_kind.len() == 1 && k != "shell").then(|| of_kind[0].clone())
            })
        }
        _ => None,
    };
    Some(Action {
        kind,
        backend,
        body: body.clone(),
    })
}

/// The one verb a `kubernetes` or `compose` action names (`field`), out of `verbs`; none or
/// several is an error at the action, listing the verbs.
fn one_verb(
    cx: &mut Ctx,
    ptr: &str,
    body: &Value,
    field: &'static str,
    verbs: &[&'static str],
) -> Option<&'static str> {
    let named: Vec<&'static str> = verbs
        .iter()
        .copied()
        .filter(|v| body.get(*v).is_some())
        .collect();
    if named.len() != 1 {
        cx.key_err(
            ptr,
            format!(
                "a {field} action needs exactly one verb (found {})",
                named.len()
            ),
            field,
        )
        .help = Some(format!("one of: {}", verbs.join(", ")));
        return None;
    }
    Some(named[0])
}
