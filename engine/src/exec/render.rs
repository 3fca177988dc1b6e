//! Renders a model action against the run context, once, into two views: the typed, rendered
//! action the runner dispatches on and the backends receive (`RenderedAction`, real values),
//! and the display JSON that the journal (`step_started`/`undo_started`), the plan and the view
//! show (secrets as `***`). Templates are rendered over the action's JSON tree as written, as
//! data (never re-rendered or split); a shell `script` is never rendered; URLs render with
//! `template::render_url`, so a value never changes their shape. The rendered tree becomes the
//! typed action here, the one place it is converted: nothing after this reads action JSON to
//! know what to do.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backends::prometheus::{PromQuery, PromRange};
use crate::backends::{ActionError, ComposeCall, ErrorKind, KubeCall};
use crate::model::{parse_duration, Action, ActionKind, Runbook};
use crate::spec::{self, BackendSpec};
use crate::template::{self, UrlStart};

/// An action with its templates rendered, typed: what the runner does with it.
#[derive(Debug, Clone)]
pub enum RenderedAction {
    /// A process: `argv`, or `script` as written (never rendered).
    Shell(spec::ShellAction),
    /// One HTTP request (its URL rendered with `template::render_url`).
    Http(spec::HttpAction),
    /// A Kubernetes verb with its typed, validated arguments.
    Kubernetes(KubeCall),
    /// A compose verb with its typed, validated arguments.
    Compose(ComposeCall),
    /// A PromQL query, its range parsed.
    Prometheus(PromQuery),
    Wait(Duration),
    /// Conditions over earlier steps (expressions: evaluated, never rendered).
    Assert(Vec<spec::ConditionSpec>),
    /// A confirmation (its prompt is shown from the display view).
    Confirm,
    /// A human step (its instructions are shown from the display view).
    Manual,
    /// A typed question: its type, bounds and default check the answer.
    Input(spec::InputAction),
    /// Another runbook, with the inputs passed to it.
    Call {
        runbook: Arc<Runbook>,
        inputs: IndexMap<String, Value>,
    },
    /// A canary analysis, its queries rendered.
    Analysis {
        interval: Duration,
        spec: spec::AnalysisAction,
    },
    /// Arguments that do not hold once rendered (an empty image, a `wait` that is not a
    /// duration): running it fails with this error, as the backend would, and is not retried.
    Invalid(ActionError),
}

/// An action rendered: the typed action, and the display view the journal shows.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub action: RenderedAction,
    pub display: Value,
}

/// Renders an action against the context: the typed action (real values) and its display view.
pub fn render(action: &Action, real_ctx: &Value, display_ctx: &Value) -> Result<Rendered, String> {
    let (real, display) = render_views(action, real_ctx, display_ctx)?;
    Ok(Rendered {
        action: typed(action, real),
        display,
    })
}

/// The rendered tree as the typed action of its kind. A tree that does not fit, or arguments
/// that fail their verb's validation, give `RenderedAction::Invalid` with the error the step
/// fails with.
fn typed(action: &Action, real: Value) -> RenderedAction {
    fn de<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, ActionError> {
        serde_json::from_value(v)
            .map_err(|e| ActionError::new(ErrorKind::Invalid, format!("{what}: {e}")))
    }
    let r = match &action.kind {
        ActionKind::Shell(_) => de("shell action after rendering", real).map(RenderedAction::Shell),
        ActionKind::Http(_) => de("http action after rendering", real).map(RenderedAction::Http),
        ActionKind::Kubernetes { verb } => {
            KubeCall::parse(verb.as_str(), &real[verb.as_str()]).map(RenderedAction::Kubernetes)
        }
        ActionKind::Compose { verb } => {
            ComposeCall::parse(verb.as_str(), &real[verb.as_str()]).map(RenderedAction::Compose)
        }
        ActionKind::Prometheus(_) => de("prometheus action after rendering", real)
            .and_then(|a| prom_query(&a))
            .map(RenderedAction::Prometheus),
        ActionKind::Wait(Some(d)) => Ok(RenderedAction::Wait(*d)),
        ActionKind::Wait(None) => wait_duration(&real).map(RenderedAction::Wait),
        ActionKind::Assert(conditions) => Ok(RenderedAction::Assert(conditions.clone())),
        ActionKind::Confirm(_) => Ok(RenderedAction::Confirm),
        ActionKind::Manual(_) => Ok(RenderedAction::Manual),
        ActionKind::Input(_) => de("input step", real).map(RenderedAction::Input),
        ActionKind::Call(child) => {
            de::<spec::CallAction>("call", real).map(|c| RenderedAction::Call {
                runbook: child.clone(),
                inputs: c.inputs,
            })
        }
        ActionKind::Analysis { interval, .. } => {
            de("analysis", real).map(|spec| RenderedAction::Analysis {
                interval: *interval,
                spec,
            })
        }
    };
    r.unwrap_or_else(RenderedAction::Invalid)
}

