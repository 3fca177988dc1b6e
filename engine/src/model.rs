//! The validated runbook: what the checker proved, in the shape the planner and runner use.
//! Durations are parsed, backends resolved, safety classes computed, step ids unique.
//! Templates are still text here; they are rendered at plan or run time against a context.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diag::Loc;
use crate::spec::{RunbookSpec, Safety, StepSpec};

#[derive(Debug, Clone)]
pub struct Runbook {
    /// The path as the user gave it, for messages.
    pub file: String,
    /// The path used to read it (relative paths in the runbook resolve against its parent).
    pub path: PathBuf,
    /// sha256 of the file's bytes, recorded in the journal; `resume` refuses if it changed.
    pub sha256: String,
    pub spec: RunbookSpec,
    pub mttr_target: Option<Duration>,
    pub steps: Vec<Step>,
    pub on_failure: Vec<Step>,
}

impl Runbook {
    pub fn name(&self) -> &str {
        &self.spec.metadata.name
    }

    /// The riskiest safety class of any step, undo or `on_failure` step (including called
    /// runbooks': a call step's class is its runbook's highest).
    pub fn max_safety(&self) -> Safety {
        self.steps
            .iter()
            .chain(&self.on_failure)
            .flat_map(|s| std::iter::once(s.safety).chain(s.undo.as_ref().map(|u| u.safety)))
            .max()
            .unwrap_or(Safety::ReadOnly)
    }

    /// Every runbook file this runbook loads (itself first, then the runbooks it calls, each
    /// once), with its sha256.
    pub fn files(&self) -> Vec<crate::exec::events::FileHash> {
        let mut out: Vec<crate::exec::events::FileHash> = vec![];
        self.collect_files(&mut out);
        out
    }

    fn collect_files(&self, out: &mut Vec<crate::exec::events::FileHash>) {
        let path = self.path.display().to_string();
        if out.iter().any(|f| f.path == path) {
            return;
        }
        out.push(crate::exec::events::FileHash {
            path,
            sha256: self.sha256.clone(),
        });
        for s in self.steps.iter().chain(&self.on_failure) {
            if let ActionKind::Call(child) = &s.action.kind {
                child.collect_files(out);
            }
        }
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps
            .iter()
            .chain(&self.on_failure)
            .find(|s| s.id == id)
    }

    /// The steps a confirm step guards, from the list (main or `on_failure`) it belongs to.
    pub fn guarded_by(&self, confirm: &Step) -> Vec<&Step> {
        for list in [&self.steps, &self.on_failure] {
            if let Some(i) = list.iter().position(|s| s.id == confirm.id) {
                return guarded_steps(list, i);
            }
        }
        vec![]
    }

    /// The directory relative paths inside the runbook resolve against. A bare file name
    /// (`runbook run undo.yaml`) has the empty path as its parent, which no process can start
    /// in: that is the current directory.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    /// Where the step starts in the file (its `id`).
    pub loc: Loc,
    /// The step as written (guard, captures, verifications, descriptions).
    pub spec: StepSpec,
    pub action: Action,
    pub safety: Safety,
    pub timeout: Option<Duration>,
    /// `timeout` written as a template over inputs (`"{{ inputs.rollout_timeout }}"`),
    /// rendered and parsed when the step runs (`timeout` is then `None`).
    pub timeout_template: Option<String>,
    pub retry: Retry,
    pub until: Option<Until>,
    pub undo: Option<Undo>,
}

impl Step {
    /// Does this step stop for an operator's answer before it runs?
    pub fn is_gate(&self) -> bool {
        matches!(
            self.action.kind,
            ActionKind::Confirm(_) | ActionKind::Manual(_) | ActionKind::Input(_)
        ) || self.safety == Safety::Terminal
    }

    /// May it ask the operator whether a verification without data counts as passed
    /// (`on_inconclusive: ask`, on the step or in its `analysis`)?
    pub fn asks_on_inconclusive(&self) -> bool {
        self.spec.on_inconclusive == Some(crate::spec::OnInconclusive::Ask)
            || matches!(&self.action.kind, ActionKind::Analysis { spec, .. }
                if spec.on_inconclusive == Some(crate::spec::OnInconclusive::Ask))
    }

    /// Does it change anything outside the engine?
    pub fn is_mutating(&self) -> bool {
        self.safety > Safety::ReadOnly
    }
}

