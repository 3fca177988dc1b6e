//! Rebuilding a simulated world from a journal: a resumed training run goes on against the world
//! its earlier sessions left. The drill's world as it started is replayed forward: the effects
//! the journal recorded (`world_changed`: each field's value after a step's call) are put back
//! at their times, and the drill's own scheduled effects land in between, as they did.
//!
//! A template change (image, env, pod annotations) is made as the controller makes one, so the
//! revision history and the rollout (its start, and whether a fault keeps it stuck) come back
//! too; the recorded revision number then checks the result.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::State;
use crate::drill::spec::ServiceState;

/// One recorded effect: what `step`'s call changed, at `at`.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub step: String,
    pub diff: Value,
}

impl State {
    /// Puts the recorded effects back, in order; returns what could not be put back (an entity
    /// the drill's world does not have, a field it does not know), for the operator to read.
    pub fn restore(&mut self, effects: &[Recorded]) -> Vec<String> {
        let mut problems = vec![];
        for e in effects {
            self.land_effects(e.at);
            for (entity, fields) in e.diff.as_object().into_iter().flatten() {
                let Some(fields) = fields.as_object() else {
                    continue;
                };
                let r = if let Some(key) = entity.strip_prefix("kubernetes deployment ") {
                    self.restore_deployment(key, fields, e)
                } else if let Some(key) = entity.strip_prefix("kubernetes object ") {
                    self.restore_object(key, fields);
                    Ok(())
                } else if let Some(key) = entity.strip_prefix("compose service ") {
                    self.restore_service(key, fields)
                } else if let Some(key) = entity.strip_prefix("compose project ") {
                    self.restore_project(key, fields)
                } else {
                    Err("not a kind of thing a world holds".to_string())
                };
                if let Err(why) = r {
                    problems.push(format!(
                        "`{}` changed {entity}, which was not put back: {why}",
                        e.step
                    ));
                }
            }
        }
        problems
    }

    fn restore_deployment(
        &mut self,
        key: &str,
        fields: &Map<String, Value>,
        e: &Recorded,
    ) -> Result<(), String> {
        let start = self.start;
        let stuck = self.faults.rollout_stuck_by(key, &e.step, e.at, &start);
        let Some(d) = self.kube.deployments.get_mut(key) else {
            return Err("the drill's world has no such Deployment".into());
        };
        let template = d.template.clone();
        let mut replicas = None;
        let mut revision = None;
        for (field, change) in fields {
            let to = &change["to"];
            let (name, container) = match field.split_once('[') {
                Some((n, c)) => (n, Some(c.trim_end_matches(']'))),
                None => (field.as_str(), None),
            };
            let named =
                |c: &&mut super::deployment::Container| container.is_none_or(|n| n == c.name);
            match name {
                "image" => {
                    let image = to.as_str().ok_or("an image that is not a string")?;
                    for c in d.template.containers.iter_mut().filter(named) {
                        c.image = image.to_string();
                    }
                }
                "env" => {
                    let env: Vec<(String, String)> = string_map(to)?;
                    for c in d.template.containers.iter_mut().filter(named) {
                        c.env = env.iter().cloned().collect();
                    }
                }
                "template_annotations" => d.template.annotations = string_map(to)?,
                "annotations" => d.annotations = string_map(to)?,
                "labels" => d.labels = string_map(to)?,
                "paused" => d.paused = to.as_bool().unwrap_or(false),
                "replicas" => {
                    replicas = Some(to.as_u64().ok_or("replicas that are not a number")? as u32)
                }
                "revision" => revision = to.as_i64(),
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        if let Some(n) = replicas {
            d.scale(n, e.at, stuck);
        }
        if d.template != template {
            d.template_changed(e.at, stuck);
        }
        match revision {
            Some(want) if d.revision() != want => Err(format!(
                "it recorded revision {want}, the rebuilt world has {}",
                d.revision()
            )),
            _ => Ok(()),
        }
    }

    fn restore_object(&mut self, key: &str, fields: &Map<String, Value>) {
        let obj = self
            .kube
            .objects
            .entry(key.to_string())
            .or_insert(Value::Null);
        for (path, change) in fields {
            let to = change["to"].clone();
            if path == "object" {
                *obj = to;
                continue;
            }
            let segments: Vec<&str> = path.split('.').collect();
            set_path(obj, &segments, to);
        }
    }

    fn restore_service(&mut self, key: &str, fields: &Map<String, Value>) -> Result<(), String> {
        let (p, s) = key.split_once('/').ok_or("not project/service")?;
        let svc = self
            .compose
            .0
            .get_mut(p)
            .and_then(|p| p.services.get_mut(s))
            .ok_or("the drill's world has no such service")?;
        for (field, change) in fields {
            let to = &change["to"];
            match field.as_str() {
                "image" => svc.image = to.as_str().unwrap_or_default().to_string(),
                "configured_image" => svc.configured = to.as_str().unwrap_or_default().to_string(),
                "state" => {
                    svc.state = serde_json::from_value::<ServiceState>(to.clone())
                        .map_err(|_| format!("unknown state {to}"))?
                }
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok(())
    }

    fn restore_project(&mut self, key: &str, fields: &Map<String, Value>) -> Result<(), String> {
        let project = self
            .compose
            .0
            .get_mut(key)
            .ok_or("the drill's world has no such project")?;
        for (field, change) in fields {
            match field.as_str() {
                "pulled" => {
                    project.pulled = change["to"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                }
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok(())
    }
}

/// A map of strings (null: empty), as a snapshot records labels, annotations and env.
fn string_map<M: FromIterator<(String, String)>>(v: &Value) -> Result<M, String> {
    match v {
        Value::Null => Ok(std::iter::empty().collect()),
        Value::Object(m) => Ok(m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect()),
        other => Err(format!("{other} is not a map")),
    }
}

/// Sets (or, with null, removes) the value at a flattened path. A snapshot joins keys with
/// `.`, and keys may hold dots themselves (`deployment.kubernetes.io/revision`): the longest
/// run of segments that names an existing key is taken first.
fn set_path(obj: &mut Value, segments: &[&str], to: Value) {
    if segments.is_empty() {
        *obj = to;
        return;
    }
    if !obj.is_object() {
        if to.is_null() {
            return;
        }
        *obj = Value::Object(Map::new());
    }
    let m = obj.as_object_mut().expect("just made an object");
    let take = (1..=segments.len())
        .rev()
        .find(|n| m.contains_key(&segments[..*n].join(".")))
        .unwrap_or(1);
    let key = segments[..take].join(".");
    let rest = &segments[take..];
    if rest.is_empty() {
        if to.is_null() {
            m.remove(&key);
        } else {
            m.insert(key, to);
        }
        return;
    }
    if to.is_null() && !m.contains_key(&key) {
        return;
    }
    set_path(m.entry(key).or_insert(Value::Null), rest, to);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_flattened_path_is_set_through_keys_with_dots() {
        let mut obj = json!({"metadata": {"annotations": {"a.b/c": "1"}}});
        set_path(
            &mut obj,
            &["metadata", "annotations", "a", "b/c"],
            json!("2"),
        );
        set_path(&mut obj, &["spec", "x"], json!(3));
        set_path(&mut obj, &["metadata", "gone"], Value::Null);
        assert_eq!(
            obj,
            json!({"metadata": {"annotations": {"a.b/c": "2"}}, "spec": {"x": 3}})
        );
    }
}
