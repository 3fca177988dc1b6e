//! The drill file format (`kind: Drill`) as written in YAML: these types mirror the file one to
//! one and generate `schemas/drill.schema.json`. The checker (`drill/check.rs`) turns a spec
//! into a `Drill`; nothing here is validated beyond its shape.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{ApiVersion, HttpMethod};

/// A tabletop drill: a runbook run through the real runner against a simulated world, with
/// scripted operator answers and faults, on a virtual clock, and the result it must reach.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Drill")]
pub struct DrillSpec {
    /// Format version. Always `runbook/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Always `Drill`.
    pub kind: DrillKind,
    pub metadata: DrillMetadata,
    /// Path of the runbook to drill, relative to this file, e.g. `../k8s-rollback.yaml`.
    pub runbook: String,
    /// Values for the runbook's inputs, checked against its declarations like `--inputs`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, Value>,
    /// Who the journal names as the operator (default `drill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The incident reason the journal records (default `drill <name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scripted operator answers, by gate id (`<step>`, `<call step>/<step>`, `<step>.undo`):
    /// `yes`/`no`/`skip`/`abort` for confirmations and terminal steps, `done`/`skipped`/`failed`
    /// (optionally `done:<note>`) for manual steps, a value for input steps. A gate without an
    /// answer ends the drill as `needs-answer`, as in a CI run.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub answers: IndexMap<String, Scalar>,
    /// Stand-in values for the secrets of the runbook (and of runbooks it calls). A drill never
    /// reads real secrets; a secret not listed here gets the value `drill-secret-<name>`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, String>,
    /// Values of the environment variables the runbook declares (`env:`); the host's
    /// environment is never read. Unlisted variables are empty.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Virtual time at which the drill starts, RFC 3339 (default `2026-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The simulated world the runbook acts on.
    #[serde(default)]
    pub world: WorldSpec,
    /// Failures injected at a step, an attempt, or a virtual time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What the run must end with. Default: outcome `succeeded`, nothing else checked.
    #[serde(default)]
    pub expect: ExpectSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DrillKind {
    Drill,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillMetadata {
    /// Identifier, unique among the drills run together: lowercase letters, digits, dashes.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]*$"))]
    pub name: String,
    /// What the drill rehearses, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A YAML scalar (`yes`, `3`, `true`, `done: told #ops`), used as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    /// The answer as `--answer` would carry it (`true` answers `yes`, `false` answers `no`).
    pub fn text(&self) -> String {
        match self {
            Scalar::Bool(true) => "yes".into(),
            Scalar::Bool(false) => "no".into(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The world

/// The simulated world. Every call a runbook makes must be scripted here: an unscripted call
/// fails the step with the call shown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// The cluster that every `kubernetes` backend of the runbook reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeWorldSpec>,
    /// HTTP endpoints: the first rule whose `match` and `when` hold answers a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRuleSpec>,
    /// Compose projects that every `compose` backend reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeWorldSpec>,
    /// Commands: the first rule whose `match` and `when` hold answers a `shell` step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<ShellRuleSpec>,
    /// Prometheus: the first rule whose `match` and `when` hold answers a query (of a
    /// `prometheus` step, or a metric of an `analysis` step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRuleSpec>,
}

/// Scripted metrics: what a query gives over virtual time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricRuleSpec {
    /// The query as sent (`*` matches any run of characters), or the `name` of an analysis
    /// metric.
    #[serde(rename = "match")]
    pub matches: String,
    /// Only while the world is in this state (as for HTTP rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WorldStateSpec>,
    /// The answer over virtual time since the drill started: the last point whose `at` has
    /// passed answers. A single point may be written without a list.
    pub values: OneOrMany<MetricPointSpec>,
}

/// What a query gives from `at` on: one `value`, several `series`, or `no_data`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricPointSpec {
    /// From this much virtual time after the drill starts (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// One series with this value: a number, or `NaN`, `+Inf`, `-Inf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<MetricValue>,
    /// Several series (labels and value each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<MetricSeriesSpec>>,
    /// No series at all (an empty vector), as when the metric is not scraped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_data: bool,
    /// Instead of `at`: answer this many queries with this point, then go on to the next (as
    /// HTTP answers do). A point without `times` answers for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
}

/// One series of a scripted answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSeriesSpec {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    pub value: MetricValue,
}

/// A sample value: a number, or the text `NaN`, `+Inf` or `-Inf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MetricValue {
    Number(f64),
    Text(String),
}

impl MetricValue {
    /// The value, or None for text that is not `NaN`, `+Inf` or `-Inf`.
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            MetricValue::Number(n) => Some(*n),
            MetricValue::Text(t) => crate::backends::prometheus::parse_value(t.trim()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeWorldSpec {
    /// Deployments, with their revision history and rollout speed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentSpec>,
    /// Any other objects (`get`, `list`, `apply`, `annotate`, ...), written as the API returns
    /// them: `apiVersion`, `kind`, `metadata.name`, `metadata.namespace`, then any fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Value>,
    /// Who calls the API server. A backend whose `kubeconfig` (or `context`) names one of
    /// these users calls as that user, and whatever its rules do not allow is answered
    /// `403 Forbidden`, as the API server's RBAC does. A backend naming none of them has every
    /// permission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<KubeUserSpec>,
}

/// A user of the simulated API server and its permissions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeUserSpec {
    /// The user name the API server reports (`User "nobody" cannot get ...`).
    pub user: String,
    /// The kubeconfig context the user's credentials come from (named in errors).
    pub context: String,
    /// The kubeconfig file, as the backend names it. Without it, a backend is this user when
    /// its `context` is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// What the user may do, as RBAC rules; none: every request is forbidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<KubeRuleSpec>,
}

/// An RBAC rule: API verbs (`get`, `list`, `update`, `patch`, `delete`, or `*`) on resources
/// (`deployments`, `configmaps`, `deployments.apps`, or `*`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeRuleSpec {
    pub verbs: Vec<String>,
    pub resources: Vec<String>,
}

/// A Deployment with one container.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Desired replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Container name (default: the Deployment's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The revision history, oldest first; the last one is running now. An entry is an image,
    /// or `{ image, env }`.
    #[schemars(length(min = 1))]
    pub revisions: Vec<RevisionSpec>,
    /// Labels of the Deployment and its pods (default `app: <name>`), for `list` selectors.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    /// Available replicas at the start (default: all of them, or what a stuck rollout leaves
    /// when the current image is in `crashing_images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u32>,
    /// Images whose pods never become ready: a rollout to them never completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crashing_images: Vec<String>,
    /// The rollout is paused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// One revision: an image, or an image with environment variables.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RevisionSpec {
    Image(String),
    Detailed(RevisionDetail),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionDetail {
    pub image: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
}

/// How rollouts progress on the virtual clock.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// Virtual time a rollout (or a scale-up) takes to become available (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<String>,
    /// `progressDeadlineSeconds`: when a stuck rollout is reported as failed (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeWorldSpec {
    /// Projects by name. A backend without `project:` reaches the only project.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub projects: IndexMap<String, ProjectSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    /// Services by name.
    pub services: IndexMap<String, ServiceSpec>,
    /// Virtual time `up`, `restart`, `stop`, `pull`, `down` and `set_image` take (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<String>,
    /// Images whose containers keep restarting (unhealthy; `up --wait` fails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crashing_images: Vec<String>,
    /// Images a `pull` cannot fetch (`pull access denied`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpullable_images: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The image the compose file names, running now.
    pub image: String,
    /// Default `running` (`restarting` when the image is in `crashing_images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
    /// What `logs` returns for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Running,
    Restarting,
    Exited,
    /// No container (never created, or removed by `down`).
    Absent,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Restarting => "restarting",
            ServiceState::Exited => "exited",
            ServiceState::Absent => "absent",
        }
    }
}