/// The steps a confirmation guards, for the confirm step at `idx` of `steps` (a runbook's
/// main steps or its `on_failure` steps): its explicit `guards:` list, or else the changing
/// steps (above read-only, terminal ones included) after it up to the next `confirm`,
/// `manual` or `input` step. Only `yes` lets them run; `skip` skips them.
pub fn guarded_steps(steps: &[Step], idx: usize) -> Vec<&Step> {
    let Some(confirm) = steps.get(idx) else {
        return vec![];
    };
    let ActionKind::Confirm(c) = &confirm.action.kind else {
        return vec![];
    };
    if let Some(ids) = &c.guards {
        return steps[idx + 1..]
            .iter()
            .filter(|s| ids.contains(&s.id))
            .collect();
    }
    steps[idx + 1..]
        .iter()
        .take_while(|s| {
            !matches!(
                s.action.kind,
                ActionKind::Confirm(_) | ActionKind::Manual(_) | ActionKind::Input(_)
            )
        })
        .filter(|s| s.is_mutating())
        .collect()
}

/// An action: which kind with its typed arguments as written (deserialized once, when the
/// runbook is checked), which backend, and its body as written (the YAML subtree, templates
/// unrendered), which rendering walks and the plan and reference scans read. Rendering it
/// (`exec::actions::render`) gives a typed `RenderedAction`.
#[derive(Debug, Clone)]
pub struct Action {
    pub kind: ActionKind,
    /// The backend name this action uses, when it uses one.
    pub backend: Option<String>,
    /// The action's own field, e.g. the value of `kubernetes:` or `shell:`.
    pub body: Value,
}

/// Each action kind with its typed arguments as written (templates unrendered).
/// Kubernetes and compose arguments become typed calls (`KubeCall`, `ComposeCall`) once
/// rendered: their literal values are validated by `check` with the same validation.
#[derive(Debug, Clone)]
pub enum ActionKind {
    Shell(Box<crate::spec::ShellAction>),
    Http(Box<crate::spec::HttpAction>),
    Kubernetes {
        verb: crate::backends::KubeVerb,
    },
    Compose {
        verb: crate::backends::ComposeVerb,
    },
    Confirm(crate::spec::ConfirmAction),
    Manual(crate::spec::ManualAction),
    Input(Box<crate::spec::InputAction>),
    /// A literal duration, or `None` when it is a template (rendered and parsed at run time).
    Wait(Option<Duration>),
    /// The conditions (expressions, evaluated when the step runs, never rendered).
    Assert(Vec<crate::spec::ConditionSpec>),
    Call(Arc<Runbook>),
    /// A PromQL query (instant, or range when it has `range`).
    Prometheus(Box<crate::spec::PrometheusAction>),
    /// A canary analysis: one check every `interval`.
    Analysis {
        interval: Duration,
        spec: Box<crate::spec::AnalysisAction>,
    },
}

impl ActionKind {
    /// The field name this action has in YAML (`shell`, `kubernetes`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            ActionKind::Shell(_) => "shell",
            ActionKind::Http(_) => "http",
            ActionKind::Kubernetes { .. } => "kubernetes",
            ActionKind::Compose { .. } => "compose",
            ActionKind::Confirm(_) => "confirm",
            ActionKind::Manual(_) => "manual",
            ActionKind::Input(_) => "input",
            ActionKind::Wait(_) => "wait",
            ActionKind::Assert(_) => "assert",
            ActionKind::Call(_) => "call",
            ActionKind::Prometheus(_) => "prometheus",
            ActionKind::Analysis { .. } => "analysis",
        }
    }

    /// `kubernetes.set_image`, `compose.up`, `shell`, ...
    pub fn label(&self) -> String {
        match self {
            ActionKind::Kubernetes { verb } => format!("kubernetes.{verb}"),
            ActionKind::Compose { verb } => format!("compose.{verb}"),
            other => other.field().to_string(),
        }
    }
}

/// The built-in safety class of a Kubernetes or Compose action named by its label
/// (`kubernetes.delete`, `compose.up`): the class `check` gives the verb, which a declared
/// `safety:` may raise but never lower. `None` for any other label (a shell or HTTP action's
/// class is only a default a declaration may lower; a manual or wait action's may be raised)
/// and for a verb it does not know.
pub fn verb_safety(label: &str) -> Option<Safety> {
    let (kind, verb) = label.split_once('.')?;
    match kind {
        "kubernetes" => crate::backends::KubeVerb::parse(verb)
            .map(|v| crate::spec::kube_verb_safety(v.as_str())),
        "compose" => crate::backends::ComposeVerb::parse(verb)
            .map(|v| crate::spec::compose_verb_safety(v.as_str())),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct Undo {
    pub title: String,
    pub action: Action,
    /// The undo's own safety class (from its action): a `terminal` undo asks like any
    /// terminal step, and counts for the runbook's highest class.
    pub safety: Safety,
    pub timeout: Option<Duration>,
    pub retry: Retry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub delay: Duration,
    pub backoff: f64,
    pub max_delay: Option<Duration>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            delay: Duration::from_secs(1),
            backoff: 1.0,
            max_delay: None,
        }
    }
}

