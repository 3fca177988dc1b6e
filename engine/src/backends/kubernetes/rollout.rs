//! Revisions the way kubectl reads them — the ReplicaSets a Deployment owns, or the
//! ControllerRevisions of a StatefulSet/DaemonSet — for `rollout_history`, and
//! `rollout_undo`, which puts an earlier revision's pod template back.

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{json, Map, Value};

use super::discovery::Resource;
use super::errors::{api_error, invalid};
use super::objects::{self, Changes, ObjRef};
use super::workload::{image_change, paused};
use crate::backends::ActionError;
use crate::spec::WorkloadKind;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Deployment annotations an undo keeps from the Deployment rather than copying from the
/// ReplicaSet (kubectl's `annotationsToSkip`).
const KEEP_ON_UNDO: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// One revision of a workload: its number, the object holding it and its pod template.
#[derive(Debug, Clone)]
pub struct Revision {
    pub number: i64,
    pub holder: String,
    pub template: Value,
    pub change_cause: Option<String>,
    pub created: Option<String>,
    /// The holder's annotations (a ReplicaSet keeps its Deployment's of that revision).
    pub annotations: Value,
}

fn uid(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn owned_by(v: &Value, owner_uid: &str) -> bool {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner_uid && r["controller"] == true)
        })
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The revisions of a workload, oldest first.
pub async fn revisions(
    client: &kube::Client,
    kind: WorkloadKind,
    obj: &Value,
    namespace: &str,
) -> Result<Vec<Revision>, ActionError> {
    let (res, what) = match kind {
        WorkloadKind::Deployment => (
            Resource::apps_v1("ReplicaSet", "replicasets"),
            "ReplicaSets",
        ),
        _ => (
            Resource::apps_v1("ControllerRevision", "controllerrevisions"),
            "ControllerRevisions",
        ),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &res.ar);
    let mut lp = ListParams::default();
    // The selector narrows the list; ownership (below) is what decides.
    if let Some(m) = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        let sel: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        if !sel.is_empty() {
            lp = lp.labels(&sel.join(","));
        }
    }
    let list = api
        .list(&lp)
        .await
        .map_err(|e| api_error(&format!("{what} in namespace {namespace}"), e))?;
    let owner = uid(obj);
    let mut out: Vec<Revision> = list
        .items
        .iter()
        .map(objects::to_json)
        .filter(|v| owned_by(v, owner))
        .filter_map(|v| revision_of(kind, &v))
        .collect();
    out.sort_by_key(|r| r.number);
    Ok(out)
}

fn revision_of(kind: WorkloadKind, v: &Value) -> Option<Revision> {
    let (number, template) = match kind {
        WorkloadKind::Deployment => (
            annotation(v, REVISION)?.parse().ok()?,
            v.pointer("/spec/template")?.clone(),
        ),
        // A ControllerRevision's data is a patch whose template replaces the object's.
        _ => (v.get("revision")?.as_i64()?, {
            let mut t = v.pointer("/data/spec/template")?.clone();
            if let Some(m) = t.as_object_mut() {
                m.remove("$patch");
            }
            t
        }),
    };
    Some(Revision {
        number,
        holder: v.pointer("/metadata/name")?.as_str()?.to_string(),
        template,
        change_cause: annotation(v, CHANGE_CAUSE).map(str::to_string),
        created: v
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
        annotations: v
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or_else(|| json!({})),
    })
}

/// A pod template without the label the Deployment controller adds to its ReplicaSets.
fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

