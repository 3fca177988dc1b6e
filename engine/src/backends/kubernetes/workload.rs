//! The edits of a workload's spec that kubectl's `set image`, `set env`, `scale`,
//! `rollout restart`, `rollout pause` and `rollout resume` make, as pure functions over the
//! object's JSON. `objects::update` applies them with conflict retries; `preview` runs them
//! on a copy.

use indexmap::IndexMap;
use serde_json::{json, Value};

use super::discovery::Resource;
use super::errors::invalid;
use super::objects::Changes;
use crate::backends::ActionError;
use crate::spec::WorkloadKind;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

pub fn resource(kind: WorkloadKind) -> Resource {
    match kind {
        WorkloadKind::Deployment => Resource::apps_v1("Deployment", "deployments"),
        WorkloadKind::StatefulSet => Resource::apps_v1("StatefulSet", "statefulsets"),
        WorkloadKind::DaemonSet => Resource::apps_v1("DaemonSet", "daemonsets"),
    }
}

fn containers<'a>(obj: &'a mut Value, what: &str) -> Result<&'a mut Vec<Value>, ActionError> {
    obj.pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid(format!("{what} has no pod template containers")))
}

fn container_names(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `old → new`, shortened to `repo:old → new` when only the tag changes.
pub fn image_change(old: &str, new: &str) -> String {
    let split = |s: &str| -> (String, String) {
        // The tag follows the last `:` after the last `/` (a registry port is not a tag).
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        match s[slash..].rfind(':') {
            Some(i) if !s.contains('@') => {
                (s[..slash + i].to_string(), s[slash + i + 1..].to_string())
            }
            _ => (s.to_string(), String::new()),
        }
    };
    let (repo_a, _) = split(old);
    let (repo_b, tag_b) = split(new);
    if repo_a == repo_b && !tag_b.is_empty() {
        format!("{old} → {tag_b}")
    } else {
        format!("{old} → {new}")
    }
}

/// Sets the image of one container: the named one, or the only one.
pub fn set_image(
    obj: &mut Value,
    what: &str,
    container: Option<&str>,
    image: &str,
) -> Result<Changes, ActionError> {
    // kubectl also looks at init containers; a named init container is a valid target.
    let names = container_names(containers(obj, what)?);
    let init_names = container_names(
        obj.pointer("/spec/template/spec/initContainers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    let (field, index, name) = match container {
        Some(want) => match names.iter().position(|n| n == want) {
            Some(i) => ("containers", i, want),
            None => match init_names.iter().position(|n| n == want) {
                Some(i) => ("initContainers", i, want),
                None => {
                    return Err(invalid(format!(
                        "{what} has no container `{want}`; its containers: {}",
                        names.join(", ")
                    )))
                }
            },
        },
        None if names.len() == 1 => ("containers", 0, names[0].as_str()),
        None => {
            return Err(invalid(format!(
                "{what} has {} containers ({}); say which one with `container:`",
                names.len(),
                names.join(", ")
            )))
        }
    };
    let slot = &mut obj["spec"]["template"]["spec"][field][index]["image"];
    let old = slot.as_str().unwrap_or_default().to_string();
    if old == image {
        return Ok(vec![]);
    }
    *slot = Value::String(image.to_string());
    let label = if container.is_none() {
        "image".to_string()
    } else {
        format!("image of container {name}")
    };
    Ok(vec![format!("{label}: {}", image_change(&old, image))])
}

/// Sets and removes environment variables of the named container, or of every container.
/// Values are not part of the description: they may be secrets.
pub fn set_env(
    obj: &mut Value,
    what: &str,
    container: Option<&str>,
    set: &IndexMap<String, String>,
    unset: &[String],
) -> Result<Changes, ActionError> {
    let list = containers(obj, what)?;
    let names = container_names(list);
    if let Some(c) = container {
        if !names.iter().any(|n| n == c) {
            return Err(invalid(format!(
                "{what} has no container `{c}`; its containers: {}",
                names.join(", ")
            )));
        }
    }
    let mut changes = vec![];
    for c in list.iter_mut() {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if container.is_some_and(|want| want != name) {
            continue;
        }
        let env = c
            .as_object_mut()
            .map(|m| m.entry("env").or_insert_with(|| json!([])));
        let Some(env) = env else { continue };
        if env.is_null() {
            *env = json!([]);
        }
        let Some(env) = env.as_array_mut() else {
            continue;
        };
        let mut set_names = vec![];
        for (k, v) in set {
            let wanted = json!({ "name": k, "value": v });
            match env.iter_mut().find(|e| e["name"] == k.as_str()) {
                Some(e) if *e == wanted => {}
                Some(e) => {
                    *e = wanted;
                    set_names.push(k.clone());
                }
                None => {
                    env.push(wanted);
                    set_names.push(k.clone());
                }
            }
        }
        let before = env.len();
        let mut unset_names = vec![];
        for k in unset {
            if env.iter().any(|e| e["name"] == k.as_str()) {
                unset_names.push(k.clone());
            }
        }
        env.retain(|e| !unset.iter().any(|k| e["name"] == k.as_str()));
        debug_assert_eq!(before - env.len(), unset_names.len());
        if env.is_empty() {
            if let Some(m) = c.as_object_mut() {
                m.remove("env");
            }
        }
        if !set_names.is_empty() {
            changes.push(format!(
                "env of container {name}: set {}",
                set_names.join(", ")
            ));
        }
        if !unset_names.is_empty() {
            changes.push(format!(
                "env of container {name}: unset {}",
                unset_names.join(", ")
            ));
        }
    }
    Ok(changes)
}

pub fn scale(
    obj: &mut Value,
    what: &str,
    kind: WorkloadKind,
    replicas: i64,
) -> Result<Changes, ActionError> {
    if kind == WorkloadKind::DaemonSet {
        return Err(invalid(format!(
            "{what}: a DaemonSet runs one pod per node and cannot be scaled"
        )));
    }
    if replicas < 0 {
        return Err(invalid(format!(
            "{what}: replicas must be 0 or more, not {replicas}"
        )));
    }
    // The API server defaults an absent `replicas` to 1.
    let old = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if old == replicas {
        return Ok(vec![]);
    }
    obj["spec"]["replicas"] = json!(replicas);
    Ok(vec![format!("replicas: {old} → {replicas}")])
}

pub fn restart(
    obj: &mut Value,
    what: &str,
    kind: WorkloadKind,
    now: &str,
) -> Result<Changes, ActionError> {
    if kind == WorkloadKind::Deployment && paused(obj) {
        return Err(invalid(format!(
            "{what} is paused: resume it first (a `resume:` step), then restart"
        )));
    }
    let template = obj
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid(format!("{what} has no pod template")))?;
    let meta = template.entry("metadata").or_insert_with(|| json!({}));
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][RESTARTED_AT] = Value::String(now.to_string());
    Ok(vec![format!(
        "pod template annotation {RESTARTED_AT}: {now}"
    )])
}

