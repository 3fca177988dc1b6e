//! The Kubernetes backend (kube-rs): one client per kubeconfig and context, kept for the
//! whole run, serving every verb of a `kubernetes:` step and the live preview of
//! `plan --live`.

mod config;
mod discovery;
mod errors;
#[cfg(test)]
mod fake_api_tests;
mod objects;
mod rollout;
mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use self::errors::invalid;
use self::objects::{Changes, ObjRef};
use super::{expand_home, ActionError, CallCtx, ErrorKind, KubernetesBackend, Output};
use crate::spec::{
    IntOrTemplate, KubeApplySpec, KubeListSpec, KubeMetaSpec, KubeObjectRef, KubeScaleSpec,
    KubeSetEnvSpec, KubeSetImageSpec, KubeUndoSpec, KubeWorkloadRef, KubernetesBackendSpec,
    WorkloadKind, KUBE_VERBS,
};

/// `--context` / `--namespace` given on the command line win over the runbook's backend.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

pub struct KubeBackend {
    overrides: Overrides,
    conns: tokio::sync::Mutex<HashMap<ConnKey, Arc<Conn>>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ConnKey {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
}

struct Conn {
    client: kube::Client,
    default_namespace: String,
    source: String,
    discovery: tokio::sync::Mutex<Option<Arc<kube::Discovery>>>,
}

/// A connection and the namespace that applies to this call.
struct Session {
    conn: Arc<Conn>,
    namespace: String,
}

impl Session {
    fn client(&self) -> &kube::Client {
        &self.conn.client
    }

    /// The step's namespace, else the backend's (or `--namespace`), else the context's.
    fn ns(&self, explicit: Option<&str>) -> String {
        explicit
            .filter(|n| !n.is_empty())
            .map_or_else(|| self.namespace.clone(), str::to_string)
    }

