//! The runbook file format as written in YAML: these types mirror the file one to one and
//! generate `schemas/runbook.schema.json`. Nothing here is validated beyond its shape; the
//! checker (`check`) turns a spec into the stricter model (`model.rs`).

mod actions;
mod backends;
mod coerce;
mod compose;
mod kubernetes;
pub use actions::{
    AnalysisAction, AnalysisMetric, CallAction, ConfirmAction, HttpAction, HttpMethod,
    HttpRequestSpec, InputAction, ManualAction, PromRangeSpec, PrometheusAction, ShellAction,
    ACTION_KINDS,
};
pub use backends::{
    BackendSpec, ComposeBackendSpec, FollowRedirects, HttpBackendSpec, KubernetesBackendSpec,
    PrometheusBackendSpec, ShellBackendSpec,
};
pub use coerce::{cached_runbook_schema, coerce_to_schema, runbook_schema};
pub use compose::{
    compose_verb_safety, ComposeAction, ComposeDown, ComposeLogs, ComposeServices, ComposeSetImage,
    ComposeUp, COMPOSE_VERBS,
};
pub use kubernetes::{
    kube_verb_safety, KubeApplySpec, KubeListSpec, KubeMetaSpec, KubeObjectRef, KubeScaleSpec,
    KubeSetEnvSpec, KubeSetImageSpec, KubeUndoSpec, KubeWorkloadRef, KubernetesAction,
    WorkloadKind, KUBE_VERBS,
};

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
// The larger action kinds are boxed: a step has one action, and unboxed they made every step
// (and every undo) as large as all of them together (3.3 KB; a Kubernetes action alone is
// 1.5 KB), which a long runbook paid twice at load (its specs and its checked steps).
macro_rules! action_fields {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        $vis struct $name {
            $($extra)*
            /// Run a command: `argv` without a shell, or `script` with `sh -c`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub shell: Option<Box<ShellAction>>,
            /// Send an HTTP request.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub http: Option<Box<HttpAction>>,
            /// Act on Kubernetes objects.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub kubernetes: Option<Box<KubernetesAction>>,
            /// Drive a docker compose project.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub compose: Option<Box<ComposeAction>>,
            /// Ask the operator to confirm before going on.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub confirm: Option<ConfirmAction>,
            /// A human step: instructions, then done / skipped / failed with a note.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub manual: Option<ManualAction>,
            /// Ask the operator for a typed value, available as `steps.<id>.value`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub input: Option<Box<InputAction>>,
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

/// A number given literally or as a template such as `"{{ inputs.replicas }}"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrTemplate {
    Int(i64),
    Template(String),
}
