//! The runbook file format as written in YAML: these types mirror the file one to one and
//! generate `schemas/runbook.schema.json`. Nothing here is validated beyond its shape; the
//! checker (`check.rs`) turns a spec into the stricter model (`model.rs`).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A runbook: metadata, typed inputs, secrets, backends, preconditions and steps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Runbook")]
pub struct RunbookSpec {
    /// Format version. Always `runbook/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// `Runbook` for a runbook (`Drill` files have their own schema).
    pub kind: RunbookKind,
    /// Name, title, severity and owners: what `list` shows and a guided run starts with.
    pub metadata: Metadata,
    /// Typed inputs, validated before anything runs. Referenced as `inputs.<name>`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, InputSpec>,
    /// Secrets read at run time and redacted everywhere. Referenced as `secrets.<name>`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, SecretSpec>,
    /// Environment variables the runbook may read as `env.<NAME>`; no others are visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Named targets that steps use: a Kubernetes cluster, an HTTP API, a compose project, a shell.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub backends: IndexMap<String, BackendSpec>,
    /// Conditions that must all hold before the first step; if one is false nothing runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<ConditionSpec>,
    /// When the `undo` of finished steps runs (newest first).
    #[serde(default)]
    pub rollback_strategy: RollbackStrategy,
    /// The steps, run in order.
    pub steps: Vec<StepSpec>,
    /// Steps run when the run fails, after the rollback strategy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<StepSpec>,
}

/// The version of the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "runbook/v1")]
    V1,
}

/// What the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunbookKind {
    Runbook,
}

/// Who, what and when: shown by `list`, at the start of a guided run and in the report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Identifier: lowercase letters, digits and dashes.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]*$"))]
    pub name: String,
    /// One line saying what the runbook does.
    pub title: String,
    /// Markdown: when to use it and when not to. Shown when a guided run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Incident severity this runbook answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Target time to recover, e.g. `15m`. Drills score against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mttr_target: Option<String>,
    /// Alerts or symptoms that call for this runbook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
    /// Teams or people who own the runbook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Related documents (dashboards, design docs), by title.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub links: IndexMap<String, String>,
}

/// Incident severity, `P1` (most severe) to `P4`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    P1,
    P2,
    P3,
    P4,
}

/// A typed value the operator provides with `--input`, `--inputs` or at the prompt.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The value's type (default `string`). Command-line text is converted to it.
    #[serde(rename = "type", default)]
    pub kind: InputType,
    /// What the input is for; shown by `plan` and when a missing input is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when none is given. An input without a default is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only values accepted.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Smallest accepted number (integer and number inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest accepted number (integer and number inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Regular expression a string input must match (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// An example value, shown in the plan and the docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

/// The type of an input value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
}

/// Where a secret comes from. Exactly one of `env` or `file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the secret (trailing newline removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What the secret is, and where an operator gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When false, a missing secret is an empty string instead of an error.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

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

fn is_default_follow(f: &FollowRedirects) -> bool {
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

/// A boolean expression and the message shown when it is false.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Expression over `inputs`, `secrets`, `steps`, `run`, `env` (and `result` in `verify`).
    pub that: String,
    /// Shown when the condition is false (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// When the `undo` of finished steps runs, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackStrategy {
    /// Undo finished steps when the run fails (default).
    #[default]
    OnFailure,
    /// Undo finished steps at the end of every run (a rehearsal or a temporary change).
    Always,
    /// Never undo automatically.
    Never,
}

/// How risky a step is. A step may raise its action's class, never lower it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Reads only; safe to run again at any time.
    ReadOnly,
    /// Changes state, but running it twice gives the same result.
    Idempotent,
    /// Changes state; has an undo.
    Reversible,
    /// Cannot be taken back; always gated by a confirmation.
    Terminal,
}

impl Default for IntOrTemplate {
    fn default() -> Self {
        IntOrTemplate::Int(0)
    }
}

impl std::fmt::Display for Safety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Safety {
    pub fn as_str(self) -> &'static str {
        match self {
            Safety::ReadOnly => "read-only",
            Safety::Idempotent => "idempotent",
            Safety::Reversible => "reversible",
            Safety::Terminal => "terminal",
        }
    }
}

/// Retry policy of a step: attempts in all, delay before the second, multiplied each time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, including the first (>= 1).
    #[schemars(range(min = 1, max = 100))]
    pub attempts: u32,
    /// Wait before the second attempt, e.g. `2s` (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Factor applied to the delay after each attempt (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Upper bound of the delay, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<String>,
}

