//! Steps: each step's fields, safety, retry and undo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::model::{Action, ActionKind, Retry, Step, Undo, Until};
use crate::spec::{self, RetrySpec, RunbookSpec, Safety, StepSpec, UndoSpec};
use crate::template;
use crate::yaml::{self};

use super::actions::check_action;
use super::declarations::is_identifier;
use super::scope::{check_expr, check_template, Scope, Usage};
use super::{Ctx, Reports};

pub(super) fn action_fields_of(s: &StepSpec) -> Vec<&'static str> {
    let mut v = vec![];
    macro_rules! has { ($($f:ident),*) => { $( if s.$f.is_some() { v.push(stringify!($f)); } )* } }
    has!(
        shell, http, kubernetes, compose, confirm, manual, input, wait, assert, call, prometheus,
        analysis
    );
    v
}

pub(super) fn undo_fields_of(s: &UndoSpec) -> Vec<&'static str> {
    let mut v = vec![];
    macro_rules! has { ($($f:ident),*) => { $( if s.$f.is_some() { v.push(stringify!($f)); } )* } }
    has!(
        shell, http, kubernetes, compose, confirm, manual, input, wait, assert, call, prometheus,
        analysis
    );
    v
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_step(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    s: &StepSpec,
    position: usize,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Step> {
    let fields = action_fields_of(s);
    // Diagnostics are only appended while a step is checked: its own are the ones after these.
    let before = cx.diags.len();
    if fields.len() != 1 {
        let msg = if fields.is_empty() {
            format!("step `{}` has no action", s.id)
        } else {
            format!(
                "step `{}` has {} actions ({}); a step does one thing",
                s.id,
                fields.len(),
                fields.join(", ")
            )
        };
        cx.key_err(&format!("{ptr}/id"), msg, "step-action").help = Some(format!(
            "give it exactly one of: {}",
            spec::ACTION_KINDS.join(", ")
        ));
        return None;
    }
    let field = fields[0];
    let body = cx
        .value
        .pointer(&format!("{ptr}/{field}"))
        .cloned()
        .unwrap_or(Value::Null);
    let action = check_action(
        cx,
        spec,
        scope,
        &format!("{ptr}/{field}"),
        field,
        &body,
        s,
        Some(position),
        path,
        stack,
    )?;

    // Guard, captures, verifications.
    if let Some(w) = &s.when {
        check_expr(
            cx,
            scope,
            &format!("{ptr}/when"),
            w,
            Usage::Plain,
            Some(position),
        );
    }
    for (name, expr) in &s.capture {
        let p = format!("{ptr}/capture/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(
                &p,
                format!("capture name `{name}` is not an identifier"),
                "name",
            );
        }
        check_expr(cx, scope, &p, expr, Usage::WithResult, Some(position));
    }
    for (i, v) in s.verify.iter().enumerate() {
        check_expr(
            cx,
            scope,
            &format!("{ptr}/verify/{i}/that"),
            &v.that,
            Usage::WithResult,
            Some(position),
        );
        if let Some(m) = &v.message {
            check_template(
                cx,
                scope,
                &format!("{ptr}/verify/{i}/message"),
                m,
                Usage::WithResult,
                Some(position),
            );
        }
    }
    for text in [&s.title, &s.description].into_iter().flatten() {
        let _ = text; // titles and descriptions are shown as written, not rendered
    }
    let no_result = matches!(
        action.kind,
        ActionKind::Confirm(_)
            | ActionKind::Manual(_)
            | ActionKind::Input(_)
            | ActionKind::Wait(_)
            | ActionKind::Assert(_)
    );
    if no_result && (!s.verify.is_empty() || s.until.is_some()) {
        cx.key_err(
            &format!(
                "{ptr}/{}",
                if s.until.is_some() { "until" } else { "verify" }
            ),
            format!("a `{field}` step has no result to verify or poll"),
            "verify-kind",
        )
        .help = Some("use an `assert` step to check earlier captures".into());
    }

    let analysis_pass = matches!(&action.kind, ActionKind::Analysis { spec, .. }
        if spec.on_inconclusive == Some(spec::OnInconclusive::Pass));
    if s.on_inconclusive == Some(spec::OnInconclusive::Pass) || analysis_pass {
        let p = if analysis_pass {
            format!("{ptr}/{field}/on_inconclusive")
        } else {
            format!("{ptr}/on_inconclusive")
        };
        cx.warn(
            &p,
            "`on_inconclusive: pass` lets no data (an empty result, NaN) count as a pass",
            "inconclusive-pass",
        )
        .help = Some(
            "prefer `fail` (the default) or `ask`; a verification that cannot see the system proves nothing"
                .into(),
        );
    }
    if s.on_inconclusive.is_some() && s.verify.is_empty() {
        cx.key_err(
            &format!("{ptr}/on_inconclusive"),
            "`on_inconclusive` applies to `verify`, but this step has no `verify`",
            "inconclusive-without-verify",
        )
        .help = Some("an `analysis` step takes `on_inconclusive` inside `analysis:`".into());
    }

    // A template over inputs (`"{{ inputs.rollout_timeout }}"`) is rendered and parsed when
    // the step runs.
    let timeout_template = s
        .timeout
        .as_ref()
        .filter(|t| template::is_template(t))
        .cloned();
    if let Some(t) = &timeout_template {
        check_template(
            cx,
            scope,
            &format!("{ptr}/timeout"),
            t,
            Usage::Backend,
            None,
        );
    }
    let timeout = s
        .timeout
        .as_ref()
        .filter(|_| timeout_template.is_none())
        .and_then(|t| cx.duration(&format!("{ptr}/timeout"), t));
    let retry = s
        .retry
        .as_ref()
        .map(|r| check_retry(cx, &format!("{ptr}/retry"), r))
        .unwrap_or_default();
    let until = match &s.until {
        None => None,
        Some(u) => {
            if s.verify.is_empty() {
                cx.key_err(
                    &format!("{ptr}/until"),
                    "`until` polls `verify`, but this step has no `verify`",
                    "poll-without-verify",
                )
                .help = Some("add `verify:` conditions, or remove `until`".into());
            }
            // A template over inputs (`"{{ inputs.sync_timeout }}"`) is rendered and parsed
            // when the step runs; a literal is parsed here.
            let templated = |cx: &mut Ctx, field: &str, src: &str| -> Option<String> {
                if !template::is_template(src) {
                    return None;
                }
                check_template(
                    cx,
                    scope,
                    &format!("{ptr}/until/{field}"),
                    src,
                    Usage::Backend,
                    None,
                );
                Some(src.to_string())
            };
            let timeout_template = templated(cx, "timeout", &u.timeout);
            let interval_template = u
                .interval
                .as_deref()
                .and_then(|i| templated(cx, "interval", i));
            let t = if timeout_template.is_some() {
                Some(Duration::ZERO)
            } else {
                cx.duration(&format!("{ptr}/until/timeout"), &u.timeout)
            };
            let i = match &u.interval {
                Some(_) if interval_template.is_some() => Some(Duration::ZERO),
                Some(i) => cx.duration(&format!("{ptr}/until/interval"), i),
                None => Some(Duration::from_secs(5)),
            };
            if let (Some(t), Some(i)) = (t, i) {
                if i.is_zero() && interval_template.is_none() {
                    cx.err(
                        &format!("{ptr}/until/interval"),
                        "poll interval must be more than zero",
                        "duration",
                    );
                }
                if t.is_zero() && timeout_template.is_none() {
                    cx.err(
                        &format!("{ptr}/until/timeout"),
                        "poll timeout must be more than zero",
                        "poll-without-timeout",
                    )
                    .help = Some("polling needs a budget, e.g. `timeout: 5m`".into());
                }
                Some(Until {
                    timeout: t,
                    interval: i,
                    timeout_template,
                    interval_template,
                })
            } else {
                None
            }
        }
    };
    if matches!(
        action.kind,
        ActionKind::Kubernetes {
            verb: crate::backends::KubeVerb::RolloutStatus
        }
    ) && timeout.is_none()
        && timeout_template.is_none()
    {
        cx.key_err(&format!("{ptr}/kubernetes"), format!("step `{}` waits for a rollout without a timeout", s.id), "poll-without-timeout")
            .help = Some("add `timeout:` to the step (e.g. `timeout: 5m`) so a stuck rollout fails instead of hanging".into());
    }

    // Safety class.
    let safety = declared_safety(cx, ptr, s.safety, &action, ("action", "a step"));

    // Undo.
    let undo = match &s.undo {
        None => None,
        Some(u) => check_undo(
            cx,
            spec,
            scope,
            &format!("{ptr}/undo"),
            u,
            position,
            path,
            stack,
        ),
    };
    if undo.is_none()
        && s.undo.is_none()
        && s.no_undo.is_none()
        && safety > Safety::ReadOnly
        && !matches!(
            action.kind,
            ActionKind::Confirm(_)
                | ActionKind::Manual(_)
                | ActionKind::Input(_)
                | ActionKind::Wait(_)
                | ActionKind::Assert(_)
                | ActionKind::Call(_)
        )
    {
        cx.warn(&format!("{ptr}/id"), format!("step `{}` changes state ({}) but has no `undo`", s.id, safety.as_str()), "missing-undo")
            .help = Some("add `undo:` with the compensating action, or `no_undo: <why>` to say why there is none".into());
    }
    if s.undo.is_some() && s.no_undo.is_some() {
        cx.key_err(
            &format!("{ptr}/no_undo"),
            "a step with `undo` cannot also have `no_undo`",
            "undo",
        )
        .help = Some("keep one".into());
    }

    if cx.diags[before..].iter().any(|d| d.is_error()) {
        return None;
    }
    Some(Step {
        id: s.id.clone(),
        title: s.title.clone().unwrap_or_else(|| s.id.clone()),
        loc: cx.doc.value_loc(&format!("{ptr}/id")),
        spec: s.clone(),
        action,
        safety,
        timeout,
        timeout_template,
        retry,
        until,
        undo,
    })
}

