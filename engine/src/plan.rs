//! The plan: what a run would do, step by step, rendered with the given inputs, without any
//! side effect. Values only known at run time (captures of earlier steps) are shown as
//! `<steps.id.name>` and listed; secrets are always `***`.

use std::collections::BTreeSet;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::backends::{kubernetes::Overrides, Backends};
use crate::exec::actions;
use crate::exec::context::{steps_read_in, RunContext};
use crate::exec::gate::{hint, GateKind, GateRequest};
use crate::model::{fmt_duration, ActionKind, Runbook, Step};
use crate::spec::Safety;
use crate::template;
use crate::template::namespace::{RunFields, StepField};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mttr_target: Option<String>,
    pub inputs: Map<String, Value>,
    pub preconditions: Vec<PlannedCondition>,
    pub rollback_strategy: String,
    pub steps: Vec<PlannedStep>,
    pub on_failure: Vec<PlannedStep>,
    pub max_safety: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedCondition {
    pub that: String,
    /// true / false when it can be decided now; null when it depends on run-time values.
    pub holds: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub title: String,
    pub action: String,
    pub safety: String,
    /// One line: argv, `METHOD url`, verb and object, compose command.
    pub summary: String,
    /// The rendered action body.
    pub rendered: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<PlannedCondition>,
    /// How the gate is answered, when the step has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_undo: Option<String>,
    /// Values that are only known when the run gets there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_values: Vec<String>,
    /// What the live cluster says this would change (`plan --live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PlannedStep>,
}

/// Builds the context for planning: inputs as given, secrets masked, and every step field as a
/// placeholder naming itself.
pub fn plan_context(rb: &Runbook, inputs: &IndexMap<String, Value>) -> RunContext {
    let mut ctx = RunContext {
        inputs: inputs.clone(),
        secrets: rb
            .spec
            .secrets
            .keys()
            .map(|k| (k.clone(), crate::exec::redact::MASK.to_string()))
            .collect(),
        env: rb
            .spec
            .env
            .iter()
            .map(|k| (k.clone(), json!(format!("<env.{k}>"))))
            .collect(),
        run: Map::new(),
        steps: Map::new(),
        tainted: Default::default(),
    };
    let placeholder = |k: &str| format!("<run.{k}>");
    ctx.run = RunFields {
        id: placeholder("id"),
        operator: placeholder("operator"),
        reason: placeholder("reason"),
        started_at: placeholder("started_at"),
        runbook: rb.name().to_string(),
        host: placeholder("host"),
    }
    .to_map();
    for s in rb.steps.iter().chain(&rb.on_failure) {
        let mut names: Vec<String> = s.spec.capture.keys().cloned().collect();
        names.extend(StepField::of_step(&s.spec).map(|f| f.name().to_string()));
        for n in names {
            ctx.set_step_entry(&s.id, &n, json!(format!("<steps.{}.{n}>", s.id)));
        }
    }
    ctx
}

fn runtime_refs(v: &Value) -> Vec<String> {
    let mut strings = vec![];
    template::strings_in(v, "", &mut strings);
    let mut out = BTreeSet::new();
    for (_, s) in strings {
        if let Ok(refs) = template::template_refs(&s) {
            out.extend(
                refs.into_iter()
                    .filter(|r| r.starts_with("steps.") || r.starts_with("run.")),
            );
        }
    }
    out.into_iter().collect()
}

fn condition(expr: &str, ctx: &Value) -> PlannedCondition {
    let refs = template::expr_refs(expr).unwrap_or_default();
    let runtime = refs
        .iter()
        .any(|r| r.starts_with("steps.") || r.starts_with("run.") || r.starts_with("result"));
    PlannedCondition {
        that: expr.to_string(),
        holds: if runtime {
            None
        } else {
            template::eval_bool(expr, ctx).ok()
        },
        message: None,
    }
}

