//! Actions as written in a step: shell, HTTP, Prometheus, analysis, confirm, manual, input,
//! call (Kubernetes and Compose have their own modules).

use super::{InputType, OnInconclusive};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
