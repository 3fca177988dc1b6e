//! Turns a model action plus the run context into a backend call: renders its templates
//! (once, as data), builds the typed request, and dispatches it to the right backend.
//! The same rendering feeds `plan`, so what the plan shows is what the run sends.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backends::prometheus::{PromQuery, PromRange, PromTarget};
use crate::backends::{
    ActionError, Backends, CallCtx, ComposeVerb, ErrorKind, HttpRequest, KubeVerb, Output,
    ShellRequest,
};
use crate::model::{fmt_duration, parse_duration, Action, ActionKind, Runbook};
use crate::spec::{self, BackendSpec};
use crate::template::{self, UrlStart};

/// An action with its templates rendered: `real` goes to the backend, `display` is shown.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub real: Value,
    pub display: Value,
}

/// Renders an action body against the context (real and display views).
pub fn render(action: &Action, real_ctx: &Value, display_ctx: &Value) -> Result<Rendered, String> {
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
    Ok(Rendered { real, display })
}

/// The action as a plan shows it: rendered against the plan's placeholder context, with any
/// string that needs run-time values left as its template source (see
/// `template::render_value_lenient`).
pub fn render_for_plan(action: &Action, display_ctx: &Value) -> Value {
    if let Ok(r) = render(action, display_ctx, display_ctx) {
        return r.display;
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

/// A one-line human summary of a rendered action: the argv, `GET url`, the verb and object.
pub fn summary(kind: &ActionKind, body: &Value, rb: &Runbook) -> String {
    match kind {
        ActionKind::Shell(_) => {
            if let Some(argv) = body.get("argv").and_then(Value::as_array) {
                argv.iter()
                    .map(|a| shell_quote(a.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                let script = body
                    .get("script")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let first = script.trim().lines().next().unwrap_or_default();
                let more = if script.trim().lines().count() > 1 {
                    " …"
                } else {
                    ""
                };
                format!("sh -c '{first}{more}'")
            }
        }
        ActionKind::Http(_) => {
            let req = &body["request"];
            let method = req.get("method").and_then(Value::as_str).unwrap_or("GET");
            let url = http_url(body, rb).unwrap_or_else(|e| e);
            format!("{method} {url}")
        }
        ActionKind::Kubernetes { verb } => {
            let args = &body[verb.as_str()];
            let kind = args
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Deployment");
            let name = args.get("name").and_then(Value::as_str).unwrap_or("");
            let ns = args
                .get("namespace")
                .and_then(Value::as_str)
                .map(|n| format!(" -n {n}"))
                .unwrap_or_default();
            let detail = match *verb {
                KubeVerb::SetImage => format!(
                    " image={}",
                    args.get("image").and_then(Value::as_str).unwrap_or("?")
                ),
                KubeVerb::Scale => format!(
                    " replicas={}",
                    args.get("replicas").map(value_text).unwrap_or_default()
                ),
                KubeVerb::SetEnv => {
                    let set: Vec<String> = args
                        .get("set")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", value_text(v)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let unset: Vec<String> = args
                        .get("unset")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(|k| format!("{}-", value_text(k))).collect())
                        .unwrap_or_default();
                    format!(
                        " {}",
                        set.into_iter().chain(unset).collect::<Vec<_>>().join(" ")
                    )
                }
                KubeVerb::RolloutUndo => args
                    .get("to_revision")
                    .map(|r| format!(" to revision {}", value_text(r)))
                    .unwrap_or_else(|| " to the previous revision".into()),
                KubeVerb::List => args
                    .get("selector")
                    .and_then(Value::as_str)
                    .map(|s| format!(" -l {s}"))
                    .unwrap_or_default(),
                KubeVerb::Apply => {
                    return match args.get("file").and_then(Value::as_str) {
                        Some(f) => format!("kubernetes apply (server-side) -f {f}"),
                        None => {
                            let m = &args["manifest"];
                            format!(
                                "kubernetes apply (server-side) {} {}",
                                m.get("kind").and_then(Value::as_str).unwrap_or("?"),
                                m.pointer("/metadata/name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("?")
                            )
                        }
                    }
                }
                _ => String::new(),
            };
            let name_part = if name.is_empty() {
                String::new()
            } else {
                format!("/{name}")
            };
            format!("kubernetes {verb} {kind}{name_part}{ns}{detail}")
        }
        ActionKind::Compose { verb } => {
            let args = &body[verb.as_str()];
            let services: Vec<String> = args
                .get("services")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(value_text).collect())
                .unwrap_or_default();
            match *verb {
                ComposeVerb::SetImage => format!(
                    "compose set_image {} → {}",
                    args.get("service").and_then(Value::as_str).unwrap_or("?"),
                    args.get("image").and_then(Value::as_str).unwrap_or("?")
                ),
                _ => format!("compose {verb} {}", services.join(" "))
                    .trim_end()
                    .to_string(),
            }
        }
        ActionKind::Confirm(_) => format!(
            "confirm: {}",
            body.get("prompt").and_then(Value::as_str).unwrap_or("")
        ),
        ActionKind::Manual(_) => format!(
            "manual: {}",
            first_line(
                body.get("instructions")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        ),
        ActionKind::Input(_) => format!(
            "input: {}",
            body.get("prompt").and_then(Value::as_str).unwrap_or("")
        ),
        ActionKind::Wait(Some(d)) => format!("wait {}", fmt_duration(*d)),
        ActionKind::Wait(None) => match body {
            Value::String(s) => format!("wait {s}"),
            other => format!("wait {other}"),
        },
        ActionKind::Assert(_) => {
            let n = body.as_array().map_or(0, Vec::len);
            format!("assert {n} condition{}", if n == 1 { "" } else { "s" })
        }
        ActionKind::Call(child) => format!(
            "call {} ({})",
            child.name(),
            body.get("runbook").and_then(Value::as_str).unwrap_or("")
        ),
        ActionKind::Prometheus(_) => {
            let q = body.get("query").and_then(Value::as_str).unwrap_or("");
            match body.get("range") {
                Some(r) => format!(
                    "prometheus range query `{q}` over the last {}",
                    r.get("last").map(value_text).unwrap_or_default()
                ),
                None => format!("prometheus query `{q}`"),
            }
        }
        ActionKind::Analysis { interval, .. } => {
            let names: Vec<String> = body
                .get("metrics")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .map(|x| x.get("name").map(value_text).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "analysis of {} every {} ({} checks, fails at {} failed)",
                names.join(", "),
                fmt_duration(*interval),
                body.get("checks").map(value_text).unwrap_or_default(),
                body.get("failed_checks")
                    .map(value_text)
                    .unwrap_or_default()
            )
        }
    }
}

fn first_line(s: &str) -> String {
    let t = s.trim();
    let line = t.lines().next().unwrap_or_default();
    if t.lines().count() > 1 {
        format!("{line} …")
    } else {
        line.to_string()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The one-line summary of a rendered action. An HTTP `path` is shown joined to its backend's
/// `base_url` rendered like the rest of the plan (a base URL may be a template).
pub fn display_summary(rb: &Runbook, action: &Action, rendered: &Value, display: &Value) -> String {
    let mut body = rendered.clone();
    if matches!(action.kind, ActionKind::Http(_)) && body.pointer("/request/url").is_none() {
        let base = action
            .backend
            .as_ref()
            .and_then(|b| rb.spec.backends.get(b))
            .and_then(|b| render_backend(b, display).ok())
            .and_then(|b| b.http)
            .and_then(|h| h.base_url);
        let path = body.pointer("/request/path").and_then(Value::as_str);
        if let (Some(base), Some(path)) = (base, path) {
            body["request"]["url"] = Value::String(format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.trim_start_matches('/')
            ));
        }
    }
    summary(&action.kind, &body, rb)
}

/// Quotes an argument for display only (commands never go through a shell).
pub fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// The full URL of an HTTP action (base_url + path, or url), with query parameters.
pub fn http_url(body: &Value, rb: &Runbook) -> Result<String, String> {
    let req = &body["request"];
    let base = match req.get("url").and_then(Value::as_str) {
        Some(u) => u.to_string(),
        None => {
            let name = body
                .get("backend")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    let http: Vec<&String> = rb
                        .spec
                        .backends
                        .iter()
                        .filter(|(_, b)| b.http.is_some())
                        .map(|(n, _)| n)
                        .collect();
                    (http.len() == 1).then(|| http[0].clone())
                });
            let base = name
                .and_then(|n| {
                    rb.spec
                        .backends
                        .get(&n)
                        .and_then(|b| b.http.as_ref())
                        .and_then(|h| h.base_url.clone())
                })
                .ok_or_else(|| "<no base_url>".to_string())?;
            let path = req.get("path").and_then(Value::as_str).unwrap_or("");
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        }
    };
    let query = req.get("query").and_then(Value::as_object);
    match query {
        Some(q) if !q.is_empty() => {
            let mut url =
                reqwest::Url::parse(&base).map_err(|e| format!("bad URL `{base}`: {e}"))?;
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in q {
                    pairs.append_pair(k, &value_text(v));
                }
            }
            Ok(url.to_string())
        }
        _ => Ok(base),
    }
}

/// Everything `execute` needs about the run.
pub struct Env<'a> {
    pub rb: &'a Runbook,
    /// Backends with their templates rendered (real secrets).
    pub backends_real: &'a indexmap::IndexMap<String, BackendSpec>,
    pub backends: &'a Backends,
    pub input_env: Vec<(String, String)>,
    pub step_timeout: Option<Duration>,
    /// The run's secrets: an HTTP header or body that holds one never goes to another origin.
    pub redactor: &'a crate::exec::redact::Redactor,
}

/// Runs a rendered action on its backend. `step_has_verify` changes what an HTTP status means.
pub async fn execute(
    kind: &ActionKind,
    backend: Option<&str>,
    real: &Value,
    env: &Env<'_>,
    ctx: &CallCtx,
    step_has_verify: bool,
) -> Result<Output, ActionError> {
    match kind {
        ActionKind::Shell(_) => {
            let a: spec::ShellAction = serde_json::from_value(real.clone()).map_err(|e| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("shell action after rendering: {e}"),
                )
            })?;
            let backend_spec = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.shell.clone())
                .unwrap_or_default();
            let mut envs: Vec<(String, String)> = env.input_env.clone();
            envs.extend(backend_spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            envs.extend(a.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            let cwd = a
                .cwd
                .clone()
                .or(backend_spec.cwd.clone())
                .map(|c| resolve(&ctx.base_dir, &c));
            let (argv, is_script) = match (&a.argv, &a.script) {
                (Some(argv), _) => (argv.clone(), false),
                (None, Some(s)) => (vec!["sh".into(), "-c".into(), s.clone()], true),
                (None, None) => {
                    return Err(ActionError::new(
                        ErrorKind::Invalid,
                        "shell action without argv or script",
                    ))
                }
            };
            let req = ShellRequest {
                argv,
                cwd,
                env: envs,
                stdin: a.stdin.clone(),
                expect_exit: a.expect_exit.clone(),
                is_script,
            };
            env.backends.shell.run(&req, ctx).await
        }
        ActionKind::Http(_) => {
            let a: spec::HttpAction = serde_json::from_value(real.clone()).map_err(|e| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("http action after rendering: {e}"),
                )
            })?;
            let backend_spec = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.http.clone())
                .unwrap_or_default();
            // Build the URL from the rendered backend (its base_url may be a template).
            let mut rb_view = real.clone();
            if a.request.url.is_none() {
                let base = backend_spec.base_url.clone().unwrap_or_default();
                let path = a.request.path.clone().unwrap_or_default();
                rb_view["request"]["url"] = Value::String(format!(
                    "{}/{}",
                    base.trim_end_matches('/'),
                    path.trim_start_matches('/')
                ));
            }
            let url =
                http_url(&rb_view, env.rb).map_err(|e| ActionError::new(ErrorKind::Invalid, e))?;
            let mut headers: Vec<(String, String)> = backend_spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            headers.extend(
                a.request
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let body = match (&a.request.json, &a.request.body) {
                (Some(j), _) => {
                    if !headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        headers.push(("content-type".into(), "application/json".into()));
                    }
                    Some(serde_json::to_vec(j).unwrap_or_default())
                }
                (None, Some(b)) => Some(b.as_bytes().to_vec()),
                _ => None,
            };
            let secret_headers = headers
                .iter()
                .filter(|(_, v)| env.redactor.holds_secret(v))
                .map(|(k, _)| k.clone())
                .collect();
            let body_holds_secret = body
                .as_deref()
                .is_some_and(|b| env.redactor.holds_secret(&String::from_utf8_lossy(b)));
            let timeout = backend_spec
                .timeout
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .or(env.step_timeout);
            let req = HttpRequest {
                method: a
                    .request
                    .method
                    .unwrap_or(spec::HttpMethod::GET)
                    .as_str()
                    .to_string(),
                url,
                headers,
                body,
                timeout,
                ca_file: backend_spec
                    .ca_file
                    .as_ref()
                    .map(|c| resolve(&ctx.base_dir, c)),
                follow_redirects: backend_spec.follow_redirects,
                secret_headers,
                body_holds_secret,
            };
            let out = env.backends.http.send(&req, ctx).await?;
            let status = out
                .result
                .get("status")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u16;
            let ok = if !a.expect_status.is_empty() {
                a.expect_status.contains(&status)
            } else {
                step_has_verify || (200..300).contains(&status)
            };
            if ok {
                Ok(out)
            } else {
                let body = out.result.get("body").and_then(Value::as_str).unwrap_or("");
                let snippet: String = body.chars().take(200).collect();
                let expected = if a.expect_status.is_empty() {
                    "200-299".to_string()
                } else {
                    format!("{:?}", a.expect_status)
                };
                let detail = match out.result.get("redirect") {
                    Some(r) => format!(
                        "a redirect to {} that was not followed: {}",
                        r["location"].as_str().unwrap_or_default(),
                        r["reason"].as_str().unwrap_or_default()
                    ),
                    None => snippet.trim().to_string(),
                };
                let at = out
                    .result
                    .get("url")
                    .and_then(Value::as_str)
                    .map(|u| format!(" (redirected to {u})"))
                    .unwrap_or_default();
                Err(ActionError::new(
                    ErrorKind::Failed,
                    format!(
                        "{} {}{at} returned {status} (expected {expected}): {detail}",
                        req.method, req.url,
                    ),
                )
                .with_result(out.result))
            }
        }
        ActionKind::Kubernetes { verb } => {
            let target = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.kubernetes.clone())
                .unwrap_or_default();
            let call = crate::backends::KubeCall::parse(verb.as_str(), &real[verb.as_str()])?;
            env.backends.kubernetes.call(&target, &call, ctx).await
        }
        ActionKind::Compose { verb } => {
            let target = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.compose.clone())
                .unwrap_or_default();
            let call = crate::backends::ComposeCall::parse(verb.as_str(), &real[verb.as_str()])?;
            env.backends.compose.call(&target, &call, ctx).await
        }
        ActionKind::Wait(d) => {
            let d = match d {
                Some(d) => *d,
                None => wait_duration(real)?,
            };
            if let Some(rem) = ctx.remaining().filter(|rem| *rem < d) {
                ctx.clock.sleep(rem).await;
                return Err(ActionError::new(
                    ErrorKind::Timeout,
                    format!(
                        "wait of {} is longer than the step timeout",
                        fmt_duration(d)
                    ),
                ));
            }
            tokio::select! {
                _ = ctx.clock.sleep(d) => Ok(json!({ "waited_ms": d.as_millis() as u64 }).into()),
                _ = ctx.cancel.cancelled() => Err(ActionError::new(ErrorKind::Cancelled, "wait interrupted")),
            }
        }
        ActionKind::Prometheus(_) => {
            let a: spec::PrometheusAction = serde_json::from_value(real.clone()).map_err(|e| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("prometheus action after rendering: {e}"),
                )
            })?;
            let target = prom_target(backend, env, ctx)?;
            let range = match &a.range {
                None => None,
                Some(r) => {
                    let last = parse_duration(&r.last).map_err(|e| {
                        ActionError::new(ErrorKind::Invalid, format!("`range.last`: {e}"))
                    })?;
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
            let q = PromQuery {
                query: a.query.clone(),
                range,
                name: None,
            };
            query_prometheus(env, &target, &q, ctx).await
        }
        other => Err(ActionError::new(
            ErrorKind::Invalid,
            format!("`{}` is not executed by a backend", other.field()),
        )),
    }
}

