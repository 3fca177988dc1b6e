//! The Kubernetes backend (kube-rs): one client per kubeconfig and context, kept for the
//! whole run, serving every verb of a `kubernetes:` step and the live preview of
//! `plan --live`.

mod config;
mod discovery;
mod errors;
#[cfg(test)]
mod fake_api_tests;
mod objects;
mod preview;
mod rollout;
pub mod selector;
pub mod status;
mod verbs;
mod workload;

pub use workload::image_change;

/// What the drill world shares with this backend, so that both answer in the same words: the
/// edits of each verb (pure functions over an object's JSON), the API's error wording, and
/// the field manager of our writes.
pub mod shared {
    pub use super::errors::status_error;
    pub use super::objects::{edit_meta, manifests, Changes, FIELD_MANAGER};
    pub use super::rollout::{plan_undo, Revision};
    pub use super::workload::{restart, scale, set_env, set_image, set_paused};
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use self::errors::invalid;
use self::objects::ObjRef;
use super::{expand_home, ActionError, CallCtx, ErrorKind, KubeCall, KubernetesBackend, Output};
use crate::spec::{KubeObjectRef, KubernetesBackendSpec, WorkloadKind};

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
            if discovery::is_group_only(av) {
                return discovery::preferred(self.client(), kind, av).await;
            }
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
        call: &KubeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError> {
        guarded(call.verb().as_str(), ctx, async {
            let s = self.session(target, Some(&ctx.base_dir)).await?;
            let call = verbs::prepare(&s, call, ctx.clock.now(), &ctx.base_dir);
            match call.await {
                Ok(call) => verbs::run(&s, call, ctx).await,
                Err(e) => Err(e),
            }
            .map_err(|e| with_source(e, &s.conn.source))
        })
        .await
        .map(Output::from)
    }

    async fn preview(&self, target: &KubernetesBackendSpec, call: &KubeCall) -> Option<String> {
        let res = async {
            let s = self.session(target, None).await?;
            // `plan` passes `apply.file` absolute; nothing else here reads files.
            let call = verbs::prepare(&s, call, chrono::Utc::now(), Path::new("."));
            match call.await {
                Ok(call) => preview::describe_live(&s, call).await,
                Err(e) => Err(e),
            }
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
