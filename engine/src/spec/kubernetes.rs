//! Kubernetes actions: one verb per step, with its arguments, and each verb's safety.

use super::{IntOrTemplate, Safety};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The built-in safety class of a Kubernetes verb.
pub fn kube_verb_safety(verb: &str) -> Safety {
    match verb {
        "get" | "list" | "rollout_history" | "rollout_status" => Safety::ReadOnly,
        "scale" | "set_env" | "annotate" | "label" | "pause" | "resume" => Safety::Idempotent,
        "delete" => Safety::Terminal,
        _ => Safety::Reversible,
    }
}