    async fn resource(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<discovery::Resource, ActionError> {
        if kind.trim().is_empty() {
            return Err(invalid("`kind` is empty"));
        }
        if let Some(av) = api_version.filter(|a| !a.is_empty()) {
            return discovery::pinned(self.client(), kind, av).await;
        }
        let mut cached = self.conn.discovery.lock().await;
        let d = match cached.as_ref() {
            Some(d) => d.clone(),
            None => {
                let d = Arc::new(discovery::run(self.client()).await?);
                *cached = Some(d.clone());
                d
            }
        };
        discovery::search(&d, kind)
    }

    async fn object(&self, a: &KubeObjectRef) -> Result<ObjRef, ActionError> {
        named(&a.name)?;
        let res = self.resource(&a.kind, a.api_version.as_deref()).await?;
        Ok(ObjRef::new(res, &self.ns(a.namespace.as_deref()), &a.name))
    }

    fn workload(
        &self,
        kind: Option<WorkloadKind>,
        name: &str,
        ns: Option<&str>,
    ) -> Result<(ObjRef, WorkloadKind), ActionError> {
        named(name)?;
        let kind = kind.unwrap_or_default();
        Ok((
            ObjRef::new(workload::resource(kind), &self.ns(ns), name),
            kind,
        ))
    }
}

/// An empty name would address the whole collection instead of one object.
fn named(name: &str) -> Result<(), ActionError> {
    if name.trim().is_empty() {
        return Err(invalid("`name` is empty"));
    }
    Ok(())
}

/// Edits an object's JSON in place and says what it changed.
type EditFn = Box<dyn FnMut(&mut Value) -> Result<Changes, ActionError> + Send>;

/// A verb that edits one object: where, and the edit.
struct Edit {
    target: ObjRef,
    apply: EditFn,
}

impl KubeBackend {
    pub fn new(overrides: Overrides) -> Self {
        KubeBackend {
            overrides,
            conns: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn session(
        &self,
        target: &KubernetesBackendSpec,
        base_dir: Option<&Path>,
    ) -> Result<Session, ActionError> {
        let kubeconfig = target
            .kubeconfig
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| {
                let p = expand_home(k);
                match base_dir {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p,
                }
            });
        let key = ConnKey {
            kubeconfig,
            context: self
                .overrides
                .context
                .clone()
                .or_else(|| target.context.clone())
                .filter(|c| !c.is_empty()),
        };
        let mut conns = self.conns.lock().await;
        let conn = match conns.get(&key) {
            Some(c) => c.clone(),
            None => {
                let l = config::load(key.kubeconfig.as_deref(), key.context.as_deref()).await?;
                let c = Arc::new(Conn {
                    client: l.client,
                    default_namespace: l.default_namespace,
                    source: l.source,
                    discovery: tokio::sync::Mutex::new(None),
                });
                conns.insert(key, c.clone());
                c
            }
        };
        let namespace = self
            .overrides
            .namespace
            .clone()
            .or_else(|| target.namespace.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| conn.default_namespace.clone());
        Ok(Session { conn, namespace })
    }

    async fn edit_of(
        &self,
        s: &Session,
        verb: &str,
        args: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<Edit>, ActionError> {
        let edit = match verb {
            "scale" => {
                let a: KubeScaleSpec = parse(verb, args)?;
                let n = int_of("replicas", &a.replicas)?;
                let (target, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let what = target.what();
                Edit {
                    target,
                    apply: Box::new(move |v| workload::scale(v, &what, kind, n)),
                }
            }
            "set_image" => {
                let mut a: KubeSetImageSpec = parse(verb, args)?;
                // `container: "{{ inputs.container }}"` with an empty input means "the only one".
                a.container = a.container.filter(|c| !c.is_empty());
                if a.image.trim().is_empty() {
                    return Err(invalid("`image` is empty"));
                }
                let (target, _) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let what = target.what();
                Edit {
                    target,
                    apply: Box::new(move |v| {
                        workload::set_image(v, &what, a.container.as_deref(), &a.image)
                    }),
                }
            }
            "set_env" => {
                let mut a: KubeSetEnvSpec = parse(verb, args)?;
                a.container = a.container.filter(|c| !c.is_empty());
                if a.set.is_empty() && a.unset.is_empty() {
                    return Err(invalid("set_env needs `set` or `unset`"));
                }
                let (target, _) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let what = target.what();
                Edit {
                    target,
                    apply: Box::new(move |v| {
                        workload::set_env(v, &what, a.container.as_deref(), &a.set, &a.unset)
                    }),
                }
            }
            "rollout_restart" | "pause" | "resume" => {
                let a: KubeWorkloadRef = parse(verb, args)?;
                let (target, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let what = target.what();
                // kubectl writes the time in RFC 3339 with seconds.
                let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let verb = verb.to_string();
                Edit {
                    target,
                    apply: Box::new(move |v| match verb.as_str() {
                        "pause" => workload::set_paused(v, &what, kind, true),
                        "resume" => workload::set_paused(v, &what, kind, false),
                        _ => workload::restart(v, &what, kind, &stamp),
                    }),
                }
            }
            "annotate" | "label" => {
                let a: KubeMetaSpec = parse(verb, args)?;
                if a.set.is_empty() && a.unset.is_empty() {
                    return Err(invalid(format!("{verb} needs `set` or `unset`")));
                }
                let target = s
                    .object(&KubeObjectRef {
                        kind: a.kind.clone(),
                        name: a.name.clone(),
                        api_version: a.api_version.clone(),
                        namespace: a.namespace.clone(),
                    })
                    .await?;
                let field = if verb == "label" {
                    "labels"
                } else {
                    "annotations"
                };
                Edit {
                    target,
                    apply: Box::new(move |v| Ok(objects::edit_meta(v, field, &a.set, &a.unset))),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(edit))
    }

    async fn run(
        &self,
        s: &Session,
        verb: &str,
        args: &Value,
        ctx: &CallCtx,
    ) -> Result<Value, ActionError> {
        let client = s.client();
        if let Some(mut e) = self.edit_of(s, verb, args, ctx.clock.now()).await? {
            let (obj, changes) = objects::update(client, &e.target, &mut e.apply).await?;
            ctx.progress.status(&describe(&e.target, &changes));
            return Ok(objects::tidy(obj));
        }
        match verb {
            "get" => {
                let a: KubeObjectRef = parse(verb, args)?;
                let r = s.object(&a).await?;
                Ok(objects::tidy(objects::read(client, &r).await?))
            }
            "list" => {
                let a: KubeListSpec = parse(verb, args)?;
                let res = s.resource(&a.kind, a.api_version.as_deref()).await?;
                objects::list(
                    client,
                    &res,
                    &s.ns(a.namespace.as_deref()),
                    a.selector.as_deref(),
                )
                .await
            }
            "delete" => {
                let a: KubeObjectRef = parse(verb, args)?;
                let r = s.object(&a).await?;
                let before = objects::delete(client, &r).await?;
                ctx.progress.status(&format!("{}: deleted", r.what()));
                Ok(before)
            }
            "apply" => {
                let a: KubeApplySpec = parse(verb, args)?;
                let manager = a
                    .field_manager
                    .clone()
                    .unwrap_or_else(|| objects::FIELD_MANAGER.into());
                let mut applied = vec![];
                for doc in
                    objects::manifests(a.manifest.as_ref(), a.file.as_deref(), &ctx.base_dir)?
                {
                    let r = apply_target(s, &doc).await?;
                    let obj =
                        objects::apply_one(client, &r, &doc, &manager, a.force, false).await?;
                    ctx.progress
                        .status(&format!("{}: applied (server-side)", r.what()));
                    applied.push(objects::tidy(obj));
                }
                Ok(if applied.len() == 1 {
                    applied.remove(0)
                } else {
                    json!({ "apiVersion": "v1", "kind": "List", "items": applied })
                })
            }
            "rollout_undo" => {
                let a: KubeUndoSpec = parse(verb, args)?;
                let to = a
                    .to_revision
                    .as_ref()
                    .map(|t| int_of("to_revision", t))
                    .transpose()?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let (obj, _) = rollout::undo(client, &r, kind, to, Some(ctx)).await?;
                Ok(objects::tidy(obj))
            }
            "rollout_history" => {
                let a: KubeWorkloadRef = parse(verb, args)?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                rollout::history(client, &r, kind).await
            }
            "rollout_status" => {
                let a: KubeWorkloadRef = parse(verb, args)?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                Ok(objects::tidy(rollout::wait(client, &r, kind, ctx).await?))
            }
            other => Err(unknown_verb(other)),
        }
    }

    async fn describe_live(
        &self,
        s: &Session,
        verb: &str,
        args: &Value,
    ) -> Result<String, ActionError> {
        let client = s.client();
        if let Some(e) = self.edit_of(s, verb, args, Utc::now()).await? {
            let changes = objects::dry_edit(client, &e.target, e.apply).await?;
            return Ok(describe(&e.target, &changes));
        }
        match verb {
            "get" | "delete" => {
                let a: KubeObjectRef = parse(verb, args)?;
                let r = s.object(&a).await?;
                Ok(match objects::read_opt(client, &r).await? {
                    Some(_) if verb == "delete" => {
                        format!("{}: exists; the step deletes it", r.what())
                    }
                    Some(o) => format!(
                        "{}: exists (resourceVersion {})",
                        r.what(),
                        o.pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    ),
                    None => format!(
                        "{}: does not exist (the step will fail with 404 Not Found)",
                        r.what()
                    ),
                })
            }
            "list" => {
                let a: KubeListSpec = parse(verb, args)?;
                let res = s.resource(&a.kind, a.api_version.as_deref()).await?;
                let ns = s.ns(a.namespace.as_deref());
                let l = objects::list(client, &res, &ns, a.selector.as_deref()).await?;
                let n = l["items"].as_array().map_or(0, Vec::len);
                let sel = a
                    .selector
                    .map(|s| format!(" matching {s}"))
                    .unwrap_or_default();
                let place = if res.namespaced {
                    format!(" in namespace {ns}")
                } else {
                    String::new()
                };
                Ok(format!("{n} {}{sel}{place} now", res.ar.plural))
            }
            "apply" => {
                let a: KubeApplySpec = parse(verb, args)?;
                let manager = a
                    .field_manager
                    .clone()
                    .unwrap_or_else(|| objects::FIELD_MANAGER.into());
                // `plan` has no base directory to hand; files resolve against the working one.
                let mut out = vec![];
                for doc in
                    objects::manifests(a.manifest.as_ref(), a.file.as_deref(), Path::new("."))?
                {
                    let r = apply_target(s, &doc).await?;
                    let before = objects::read_opt(client, &r).await?;
                    let after =
                        objects::apply_one(client, &r, &doc, &manager, a.force, true).await?;
                    out.push(match before {
                        None => format!("{}: created", r.what()),
                        Some(b) => {
                            let d = objects::diff(&b, &after, 12);
                            if d.is_empty() {
                                format!("{}: no change", r.what())
                            } else {
                                format!("{}: {}", r.what(), d.join("; "))
                            }
                        }
                    });
                }
                Ok(out.join("\n"))
            }
            "rollout_undo" => {
                let a: KubeUndoSpec = parse(verb, args)?;
                let to = a
                    .to_revision
                    .as_ref()
                    .map(|t| int_of("to_revision", t))
                    .transpose()?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let (_, changes) = rollout::undo(client, &r, kind, to, None).await?;
                Ok(describe(&r, &changes))
            }
            "rollout_history" => {
                let a: KubeWorkloadRef = parse(verb, args)?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let h = rollout::history(client, &r, kind).await?;
                let revs: Vec<String> = h["revisions"]
                    .as_array()
                    .map(|a| a.iter().map(|r| r["revision"].to_string()).collect())
                    .unwrap_or_default();
                Ok(format!(
                    "{}: revisions {} (current {})",
                    r.what(),
                    if revs.is_empty() {
                        "none".into()
                    } else {
                        revs.join(", ")
                    },
                    h["current_revision"]
                ))
            }
            "rollout_status" => {
                let a: KubeWorkloadRef = parse(verb, args)?;
                let (r, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
                let obj = objects::read(client, &r).await?;
                let msg = match rollout::status_of(kind, &obj) {
                    Ok((m, _)) => m,
                    Err(e) => e.message,
                };
                Ok(format!("{}: {msg}", r.what()))
            }
            other => Err(unknown_verb(other)),
        }
    }
}

/// Where an applied document goes: its kind via discovery, its namespace or the default.
async fn apply_target(s: &Session, doc: &Value) -> Result<ObjRef, ActionError> {
    let text = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let res = s
        .resource(&text("/kind"), Some(&text("/apiVersion")))
        .await?;
    let ns = s.ns(doc.pointer("/metadata/namespace").and_then(Value::as_str));
    Ok(ObjRef::new(res, &ns, &text("/metadata/name")))
}

fn describe(target: &ObjRef, changes: &Changes) -> String {
    if changes.is_empty() {
        format!("{}: already as asked; nothing changed", target.what())
    } else {
        format!("{}: {}", target.what(), changes.join("; "))
    }
}

/// Names the kubeconfig context in the errors where the cause is likely there: an
/// unreachable server, rejected credentials, missing permissions.
fn with_source(mut e: ActionError, source: &str) -> ActionError {
    let about_access =
        e.message.contains(": 401 Unauthorized:") || e.message.contains(": 403 Forbidden:");
    if e.kind == ErrorKind::Transport || about_access {
        e.message = format!("{} [{source}]", e.message);
    }
    e
}

fn unknown_verb(verb: &str) -> ActionError {
    invalid(format!(
        "unknown verb `{verb}`; the verbs are: {}",
        KUBE_VERBS.join(", ")
    ))
}

/// Reads a verb's arguments. Templates may render numbers where strings are expected
/// (`set: {PORT: "{{ inputs.port }}"}`), so scalar values of `set` maps become strings.
fn parse<T: DeserializeOwned>(verb: &str, args: &Value) -> Result<T, ActionError> {
    let mut a = args.clone();
    if let Some(set) = a.get_mut("set").and_then(Value::as_object_mut) {
        for v in set.values_mut() {
            match v {
                Value::Number(_) | Value::Bool(_) => *v = Value::String(v.to_string()),
                _ => {}
            }
        }
    }
    if let Some(Value::Array(unset)) = a.get_mut("unset") {
        for v in unset.iter_mut() {
            if !v.is_string() {
                *v = Value::String(v.to_string());
            }
        }
    }
    serde_json::from_value(a)
        .map_err(|e| invalid(format!("the arguments of `{verb}` after rendering: {e}")))
}

/// A number that may have come from a template (`"{{ inputs.replicas }}"` renders to `"3"`).
fn int_of(field: &str, v: &IntOrTemplate) -> Result<i64, ActionError> {
    match v {
        IntOrTemplate::Int(n) => Ok(*n),
        IntOrTemplate::Template(s) => s
            .trim()
            .parse()
            .map_err(|_| invalid(format!("`{field}` must be a whole number, got `{s}`"))),
    }
}

/// Names the verb and the cluster in every error; bounds the call by the step's deadline.
async fn guarded<F>(verb: &str, ctx: &CallCtx, fut: F) -> Result<Value, ActionError>
where
    F: std::future::Future<Output = Result<Value, ActionError>>,
{
    // `rollout_status` ends itself at the deadline with a better message; this is for the
    // other verbs, whose requests have no deadline of their own.
    let slack = std::time::Duration::from_millis(750);
    let limit = ctx.remaining().map(|r| r + slack);
    let res = tokio::select! {
        r = fut => r,
        _ = ctx.cancel.cancelled() => Err(ActionError::new(ErrorKind::Cancelled, "interrupted")),
        _ = sleep_opt(limit) => Err(ActionError::new(ErrorKind::Timeout, "the API server did not answer before the step's timeout")),
    };
    res.map_err(|mut e| {
        e.message = format!("kubernetes.{verb}: {}", e.message);
        e
    })
}

async fn sleep_opt(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl KubernetesBackend for KubeBackend {
    async fn call(
        &self,
        target: &KubernetesBackendSpec,
        verb: &str,
        args: &Value,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError> {
        guarded(verb, ctx, async {
            let s = self.session(target, Some(&ctx.base_dir)).await?;
            self.run(&s, verb, args, ctx)
                .await
                .map_err(|e| with_source(e, &s.conn.source))
        })
        .await
        .map(Output::from)
    }

    async fn preview(
        &self,
        target: &KubernetesBackendSpec,
        verb: &str,
        args: &Value,
    ) -> Option<String> {
        let res = async {
            let s = self.session(target, None).await?;
            self.describe_live(&s, verb, args)
                .await
                .map_err(|e| with_source(e, &s.conn.source))
        };
        let res = tokio::time::timeout(std::time::Duration::from_secs(30), res).await;
        Some(match res {
            Ok(Ok(text)) => text,
            Ok(Err(e)) if e.kind == ErrorKind::Transport => {
                format!("cannot read the cluster: {}", e.message)
            }
            Ok(Err(e)) => format!("the step would fail: {}", e.message),
            Err(_) => "cannot read the cluster: no answer within 30s".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_numbers_become_the_strings_the_spec_expects() {
        let a: KubeSetEnvSpec = parse(
            "set_env",
            &json!({"name": "web", "set": {"PORT": 8080, "DEBUG": true}, "unset": [1]}),
        )
        .unwrap();
        assert_eq!(a.set["PORT"], "8080");
        assert_eq!(a.set["DEBUG"], "true");
        assert_eq!(a.unset, vec!["1"]);
        let e = parse::<KubeScaleSpec>("scale", &json!({"name": "web"})).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message
                .starts_with("the arguments of `scale` after rendering: missing field `replicas`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn replicas_may_come_from_a_template() {
        assert_eq!(
            int_of("replicas", &IntOrTemplate::Template(" 3".into())).unwrap(),
            3
        );
        assert_eq!(int_of("replicas", &IntOrTemplate::Int(0)).unwrap(), 0);
        let e = int_of("replicas", &IntOrTemplate::Template("three".into())).unwrap_err();
        assert_eq!(e.message, "`replicas` must be a whole number, got `three`");
    }
}