pub fn paused(obj: &Value) -> bool {
    obj.pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `pause` and `resume`: only Deployments have a paused rollout (as in kubectl).
pub fn set_paused(
    obj: &mut Value,
    what: &str,
    kind: WorkloadKind,
    to: bool,
) -> Result<Changes, ActionError> {
    if kind != WorkloadKind::Deployment {
        return Err(invalid(format!(
            "{what}: only Deployments can pause and resume their rollout"
        )));
    }
    let old = paused(obj);
    if old == to {
        return Ok(vec![]);
    }
    obj["spec"]["paused"] = json!(to);
    Ok(vec![format!("paused: {old} → {to}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn set_image_targets_the_only_container_or_asks() {
        let mut d = dep(json!([{"name": "app", "image": "flowengine:v1.1.0"}]));
        let c = set_image(&mut d, "Deployment a/web", None, "flowengine:v1.0.0").unwrap();
        assert_eq!(c, vec!["image: flowengine:v1.1.0 → v1.0.0"]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "flowengine:v1.0.0"
        );
        assert!(set_image(&mut d, "x", None, "flowengine:v1.0.0")
            .unwrap()
            .is_empty());

        let mut two =
            dep(json!([{"name": "app", "image": "a:1"}, {"name": "proxy", "image": "p:1"}]));
        let e = set_image(&mut two, "Deployment a/web", None, "a:2").unwrap_err();
        assert_eq!(
            e.message,
            "Deployment a/web has 2 containers (app, proxy); say which one with `container:`"
        );
        let e = set_image(&mut two, "Deployment a/web", Some("db"), "a:2").unwrap_err();
        assert_eq!(
            e.message,
            "Deployment a/web has no container `db`; its containers: app, proxy"
        );
        let c = set_image(
            &mut two,
            "Deployment a/web",
            Some("proxy"),
            "registry:5000/p:2",
        )
        .unwrap();
        assert_eq!(c, vec!["image of container proxy: p:1 → registry:5000/p:2"]);
    }

    #[test]
    fn set_image_reaches_init_containers_by_name() {
        let mut d = dep(json!([{"name": "app", "image": "a:1"}]));
        d["spec"]["template"]["spec"]["initContainers"] =
            json!([{"name": "migrate", "image": "m:1"}]);
        set_image(&mut d, "x", Some("migrate"), "m:2").unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["initContainers"][0]["image"],
            "m:2"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:1"
        );
    }

    #[test]
    fn image_change_shortens_same_repository() {
        assert_eq!(
            image_change("reg:5000/x:1", "reg:5000/x:2"),
            "reg:5000/x:1 → 2"
        );
        assert_eq!(image_change("x:1", "y:1"), "x:1 → y:1");
        assert_eq!(image_change("reg:5000/x", "reg:5000/x:2"), "reg:5000/x → 2");
    }

    #[test]
    fn set_env_sets_replaces_and_unsets() {
        let mut d = dep(json!([
            {"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            {"name": "side", "image": "s"}
        ]));
        let set: IndexMap<String, String> = [
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("C".into(), "3".into()),
        ]
        .into_iter()
        .collect();
        let c = set_env(&mut d, "x", Some("app"), &set, &["A".into()]).unwrap();
        assert_eq!(
            c,
            vec![
                "env of container app: set B, C",
                "env of container app: unset A"
            ]
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
        );
        assert!(d["spec"]["template"]["spec"]["containers"][1]
            .get("env")
            .is_none());
        // Again: nothing left to do.
        let set: IndexMap<String, String> = [("B".into(), "2".into())].into_iter().collect();
        assert!(set_env(&mut d, "x", Some("app"), &set, &["A".into()])
            .unwrap()
            .is_empty());
        // Every container when none is named.
        let set: IndexMap<String, String> = [("Z".into(), "9".into())].into_iter().collect();
        assert_eq!(set_env(&mut d, "x", None, &set, &[]).unwrap().len(), 2);
        assert!(set_env(&mut d, "Deployment a/web", Some("nope"), &set, &[])
            .unwrap_err()
            .message
            .contains("its containers: app, side"));
    }

    #[test]
    fn scale_restart_and_pause() {
        let mut d = dep(json!([{"name": "app", "image": "a"}]));
        assert_eq!(
            scale(&mut d, "x", WorkloadKind::Deployment, 3).unwrap(),
            vec!["replicas: 2 → 3"]
        );
        assert!(scale(&mut d, "x", WorkloadKind::Deployment, 3)
            .unwrap()
            .is_empty());
        assert!(scale(&mut d, "x", WorkloadKind::DaemonSet, 3).is_err());
        assert!(scale(&mut d, "x", WorkloadKind::Deployment, -1).is_err());

        restart(
            &mut d,
            "x",
            WorkloadKind::Deployment,
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
            "2026-01-01T00:00:00Z"
        );

        assert_eq!(
            set_paused(&mut d, "x", WorkloadKind::Deployment, true).unwrap(),
            vec!["paused: false → true"]
        );
        assert!(set_paused(&mut d, "x", WorkloadKind::Deployment, true)
            .unwrap()
            .is_empty());
        let e = restart(&mut d, "Deployment a/web", WorkloadKind::Deployment, "t").unwrap_err();
        assert!(e.message.contains("is paused"), "{}", e.message);
        assert!(set_paused(&mut d, "x", WorkloadKind::StatefulSet, false).is_err());
    }
}
