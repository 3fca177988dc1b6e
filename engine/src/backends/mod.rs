//! The backend boundary: one small trait per kind of target. The runner only talks to the
//! world through these; real backends, the drill simulator and test doubles implement them.

pub mod calls;
pub mod compose;
pub mod http;
pub mod kubernetes;
pub mod prometheus;
pub mod shell;
pub mod spawn;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use self::calls::{ComposeCall, ComposeVerb, KubeCall, KubeVerb};
use crate::exec::clock::Clock;
use crate::spec::{ComposeBackendSpec, KubernetesBackendSpec};

/// Why an action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The attempt ran past its `timeout`.
    Timeout,
    /// Could not reach the target (connection refused, DNS, TLS, reset).
    Transport,
    /// The target answered, and the answer is a failure (exit code, status, API error).
    Failed,
    /// The request itself is wrong (bad URL, unknown container); retrying will not help.
    Invalid,
    /// The run was interrupted.
    Cancelled,
}

/// A failed action: what happened, and the result so far (exit code, output) as evidence.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub kind: ErrorKind,
    pub message: String,
    pub result: Option<Value>,
    /// For simulated backends: what the call changed before it failed (journaled).
    pub world_diff: Option<Value>,
}

impl ActionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ActionError {
            kind,
            message: message.into(),
            result: None,
            world_diff: None,
        }
    }

    pub fn with_result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }

    pub fn with_world_diff(mut self, diff: Value) -> Self {
        self.world_diff = Some(diff);
        self
    }

    pub fn retryable(&self) -> bool {
        !matches!(self.kind, ErrorKind::Invalid | ErrorKind::Cancelled)
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActionError {}

/// What an action produced: its `result` (for captures and verify), and for simulated
/// backends, how it changed the world (journaled as `world_changed`).
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub result: Value,
    pub world_diff: Option<Value>,
}

impl From<Value> for Output {
    fn from(result: Value) -> Self {
        Output {
            result,
            world_diff: None,
        }
    }
}

/// Receives progress while an action runs (output lines, rollout progress).
pub trait Progress: Send + Sync {
    /// One line of a process's output (`stdout` or `stderr`), already redacted by the view.
    fn line(&self, stream: &str, line: &str);
    /// A status message, e.g. `waiting for 2 of 3 updated replicas`.
    fn status(&self, message: &str);
    /// A value learnt during the run that must be masked from now on (a called runbook's
    /// secret, a capture derived from a secret).
    fn secret(&self, _value: &str) {}
}

/// Discards progress.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn line(&self, _: &str, _: &str) {}
    fn status(&self, _: &str) {}
}

/// Everything an action call may need besides its own arguments.
#[derive(Clone)]
pub struct CallCtx {
    pub step: String,
    pub attempt: u32,
    /// When the attempt must end (timeouts are also enforced by the runner).
    pub deadline: Option<DateTime<Utc>>,
    pub clock: Arc<dyn Clock>,
    pub cancel: CancellationToken,
    pub progress: Arc<dyn Progress>,
    /// The run's directory (next to the journal), for files a backend writes (compose overrides).
    pub run_dir: PathBuf,
    /// The runbook's directory, for relative paths (`apply.file`, compose files).
    pub base_dir: PathBuf,
    /// Told about every process group the call starts, as soon as it exists: the runner
    /// journals it, so that `resume` can tell whether it is still alive.
    pub spawned: Option<tokio::sync::mpsc::UnboundedSender<Spawn>>,
}

/// A process group a backend started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawn {
    pub pgid: u32,
    /// The leader's start time (clock ticks since boot), when known.
    pub start_ticks: Option<u64>,
}

impl CallCtx {
    /// The run's id: the name of its directory.
    pub fn run_id(&self) -> String {
        self.run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| (d - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
    }
}

/// A process to run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShellRequest {
    /// Program and arguments (for scripts: `["sh", "-c", script]`).
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<String>,
    /// Exit codes that count as success.
    pub expect_exit: Vec<i32>,
    /// True when the command came from `script:` (shown differently in plans and reports).
    pub is_script: bool,
}