/// Poll budget for `verify`: re-run the action every `interval` until `verify` holds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UntilSpec {
    /// Give up after this long, e.g. `5m`. Required.
    pub timeout: String,
    /// Time between polls (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// The action fields shared by steps and undo blocks. Exactly one is set.
macro_rules! action_fields {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        $vis struct $name {
            $($extra)*
            /// Run a command: `argv` without a shell, or `script` with `sh -c`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shell: Option<ShellAction>,
            /// Send an HTTP request.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub http: Option<HttpAction>,
            /// Act on Kubernetes objects.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub kubernetes: Option<KubernetesAction>,
            /// Drive a docker compose project.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub compose: Option<ComposeAction>,
            /// Ask the operator to confirm before going on.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub confirm: Option<ConfirmAction>,
            /// A human step: instructions, then done / skipped / failed with a note.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub manual: Option<ManualAction>,
            /// Ask the operator for a typed value, available as `steps.<id>.value`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub input: Option<InputAction>,
            /// Wait for a duration, e.g. `60s`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub wait: Option<String>,
            /// Check conditions over earlier captures; fails the step when one is false.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub assert: Option<Vec<ConditionSpec>>,
            /// Run another runbook file, its steps journaled under this step.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub call: Option<CallAction>,
            /// Query Prometheus (read-only). The result has `value`, `series`, `empty`, `query`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub prometheus: Option<PrometheusAction>,
            /// Canary analysis: query metrics every `interval`, fail after `failed_checks`
            /// failed checks, pass after `checks` checks (read-only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub analysis: Option<AnalysisAction>,
        }
    };
}

action_fields! {
    /// One step of a runbook: an action plus its guard, gate, timeout, retries, captures,
    /// verifications and undo.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct StepSpec {
        /// Unique identifier: letters, digits, `_` and `-`. Used by `--answer ID=...`.
        #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_-]*$"))]
        pub id: String,
        /// Short human title (default: the id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// Longer explanation shown before the step runs (markdown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Guard expression: when false the step is skipped, with the reason journaled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub when: Option<String>,
        /// Raise the action's safety class (never lower it, except for shell and http steps,
        /// whose effect only the author knows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub safety: Option<Safety>,
        /// Time limit of one attempt, e.g. `60s`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timeout: Option<String>,
        /// Run the action again when it fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry: Option<RetrySpec>,
        /// Values kept from the result: name -> expression over `result`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub capture: IndexMap<String, String>,
        /// Conditions over `result` and captures that must all hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub verify: Vec<ConditionSpec>,
        /// Poll the action until `verify` holds, within this budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub until: Option<UntilSpec>,
        /// The compensation for this step, run by the rollback strategy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub undo: Option<Box<UndoSpec>>,
        /// Why this mutating step has no undo (silences the warning; shown in the plan).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub no_undo: Option<String>,
        /// Keep going when this step fails (its failure is still reported).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub continue_on_failure: bool,
        /// What an inconclusive verification (no data, NaN, several series where one was
        /// expected) means once the poll budget is spent: `fail` (default), `ask` the operator,
        /// or `pass` (flagged by `check --strict`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub on_inconclusive: Option<OnInconclusive>,
    }
}

/// What an inconclusive verification or check counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnInconclusive {
    /// A failure (default): no data never passes.
    #[default]
    Fail,
    /// Ask the operator whether to go on (a CI run without an answer fails).
    Ask,
    /// A pass. Flagged by `check --strict`: say why in the step's description.
    Pass,
}

impl OnInconclusive {
    pub fn as_str(self) -> &'static str {
        match self {
            OnInconclusive::Fail => "fail",
            OnInconclusive::Ask => "ask",
            OnInconclusive::Pass => "pass",
        }
    }
}

/// A PromQL query: instant (the value now), or over a range when `range` is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusAction {
    /// A prometheus backend (optional when the runbook has exactly one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The PromQL expression (a template; journaled as sent).
    pub query: String,
    /// A range query over the last `last`, one point every `step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PromRangeSpec>,
}

/// The window of a range query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromRangeSpec {
    /// How far back, e.g. `15m`.
    pub last: String,
    /// Resolution, e.g. `1m` (default: a 60th of `last`, at least 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A canary analysis (Flagger-style): every `interval` one check queries each metric; a check
