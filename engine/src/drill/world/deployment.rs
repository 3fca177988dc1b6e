//! A simulated Deployment: its pod template, revision history and rollout, the status a
//! moment of the clock gives it, and the API object and Pods it shows.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::drill::spec::DeploymentChangeSpec;
use crate::exec::clock::stamp;

/// Where the Deployment controller records the current revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

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

/// One revision: a template the Deployment ran, as its ReplicaSet records it.
#[derive(Debug, Clone)]
pub struct Revision {
    pub number: i64,
    pub template: Template,
    pub created: DateTime<Utc>,
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
    /// The Deployment's own labels (`label` changes them).
    pub labels: BTreeMap<String, String>,
    /// The selector's and the pod template's labels (the Deployment's at creation).
    pub pod_labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub replicas: u32,
    pub generation: i64,
    pub paused: bool,
    pub template: Template,
    /// Oldest first; once reconciled the last one runs `template`.
    pub history: Vec<Revision>,
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
        self.history.last().map_or(0, |r| r.number)
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
        if self.paused && self.history.last().map(|h| &h.template) != Some(&self.template) {
            // Paused with a changed template: no new ReplicaSet, none of its pods updated.
            let old = Deployment {
                paused: false,
                ..self.clone()
            };
            let available = old.status(now).available;
            return Status {
                replicas: r.max(available),
                updated: 0,
                available,
                complete: false,
                deadline_exceeded: false,
            };
        }
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