/// One or more items: `respond: { ... }` or `respond: [ ..., ... ]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Scripted HTTP answers for matching requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRuleSpec {
    #[serde(rename = "match")]
    pub matches: HttpMatchSpec,
    /// Only while the world is in this state, e.g. `{ kubernetes: { deployments:
    /// { prod/flowengine: { image: "flowengine:v1.0.0" } } } }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WorldStateSpec>,
    /// The answers in order; each is used `times` times (default: for ever). When the last
    /// one is used up, the rule stops matching.
    pub respond: OneOrMany<HttpResponseSpec>,
    /// How the world changes when this rule answers (e.g. a GitOps PR being merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpMatchSpec {
    /// Default: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The full URL with its query string; `*` matches any run of characters.
    pub url: String,
    /// Headers the request must carry (names case-insensitive, values with `*`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// The request body as text, with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// JSON the request body must contain (objects may have more keys). A string
    /// `"{{ run.operator }}"`, `"{{ run.reason }}"`, `"{{ run.id }}"` or
    /// `"{{ run.started_at }}"` stands for the run's value (the drill's, or the trainee's in
    /// training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpResponseSpec {
    /// Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A JSON body (sets `content-type: application/json`). `{{ run.operator }}`,
    /// `{{ run.reason }}`, `{{ run.id }}` and `{{ run.started_at }}` in its strings are the
    /// run's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// A text body (`{{ run.operator }}`, `{{ run.reason }}`, `{{ run.id }}`,
    /// `{{ run.started_at }}` are replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Use this answer this many times, then go on to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
    /// No answer: the request fails with this transport error (retryable), e.g.
    /// `connection refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Virtual time the answer takes (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<String>,
}

/// Scripted results for matching commands.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellRuleSpec {
    #[serde(rename = "match")]
    pub matches: ShellMatchSpec,
    /// Only while the world is in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WorldStateSpec>,
    /// The results in order; each is used `times` times (default: for ever).
    pub respond: OneOrMany<ShellResponseSpec>,
    /// How the world changes when this rule answers (e.g. a `git revert` that a GitOps
    /// controller applies `after` a while).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectSpec>,
}

