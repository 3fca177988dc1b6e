//! The simulated cluster: Deployments (see `deployment.rs`) and any other objects stored as
//! JSON, and the `kubernetes:` verbs acting on them, with results shaped like the API's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::deployment::{replicaset_name, set_env, Container, Deployment};
use super::pattern::selector_matches;
use super::{later, unscripted, Call, Reply, Snapshot, State};
use crate::backends::kubernetes::status::status_of;
use crate::backends::{ActionError, ErrorKind};
use crate::exec::clock::stamp;
use crate::spec::{IntOrTemplate, KubernetesBackendSpec, WorkloadKind};
/// Deployments by `namespace/name`, other objects by `namespace/Kind/name`.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub deployments: IndexMap<String, Deployment>,
    pub objects: IndexMap<String, Value>,
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

fn merge_patch(target: &mut Value, patch: &Value) {
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

/// `kubernetes set_image Deployment prod/flowengine`, for messages.
pub fn describe(target: &KubernetesBackendSpec, verb: &str, args: &Value) -> String {
    let kind = args
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(match verb {
            "apply" => "",
            _ => "Deployment",
        });
    let name = args.get("name").and_then(Value::as_str).unwrap_or("");
    if verb == "apply" || name.is_empty() {
        return format!("kubernetes {verb} {kind}").trim_end().to_string();
    }
    let ns = namespace(target, args);
    format!("kubernetes {verb} {kind} {ns}/{name}")
}

fn namespace(target: &KubernetesBackendSpec, args: &Value) -> String {
    args.get("namespace")
        .and_then(Value::as_str)
        .or(target.namespace.as_deref())
        .unwrap_or("default")
        .to_string()
}

fn str_arg<'a>(args: &'a Value, field: &str, what: &str) -> Result<&'a str, ActionError> {
    args.get(field).and_then(Value::as_str).ok_or_else(|| {
        ActionError::new(
            ErrorKind::Invalid,
            format!("{what}: `{field}` is missing or not text"),
        )
    })
}

fn int_arg(v: &Value, what: &str, field: &str) -> Result<i64, ActionError> {
    let parsed = serde_json::from_value::<IntOrTemplate>(v.clone())
        .ok()
        .and_then(|i| match i {
            IntOrTemplate::Int(n) => Some(n),
            IntOrTemplate::Template(s) => s.trim().parse().ok(),
        });
    parsed.ok_or_else(|| {
        ActionError::new(
            ErrorKind::Invalid,
            format!("{what}: `{field}` must be an integer, got {v}"),
        )
    })
}

/// Runs one verb against the cluster.
pub fn call(
    st: &mut State,
    target: &KubernetesBackendSpec,
    verb: &str,
    args: &Value,
    c: &Call,
) -> Reply {
    match dispatch(st, target, verb, args, c) {
        Ok(r) => r,
        Err(e) => Reply::err(e),
    }
}

