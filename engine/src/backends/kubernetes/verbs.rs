//! A `kubernetes:` step's verb and rendered arguments become a `Call` (objects resolved,
//! arguments checked), which `run` carries out and `preview` describes.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::discovery::Resource;
use super::errors::invalid;
use super::objects::{self, Changes, ObjRef};
use super::{rollout, status, workload, Session};
use crate::backends::calls::int_of;
use crate::backends::{ActionError, CallCtx, KubeCall, KubeVerb};
use crate::spec::{KubeObjectRef, KubeWorkloadRef, WorkloadKind};

/// Edits an object's JSON in place and says what it changed.
pub type EditFn = Box<dyn FnMut(&mut Value) -> Result<Changes, ActionError> + Send>;

/// One verb, ready to run or to preview.
pub enum Call {
    /// Read, edit, write back: `scale`, `set_image`, `set_env`, `rollout_restart`,
    /// `rollout_undo`, `pause`, `resume`, `annotate`, `label`.
    Edit {
        target: ObjRef,
        edit: EditFn,
    },
    Get(ObjRef),
    List {
        res: Resource,
        namespace: String,
        selector: Option<String>,
    },
    Delete(ObjRef),
    Apply {
        docs: Vec<(ObjRef, Value)>,
        manager: String,
        force: bool,
    },
    History {
        target: ObjRef,
        kind: WorkloadKind,
    },
    Status {
        target: ObjRef,
        kind: WorkloadKind,
    },
}