/// fails when a metric is out of its bounds (or has no data, unless `on_inconclusive` says
/// otherwise). The step fails at `failed_checks` failed checks and passes after `checks` checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisAction {
    /// A prometheus backend (optional when the runbook has exactly one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Time between checks, e.g. `1m`.
    pub interval: String,
    /// Fail the step when this many checks have failed (>= 1).
    #[schemars(range(min = 1, max = 1000))]
    pub failed_checks: u32,
    /// Pass after this many checks with fewer failures (>= 1).
    #[schemars(range(min = 1, max = 1000))]
    pub checks: u32,
    /// The metrics every check reads.
    pub metrics: Vec<AnalysisMetric>,
    /// A metric with no data (or NaN, or several series): `fail` counts the check as failed
    /// (default, as Flagger), `ask` pauses for the operator (as Argo), `pass` ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<OnInconclusive>,
}

/// One metric of an analysis: a query giving one value, and its bounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisMetric {
    /// Name shown in the journal, the report and drills (`metrics:` of a drill match it).
    pub name: String,
    /// PromQL giving exactly one series (a template).
    pub query: String,
    /// Smallest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

action_fields! {
    /// A compensating action run when the run is rolled back.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UndoSpec {
        /// Short human title (default: `undo: <action>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// Raise the undo's safety class (never lower it, except for shell and http undos,
        /// whose effect only the author knows). A `terminal` undo asks for its own answer
        /// during a rollback, and counts for the runbook's highest class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub safety: Option<Safety>,
        /// Time limit of one attempt, e.g. `60s`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timeout: Option<String>,
        /// Run the undo again when it fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry: Option<RetrySpec>,
    }
}

/// A number given literally or as a template such as `"{{ inputs.replicas }}"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrTemplate {
    Int(i64),
    Template(String),
}

/// Run a process. Exactly one of `argv` or `script`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellAction {
    /// A shell backend supplying `cwd` and `env` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Program and arguments, run without a shell. Each element is one argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Script run with `sh -c`. Not a template: runbook values reach it only as environment
    /// variables (`RUNBOOK_INPUT_<NAME>`, and those listed in `env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables (values are templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Text written to the process's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_exit: Vec<i32>,
}

/// Send one HTTP request. The result has `status`, `headers`, `body`, `json`, `elapsed_ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// An http backend supplying `base_url` and headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The request: method, `url` or `path`, query, headers, body.
    pub request: HttpRequestSpec,
    /// Statuses that count as success. Default: any status when the step has `verify`
    /// (the verification decides), otherwise 200-299 (a redirect that was not followed is
    /// not a success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
}

/// One HTTP request. Every string in it is a template.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestSpec {
    /// HTTP method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// Absolute URL. Use either `url`, or `path` with a backend's `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Path appended to the backend's `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Request headers (added to the backend's).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// JSON body; strings inside are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Raw text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// An HTTP method. GET, HEAD and OPTIONS are read-only; the others are reversible unless the
/// step says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::GET => "GET",
            HttpMethod::HEAD => "HEAD",
            HttpMethod::POST => "POST",
            HttpMethod::PUT => "PUT",
            HttpMethod::PATCH => "PATCH",
            HttpMethod::DELETE => "DELETE",
            HttpMethod::OPTIONS => "OPTIONS",
        }
    }
}

/// A Kubernetes operation. `backend` plus exactly one verb.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAction {
    /// A kubernetes backend (optional when the runbook has exactly one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Read any object (read-only). The result is the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<KubeObjectRef>,
    /// List objects of a kind, by label selector (read-only). The result has `items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<KubeListSpec>,
    /// Set the replica count (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<KubeScaleSpec>,
    /// Set a container's image (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_image: Option<KubeSetImageSpec>,
    /// Set and unset container environment variables (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_env: Option<KubeSetEnvSpec>,
    /// Restart the pods of a workload, like `kubectl rollout restart` (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_restart: Option<KubeWorkloadRef>,
    /// Put back the pod template of an earlier revision, like `kubectl rollout undo` (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_undo: Option<KubeUndoSpec>,
    /// List a workload's revisions (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_history: Option<KubeWorkloadRef>,
    /// Wait until the rollout is complete (read-only); fails on ProgressDeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_status: Option<KubeWorkloadRef>,
    /// Server-side apply a manifest (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<KubeApplySpec>,
    /// Delete an object (terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<KubeObjectRef>,
    /// Set or remove annotations (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotate: Option<KubeMetaSpec>,
    /// Set or remove labels (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<KubeMetaSpec>,
    /// Pause a Deployment's rollout (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<KubeWorkloadRef>,
    /// Resume a paused rollout (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<KubeWorkloadRef>,
}

