//! Unit tests of the simulated world, through the backend traits the runner uses.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::build::build;
use super::World;
use crate::backends::{
    CallCtx, ComposeBackend, ErrorKind, HttpBackend, HttpRequest, KubernetesBackend, NoProgress,
    ShellBackend, ShellRequest,
};
use crate::drill::spec::DrillSpec;
use crate::exec::clock::{Clock, VirtualClock};
use crate::spec::{ComposeBackendSpec, KubernetesBackendSpec};

const HEAD: &str = "apiVersion: runbook/v1\nkind: Drill\nmetadata: { name: t }\nrunbook: x.yaml\n";

fn start() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

pub(super) fn world(yaml: &str) -> (World, Arc<VirtualClock>) {
    let text = format!("{HEAD}{yaml}");
    let doc = crate::yaml::parse("t.yaml", text.as_bytes()).unwrap();
    let spec: DrillSpec = serde_json::from_value(doc.value).unwrap();
    let (state, problems) = build(&spec, start());
    assert!(problems.is_empty(), "{problems:?}");
    (World::new(state), Arc::new(VirtualClock::new(start())))
}

pub(super) fn ctx(
    clock: &Arc<VirtualClock>,
    step: &str,
    attempt: u32,
    timeout: Option<Duration>,
) -> CallCtx {
    CallCtx {
        step: step.into(),
        attempt,
        deadline: timeout.map(|t| clock.now() + chrono::Duration::from_std(t).unwrap()),
        clock: clock.clone(),
        cancel: CancellationToken::new(),
        progress: Arc::new(NoProgress),
        run_dir: std::env::temp_dir(),
        base_dir: std::env::temp_dir(),
        spawned: None,
    }
}

fn secs(clock: &VirtualClock) -> i64 {
    (clock.now() - start()).num_seconds()
}

const DEPLOYMENT: &str = r#"
world:
  kubernetes:
    deployments:
      - namespace: prod
        name: web
        replicas: 3
        revisions: [web:v1, web:v2]
        rollout: { takes: 45s }
"#;

fn kube_target() -> KubernetesBackendSpec {
    KubernetesBackendSpec {
        namespace: Some("prod".into()),
        ..Default::default()
    }
}

async fn kube(
    w: &World,
    c: &CallCtx,
    verb: &str,
    args: Value,
) -> Result<crate::backends::Output, crate::backends::ActionError> {
    let call = crate::backends::KubeCall::parse(verb, &args)?;
    KubernetesBackend::call(w, &kube_target(), &call, c).await
}

