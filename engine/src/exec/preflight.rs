//! Before the first step runs: every value whose destination is known at the start (a
//! template that reads only `inputs`, `secrets` and `env`) is rendered and checked against
//! where it goes, so that a value that cannot travel (a header with a line break, a URL value
//! that would climb out of its path) stops the run before anything changed, naming the input
//! and the step, instead of failing at that step after earlier ones ran.

use serde_json::Value;

use super::context::RunContext;
use crate::model::{Action, ActionKind, Runbook};
use crate::template::{self, UrlStart};

/// Roots whose values are all known before the first step.
const KNOWN_AT_START: &[&str] = &["inputs", "secrets", "env"];

/// The inputs (`inputs.x`) a template reads, and whether it reads only what is known at the
/// start. `None` when it reads something else (a step's result) or does not parse.
fn known_refs(src: &str) -> Option<Vec<String>> {
    let refs = template::template_refs(src).ok()?;
    let mut inputs = vec![];
    for r in &refs {
        let root = r.split('.').next().unwrap_or_default();
        if !KNOWN_AT_START.contains(&root) {
            return None;
        }
        if root == "inputs" {
            if let Some(name) = r.split('.').nth(1) {
                inputs.push(format!("`{name}`"));
            }
        }
    }
    inputs.dedup();
    Some(inputs)
}

/// Who gave the value: `input `x``, or the template when no input is involved.
fn whose(inputs: &[String]) -> String {
    match inputs.len() {
        0 => "the value".to_string(),
        1 => format!("the value of input {}", inputs[0]),
        _ => format!("the values of inputs {}", inputs.join(", ")),
    }
}

/// Why a rendered header value cannot be sent, if it cannot.
fn header_problem(name: &str, value: &str) -> Option<String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Some(format!("`{name}` is not a valid header name"));
    }
    if value.contains(['\r', '\n']) {
        return Some("holds a line break (CR or LF), which would end the header".into());
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Some("holds a control character, which a header cannot carry".into());
    }
    None
}

/// Checks one header template; `dest` says where it goes.
fn check_header(name: &str, src: &str, ctx: &Value, dest: &str, errors: &mut Vec<String>) {
    let Some(inputs) = known_refs(src) else {
        return;
    };
    if !template::is_template(src) {
        return;
    }
    let Ok(v) = template::render_str(src, ctx) else {
        return;
    };
    let text = match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    if let Some(why) = header_problem(name, &text) {
        errors.push(format!(
            "{dest}, header `{name}`: {} {why}; nothing ran",
            whose(&inputs)
        ));
    }
}

/// Checks a URL template.
fn check_url(src: &str, start: UrlStart, ctx: &Value, dest: &str, errors: &mut Vec<String>) {
    let Some(inputs) = known_refs(src) else {
        return;
    };
    if let Err(e) = template::render_url(src, ctx, start) {
        errors.push(format!("{dest}: {}: {e}; nothing ran", whose(&inputs)));
    }
}

fn check_action(action: &Action, ctx: &Value, dest: &str, errors: &mut Vec<String>) {
    let ActionKind::Http(http) = &action.kind else {
        return;
    };
    let req = &http.request;
    for (k, src) in &req.headers {
        check_header(k, src, ctx, dest, errors);
    }
    for (field, start, src) in [
        ("url", UrlStart::Url, &req.url),
        ("path", UrlStart::Path, &req.path),
    ] {
        if let Some(src) = src {
            check_url(src, start, ctx, &format!("{dest}, `{field}`"), errors);
        }
    }
}

/// Every problem found, one message each (empty when all values can travel).
pub fn check(rb: &Runbook, ctx: &RunContext) -> Vec<String> {
    let real = ctx.real(None);
    let mut errors = vec![];
    for (name, b) in &rb.spec.backends {
        if let Some(http) = &b.http {
            let dest = format!("backend `{name}`");
            for (k, v) in &http.headers {
                check_header(k, v, &real, &dest, &mut errors);
            }
            if let Some(u) = &http.base_url {
                check_url(
                    u,
                    UrlStart::Url,
                    &real,
                    &format!("{dest}, `base_url`"),
                    &mut errors,
                );
            }
        }
    }
    for step in rb.steps.iter().chain(&rb.on_failure) {
        check_action(
            &step.action,
            &real,
            &format!("step `{}`", step.id),
            &mut errors,
        );
        if let Some(u) = &step.undo {
            check_action(
                &u.action,
                &real,
                &format!("the undo of step `{}`", step.id),
                &mut errors,
            );
        }
    }
    errors
}
