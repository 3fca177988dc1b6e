//! The docker compose backend: drives the Compose CLI (`docker compose`, else
//! `docker-compose`, or the backend's `command`) as child processes, one per verb, with
//! standard input closed, output streamed to the terminal, and the process group killed on
//! timeout or interrupt (the shell backend's process handling).

mod overrides;
mod project;
mod ps;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use self::project::Project;
use super::shell::ProcessShell;
use super::{
    ActionError, CallCtx, ComposeBackend, ComposeCall, ErrorKind, NoProgress, Output, ShellBackend,
    ShellRequest,
};
use crate::spec::{ComposeBackendSpec, ComposeSetImage};

/// Lines of logs when `tail` is not given.
const DEFAULT_TAIL: u32 = 100;

#[derive(Debug, Default)]
pub struct ComposeCli {
    /// The CLI found on this machine, looked up once per run.
    detected: tokio::sync::OnceCell<Vec<String>>,
}

fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::new(ErrorKind::Invalid, message)
}

/// Does `argv version` run successfully? (Quietly, and never for long.)
async fn runs(argv: &[&str]) -> bool {
    let mut cmd = tokio::process::Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    super::shell::own_session(&mut cmd);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(15), child.wait()).await,
        Ok(Ok(s)) if s.success()
    )
}

