//! The simulated cluster: Deployments with revision history and rollouts that progress on the
//! clock (shaped like the API's objects), and any other objects stored as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::pattern::selector_matches;
use super::{unscripted, Call, Reply, Snapshot, State};
use crate::backends::{ActionError, ErrorKind};
use crate::drill::spec::DeploymentChangeSpec;
use crate::exec::clock::stamp;
use crate::spec::{IntOrTemplate, KubernetesBackendSpec};

/// Old revisions kept, like `revisionHistoryLimit`'s default.
pub const HISTORY_LIMIT: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub env: IndexMap<String, String>,
}

/// The pod template: what a revision is.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub containers: Vec<Container>,
    pub annotations: BTreeMap<String, String>,
}

/// The latest rollout (a template change or a scale-up) and how it goes.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub started: DateTime<Utc>,
    pub takes: Duration,
    /// Its pods never become ready.
    pub stuck: bool,
    /// Replicas available when it started (they stay available while it runs).
    pub from_available: u32,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub replicas: u32,
    pub generation: i64,
    pub paused: bool,
    pub template: Template,
    /// (revision, template), oldest first; once reconciled the last one is `template`.
    pub history: Vec<(i64, Template)>,
    pub rollout: Rollout,
    pub takes: Duration,
    pub progress_deadline: Duration,
    pub crashing: Vec<String>,
}

/// `status` of a Deployment at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub replicas: u32,
    pub updated: u32,
    pub available: u32,
    pub complete: bool,
    pub deadline_exceeded: bool,
}

impl Deployment {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn revision(&self) -> i64 {
        self.history.last().map_or(0, |(n, _)| *n)
    }

    fn crashes(&self) -> bool {
        self.template
            .containers
            .iter()
            .any(|c| self.crashing.contains(&c.image))
    }

