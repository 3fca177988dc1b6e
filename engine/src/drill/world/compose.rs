//! The simulated compose projects: services with a configured and a running image, and
//! containers that `up`, `pull`, `down`, `restart`, `stop` and `set_image` change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::{unscripted, Call, Reply, Snapshot, State};
use crate::backends::{ActionError, ComposeCall, ErrorKind};
use crate::drill::spec::{ServiceChangeSpec, ServiceState};
use crate::spec::ComposeBackendSpec;

#[derive(Debug, Clone)]
pub struct Service {
    /// The image its container runs.
    pub image: String,
    /// The image the project is configured with (`set_image` changes it).
    pub configured: String,
    /// The image the compose file itself names (`set_image` back to it drops the override).
    pub file_image: String,
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
        let (status, exit_code) = match s.state {
            ServiceState::Running => ("Up", 0),
            ServiceState::Restarting => ("Restarting (1)", 1),
            ServiceState::Exited => ("Exited (0)", 0),
            ServiceState::Absent => ("", 0),
        };
        json!({
            "name": format!("{project}-{name}-1"),
            "service": name,
            "state": s.state.as_str(),
            "status": status,
            "image": s.image,
            "health": self.health(s),
            "exit_code": exit_code,
            "publishers": [],
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
pub fn describe(target: &ComposeBackendSpec, call: &ComposeCall) -> String {
    let mut s = format!("compose {}", call.verb());
    if let Some(p) = &target.project {
        s.push_str(&format!(" {p}"));
    }
    let named = call.services();
    if !named.is_empty() {
        s.push_str(&format!(": {}", named.join(" ")));
    }
    s
}

/// Runs one compose verb against the project the backend names (or the only one).
pub fn call(st: &mut State, target: &ComposeBackendSpec, call: &ComposeCall, c: &Call) -> Reply {
    match dispatch(st, target, call, c) {
        Ok(r) => r,
        Err(e) => Reply::err(e),
    }
}

fn dispatch(
    st: &mut State,
    target: &ComposeBackendSpec,
    call: &ComposeCall,
    c: &Call,
) -> Result<Reply, ActionError> {
    let verb = call.verb().as_str();
    let names: Vec<String> = st.compose.0.keys().cloned().collect();
    let pname = match &target.project {
        Some(p) if names.contains(p) => p.clone(),
        Some(p) => {
            return Err(unscripted(
                c.what,
                format!("no compose project `{p}` in the world (it has: {})", names.join(", ")),
            ))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(unscripted(
                c.what,
                format!(
                    "the backend names no `project:` and the world has {} projects ({}); set `project:` on the backend",
                    names.len(),
                    names.join(", ")
                ),
            ))
        }
    };
    let project = st.compose.0.get_mut(&pname).expect("checked above");
    let run = Cli::new(target, &pname);
    // `set_image` names its service itself, and checks it in the real backend's words.
    let named = match call {
        ComposeCall::SetImage(_) => vec![],
        _ => call.services(),
    };
    let selected = selected(project, &run, verb, &named)?;
    let takes = project.takes;
    // Past the attempt's deadline the real backend kills the compose CLI: the same error, and
    // (a simplification) nothing changed.
    if let Some(rem) = c.ctx.remaining().filter(|rem| *rem < takes) {
        if !matches!(verb, "ps" | "logs") {
            return Ok(Reply::Answer(Err(run.timed_out(verb, &selected, rem)), rem));
        }
    }
    let flag = |on: bool, f: &str| on.then(|| f.to_string());
    match call {
        ComposeCall::Ps(_) => {
            let mut rows: Vec<(String, Value)> = project
                .services
                .iter()
                .filter(|(n, s)| selected.contains(n) && s.state != ServiceState::Absent)
                .map(|(n, s)| (n.clone(), project.row(&pname, n, s)))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let mut r = run.ok(
                &["ps", "--all", "--format", "json"],
                &selected,
                Duration::ZERO,
            );
            if let Some(m) = r.as_object_mut() {
                m.remove("stdout");
            }
            let by_service: Map<String, Value> = rows
                .iter()
                .map(|(n, row)| (n.clone(), row.clone()))
                .collect();
            r["by_service"] = Value::Object(by_service);
            r["services"] = rows.into_iter().map(|(_, row)| row).collect();
            Ok(Reply::ok(r))
        }
        ComposeCall::Pull(_) => {
            for n in &selected {
                let image = project.services[n].configured.clone();
                run.pull(project, &image, &["pull"], &selected, true)?;
            }
            Ok(Reply::Answer(
                Ok(run.ok(&["pull"], &selected, takes)),
                takes,
            ))
        }
        ComposeCall::Up(a) => {
            let detach = a.detach.unwrap_or(true);
            let wait = a.wait;
            let head: Vec<String> = ["up".to_string()]
                .into_iter()
                .chain(flag(detach, "-d"))
                .chain(flag(wait, "--wait"))
                .collect();
            for n in &selected {
                let configured = project.services[n].configured.clone();
                run.pull(project, &configured, &head, &selected, false)?;
                let state = project.started(&configured);
                let s = project.services.get_mut(n).expect("selected");
                let running = matches!(s.state, ServiceState::Running | ServiceState::Restarting);
                if !running || s.image != configured {
                    s.image = configured;
                    s.state = state;
                }
            }
            if wait {
                let unhealthy = selected
                    .iter()
                    .find(|n| project.services[*n].state == ServiceState::Restarting);
                if let Some(n) = unhealthy {
                    let e = run.failed(
                        &head,
                        &selected,
                        &format!("container {pname}-{n}-1 is unhealthy"),
                    );
                    return Ok(Reply::Answer(Err(e), takes));
                }
            }
            Ok(Reply::Answer(Ok(run.ok(&head, &selected, takes)), takes))
        }
        ComposeCall::Down(a) => {
            for s in project.services.values_mut() {
                s.state = ServiceState::Absent;
            }
            let volumes = a.volumes;
            let head: Vec<String> = ["down".to_string()]
                .into_iter()
                .chain(flag(volumes, "-v"))
                .collect();
            Ok(Reply::Answer(Ok(run.ok(&head, &[], takes)), takes))
        }
        ComposeCall::Restart(_) | ComposeCall::Stop(_) => {
            for n in &selected {
                let image = project.services[n].image.clone();
                let started = project.started(&image);
                let s = project.services.get_mut(n).expect("selected");
                if s.state == ServiceState::Absent {
                    // Compose stops and restarts the containers there are: none is no error.
                    continue;
                }
                s.state = if verb == "stop" {
                    ServiceState::Exited
                } else {
                    started
                };
            }
            Ok(Reply::Answer(Ok(run.ok(&[verb], &selected, takes)), takes))
        }
        ComposeCall::Logs(a) => {
            let tail = a.tail.unwrap_or(100) as usize;
            let mut out = String::new();
            for n in &selected {
                let text = &project.services[n].logs;
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(tail)..] {
                    out.push_str(&format!("{pname}-{n}-1  | {l}\n"));
                }
            }
            let tail = tail.to_string();
            let mut r = run.ok(
                &["logs", "--no-color", "--tail", tail.as_str()],
                &selected,
                Duration::ZERO,
            );
            r["stdout"] = json!(out);
            Ok(Reply::ok(r))
        }
        ComposeCall::SetImage(a) => {
            let (service, image) = (a.service.clone(), a.image.clone());
            if !project.services.contains_key(&service) {
                // The real backend's words (it reads the services from `config`, sorted).
                let mut known: Vec<&str> = project.services.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Err(ActionError::new(
                    ErrorKind::Invalid,
                    format!(
                        "the compose project has no service `{service}`; its services: {}",
                        known.join(", ")
                    ),
                ));
            }
            // As the real backend does: an override file names the image and the one service
            // is recreated at once; a failed pull leaves everything as it was.
            let head = ["up", "-d", "--no-deps"];
            let one = [service.clone()];
            run.pull(project, &image, &head, &one, false)?;
            let started = project.started(&image);
            let s = project.services.get_mut(&service).expect("checked above");
            let previous = std::mem::replace(&mut s.configured, image.clone());
            s.image = image.clone();
            s.state = started;
            let override_file = (image != s.file_image)
                .then(|| format!("compose-{pname}/compose-override-{service}.yaml"));
            let mut r = run.ok(&head, &one, takes);
            r["service"] = json!(service);
            r["image"] = json!(image);
            r["previous_image"] = json!(previous);
            r["override_file"] = json!(override_file);
            Ok(Reply::Answer(Ok(r), takes))
        }
    }
}

/// The command line a verb stands for, and results shaped like the real backend's:
/// `command`, `exit_code`, `stdout`, `stderr`, `duration_ms`.
struct Cli {
    cli: Vec<String>,
    project: String,
}

impl Cli {
    fn new(target: &ComposeBackendSpec, project: &str) -> Cli {
        let cli = if target.command.is_empty() {
            vec!["docker".to_string(), "compose".to_string()]
        } else {
            target.command.clone()
        };
        Cli {
            cli,
            project: project.to_string(),
        }
    }

    fn argv<S: AsRef<str>>(&self, head: &[S], services: &[String]) -> Vec<String> {
        let mut v = self.cli.clone();
        v.extend(["-p".to_string(), self.project.clone()]);
        v.extend(head.iter().map(|s| s.as_ref().to_string()));
        v.extend(services.iter().cloned());
        v
    }

    fn ok<S: AsRef<str>>(&self, head: &[S], services: &[String], took: Duration) -> Value {
        json!({
            "command": self.argv(head, services),
            "exit_code": 0,
            "stdout": "",
            "stderr": "",
            "duration_ms": took.as_millis() as u64,
        })
    }

    /// A non-zero exit, reported as the real backend does: the command and compose's last line.
    fn failed<S: AsRef<str>>(&self, head: &[S], services: &[String], stderr: &str) -> ActionError {
        let verb = head.first().map(|h| h.as_ref()).unwrap_or_default();
        let shown = format!("{} {verb}", self.cli.join(" "));
        let mut r = self.ok(head, services, Duration::ZERO);
        r["exit_code"] = json!(1);
        r["stderr"] = json!(format!("{stderr}\n"));
        ActionError::new(
            ErrorKind::Failed,
            format!("`{shown}` exited with code 1: {stderr}"),
        )
        .with_result(r)
    }

    /// Fetches an image: `pull` always asks the registry; `up` and `set_image` only when the
    /// image is not present locally (compose's default `pull_policy: missing`).
    /// The CLI killed at the deadline, reported as the real backend does.
    fn timed_out(&self, verb: &str, services: &[String], ran: Duration) -> ActionError {
        let shown = format!("{} {verb}", self.cli.join(" "));
        let mut r = self.ok(&[verb], services, ran);
        r["exit_code"] = Value::Null;
        ActionError::new(
            ErrorKind::Timeout,
            format!(
                "`{shown}` timed out after {}; its process group was killed",
                crate::model::fmt_duration(ran)
            ),
        )
        .with_result(r)
    }

    fn pull<S: AsRef<str>>(
        &self,
        project: &mut Project,
        image: &str,
        head: &[S],
        services: &[String],
        explicit: bool,
    ) -> Result<(), ActionError> {
        if !explicit && project.pulled.contains(image) {
            return Ok(());
        }
        if project.unpullable.iter().any(|u| u == image) {
            let why = format!(
                "pull access denied for {image}, repository does not exist or may require 'docker login'"
            );
            return Err(self.failed(head, services, &why));
        }
        project.pulled.insert(image.to_string());
        Ok(())
    }
}

/// The services an action names (all when it names none); unknown names are an error.
fn selected(
    project: &Project,
    run: &Cli,
    verb: &str,
    named: &[String],
) -> Result<Vec<String>, ActionError> {
    let named = named.to_vec();
    if named.is_empty() {
        return Ok(project.services.keys().cloned().collect());
    }
    for n in &named {
        if !project.services.contains_key(n) {
            // As compose says it, exiting 1.
            return Err(run.failed(&[verb], &named, &format!("no such service: {n}")));
        }
    }
    Ok(named)
}
