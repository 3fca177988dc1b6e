//! The runbook's declarations: metadata, inputs, secrets and backends.

use serde_json::Value;

use crate::spec::{BackendSpec, RunbookSpec};
use crate::template;
use crate::yaml::{self};

use super::scope::{check_template, Scope, Usage};
use super::{Ctx, Reports};

pub(super) fn check_metadata(cx: &mut Ctx, spec: &RunbookSpec) {
    if let Some(m) = &spec.metadata.mttr_target {
        cx.duration("/metadata/mttr_target", m);
    }
}

pub(super) fn check_inputs(cx: &mut Ctx, spec: &RunbookSpec) {
    for (name, input) in &spec.inputs {
        let ptr = format!("/inputs/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(&ptr, format!("input name `{name}` is not an identifier"), "name")
                .help = Some("use letters, digits and `_`, e.g. `deployment_name`, so templates can say `inputs.<name>`".into());
        }
        if let Some(p) = &input.pattern {
            if let Err(e) = regex_check(p) {
                cx.err(
                    &format!("{ptr}/pattern"),
                    format!("invalid regular expression: {e}"),
                    "pattern",
                );
            }
        }
        if let Some(d) = &input.default {
            if let Err(e) = crate::inputs::validate_value(name, input, d) {
                cx.err(
                    &format!("{ptr}/default"),
                    format!("default does not fit the input: {e}"),
                    "input-default",
                )
                .help = Some(
                    "change the default, or the input's `type`, `enum`, bounds or `pattern`".into(),
                );
            }
        }
        if let Some(allowed) = &input.allowed {
            for (i, a) in allowed.iter().enumerate() {
                if !crate::inputs::has_type(input.kind, a) {
                    cx.err(
                        &format!("{ptr}/enum/{i}"),
                        format!("{a} is not of the input's type {:?}", input.kind).to_lowercase(),
                        "input-enum",
                    );
                }
            }
        }
    }
}

pub(super) fn regex_check(p: &str) -> Result<(), String> {
    crate::inputs::compile_pattern(p).map(|_| ())
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn check_secrets(cx: &mut Ctx, spec: &RunbookSpec) {
    for (name, s) in &spec.secrets {
        let ptr = format!("/secrets/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(
                &ptr,
                format!("secret name `{name}` is not an identifier"),
                "name",
            )
            .help = Some("use letters, digits and `_`".into());
        }
        match (&s.env, &s.file) {
            (Some(_), Some(_)) => {
                cx.key_err(
                    &ptr,
                    format!("secret `{name}` has both `env` and `file`"),
                    "secret-source",
                )
                .help = Some("keep one source".into());
            }
            (None, None) => {
                cx.key_err(
                    &ptr,
                    format!("secret `{name}` has no source"),
                    "secret-source",
                )
                .help = Some("add `env: VARIABLE` or `file: /path/to/secret`".into());
            }
            _ => {}
        }
    }
}

pub(super) fn backend_kind(b: &BackendSpec) -> Vec<&'static str> {
    let mut k = vec![];
    if b.kubernetes.is_some() {
        k.push("kubernetes");
    }
    if b.http.is_some() {
        k.push("http");
    }
    if b.compose.is_some() {
        k.push("compose");
    }
    if b.shell.is_some() {
        k.push("shell");
    }
    if b.prometheus.is_some() {
        k.push("prometheus");
    }
    k
}

pub(super) fn check_backends(cx: &mut Ctx, spec: &RunbookSpec, scope: &Scope) {
    for (name, b) in &spec.backends {
        let ptr = format!("/backends/{}", yaml::pointer_segment(name));
        let kinds = backend_kind(b);
        if kinds.len() != 1 {
            cx.key_err(
                &ptr,
                format!("backend `{name}` must have exactly one of `kubernetes`, `http`, `compose`, `shell`, `prometheus` (found {})", kinds.len()),
                "backend-kind",
            )
            .help = Some("give each backend its own name".into());
        }
        // Backend fields are templates over inputs, secrets and env (not steps: backends are
        // resolved before the first step).
        let body = cx.value.pointer(&ptr).cloned().unwrap_or(Value::Null);
        let mut strings = vec![];
        template::strings_in(&body, &ptr, &mut strings);
        for (p, s) in strings {
            check_template(cx, scope, &p, &s, Usage::Backend, None);
        }
        if let Some(h) = &b.http {
            if let Some(t) = &h.timeout {
                cx.duration(&format!("{ptr}/http/timeout"), t);
            }
        }
        // A templated command is checked again after rendering, when the step runs.
        if let Some(c) = &b.compose {
            let templated = c
                .command
                .iter()
                .any(|a| a.contains("{{") || a.contains("{%"));
            if !c.command.is_empty() && !templated {
                if let Some(why) = crate::backends::compose::cli_problem(&c.command) {
                    cx.err(&format!("{ptr}/compose/command"), why, "compose-command")
                        .help = Some(
                        "a compose step's verb sets its safety class and what `plan` shows; to run \
                         another program, use a shell step (its safety class is yours to give)"
                            .into(),
                    );
                }
            }
        }
        if let Some(p) = &b.prometheus {
            if let Some(t) = &p.timeout {
                cx.duration(&format!("{ptr}/prometheus/timeout"), t);
            }
        }
    }
}