    /// The status at `now`, following a RollingUpdate with 25% surge and 25% unavailable.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        let r = self.replicas;
        let surge = r.div_ceil(4);
        let unavailable = r / 4;
        let ro = &self.rollout;
        let elapsed = (now - ro.started).to_std().unwrap_or_default();
        if r == 0 || (!ro.stuck && elapsed >= ro.takes) {
            return Status {
                replicas: r,
                updated: r,
                available: r,
                complete: true,
                deadline_exceeded: false,
            };
        }
        let available = ro.from_available.min(r);
        if ro.stuck {
            return Status {
                replicas: r + surge,
                updated: (surge + unavailable).clamp(1, r),
                available: available.min(r - unavailable),
                complete: false,
                deadline_exceeded: elapsed >= self.progress_deadline,
            };
        }
        let frac = elapsed.as_secs_f64() / ro.takes.as_secs_f64().max(f64::EPSILON);
        Status {
            replicas: r + surge,
            updated: ((r as f64) * frac).floor() as u32,
            available,
            complete: false,
            deadline_exceeded: false,
        }
    }

    /// Records a new revision for a changed template and starts its rollout, as the
    /// Deployment controller does: a template equal to an old revision moves that revision
    /// to the top under a new number.
    fn reconcile(&mut self, now: DateTime<Utc>, stuck: bool) {
        if self.paused || self.history.last().map(|(_, t)| t) == Some(&self.template) {
            return;
        }
        let available = self.status(now).available;
        let next = self.revision() + 1;
        self.history.retain(|(_, t)| t != &self.template);
        self.history.push((next, self.template.clone()));
        if self.history.len() > HISTORY_LIMIT + 1 {
            self.history.remove(0);
        }
        self.rollout = Rollout {
            started: now,
            takes: self.takes,
            stuck: stuck || self.crashes(),
            from_available: available,
        };
    }

    fn template_changed(&mut self, now: DateTime<Utc>, stuck: bool) {
        self.generation += 1;
        self.reconcile(now, stuck);
    }

    fn scale(&mut self, n: u32, now: DateTime<Utc>, stuck: bool) {
        if n == self.replicas {
            return;
        }
        let available = self.status(now).available;
        if n > self.replicas {
            self.rollout = Rollout {
                started: now,
                takes: self.takes,
                stuck: stuck || self.crashes(),
                from_available: available,
            };
        }
        self.replicas = n;
        self.generation += 1;
    }

    /// Applies a scripted effect (a GitOps controller syncing, say).
    pub fn change(&mut self, c: &DeploymentChangeSpec, at: DateTime<Utc>, stuck: bool) {
        if let Some(n) = c.replicas {
            self.scale(n, at, stuck);
        }
        let mut changed = false;
        if let Some(image) = &c.image {
            for k in &mut self.template.containers {
                changed |= &k.image != image;
                k.image = image.clone();
            }
        }
        for (k, v) in &c.env {
            for ctr in &mut self.template.containers {
                changed |= set_env(&mut ctr.env, k, v.as_deref());
            }
        }
        if changed {
            self.template_changed(at, stuck);
        }
    }

    /// The object as the API returns it. Zero counts are left out, as the API does.
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        let st = self.status(now);
        let mut annotations: Map<String, Value> = self
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            json!(self.revision().to_string()),
        );
        let containers: Vec<Value> = self
            .template
            .containers
            .iter()
            .map(|c| {
                let mut o = json!({ "name": c.name, "image": c.image });
                if !c.env.is_empty() {
                    o["env"] = c
                        .env
                        .iter()
                        .map(|(k, v)| json!({ "name": k, "value": v }))
                        .collect();
                }
                o
            })
            .collect();
        let mut template_meta = json!({ "labels": self.labels });
        if !self.template.annotations.is_empty() {
            template_meta["annotations"] = json!(self.template.annotations);
        }
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": { "matchLabels": self.labels },
            "template": { "metadata": template_meta, "spec": { "containers": containers } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } },
            "revisionHistoryLimit": HISTORY_LIMIT,
            "progressDeadlineSeconds": self.progress_deadline.as_secs(),
        });
        if self.paused {
            spec["paused"] = json!(true);
        }
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(self.generation));
        for (k, v) in [
            ("replicas", st.replicas),
            ("updatedReplicas", st.updated),
            ("readyReplicas", st.available),
            ("availableReplicas", st.available),
            (
                "unavailableReplicas",
                st.replicas.saturating_sub(st.available),
            ),
        ] {
            if v > 0 {
                status.insert(k.into(), json!(v));
            }
        }
        let since = stamp(self.rollout.started);
        let min_ready = self.replicas - self.replicas / 4;
        let available = st.available >= min_ready;
        let (progressing, reason, message) = if st.deadline_exceeded {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet has timed out progressing."),
            )
        } else if st.complete {
            (
                "True",
                "NewReplicaSetAvailable",
                "ReplicaSet has successfully progressed.".to_string(),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                "ReplicaSet is progressing.".to_string(),
            )
        };
        status.insert(
            "conditions".into(),
            json!([
                {
                    "type": "Available",
                    "status": if available { "True" } else { "False" },
                    "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "lastTransitionTime": since,
                },
                {
                    "type": "Progressing",
                    "status": progressing,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": since,
                },
            ]),
        );
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "generation": self.generation,
                "labels": self.labels,
                "annotations": annotations,
            },
            "spec": spec,
            "status": Value::Object(status),
        })
    }

    /// Pods of the current template: ready ones, then the ones that never become ready.
    fn pods(&self, now: DateTime<Utc>) -> Vec<Value> {
        let st = self.status(now);
        let hash = template_hash(&self.template);
        let not_ready = if self.rollout.stuck { st.updated } else { 0 };
        (0..st.available + not_ready)
            .map(|i| {
                let ready = i < st.available;
                let statuses: Vec<Value> = self
                    .template
                    .containers
                    .iter()
                    .map(|c| {
                        let state = if ready {
                            json!({ "running": { "startedAt": stamp(self.rollout.started) } })
                        } else {
                            json!({ "waiting": { "reason": "CrashLoopBackOff" } })
                        };
                        json!({ "name": c.name, "image": c.image, "ready": ready,
                                "restartCount": if ready { 0 } else { 5 }, "state": state })
                    })
                    .collect();
                json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": { "name": format!("{}-{hash}-{i}", self.name), "namespace": self.namespace, "labels": self.labels },
                    "spec": { "containers": self.template.containers.iter().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>() },
                    "status": {
                        "phase": "Running",
                        "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
                        "containerStatuses": statuses,
                    },
                })
            })
            .collect()
    }
}

