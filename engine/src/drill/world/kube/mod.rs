//! The simulated cluster: Deployments (see `deployment.rs`) and any other objects stored as
//! JSON, and the `kubernetes:` verbs acting on them, with results and errors shaped like the
//! real backend's: `api` (kinds, users and permissions, not found), `workload` (the
//! Deployment verbs, through the real backend's edit functions), `objects` (get, list,
//! delete, annotate, label, server-side apply), `preview` (`plan --live`).

mod api;
mod objects;
mod preview;
mod workload;

pub use preview::preview;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::deployment::Deployment;
use super::{Call, Reply, Snapshot, State};
use crate::backends::KubeCall;
use crate::drill::spec::KubeUserSpec;
use crate::spec::KubernetesBackendSpec;

/// Deployments by `namespace/name`, other objects by `namespace/Kind/name`.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub deployments: IndexMap<String, Deployment>,
    pub objects: IndexMap<String, Value>,
    /// Who calls (by kubeconfig or context) and what they may do; nobody listed: everything.
    pub users: Vec<KubeUserSpec>,
    /// By object key: which field managers own each applied field (`.data.mode`); applying
    /// the same value as another manager shares the field, as server-side apply does.
    pub managers: HashMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// By object key: when it was created and its resourceVersion (world objects: the
    /// drill's start, version 1).
    pub meta: HashMap<String, (DateTime<Utc>, u64)>,
    /// Writes so far (the source of resourceVersions).
    pub writes: u64,
}

/// The key of an object: `namespace/Kind/name`, or `Kind/name` when it has no namespace.
pub fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{kind}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

impl Cluster {
    /// Merge-patches a stored object (RFC 7386); creates it when absent.
    pub fn patch_object(&mut self, key: &str, patch: &Value) {
        let obj = self.objects.entry(key.to_string()).or_insert(Value::Null);
        merge_patch(obj, patch);
    }

    pub fn snapshot(&self, s: &mut Snapshot) {
        for (key, d) in &self.deployments {
            let mut f = BTreeMap::new();
            f.insert("revision".into(), json!(d.revision()));
            f.insert("replicas".into(), json!(d.replicas));
            for c in &d.template.containers {
                let suffix = if d.template.containers.len() == 1 {
                    String::new()
                } else {
                    format!("[{}]", c.name)
                };
                f.insert(format!("image{suffix}"), json!(c.image));
                if !c.env.is_empty() {
                    f.insert(format!("env{suffix}"), json!(c.env));
                }
            }
            if d.paused {
                f.insert("paused".into(), json!(true));
            }
            for (name, m) in [
                ("annotations", &d.annotations),
                ("labels", &d.labels),
                ("template_annotations", &d.template.annotations),
            ] {
                if !m.is_empty() {
                    f.insert(name.into(), json!(m));
                }
            }
            s.insert(format!("kubernetes deployment {key}"), f);
        }
        for (key, obj) in &self.objects {
            let mut f = BTreeMap::new();
            flatten(obj, String::new(), &mut f);
            s.insert(format!("kubernetes object {key}"), f);
        }
    }
}

fn flatten(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(x, p, out);
            }
        }
        other => {
            out.insert(
                if path.is_empty() {
                    "object".into()
                } else {
                    path
                },
                other.clone(),
            );
        }
    }
}

pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// `Deployment prod/web` (the real backend's `ObjRef::what`), for messages.
pub fn describe(target: &KubernetesBackendSpec, call: &KubeCall) -> String {
    let ns = |explicit: &Option<String>| namespace(target, explicit.as_deref());
    let workload = |kind: Option<crate::spec::WorkloadKind>, n: &Option<String>, name: &str| {
        format!("{:?} {}/{name}", kind.unwrap_or_default(), ns(n))
    };
    let object = |kind: &str, n: &Option<String>, name: &str| format!("{kind} {}/{name}", ns(n));
    match call {
        KubeCall::Get(a) | KubeCall::Delete(a) => object(&a.kind, &a.namespace, &a.name),
        KubeCall::Annotate(a) | KubeCall::Label(a) => object(&a.kind, &a.namespace, &a.name),
        KubeCall::List(a) => format!("{} in namespace {}", a.kind, ns(&a.namespace)),
        KubeCall::Scale(a) => workload(a.kind, &a.namespace, &a.name),
        KubeCall::SetImage(a) => workload(a.kind, &a.namespace, &a.name),
        KubeCall::SetEnv(a) => workload(a.kind, &a.namespace, &a.name),
        KubeCall::RolloutUndo(a) => workload(a.kind, &a.namespace, &a.name),
        KubeCall::RolloutRestart(a)
        | KubeCall::RolloutHistory(a)
        | KubeCall::RolloutStatus(a)
        | KubeCall::Pause(a)
        | KubeCall::Resume(a) => workload(a.kind, &a.namespace, &a.name),
        KubeCall::Apply(a) => {
            let m = a.manifest.as_ref();
            let text = |p: &str| m.and_then(|m| m.pointer(p)).and_then(Value::as_str);
            match (text("/kind"), text("/metadata/name")) {
                (Some(k), Some(n)) => {
                    let explicit = text("/metadata/namespace").map(str::to_string);
                    object(k, &explicit, n)
                }
                _ => "apply".into(),
            }
        }
    }
}

/// The step's namespace, else the backend's, else the context's (`default` in a drill).
pub(super) fn namespace(target: &KubernetesBackendSpec, explicit: Option<&str>) -> String {
    explicit
        .filter(|n| !n.is_empty())
        .or(target.namespace.as_deref().filter(|n| !n.is_empty()))
        .unwrap_or("default")
        .to_string()
}

/// Runs one verb against the cluster.
pub fn call(st: &mut State, target: &KubernetesBackendSpec, call: &KubeCall, c: &Call) -> Reply {
    let res = match call {
        KubeCall::Get(a) => objects::get(st, target, a, c).map(Reply::ok),
        KubeCall::List(a) => objects::list(st, target, a, c).map(Reply::ok),
        KubeCall::Delete(a) => objects::delete(st, target, a, c).map(Reply::ok),
        KubeCall::Annotate(a) => objects::meta(st, target, a, "annotations", c).map(Reply::ok),
        KubeCall::Label(a) => objects::meta(st, target, a, "labels", c).map(Reply::ok),
        KubeCall::Apply(a) => objects::apply(st, target, a, c).map(Reply::ok),
        _ => workload::call(st, target, call, c),
    };
    res.unwrap_or_else(Reply::err)
}

#[cfg(test)]
mod tests;
