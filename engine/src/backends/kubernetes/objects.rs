//! The verbs that work on any kind: `get`, `list`, `delete`, `annotate`, `label` and
//! server-side `apply`. Objects travel as JSON, exactly as the API server returns them
//! (minus `managedFields`), so captures read them like `kubectl get -o json` output.

use std::path::Path;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Map, Value};

use super::discovery::Resource;
use super::errors::{api_error, invalid, is_conflict, is_not_found};
use crate::backends::{ActionError, ErrorKind};

/// How many times an update that lost a race (409) is re-read and re-applied.
pub const CONFLICT_ATTEMPTS: u32 = 5;
/// Field manager recorded by the API server for our writes.
pub const FIELD_MANAGER: &str = "runbook";

/// One object of the cluster.
#[derive(Debug, Clone)]
pub struct ObjRef {
    pub res: Resource,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjRef {
    pub fn new(res: Resource, namespace: &str, name: &str) -> Self {
        let namespace = res.namespaced.then(|| namespace.to_string());
        ObjRef {
            res,
            namespace,
            name: name.to_string(),
        }
    }

    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.res.ar),
            None => Api::all_with(client.clone(), &self.res.ar),
        }
    }

    /// `Deployment shop/web`, or `Namespace shop` for cluster-scoped kinds.
    pub fn what(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.res.ar.kind, self.name),
            None => format!("{} {}", self.res.ar.kind, self.name),
        }
    }
}

/// Makes an object fit for results and the journal: no `managedFields` (kubectl hides them
/// too), and the values of a Secret masked (runbooks read secrets through `secrets:`).
pub fn tidy(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if v.get("kind").and_then(Value::as_str) == Some("Secret") && v["apiVersion"] == "v1" {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    *val = Value::String(crate::exec::redact::MASK.into());
                }
            }
        }
    }
    v
}

pub fn to_json(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn from_json(what: &str, v: Value) -> Result<DynamicObject, ActionError> {
    serde_json::from_value(v).map_err(|e| {
        ActionError::new(
            ErrorKind::Failed,
            format!("{what}: the edited object is not a valid object: {e}"),
        )
    })
}

/// Reads an object as JSON, with `apiVersion` and `kind` filled in.
pub async fn read(client: &kube::Client, r: &ObjRef) -> Result<Value, ActionError> {
    let o = r
        .api(client)
        .get(&r.name)
        .await
        .map_err(|e| api_error(&r.what(), e))?;
    Ok(with_type(to_json(&o), &r.res))
}

/// Reads an object, or `None` when it does not exist.
pub async fn read_opt(client: &kube::Client, r: &ObjRef) -> Result<Option<Value>, ActionError> {
    match r.api(client).get(&r.name).await {
        Ok(o) => Ok(Some(with_type(to_json(&o), &r.res))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(api_error(&r.what(), e)),
    }
}

fn with_type(mut v: Value, res: &Resource) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.entry("apiVersion")
            .or_insert_with(|| Value::String(res.ar.api_version.clone()));
        m.entry("kind")
            .or_insert_with(|| Value::String(res.ar.kind.clone()));
    }
    v
}

/// What an edit decided: the human-readable changes (empty: nothing to do).
pub type Changes = Vec<String>;

/// Read, edit, write back with the read `resourceVersion`; on 409 read again and redo the
/// edit. An edit that changes nothing writes nothing.
pub async fn update<F>(
    client: &kube::Client,
    r: &ObjRef,
    mut edit: F,
) -> Result<(Value, Changes), ActionError>
where
    F: FnMut(&mut Value) -> Result<Changes, ActionError>,
{
    let api = r.api(client);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut v = read(client, r).await?;
        let changes = edit(&mut v)?;
        if changes.is_empty() {
            return Ok((v, changes));
        }
        let obj = from_json(&r.what(), v)?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.replace(&r.name, &pp, &obj).await {
            Ok(o) => return Ok((with_type(to_json(&o), &r.res), changes)),
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(api_error(&r.what(), e)),
        }
    }
}

/// What `update` would change, without writing.
pub async fn dry_edit<F>(client: &kube::Client, r: &ObjRef, edit: F) -> Result<Changes, ActionError>
where
    F: FnOnce(&mut Value) -> Result<Changes, ActionError>,
{
    let mut v = read(client, r).await?;
    edit(&mut v)
}