#[tokio::test]
async fn rollout_undo_swaps_the_template_and_records_a_new_revision() {
    let (w, clock) = world(DEPLOYMENT);
    let c = ctx(&clock, "undo", 1, None);
    let out = kube(&w, &c, "rollout_undo", json!({"name": "web"}))
        .await
        .unwrap();
    // As from the API server: the answer to the update carries the revision the controller
    // had recorded so far; the new one shows on the next read.
    assert_eq!(
        out.result["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let now = kube(&w, &c, "get", json!({"kind": "Deployment", "name": "web"}))
        .await
        .unwrap();
    let d = &now.result;
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:v1"
    );
    assert_eq!(d["spec"]["replicas"], 3);
    let diff = out.world_diff.expect("a mutating call reports its diff");
    assert_eq!(
        diff["kubernetes deployment prod/web"]["image"],
        json!({"from": "web:v2", "to": "web:v1"})
    );
    assert_eq!(
        diff["kubernetes deployment prod/web"]["revision"],
        json!({"from": 2, "to": 3})
    );

    // Revision 1 moved to the top as 3: the history is now 2, 3, like the controller does it.
    let h = kube(&w, &c, "rollout_history", json!({"name": "web"}))
        .await
        .unwrap()
        .result;
    let revs: Vec<i64> = h["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revs, vec![2, 3]);
    assert!(kube(&w, &c, "rollout_history", json!({"name": "web"}))
        .await
        .unwrap()
        .world_diff
        .is_none());

    let back = kube(
        &w,
        &c,
        "rollout_undo",
        json!({"name": "web", "to_revision": 2}),
    )
    .await
    .unwrap();
    assert_eq!(
        back.result["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:v2"
    );
    // The answer to the update shows the revision the controller had recorded until then,
    // as the API server's does; a read afterwards shows the new one.
    assert_eq!(
        back.result["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let now = kube(&w, &c, "get", json!({"kind": "Deployment", "name": "web"}))
        .await
        .unwrap()
        .result;
    assert_eq!(
        now["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    let missing = kube(
        &w,
        &c,
        "rollout_undo",
        json!({"name": "web", "to_revision": 1}),
    )
    .await
    .unwrap_err();
    assert!(
        missing.message.starts_with(
            "kubernetes.rollout_undo: Deployment prod/web has no revision 1; its revisions: "
        ),
        "{}",
        missing.message
    );
}

#[tokio::test]
async fn rollout_status_waits_on_the_virtual_clock_and_respects_the_deadline() {
    let (w, clock) = world(DEPLOYMENT);
    let c = ctx(&clock, "set", 1, None);
    let out = kube(
        &w,
        &c,
        "set_image",
        json!({"name": "web", "image": "web:v3"}),
    )
    .await
    .unwrap();
    // The answer to the update shows the status before the controller saw the change.
    assert_eq!(out.result["status"]["updatedReplicas"], 3);
    let now = kube(&w, &c, "get", json!({"kind": "Deployment", "name": "web"}))
        .await
        .unwrap();
    assert_eq!(
        now.result["status"].get("updatedReplicas"),
        None,
        "zero counts are left out"
    );

    let short = ctx(&clock, "wait", 1, Some(Duration::from_secs(20)));
    let e = kube(&w, &short, "rollout_status", json!({"name": "web"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    // The real backend's words: "the rollout did not finish within 20s: Waiting for ...".
    assert!(
        e.message.contains(
            "the rollout did not finish within 20s: Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        ),
        "{}",
        e.message
    );
    assert_eq!(secs(&clock), 20);

    let c = ctx(&clock, "wait", 2, None);
    let done = kube(&w, &c, "rollout_status", json!({"name": "web"}))
        .await
        .unwrap();
    assert_eq!(
        secs(&clock),
        45,
        "the rollout takes 45s from when it started"
    );
    assert_eq!(done.result["status"]["availableReplicas"], 3);
    assert_eq!(done.result["status"]["updatedReplicas"], 3);
}

#[tokio::test]
async fn a_rollout_that_never_becomes_available_fails_at_the_progress_deadline() {
    let (w, clock) = world(&format!(
        "{DEPLOYMENT}faults:\n  - rollout_never_available: prod/web\n    step: set\n"
    ));
    let other = ctx(&clock, "other", 1, None);
    kube(&w, &other, "scale", json!({"name": "web", "replicas": 4}))
        .await
        .unwrap();
    kube(&w, &other, "rollout_status", json!({"name": "web"}))
        .await
        .expect("scale-ups outside `set` still finish");
    let t0 = secs(&clock);
    let c = ctx(&clock, "set", 1, None);
    kube(
        &w,
        &c,
        "set_image",
        json!({"name": "web", "image": "web:v3"}),
    )
    .await
    .unwrap();
    let e = kube(&w, &c, "rollout_status", json!({"name": "web"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(
        e.message.contains("exceeded its progress deadline"),
        "{}",
        e.message
    );
    assert_eq!(secs(&clock) - t0, 600);
    let d = e.result.expect("the Deployment is the evidence");
    assert_eq!(
        d["status"]["conditions"][1]["reason"],
        "ProgressDeadlineExceeded"
    );
}

#[tokio::test]
async fn scale_and_pods_follow_the_replicas() {
    let (w, clock) = world(DEPLOYMENT);
    let c = ctx(&clock, "halt", 1, None);
    let d = kube(&w, &c, "scale", json!({"name": "web", "replicas": "0"}))
        .await
        .unwrap()
        .result;
    assert_eq!(d["spec"]["replicas"], 0);
    let d = kube(&w, &c, "get", json!({"kind": "Deployment", "name": "web"}))
        .await
        .unwrap()
        .result;
    assert_eq!(d["status"].get("availableReplicas"), None);
    let pods = kube(
        &w,
        &c,
        "list",
        json!({"kind": "Pod", "selector": "app=web"}),
    )
    .await
    .unwrap()
    .result;
    assert_eq!(pods["items"].as_array().unwrap().len(), 0);
    kube(&w, &c, "scale", json!({"name": "web", "replicas": 2}))
        .await
        .unwrap();
    let pods = kube(
        &w,
        &c,
        "list",
        json!({"kind": "Pod", "selector": "app=web"}),
    )
    .await
    .unwrap()
    .result;
    assert_eq!(
        pods["items"].as_array().unwrap().len(),
        0,
        "new pods are not ready before the rollout takes"
    );
    clock.advance(Duration::from_secs(45));
    let pods = kube(
        &w,
        &c,
        "list",
        json!({"kind": "Pod", "selector": "app=web"}),
    )
    .await
    .unwrap()
    .result;
    assert_eq!(pods["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unscripted_calls_fail_loudly_with_the_call_shown() {
    let (w, clock) = world(DEPLOYMENT);
    let c = ctx(&clock, "s", 1, None);
    // A missing object is the API server's 404, as the real backend reports it.
    let e = kube(&w, &c, "get", json!({"kind": "Deployment", "name": "wbe"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_eq!(
        e.message,
        "kubernetes.get: Deployment prod/wbe: 404 Not Found: deployments.apps \"wbe\" not found (check the kind, the name and the namespace)"
    );
    // What the world does not simulate fails loudly, naming the call.
    let e = kube(
        &w,
        &c,
        "scale",
        json!({"kind": "StatefulSet", "name": "db", "replicas": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message.contains("drill world: StatefulSet prod/db") && !e.retryable(),
        "{}",
        e.message
    );
    let req = HttpRequest {
        method: "GET".into(),
        url: "https://x/health".into(),
        ..Default::default()
    };
    let e = w.send(&req, &c).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message.contains("GET https://x/health") && e.message.contains("world.http"),
        "{}",
        e.message
    );
    let req = ShellRequest {
        argv: vec!["rm".into(), "-rf".into(), "/".into()],
        ..Default::default()
    };
    let e = w.run(&req, &c).await.unwrap_err();
    assert!(
        e.message.contains("rm -rf /") && e.message.contains("world.shell"),
        "{}",
        e.message
    );
    assert!(!e.retryable());
}

#[tokio::test]
async fn http_sequences_conditions_and_failing_endpoints() {
    let (w, clock) = world(&format!(
        r#"{DEPLOYMENT}  http:
    - match: {{ url: "https://h/health" }}
      when: {{ kubernetes: {{ deployments: {{ prod/web: {{ image: "web:v1" }} }} }} }}
      respond: {{ status: 200, json: {{ ok: true }} }}
    - match: {{ method: GET, url: "https://h/*" }}
      respond:
        - {{ status: 503, times: 2 }}
        - {{ error: connection refused, times: 1 }}
        - {{ status: 500, body: "still down", takes: 3s }}
faults:
  - http_failing: {{ url: "https://h/flaky" }}
    at: 1m
"#
    ));
    let c = ctx(&clock, "h", 1, None);
    let get = |url: &str| HttpRequest {
        method: "GET".into(),
        url: url.into(),
        ..Default::default()
    };
    assert_eq!(
        w.send(&get("https://h/health"), &c).await.unwrap().result["status"],
        503
    );
    assert_eq!(
        w.send(&get("https://h/health"), &c).await.unwrap().result["status"],
        503
    );
    let e = w.send(&get("https://h/health"), &c).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transport);
    let r = w.send(&get("https://h/health"), &c).await.unwrap().result;
    assert_eq!(
        (
            r["status"].clone(),
            r["body"].clone(),
            r["elapsed_ms"].clone()
        ),
        (json!(500), json!("still down"), json!(3000))
    );
    assert_eq!(secs(&clock), 3);
    kube(
        &w,
        &c,
        "set_image",
        json!({"name": "web", "image": "web:v1"}),
    )
    .await
    .unwrap();
    let ok = w.send(&get("https://h/health"), &c).await.unwrap().result;
    assert_eq!(
        (ok["status"].clone(), ok["json"].clone()),
        (json!(200), json!({"ok": true}))
    );
    assert_eq!(
        w.send(&get("https://h/flaky"), &c).await.unwrap().result["status"],
        500,
        "before `at` the script answers"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        w.send(&get("https://h/flaky"), &c).await.unwrap().result["status"],
        503
    );
}

#[tokio::test]
async fn shell_rules_match_argv_globs_and_scripts() {
    let (w, clock) = world(
        r#"
world:
  shell:
    - match: { argv: ["git", "revert", "*"] }
      respond: { stdout: "[main 1a2b3c] Revert" }
    - match: { argv: ["kubectl", "**"] }
      respond: [{ exit: 1, stderr: "error: the server is unavailable", times: 1 }, { stdout: '{"items": []}' }]
    - match: { script: "*curl*" }
      respond: { stdout: ok, takes: 2s }
"#,
    );
    let c = ctx(&clock, "s", 1, None);
    let argv = |v: &[&str]| ShellRequest {
        argv: v.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let r = w
        .run(&argv(&["git", "revert", "HEAD"]), &c)
        .await
        .unwrap()
        .result;
    assert_eq!(
        (r["exit_code"].clone(), r["stdout"].clone()),
        (json!(0), json!("[main 1a2b3c] Revert"))
    );
    assert!(w.run(&argv(&["git", "revert"]), &c).await.is_err());
    let e = w
        .run(&argv(&["kubectl", "get", "pods"]), &c)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_eq!(
        e.message,
        "`kubectl` exited with code 1: error: the server is unavailable"
    );
    assert_eq!(e.result.unwrap()["exit_code"], 1);
    let r = w
        .run(&argv(&["kubectl", "get", "pods"]), &c)
        .await
        .unwrap()
        .result;
    assert_eq!(r["json"], json!({"items": []}));
    let script = ShellRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "set -e\ncurl -fsS http://x".into(),
        ],
        is_script: true,
        ..Default::default()
    };
    assert_eq!(w.run(&script, &c).await.unwrap().result["stdout"], "ok");
    assert_eq!(secs(&clock), 2);
}

#[tokio::test]
async fn compose_verbs_change_the_project_like_the_real_cli() {
    let (w, clock) = world(
        r#"
world:
  compose:
    projects:
      phoenix:
        services: { orch: { image: "orch:v2" }, db: { image: "pg:16", logs: "ready\nlistening" } }
        crashing_images: ["orch:v3"]
        unpullable_images: ["orch:v9"]
"#,
    );
    let c = ctx(&clock, "c", 1, None);
    let t = ComposeBackendSpec::default();
    let call = |verb: &'static str, args: Value| {
        let (w, t, c) = (w.clone(), t.clone(), c.clone());
        async move {
            let call = crate::backends::ComposeCall::parse(verb, &args)?;
            ComposeBackend::call(&w, &t, &call, &c).await
        }
    };
    // set_image recreates the service at once and says what ran before, for the undo.
    let out = call("set_image", json!({"service": "orch", "image": "orch:v1"}))
        .await
        .unwrap();
    let r = &out.result;
    assert_eq!(
        (
            r["service"].clone(),
            r["image"].clone(),
            r["previous_image"].clone()
        ),
        (json!("orch"), json!("orch:v1"), json!("orch:v2"))
    );
    assert_eq!(
        r["command"],
        json!([
            "docker",
            "compose",
            "-p",
            "phoenix",
            "up",
            "-d",
            "--no-deps",
            "orch"
        ])
    );
    assert_eq!(
        r["override_file"],
        "compose-phoenix/compose-override-orch.yaml"
    );
    assert_eq!(
        out.world_diff.unwrap()["compose service phoenix/orch"]["image"],
        json!({"from": "orch:v2", "to": "orch:v1"})
    );
    assert_eq!(secs(&clock), 5);
    let ps = call("ps", json!({})).await.unwrap().result;
    assert_eq!(ps["by_service"]["orch"]["image"], "orch:v1");
    assert_eq!(ps["by_service"]["db"]["state"], "running");
    assert_eq!(ps["services"][0]["service"], "db", "sorted by service");
    let back = call("set_image", json!({"service": "orch", "image": "orch:v2"}))
        .await
        .unwrap()
        .result;
    assert_eq!(
        (
            back["previous_image"].clone(),
            back["override_file"].clone()
        ),
        (json!("orch:v1"), Value::Null)
    );

    // A crashing image: up --wait fails, and the recreated containers are in the diff.
    call("set_image", json!({"service": "orch", "image": "orch:v3"}))
        .await
        .unwrap();
    assert_eq!(
        call("ps", json!({})).await.unwrap().result["by_service"]["orch"]["health"],
        "unhealthy"
    );
    call("stop", json!({"services": ["orch"]})).await.unwrap();
    let e = call("up", json!({"services": ["orch"], "wait": true}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "compose.up: `docker compose up` exited with code 1: container phoenix-orch-1 is unhealthy"
    );
    assert!(
        e.world_diff.is_some(),
        "the container was started before the wait failed"
    );

    let e = call("set_image", json!({"service": "orch", "image": "orch:v9"}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("pull access denied for orch:v9"),
        "{}",
        e.message
    );
    assert!(e.world_diff.is_none(), "a failed pull changes nothing");
    let logs = call("logs", json!({"services": ["db"], "tail": 1}))
        .await
        .unwrap()
        .result;
    assert_eq!(logs["stdout"], "phoenix-db-1  | listening\n");
    call("down", json!({})).await.unwrap();
    assert_eq!(
        call("ps", json!({})).await.unwrap().result["services"],
        json!([])
    );
    // As compose does: restarting what has no container is no error, and changes nothing.
    let out = call("restart", json!({"services": ["db"]})).await.unwrap();
    assert!(out.world_diff.is_none());
    assert_eq!(
        call("up", json!({"services": ["nope"]}))
            .await
            .unwrap_err()
            .message,
        "compose.up: `docker compose up` exited with code 1: no such service: nope"
    );
}

#[tokio::test]
async fn error_faults_hit_the_named_step_and_attempt_only() {
    let (w, clock) = world(&format!(
        "{DEPLOYMENT}faults:\n  - step: undo\n    attempt: 1\n    error: connection refused\n  - error: etcd timeout\n    kind: timeout\n    backend: kubernetes\n    at: 10m\n    for: 1m\n    times: 1\n"
    ));
    let get = json!({"kind": "Deployment", "name": "web"});
    let e = kube(&w, &ctx(&clock, "undo", 1, None), "get", get.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::Transport,
            "kubernetes.get: connection refused (injected fault)"
        )
    );
    assert!(e.retryable());
    kube(&w, &ctx(&clock, "undo", 2, None), "get", get.clone())
        .await
        .unwrap();
    kube(&w, &ctx(&clock, "other", 1, None), "get", get.clone())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(600));
    let e = kube(&w, &ctx(&clock, "other", 1, None), "get", get.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    kube(&w, &ctx(&clock, "other", 1, None), "get", get)
        .await
        .expect("`times: 1` is spent");
}

#[tokio::test]
async fn delayed_effects_land_on_time_and_show_in_the_diff_of_the_call_that_sees_them() {
    let (w, clock) = world(&format!(
        r#"{DEPLOYMENT}  shell:
    - match: {{ argv: [git, revert, "*"] }}
      respond: {{ stdout: reverted }}
      effect:
        after: 20s
        kubernetes: {{ deployments: {{ prod/web: {{ image: "web:v1" }} }} }}
"#
    ));
    let c = ctx(&clock, "deploy", 1, None);
    kube(
        &w,
        &c,
        "set_image",
        json!({"name": "web", "image": "web:v3"}),
    )
    .await
    .unwrap();
    let req = ShellRequest {
        argv: vec!["git".into(), "revert".into(), "abc".into()],
        ..Default::default()
    };
    let out = w.run(&req, &c).await.unwrap();
    assert!(
        out.world_diff.is_none(),
        "the controller has not synced yet"
    );
    // The wait for v3 wakes when the effect lands at 20s, then waits for v1's rollout.
    let c = ctx(&clock, "wait", 1, None);
    let out = kube(&w, &c, "rollout_status", json!({"name": "web"}))
        .await
        .unwrap();
    assert_eq!(
        out.result["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:v1"
    );
    assert_eq!(secs(&clock), 20 + 45);
    assert_eq!(
        out.world_diff.unwrap()["kubernetes deployment prod/web"]["image"],
        json!({"from": "web:v3", "to": "web:v1"})
    );
}

/// Status messages an action reported, in order.
#[derive(Default)]
struct Statuses(std::sync::Mutex<Vec<String>>);

impl crate::backends::Progress for Statuses {
    fn line(&self, _: &str, _: &str) {}
    fn status(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

#[tokio::test]
async fn a_rollout_reports_each_replica_updated_on_the_virtual_clock() {
    let (w, clock) = world(DEPLOYMENT);
    let c = ctx(&clock, "set", 1, None);
    kube(
        &w,
        &c,
        "set_image",
        json!({"name": "web", "image": "web:v3"}),
    )
    .await
    .unwrap();
    let seen = Arc::new(Statuses::default());
    let mut c = ctx(&clock, "wait", 1, None);
    c.progress = seen.clone();
    kube(&w, &c, "rollout_status", json!({"name": "web"}))
        .await
        .unwrap();
    let seen = seen.0.lock().unwrap().clone();
    let want: Vec<String> = (0..3)
        .map(|n| format!("Waiting for deployment \"web\" rollout to finish: {n} out of 3 new replicas have been updated..."))
        .collect();
    assert_eq!(
        seen, want,
        "one message per replica, as `kubectl rollout status` says it"
    );
    assert_eq!(secs(&clock), 45, "15s per replica of the 45s rollout");
}