/// The rendered Prometheus backend of an action.
pub fn prom_target(
    backend: Option<&str>,
    env: &Env<'_>,
    ctx: &CallCtx,
) -> Result<PromTarget, ActionError> {
    let b = backend
        .and_then(|b| env.backends_real.get(b))
        .and_then(|b| b.prometheus.clone())
        .ok_or_else(|| ActionError::new(ErrorKind::Invalid, "no prometheus backend"))?;
    Ok(PromTarget {
        url: b.url.clone(),
        headers: b
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        timeout: b
            .timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
            .or(env.step_timeout),
        ca_file: b.ca_file.as_ref().map(|c| resolve(&ctx.base_dir, c)),
    })
}

/// Runs one query; the result is the typed shape of `prometheus::result_json`. A failed query
/// keeps the query as sent in its message and its result.
pub async fn query_prometheus(
    env: &Env<'_>,
    target: &PromTarget,
    q: &PromQuery,
    ctx: &CallCtx,
) -> Result<Output, ActionError> {
    match env.backends.prometheus.query(target, q, ctx).await {
        Ok(answer) => Ok(crate::backends::prometheus::result_json(q, &answer).into()),
        Err(e) => {
            let r = json!({ "query": q.query, "error": e.message });
            Err(e.with_result(r))
        }
    }
}

fn resolve(base: &std::path::Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}
