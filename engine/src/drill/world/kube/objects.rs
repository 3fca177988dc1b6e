//! The verbs that work on any kind: `get`, `list`, `delete`, `annotate`, `label` and
//! server-side `apply` (with field managers and their conflicts), on simulated Deployments
//! and on the world's other objects, stored as JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::super::deployment::{Container, Deployment, Rollout, Template};
use super::super::{Call, State};
use super::api::{self, labels_of, Res};
use super::workload;
use super::{merge_patch, object_key};
use crate::backends::kubernetes::selector;
use crate::backends::kubernetes::shared::{self as real, status_error, FIELD_MANAGER};
use crate::backends::{ActionError, ErrorKind};
use crate::spec::{
    KubeApplySpec, KubeListSpec, KubeMetaSpec, KubeObjectRef, KubernetesBackendSpec,
};

/// The stored key of an object: namespaced, or cluster-scoped.
fn key_of(res: &Res, ns: &str, name: &str) -> String {
    object_key(&res.kind, res.namespaced.then_some(ns), name)
}

/// An object as the API server returns it: with the fields it fills in itself.
pub fn served(st: &State, key: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    let (created, version) = st.kube.meta.get(key).copied().unwrap_or((st.start, 1));
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.entry("uid")
            .or_insert_with(|| json!(super::super::deployment::uid_of(key)));
        m.entry("resourceVersion")
            .or_insert_with(|| json!(version.to_string()));
        m.entry("creationTimestamp")
            .or_insert_with(|| json!(crate::exec::clock::stamp(created)));
    }
    o
}

pub fn get(
    st: &State,
    target: &KubernetesBackendSpec,
    a: &KubeObjectRef,
    c: &Call,
) -> Result<Value, ActionError> {
    let res = api::resource(st, &a.kind, a.api_version.as_deref())?;
    let ns = super::namespace(target, a.namespace.as_deref());
    api::authorize(st, target, "get", &res, &ns, Some(&a.name))?;
    if res.kind == "Deployment" {
        return Ok(workload::find(st, &ns, &a.name)?.to_json(c.now));
    }
    let key = key_of(&res, &ns, &a.name);
    match st.kube.objects.get(&key) {
        Some(o) => Ok(served(st, &key, o)),
        None => Err(api::not_found(&res, &ns, &a.name)),
    }
}

pub fn list(
    st: &State,
    target: &KubernetesBackendSpec,
    a: &KubeListSpec,
    c: &Call,
) -> Result<Value, ActionError> {
    let res = api::resource(st, &a.kind, a.api_version.as_deref())?;
    let ns = super::namespace(target, a.namespace.as_deref());
    api::authorize(st, target, "list", &res, &ns, None)?;
    let sel = selector::parse(a.selector.as_deref().unwrap_or(""))
        .map_err(|why| ActionError::new(ErrorKind::Invalid, why))?;
    let mut items = vec![];
    let here = |d: &&Deployment| d.namespace == ns;
    match res.kind.as_str() {
        "Deployment" => items.extend(
            st.kube
                .deployments
                .values()
                .filter(here)
                .filter(|d| sel.matches(&d.labels))
                .map(|d| d.to_json(c.now)),
        ),
        "Pod" => items.extend(
            st.kube
                .deployments
                .values()
                .filter(here)
                .filter(|d| sel.matches(&d.pod_labels))
                .flat_map(|d| d.pods(c.now)),
        ),
        _ => {}
    }
    for (key, o) in &st.kube.objects {
        let same_kind = o.get("kind").and_then(Value::as_str) == Some(res.kind.as_str());
        let o_ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
        if same_kind && (!res.namespaced || o_ns == Some(ns.as_str())) && sel.matches(&labels_of(o))
        {
            items.push(served(st, key, o));
        }
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": { "resourceVersion": st.kube.writes.to_string() },
        "items": items,
    }))
}

pub fn delete(
    st: &mut State,
    target: &KubernetesBackendSpec,
    a: &KubeObjectRef,
    c: &Call,
) -> Result<Value, ActionError> {
    // The real backend reads the object, then deletes it; the result is the object as it was.
    let before = get(st, target, a, c)?;
    let res = api::resource(st, &a.kind, a.api_version.as_deref())?;
    let ns = super::namespace(target, a.namespace.as_deref());
    api::authorize(st, target, "delete", &res, &ns, Some(&a.name))?;
    if res.kind == "Deployment" {
        st.kube
            .deployments
            .shift_remove(&format!("{ns}/{}", a.name));
    } else {
        let key = key_of(&res, &ns, &a.name);
        st.kube.objects.shift_remove(&key);
        st.kube.managers.remove(&key);
        st.kube.meta.remove(&key);
    }
    st.kube.writes += 1;
    Ok(before)
}