/// A Prometheus action's query, its range parsed (the step defaults to a 60th of `last`, at
/// least 1s).
fn prom_query(a: &spec::PrometheusAction) -> Result<PromQuery, ActionError> {
    let range = match &a.range {
        None => None,
        Some(r) => {
            let last = parse_duration(&r.last)
                .map_err(|e| ActionError::new(ErrorKind::Invalid, format!("`range.last`: {e}")))?;
            let step = match &r.step {
                Some(s) => parse_duration(s).map_err(|e| {
                    ActionError::new(ErrorKind::Invalid, format!("`range.step`: {e}"))
                })?,
                None => (last / 60).max(Duration::from_secs(1)),
            };
            if step.is_zero() {
                return Err(ActionError::new(
                    ErrorKind::Invalid,
                    "`range.step` must be more than zero",
                ));
            }
            Some(PromRange { last, step })
        }
    };
    Ok(PromQuery {
        query: a.query.clone(),
        range,
        name: None,
    })
}

/// The action's two views as JSON: real (what the backend gets) and display.
fn render_views(
    action: &Action,
    real_ctx: &Value,
    display_ctx: &Value,
) -> Result<(Value, Value), String> {
    // Shell scripts are never templates: drop them from rendering and put them back as-is.
    let mut body = action.body.clone();
    let script = match (&action.kind, body.as_object_mut()) {
        (ActionKind::Shell(_), Some(m)) => m.remove("script"),
        _ => None,
    };
    // URLs render apart: a value never changes their shape (`template::render_url`).
    let mut urls = vec![];
    if let (ActionKind::Http(_), Some(req)) = (
        &action.kind,
        body.get_mut("request").and_then(Value::as_object_mut),
    ) {
        for (field, start) in [("url", UrlStart::Url), ("path", UrlStart::Path)] {
            // Left in place (as null) so the field keeps its position in the body.
            if let Some(v) = req.get_mut(field).filter(|v| v.is_string()) {
                if let Value::String(src) = v.take() {
                    urls.push((field, start, src));
                }
            }
        }
    }
    let mut real = template::render_value(&body, real_ctx)?;
    let mut display = template::render_value(&body, display_ctx)?;
    for (field, start, src) in urls {
        let r =
            template::render_url(&src, real_ctx, start).map_err(|e| format!("`{field}`: {e}"))?;
        let d = template::render_url(&src, display_ctx, start)
            .map_err(|e| format!("`{field}`: {e}"))?;
        real["request"][field] = Value::String(r);
        display["request"][field] = Value::String(d);
    }
    if let Some(def) = action_def(&action.kind) {
        spec::coerce_to_schema(def, &mut real);
        spec::coerce_to_schema(def, &mut display);
    }
    if let Some(s) = script {
        real["script"] = s.clone();
        display["script"] = s;
    }
    Ok((real, display))
}