fn images(t: &Value) -> Vec<(String, String)> {
    t.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Undoes on `obj`, edited in place, by kubectl's rules for every workload kind. Already
/// running that revision's template is no change (empty `Changes`), as kubectl skips it.
pub fn plan_undo(
    obj: &mut Value,
    what: &str,
    kind: WorkloadKind,
    revs: &[Revision],
    to_revision: Option<i64>,
) -> Result<Changes, ActionError> {
    if kind == WorkloadKind::Deployment && paused(obj) {
        return Err(invalid(format!(
            "{what} is paused; a paused rollout cannot be undone: resume it first (a `resume:` step)"
        )));
    }
    let numbers: Vec<String> = revs.iter().map(|r| r.number.to_string()).collect();
    let target = match to_revision.filter(|n| *n != 0) {
        Some(n) => revs.iter().find(|r| r.number == n).ok_or_else(|| {
            invalid(format!(
                "{what} has no revision {n}; its revisions: {}",
                if numbers.is_empty() {
                    "none".into()
                } else {
                    numbers.join(", ")
                }
            ))
        })?,
        // kubectl: the second-highest revision is "the previous one".
        None => match revs.len() {
            0 | 1 => {
                return Err(invalid(format!(
                    "{what} has no previous revision to go back to (revisions: {})",
                    if numbers.is_empty() {
                        "none".into()
                    } else {
                        numbers.join(", ")
                    }
                )))
            }
            n => &revs[n - 2],
        },
    };
    let current = obj
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let wanted = without_hash(&target.template);
    if without_hash(&current) == wanted {
        return Ok(vec![]);
    }
    let mut changes = vec![format!("pod template of revision {}", target.number)];
    let before: Map<String, Value> = images(&current)
        .into_iter()
        .map(|(n, i)| (n, Value::String(i)))
        .collect();
    for (name, image) in images(&wanted) {
        match before.get(&name).and_then(Value::as_str) {
            Some(old) if old != image => changes.push(if before.len() == 1 {
                format!("image: {}", image_change(old, &image))
            } else {
                format!("image of container {name}: {}", image_change(old, &image))
            }),
            _ => {}
        }
    }
    obj["spec"]["template"] = wanted;
    if kind == WorkloadKind::Deployment {
        // kubectl: keep the Deployment's bookkeeping annotations, take the others from the
        // ReplicaSet (which recorded the Deployment's annotations of that revision).
        let annotations = undo_annotations(obj, &target.annotations);
        obj["metadata"]["annotations"] = annotations;
    }
    Ok(changes)
}

/// The annotations a Deployment gets on undo: its own bookkeeping ones, plus the
/// ReplicaSet's others.
pub fn undo_annotations(deployment: &Value, replicaset_annotations: &Value) -> Value {
    let mut out = Map::new();
    if let Some(d) = deployment
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for k in KEEP_ON_UNDO {
            if let Some(v) = d.get(*k) {
                out.insert((*k).to_string(), v.clone());
            }
        }
    }
    if let Some(r) = replicaset_annotations.as_object() {
        for (k, v) in r {
            if !KEEP_ON_UNDO.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The revision the workload is at: a Deployment records it, a StatefulSet names its
/// ControllerRevision; otherwise the newest revision holding the current template.
fn current_revision(kind: WorkloadKind, obj: &Value, revs: &[Revision]) -> Option<i64> {
    let recorded = match kind {
        WorkloadKind::Deployment => annotation(obj, REVISION).and_then(|r| r.parse().ok()),
        WorkloadKind::StatefulSet => obj
            .pointer("/status/updateRevision")
            .and_then(Value::as_str)
            .and_then(|name| revs.iter().find(|r| r.holder == name))
            .map(|r| r.number),
        WorkloadKind::DaemonSet => None,
    };
    recorded.or_else(|| {
        let current = without_hash(obj.pointer("/spec/template").unwrap_or(&Value::Null));
        revs.iter()
            .rev()
            .find(|r| without_hash(&r.template) == current)
            .map(|r| r.number)
    })
}

/// `rollout_history`: the revisions, oldest first, with their images and change causes.
pub async fn history(
    client: &kube::Client,
    r: &ObjRef,
    kind: WorkloadKind,
) -> Result<Value, ActionError> {
    let obj = objects::read(client, r).await?;
    let ns = r.namespace.clone().unwrap_or_default();
    let revs = revisions(client, kind, &obj, &ns).await?;
    let current_number = current_revision(kind, &obj, &revs);
    let holder_key = if kind == WorkloadKind::Deployment {
        "replicaset"
    } else {
        "controllerrevision"
    };
    let list: Vec<Value> = revs
        .iter()
        .map(|rev| {
            json!({
                "revision": rev.number,
                holder_key: rev.holder,
                "images": images(&rev.template).into_iter().map(|(_, i)| i).collect::<Vec<_>>(),
                "change_cause": rev.change_cause,
                "created": rev.created,
                "current": Some(rev.number) == current_number,
            })
        })
        .collect();
    Ok(json!({
        "kind": r.res.ar.kind,
        "name": r.name,
        "namespace": r.namespace,
        "current_revision": current_number,
        "revisions": list,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: i64, image: &str) -> Revision {
        Revision {
            number: n,
            holder: format!("web-{n}"),
            template: json!({"metadata": {"labels": {"app": "web", HASH_LABEL: format!("h{n}")}},
                             "spec": {"containers": [{"name": "app", "image": image}]}}),
            change_cause: None,
            created: None,
            annotations: json!({REVISION: n.to_string(), "team": "b"}),
        }
    }

    fn dep(image: &str) -> Value {
        json!({"metadata": {"name": "web", "generation": 3, "annotations": {REVISION: "3", "team": "a"}},
               "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": image}]}}},
               "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}})
    }

    #[test]
    fn undo_goes_to_the_second_highest_revision_without_the_hash_label() {
        let revs = vec![rev(1, "web:1"), rev(2, "web:2"), rev(3, "web:3")];
        let mut d = dep("web:3");
        let plan = plan_undo(
            &mut d,
            "Deployment a/web",
            WorkloadKind::Deployment,
            &revs,
            None,
        )
        .unwrap();
        assert_eq!(plan, vec!["pod template of revision 2", "image: web:3 → 2"]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert!(d["spec"]["template"]["metadata"]["labels"]
            .get(HASH_LABEL)
            .is_none());
        assert_eq!(
            d["metadata"]["annotations"],
            json!({REVISION: "3", "team": "b"})
        );
    }

    #[test]
    fn undo_to_a_revision_and_its_errors() {
        let revs = vec![rev(1, "web:1"), rev(2, "web:2")];
        let mut d = dep("web:2");
        plan_undo(&mut d, "x", WorkloadKind::Deployment, &revs, Some(1)).unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:1"
        );
        let e = plan_undo(
            &mut dep("web:2"),
            "Deployment a/web",
            WorkloadKind::Deployment,
            &revs,
            Some(7),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Deployment a/web has no revision 7; its revisions: 1, 2"
        );
        let e = plan_undo(
            &mut dep("web:2"),
            "Deployment a/web",
            WorkloadKind::Deployment,
            &revs[1..],
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("no previous revision"), "{}", e.message);
        let mut p = dep("web:2");
        p["spec"]["paused"] = json!(true);
        assert!(
            plan_undo(&mut p, "x", WorkloadKind::Deployment, &revs, None)
                .unwrap_err()
                .message
                .contains("paused")
        );
        // Already at that template: nothing to do.
        let plan = plan_undo(
            &mut dep("web:1"),
            "Deployment a/web",
            WorkloadKind::Deployment,
            &revs,
            Some(1),
        )
        .unwrap();
        assert!(plan.is_empty());
    }

    #[test]
    fn undo_annotations_keep_bookkeeping_and_take_the_rest_from_the_replicaset() {
        let d = dep("x");
        let a = undo_annotations(&d, &json!({REVISION: "1", "team": "b", "note": "n"}));
        assert_eq!(a, json!({REVISION: "3", "team": "b", "note": "n"}));
    }

    #[test]
    fn controller_revisions_drop_the_replace_directive() {
        let cr = json!({"metadata": {"name": "db-abc", "uid": "u"}, "revision": 4,
                        "data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"name": "db", "image": "pg:15"}]}}}}});
        let r = revision_of(WorkloadKind::StatefulSet, &cr).unwrap();
        assert_eq!(r.number, 4);
        assert!(r.template.get("$patch").is_none());
        assert_eq!(
            images(&r.template),
            vec![("db".to_string(), "pg:15".to_string())]
        );
    }
}