fn dispatch(
    st: &mut State,
    target: &KubernetesBackendSpec,
    verb: &str,
    args: &Value,
    c: &Call,
) -> Result<Reply, ActionError> {
    let ns = namespace(target, args);
    let now = c.now;
    let kind = args
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Deployment");
    let workload_verbs = [
        "scale",
        "set_image",
        "set_env",
        "rollout_restart",
        "rollout_undo",
        "rollout_history",
        "rollout_status",
        "pause",
        "resume",
    ];
    if workload_verbs.contains(&verb) && kind != "Deployment" {
        return Err(unscripted(
            c.what,
            "the drill world simulates Deployments only",
        ));
    }
    let name = args
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let key = format!("{ns}/{name}");
    let start = st.start;
    let stuck = st.faults.rollout_stuck(&key, Some(c.ctx), now, &start);
    match verb {
        "get" if kind == "Deployment" => Ok(Reply::ok(deployment(st, &key, c)?.to_json(now))),
        "get" => {
            let okey = object_key(kind, Some(&ns), &name);
            let cluster_key = object_key(kind, None, &name);
            match st
                .kube
                .objects
                .get(&okey)
                .or_else(|| st.kube.objects.get(&cluster_key))
            {
                Some(o) => Ok(Reply::ok(o.clone())),
                None => Err(unscripted(
                    c.what,
                    format!(
                        "no such object in the world (it has: {})",
                        listing(st.kube.objects.keys())
                    ),
                )),
            }
        }
        "list" => list(st, kind, &ns, args, c),
        "rollout_status" => rollout_status(deployment(st, &key, c)?, now),
        "rollout_history" => {
            let d = deployment(st, &key, c)?;
            let revisions: Vec<Value> = d
                .history
                .iter()
                .map(|r| {
                    json!({
                        "revision": r.number,
                        "replicaset": replicaset_name(d, &r.template),
                        "images": r.template.containers.iter().map(|k| k.image.clone()).collect::<Vec<_>>(),
                        "change_cause": null,
                        "created": stamp(r.created),
                        "current": r.number == d.revision(),
                    })
                })
                .collect();
            Ok(Reply::ok(json!({
                "kind": "Deployment",
                "name": d.name,
                "namespace": d.namespace,
                "current_revision": d.revision(),
                "revisions": revisions,
            })))
        }
        "scale" => {
            let n = int_arg(
                args.get("replicas").unwrap_or(&Value::Null),
                c.what,
                "replicas",
            )?;
            let n = u32::try_from(n).map_err(|_| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("{}: replicas must be 0 or more, got {n}", c.what),
                )
            })?;
            let d = deployment_mut(st, &key, c)?;
            d.scale(n, now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "set_image" => {
            let image = str_arg(args, "image", c.what)?.to_string();
            // `container: ""` means "the only one", as for the real backend.
            let container = args
                .get("container")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            let d = deployment_mut(st, &key, c)?;
            let ctr = container_mut(d, container, c.what)?;
            ctr.image = image;
            d.template_changed(now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "set_env" => {
            let container = args
                .get("container")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            let set: Vec<(String, String)> = args
                .get("set")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let unset: Vec<String> = args
                .get("unset")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let d = deployment_mut(st, &key, c)?;
            if let Some(name) = container {
                container_mut(d, Some(name), c.what)?;
            }
            for ctr in d
                .template
                .containers
                .iter_mut()
                .filter(|k| container.is_none_or(|n| n == k.name))
            {
                for (k, v) in &set {
                    set_env(&mut ctr.env, k, Some(v));
                }
                for k in &unset {
                    set_env(&mut ctr.env, k, None);
                }
            }
            d.template_changed(now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "rollout_restart" => {
            let d = deployment_mut(st, &key, c)?;
            if d.paused {
                return Err(paused(c.what, d));
            }
            d.template
                .annotations
                .insert("kubectl.kubernetes.io/restartedAt".into(), stamp(now));
            d.template_changed(now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "rollout_undo" => {
            let to = match args.get("to_revision") {
                None | Some(Value::Null) => 0,
                Some(v) => int_arg(v, c.what, "to_revision")?,
            };
            let d = deployment_mut(st, &key, c)?;
            if d.paused {
                return Err(paused(c.what, d));
            }
            let template = if to == 0 {
                // The revision before the current one.
                match d.history.len() {
                    n if n >= 2 => d.history[n - 2].template.clone(),
                    _ => {
                        return Err(ActionError::new(
                            ErrorKind::Failed,
                            format!(
                                "{}: no rollout history found for deployment \"{}\"",
                                c.what, d.name
                            ),
                        ))
                    }
                }
            } else {
                match d.history.iter().find(|r| r.number == to) {
                    Some(r) => r.template.clone(),
                    None => {
                        let known: Vec<String> =
                            d.history.iter().map(|r| r.number.to_string()).collect();
                        return Err(ActionError::new(
                            ErrorKind::Invalid,
                            format!(
                                "{}: unable to find the specified revision {to} in history (it has: {})",
                                c.what,
                                known.join(", ")
                            ),
                        ));
                    }
                }
            };
            d.template = template;
            d.template_changed(now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "pause" | "resume" => {
            let d = deployment_mut(st, &key, c)?;
            let pause = verb == "pause";
            if d.paused != pause {
                d.paused = pause;
                d.generation += 1;
                d.reconcile(now, stuck);
            }
            Ok(Reply::ok(d.to_json(now)))
        }
        "annotate" | "label" => {
            let set: BTreeMap<String, String> = args
                .get("set")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let unset: Vec<String> = args
                .get("unset")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let field = if verb == "annotate" {
                "annotations"
            } else {
                "labels"
            };
            if kind == "Deployment" {
                let d = deployment_mut(st, &key, c)?;
                let m = if verb == "annotate" {
                    &mut d.annotations
                } else {
                    &mut d.labels
                };
                m.extend(set);
                for k in &unset {
                    m.remove(k);
                }
                return Ok(Reply::ok(d.to_json(now)));
            }
            let okey = object_key(kind, Some(&ns), &name);
            let okey = if st.kube.objects.contains_key(&okey) {
                okey
            } else {
                object_key(kind, None, &name)
            };
            let Some(obj) = st.kube.objects.get_mut(&okey) else {
                return Err(unscripted(
                    c.what,
                    format!(
                        "no such object in the world (it has: {})",
                        listing(st.kube.objects.keys())
                    ),
                ));
            };
            let mut patch = Map::new();
            for (k, v) in set {
                patch.insert(k, json!(v));
            }
            for k in unset {
                patch.insert(k, Value::Null);
            }
            merge_patch(obj, &json!({ "metadata": { field: patch } }));
            Ok(Reply::ok(obj.clone()))
        }
        "delete" => {
            // The result is the object as it was, as the API returns it.
            if kind == "Deployment" {
                let before = deployment(st, &key, c)?.to_json(now);
                st.kube.deployments.shift_remove(&key);
                return Ok(Reply::ok(before));
            }
            let okey = object_key(kind, Some(&ns), &name);
            let okey = if st.kube.objects.contains_key(&okey) {
                okey
            } else {
                object_key(kind, None, &name)
            };
            match st.kube.objects.shift_remove(&okey) {
                Some(before) => Ok(Reply::ok(before)),
                None => Err(unscripted(
                    c.what,
                    format!(
                        "no such object in the world (it has: {})",
                        listing(st.kube.objects.keys())
                    ),
                )),
            }
        }
        "apply" => apply(st, target, args, c, stuck),
        other => Err(unscripted(
            c.what,
            format!("the drill world does not simulate `{other}`"),
        )),
    }
}

fn paused(what: &str, d: &Deployment) -> ActionError {
    ActionError::new(
        ErrorKind::Invalid,
        format!(
            "{what}: deployment \"{}\" is paused; resume it first",
            d.name
        ),
    )
}

fn listing<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

fn deployment<'a>(st: &'a State, key: &str, c: &Call) -> Result<&'a Deployment, ActionError> {
    st.kube.deployments.get(key).ok_or_else(|| {
        unscripted(
            c.what,
            format!(
                "no such Deployment in the world (it has: {})",
                listing(st.kube.deployments.keys())
            ),
        )
    })
}

fn deployment_mut<'a>(
    st: &'a mut State,
    key: &str,
    c: &Call,
) -> Result<&'a mut Deployment, ActionError> {
    let known = listing(st.kube.deployments.keys());
    st.kube.deployments.get_mut(key).ok_or_else(|| {
        unscripted(
            c.what,
            format!("no such Deployment in the world (it has: {known})"),
        )
    })
}

fn container_mut<'a>(
    d: &'a mut Deployment,
    name: Option<&str>,
    what: &str,
) -> Result<&'a mut Container, ActionError> {
    let names: Vec<String> = d
        .template
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let idx = match name {
        Some(n) => d.template.containers.iter().position(|c| c.name == n),
        None if names.len() == 1 => Some(0),
        None => None,
    };
    match idx {
        Some(i) => Ok(&mut d.template.containers[i]),
        None => Err(ActionError::new(
            ErrorKind::Invalid,
            format!(
                "{what}: {} (containers: {})",
                match name {
                    Some(n) => format!("no container `{n}`"),
                    None => "name the container".into(),
                },
                names.join(", ")
            ),
        )),
    }
}

fn rollout_status(d: &Deployment, now: DateTime<Utc>) -> Result<Reply, ActionError> {
    if d.paused {
        return Err(ActionError::new(
            ErrorKind::Failed,
            format!(
                "deployment \"{}\" is paused; resume it before waiting for its rollout",
                d.name
            ),
        ));
    }
    // The object as the API would show it now, read by the real backend's own rules: the
    // same words ("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas
    // have been updated..."), the same failure at the progress deadline.
    let obj = d.to_json(now);
    let (message, done) =
        status_of(WorkloadKind::Deployment, &obj).map_err(|e| e.with_result(obj.clone()))?;
    if done {
        return Ok(Reply::ok(obj));
    }
    // Look again when the status next changes, so progress shows as it happens.
    let at = d
        .next_change(now)
        .unwrap_or_else(|| later(now, std::time::Duration::from_secs(1)));
    Ok(Reply::WaitUntil(at, message))
}

fn list(st: &State, kind: &str, ns: &str, args: &Value, c: &Call) -> Result<Reply, ActionError> {
    let selector = args.get("selector").and_then(Value::as_str).unwrap_or("");
    let bad = |e: String| ActionError::new(ErrorKind::Invalid, format!("{}: {e}", c.what));
    let mut items = vec![];
    match kind {
        "Deployment" | "Pod" => {
            for d in st.kube.deployments.values().filter(|d| d.namespace == ns) {
                if selector_matches(selector, &d.labels).map_err(bad)? {
                    if kind == "Deployment" {
                        items.push(d.to_json(c.now));
                    } else {
                        items.extend(d.pods(c.now));
                    }
                }
            }
        }
        _ => {
            for o in st.kube.objects.values() {
                let same_kind = o.get("kind").and_then(Value::as_str) == Some(kind);
                let o_ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                let labels: BTreeMap<String, String> = o
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                if same_kind
                    && o_ns.is_none_or(|n| n == ns)
                    && selector_matches(selector, &labels).map_err(bad)?
                {
                    items.push(o.clone());
                }
            }
        }
    }
    Ok(Reply::ok(
        json!({ "apiVersion": "v1", "kind": "List", "items": items }),
    ))
}

fn apply(
    st: &mut State,
    target: &KubernetesBackendSpec,
    args: &Value,
    c: &Call,
    stuck: bool,
) -> Result<Reply, ActionError> {
    let Some(m) = args.get("manifest").filter(|m| m.is_object()) else {
        return Err(unscripted(
            c.what,
            "the drill world applies inline `manifest:` objects only (not files)",
        ));
    };
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = m
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() || name.is_empty() {
        return Err(ActionError::new(
            ErrorKind::Invalid,
            format!("{}: the manifest needs `kind` and `metadata.name`", c.what),
        ));
    }
    let ns = m
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| namespace(target, &Value::Null));
    if kind == "Deployment" {
        let key = format!("{ns}/{name}");
        let d = deployment_mut(st, &key, c)?;
        if let Some(n) = m.pointer("/spec/replicas").and_then(Value::as_u64) {
            d.scale(n as u32, c.now, stuck);
        }
        if let Some(ctrs) = m
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
        {
            let containers: Vec<Container> = ctrs
                .iter()
                .map(|k| Container {
                    name: k
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    image: k
                        .get("image")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    env: k
                        .get("env")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|e| {
                                    (
                                        e["name"].as_str().unwrap_or_default().to_string(),
                                        e["value"].as_str().unwrap_or_default().to_string(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            if containers != d.template.containers {
                d.template.containers = containers;
                d.template_changed(c.now, stuck);
            }
        }
        return Ok(Reply::ok(d.to_json(c.now)));
    }
    let key = object_key(kind, Some(&ns), name);
    st.kube.patch_object(&key, m);
    Ok(Reply::ok(st.kube.objects[&key].clone()))
}

/// What a call would change, without changing anything: the simulated counterpart of the real
/// backend's `plan --live` preview, in the same words (`Deployment prod/web: pod template of
/// revision 1; image: web:v2 → v1`). `None` for verbs it does not preview.
pub fn preview(
    st: &State,
    target: &KubernetesBackendSpec,
    verb: &str,
    args: &Value,
) -> Option<String> {
    use crate::backends::kubernetes::image_change;
    let ns = namespace(target, args);
    let name = args.get("name").and_then(Value::as_str).unwrap_or("");
    let what = format!("Deployment {ns}/{name}");
    let Some(d) = st.kube.deployments.get(&format!("{ns}/{name}")) else {
        return matches!(verb, "rollout_undo" | "set_image")
            .then(|| format!("{what}: does not exist (the step will fail with 404 Not Found)"));
    };
    let images = |t: &super::deployment::Template| -> Vec<(String, String)> {
        t.containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect()
    };
    let now = images(&d.template);
    let changes = |target: &[(String, String)]| -> Vec<String> {
        target
            .iter()
            .filter_map(|(n, i)| {
                let old = now.iter().find(|(m, _)| m == n).map(|(_, o)| o.as_str())?;
                (old != i).then(|| {
                    if now.len() == 1 {
                        format!("image: {}", image_change(old, i))
                    } else {
                        format!("image of container {n}: {}", image_change(old, i))
                    }
                })
            })
            .collect()
    };
    match verb {
        "rollout_undo" => {
            if d.paused {
                return Some(format!("{what} is paused; a paused rollout cannot be undone: resume it first (a `resume:` step)"));
            }
            let to = args.get("to_revision").and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            });
            let rev = match to.filter(|n| *n != 0) {
                Some(n) => d.history.iter().find(|r| r.number == n),
                None if d.history.len() >= 2 => d.history.get(d.history.len() - 2),
                None => None,
            };
            let Some(rev) = rev else {
                let numbers: Vec<String> = d.history.iter().map(|r| r.number.to_string()).collect();
                return Some(format!(
                    "{what} has no {} to go back to (revisions: {})",
                    to.map_or("previous revision".to_string(), |n| format!("revision {n}")),
                    numbers.join(", ")
                ));
            };
            let mut c = changes(&images(&rev.template));
            if c.is_empty() && rev.template.containers == d.template.containers {
                return Some(format!("{what}: already as asked; nothing changed"));
            }
            c.insert(0, format!("pod template of revision {}", rev.number));
            Some(format!("{what}: {}", c.join("; ")))
        }
        "set_image" => {
            let image = args.get("image").and_then(Value::as_str)?;
            let container = args
                .get("container")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            let names: Vec<&str> = d
                .template
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let ctr = match container {
                Some(n) => d.template.containers.iter().find(|c| c.name == n),
                None if names.len() == 1 => d.template.containers.first(),
                None => None,
            };
            let Some(ctr) = ctr else {
                return Some(format!(
                    "{what} has no such container; its containers: {}",
                    names.join(", ")
                ));
            };
            if ctr.image == image {
                return Some(format!("{what}: already as asked; nothing changed"));
            }
            let label = match container {
                None => "image".to_string(),
                Some(n) => format!("image of container {n}"),
            };
            Some(format!(
                "{what}: {label}: {}",
                image_change(&ctr.image, image)
            ))
        }
        _ => None,
    }
}
