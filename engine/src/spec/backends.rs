//! Backends as declared in a runbook: Kubernetes, HTTP, Compose, shell, Prometheus.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A named target. Exactly one of `kubernetes`, `http`, `compose`, `shell` or `prometheus`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// A Kubernetes cluster, for `kubernetes` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesBackendSpec>,
    /// An HTTP API, for `http` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpBackendSpec>,
    /// A docker compose project, for `compose` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeBackendSpec>,
    /// Working directory and environment for `shell` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellBackendSpec>,
    /// A Prometheus query API, for `prometheus` and `analysis` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusBackendSpec>,
}

/// A Prometheus server (or any server with its HTTP query API, `/api/v1/query`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusBackendSpec {
    /// Base URL of the server, e.g. `http://prometheus.monitoring:9090` (a template).
    pub url: String,
    /// Headers sent with every query (templates; use `secrets.*` for tokens). Never sent to
    /// another origin: a redirect off the server's origin is refused.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Per-query timeout, e.g. `10s` (default 30s). Also sent to Prometheus as `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// PEM file of an extra CA to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// A Kubernetes cluster, resolved like kubectl does (`KUBECONFIG`, `~/.kube/config`, in-cluster).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesBackendSpec {
    /// kubeconfig context; default: the current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace for objects that name none; default: the context's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Path of a kubeconfig file; default: `KUBECONFIG`, then `~/.kube/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

/// An HTTP API: a base URL and headers every request gets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpBackendSpec {
    /// Prefix of every `path`, e.g. `https://orch.internal:8181`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Headers sent with every request (templates; use `secrets.*` for tokens).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Per-request timeout, e.g. `10s` (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// PEM file of an extra CA to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Which redirects to follow (default `same-origin`). A redirect not followed is the
    /// step's result: its status and `Location`, and the step fails unless `expect_status`
    /// or `verify` accepts it.
    #[serde(default, skip_serializing_if = "is_default_follow")]
    pub follow_redirects: FollowRedirects,
}

pub(super) fn is_default_follow(f: &FollowRedirects) -> bool {
    *f == FollowRedirects::default()
}

/// Which HTTP redirects a backend follows. Whatever the setting, a redirect is never followed
/// when it would change the method (a POST turned into a GET), go from `https` to `http`, or
/// send a body that holds a secret to another origin; headers that hold a secret are never
/// sent to another origin, and no request carries a `Referer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FollowRedirects {
    /// None: a 3xx answer is the step's result.
    Never,
    /// Only to the same origin (scheme, host and port) as the request (default).
    #[default]
    SameOrigin,
    /// To any origin, without the headers that hold a secret.
    Any,
}

/// A docker compose project, driven through the Compose CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeBackendSpec {
    /// Compose file (`-f`); default: compose's own lookup in `project_directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Project name (`-p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Working directory of the project (`--project-directory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_directory: Option<String>,
    /// Environment file (`--env-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// Profiles to enable (`--profile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The CLI to run, as argv, e.g. `[docker, compose]` (default) or `[docker-compose]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// Defaults for shell steps that name this backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellBackendSpec {
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Environment variables added to every command.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
}
