//! The one-line text of a rendered action, as the plan, the gates and the view show it: the
//! argv, `GET url`, the verb and its object. Built from the display view only.

use serde_json::Value;

use crate::backends::{ComposeVerb, KubeVerb};
use crate::model::{fmt_duration, Action, ActionKind, Runbook};

use super::render::render_backend;

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