pub(super) fn own_safety(a: &Action) -> Safety {
    match &a.kind {
        ActionKind::Kubernetes { verb } => spec::kube_verb_safety(verb.as_str()),
        ActionKind::Compose { verb } => spec::compose_verb_safety(verb.as_str()),
        ActionKind::Shell(_) => Safety::Reversible,
        ActionKind::Http(h) => {
            let m = h.request.method.unwrap_or(spec::HttpMethod::GET);
            if matches!(
                m,
                spec::HttpMethod::GET | spec::HttpMethod::HEAD | spec::HttpMethod::OPTIONS
            ) {
                Safety::ReadOnly
            } else {
                Safety::Reversible
            }
        }
        ActionKind::Call(rb) => rb.max_safety(),
        _ => Safety::ReadOnly,
    }
}

pub(super) fn check_retry(cx: &mut Ctx, ptr: &str, r: &RetrySpec) -> Retry {
    let mut out = Retry {
        attempts: r.attempts.max(1),
        ..Retry::default()
    };
    if let Some(d) = &r.delay {
        if let Some(d) = cx.duration(&format!("{ptr}/delay"), d) {
            out.delay = d;
        }
    }
    if let Some(m) = &r.max_delay {
        out.max_delay = cx.duration(&format!("{ptr}/max_delay"), m);
    }
    if let Some(b) = r.backoff {
        if !(1.0..=10.0).contains(&b) {
            cx.err(
                &format!("{ptr}/backoff"),
                format!("backoff {b} is outside 1.0..=10.0"),
                "retry",
            )
            .help = Some("use 1.0 for a fixed delay, 2.0 to double it each time".into());
        }
        out.backoff = b;
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_undo(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    u: &UndoSpec,
    position: usize,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Undo> {
    let fields = undo_fields_of(u);
    if fields.len() != 1 {
        cx.key_err(
            ptr,
            format!(
                "`undo` must have exactly one action (found {})",
                fields.len()
            ),
            "undo",
        )
        .help = Some("e.g. `undo: { kubernetes: { set_image: {...} } }`".into());
        return None;
    }
    let field = fields[0];
    if matches!(
        field,
        "confirm" | "input" | "assert" | "call" | "prometheus" | "analysis"
    ) {
        cx.key_err(
            &format!("{ptr}/{field}"),
            format!("`{field}` cannot be an undo action"),
            "undo",
        )
        .help = Some("undo with shell, http, kubernetes, compose, manual or wait".into());
        return None;
    }
    let body = cx
        .doc
        .value
        .pointer(&format!("{ptr}/{field}"))
        .cloned()
        .unwrap_or(Value::Null);
    let pseudo = StepSpec::default();
    // An undo runs after its step, so it may read the step's own captures.
    let action = check_action(
        cx,
        spec,
        scope,
        &format!("{ptr}/{field}"),
        field,
        &body,
        &pseudo,
        Some(position + 1),
        path,
        stack,
    )?;
    let timeout = u
        .timeout
        .as_ref()
        .and_then(|t| cx.duration(&format!("{ptr}/timeout"), t));
    let retry = u
        .retry
        .as_ref()
        .map(|r| check_retry(cx, &format!("{ptr}/retry"), r))
        .unwrap_or_default();
    let safety = declared_safety(cx, ptr, u.safety, &action, ("undo action", "an undo"));
    Some(Undo {
        safety,
        title: u
            .title
            .clone()
            .unwrap_or_else(|| format!("undo: {}", action.kind.label())),
        action,
        timeout,
        retry,
    })
}

/// The safety class of a step or undo (`what`: how messages name its action and itself): the
/// declared one, which may raise the action's own class but never lower it (except for shell
/// and HTTP actions, whose own class is only a default); without one, the action's own.
fn declared_safety(
    cx: &mut Ctx,
    ptr: &str,
    declared: Option<Safety>,
    action: &Action,
    (action_name, holder): (&str, &str),
) -> Safety {
    let own = own_safety(action);
    match declared {
        Some(declared)
            if declared < own
                && !matches!(action.kind, ActionKind::Shell(_) | ActionKind::Http(_)) =>
        {
            cx.err(&format!("{ptr}/safety"),
                format!("`{}` is below the {action_name}'s own class `{}`", declared.as_str(), own.as_str()), "safety")
                .help = Some(format!("{holder} may raise its class, never lower it; remove `safety:` or use `{}` or higher", own.as_str()));
            own
        }
        Some(declared) => declared,
        None => own,
    }
}