impl Retry {
    /// The wait after failed attempt `n` (1-based) before the next one.
    pub fn delay_after(&self, n: u32) -> Duration {
        let factor = self.backoff.max(1.0).powi(n.saturating_sub(1) as i32);
        let d = self.delay.mul_f64(factor.min(1e6));
        match self.max_delay {
            Some(max) => d.min(max),
            None => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Until {
    /// The literal budget; zero when `timeout_template` gives it.
    pub timeout: Duration,
    /// The literal interval; zero when `interval_template` gives it.
    pub interval: Duration,
    /// `timeout` written as a template over inputs (`"{{ inputs.sync_timeout }}"`), rendered
    /// and parsed when the step runs.
    pub timeout_template: Option<String>,
    /// `interval` written as a template, likewise.
    pub interval_template: Option<String>,
}

/// Renders a duration written as a template over `ctx` (the inputs) and parses it; a value
/// that is not a positive duration is an error naming `field` and what it rendered to.
pub fn render_duration(
    field: &str,
    src: &str,
    ctx: &serde_json::Value,
) -> Result<Duration, String> {
    let v = crate::template::render_str(src, ctx).map_err(|e| format!("`{field}`: {e}"))?;
    let text = match &v {
        serde_json::Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    match parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!(
            "`{field}` rendered to `{text}`: it must be more than zero"
        )),
        Err(e) => Err(format!(
            "`{field}` rendered to something that is not a duration: {e}"
        )),
    }
}

impl Until {
    /// The budget and interval of this run: literals as they are, templates rendered over
    /// `ctx` (the inputs) and parsed; a value that is not a positive duration is an error
    /// naming the field and what it rendered to.
    pub fn resolve(&self, ctx: &serde_json::Value) -> Result<(Duration, Duration), String> {
        let one = |field: &str, literal: Duration, tpl: &Option<String>| match tpl {
            None => Ok(literal),
            Some(src) => render_duration(field, src, ctx),
        };
        Ok((
            one("until.timeout", self.timeout, &self.timeout_template)?,
            one("until.interval", self.interval, &self.interval_template)?,
        ))
    }

    /// How the plan and the view show it: the literal, or the template as written.
    pub fn describe(&self) -> (String, String) {
        (
            self.timeout_template
                .clone()
                .unwrap_or_else(|| fmt_duration(self.timeout)),
            self.interval_template
                .clone()
                .unwrap_or_else(|| fmt_duration(self.interval)),
        )
    }
}

/// Formats a duration the way runbooks write them: `45s`, `15m`, `1h30m`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if !ms.is_multiple_of(1000) && ms < 60_000 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// The longest duration a runbook or drill may give (a wait, a timeout, a delay): longer ones
/// cannot be meant, and would overflow the clock's arithmetic (a date beyond year 262143).
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
pub const MAX_DURATION_TEXT: &str = "366 days (`366d`)";

/// How to write a duration, for diagnostics.
pub const DURATION_HELP: &str =
    "a duration is a number with its unit, e.g. `30s`, `5m`, `1h30m` (units: ms, s, m, h, d, w)";

/// Parses `45s`, `15m`, `1h30m`, `250ms`, `1h 30m`, up to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(format!(
            "`{s}` is too long: durations are limited to {MAX_DURATION_TEXT}"
        )),
        Err(e) => Err(format!(
            "`{s}` is not a duration ({e}); write a number and a unit, e.g. `30s`, `5m`, `1h30m`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for s in ["45s", "15m", "1h30m", "250ms", "2h"] {
            assert_eq!(fmt_duration(parse_duration(s).unwrap()), s);
        }
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let r = Retry {
            attempts: 5,
            delay: Duration::from_secs(2),
            backoff: 2.0,
            max_delay: Some(Duration::from_secs(5)),
        };
        assert_eq!(r.delay_after(1), Duration::from_secs(2));
        assert_eq!(r.delay_after(2), Duration::from_secs(4));
        assert_eq!(r.delay_after(3), Duration::from_secs(5));
    }
}