/// Resolves a verb's objects. `now` stamps restarts; `base_dir` anchors `apply.file`. The
/// arguments were validated by `KubeCall::parse`, as they are for the drill world.
pub async fn prepare(
    s: &Session,
    call: &KubeCall,
    now: DateTime<Utc>,
    base_dir: &Path,
) -> Result<Call, ActionError> {
    let workload_ref = |a: &KubeWorkloadRef| s.workload(a.kind, &a.name, a.namespace.as_deref());
    let int = |f, v| int_of(f, v).map_err(|e| invalid(e.message));
    Ok(match call {
        KubeCall::Scale(a) => {
            let n = int("replicas", &a.replicas)?;
            let (target, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
            let what = target.what();
            Call::Edit {
                target,
                edit: Box::new(move |v| workload::scale(v, &what, kind, n)),
            }
        }
        KubeCall::SetImage(a) => {
            // `container: "{{ inputs.container }}"` with an empty input means "the only one".
            let container = a.container.clone().filter(|c| !c.is_empty());
            let image = a.image.clone();
            let (target, _) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
            let what = target.what();
            Call::Edit {
                target,
                edit: Box::new(move |v| {
                    workload::set_image(v, &what, container.as_deref(), &image)
                }),
            }
        }
        KubeCall::SetEnv(a) => {
            let container = a.container.clone().filter(|c| !c.is_empty());
            let (set, unset) = (a.set.clone(), a.unset.clone());
            let (target, _) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
            let what = target.what();
            Call::Edit {
                target,
                edit: Box::new(move |v| {
                    workload::set_env(v, &what, container.as_deref(), &set, &unset)
                }),
            }
        }
        KubeCall::RolloutRestart(a) | KubeCall::Pause(a) | KubeCall::Resume(a) => {
            let (target, kind) = workload_ref(a)?;
            let what = target.what();
            // kubectl writes the time in RFC 3339 with seconds.
            let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let verb = call.verb();
            Call::Edit {
                target,
                edit: Box::new(move |v| match verb {
                    KubeVerb::Pause => workload::set_paused(v, &what, kind, true),
                    KubeVerb::Resume => workload::set_paused(v, &what, kind, false),
                    _ => workload::restart(v, &what, kind, &stamp),
                }),
            }
        }
        KubeCall::Annotate(a) | KubeCall::Label(a) => {
            let target = s
                .object(&KubeObjectRef {
                    kind: a.kind.clone(),
                    name: a.name.clone(),
                    api_version: a.api_version.clone(),
                    namespace: a.namespace.clone(),
                })
                .await?;
            let field = if call.verb() == KubeVerb::Label {
                "labels"
            } else {
                "annotations"
            };
            let (set, unset) = (a.set.clone(), a.unset.clone());
            Call::Edit {
                target,
                edit: Box::new(move |v| Ok(objects::edit_meta(v, field, &set, &unset))),
            }
        }
        KubeCall::Get(a) => Call::Get(s.object(a).await?),
        KubeCall::Delete(a) => Call::Delete(s.object(a).await?),
        KubeCall::List(a) => Call::List {
            res: s.resource(&a.kind, a.api_version.as_deref()).await?,
            namespace: s.ns(a.namespace.as_deref()),
            selector: a.selector.clone().filter(|s| !s.trim().is_empty()),
        },
        KubeCall::Apply(a) => {
            let mut docs = vec![];
            for doc in objects::manifests(a.manifest.as_ref(), a.file.as_deref(), base_dir)? {
                docs.push((apply_target(s, &doc).await?, doc));
            }
            Call::Apply {
                docs,
                manager: a
                    .field_manager
                    .clone()
                    .unwrap_or_else(|| objects::FIELD_MANAGER.into()),
                force: a.force,
            }
        }
        KubeCall::RolloutUndo(a) => {
            let to = a
                .to_revision
                .as_ref()
                .map(|t| int("to_revision", t))
                .transpose()?;
            let (target, kind) = s.workload(a.kind, &a.name, a.namespace.as_deref())?;
            // The revisions are read once; a write that conflicts re-reads only the workload.
            let obj = objects::read(s.client(), &target).await?;
            let ns = target.namespace.clone().unwrap_or_default();
            let revs = rollout::revisions(s.client(), kind, &obj, &ns).await?;
            let what = target.what();
            Call::Edit {
                target,
                edit: Box::new(move |v| rollout::plan_undo(v, &what, kind, &revs, to)),
            }
        }
        KubeCall::RolloutHistory(a) => {
            let (target, kind) = workload_ref(a)?;
            Call::History { target, kind }
        }
        KubeCall::RolloutStatus(a) => {
            let (target, kind) = workload_ref(a)?;
            Call::Status { target, kind }
        }
    })
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

/// `Deployment shop/web: image: a:1 → 2`, or that nothing changed.
pub fn describe(target: &ObjRef, changes: &Changes) -> String {
    if changes.is_empty() {
        format!("{}: already as asked; nothing changed", target.what())
    } else {
        format!("{}: {}", target.what(), changes.join("; "))
    }
}

/// Carries out a call; the result is the object (or list, or history).
pub async fn run(s: &Session, call: Call, ctx: &CallCtx) -> Result<Value, ActionError> {
    let client = s.client();
    match call {
        Call::Edit { target, edit } => {
            let (obj, changes) = objects::update(client, &target, edit).await?;
            ctx.progress.status(&describe(&target, &changes));
            Ok(objects::tidy(obj))
        }
        Call::Get(r) => Ok(objects::tidy(objects::read(client, &r).await?)),
        Call::List {
            res,
            namespace,
            selector,
        } => objects::list(client, &res, &namespace, selector.as_deref()).await,
        Call::Delete(r) => {
            let before = objects::delete(client, &r).await?;
            ctx.progress.status(&format!("{}: deleted", r.what()));
            Ok(before)
        }
        Call::Apply {
            docs,
            manager,
            force,
        } => {
            let mut applied = vec![];
            for (r, doc) in &docs {
                let obj = objects::apply_one(client, r, doc, &manager, force, false).await?;
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
        Call::History { target, kind } => rollout::history(client, &target, kind).await,
        Call::Status { target, kind } => Ok(objects::tidy(
            status::wait(client, &target, kind, ctx).await?,
        )),
    }
}
