//! The workload verbs on simulated Deployments. Each edit runs the real backend's own edit
//! function (`backends::kubernetes::shared`) on the Deployment as the API shows it, so both
//! accept, refuse and word alike; the Deployment then takes the edited spec back.

use serde_json::{json, Value};

use super::super::deployment::{replicaset_name, Deployment, REVISION_ANNOTATION};
use super::super::{later, unscripted, Call, Reply, State};
use super::api::{self, Res};
use crate::backends::calls::int_of;
use crate::backends::kubernetes::shared::{self as real, Changes, Revision};
use crate::backends::kubernetes::status::status_of;
use crate::backends::{ActionError, ErrorKind, KubeCall, KubeVerb};
use crate::exec::clock::stamp;
use crate::spec::{KubernetesBackendSpec, WorkloadKind};

pub fn deployments() -> Res {
    Res {
        kind: "Deployment".into(),
        plural: "deployments".into(),
        group: "apps".into(),
        version: "v1".into(),
        namespaced: true,
    }
}

fn invalid(e: crate::backends::calls::ArgError) -> ActionError {
    ActionError::new(ErrorKind::Invalid, e.message)
}

/// The Deployment a workload verb names; other workload kinds are not simulated.
fn workload_kind(kind: Option<WorkloadKind>, c: &Call) -> Result<(), ActionError> {
    match kind.unwrap_or_default() {
        WorkloadKind::Deployment => Ok(()),
        other => Err(unscripted(
            c.what,
            format!("the drill world simulates Deployments only, not {other:?}s"),
        )),
    }
}

pub fn find<'a>(st: &'a State, ns: &str, name: &str) -> Result<&'a Deployment, ActionError> {
    st.kube
        .deployments
        .get(&format!("{ns}/{name}"))
        .ok_or_else(|| api::not_found(&deployments(), ns, name))
}

/// The API's answer to an update: the new spec and metadata, with the status and the
/// revision the controller had recorded before it (it has not seen the change yet).
fn update_answer(before: &Value, mut after: Value) -> Value {
    after["status"] = before["status"].clone();
    let rev = before.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION_ANNOTATION.replace('/', "~1")
    ));
    if let (Some(rev), Some(a)) = (rev, after.pointer_mut("/metadata/annotations")) {
        a[REVISION_ANNOTATION] = rev.clone();
    }
    after
}

/// Read, edit with the real backend's function, write back (as `objects::update` does: an
/// edit that changes nothing writes nothing, and answers the object as read).
pub fn edit(
    st: &mut State,
    target: &KubernetesBackendSpec,
    ns: &str,
    name: &str,
    c: &Call,
    f: impl FnOnce(&mut Value, &str, &[Revision]) -> Result<Changes, ActionError>,
) -> Result<Value, ActionError> {
    let res = deployments();
    api::authorize(st, target, "get", &res, ns, Some(name))?;
    let key = format!("{ns}/{name}");
    let start = st.start;
    let stuck = st.faults.rollout_stuck(&key, Some(c.ctx), c.now, &start);
    let d = find(st, ns, name)?;
    let before = d.to_json(c.now);
    let revs = revisions(d);
    let mut obj = before.clone();
    let changes = f(&mut obj, &res.what(ns, name), &revs)?;
    if changes.is_empty() {
        return Ok(before);
    }
    api::authorize(st, target, "update", &res, ns, Some(name))?;
    let d = st.kube.deployments.get_mut(&key).expect("found above");
    d.absorb(&obj, c.now, stuck);
    Ok(update_answer(&before, d.to_json(c.now)))
}

/// The revisions as the real backend reads them from the ReplicaSets.
fn revisions(d: &Deployment) -> Vec<Revision> {
    let mut annotations = json!(d.annotations);
    annotations[REVISION_ANNOTATION] = json!("");
    d.history
        .iter()
        .map(|r| {
            let mut a = annotations.clone();
            a[REVISION_ANNOTATION] = json!(r.number.to_string());
            Revision {
                number: r.number,
                holder: replicaset_name(d, &r.template),
                template: d.template_json(&r.template),
                change_cause: None,
                created: Some(stamp(r.created)),
                annotations: a,
            }
        })
        .collect()
}