#[async_trait]
pub trait ShellBackend: Send + Sync {
    /// Runs the process. Result: `exit_code`, `stdout`, `stderr`, `json` (when stdout parses),
    /// `duration_ms`. A disallowed exit code is an error carrying that result.
    async fn run(&self, req: &ShellRequest, ctx: &CallCtx) -> Result<Output, ActionError>;
}

/// An HTTP request, fully rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub ca_file: Option<PathBuf>,
    /// Which redirects to follow (`http::redirect_hop` decides each one).
    pub follow_redirects: crate::spec::FollowRedirects,
    /// Names of the headers whose values hold a secret: never sent to another origin.
    pub secret_headers: Vec<String>,
    /// Whether the body holds a secret: never sent to another origin.
    pub body_holds_secret: bool,
}

#[async_trait]
pub trait HttpBackend: Send + Sync {
    /// Sends the request. Result: `status`, `headers`, `body`, `json`, `elapsed_ms`. Any
    /// status is a result; the runner decides what counts as failure.
    async fn send(&self, req: &HttpRequest, ctx: &CallCtx) -> Result<Output, ActionError>;
}

#[async_trait]
pub trait KubernetesBackend: Send + Sync {
    /// Runs one verb (`get`, `set_image`, `rollout_undo`, ...) with its rendered, validated
    /// arguments. The result is shaped like the API object.
    async fn call(
        &self,
        target: &KubernetesBackendSpec,
        call: &KubeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError>;

    /// What `plan --live` shows: the object and the change this call would make, read from
    /// the cluster without changing it. `None` when the backend cannot tell.
    async fn preview(&self, _target: &KubernetesBackendSpec, _call: &KubeCall) -> Option<String> {
        None
    }
}

/// `preview` of a rendered call (`plan --live`, a confirmation's guarded steps): relative
/// paths (the kubeconfig, an applied file) resolve against the runbook's directory `dir`, as
/// in a run.
pub async fn preview_kube(
    backend: &dyn KubernetesBackend,
    target: &KubernetesBackendSpec,
    call: &KubeCall,
    dir: &std::path::Path,
) -> Option<String> {
    let absolute = |p: &str| dir.join(expand_home(p)).display().to_string();
    let mut target = target.clone();
    if let Some(k) = target.kubeconfig.as_mut() {
        *k = absolute(k);
    }
    let mut call = call.clone();
    if let KubeCall::Apply(a) = &mut call {
        if let Some(f) = a.file.as_mut() {
            *f = absolute(f);
        }
    }
    backend.preview(&target, &call).await
}

#[async_trait]
pub trait ComposeBackend: Send + Sync {
    /// Runs one verb (`ps`, `up`, `set_image`, ...) with its rendered, validated arguments.
    async fn call(
        &self,
        target: &ComposeBackendSpec,
        call: &ComposeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError>;
}

/// Expands a leading `~/` in a path from a runbook (kubeconfig and compose files are often
/// written that way).
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The set of backends a run uses.
#[derive(Clone)]
pub struct Backends {
    pub shell: Arc<dyn ShellBackend>,
    pub http: Arc<dyn HttpBackend>,
    pub kubernetes: Arc<dyn KubernetesBackend>,
    pub compose: Arc<dyn ComposeBackend>,
    pub prometheus: Arc<dyn prometheus::PrometheusBackend>,
}

impl Backends {
    /// The real backends: processes, HTTP, the Kubernetes API, the Compose CLI, Prometheus.
    pub fn real(overrides: kubernetes::Overrides) -> Self {
        Backends {
            shell: Arc::new(shell::ProcessShell),
            http: Arc::new(http::ReqwestHttp::default()),
            kubernetes: Arc::new(kubernetes::KubeBackend::new(overrides)),
            compose: Arc::new(compose::ComposeCli::default()),
            prometheus: Arc::new(prometheus::PromHttp::default()),
        }
    }
}