/// The action as a plan shows it: rendered against the plan's placeholder context, with any
/// string that needs run-time values left as its template source (see
/// `template::render_value_lenient`).
pub fn render_for_plan(action: &Action, display_ctx: &Value) -> Value {
    if let Ok((_, display)) = render_views(action, display_ctx, display_ctx) {
        return display;
    }
    let mut display = template::render_value_lenient(&action.body, display_ctx);
    if let Some(def) = action_def(&action.kind) {
        spec::coerce_to_schema(def, &mut display);
    }
    if let (ActionKind::Shell(_), Some(s)) = (&action.kind, action.body.get("script")) {
        display["script"] = s.clone();
    }
    display
}

/// The duration of a templated `wait`, from its rendered value (`30s`, `5m`, `1h30m`).
fn wait_duration(rendered: &Value) -> Result<Duration, ActionError> {
    let text = match rendered {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    crate::model::parse_duration(&text).map_err(|e| {
        ActionError::new(
            ErrorKind::Invalid,
            format!("`wait` rendered to something that is not a duration: {e}"),
        )
    })
}

/// The schema definition an action's body follows.
fn action_def(kind: &ActionKind) -> Option<&'static str> {
    Some(match kind {
        ActionKind::Shell(_) => "ShellAction",
        ActionKind::Http(_) => "HttpAction",
        ActionKind::Kubernetes { .. } => "KubernetesAction",
        ActionKind::Compose { .. } => "ComposeAction",
        ActionKind::Confirm(_) => "ConfirmAction",
        ActionKind::Manual(_) => "ManualAction",
        ActionKind::Input(_) => "InputAction",
        ActionKind::Call(_) => "CallAction",
        ActionKind::Prometheus(_) => "PrometheusAction",
        ActionKind::Analysis { .. } => "AnalysisAction",
        ActionKind::Wait(_) | ActionKind::Assert(_) => return None,
    })
}