/// Any object, by kind and name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeObjectRef {
    /// Kind, e.g. `Deployment`, `ConfigMap`, `ImagePolicy`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Group/version, e.g. `apps/v1`; found by discovery when omitted.
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Objects of one kind, optionally filtered by labels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeListSpec {
    /// Kind, e.g. `Pod`, `Deployment`.
    pub kind: String,
    /// Group/version, e.g. `apps/v1`; found by discovery when omitted.
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=flowengine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeWorkloadRef {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    pub name: String,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A kind of workload with a pod template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// Set a workload's replica count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeScaleSpec {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    pub name: String,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Replica count: a number, or a template such as `"{{ inputs.replicas }}"`.
    pub replicas: IntOrTemplate,
}

/// Set the image of one container of a workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeSetImageSpec {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    pub name: String,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Container name; may be omitted when the pod has exactly one container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The new image reference, e.g. `registry.internal/web:1.4.2`.
    pub image: String,
}

/// Set and unset environment variables of a workload's containers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeSetEnvSpec {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    pub name: String,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Container name; default: every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Variables to set.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub set: IndexMap<String, String>,
    /// Variables to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}

/// Roll a workload back to an earlier revision.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeUndoSpec {
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Workload name.
    pub name: String,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Revision to go back to; default: the one before the current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<IntOrTemplate>,
}

/// A manifest to server-side apply. Exactly one of `manifest` or `file`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeApplySpec {
    /// The object to apply, inline. Strings inside are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    /// A YAML file holding the object (relative to the runbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Field manager name (default `runbook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_manager: Option<String>,
    /// Take ownership of conflicting fields.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// Annotations or labels to set and remove on any object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeMetaSpec {
    /// Kind, e.g. `Deployment`, `Node`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Group/version, e.g. `apps/v1`; found by discovery when omitted.
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    /// Default: the backend's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Keys and values to set.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub set: IndexMap<String, String>,
    /// Keys to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}

/// A docker compose operation. `backend` plus exactly one verb.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeAction {
    /// A compose backend (optional when the runbook has exactly one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// List containers (read-only); the result has `services`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ps: Option<ComposeServices>,
    /// Pull images (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<ComposeServices>,
    /// Create and start containers (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<ComposeUp>,
    /// Stop and remove the project (terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<ComposeDown>,
    /// Restart services (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<ComposeServices>,
    /// Stop services (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<ComposeServices>,
    /// Read the last lines of logs (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<ComposeLogs>,
    /// Run a service on another image, through an override file (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_image: Option<ComposeSetImage>,
}

/// The services a compose verb acts on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeServices {
    /// Services to act on; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// `docker compose up`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeUp {
    /// Services to start; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Run in the background (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach: Option<bool>,
    /// Wait for services to be running/healthy (`--wait`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
}

/// `docker compose down`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDown {
    /// Also remove named volumes (`-v`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volumes: bool,
}

/// `docker compose logs --tail N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeLogs {
    /// Services whose logs to read; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Lines from the end (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
}

/// Run one service on another image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeSetImage {
    /// The service to change.
    pub service: String,
    /// The image it should run, e.g. `registry.internal/web:1.4.1`.
    pub image: String,
}

/// Stop and ask the operator: yes lets the guarded changes run, skip leaves them out, no stops
/// the run, abort stops it and undoes what it changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmAction {
    /// The question, e.g. `Roll back {{ inputs.deployment }}?`.
    pub prompt: String,
    /// The ids of the later steps this confirmation guards: only `yes` lets them run, `skip`
    /// skips them. Default: the changing steps after it up to the next `confirm`, `manual`
    /// or `input` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<Vec<String>>,
}

/// Something a human does outside the tool, then reports as done, skipped or failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualAction {
    /// What the human must do (markdown, a template).
    pub instructions: String,
}

/// Ask for a typed value. The answer is `steps.<id>.value`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputAction {
    /// The question, e.g. `Which revision is the last good one?` (a template).
    pub prompt: String,
    /// The answer's type (default `string`).
    #[serde(rename = "type", default)]
    pub kind: InputType,
    /// Value proposed to the operator at the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only answers accepted.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Smallest accepted number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest accepted number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Regular expression a string answer must match (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// Run another runbook with inputs; its steps are journaled as `<this id>/<its id>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallAction {
    /// Path of the runbook file, relative to this one.
    pub runbook: String,
    /// Inputs of the called runbook (values are templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, Value>,
}