/// The workload verbs: scale, set_image, set_env, rollout_restart, rollout_undo, pause,
/// resume, rollout_history, rollout_status.
pub fn call(
    st: &mut State,
    target: &KubernetesBackendSpec,
    call: &KubeCall,
    c: &Call,
) -> Result<Reply, ActionError> {
    let ns = |explicit: &Option<String>| super::namespace(target, explicit.as_deref());
    let ok = |v: Value| Ok(Reply::ok(v));
    match call {
        KubeCall::Scale(a) => {
            workload_kind(a.kind, c)?;
            let n = int_of("replicas", &a.replicas).map_err(invalid)?;
            ok(edit(
                st,
                target,
                &ns(&a.namespace),
                &a.name,
                c,
                |v, what, _| real::scale(v, what, WorkloadKind::Deployment, n),
            )?)
        }
        KubeCall::SetImage(a) => {
            workload_kind(a.kind, c)?;
            let container = a.container.as_deref().filter(|n| !n.is_empty());
            ok(edit(
                st,
                target,
                &ns(&a.namespace),
                &a.name,
                c,
                |v, what, _| real::set_image(v, what, container, &a.image),
            )?)
        }
        KubeCall::SetEnv(a) => {
            workload_kind(a.kind, c)?;
            let container = a.container.as_deref().filter(|n| !n.is_empty());
            ok(edit(
                st,
                target,
                &ns(&a.namespace),
                &a.name,
                c,
                |v, what, _| real::set_env(v, what, container, &a.set, &a.unset),
            )?)
        }
        KubeCall::RolloutRestart(a) | KubeCall::Pause(a) | KubeCall::Resume(a) => {
            workload_kind(a.kind, c)?;
            // kubectl writes the time in RFC 3339 with seconds.
            let now = c.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let verb = call.verb();
            let kind = WorkloadKind::Deployment;
            ok(edit(
                st,
                target,
                &ns(&a.namespace),
                &a.name,
                c,
                |v, what, _| match verb {
                    KubeVerb::Pause => real::set_paused(v, what, kind, true),
                    KubeVerb::Resume => real::set_paused(v, what, kind, false),
                    _ => real::restart(v, what, kind, &now),
                },
            )?)
        }
        KubeCall::RolloutUndo(a) => {
            workload_kind(a.kind, c)?;
            let to = a
                .to_revision
                .as_ref()
                .map(|t| int_of("to_revision", t))
                .transpose()
                .map_err(invalid)?;
            let ns = ns(&a.namespace);
            // The real backend reads the ReplicaSets too.
            api::authorize(st, target, "list", &rs(), &ns, None)?;
            ok(edit(st, target, &ns, &a.name, c, |v, what, revs| {
                real::plan_undo(v, what, WorkloadKind::Deployment, revs, to)
            })?)
        }
        KubeCall::RolloutHistory(a) => {
            workload_kind(a.kind, c)?;
            let ns = ns(&a.namespace);
            api::authorize(st, target, "get", &deployments(), &ns, Some(&a.name))?;
            let d = find(st, &ns, &a.name)?;
            api::authorize(st, target, "list", &rs(), &ns, None)?;
            ok(history(d))
        }
        KubeCall::RolloutStatus(a) => {
            workload_kind(a.kind, c)?;
            let ns = ns(&a.namespace);
            api::authorize(st, target, "get", &deployments(), &ns, Some(&a.name))?;
            rollout_status(find(st, &ns, &a.name)?, c)
        }
        _ => Err(unscripted(c.what, "not a workload verb")),
    }
}

fn rs() -> Res {
    Res {
        kind: "ReplicaSet".into(),
        plural: "replicasets".into(),
        ..deployments()
    }
}

fn history(d: &Deployment) -> Value {
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
    json!({
        "kind": "Deployment",
        "name": d.name,
        "namespace": d.namespace,
        "current_revision": d.revision(),
        "revisions": revisions,
    })
}

/// The object as the API would show it now, read by the real backend's own rules: the same
/// words ("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have
/// been updated..."), the same failure at the progress deadline. A paused Deployment is read
/// like any other, as the real backend does.
fn rollout_status(d: &Deployment, c: &Call) -> Result<Reply, ActionError> {
    let now = c.now;
    let obj = d.to_json(now);
    let (message, done) = status_of(WorkloadKind::Deployment, &obj).map_err(|mut e| {
        e.message = format!("{}: {}", c.what, e.message);
        e.with_result(obj.clone())
    })?;
    if done {
        return Ok(Reply::ok(obj));
    }
    // Look again when the status next changes, so progress shows as it happens.
    let at = d
        .next_change(now)
        .filter(|_| !d.paused)
        .unwrap_or_else(|| later(now, std::time::Duration::from_secs(1)));
    Ok(Reply::WaitUntil(at, message, Some(obj)))
}
