//! `rollout_status`: when a rollout is complete, by kubectl's rules and in its words, and
//! waiting for it within the step's deadline.

use std::time::Duration;

use serde_json::Value;

use super::errors::invalid;
use super::objects::{self, ObjRef};
use crate::backends::{ActionError, CallCtx, ErrorKind};
use crate::spec::WorkloadKind;

/// How often `rollout_status` reads the object.
const POLL: Duration = Duration::from_millis(500);

/// Where a rollout stands: kubectl's message, and whether it is complete.
pub fn status_of(kind: WorkloadKind, v: &Value) -> Result<(String, bool), ActionError> {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generation = v
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let st = |k: &str| {
        v.pointer(&format!("/status/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let observed = st("observedGeneration");
    let spec_replicas = v.pointer("/spec/replicas").and_then(Value::as_i64);
    match kind {
        WorkloadKind::Deployment => {
            if generation > observed {
                return Ok((
                    "Waiting for deployment spec update to be observed...".into(),
                    false,
                ));
            }
            let conditions = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let timed_out = conditions
                .iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
            if timed_out {
                // The conditions say why: "ReplicaSet x has timed out progressing", and a
                // ReplicaFailure carries the API's refusal to create pods, if that was it.
                let why: Vec<&str> = conditions
                    .iter()
                    .filter(|c| c["type"] == "Progressing" || c["type"] == "ReplicaFailure")
                    .filter_map(|c| c["message"].as_str())
                    .collect();
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                };
                return Err(ActionError::new(
                    ErrorKind::Failed,
                    format!("deployment \"{name}\" exceeded its progress deadline{why}"),
                ));
            }
            let (updated, replicas, available) = (
                st("updatedReplicas"),
                st("replicas"),
                st("availableReplicas"),
            );
            if let Some(want) = spec_replicas {
                if updated < want {
                    return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."), false));
                }
            }
            if replicas > updated {
                return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...", replicas - updated), false));
            }
            if available < updated {
                return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."), false));
            }
            Ok((
                format!("deployment \"{name}\" successfully rolled out"),
                true,
            ))
        }
        WorkloadKind::StatefulSet => {
            if v.pointer("/spec/updateStrategy/type")
                .and_then(Value::as_str)
                .unwrap_or("RollingUpdate")
                != "RollingUpdate"
            {
                return Err(invalid(format!("statefulset \"{name}\": rollout status is only available for the RollingUpdate strategy")));
            }
            if observed == 0 || generation > observed {
                return Ok((
                    "Waiting for statefulset spec update to be observed...".into(),
                    false,
                ));
            }
            let want = spec_replicas.unwrap_or(1);
            let ready = st("readyReplicas");
            if ready < want {
                return Ok((
                    format!("Waiting for {} pods to be ready...", want - ready),
                    false,
                ));
            }
            if let Some(partition) = v
                .pointer("/spec/updateStrategy/rollingUpdate/partition")
                .and_then(Value::as_i64)
            {
                let updated = st("updatedReplicas");
                if updated < want - partition {
                    return Ok((format!("Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...", want - partition), false));
                }
                return Ok((
                    format!(
                        "partitioned roll out complete: {updated} new pods have been updated..."
                    ),
                    true,
                ));
            }
            let s = |k: &str| {
                v.pointer(&format!("/status/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            if s("updateRevision") != s("currentRevision") {
                return Ok((format!("waiting for statefulset rolling update to complete {} pods at revision {}...", st("updatedReplicas"), s("updateRevision")), false));
            }
            Ok((
                format!(
                    "statefulset rolling update complete {} pods at revision {}...",
                    st("currentReplicas"),
                    s("currentRevision")
                ),
                true,
            ))
        }
        WorkloadKind::DaemonSet => {
            if v.pointer("/spec/updateStrategy/type")
                .and_then(Value::as_str)
                .unwrap_or("RollingUpdate")
                != "RollingUpdate"
            {
                return Err(invalid(format!("daemon set \"{name}\": rollout status is only available for the RollingUpdate strategy")));
            }
            if generation > observed {
                return Ok((
                    "Waiting for daemon set spec update to be observed...".into(),
                    false,
                ));
            }
            let desired = st("desiredNumberScheduled");
            let updated = st("updatedNumberScheduled");
            if updated < desired {
                return Ok((format!("Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated..."), false));
            }
            let available = st("numberAvailable");
            if available < desired {
                return Ok((format!("Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available..."), false));
            }
            Ok((
                format!("daemon set \"{name}\" successfully rolled out"),
                true,
            ))
        }
    }
}

/// `rollout_status`: polls until the rollout is complete, the step's deadline passes, or
/// the run is interrupted. The result is the object as last read.
pub async fn wait(
    client: &kube::Client,
    r: &ObjRef,
    kind: WorkloadKind,
    ctx: &CallCtx,
) -> Result<Value, ActionError> {
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let obj = objects::read(client, r).await?;
        let (msg, done) = status_of(kind, &obj).map_err(|mut e| {
            e.message = format!("{}: {}", r.what(), e.message);
            e.with_result(objects::tidy(obj.clone()))
        })?;
        if msg != last {
            ctx.progress.status(&msg);
            last = msg.clone();
        }
        if done {
            return Ok(obj);
        }
        let pause = match ctx.remaining() {
            Some(rem) if rem.is_zero() => {
                return Err(ActionError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{}: the rollout did not finish within {}: {last}",
                        r.what(),
                        crate::model::fmt_duration(started.elapsed())
                    ),
                )
                .with_result(objects::tidy(obj)));
            }
            Some(rem) => rem.min(POLL),
            None => POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.cancel.cancelled() => {
                return Err(ActionError::new(ErrorKind::Cancelled, format!("{}: stopped waiting for the rollout (interrupted)", r.what())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(image: &str) -> Value {
        json!({"metadata": {"name": "web", "generation": 3},
               "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": image}]}}},
               "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}})
    }

    #[test]
    fn deployment_status_messages_follow_kubectl() {
        let mut d = dep("x");
        assert_eq!(
            status_of(WorkloadKind::Deployment, &d).unwrap(),
            ("deployment \"web\" successfully rolled out".into(), true)
        );
        d["status"]["updatedReplicas"] = json!(1);
        assert_eq!(status_of(WorkloadKind::Deployment, &d).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...");
        d["status"]["updatedReplicas"] = json!(2);
        d["status"]["replicas"] = json!(3);
        assert_eq!(status_of(WorkloadKind::Deployment, &d).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...");
        d["status"]["replicas"] = json!(2);
        d["status"]["availableReplicas"] = json!(1);
        assert_eq!(status_of(WorkloadKind::Deployment, &d).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...");
        d["metadata"]["generation"] = json!(4);
        assert_eq!(
            status_of(WorkloadKind::Deployment, &d).unwrap(),
            (
                "Waiting for deployment spec update to be observed...".into(),
                false
            )
        );
        d["metadata"]["generation"] = json!(3);
        d["status"]["conditions"] = json!([
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"web-1\" has timed out progressing."},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": "pods \"web-1-x\" is forbidden: exceeded quota"}
        ]);
        let e = status_of(WorkloadKind::Deployment, &d).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(
            e.message,
            "deployment \"web\" exceeded its progress deadline: ReplicaSet \"web-1\" has timed out progressing.; pods \"web-1-x\" is forbidden: exceeded quota"
        );
    }

    #[test]
    fn statefulset_and_daemonset_status() {
        let sts = json!({"metadata": {"name": "db", "generation": 2}, "spec": {"replicas": 3},
                         "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 3,
                                    "updateRevision": "db-2", "currentRevision": "db-1"}});
        assert_eq!(
            status_of(WorkloadKind::StatefulSet, &sts).unwrap().0,
            "waiting for statefulset rolling update to complete 3 pods at revision db-2..."
        );
        let ds = json!({"metadata": {"name": "agent", "generation": 1},
                        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(status_of(WorkloadKind::DaemonSet, &ds).unwrap().0, "Waiting for daemon set \"agent\" rollout to finish: 1 of 2 updated pods are available...");
    }
}
