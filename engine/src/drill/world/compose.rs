//! The simulated compose projects: services with a configured and a running image, and
//! containers that `up`, `pull`, `down`, `restart`, `stop` and `set_image` change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Value};

use super::{unscripted, Call, Reply, Snapshot, State};
use crate::backends::{ActionError, ErrorKind};
use crate::drill::spec::{ServiceChangeSpec, ServiceState};
use crate::spec::ComposeBackendSpec;

#[derive(Debug, Clone)]
pub struct Service {
    /// The image its container runs.
    pub image: String,
    /// The image the project is configured with (`set_image` changes this; `up` applies it).
    pub configured: String,
    pub state: ServiceState,
    pub logs: String,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub services: IndexMap<String, Service>,
    pub takes: Duration,
    pub crashing: Vec<String>,
    pub unpullable: Vec<String>,
    /// Images present locally.
    pub pulled: BTreeSet<String>,
}

impl Project {
    /// The state a started container of `image` ends up in.
    fn started(&self, image: &str) -> ServiceState {
        if self.crashing.iter().any(|c| c == image) {
            ServiceState::Restarting
        } else {
            ServiceState::Running
        }
    }

    fn health(&self, s: &Service) -> &'static str {
        match s.state {
            ServiceState::Running => "healthy",
            ServiceState::Restarting => "unhealthy",
            _ => "",
        }
    }

    fn row(&self, project: &str, name: &str, s: &Service) -> Value {
        json!({
            "service": name,
            "name": format!("{project}-{name}-1"),
            "image": s.image,
            "state": s.state.as_str(),
            "health": self.health(s),
        })
    }
}

/// Projects by name.
#[derive(Debug, Clone, Default)]
pub struct Projects(pub IndexMap<String, Project>);

impl Projects {
    /// Applies a scripted effect to `project/service`.
    pub fn change(&mut self, key: &str, c: &ServiceChangeSpec) {
        let Some((p, s)) = key.split_once('/') else {
            return;
        };
        let Some(project) = self.0.get_mut(p) else {
            return;
        };
        let started = c.image.as_deref().map(|i| project.started(i));
        if let Some(svc) = project.services.get_mut(s) {
            if let Some(image) = &c.image {
                svc.image = image.clone();
                svc.configured = image.clone();
                svc.state = started.unwrap_or(svc.state);
            }
            if let Some(state) = c.state {
                svc.state = state;
            }
        }
    }

    pub fn snapshot(&self, snap: &mut Snapshot) {
        for (p, project) in &self.0 {
            for (name, s) in &project.services {
                let mut f = BTreeMap::new();
                f.insert("image".into(), json!(s.image));
                f.insert("configured_image".into(), json!(s.configured));
                f.insert("state".into(), json!(s.state.as_str()));
                snap.insert(format!("compose service {p}/{name}"), f);
            }
            let mut f = BTreeMap::new();
            f.insert("pulled".into(), json!(project.pulled));
            snap.insert(format!("compose project {p}"), f);
        }
    }
}

/// `compose up phoenix: master-orchestrator`, for messages.
pub fn describe(target: &ComposeBackendSpec, verb: &str, args: &Value) -> String {
    let mut s = format!("compose {verb}");
    if let Some(p) = &target.project {
        s.push_str(&format!(" {p}"));
    }
    let named: Vec<&str> = args
        .get("services")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .or_else(|| args.get("service").and_then(Value::as_str).map(|s| vec![s]))
        .unwrap_or_default();
    if !named.is_empty() {
        s.push_str(&format!(": {}", named.join(" ")));
    }
    s
}

/// Runs one compose verb against the project the backend names (or the only one).
pub fn call(
    st: &mut State,
    target: &ComposeBackendSpec,
    verb: &str,
    args: &Value,
    c: &Call,
) -> Reply {
    match dispatch(st, target, verb, args, c) {
        Ok(r) => r,
        Err(e) => Reply::err(e),
    }
}