/// Renders a backend's settings (templates over inputs, secrets, env).
pub fn render_backend(spec: &BackendSpec, ctx: &Value) -> Result<BackendSpec, String> {
    let mut v = serde_json::to_value(spec).map_err(|e| e.to_string())?;
    let base = v
        .pointer_mut("/http/base_url")
        .map(Value::take)
        .and_then(|b| b.as_str().map(str::to_string));
    let mut r = template::render_value(&v, ctx)?;
    if let Some(b) = base {
        r["http"]["base_url"] = Value::String(
            template::render_url(&b, ctx, UrlStart::Url).map_err(|e| format!("`base_url`: {e}"))?,
        );
    }
    spec::coerce_to_schema("BackendSpec", &mut r);
    serde_json::from_value(r).map_err(|e| format!("backend settings after rendering: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::KubeVerb;
    use serde_json::json;

    /// A model action of each kind, as `check` builds it: the typed spec deserialized from the
    /// body as written (this module cannot use `check`: it sits below it).
    fn action(field: &str, body: Value) -> Action {
        fn de<T: DeserializeOwned>(v: &Value) -> T {
            serde_json::from_value(v.clone()).unwrap()
        }
        let kind = match field {
            "shell" => ActionKind::Shell(Box::new(de(&body))),
            "http" => ActionKind::Http(Box::new(de(&body))),
            "kubernetes" => ActionKind::Kubernetes {
                verb: KubeVerb::parse(body.as_object().unwrap().keys().next().unwrap()).unwrap(),
            },
            "compose" => ActionKind::Compose {
                verb: crate::backends::ComposeVerb::parse(
                    body.as_object().unwrap().keys().next().unwrap(),
                )
                .unwrap(),
            },
            "prometheus" => ActionKind::Prometheus(Box::new(de(&body))),
            "wait" => ActionKind::Wait(None),
            "assert" => ActionKind::Assert(de(&body)),
            "confirm" => ActionKind::Confirm(de(&body)),
            "manual" => ActionKind::Manual(de(&body)),
            "input" => ActionKind::Input(Box::new(de(&body))),
            "call" => ActionKind::Call(Arc::new(Runbook {
                file: "child.yaml".into(),
                path: "child.yaml".into(),
                sha256: String::new(),
                spec: de(&json!({
                    "apiVersion": "runbook/v1", "kind": "Runbook",
                    "metadata": { "name": "child", "title": "Child" }, "steps": [],
                })),
                mttr_target: None,
                steps: vec![],
                on_failure: vec![],
            })),
            "analysis" => ActionKind::Analysis {
                interval: Duration::from_secs(60),
                spec: Box::new(de(&body)),
            },
            other => panic!("{other}"),
        };
        Action {
            kind,
            backend: None,
            body,
        }
    }

    fn ctxs(inputs: Value) -> (Value, Value) {
        (
            json!({ "inputs": inputs, "secrets": { "token": "s3cret" } }),
            json!({ "inputs": inputs, "secrets": { "token": "***" } }),
        )
    }

    fn rendered(a: &Action, inputs: Value) -> Rendered {
        let (real, display) = ctxs(inputs);
        render(a, &real, &display).unwrap()
    }

    fn yaml(text: &str) -> Value {
        crate::yaml::parse_str("t.yaml", text).unwrap().value
    }

    fn defaults() -> Value {
        json!({ "ns": "web", "path": "x", "n": 3, "image": "app:1", "settle": "30s" })
    }

    #[test]
    fn every_kind_renders_to_its_typed_action() {
        let r = |field: &str, body: &str| rendered(&action(field, yaml(body)), defaults());

        let RenderedAction::Shell(sh) = r(
            "shell",
            r#"{ argv: [kubectl, -n, "{{ inputs.ns }}", get, pods] }"#,
        )
        .action
        else {
            panic!("shell")
        };
        assert_eq!(sh.argv.unwrap(), ["kubectl", "-n", "web", "get", "pods"]);
        // A script is never rendered, even where it looks like a template.
        let RenderedAction::Shell(script) = r(
            "shell",
            r#"{ script: "echo \"$NS\" '{{ x }}'", env: { NS: "{{ inputs.ns }}" } }"#,
        )
        .action
        else {
            panic!("script")
        };
        assert_eq!(script.script.as_deref(), Some("echo \"$NS\" '{{ x }}'"));
        assert_eq!(script.env["NS"], "web");

        let web = r(
            "http",
            r#"{ request: { url: "https://api.example/v1/{{ inputs.path }}", headers: { authorization: "Bearer {{ secrets.token }}" } } }"#,
        );
        let RenderedAction::Http(h) = &web.action else {
            panic!("http")
        };
        assert_eq!(h.request.url.as_deref(), Some("https://api.example/v1/x"));
        // The backend gets the secret; the display view never shows it.
        assert_eq!(h.request.headers["authorization"], "Bearer s3cret");
        assert_eq!(
            web.display["request"]["headers"]["authorization"],
            "Bearer ***"
        );

        let RenderedAction::Kubernetes(KubeCall::Scale(s)) = r(
            "kubernetes",
            r#"{ scale: { name: web, replicas: "{{ inputs.n }}" } }"#,
        )
        .action
        else {
            panic!("scale")
        };
        assert_eq!(s.replicas, spec::IntOrTemplate::Int(3));
        let RenderedAction::Compose(ComposeCall::SetImage(c)) = r(
            "compose",
            r#"{ set_image: { service: web, image: "{{ inputs.image }}" } }"#,
        )
        .action
        else {
            panic!("compose")
        };
        assert_eq!((c.service.as_str(), c.image.as_str()), ("web", "app:1"));

        let RenderedAction::Prometheus(q) = r(
            "prometheus",
            r#"{ query: "rate(x[5m])", range: { last: 15m } }"#,
        )
        .action
        else {
            panic!("prometheus")
        };
        assert_eq!(
            q.range,
            Some(PromRange {
                last: Duration::from_secs(900),
                step: Duration::from_secs(15)
            })
        );
        assert!(matches!(
            r("wait", r#""{{ inputs.settle }}""#).action,
            RenderedAction::Wait(d) if d == Duration::from_secs(30)
        ));
        let RenderedAction::Assert(conds) = r(
            "assert",
            r#"[ { that: "steps.sh.outcome == 'succeeded'" } ]"#,
        )
        .action
        else {
            panic!("assert")
        };
        assert_eq!(conds[0].that, "steps.sh.outcome == 'succeeded'");

        let ok = r("confirm", r#"{ prompt: "Go on in {{ inputs.ns }}?" }"#);
        assert!(matches!(ok.action, RenderedAction::Confirm));
        assert_eq!(ok.display["prompt"], "Go on in web?");
        assert!(matches!(
            r("manual", "{ instructions: Tell ops }").action,
            RenderedAction::Manual
        ));
        let RenderedAction::Input(i) = r(
            "input",
            r#"{ prompt: "Which revision?", type: integer, minimum: 1 }"#,
        )
        .action
        else {
            panic!("input")
        };
        assert_eq!((i.kind, i.minimum), (spec::InputType::Integer, Some(1.0)));

        let RenderedAction::Call { runbook, inputs } = r(
            "call",
            r#"{ runbook: child.yaml, inputs: { n: "{{ inputs.n }}" } }"#,
        )
        .action
        else {
            panic!("call")
        };
        assert_eq!(runbook.name(), "child");
        assert_eq!(inputs["n"], json!(3));

        let RenderedAction::Analysis { interval, spec } = r(
            "analysis",
            r#"{ interval: 1m, checks: 3, failed_checks: 1, metrics: [ { name: errors, query: "errors{ns=\"{{ inputs.ns }}\"}", max: 1 } ] }"#,
        )
        .action
        else {
            panic!("analysis")
        };
        assert_eq!(interval, Duration::from_secs(60));
        assert_eq!(spec.metrics[0].query, "errors{ns=\"web\"}");
    }

    #[test]
    fn a_value_never_changes_the_shape_of_a_url() {
        let web = action(
            "http",
            yaml(r#"{ request: { url: "https://api.example/v1/items/{{ inputs.path }}" } }"#),
        );
        let mut inputs = defaults();
        inputs["path"] = json!("a?admin=1#x");
        let RenderedAction::Http(h) = rendered(&web, inputs.clone()).action else {
            panic!("http")
        };
        let url = h.request.url.unwrap();
        assert!(url.starts_with("https://api.example/v1/items/a"), "{url}");
        assert!(!url.contains('?') && !url.contains('#'), "{url}");
        // A value that would climb out of the path is not rendered at all.
        inputs["path"] = json!("../admin");
        let (real, display) = ctxs(inputs);
        let e = render(&web, &real, &display).unwrap_err();
        assert!(e.contains("`..`"), "{e}");
    }

    #[test]
    fn arguments_the_backend_rejects_render_to_its_error() {
        let mut inputs = defaults();
        inputs["image"] = json!("");
        inputs["settle"] = json!("soon");
        let image = action(
            "kubernetes",
            yaml(r#"{ set_image: { name: web, container: app, image: "{{ inputs.image }}" } }"#),
        );
        let RenderedAction::Invalid(e) = rendered(&image, inputs.clone()).action else {
            panic!("an empty image is invalid")
        };
        assert_eq!(e.message, "kubernetes.set_image: `image` is empty");
        assert_eq!(e.kind, ErrorKind::Invalid);
        let settle = action("wait", yaml(r#""{{ inputs.settle }}""#));
        let RenderedAction::Invalid(e) = rendered(&settle, inputs).action else {
            panic!("`soon` is not a duration")
        };
        assert!(
            e.message
                .starts_with("`wait` rendered to something that is not a duration"),
            "{}",
            e.message
        );
    }
}