/// Exactly one of `argv` or `script`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellMatchSpec {
    /// One pattern per argument (`*` matches any run of characters within it); a last
    /// element `**` matches any remaining arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A pattern for the text of a `script:` step, with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellResponseSpec {
    /// Exit code (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
    /// Virtual time the command takes (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<String>,
}

/// A change a scripted call makes to the world, at once or `after` a delay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EffectSpec {
    /// Virtual time until the change lands (default: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeChangeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeChangeSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeChangeSpec {
    /// By `namespace/name`; a new image or env starts a rollout like `set_image` does.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub deployments: IndexMap<String, DeploymentChangeSpec>,
    /// By `namespace/Kind/name` (`Kind/name` when cluster-scoped): a JSON merge patch.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub objects: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentChangeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Variables to set; `null` removes one.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, Option<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeChangeSpec {
    /// By `project/service`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub services: IndexMap<String, ServiceChangeSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceChangeSpec {
    /// The service now runs this image (configured and running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
}

/// A description of (part of) the world's state, used by `when` and `expect.world`. Every
/// field given must hold; fields left out are not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorldStateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeStateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeStateSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeStateSpec {
    /// By `namespace/name`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub deployments: IndexMap<String, DeploymentStateSpec>,
    /// By `namespace/Kind/name`: JSON the object must contain; `null` means it must not exist.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub objects: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentStateSpec {
    /// `false`: the Deployment must have been deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The container's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Desired replicas (`spec.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `status.availableReplicas` at that moment of virtual time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u32>,
    /// `status.updatedReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<u32>,
    /// The current revision number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Container environment variables; `null` means the variable must be absent.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, Option<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeStateSpec {
    /// By `project/service`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub services: IndexMap<String, ServiceStateSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceStateSpec {
    /// The image the container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
}

// ---------------------------------------------------------------------------------------------
// Faults

/// One injected failure: what fails (exactly one of `error`, `rollout_never_available`,
/// `http_failing`) and when (`step`/`attempt`, or `at`/`for`; default: the whole drill).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only calls made by this step (`<call step>/<step>` inside a call, `<step>.undo` for
    /// its undo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Only this attempt of `step` (1 is the first). Default: every attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub attempt: Option<u32>,
    /// From this much virtual time after the drill starts, e.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// For this long after `at` (default: to the end).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub lasts: Option<String>,
    /// `error` only: the calls fail with this message, e.g. `connection refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `error` only: how the call fails (default `transport`, which retries and polls treat as
    /// "not yet").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FaultErrorKind>,
    /// `error` only: only calls to this kind of backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// `error` only: fail this many calls, then work again. Default: every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
    /// Rollouts (and scale-ups) of this Deployment, `namespace/name`, never become available;
    /// `rollout_status` fails when the progress deadline passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_never_available: Option<String>,
    /// Requests to an endpoint keep failing, whatever the script says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_failing: Option<HttpFailingSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FaultErrorKind {
    /// Could not reach the target (retryable).
    Transport,
    /// The call ran out of time (retryable).
    Timeout,
    /// The target answered with a failure (retryable).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Shell,
    Http,
    Kubernetes,
    Compose,
    Prometheus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpFailingSpec {
    /// Default: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// URL pattern, with `*`.
    pub url: String,
    /// The status returned (default 503), unless `error` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A transport error instead of a status, e.g. `connection reset by peer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Expectations

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// How the run must end (default `succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ExpectedOutcome>,
    /// The step the run must stop at (for `failed`, `aborted`, `needs-answer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Text the run's final message must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How given steps must end, by id (`<step>.undo` for the undo of a step).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub steps: IndexMap<String, ExpectedStep>,
    /// The state the runbook must leave the world in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<WorldStateSpec>,
    /// Virtual time budget for the whole run, e.g. `15m` (usually the runbook's MTTR target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedOutcome {
    Succeeded,
    Failed,
    Aborted,
    NeedsAnswer,
}

impl ExpectedOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedOutcome::Succeeded => "succeeded",
            ExpectedOutcome::Failed => "failed",
            ExpectedOutcome::Aborted => "aborted",
            ExpectedOutcome::NeedsAnswer => "needs-answer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedStep {
    Succeeded,
    Failed,
    Skipped,
    Aborted,
    NeedsAnswer,
    /// The step never started (or the undo never ran).
    NotRun,
}

impl ExpectedStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedStep::Succeeded => "succeeded",
            ExpectedStep::Failed => "failed",
            ExpectedStep::Skipped => "skipped",
            ExpectedStep::Aborted => "aborted",
            ExpectedStep::NeedsAnswer => "needs-answer",
            ExpectedStep::NotRun => "not-run",
        }
    }
}

/// The JSON Schema of drill files, as checked in under `schemas/`.
pub fn drill_schema() -> Value {
    let schema = schemars::schema_for!(DrillSpec);
    serde_json::to_value(schema).expect("schema serializes")
}