fn dispatch(
    st: &mut State,
    target: &ComposeBackendSpec,
    verb: &str,
    args: &Value,
    c: &Call,
) -> Result<Reply, ActionError> {
    let names: Vec<String> = st.compose.0.keys().cloned().collect();
    let pname = match &target.project {
        Some(p) if names.contains(p) => p.clone(),
        Some(p) => {
            return Err(unscripted(c.what, format!("no compose project `{p}` in the world (it has: {})", names.join(", "))))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(unscripted(c.what, format!(
                "the backend names no `project:` and the world has {} projects ({}); set `project:` on the backend",
                names.len(),
                names.join(", ")
            )))
        }
    };
    let project = st.compose.0.get_mut(&pname).expect("checked above");
    let selected = selected(project, args, c)?;
    let takes = project.takes;
    let rows = |p: &Project| -> Vec<Value> {
        p.services
            .iter()
            .filter(|(_, s)| s.state != ServiceState::Absent)
            .map(|(n, s)| p.row(&pname, n, s))
            .collect()
    };
    match verb {
        "ps" => {
            let services: Vec<Value> = project
                .services
                .iter()
                .filter(|(n, s)| selected.contains(n) && s.state != ServiceState::Absent)
                .map(|(n, s)| project.row(&pname, n, s))
                .collect();
            Ok(Reply::ok(json!({ "services": services })))
        }
        "pull" => {
            let mut pulled = vec![];
            for n in &selected {
                let image = project.services[n].configured.clone();
                pull(project, &image, c)?;
                pulled.push(image);
            }
            Ok(Reply::Answer(Ok(json!({ "pulled": pulled })), takes))
        }
        "up" => {
            let wait = args.get("wait").and_then(Value::as_bool).unwrap_or(false);
            let mut recreated = vec![];
            for n in &selected {
                let configured = project.services[n].configured.clone();
                pull(project, &configured, c)?;
                let state = project.started(&configured);
                let s = project.services.get_mut(n).expect("selected");
                let running = matches!(s.state, ServiceState::Running | ServiceState::Restarting);
                if !running || s.image != configured {
                    s.image = configured;
                    s.state = state;
                    recreated.push(n.clone());
                }
            }
            if wait {
                if let Some(n) = selected
                    .iter()
                    .find(|n| project.services[*n].state == ServiceState::Restarting)
                {
                    return Ok(Reply::Answer(
                        Err(ActionError::new(
                            ErrorKind::Failed,
                            format!("container {pname}-{n}-1 is unhealthy"),
                        )
                        .with_result(json!({ "services": rows(project) }))),
                        takes,
                    ));
                }
            }
            Ok(Reply::Answer(
                Ok(json!({ "recreated": recreated, "services": rows(project) })),
                takes,
            ))
        }
        "down" => {
            let mut removed = vec![];
            for (n, s) in project.services.iter_mut() {
                if s.state != ServiceState::Absent {
                    s.state = ServiceState::Absent;
                    removed.push(n.clone());
                }
            }
            Ok(Reply::Answer(Ok(json!({ "removed": removed })), takes))
        }
        "restart" | "stop" => {
            for n in &selected {
                let image = project.services[n].image.clone();
                let started = project.started(&image);
                let s = project.services.get_mut(n).expect("selected");
                if s.state == ServiceState::Absent {
                    return Err(ActionError::new(
                        ErrorKind::Failed,
                        format!("{}: service `{n}` has no container", c.what),
                    ));
                }
                s.state = if verb == "stop" {
                    ServiceState::Exited
                } else {
                    started
                };
            }
            Ok(Reply::Answer(
                Ok(json!({ "services": rows(project) })),
                takes,
            ))
        }
        "logs" => {
            let tail = args.get("tail").and_then(Value::as_u64).unwrap_or(100) as usize;
            let mut out = String::new();
            for n in &selected {
                let text = &project.services[n].logs;
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(tail)..] {
                    out.push_str(&format!("{pname}-{n}-1  | {l}\n"));
                }
            }
            Ok(Reply::ok(json!({ "logs": out })))
        }
        "set_image" => {
            let service = args
                .get("service")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let image = args
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let known: Vec<String> = project.services.keys().cloned().collect();
            let Some(s) = project.services.get_mut(&service) else {
                return Err(unscripted(
                    c.what,
                    format!(
                        "no service `{service}` in project `{pname}` (it has: {})",
                        known.join(", ")
                    ),
                ));
            };
            let previous = std::mem::replace(&mut s.configured, image.clone());
            Ok(Reply::ok(
                json!({ "service": service, "image": image, "previous_image": previous }),
            ))
        }
        other => Err(unscripted(
            c.what,
            format!("the drill world does not simulate `{other}`"),
        )),
    }
}

fn pull(project: &mut Project, image: &str, c: &Call) -> Result<(), ActionError> {
    if project.unpullable.iter().any(|u| u == image) {
        return Err(ActionError::new(
            ErrorKind::Failed,
            format!("{}: pull access denied for {image}: repository does not exist or may require login", c.what),
        ));
    }
    project.pulled.insert(image.to_string());
    Ok(())
}

/// The services an action names (all when it names none); unknown names are an error.
fn selected(project: &Project, args: &Value, c: &Call) -> Result<Vec<String>, ActionError> {
    let named: Vec<String> = args
        .get("services")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if named.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    for n in &named {
        if !project.services.contains_key(n) {
            let known: Vec<&str> = project.services.keys().map(String::as_str).collect();
            return Err(unscripted(
                c.what,
                format!(
                    "no service `{n}` in the project (it has: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(named)
}