/// The names of every action field of a step, in schema order.
pub const ACTION_KINDS: &[&str] = &[
    "shell",
    "http",
    "kubernetes",
    "compose",
    "confirm",
    "manual",
    "input",
    "wait",
    "assert",
    "call",
    "prometheus",
    "analysis",
];

/// The verbs of a `kubernetes:` action.
pub const KUBE_VERBS: &[&str] = &[
    "get",
    "list",
    "scale",
    "set_image",
    "set_env",
    "rollout_restart",
    "rollout_undo",
    "rollout_history",
    "rollout_status",
    "apply",
    "delete",
    "annotate",
    "label",
    "pause",
    "resume",
];

/// The verbs of a `compose:` action.
pub const COMPOSE_VERBS: &[&str] = &[
    "ps",
    "pull",
    "up",
    "down",
    "restart",
    "stop",
    "logs",
    "set_image",
];

/// The built-in safety class of a Kubernetes verb.
pub fn kube_verb_safety(verb: &str) -> Safety {
    match verb {
        "get" | "list" | "rollout_history" | "rollout_status" => Safety::ReadOnly,
        "scale" | "set_env" | "annotate" | "label" | "pause" | "resume" => Safety::Idempotent,
        "delete" => Safety::Terminal,
        _ => Safety::Reversible,
    }
}

/// The built-in safety class of a compose verb.
pub fn compose_verb_safety(verb: &str) -> Safety {
    match verb {
        "ps" | "logs" => Safety::ReadOnly,
        "pull" | "up" | "restart" | "stop" => Safety::Idempotent,
        "down" => Safety::Terminal,
        _ => Safety::Reversible,
    }
}

/// The runbook schema, parsed once per process from the checked-in copy (the test
/// `lang_schema` fails when it differs from `runbook_schema()`): parsing it costs a tenth of
/// generating it, and every run, check and plan starts with it.
pub fn cached_runbook_schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(include_str!("../../schemas/runbook.schema.json"))
            .unwrap_or_else(|_| runbook_schema())
    })
}

/// Makes a rendered action fit its type: where the schema wants a string and a template gave a
/// number or a boolean (`argv: ["{{ inputs.replicas }}"]`), the value becomes its text. Fields
/// that accept numbers (`replicas`) keep them.
pub fn coerce_to_schema(def: &str, v: &mut Value) {
    let schema = cached_runbook_schema();
    let defs = &schema["$defs"];
    if let Some(s) = defs.get(def) {
        coerce(v, s, defs, 0);
    }
}

fn coerce(v: &mut Value, schema: &Value, defs: &Value, depth: usize) {
    if depth > 32 {
        return;
    }
    let schema = resolve(schema, defs);
    match v {
        Value::Number(_) | Value::Bool(_) => {
            let types = schema_types(schema, defs);
            let wants_string = types.iter().any(|t| t == "string");
            let takes_scalar = types
                .iter()
                .any(|t| matches!(t.as_str(), "integer" | "number" | "boolean"));
            if wants_string && !takes_scalar {
                *v = Value::String(match v {
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => unreachable!(),
                });
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for i in items {
                    coerce(i, item, defs, depth + 1);
                }
            }
        }
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if let Some(p) = schema.get("properties").and_then(|p| p.get(k)) {
                    coerce(child, p, defs, depth + 1);
                } else if let Some(ap) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    coerce(child, ap, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Follows `$ref` and the non-null branch of `Option` unions.
fn resolve<'a>(mut schema: &'a Value, defs: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match defs.get(r.rsplit('/').next().unwrap_or_default()) {
                Some(d) => schema = d,
                None => break,
            }
        } else if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = any
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 {
                schema = non_null[0];
            } else {
                break;
            }
        } else {
            break;
        }
    }
    schema
}

/// Every JSON type a schema (or any branch of its union) accepts.
fn schema_types(schema: &Value, defs: &Value) -> Vec<String> {
    let mut out = vec![];
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(|t| t.as_str().map(str::to_string)))
        }
        _ => {}
    }
    if let Some(any) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        for b in any {
            out.extend(schema_types(resolve(b, defs), defs));
        }
    }
    if schema.get("enum").is_some() && out.is_empty() {
        out.push("string".into());
    }
    out
}

/// The JSON Schema of the runbook format, as checked in under `schemas/`.
pub fn runbook_schema() -> Value {
    let schema = schemars::schema_for!(RunbookSpec);
    serde_json::to_value(schema).expect("schema serializes")
}