/// Plans a runbook with resolved inputs.
pub fn plan(rb: &Runbook, inputs: &IndexMap<String, Value>) -> Plan {
    let ctx = plan_context(rb, inputs);
    let display = ctx.display(None);
    Plan {
        runbook: rb.name().to_string(),
        title: rb.spec.metadata.title.clone(),
        severity: rb.spec.metadata.severity.map(|s| format!("{s:?}")),
        mttr_target: rb.spec.metadata.mttr_target.clone(),
        inputs: inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        preconditions: rb
            .spec
            .preconditions
            .iter()
            .map(|c| PlannedCondition {
                message: c.message.clone(),
                ..condition(&c.that, &display)
            })
            .collect(),
        rollback_strategy: serde_json::to_value(rb.spec.rollback_strategy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        steps: rb
            .steps
            .iter()
            .map(|s| plan_step(rb, s, &ctx, ""))
            .collect(),
        on_failure: rb
            .on_failure
            .iter()
            .map(|s| plan_step(rb, s, &ctx, ""))
            .collect(),
        max_safety: rb.max_safety().as_str().to_string(),
    }
}

fn plan_step(rb: &Runbook, s: &Step, ctx: &RunContext, prefix: &str) -> PlannedStep {
    // Only the steps this one's templates read: a context with every step's placeholders,
    // built for every step, makes planning quadratic in the runbook's length.
    let only = steps_read_in(
        s.spec.when.iter().map(String::as_str),
        std::iter::once(&s.action.body).chain(s.undo.as_ref().map(|u| &u.action.body)),
    );
    let display = &ctx.display_reading(None, only.as_ref());
    let rendered = actions::render_for_plan(&s.action, display);
    let summary = actions::display_summary(rb, &s.action, &rendered, display);
    let sid = format!("{prefix}{}", s.id);
    let gate = s.is_gate().then(|| {
        let kind = match &s.action.kind {
            ActionKind::Confirm(_) => GateKind::Confirm,
            ActionKind::Manual(_) => GateKind::Manual,
            ActionKind::Input(ia) => GateKind::Input(Box::new(crate::spec::InputSpec {
                kind: ia.kind,
                description: None,
                default: None,
                allowed: None,
                minimum: None,
                maximum: None,
                pattern: None,
                example: None,
            })),
            _ => GateKind::Terminal,
        };
        let req = GateRequest {
            step: sid.clone(),
            title: s.title.clone(),
            kind,
            prompt: String::new(),
            safety: s.safety,
            action: summary.clone(),
            guarded: rb
                .guarded_by(s)
                .into_iter()
                .map(|g| crate::exec::gate::Guarded {
                    step: format!("{prefix}{}", g.id),
                    title: g.title.clone(),
                    safety: g.safety,
                    change: vec![],
                    undo: String::new(),
                })
                .collect(),
        };
        let what = if s.safety == Safety::Terminal
            && !matches!(
                s.action.kind,
                ActionKind::Confirm(_) | ActionKind::Manual(_) | ActionKind::Input(_)
            ) {
            "terminal: explicit confirmation"
        } else {
            "asks the operator"
        };
        format!("{what}; non-interactive: {}", hint(&req))
    });
    let retry = (s.retry.attempts > 1).then(|| {
        format!(
            "{} attempts, delay {}{}",
            s.retry.attempts,
            fmt_duration(s.retry.delay),
            if s.retry.backoff > 1.0 {
                format!(" ×{}", s.retry.backoff)
            } else {
                String::new()
            }
        )
    });
    let undo = s.undo.as_ref().map(|u| {
        let r = actions::render_for_plan(&u.action, display);
        actions::display_summary(rb, &u.action, &r, display)
    });
    let mut runtime = runtime_refs(&s.action.body);
    if let Some(u) = &s.undo {
        runtime.extend(runtime_refs(&u.action.body));
    }
    runtime.sort();
    runtime.dedup();
    let children = match &s.action.kind {
        ActionKind::Call(child) => {
            let inputs: IndexMap<String, Value> = child
                .spec
                .inputs
                .iter()
                .map(|(k, spec)| {
                    let v = rendered
                        .pointer(&format!("/inputs/{k}"))
                        .cloned()
                        .or(spec.default.clone())
                        .unwrap_or(Value::Null);
                    (k.clone(), v)
                })
                .collect();
            let cctx = plan_context(child, &inputs);
            child
                .steps
                .iter()
                .map(|c| plan_step(child, c, &cctx, &format!("{sid}/")))
                .collect()
        }
        _ => vec![],
    };
    PlannedStep {
        id: sid,
        title: s.title.clone(),
        action: s.action.kind.label(),
        safety: s.safety.as_str().into(),
        summary,
        rendered,
        when: s.spec.when.as_ref().map(|w| condition(w, display)),
        gate,
        timeout: s
            .timeout
            .map(fmt_duration)
            .or_else(|| s.timeout_template.clone()),
        retry,
        poll: s.until.as_ref().map(|u| {
            let (timeout, interval) = u.describe();
            format!("every {interval} for up to {timeout}")
        }),
        verify: s.spec.verify.iter().map(|v| v.that.clone()).collect(),
        captures: s
            .spec
            .capture
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect(),
        undo,
        no_undo: s.spec.no_undo.clone(),
        runtime_values: runtime,
        live: None,
        steps: children,
    }
}

/// The plan as text for a terminal.
pub fn render_text(p: &Plan) -> String {
    let mut out = String::new();
    let sev = p
        .severity
        .as_ref()
        .map(|s| format!(" [{s}]"))
        .unwrap_or_default();
    out.push_str(&format!("Plan for {}{sev}: {}\n", p.runbook, p.title));
    if let Some(m) = &p.mttr_target {
        out.push_str(&format!("MTTR target: {m}\n"));
    }
    out.push_str(&format!(
        "Highest safety class: {}; rollback: {}\n",
        p.max_safety, p.rollback_strategy
    ));
    if !p.inputs.is_empty() {
        out.push_str("\nInputs:\n");
        for (k, v) in &p.inputs {
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    if !p.preconditions.is_empty() {
        out.push_str("\nPreconditions:\n");
        for c in &p.preconditions {
            let h = match c.holds {
                Some(true) => "holds",
                Some(false) => "FALSE: the run would stop here",
                None => "checked at run time",
            };
            out.push_str(&format!("  {} → {h}\n", c.that));
        }
    }
    out.push_str("\nSteps:\n");
    for (i, s) in p.steps.iter().enumerate() {
        step_text(&mut out, &format!("{:>2}.", i + 1), s, 0);
    }
    if !p.on_failure.is_empty() {
        out.push_str("\nOn failure:\n");
        for (i, s) in p.on_failure.iter().enumerate() {
            step_text(&mut out, &format!("{:>2}.", i + 1), s, 0);
        }
    }
    out
}

fn step_text(out: &mut String, num: &str, s: &PlannedStep, depth: usize) {
    let pad = "    ".repeat(depth);
    out.push_str(&format!(
        "{pad}{num} {} — {} ({}, {})\n",
        s.id, s.title, s.action, s.safety
    ));
    let field =
        |out: &mut String, k: &str, v: &str| out.push_str(&format!("{pad}      {k:<8} {v}\n"));
    field(out, "action", &s.summary);
    if let Some(w) = &s.when {
        let h = match w.holds {
            Some(true) => "→ runs",
            Some(false) => "→ SKIPPED",
            None => "→ decided at run time",
        };
        field(out, "when", &format!("{} {h}", w.that));
    }
    if let Some(g) = &s.gate {
        field(out, "gate", g);
    }
    let mut budget = vec![];
    if let Some(t) = &s.timeout {
        budget.push(format!("timeout {t}"));
    }
    if let Some(r) = &s.retry {
        budget.push(format!("retry {r}"));
    }
    if let Some(p) = &s.poll {
        budget.push(format!("poll {p}"));
    }
    if !budget.is_empty() {
        field(out, "budget", &budget.join(" · "));
    }
    for v in &s.verify {
        field(out, "verify", v);
    }
    for c in &s.captures {
        field(out, "capture", c);
    }
    if let Some(u) = &s.undo {
        field(out, "undo", u);
    }
    if let Some(n) = &s.no_undo {
        field(out, "no undo", n);
    }
    if let Some(l) = &s.live {
        field(out, "live", l);
    }
    if !s.runtime_values.is_empty() {
        field(out, "run-time", &s.runtime_values.join(", "));
    }
    for (i, c) in s.steps.iter().enumerate() {
        step_text(
            out,
            &format!("{}.{}", num.trim_end_matches('.'), i + 1),
            c,
            depth + 1,
        );
    }
}

/// Total time a plan may wait at most (timeouts × attempts, poll budgets, waits).
pub fn worst_case(rb: &Runbook) -> Duration {
    rb.steps
        .iter()
        .map(|s| {
            let per = match (&s.until, s.timeout, &s.action.kind) {
                (Some(u), _, _) => u.timeout,
                (None, _, ActionKind::Wait(Some(d))) => *d,
                (None, Some(t), _) => t,
                _ => Duration::ZERO,
            };
            per * s.retry.attempts
        })
        .sum()
}

/// `plan --live`: each Kubernetes step's change as the live cluster would see it (read only).
pub async fn preview_live(
    p: &mut Plan,
    rb: &Runbook,
    inputs: &IndexMap<String, Value>,
    context: Option<String>,
    namespace: Option<String>,
) {
    let backends = Backends::real(Overrides { context, namespace });
    let ctx = plan_context(rb, inputs).display(None);
    for (planned, step) in p.steps.iter_mut().zip(&rb.steps) {
        if let ActionKind::Kubernetes { .. } = &step.action.kind {
            if !planned.runtime_values.is_empty() {
                continue;
            }
            let target = step
                .action
                .backend
                .as_ref()
                .and_then(|b| rb.spec.backends.get(b))
                .and_then(|b| crate::exec::actions::render_backend(b, &ctx).ok())
                .and_then(|b| b.kubernetes)
                .unwrap_or_default();
            // The typed call the run would make; arguments the verb rejects are what the step
            // would fail with.
            planned.live = match actions::render(&step.action, &ctx, &ctx).map(|r| r.action) {
                Ok(actions::RenderedAction::Kubernetes(call)) => {
                    crate::backends::preview_kube(&*backends.kubernetes, &target, &call, &rb.dir())
                        .await
                }
                Ok(actions::RenderedAction::Invalid(e)) => {
                    Some(format!("the step would fail: {}", e.message))
                }
                _ => None,
            };
        }
    }
}