/// `annotate` and `label`, with the real backend's edit of `metadata`.
pub fn meta(
    st: &mut State,
    target: &KubernetesBackendSpec,
    a: &KubeMetaSpec,
    field: &str,
    c: &Call,
) -> Result<Value, ActionError> {
    let res = api::resource(st, &a.kind, a.api_version.as_deref())?;
    let ns = super::namespace(target, a.namespace.as_deref());
    if res.kind == "Deployment" {
        return workload::edit(st, target, &ns, &a.name, c, |v, _, _| {
            Ok(real::edit_meta(v, field, &a.set, &a.unset))
        });
    }
    api::authorize(st, target, "get", &res, &ns, Some(&a.name))?;
    let key = key_of(&res, &ns, &a.name);
    let Some(mut obj) = st.kube.objects.get(&key).cloned() else {
        return Err(api::not_found(&res, &ns, &a.name));
    };
    if real::edit_meta(&mut obj, field, &a.set, &a.unset).is_empty() {
        return Ok(served(st, &key, &obj));
    }
    api::authorize(st, target, "update", &res, &ns, Some(&a.name))?;
    st.kube.objects.insert(key.clone(), obj.clone());
    touch(st, &key, c);
    Ok(served(st, &key, &obj))
}

/// Records a write: a new resourceVersion (and the creation time of a new object).
fn touch(st: &mut State, key: &str, c: &Call) {
    st.kube.writes += 1;
    let v = st.kube.writes;
    st.kube
        .meta
        .entry(key.to_string())
        .and_modify(|m| m.1 = v)
        .or_insert((c.now, v));
}

/// A lowercase RFC 1123 subdomain, as the API server requires of most names.
fn name_problem(kind: &str, name: &str) -> Option<String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return None;
    }
    Some(format!(
        "{kind} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ))
}

/// The leaves of an applied document (`.data.mode`), the fields a manager comes to own.
/// Lists are owned whole (the simulation does not merge keyed lists).
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let top = path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind");
                let id = path.len() == 1
                    && path[0] == "metadata"
                    && matches!(k.as_str(), "name" | "namespace");
                if top || id {
                    continue;
                }
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

fn dotted(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

fn at<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |v, k| v.get(k))
}

fn remove_at(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(v, |v, k| v.get_mut(k));
    if let Some(Value::Object(m)) = parent {
        m.remove(last);
    }
}