    /// When the status next changes while a rollout runs: the next replica updated, or the
    /// progress deadline of a stuck rollout. None once it is complete.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let st = self.status(now);
        if st.complete {
            return None;
        }
        let ro = &self.rollout;
        if ro.stuck {
            return Some(super::later(ro.started, self.progress_deadline));
        }
        // `updated` is floor(replicas × elapsed / takes): the next one lands at
        // takes × (updated + 1) / replicas.
        // Rounding may put that at or before `now`: never ask to look again sooner than 1 ms
        // later, or the wait would not advance the clock.
        let r = self.replicas.max(1);
        let next = ro.takes.mul_f64(f64::from(st.updated + 1) / f64::from(r));
        let soonest = super::later(now, std::time::Duration::from_millis(1));
        Some(super::later(ro.started, next).max(soonest))
    }

    /// Records a new revision for a changed template and starts its rollout, as the
    /// Deployment controller does: a template equal to an old revision moves that revision
    /// to the top under a new number.
    pub(super) fn reconcile(&mut self, now: DateTime<Utc>, stuck: bool) {
        if self.paused || self.history.last().map(|r| &r.template) == Some(&self.template) {
            return;
        }
        let available = self.status(now).available;
        let next = self.revision() + 1;
        self.history.retain(|r| r.template != self.template);
        self.history.push(Revision {
            number: next,
            template: self.template.clone(),
            created: now,
        });
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

    pub(super) fn template_changed(&mut self, now: DateTime<Utc>, stuck: bool) {
        self.generation += 1;
        self.reconcile(now, stuck);
    }

    pub(super) fn scale(&mut self, n: u32, now: DateTime<Utc>, stuck: bool) {
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
            REVISION_ANNOTATION.into(),
            json!(self.revision().to_string()),
        );
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": { "matchLabels": self.pod_labels },
            "template": self.template_json(&self.template),
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
        // The API server's words, naming the new ReplicaSet.
        let rs = replicaset_name(self, &self.template);
        let (progressing, reason, message) = if st.deadline_exceeded {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{rs}\" has timed out progressing."),
            )
        } else if st.complete {
            (
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs}\" has successfully progressed."),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs}\" is progressing."),
            )
        };
        status.insert(
            "conditions".into(),
            json!([
                {
                    "type": "Available",
                    "status": if available { "True" } else { "False" },
                    "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                    "lastUpdateTime": since,
                    "lastTransitionTime": since,
                },
                {
                    "type": "Progressing",
                    "status": progressing,
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": since,
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
                // Server-filled; their values differ from a real cluster's by nature.
                "uid": uid_of(&self.key()),
                "resourceVersion": self.generation.to_string(),
                "creationTimestamp": stamp(self.history.first().map_or(self.rollout.started, |r| r.created)),
                "generation": self.generation,
                "labels": self.labels,
                "annotations": annotations,
            },
            "spec": spec,
            "status": Value::Object(status),
        })
    }

    /// A pod template as the API shows it, with the defaults the API server fills in.
    pub fn template_json(&self, t: &Template) -> Value {
        let containers: Vec<Value> = t
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
                let tag = c.image.rsplit('/').next().unwrap_or_default();
                let latest =
                    !c.image.contains('@') && (!tag.contains(':') || tag.ends_with(":latest"));
                o["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
                o["resources"] = json!({});
                o["terminationMessagePath"] = json!("/dev/termination-log");
                o["terminationMessagePolicy"] = json!("File");
                o
            })
            .collect();
        let mut meta = json!({ "creationTimestamp": null, "labels": self.pod_labels });
        if !t.annotations.is_empty() {
            meta["annotations"] = json!(t.annotations);
        }
        json!({ "metadata": meta, "spec": {
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        } })
    }

    /// Takes back what an edit of `to_json`'s object changed (the real backend's edit
    /// functions work on the API object): replicas, pause, the pod template, labels and
    /// annotations. A changed spec counts as the API server counts it (`generation`), and the
    /// controller then reacts as `reconcile` says.
    pub fn absorb(&mut self, obj: &Value, now: DateTime<Utc>, stuck: bool) {
        let text_map = |v: Option<&Value>| -> BTreeMap<String, String> {
            v.and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        self.labels = text_map(obj.pointer("/metadata/labels"));
        self.annotations = text_map(obj.pointer("/metadata/annotations"));
        self.annotations.remove(REVISION_ANNOTATION);
        let containers: Vec<Container> = obj
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|k| Container {
                        name: k["name"].as_str().unwrap_or_default().to_string(),
                        image: k["image"].as_str().unwrap_or_default().to_string(),
                        env: k["env"]
                            .as_array()
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
                    .collect()
            })
            .unwrap_or_default();
        let template = Template {
            containers,
            annotations: text_map(obj.pointer("/spec/template/metadata/annotations")),
        };
        let replicas = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let paused = obj
            .pointer("/spec/paused")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.scale(replicas, now, stuck);
        let mut spec_changed = false;
        if paused != self.paused {
            self.paused = paused;
            spec_changed = true;
        }
        if template != self.template {
            self.template = template;
            spec_changed = true;
        }
        if spec_changed {
            self.template_changed(now, stuck);
        }
    }

    /// Pods of the current template: ready ones, then the ones that never become ready.
    pub(super) fn pods(&self, now: DateTime<Utc>) -> Vec<Value> {
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
                    "metadata": { "name": format!("{}-{hash}-{i}", self.name), "namespace": self.namespace, "labels": self.pod_labels },
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

/// A stable, UUID-shaped `metadata.uid` for a simulated object.
pub fn uid_of(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(&Sha256::digest(key.as_bytes())[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The ReplicaSet name of a template, `<deployment>-<hash>`, stable for the same template.
pub fn replicaset_name(d: &Deployment, t: &Template) -> String {
    format!("{}-{}", d.name, template_hash(t))
}

fn template_hash(t: &Template) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{t:?}");
    hex::encode(&Sha256::digest(text.as_bytes())[..5])
}

/// Sets or removes one variable; true when that changed anything.
pub(super) fn set_env(env: &mut IndexMap<String, String>, k: &str, v: Option<&str>) -> bool {
    match v {
        Some(v) => env.insert(k.to_string(), v.to_string()).as_deref() != Some(v),
        None => env.shift_remove(k).is_some(),
    }
}
