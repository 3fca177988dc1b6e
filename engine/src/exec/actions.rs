//! Runs a rendered action on its backend: builds the backend's typed request (the action's
//! rendered arguments with its backend's settings: cwd, env, base URL, headers, timeouts) and
//! dispatches on the `RenderedAction`. Rendering is `render`; the one-line text is `summary`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backends::prometheus::{PromQuery, PromTarget};
use crate::backends::{
    ActionError, Backends, CallCtx, ErrorKind, HttpRequest, Output, ShellRequest,
};
use crate::model::{fmt_duration, parse_duration, Runbook};
use crate::spec::{self, BackendSpec};

pub use super::render::{render, render_backend, render_for_plan, Rendered, RenderedAction};
pub use super::summary::{display_summary, http_url, shell_quote, summary};

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
    action: &RenderedAction,
    backend: Option<&str>,
    env: &Env<'_>,
    ctx: &CallCtx,
    step_has_verify: bool,
) -> Result<Output, ActionError> {
    match action {
        RenderedAction::Invalid(e) => Err(e.clone()),
        RenderedAction::Shell(a) => {
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
        RenderedAction::Http(a) => {
            let backend_spec = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.http.clone())
                .unwrap_or_default();
            // Build the URL from the rendered backend (its base_url may be a template).
            let url = request_url(&a.request, backend_spec.base_url.as_deref())
                .map_err(|e| ActionError::new(ErrorKind::Invalid, e))?;
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
        RenderedAction::Kubernetes(call) => {
            let target = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.kubernetes.clone())
                .unwrap_or_default();
            env.backends.kubernetes.call(&target, call, ctx).await
        }
        RenderedAction::Compose(call) => {
            let target = backend
                .and_then(|b| env.backends_real.get(b))
                .and_then(|b| b.compose.clone())
                .unwrap_or_default();
            env.backends.compose.call(&target, call, ctx).await
        }
        RenderedAction::Wait(d) => {
            let d = *d;
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
        RenderedAction::Prometheus(q) => {
            let target = prom_target(backend, env, ctx)?;
            query_prometheus(env, &target, q, ctx).await
        }
        RenderedAction::Assert(_)
        | RenderedAction::Confirm
        | RenderedAction::Manual
        | RenderedAction::Input(_)
        | RenderedAction::Call { .. }
        | RenderedAction::Analysis { .. } => Err(ActionError::new(
            ErrorKind::Invalid,
            "this action is run by the runner, not by a backend",
        )),
    }
}

/// The full URL of a rendered HTTP request: its `url`, or its `path` joined to the backend's
/// rendered `base_url`, with its query parameters.
fn request_url(req: &spec::HttpRequestSpec, base_url: Option<&str>) -> Result<String, String> {
    let base = match &req.url {
        Some(u) => u.clone(),
        None => format!(
            "{}/{}",
            base_url.unwrap_or_default().trim_end_matches('/'),
            req.path
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
        ),
    };
    if req.query.is_empty() {
        return Ok(base);
    }
    let mut url = reqwest::Url::parse(&base).map_err(|e| format!("bad URL `{base}`: {e}"))?;
    url.query_pairs_mut()
        .extend_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(url.to_string())
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