pub async fn list(
    client: &kube::Client,
    res: &Resource,
    namespace: &str,
    selector: Option<&str>,
) -> Result<Value, ActionError> {
    let api: Api<DynamicObject> = if res.namespaced {
        Api::namespaced_with(client.clone(), namespace, &res.ar)
    } else {
        Api::all_with(client.clone(), &res.ar)
    };
    let mut lp = ListParams::default();
    if let Some(s) = selector.filter(|s| !s.trim().is_empty()) {
        lp = lp.labels(s);
    }
    let what = if res.namespaced {
        format!("{} in namespace {namespace}", res.ar.plural)
    } else {
        res.ar.plural.clone()
    };
    let l = api.list(&lp).await.map_err(|e| api_error(&what, e))?;
    let items: Vec<Value> = l
        .items
        .iter()
        .map(|o| tidy(with_type(to_json(o), res)))
        .collect();
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": { "resourceVersion": l.metadata.resource_version.unwrap_or_default() },
        "items": items,
    }))
}

/// Deletes an object (background cascading, as kubectl does); the result is the object as
/// it was just before.
pub async fn delete(client: &kube::Client, r: &ObjRef) -> Result<Value, ActionError> {
    let before = read(client, r).await?;
    r.api(client)
        .delete(&r.name, &DeleteParams::background())
        .await
        .map_err(|e| api_error(&r.what(), e))?;
    Ok(tidy(before))
}

/// Sets and removes keys of `metadata.<field>` (`annotations` or `labels`).
pub fn edit_meta(
    v: &mut Value,
    field: &str,
    set: &indexmap::IndexMap<String, String>,
    unset: &[String],
) -> Changes {
    let mut changes = vec![];
    let meta = v
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
    let Some(meta) = meta.and_then(Value::as_object_mut) else {
        return changes;
    };
    let map = meta
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if map.is_null() {
        *map = Value::Object(Map::new());
    }
    let Some(map) = map.as_object_mut() else {
        return changes;
    };
    for (k, val) in set {
        match map.get(k).and_then(Value::as_str) {
            Some(old) if old == val => {}
            Some(old) => changes.push(format!("{field} {k}: {old} → {val}")),
            None => changes.push(format!("{field} {k}: (none) → {val}")),
        }
        map.insert(k.clone(), Value::String(val.clone()));
    }
    for k in unset {
        if let Some(old) = map.remove(k) {
            let old = old.as_str().unwrap_or_default().to_string();
            changes.push(format!("{field} {k}: {old} → (removed)"));
        }
    }
    changes
}

/// Reads the documents of an apply: the inline manifest (a mapping, or a list of them), or
/// the YAML file (one or more documents separated by `---`).
pub fn manifests(
    manifest: Option<&Value>,
    file: Option<&str>,
    base_dir: &Path,
) -> Result<Vec<Value>, ActionError> {
    let docs = match (manifest, file) {
        (Some(Value::Array(items)), None) => items.clone(),
        (Some(m), None) => vec![m.clone()],
        (None, Some(f)) => {
            let path = base_dir.join(f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(format!(
                    "cannot read the manifest file {}: {e}",
                    path.display()
                ))
            })?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
                invalid(format!(
                    "the manifest file {} is not YAML: {e}",
                    path.display()
                ))
            })?;
            docs.into_iter().filter(|d| !d.is_null()).collect()
        }
        (Some(_), Some(_)) => {
            return Err(invalid("apply takes `manifest` or `file`, not both"));
        }
        (None, None) => {
            return Err(invalid(
                "apply needs the object: `manifest:` (inline) or `file:` (a YAML file)",
            ))
        }
    };
    if docs.is_empty() {
        return Err(invalid("apply: the manifest holds no object"));
    }
    for (i, d) in docs.iter().enumerate() {
        let missing: Vec<&str> = [
            ("apiVersion", d.get("apiVersion").and_then(Value::as_str)),
            ("kind", d.get("kind").and_then(Value::as_str)),
            (
                "metadata.name",
                d.pointer("/metadata/name").and_then(Value::as_str),
            ),
        ]
        .iter()
        .filter(|(_, v)| v.is_none_or(str::is_empty))
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "apply: object {} of the manifest has no {}",
                i + 1,
                missing.join(", ")
            )));
        }
    }
    Ok(docs)
}