fn template_hash(t: &Template) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{t:?}");
    hex::encode(&Sha256::digest(text.as_bytes())[..5])
}

/// Sets or removes one variable; true when that changed anything.
fn set_env(env: &mut IndexMap<String, String>, k: &str, v: Option<&str>) -> bool {
    match v {
        Some(v) => env.insert(k.to_string(), v.to_string()).as_deref() != Some(v),
        None => env.shift_remove(k).is_some(),
    }
}

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
                .map(|(n, t)| {
                    json!({
                        "revision": n,
                        "images": t.containers.iter().map(|k| k.image.clone()).collect::<Vec<_>>(),
                        "containers": t.containers.iter().map(|k| json!({"name": k.name, "image": k.image})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(Reply::ok(
                json!({ "name": d.name, "namespace": d.namespace, "current": d.revision(), "revisions": revisions }),
            ))
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
            let container = args.get("container").and_then(Value::as_str);
            let d = deployment_mut(st, &key, c)?;
            let ctr = container_mut(d, container, c.what)?;
            ctr.image = image;
            d.template_changed(now, stuck);
            Ok(Reply::ok(d.to_json(now)))
        }
        "set_env" => {
            let container = args.get("container").and_then(Value::as_str);
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
            let template = if to == 0 {
                // The revision before the current one.
                match d.history.len() {
                    n if n >= 2 => d.history[n - 2].1.clone(),
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
                match d.history.iter().find(|(n, _)| *n == to) {
                    Some((_, t)) => t.clone(),
                    None => return Err(ActionError::new(ErrorKind::Failed, format!("{}: unable to find the specified revision {to} in history (it has: {})", c.what, d.history.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>().join(", ")))),
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
            if kind == "Deployment" {
                deployment(st, &key, c)?;
                let d = st.kube.deployments.shift_remove(&key).expect("just found");
                return Ok(Reply::ok(
                    json!({ "kind": "Status", "status": "Success", "details": { "name": d.name, "kind": "deployments" } }),
                ));
            }
            let okey = object_key(kind, Some(&ns), &name);
            let okey = if st.kube.objects.contains_key(&okey) {
                okey
            } else {
                object_key(kind, None, &name)
            };
            match st.kube.objects.shift_remove(&okey) {
                Some(_) => Ok(Reply::ok(
                    json!({ "kind": "Status", "status": "Success", "details": { "name": name, "kind": kind } }),
                )),
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
    let st = d.status(now);
    if st.complete {
        return Ok(Reply::ok(d.to_json(now)));
    }
    if st.deadline_exceeded {
        return Err(ActionError::new(
            ErrorKind::Failed,
            format!(
                "deployment \"{}\" exceeded its progress deadline: the pods of revision {} never became ready ({} out of {} new replicas updated)",
                d.name,
                d.revision(),
                st.updated,
                d.replicas
            ),
        )
        .with_result(d.to_json(now)));
    }
    let why = if st.updated < d.replicas {
        format!(
            "waiting for deployment \"{}\" rollout to finish: {} out of {} new replicas have been updated",
            d.name, st.updated, d.replicas
        )
    } else {
        format!(
            "waiting for deployment \"{}\" rollout to finish: {} of {} updated replicas are available",
            d.name, st.available, d.replicas
        )
    };
    let wait = if d.rollout.stuck {
        d.progress_deadline
    } else {
        d.rollout.takes
    };
    Ok(Reply::WaitUntil(
        d.rollout.started + chrono::Duration::from_std(wait).unwrap_or_default(),
        why,
    ))
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