async fn detect() -> Result<Vec<String>, ActionError> {
    // `docker compose version` fails when only the docker CLI, without the v2 plugin, is there.
    if runs(&["docker", "compose", "version"]).await {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    if runs(&["docker-compose", "version"]).await {
        return Ok(vec!["docker-compose".into()]);
    }
    Err(invalid(
        "no Compose CLI here: neither `docker compose` (the v2 plugin) nor `docker-compose` runs; install one, or set the backend's `command` (e.g. [podman, compose])",
    ))
}

/// Why `argv` is not a Compose CLI, if it is not. The verb a step names (`ps`, `down`) sets its
/// safety class and what `plan` shows, so the backend's `command` must be a Compose CLI that
/// the verb is appended to, and nothing else: `[docker-compose]`, `[podman-compose]`, or
/// `docker`, `podman` or `nerdctl` (any directory) followed by `compose` as the last element,
/// with only `--context X`, `-c X`, `--host X`, `-H X`, `--config X` or `--flag=value`
/// between them. Anything else (a wrapper script, `sh -c`, `ssh host`, a flag that would make
/// `docker` run another subcommand) is refused, at `check` and again after rendering.
pub fn cli_problem(argv: &[String]) -> Option<String> {
    const PLUGIN_HOSTS: &[&str] = &["docker", "podman", "nerdctl"];
    const STANDALONE: &[&str] = &["docker-compose", "podman-compose"];
    const VALUED: &[&str] = &["--context", "-c", "--host", "-H", "--config"];
    let name = |s: &str| {
        std::path::Path::new(s)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let expected = "a Compose CLI: [docker, compose], [podman, compose], [nerdctl, compose], \
                    [docker-compose] or [podman-compose]";
    let Some((program, rest)) = argv.split_first() else {
        return Some(format!("`command` is empty; expected {expected}"));
    };
    let program_name = name(program);
    if STANDALONE.contains(&program_name.as_str()) {
        return (!rest.is_empty()).then(|| {
            format!("`{program_name}` takes no arguments here (the step's verb follows it); expected {expected}")
        });
    }
    if !PLUGIN_HOSTS.contains(&program_name.as_str()) {
        return Some(format!(
            "`{program}` is not a Compose CLI, so a step's verb would not say what runs; expected {expected}"
        ));
    }
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        if a == "compose" {
            return (i + 1 != rest.len()).then(|| {
                format!("nothing may follow `compose` in `command` (the step's verb does); expected {expected}")
            });
        }
        if VALUED.contains(&a) && i + 1 < rest.len() {
            i += 2;
        } else if a.starts_with("--") && a.contains('=') {
            i += 1;
        } else {
            return Some(format!(
                "`{a}` in `command` before `compose`: only --context, --host, --config (with a value) may go there; expected {expected}"
            ));
        }
    }
    Some(format!(
        "`{program_name}` without `compose` is not a Compose CLI; expected {expected}"
    ))
}

impl ComposeCli {
    async fn cli(&self, spec: &ComposeBackendSpec) -> Result<Vec<String>, ActionError> {
        if !spec.command.is_empty() {
            if let Some(why) = cli_problem(&spec.command) {
                return Err(invalid(why));
            }
            return Ok(spec.command.clone());
        }
        self.detected.get_or_try_init(detect).await.cloned()
    }

    /// Runs one compose command. The result is the shell result plus `command`. With
    /// `quiet`, its output is not streamed (internal reads such as `config`).
    async fn exec(
        &self,
        cli: &[String],
        project: &Project,
        overrides: &[PathBuf],
        args: &[&str],
        ctx: &CallCtx,
        quiet: bool,
    ) -> Result<Value, ActionError> {
        let mut argv: Vec<String> = cli.to_vec();
        argv.extend(project.global_args(overrides)?);
        argv.extend(args.iter().map(|a| a.to_string()));
        let shown = format!(
            "{} {}",
            cli.join(" "),
            args.first().copied().unwrap_or_default()
        );
        let req = ShellRequest {
            argv: argv.clone(),
            cwd: Some(project.cwd()),
            ..Default::default()
        };
        let mut c = ctx.clone();
        if quiet {
            c.progress = Arc::new(NoProgress);
        }
        let with_command = |mut r: Value| {
            if let Some(m) = r.as_object_mut() {
                m.remove("json");
                m.insert("command".into(), json!(argv));
            }
            r
        };
        match ProcessShell.run(&req, &c).await {
            Ok(out) => Ok(with_command(out.result)),
            Err(e) => {
                let result = e.result.clone().map(with_command);
                let message = match e.kind {
                    ErrorKind::Failed => {
                        let r = result.clone().unwrap_or_default();
                        let last = r["stderr"]
                            .as_str()
                            .unwrap_or_default()
                            .lines()
                            .map(str::trim)
                            .rfind(|l| !l.is_empty())
                            .unwrap_or_default()
                            .to_string();
                        match r["exit_code"].as_i64() {
                            Some(code) => format!("`{shown}` exited with code {code}: {last}"),
                            None => format!("`{shown}` was killed by a signal"),
                        }
                    }
                    ErrorKind::Invalid => {
                        format!("{} (the compose CLI: {})", e.message, cli.join(" "))
                    }
                    // "`docker` timed out after 3s; ..." names the program only.
                    _ => format!(
                        "`{shown}` {}",
                        e.message
                            .strip_prefix(&format!("`{}` ", cli[0]))
                            .unwrap_or(&e.message)
                    ),
                };
                let mut err = ActionError::new(e.kind, message);
                err.result = result;
                Err(err)
            }
        }
    }

    async fn run(
        &self,
        spec: &ComposeBackendSpec,
        call: &ComposeCall,
        ctx: &CallCtx,
    ) -> Result<Value, ActionError> {
        let verb = call.verb().as_str();
        let cli = self.cli(spec).await?;
        let project = Project::new(spec, &ctx.base_dir, &ctx.run_dir);
        let ovr = overrides::all(&project.override_dir);
        let services = |list: &[String], mut head: Vec<String>| {
            head.extend(list.iter().cloned());
            head
        };
        let argv: Vec<String> = match call {
            ComposeCall::Ps(a) => {
                let argv = services(
                    &a.services,
                    vec![
                        "ps".into(),
                        "--all".into(),
                        "--format".into(),
                        "json".into(),
                    ],
                );
                let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
                let mut r = self.exec(&cli, &project, &ovr, &refs, ctx, true).await?;
                let parsed = ps::parse(r["stdout"].as_str().unwrap_or_default())
                    .map_err(|m| ActionError::new(ErrorKind::Failed, m).with_result(r.clone()))?;
                if let (Some(m), Some(p)) = (r.as_object_mut(), parsed.as_object()) {
                    m.remove("stdout");
                    m.extend(p.clone());
                }
                return Ok(r);
            }
            ComposeCall::Pull(a) | ComposeCall::Restart(a) | ComposeCall::Stop(a) => {
                services(&a.services, vec![verb.into()])
            }
            ComposeCall::Up(a) => {
                let mut head = vec!["up".to_string()];
                if a.detach.unwrap_or(true) {
                    head.push("-d".into());
                }
                if a.wait {
                    head.push("--wait".into());
                }
                services(&a.services, head)
            }
            ComposeCall::Down(a) => {
                let mut v = vec!["down".to_string()];
                if a.volumes {
                    v.push("-v".into());
                }
                v
            }
            ComposeCall::Logs(a) => {
                let tail = a.tail.unwrap_or(DEFAULT_TAIL).to_string();
                services(
                    &a.services,
                    vec!["logs".into(), "--no-color".into(), "--tail".into(), tail],
                )
            }
            ComposeCall::SetImage(a) => {
                return self.set_image(&cli, &project, a, ctx).await;
            }
        };
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.exec(&cli, &project, &ovr, &refs, ctx, false).await
    }

    /// Points a service at another image through its override file, then recreates it
    /// (`up -d --no-deps <service>`). The previous image goes into the result for `undo`.
    async fn set_image(
        &self,
        cli: &[String],
        project: &Project,
        a: &ComposeSetImage,
        ctx: &CallCtx,
    ) -> Result<Value, ActionError> {
        let dir = &project.override_dir;
        let own = overrides::path(dir, &a.service);
        // What the user's files (with the other services' overrides) say, without ours.
        let others: Vec<PathBuf> = overrides::all(dir)
            .into_iter()
            .filter(|p| *p != own)
            .collect();
        let cfg = self
            .exec(
                cli,
                project,
                &others,
                &["config", "--format", "json"],
                ctx,
                true,
            )
            .await?;
        let config: Value = serde_json::from_str(cfg["stdout"].as_str().unwrap_or_default())
            .map_err(|e| {
                ActionError::new(
                    ErrorKind::Failed,
                    format!("`config --format json` printed no JSON: {e}"),
                )
            })?;
        let Some(svc) = config.pointer(&format!(
            "/services/{}",
            a.service.replace('~', "~0").replace('/', "~1")
        )) else {
            let names: Vec<&String> = config["services"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            return Err(invalid(format!(
                "the compose project has no service `{}`; its services: {}",
                a.service,
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        // A service built without `image:` runs the image compose names `<project>-<service>`.
        let base = match (svc["image"].as_str(), svc.get("build")) {
            (Some(i), _) => i.to_string(),
            (None, Some(_)) => format!(
                "{}-{}",
                config["name"].as_str().unwrap_or_default(),
                a.service
            ),
            (None, None) => String::new(),
        };
        let previous = overrides::image_in(&own).unwrap_or_else(|| base.clone());
        let wanted = (a.image != base).then_some(a.image.as_str());
        let before = overrides::set(dir, &a.service, wanted)?;
        let now = overrides::all(dir);
        ctx.progress
            .status(&format!("{}: image {previous} → {}", a.service, a.image));
        match self
            .exec(
                cli,
                project,
                &now,
                &["up", "-d", "--no-deps", &a.service],
                ctx,
                false,
            )
            .await
        {
            Ok(mut r) => {
                r["service"] = json!(a.service);
                r["image"] = json!(a.image);
                r["previous_image"] = json!(previous);
                r["override_file"] = json!(wanted.map(|_| own.display().to_string()));
                Ok(r)
            }
            Err(e) => {
                // The service still runs what it ran: keep the override files saying so.
                overrides::restore(dir, &a.service, before);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ComposeBackend for ComposeCli {
    async fn call(
        &self,
        target: &ComposeBackendSpec,
        call: &ComposeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError> {
        let verb = call.verb();
        self.run(target, call, ctx)
            .await
            .map(Output::from)
            .map_err(|mut e| {
                e.message = format!("compose.{verb}: {}", e.message);
                e
            })
    }
}