/// Server-side applies one document. `dry_run` asks the server what it would store.
pub async fn apply_one(
    client: &kube::Client,
    r: &ObjRef,
    doc: &Value,
    field_manager: &str,
    force: bool,
    dry_run: bool,
) -> Result<Value, ActionError> {
    let mut doc = doc.clone();
    if let (Some(ns), Some(meta)) = (&r.namespace, doc.get_mut("metadata")) {
        meta["namespace"] = Value::String(ns.clone());
    }
    let mut pp = PatchParams::apply(field_manager);
    pp.force = force;
    pp.dry_run = dry_run;
    match r.api(client).patch(&r.name, &pp, &Patch::Apply(&doc)).await {
        Ok(o) => Ok(with_type(to_json(&o), &r.res)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut e = super::errors::status_error(&r.what(), s.code, &s.reason, &s.message);
            e.message = format!(
                "{}: 409 Conflict: {} (another field manager owns these fields; set `force: true` to take them over)",
                r.what(),
                s.message
            );
            Err(e)
        }
        Err(e) => Err(api_error(&r.what(), e)),
    }
}

/// The leaves that differ between two objects, as `path: old → new` lines (at most `max`),
/// ignoring what the server maintains (status, resourceVersion, timestamps, ...).
pub fn diff(old: &Value, new: &Value, max: usize) -> Vec<String> {
    let mut out = vec![];
    walk("", &strip_noise(old), &strip_noise(new), &mut out);
    if out.len() > max {
        let more = out.len() - max;
        out.truncate(max);
        out.push(format!("… and {more} more"));
    }
    out
}

fn strip_noise(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    v
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                walk(&join(path, k), va, y.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    walk(&join(path, k), &Value::Null, vb, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_drops_managed_fields_and_masks_secret_values() {
        let v = tidy(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "managedFields": [{"manager": "x"}]},
            "data": {"token": "c2VjcmV0"}
        }));
        assert!(v["metadata"].get("managedFields").is_none());
        assert_eq!(v["data"]["token"], "***");
        let cm = tidy(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}));
        assert_eq!(cm["data"]["k"], "v");
    }

    #[test]
    fn meta_edits_report_only_real_changes() {
        let mut v = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}});
        let set = [
            ("a".to_string(), "1".to_string()),
            ("c".to_string(), "3".to_string()),
        ]
        .into_iter()
        .collect();
        let changes = edit_meta(&mut v, "annotations", &set, &["b".into(), "zz".into()]);
        assert_eq!(
            changes,
            vec!["annotations c: (none) → 3", "annotations b: 2 → (removed)"]
        );
        assert_eq!(v["metadata"]["annotations"], json!({"a": "1", "c": "3"}));
        let mut labels = json!({"metadata": {"labels": null}});
        let set = [("tier".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        assert_eq!(edit_meta(&mut labels, "labels", &set, &[]).len(), 1);
        assert_eq!(labels["metadata"]["labels"]["tier"], "web");
    }

    #[test]
    fn manifests_need_identity_and_read_multi_document_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        )
        .unwrap();
        let docs = manifests(None, Some("m.yaml"), dir.path()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["metadata"]["name"], "b");
        let e = manifests(Some(&json!({"kind": "ConfigMap"})), None, dir.path()).unwrap_err();
        assert_eq!(
            e.message,
            "apply: object 1 of the manifest has no apiVersion, metadata.name"
        );
        let e = manifests(None, Some("nope.yaml"), dir.path()).unwrap_err();
        assert!(
            e.message.starts_with("cannot read the manifest file"),
            "{}",
            e.message
        );
    }

    #[test]
    fn diff_lists_changed_leaves_but_not_server_noise() {
        let a = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "1"}},
                       "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "x:1"}]}}},
                       "status": {"replicas": 1}});
        let b = json!({"metadata": {"resourceVersion": "2", "labels": {"a": "1", "b": "2"}},
                       "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "x:2"}]}}},
                       "status": {"replicas": 3}});
        assert_eq!(
            diff(&a, &b, 10),
            vec![
                "metadata.labels.b: (none) → 2",
                "spec.replicas: 1 → 3",
                "spec.template.spec.containers[0].image: x:1 → x:2",
            ]
        );
        assert_eq!(diff(&a, &b, 1).last().unwrap(), "… and 2 more");
    }
}