/// The API server's words for apply conflicts (`Apply failed with 1 conflict: conflict with
/// "other": .data.mode`).
fn conflict_message(conflicts: &[(String, String)]) -> String {
    if let [(manager, path)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with \"{manager}\": {path}");
    }
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, p) in conflicts {
        by.entry(m).or_default().push(p);
    }
    let mut lines = vec![];
    for (m, mut paths) in by {
        // The API server lists each manager's fields in order.
        paths.sort_unstable();
        lines.push(format!("conflicts with \"{m}\":"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Server-side apply of each document: created when absent; a field another manager owns
/// with another value is a 409 conflict unless `force`; fields this manager applied before
/// and no longer applies are removed.
pub fn apply(
    st: &mut State,
    target: &KubernetesBackendSpec,
    a: &KubeApplySpec,
    c: &Call,
) -> Result<Value, ActionError> {
    let docs = real::manifests(a.manifest.as_ref(), a.file.as_deref(), &c.ctx.base_dir)?;
    let manager = a.field_manager.as_deref().unwrap_or(FIELD_MANAGER);
    let mut targets = vec![];
    for doc in &docs {
        let text = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let res = api::resource(st, text("/kind"), Some(text("/apiVersion")))?;
        let ns = super::namespace(
            target,
            Some(text("/metadata/namespace")).filter(|n| !n.is_empty()),
        );
        targets.push((res, ns, text("/metadata/name").to_string()));
    }
    let mut applied = vec![];
    for (doc, (res, ns, name)) in docs.iter().zip(targets) {
        let what = res.what(&ns, &name);
        api::authorize(st, target, "patch", &res, &ns, Some(&name))?;
        if let Some(why) = name_problem(&res.kind, &name) {
            return Err(status_error(&what, 422, "Invalid", &why));
        }
        let mut doc = doc.clone();
        if res.namespaced {
            doc["metadata"]["namespace"] = json!(ns);
        }
        if res.kind == "Deployment" {
            applied.push(apply_deployment(st, &ns, &name, &doc, c));
            continue;
        }
        let key = key_of(&res, &ns, &name);
        let current = st.kube.objects.get(&key).cloned();
        let mut fields = vec![];
        leaves(&doc, &mut vec![], &mut fields);
        let owners = st.kube.managers.entry(key.clone()).or_default();
        let conflicts: Vec<(String, String)> = fields
            .iter()
            .filter(|(p, v)| current.as_ref().and_then(|o| at(o, p)) != Some(v))
            .flat_map(|(p, _)| {
                let path = dotted(p);
                owners
                    .get(&path)
                    .into_iter()
                    .flatten()
                    .filter(|m| *m != manager)
                    .map(move |m| (m.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !conflicts.is_empty() && !a.force {
            return Err(ActionError::new(
                ErrorKind::Failed,
                format!(
                    "{what}: 409 Conflict: {} (another field manager owns these fields; set `force: true` to take them over)",
                    conflict_message(&conflicts)
                ),
            ));
        }
        let mut obj = current.unwrap_or_else(|| json!({}));
        merge_patch(&mut obj, &doc);
        let now_owned: Vec<String> = fields.iter().map(|(p, _)| dotted(p)).collect();
        // Fields this manager no longer applies: it lets go; a field nobody owns goes.
        for (p, set) in owners.iter_mut() {
            if !now_owned.contains(p) && set.remove(manager) && set.is_empty() {
                let keys: Vec<String> = p.split('.').skip(1).map(str::to_string).collect();
                remove_at(&mut obj, &keys);
            }
        }
        owners.retain(|_, set| !set.is_empty());
        for p in now_owned {
            let set = owners.entry(p.clone()).or_default();
            // Forced: the other managers lose the fields they conflicted on.
            if conflicts.iter().any(|(_, cp)| *cp == p) {
                set.clear();
            }
            set.insert(manager.to_string());
        }
        st.kube.objects.insert(key.clone(), obj.clone());
        touch(st, &key, c);
        applied.push(served(st, &key, &obj));
    }
    Ok(if applied.len() == 1 {
        applied.remove(0)
    } else {
        json!({ "apiVersion": "v1", "kind": "List", "items": applied })
    })
}

/// Applies a Deployment: the replicas, labels and pod template of the manifest; a new one
/// starts at revision 1. Field ownership of Deployments is not simulated.
fn apply_deployment(st: &mut State, ns: &str, name: &str, doc: &Value, c: &Call) -> Value {
    let key = format!("{ns}/{name}");
    let start = st.start;
    let stuck = st.faults.rollout_stuck(&key, Some(c.ctx), c.now, &start);
    if !st.kube.deployments.contains_key(&key) {
        let labels = |p: &str| labels_of(&json!({ "metadata": { "labels": doc.pointer(p) } }));
        let d = Deployment {
            namespace: ns.to_string(),
            name: name.to_string(),
            labels: labels("/metadata/labels"),
            pod_labels: labels("/spec/template/metadata/labels"),
            annotations: BTreeMap::new(),
            replicas: 0,
            generation: 0,
            paused: false,
            template: Template {
                containers: vec![Container {
                    name: String::new(),
                    image: String::new(),
                    env: Default::default(),
                }],
                annotations: BTreeMap::new(),
            },
            history: vec![],
            rollout: Rollout {
                started: c.now,
                takes: std::time::Duration::from_secs(30),
                stuck: false,
                from_available: 0,
            },
            takes: std::time::Duration::from_secs(30),
            progress_deadline: std::time::Duration::from_secs(600),
            crashing: vec![],
        };
        st.kube.deployments.insert(key.clone(), d);
    }
    let d = st.kube.deployments.get_mut(&key).expect("inserted above");
    let before = d.to_json(c.now);
    let mut obj = before.clone();
    let mut patch = doc.clone();
    if let Some(m) = patch.as_object_mut() {
        m.remove("status");
    }
    merge_patch(&mut obj, &patch);
    if doc.pointer("/spec/replicas").is_none() && d.history.is_empty() {
        obj["spec"]["replicas"] = json!(1);
    }
    d.absorb(&obj, c.now, stuck);
    let mut out = d.to_json(c.now);
    out["status"] = before["status"].clone();
    out
}
