//! Every built-in runbook (`runbooks/*.yaml`), unchanged, run end to end by the real binary
//! against real components: the Kubernetes API server and the Docker Compose of tests/env,
//! real `git` with a bare repository as the GitOps remote, and the real Prometheus (when it
//! runs). Loopback **stand-ins**, named as such below, serve only what no open-source server
//! can run here: a service's own API (health, chat, agents, test flows), a pager webhook, the
//! forge's pull-request API (GitHub's REST shapes) and the AutonomyOps orchestrator API.
//!
//! Each scenario mirrors one drill of its runbook (`runbooks/drills/<name>/`): the drill runs
//! through the binary too, and the step outcomes of both journals must be equal. A difference
//! means the drill (or the runbook) was wrong about the real system.
//!
//! Poll intervals and timeouts are the runbooks' own inputs, set short here; scenarios run in
//! parallel, each in its own namespace, compose project, repository and ports.

use crate::backend_env;
use crate::common;
use crate::scenario::{set_input, Scenario};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_env::{Run, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// The runbook, its drill and their step outcomes.

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn builtin(name: &str) -> PathBuf {
    repo_root().join("runbooks").join(format!("{name}.yaml"))
}

/// The step outcomes of a journal, in order: `id: outcome` for every finished or skipped step
/// (on_failure steps included), `id.undo: succeeded|failed` for every undo, then the run's.
fn outcomes(events: &[Value]) -> Vec<String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    events
        .iter()
        .filter_map(|e| match e["event"].as_str()? {
            "step_finished" => Some(format!("{}: {}", s(&e["step"]), s(&e["outcome"]))),
            "step_skipped" => Some(format!("{}: skipped", s(&e["step"]))),
            "undo_finished" => Some(format!(
                "{}.undo: {}",
                s(&e["step"]),
                if e["ok"] == true {
                    "succeeded"
                } else {
                    "failed"
                }
            )),
            "run_finished" => Some(format!("run: {}", s(&e["outcome"]))),
            _ => None,
        })
        .collect()
}

/// Runs the drill (`runbooks/drills/<rel>`) through the binary, checks that it passes, and
/// returns the step outcomes of its journal.
fn drill_outcomes(rel: &str) -> Vec<String> {
    let drill = repo_root().join("runbooks/drills").join(rel);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::runbook(&repo_root())
        .arg("drill")
        .arg(&drill)
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .expect("runbook drill runs");
    let (stdout, stderr) = common::text(&out);
    assert!(
        out.status.success(),
        "drill {rel} fails on its own\n{stdout}\n{stderr}"
    );
    let journal = std::fs::read_dir(dir.path())
        .expect("report dir")
        .flatten()
        .map(|e| e.path().join("journal.jsonl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("drill {rel} wrote no journal\n{stdout}"));
    outcomes(&common::events(&journal))
}

/// The real run's step outcomes equal the drill's.
pub(crate) fn assert_mirrors(real: &Run, drill: &str) {
    let want = drill_outcomes(drill);
    let got = outcomes(&real.events);
    assert_eq!(
        got,
        want,
        "the real run (left) and drill {drill} (right) end their steps differently\n{}",
        real.log()
    );
}

/// `runbook run` off the async runtime (the stand-ins serve on it meanwhile).
pub(crate) async fn run_builtin(
    env: &TestEnv,
    name: &str,
    journals: &Path,
    inputs: &[(&str, String)],
    answers: &[&str],
    extra_env: &[(&str, &str)],
) -> Run {
    let env = env.clone();
    let file = builtin(name);
    let journals = journals.to_path_buf();
    let inputs: Vec<(String, String)> = inputs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
    let extra: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let inputs: Vec<(&str, &str)> = inputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answers: Vec<&str> = answers.iter().map(String::as_str).collect();
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        backend_env::run(&env, &file, &journals, &inputs, &answers, &extra)
    })
    .await
    .expect("the run's thread")
}

pub(crate) fn s(v: &str) -> String {
    v.to_string()
}

// ------------------------------------------------------------------------------------------
// Loopback stand-ins: real HTTP servers whose handlers play a service's own API.

/// One request as a stand-in sees it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Value,
}

impl Req {
    pub(crate) fn bearer(&self) -> Option<&str> {
        self.headers
            .get("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Serves `handler` on 127.0.0.1 (a free port) on the current runtime; returns the base URL.
pub(crate) async fn stand_in<F, Fut>(handler: F) -> String
where
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (u16, Value)> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let query = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let req = Req {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query,
                headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, body) = handler(req).await;
            axum::response::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .expect("response")
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

// ------------------------------------------------------------------------------------------
// Kubernetes (tests/env's API server).

pub(crate) async fn kube_client(env: &TestEnv) -> kube::Client {
    runbook::backends::http::install_crypto_provider();
    let kc = Kubeconfig::read_from(env.var("RUNBOOK_TEST_KUBECONFIG")).expect("test kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("test kubeconfig loads");
    kube::Client::try_from(cfg).expect("client")
}

/// Deletes the scenario's namespaces when it ends, passed or not.
pub(crate) struct Namespaces {
    env: TestEnv,
    names: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let (env, names) = (self.env.clone(), self.names.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let api: Api<Namespace> = Api::all(kube_client(&env).await);
                for n in names {
                    let _ = api.delete(&n, &DeleteParams::background()).await;
                }
            });
        })
        .join();
    }
}

pub(crate) async fn namespaces(
    env: &TestEnv,
    client: &kube::Client,
    prefixes: &[&str],
) -> (Namespaces, Vec<String>) {
    let names: Vec<String> = prefixes.iter().map(|p| backend_env::unique(p)).collect();
    let api: Api<Namespace> = Api::all(client.clone());
    for n in &names {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": n}})).expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }
    (
        Namespaces {
            env: env.clone(),
            names: names.clone(),
        },
        names,
    )
}

/// A Deployment of one container `app`, created and waited for.
pub(crate) async fn deployment(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
    extra_spec: Value,
) {
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            }
        }
    });
    merge(&mut d["spec"], &extra_spec);
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(d).expect("deployment"),
    )
    .await
    .expect("create deployment");
    rolled_out(client, ns, name).await;
}

/// Sets the container's image (and its resources when given), like a release, and waits.
pub(crate) async fn release(
    client: &kube::Client,
    ns: &str,
    name: &str,
    image: &str,
    resources: Value,
) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": name, "image": image, "resources": resources}
    ]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("release");
    rolled_out(client, ns, name).await;
}

/// Waits until every replica of the current template is available (at most 60 s).
pub(crate) async fn rolled_out(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for _ in 0..240 {
        let d = serde_json::to_value(api.get(name).await.expect("get")).expect("json");
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let st = &d["status"];
        if st["observedGeneration"] == d["metadata"]["generation"]
            && st["updatedReplicas"].as_i64().unwrap_or(0) == want
            && st["availableReplicas"].as_i64().unwrap_or(0) == want
            && st["replicas"].as_i64().unwrap_or(0) == want
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{ns}/{name} did not roll out within 60 s");
}

/// The Deployment's image and whether all its replicas are available, as a service's own
/// health endpoint would know it (`None` when it does not exist).
pub(crate) async fn serving(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Option<(String, bool, Value)> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = serde_json::to_value(api.get(name).await.ok()?).ok()?;
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &d["status"];
    let all = want > 0
        && st["observedGeneration"] == d["metadata"]["generation"]
        && st["updatedReplicas"].as_i64().unwrap_or(0) == want
        && st["availableReplicas"].as_i64().unwrap_or(0) == want;
    Some((image, all, d))
}

/// The Deployment's revision annotation, waiting (at most 30 s) for the controller to set it
/// to `want` (it numbers a revision after the template changed).
pub(crate) async fn revision_soon(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: &str,
) -> String {
    let mut last = String::new();
    for _ in 0..120 {
        if let Some((_, _, d)) = serving(client, ns, name).await {
            last = d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if last == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The API resource of a kind at a version, from discovery.
pub(crate) async fn resource(client: &kube::Client, api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
    ar
}

/// Creates any object (its manifest as JSON) in `ns`.
pub(crate) async fn create(client: &kube::Client, ns: &str, manifest: Value) {
    let av = manifest["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .to_string();
    let kind = manifest["kind"].as_str().expect("kind").to_string();
    let ar = resource(client, &av, &kind).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: DynamicObject = serde_json::from_value(manifest).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind} in {ns}: {e}"));
}

pub(crate) fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ------------------------------------------------------------------------------------------
// control-plane-rollback, against a stand-in of the AutonomyOps orchestrator's HTTP API.

/// Stand-in of the AutonomyOps orchestrator API: rollout plans, the rollback preview and
/// execute endpoints, and the audit trail. Executing a plan rollback is asynchronous when
/// `async_rollback` (202, `rolling_back`, `rolled_back` 1.5 s later), and writes its
/// `rollback.executed` audit record when it completes, unless the audit pipeline is broken.
#[derive(Clone)]
struct Orchestrator {
    state: Arc<Mutex<OrchestratorState>>,
}

struct OrchestratorState {
    token: String,
    plans: Vec<Value>,
    audit: Vec<Value>,
    async_rollback: bool,
    audit_writes: bool,
    /// plan id, when the asynchronous rollback completes, and the record to write then.
    pending: Option<(String, std::time::Instant, Value)>,
    executed: Vec<Value>,
}

impl Orchestrator {
    fn new(token: &str, async_rollback: bool, audit_writes: bool, old_records: Vec<Value>) -> Self {
        Orchestrator {
            state: Arc::new(Mutex::new(OrchestratorState {
                token: token.to_string(),
                plans: vec![
                    json!({"plan_id": "plan-41", "phase": "completed", "artifact": "edge-agent:2.3.0",
                           "current_stage": {"name": "fleet", "state": "completed"}}),
                    json!({"plan_id": "plan-42", "phase": "active", "artifact": "edge-agent:2.4.0",
                           "current_stage": {"name": "canary", "state": "running"}}),
                ],
                audit: old_records,
                async_rollback,
                audit_writes,
                pending: None,
                executed: vec![],
            })),
        }
    }

    fn handle(&self, r: Req) -> (u16, Value) {
        let mut st = self.state.lock().expect("lock");
        if r.bearer() != Some(st.token.as_str()) {
            return (401, json!({"error": "unauthenticated"}));
        }
        // An asynchronous rollback completes on its own clock.
        if let Some((plan, at, record)) = st.pending.clone() {
            if std::time::Instant::now() >= at {
                if let Some(p) = st.plans.iter_mut().find(|p| p["plan_id"] == plan.as_str()) {
                    p["phase"] = json!("rolled_back");
                    p["current_stage"]["state"] = json!("halted");
                }
                if st.audit_writes {
                    let mut record = record;
                    record["timestamp"] = json!(now_utc());
                    st.audit.push(record);
                }
                st.pending = None;
            }
        }
        let path: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        match (r.method.as_str(), path.as_slice()) {
            ("GET", ["v1", "rollouts"]) => (
                200,
                Value::Array(
                    st.plans
                        .iter()
                        .map(|p| json!({"plan_id": p["plan_id"], "phase": p["phase"], "artifact": p["artifact"]}))
                        .collect(),
                ),
            ),
            ("GET", ["v1", "rollouts", id]) => match st.plans.iter().find(|p| p["plan_id"] == *id) {
                Some(p) => (200, p.clone()),
                None => (404, json!({"error": format!("plan {id} not found")})),
            },
            ("POST", ["v1", "rollback", "preview"]) => match r.body["target"].as_str() {
                Some("rollout_plan") => (
                    200,
                    json!({"target": "rollout_plan", "resource": r.body["resource"], "safety_class": "terminal",
                           "reversible": false,
                           "limitations": ["nodes that already activated the artifact keep running it"]}),
                ),
                Some(t) => (200, json!({"target": t, "safety_class": "reversible", "reversible": true, "limitations": []})),
                None => (400, json!({"error": "target is required"})),
            },
            ("POST", ["v1", "rollback", "execute"]) => {
                let b = &r.body;
                let (Some(resource), Some(operator), Some(reason)) = (
                    b["resource"].as_str(),
                    b["operator"].as_str().filter(|o| !o.is_empty()),
                    b["reason"].as_str().filter(|o| !o.is_empty()),
                ) else {
                    return (400, json!({"error": "resource, operator and reason are required"}));
                };
                st.executed.push(b.clone());
                let record = json!({"id": format!("aud-{}", 9000 + st.audit.len()),
                    "event_type": "rollback.executed", "target": b["target"], "resource": resource,
                    "operator": operator, "reason": reason});
                let Some(i) = st.plans.iter().position(|p| p["plan_id"] == resource) else {
                    return (404, json!({"error": format!("plan {resource} not found")}));
                };
                if st.plans[i]["phase"] != "active" {
                    return (409, json!({"error": format!("plan {resource} is {}", st.plans[i]["phase"])}));
                }
                if st.async_rollback {
                    st.plans[i]["phase"] = json!("rolling_back");
                    st.pending = Some((
                        resource.to_string(),
                        std::time::Instant::now() + Duration::from_millis(1500),
                        record,
                    ));
                    (202, json!({"plan_id": resource, "new_phase": "rolling_back"}))
                } else {
                    st.plans[i]["phase"] = json!("rolled_back");
                    st.plans[i]["current_stage"]["state"] = json!("halted");
                    if st.audit_writes {
                        let mut record = record;
                        record["timestamp"] = json!(now_utc());
                        st.audit.push(record);
                    }
                    (200, json!({"plan_id": resource, "new_phase": "rolled_back"}))
                }
            }
            ("GET", ["v1", "audit"]) => {
                let limit: usize = r.query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
                let kind = r.query.get("event_type").cloned();
                let events: Vec<Value> = st
                    .audit
                    .iter()
                    .rev()
                    .filter(|e| kind.as_deref().is_none_or(|k| e["event_type"] == k))
                    .take(limit)
                    .cloned()
                    .collect();
                (200, json!({ "events": events }))
            }
            _ => (404, json!({"error": "not found"})),
        }
    }

    async fn serve(&self) -> String {
        let me = self.clone();
        stand_in(move |r| {
            let me = me.clone();
            async move { me.handle(r) }
        })
        .await
    }
}

const ORCH_TOKEN: &str = "orchestrator-token-of-the-test";

/// Serves the orchestrator `orch` and runs control-plane-rollback against it with `answers`
/// (only loopback: never skips).
async fn control_plane_rollback(orch: &Orchestrator, answers: &[&str]) -> Run {
    let url = orch.serve().await;
    Scenario::plain()
        .run(
            "control-plane-rollback",
            &control_plane_inputs(&url),
            answers,
            &[("ORCHESTRATOR_TOKEN", ORCH_TOKEN)],
        )
        .await
}

fn control_plane_inputs(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("orchestrator_url", s(url)),
        ("target", s("rollout_plan")),
        ("plan_id", s("plan-42")),
        ("verify_timeout", s("20s")),
        ("audit_timeout", s("3s")),
        ("poll_interval", s("500ms")),
    ]
}

/// Mirrors drill control-plane-rollback/rollback-plan-async: the orchestrator accepts the
/// rollback with 202 `rolling_back`; the run waits for `rolled_back` and finds this
/// rollback's own audit record.
#[tokio::test(flavor = "multi_thread")]
async fn control_plane_rollback_waits_for_an_asynchronous_rollback_and_finds_its_audit_record() {
    let orch = Orchestrator::new(ORCH_TOKEN, true, true, vec![]);
    let r = control_plane_rollback(
        &orch,
        &[
            "triage=done",
            "approve_rollback=yes",
            "rollback_plan=yes",
            "nodes=done: canary nodes re-imaged",
            "evidence=done",
            "tell=done",
        ],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.result("rollback_plan")["status"], 202, "{}", r.log());
    assert_eq!(r.capture("plan_after", "phase"), "rolled_back");
    let st = orch.state.lock().expect("lock");
    assert_eq!(st.executed.len(), 1, "one rollback executed");
    assert_eq!(st.executed[0]["operator"], "tester");
    assert_eq!(st.executed[0]["reason"], "integration test");
    drop(st);
    assert_mirrors(&r, "control-plane-rollback/rollback-plan-async.yaml");
}

/// Mirrors drill control-plane-rollback/audit-record-missing: the plan is rolled back but
/// the audit trail only holds a week-old record of another plan by the same operator (and
/// an old one of this plan by someone else): neither is this rollback's, so the run fails
/// at `audit` and escalates.
#[tokio::test(flavor = "multi_thread")]
async fn control_plane_rollback_does_not_take_an_old_audit_record_for_this_rollback() {
    let week_ago = (chrono::Utc::now() - chrono::Duration::days(7))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let orch = Orchestrator::new(
        ORCH_TOKEN,
        false,
        false,
        vec![
            json!({"id": "aud-17", "event_type": "rollback.executed", "target": "rollout_plan",
                   "resource": "plan-17", "operator": "tester", "reason": "INCIDENT-OLD", "timestamp": week_ago}),
            json!({"id": "aud-18", "event_type": "rollback.executed", "target": "rollout_plan",
                   "resource": "plan-42", "operator": "someone-else@example.com", "timestamp": week_ago}),
        ],
    );
    let r = control_plane_rollback(
        &orch,
        &[
            "triage=done",
            "approve_rollback=yes",
            "rollback_plan=yes",
            "escalate=done",
        ],
    )
    .await;
    r.assert_exit(1);
    r.assert_outcome("audit", "failed");
    r.assert_error("audit", &["a rollback.executed record names tester"]);
    assert_mirrors(&r, "control-plane-rollback/audit-record-missing.yaml");
}

// ------------------------------------------------------------------------------------------
// gitops-revert: real git (a bare repository is the remote), the forge's pull-request API
// (stand-in, GitHub's REST shapes), Flux's CRDs on the real API server with a stand-in of
// its controllers writing their status.

/// Runs git in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Release Bot")
        .env("GIT_AUTHOR_EMAIL", "release@example.com")
        .env("GIT_COMMITTER_NAME", "Release Bot")
        .env("GIT_COMMITTER_EMAIL", "release@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A GitOps repository: `remote.git` (bare, the remote), the history of a promotion of
/// api 1.4.2 → 1.5.0, and the on-call engineer's clone (`platform-gitops`).
struct GitopsRepo {
    remote: PathBuf,
    clone: PathBuf,
    /// The promotion commit, abbreviated as a person would paste it.
    promotion: String,
}

const DEPLOYMENT_FILE: &str = "apps/api/prod/deployment.yaml";

fn gitops_manifest(tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: registry.example/api:{tag} # {{\"$imagepolicy\": \"flux-system:api-prod\"}}\n"
    )
}

fn gitops_policy(range: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: api-prod\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: api\n  policy:\n    semver:\n      range: \"{range}\"\n"
    )
}

fn gitops_repo(work: &Path) -> GitopsRepo {
    gitops_history(work, true, |seed| {
        common::write(seed, DEPLOYMENT_FILE, &gitops_manifest("1.5.0"));
        common::write(
            seed,
            "apps/api/prod/image-policy.yaml",
            &gitops_policy("1.5.x"),
        );
        git(seed, &["commit", "-q", "-am", "bump api prod to 1.5.0"]);
    })
}

/// A GitOps repository: `remote.git` (bare, the remote) with a first commit of api on 1.4.2
/// (and its Flux ImagePolicy when `policy`), then the promotion to 1.5.0 that `promote` makes
/// in the seed clone (`promotion` is the commit it leaves at HEAD), pushed; and the on-call
/// engineer's clone (`platform-gitops`).
fn gitops_history(work: &Path, policy: bool, promote: fn(&Path)) -> GitopsRepo {
    let remote = work.join("remote.git");
    std::fs::create_dir_all(&remote).expect("mkdir");
    git(&remote, &["init", "-q", "--bare"]);
    git(&remote, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let seed = work.join("seed");
    git(
        work,
        &["clone", "-q", remote.to_str().expect("utf-8"), "seed"],
    );
    git(&seed, &["checkout", "-q", "-b", "main"]);
    common::write(&seed, DEPLOYMENT_FILE, &gitops_manifest("1.4.2"));
    if policy {
        common::write(
            &seed,
            "apps/api/prod/image-policy.yaml",
            &gitops_policy("1.4.x"),
        );
    }
    common::write(&seed, "README.md", "platform gitops\n");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "api prod on 1.4.2"]);
    promote(&seed);
    let promotion = git(&seed, &["rev-parse", "--short=10", "HEAD"]);
    git(&seed, &["push", "-q", "origin", "main"]);
    git(
        work,
        &[
            "clone",
            "-q",
            remote.to_str().expect("utf-8"),
            "platform-gitops",
        ],
    );
    let clone = work.join("platform-gitops");
    git(&clone, &["config", "user.name", "On-call Engineer"]);
    git(&clone, &["config", "user.email", "oncall@example.com"]);
    GitopsRepo {
        remote,
        clone,
        promotion,
    }
}

/// The image the deployed branch names for the api, read from the remote as a GitOps
/// controller would.
fn image_on_main(remote: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["show", &format!("main:{DEPLOYMENT_FILE}")])
        .current_dir(remote)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// Makes a GitOps repository under `work` with `make`, off the async runtime.
async fn repo_in(work: &Path, make: fn(&Path) -> GitopsRepo) -> GitopsRepo {
    let work = work.to_path_buf();
    tokio::task::spawn_blocking(move || make(&work))
        .await
        .expect("repo")
}

/// The run's rollback branch is gone from the remote, and its worktree from the disk.
fn assert_rollback_branch_removed(r: &Run, repo: &GitopsRepo, work: &Path) {
    let run_id = common::run_id(&r.events);
    let remote_branches = git(&repo.remote, &["branch", "--list"]);
    assert!(!remote_branches.contains("rollback/"), "{remote_branches}");
    assert!(
        !work
            .join(format!("platform-gitops-rollback-{run_id}"))
            .exists(),
        "the worktree is removed"
    );
}

/// What the reviewer of a rollback pull request does.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Reviewer {
    /// Merges it while the runbook waits (after the first time it is asked for).
    Merges,
    /// Leaves it open (the runbook is told the review failed and closes it).
    Rejects,
}

/// Stand-in of a GitHub-compatible forge's pull-request API for one repository, backed by
/// the real bare repository: a pull request needs its head branch pushed there, and merging
/// it is a real `git merge --no-ff` pushed to the base branch.
#[derive(Clone)]
struct Forge {
    state: Arc<Mutex<ForgeState>>,
}

struct ForgeState {
    token: String,
    repo: String,
    remote: PathBuf,
    reviewer: Reviewer,
    prs: Vec<Value>,
    /// Every request, as `METHOD path`.
    seen: Vec<String>,
}

impl Forge {
    fn new(token: &str, repo: &str, remote: &Path, reviewer: Reviewer) -> Self {
        Forge {
            state: Arc::new(Mutex::new(ForgeState {
                token: token.to_string(),
                repo: repo.to_string(),
                remote: remote.to_path_buf(),
                reviewer,
                prs: vec![],
                seen: vec![],
            })),
        }
    }

    /// Merges the pull request's head into its base with real git.
    fn merge(remote: &Path, pr: &Value) -> String {
        let scratch = tempfile::tempdir().expect("tempdir");
        git(
            scratch.path(),
            &["clone", "-q", remote.to_str().expect("utf-8"), "w"],
        );
        let w = scratch.path().join("w");
        let base = pr["base"]["ref"].as_str().expect("base");
        let head = pr["head"]["ref"].as_str().expect("head");
        git(&w, &["checkout", "-q", base]);
        git(
            &w,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("Merge pull request #{} from {head}", pr["number"]),
                &format!("origin/{head}"),
            ],
        );
        git(&w, &["push", "-q", "origin", base]);
        git(&w, &["rev-parse", "HEAD"])
    }

    async fn handle(&self, r: Req) -> (u16, Value) {
        let mut st = self.state.lock().expect("lock").clone_for_request(&r);
        if r.bearer() != Some(st.token.as_str()) {
            return (401, json!({"message": "Bad credentials"}));
        }
        let prefix = format!("/repos/{}/pulls", st.repo);
        let Some(rest) = r.path.strip_prefix(&prefix) else {
            return (404, json!({"message": "Not Found"}));
        };
        let number: Option<u64> = rest.trim_start_matches('/').parse().ok();
        match (r.method.as_str(), number) {
            ("POST", None) => {
                let head = r.body["head"].as_str().unwrap_or_default().to_string();
                let base = r.body["base"].as_str().unwrap_or_default().to_string();
                let remote = st.remote.clone();
                let exists = |b: &str| {
                    Command::new("git")
                        .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{b}")])
                        .current_dir(&remote)
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false)
                };
                if head.is_empty() || !exists(&head) || !exists(&base) {
                    return (
                        422,
                        json!({"message": "Validation Failed",
                               "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}),
                    );
                }
                let mut guard = self.state.lock().expect("lock");
                let number = 128 + guard.prs.len() as u64;
                let pr = json!({
                    "url": format!("https://forge.test/api/v3/repos/{}/pulls/{number}", st.repo),
                    "html_url": format!("https://forge.test/{}/pull/{number}", st.repo),
                    "number": number, "state": "open", "title": r.body["title"], "body": r.body["body"],
                    "head": {"ref": head}, "base": {"ref": base},
                    "merged": false, "mergeable": true, "merge_commit_sha": null, "polls": 0
                });
                guard.prs.push(pr.clone());
                st.prs = guard.prs.clone();
                (201, pr)
            }
            ("GET", Some(n)) => {
                let Some(pr) = st.prs.iter().find(|p| p["number"] == n).cloned() else {
                    return (404, json!({"message": "Not Found"}));
                };
                // The reviewer merges once the runbook has asked once (it is waiting).
                if st.reviewer == Reviewer::Merges && pr["merged"] == false && pr["polls"] == 1 {
                    let remote = st.remote.clone();
                    let p2 = pr.clone();
                    let sha = tokio::task::spawn_blocking(move || Forge::merge(&remote, &p2))
                        .await
                        .expect("merge");
                    let mut guard = self.state.lock().expect("lock");
                    if let Some(p) = guard.prs.iter_mut().find(|p| p["number"] == n) {
                        p["merged"] = json!(true);
                        p["state"] = json!("closed");
                        p["merge_commit_sha"] = json!(sha);
                    }
                    st.prs = guard.prs.clone();
                }
                let mut guard = self.state.lock().expect("lock");
                let p = guard.prs.iter_mut().find(|p| p["number"] == n).expect("pr");
                p["polls"] = json!(p["polls"].as_u64().unwrap_or(0) + 1);
                let mut shown = p.clone();
                if let Some(m) = shown.as_object_mut() {
                    m.remove("polls");
                }
                (200, shown)
            }
            ("PATCH", Some(n)) => {
                let mut guard = self.state.lock().expect("lock");
                let Some(p) = guard.prs.iter_mut().find(|p| p["number"] == n) else {
                    return (404, json!({"message": "Not Found"}));
                };
                if r.body["state"] == "closed" && p["merged"] == true {
                    return (
                        422,
                        json!({"message": "Validation Failed",
                               "errors": [{"resource": "PullRequest", "code": "custom",
                                           "message": "Cannot close a merged pull request"}]}),
                    );
                }
                if let Some(state) = r.body["state"].as_str() {
                    p["state"] = json!(state);
                }
                let mut shown = p.clone();
                if let Some(m) = shown.as_object_mut() {
                    m.remove("polls");
                }
                (200, shown)
            }
            _ => (404, json!({"message": "Not Found"})),
        }
    }

    async fn serve(&self) -> String {
        let me = self.clone();
        stand_in(move |r| {
            let me = me.clone();
            async move {
                me.state
                    .lock()
                    .expect("lock")
                    .seen
                    .push(format!("{} {}", r.method, r.path));
                me.handle(r).await
            }
        })
        .await
    }
}

impl ForgeState {
    /// A snapshot of what a request needs, so that no lock is held across git.
    fn clone_for_request(&self, _r: &Req) -> ForgeState {
        ForgeState {
            token: self.token.clone(),
            repo: self.repo.clone(),
            remote: self.remote.clone(),
            reviewer: self.reviewer,
            prs: self.prs.clone(),
            seen: vec![],
        }
    }

    /// The runbook closed (or tried to close) a pull request.
    fn assert_patched(&self) {
        assert!(
            self.seen.iter().any(|s| s.starts_with("PATCH ")),
            "{:?}",
            self.seen
        );
    }
}

/// metav1.Condition, as Flux's CRDs declare it.
fn condition_schema() -> Value {
    json!({"type": "object", "required": ["lastTransitionTime", "message", "reason", "status", "type"],
    "properties": {
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "message": {"type": "string", "maxLength": 32768},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "reason": {"type": "string", "maxLength": 1024, "minLength": 1},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "type": {"type": "string", "maxLength": 316}
    }})
}

fn image_ref_schema() -> Value {
    json!({"type": "object", "required": ["name", "tag"], "properties": {
        "name": {"type": "string"}, "tag": {"type": "string"}, "digest": {"type": "string"}}})
}

/// The CRDs gitops-revert reads, minimal but with the served versions and status schemas of
/// the real ones: Flux's ImagePolicy as image-reflector-controller v1.0.0 installs it (v1,
/// the storage version, reports `status.latestRef`; the deprecated v1beta2, still served,
/// reports `status.latestImage`), Flux's GitRepository v1 and Argo CD's Application
/// v1alpha1 (which has no status subresource: Argo CD writes the whole object).
fn gitops_crds() -> Vec<Value> {
    let policy_spec = json!({"type": "object", "required": ["imageRepositoryRef"], "properties": {
        "imageRepositoryRef": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"}}},
        "policy": {"type": "object", "properties": {
            "semver": {"type": "object", "required": ["range"], "properties": {"range": {"type": "string"}}},
            "alphabetical": {"type": "object", "properties": {"order": {"type": "string"}}},
            "numerical": {"type": "object", "properties": {"order": {"type": "string"}}}}},
        "filterTags": {"type": "object", "properties": {
            "pattern": {"type": "string"}, "extract": {"type": "string"}}}}});
    let version = |name: &str, storage: bool, status: Value| {
        json!({"name": name, "served": true, "storage": storage,
            "deprecated": name == "v1beta2",
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"}, "spec": policy_spec, "status": status}}}})
    };
    let v1_status = json!({"type": "object", "properties": {
        "latestRef": image_ref_schema(), "observedPreviousRef": image_ref_schema(),
        "conditions": {"type": "array", "items": condition_schema()},
        "lastHandledReconcileAt": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64"}}});
    let v1beta2_status = json!({"type": "object", "properties": {
        "latestImage": {"type": "string"}, "observedPreviousImage": {"type": "string"},
        "conditions": {"type": "array", "items": condition_schema()},
        "lastHandledReconcileAt": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64"}}});
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    vec![
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "imagepolicies.image.toolkit.fluxcd.io"},
            "spec": {"group": "image.toolkit.fluxcd.io", "scope": "Namespaced",
                "names": {"kind": "ImagePolicy", "listKind": "ImagePolicyList", "plural": "imagepolicies", "singular": "imagepolicy"},
                "versions": [version("v1", true, v1_status), version("v1beta2", false, v1beta2_status)]}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gitrepositories.source.toolkit.fluxcd.io"},
            "spec": {"group": "source.toolkit.fluxcd.io", "scope": "Namespaced",
                "names": {"kind": "GitRepository", "listKind": "GitRepositoryList", "plural": "gitrepositories", "singular": "gitrepository", "shortNames": ["gitrepo"]},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": {"type": "object", "required": ["url"], "properties": {
                            "url": {"type": "string"}, "interval": {"type": "string"},
                            "ref": {"type": "object", "properties": {"branch": {"type": "string"}, "tag": {"type": "string"}, "commit": {"type": "string"}}}}},
                        "status": open}}}}]}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "applications.argoproj.io"},
            "spec": {"group": "argoproj.io", "scope": "Namespaced",
                "names": {"kind": "Application", "listKind": "ApplicationList", "plural": "applications", "singular": "application", "shortNames": ["app", "apps"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "required": ["metadata", "spec"], "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": open, "status": open, "operation": open}}}}]}}),
    ]
}

static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Installs (server-side apply) the GitOps CRDs once per test process, and waits until the
/// API server serves them.
async fn install_gitops_crds(client: &kube::Client) {
    CRDS.get_or_init(|| async {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in gitops_crds() {
            let name = crd["metadata"]["name"].as_str().expect("name").to_string();
            api.patch(
                &name,
                &PatchParams::apply("runbook-builtin-real").force(),
                &Patch::Apply(crd),
            )
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        }
        for (av, kind) in [
            ("image.toolkit.fluxcd.io/v1", "ImagePolicy"),
            ("image.toolkit.fluxcd.io/v1beta2", "ImagePolicy"),
            ("source.toolkit.fluxcd.io/v1", "GitRepository"),
            ("argoproj.io/v1alpha1", "Application"),
        ] {
            let (group, version) = av.split_once('/').expect("group/version");
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let mut served = false;
            for _ in 0..120 {
                if kube::discovery::pinned_kind(client, &gvk).await.is_ok() {
                    served = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            assert!(served, "the API server does not serve {av} {kind} after 30 s");
        }
    })
    .await;
}

/// Stand-in of the api service's own endpoints: `/health` answers while any pod serves, the
/// deep check only once every replica runs the known-good image.
async fn api_service(client: kube::Client, ns: String, good: &'static str) -> String {
    stand_in(move |r: Req| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let state = serving(&client, &ns, "api").await;
            match r.path.as_str() {
                "/health" => (200, json!({"status": "ok"})),
                "/healthz/deep" => match state {
                    Some((image, true, _)) if image == good => {
                        (200, json!({"model": "ready", "db": "ok"}))
                    }
                    _ => (503, json!({"model": "loading"})),
                },
                _ => (404, json!({"error": "not found"})),
            }
        }
    })
    .await
}

const GOOD_API: &str = "registry.example/api:1.4.2";

/// The flow service's release the scenarios start from.
pub(crate) const FLOW_IMAGE: &str = "registry.example/flow-engine:v1.1.0";

fn gitops_inputs(
    repo: &GitopsRepo,
    forge: &str,
    flux_ns: &str,
    app_ns: &str,
    service: &str,
    metrics: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("repo_dir", s(repo.clone.to_str().expect("utf-8"))),
        ("promotion_commit", repo.promotion.clone()),
        ("known_good_image", s(GOOD_API)),
        ("forge_api_url", s(forge)),
        ("forge_repo", s("platform/gitops")),
        ("controller", s("flux")),
        ("flux_image_policy", s("api-prod")),
        ("flux_namespace", s(flux_ns)),
        ("namespace", s(app_ns)),
        ("deployment", s("api")),
        ("service_url", s(service)),
        ("metrics_url", s(metrics)),
        (
            "success_rate_query",
            s("100 * sum(rate(http_requests_total{service=\"api\",code!~\"5..\"}[1m])) / sum(rate(http_requests_total{service=\"api\"}[1m]))"),
        ),
        (
            "p99_query",
            s("1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=\"api\"}[1m])))"),
        ),
        ("sync_timeout", s("60s")),
        ("poll_interval", s("500ms")),
        ("canary_timeout", s("20s")),
        ("canary_interval", s("1s")),
    ]
}

/// Mirrors drill gitops-revert/review-rejected: the revert is really committed on a branch
/// of a worktree, pushed to the bare remote and proposed; the reviewer rejects it, so the
/// runbook closes the pull request, deletes the branch on the remote and the worktree.
#[tokio::test(flavor = "multi_thread")]
async fn gitops_revert_closes_the_pull_request_and_deletes_the_branch_when_the_review_fails() {
    let Some(sc) = Scenario::k8s(&["rb-gitops-flux", "rb-gitops-app"]).await else {
        return;
    };
    install_gitops_crds(sc.client()).await;
    let repo = repo_in(sc.work.path(), gitops_repo).await;
    let forge = Forge::new(
        FORGE_TOKEN,
        "platform/gitops",
        &repo.remote,
        Reviewer::Rejects,
    );
    let forge_url = forge.serve().await;
    let service = api_service(sc.client().clone(), sc.namespace(1).to_string(), GOOD_API).await;
    let r = gitops_revert(
        &sc,
        &gitops_inputs(
            &repo,
            &forge_url,
            sc.namespace(0),
            sc.namespace(1),
            &service,
            "http://127.0.0.1:9",
        ),
        &[
            "signature_by_hand=done",
            "approve=yes",
            "review=failed: the diff also reverts the ingress timeout change",
            "escalate=done",
        ],
    )
    .await;
    r.assert_exit(1);
    r.assert_outcome("review", "failed");
    // The branch was pushed, then deleted; the pull request is closed; main is untouched.
    {
        let st = forge.state.lock().expect("lock");
        assert_eq!(st.prs.len(), 1);
        assert_eq!(st.prs[0]["state"], "closed");
        assert_eq!(
            st.prs[0]["head"]["ref"],
            format!("rollback/{}", common::run_id(&r.events))
        );
        st.assert_patched();
    }
    assert_eq!(
        image_on_main(&repo.remote).as_deref(),
        Some("registry.example/api:1.5.0")
    );
    assert_rollback_branch_removed(&r, &repo, sc.work.path());
    assert_mirrors(&r, "gitops-revert/review-rejected.yaml");
}

/// Writes an object's `status` through the status subresource, as its controller does.
async fn patch_status(
    client: &kube::Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    status: Value,
) {
    let ar = resource(client, api_version, kind).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("status of {kind} {ns}/{name}: {e}"));
}

/// Stand-in of Flux's controllers for the ImagePolicy `api-prod`: the source and kustomize
/// controllers read the deployed branch of the real remote, the image-reflector-controller
/// reports the image it selects in the policy's status (v1: `latestRef`, with its Ready
/// condition), and the Deployment gets the image the branch names (a real rollout follows).
/// Runs until the returned sender drops.
async fn flux_controllers(
    client: kube::Client,
    remote: PathBuf,
    flux_ns: String,
    app_ns: String,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut applied = String::new();
        loop {
            let r2 = remote.clone();
            let image = tokio::task::spawn_blocking(move || image_on_main(&r2))
                .await
                .ok()
                .flatten();
            if let Some(image) = image.filter(|i| *i != applied) {
                let (name, tag) = image.rsplit_once(':').expect("name:tag");
                let now = now_utc();
                patch_status(
                    &client,
                    &flux_ns,
                    "image.toolkit.fluxcd.io/v1",
                    "ImagePolicy",
                    "api-prod",
                    json!({
                        "latestRef": {"name": name, "tag": tag},
                        "observedGeneration": 1,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                            "message": format!("Latest image tag for {name} resolved to {tag}"),
                            "lastTransitionTime": now, "observedGeneration": 1}]
                    }),
                )
                .await;
                let api: Api<Deployment> = Api::namespaced(client.clone(), &app_ns);
                if api.get("api").await.is_ok() {
                    let patch = json!({"spec": {"template": {"spec": {"containers": [
                        {"name": "api", "image": image}]}}}});
                    api.patch("api", &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                        .expect("kustomize-controller applies the Deployment");
                }
                applied = image;
            }
            tokio::select! {
                _ = &mut rx => break,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    });
    tx
}

/// How the api serves once every replica runs the known-good image: failed requests per
/// 1000, and how long the slowest 5% take (seconds). On the bad release 3% fail and the
/// slowest 5% take 3 s; the rest take 0.1-0.3 s.
#[derive(Clone, Copy)]
struct AfterRollback {
    failed_per_1000: u64,
    slowest: f64,
}

/// The api's request traffic, exported for the real Prometheus, and the runbook's two canary
/// queries over it; returned once Prometheus reads the bad release (success rate under 99 %).
struct CanaryTraffic {
    _exporter: Arc<backend_env::Exporter>,
    _feed: crate::builtin_real_flows::Feed,
    watcher: tokio::task::JoinHandle<()>,
    success: String,
    p99: String,
}

async fn canary_traffic(
    env: &TestEnv,
    client: &kube::Client,
    app_ns: &str,
    name: &str,
    after: AfterRollback,
) -> CanaryTraffic {
    let exporter = Arc::new(backend_env::Exporter::start(env, name));
    let (feed, watcher) = api_traffic(client.clone(), app_ns.to_string(), exporter.clone(), after);
    let sel = format!("test=\"{}\",service=\"api\"", exporter.name);
    let success = format!(
        "100 * sum(rate(http_requests_total{{{sel},code!~\"5..\"}}[5s])) / sum(rate(http_requests_total{{{sel}}}[5s]))"
    );
    let p99 = format!(
        "1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5s])))"
    );
    crate::builtin_real_flows::prom_ready(&exporter, success.clone(), |r| {
        crate::builtin_real_flows::one_number(r).is_some_and(|v| v < 99.0)
    })
    .await;
    CanaryTraffic {
        _exporter: exporter,
        _feed: feed,
        watcher,
        success,
        p99,
    }
}

/// The api's request metrics while it serves (1000 requests a tick), following the real
/// Deployment: `after` once every replica runs the known-good image.
fn api_traffic(
    client: kube::Client,
    ns: String,
    ex: Arc<backend_env::Exporter>,
    after: AfterRollback,
) -> (crate::builtin_real_flows::Feed, tokio::task::JoinHandle<()>) {
    use crate::builtin_real_flows::{feed, Histogram};
    let good = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let g2 = good.clone();
    let watcher = tokio::spawn(async move {
        loop {
            let ok = matches!(serving(&client, &ns, "api").await, Some((image, true, _)) if image == GOOD_API);
            g2.store(ok, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut hist = Histogram::new("http_request_duration_seconds", &[0.25, 0.5, 1.0, 2.5, 5.0])
        .labelled("service=\"api\"");
    let f = feed(ex, move || {
        let (f, slowest) = if good.load(std::sync::atomic::Ordering::SeqCst) {
            (after.failed_per_1000, after.slowest)
        } else {
            (30, 3.0)
        };
        ok += 1000 - f;
        failed += f;
        hist.observe(0.1, 500);
        hist.observe(0.3, 450);
        hist.observe(slowest, 50);
        format!(
            "http_requests_total{{service=\"api\",code=\"200\"}} {ok}\nhttp_requests_total{{service=\"api\",code=\"503\"}} {failed}\n{}",
            hist.text()
        )
    });
    (f, watcher)
}

/// A GitOps rollback's world after a bad promotion with Flux: the repository (api 1.4.2 →
/// 1.5.0), api on 1.5.0 (revision 2 of a real Deployment of 4 replicas), the ImagePolicy v1
/// (and a GitRepository) selecting 1.5.0, a stand-in of Flux's controllers following the
/// remote, the api's traffic in the real Prometheus, the forge (stand-in, the reviewer
/// merges) and the api's own endpoints (stand-in).
struct FluxWorld {
    sc: Scenario,
    repo: GitopsRepo,
    forge: Forge,
    inputs: Vec<(&'static str, String)>,
    _flux: tokio::sync::oneshot::Sender<()>,
    canary: CanaryTraffic,
}

const FORGE_TOKEN: &str = "forge-token-of-the-test";

/// The answers of a gitops-revert whose revert is reviewed, merged and recovers.
const MERGED_ANSWERS: [&str; 5] = [
    "signature_by_hand=done",
    "approve=yes",
    "review=done",
    "tell=done",
    "record=done",
];

impl FluxWorld {
    /// Runs gitops-revert with the world's inputs and `answers`; the api's traffic stops
    /// following the Deployment when it ends.
    async fn run(&self, answers: &[&str]) -> Run {
        let r = gitops_revert(&self.sc, &self.inputs, answers).await;
        self.canary.watcher.abort();
        r
    }
}

/// Runs gitops-revert with `inputs` and `answers`, with the forge's token.
async fn gitops_revert(sc: &Scenario, inputs: &[(&str, String)], answers: &[&str]) -> Run {
    sc.run(
        "gitops-revert",
        inputs,
        answers,
        &[("FORGE_TOKEN", FORGE_TOKEN)],
    )
    .await
}

/// Flux's namespace (`<name>-flux`) and the api's (`<name>-app`); `None` after a skip.
async fn flux_world(name: &str, after: AfterRollback) -> Option<FluxWorld> {
    let sc =
        Scenario::k8s_and_prometheus(&[&format!("{name}-flux"), &format!("{name}-app")]).await?;
    let client = sc.client();
    install_gitops_crds(client).await;
    let (flux_ns, app_ns) = (sc.namespace(0), sc.namespace(1));
    let repo = repo_in(sc.work.path(), gitops_repo).await;
    api_on_the_bad_release(client, app_ns).await;
    create(
        client,
        flux_ns,
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "platform-gitops"},
               "spec": {"url": format!("file://{}", repo.remote.display()), "interval": "5m", "ref": {"branch": "main"}}}),
    )
    .await;
    create(
        client,
        flux_ns,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy",
               "metadata": {"name": "api-prod"},
               "spec": {"imageRepositoryRef": {"name": "api"}, "policy": {"semver": {"range": "1.5.x"}}}}),
    )
    .await;
    let flux = flux_controllers(
        client.clone(),
        repo.remote.clone(),
        flux_ns.to_string(),
        app_ns.to_string(),
    )
    .await;
    let canary = canary_traffic(&sc.env, client, app_ns, name, after).await;
    let (forge, inputs) = merging_forge(&sc, &repo, flux_ns, app_ns, &canary).await;
    Some(FluxWorld {
        sc,
        repo,
        forge,
        inputs,
        _flux: flux,
        canary,
    })
}

/// The api on 1.5.0: revision 2 of a real Deployment of 4 replicas (1.4.2 before).
async fn api_on_the_bad_release(client: &kube::Client, app_ns: &str) {
    deployment(client, app_ns, "api", 4, GOOD_API, json!({})).await;
    release(
        client,
        app_ns,
        "api",
        "registry.example/api:1.5.0",
        json!({}),
    )
    .await;
}

/// Every replica of the api runs the known-good image.
async fn api_serves_good(client: &kube::Client, app_ns: &str) {
    let (image, all, _) = serving(client, app_ns, "api").await.expect("deployment");
    assert_eq!((image.as_str(), all), (GOOD_API, true));
}

/// The forge (stand-in, the reviewer merges), the api's own endpoints (stand-in) and the
/// runbook's inputs, with the canary queries over the api's traffic.
async fn merging_forge(
    sc: &Scenario,
    repo: &GitopsRepo,
    flux_ns: &str,
    app_ns: &str,
    canary: &CanaryTraffic,
) -> (Forge, Vec<(&'static str, String)>) {
    let forge = Forge::new(
        FORGE_TOKEN,
        "platform/gitops",
        &repo.remote,
        Reviewer::Merges,
    );
    let forge_url = forge.serve().await;
    let service = api_service(sc.client().clone(), app_ns.to_string(), GOOD_API).await;
    let mut inputs = gitops_inputs(
        repo,
        &forge_url,
        flux_ns,
        app_ns,
        &service,
        &sc.prometheus_url(),
    );
    set_input(&mut inputs, "success_rate_query", &canary.success);
    set_input(&mut inputs, "p99_query", &canary.p99);
    (forge, inputs)
}

/// Mirrors drill gitops-revert/flux-v1-revert-recovers: the revert is committed on a branch
/// of a worktree, pushed to the bare remote and proposed; the reviewer merges it (real
/// `git merge` on the remote); Flux's controllers (stand-in) select 1.4.2 in the ImagePolicy
/// v1's `latestRef` and apply it to the real Deployment; health, deep health and the canary
/// gates, read from the real Prometheus, pass.
#[tokio::test(flavor = "multi_thread")]
async fn gitops_revert_rolls_back_through_a_merged_revert_and_flux_v1() {
    let after = AfterRollback {
        failed_per_1000: 4,
        slowest: 0.8,
    };
    let Some(mut w) = flux_world("rb-gitops-ok", after).await else {
        return;
    };
    w.inputs.extend([
        ("flux_source", s("platform-gitops")),
        ("smoke_path", s("/healthz/deep")),
    ]);
    let r = w.run(&MERGED_ANSWERS).await;
    r.assert_ok();
    assert_eq!(
        image_on_main(&w.repo.remote).as_deref(),
        Some(GOOD_API),
        "the revert is merged"
    );
    assert_eq!(
        r.capture("flux_policy", "api"),
        "image.toolkit.fluxcd.io/v1"
    );
    assert_eq!(r.capture("flux_policy", "latest"), GOOD_API);
    api_serves_good(w.sc.client(), w.sc.namespace(1)).await;
    {
        let st = w.forge.state.lock().expect("lock");
        assert_eq!(st.prs.len(), 1);
        assert_eq!(st.prs[0]["merged"], true);
    }
    assert_mirrors(&r, "gitops-revert/flux-v1-revert-recovers.yaml");
}

/// Mirrors drill gitops-revert/canary-gate-fails: the revert is merged and Flux brings the
/// Deployment back to 1.4.2, but p99 stays at 4.5 s (the slowest 5% still take 3 s) in the
/// real Prometheus: the p99 gate fails. After the merge the revert stays: the forge refuses
/// to close the merged pull request (422, which the undo accepts), the branch is deleted on
/// the remote and the worktree removed, and the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn gitops_revert_keeps_a_merged_revert_and_escalates_when_a_canary_gate_fails() {
    // 99.5% of requests succeed: the success-rate gate holds a few seconds after the rollout
    // (once the 5s rate window is mostly past it); p99 never does.
    let after = AfterRollback {
        failed_per_1000: 5,
        slowest: 3.0,
    };
    let Some(mut w) = flux_world("rb-gitops-p99", after).await else {
        return;
    };
    set_input(&mut w.inputs, "canary_timeout", "12s");
    let r = w
        .run(&[
            "signature_by_hand=done",
            "approve=yes",
            "review=done",
            "escalate=done",
        ])
        .await;
    r.assert_exit(1);
    r.assert_error("p99", &["p99 latency is at most 1500 ms"]);
    // The revert stays merged and deployed; the pull request stays merged.
    assert_eq!(image_on_main(&w.repo.remote).as_deref(), Some(GOOD_API));
    api_serves_good(w.sc.client(), w.sc.namespace(1)).await;
    r.assert_undone(&["open_pr"]);
    {
        let st = w.forge.state.lock().expect("lock");
        assert_eq!(st.prs[0]["merged"], true);
        st.assert_patched();
    }
    // The branch is gone from the remote, the worktree from the disk.
    assert_rollback_branch_removed(&r, &w.repo, w.sc.work.path());
    crate::builtin_real_flows::assert_fails_like(&r, "gitops-revert/canary-gate-fails.yaml");
    assert_mirrors(&r, "gitops-revert/canary-gate-fails.yaml");
}

// ------------------------------------------------------------------------------------------
// k8s-rollback: a real Deployment; the service's own API is a stand-in that answers from the
// Deployment's real state.

/// Stand-in of the flow engine's API (health, chat, agents) for the scenario's Deployment
/// `flowengine`: healthy only while every replica runs `flowengine:v1.0.0`.
async fn flowengine_api(sc: &Scenario) -> String {
    let (client, ns) = (sc.client().clone(), s(sc.ns()));
    let (name, good) = ("flowengine", "flowengine:v1.0.0");
    stand_in(move |r: Req| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let healthy = matches!(serving(&client, &ns, name).await, Some((image, true, _)) if image == good);
            if !healthy {
                return (503, json!({"status": "error"}));
            }
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/health") => (200, json!({"status": "ok"})),
                ("POST", "/api/v1/chat") if r.body["message"].is_string() => {
                    (200, json!({"status": "ok", "correlation_id": "c-7f3a", "reply": "hello"}))
                }
                ("GET", "/api/v1/agents") => (
                    200,
                    json!({"agents": [{"name": "planner", "health": "healthy"}, {"name": "coder", "health": "degraded"}]}),
                ),
                _ => (404, json!({"error": "not found"})),
            }
        }
    })
    .await
}

/// Runs k8s-rollback on the scenario's Deployment `flowengine`, its API a stand-in
/// (`flowengine_api`), with `more` inputs and `answers`.
async fn k8s_rollback(sc: &Scenario, more: &[(&'static str, String)], answers: &[&str]) -> Run {
    let mut inputs = vec![
        ("namespace", s(sc.ns())),
        ("deployment", s("flowengine")),
        ("service_url", flowengine_api(sc).await),
    ];
    inputs.extend_from_slice(more);
    sc.run(
        "k8s-rollback",
        &inputs,
        answers,
        &[("SERVICE_API_TOKEN", "flow-token-of-the-test")],
    )
    .await
}

/// Mirrors drill k8s-rollback/recovers: flowengine v1.1.0 is bad; rolling back to the
/// previous revision brings health, chat and agents back.
#[tokio::test(flavor = "multi_thread")]
async fn k8s_rollback_rolls_a_real_deployment_back_to_its_previous_revision() {
    let Some(sc) = Scenario::k8s(&["rb-k8s-ok"]).await else {
        return;
    };
    sc.deployment("flowengine", 3, "flowengine:v1.0.0", json!({}))
        .await;
    sc.release("flowengine", "flowengine:v1.1.0", json!({}))
        .await;
    let r = k8s_rollback(
        &sc,
        &[],
        &[
            "approve=yes",
            "metrics=done",
            "tell=done: posted in #incidents",
            "record=done",
        ],
    )
    .await;
    r.assert_ok();
    let (image, all, d) = sc.serving("flowengine").await;
    assert_eq!(image, "flowengine:v1.0.0");
    assert!(all, "{d}");
    assert_eq!(sc.revision_soon("flowengine", "3").await, "3");
    assert_mirrors(&r, "k8s-rollback/recovers.yaml");
}

/// Mirrors drill k8s-rollback/rollout-stuck: the previous revision's pods are refused
/// (a LimitRange its CPU limit exceeds, the way a quota or admission policy changed since),
/// so the rollback never becomes available: the run fails at the rollout's timeout, puts
/// the bad revision back and escalates.
#[tokio::test(flavor = "multi_thread")]
async fn k8s_rollback_puts_the_release_back_when_the_previous_revision_never_becomes_available() {
    let Some(sc) = Scenario::k8s(&["rb-k8s-stuck"]).await else {
        return;
    };
    sc.deployment(
        "flowengine",
        3,
        "flowengine:v1.0.0",
        json!({"progressDeadlineSeconds": 3,
               "template": {"spec": {"containers": [{"name": "flowengine", "image": "flowengine:v1.0.0",
                                                      "resources": {"limits": {"cpu": "1"}}}]}}}),
    )
    .await;
    sc.release(
        "flowengine",
        "flowengine:v1.1.0",
        json!({"limits": {"cpu": "100m"}}),
    )
    .await;
    create(
        sc.client(),
        sc.ns(),
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small"},
               "spec": {"limits": [{"type": "Container", "max": {"cpu": "200m"}}]}}),
    )
    .await;
    let r = k8s_rollback(
        &sc,
        &[("rollout_timeout", s("8s"))],
        &["approve=yes", "escalate=done: paged the tech lead"],
    )
    .await;
    r.assert_exit(1);
    // Its pods are never created, so the Deployment keeps reporting its last complete
    // rollout (Progressing: NewReplicaSetAvailable) and never reaches the progress deadline:
    // the step's timeout ends the wait.
    r.assert_error("rollout", &["the rollout did not finish within 8"]);
    let (image, _, _) = sc.serving("flowengine").await;
    assert_eq!(image, "flowengine:v1.1.0", "the release is back");
    // The Deployment controller numbers the revision put back (4) once it sees the change.
    assert_eq!(sc.revision_soon("flowengine", "4").await, "4");
    assert_mirrors(&r, "k8s-rollback/rollout-stuck.yaml");
}

// ------------------------------------------------------------------------------------------
// security-incident: a real Deployment halted and brought back; stand-ins for the pager's
// webhook and the flow engine's test-flow API.

/// Stand-in of a paging service's webhook (`{summary, severity, source, details}` → 202).
async fn pager(pages: Arc<Mutex<Vec<Value>>>) -> String {
    stand_in(move |r: Req| {
        let pages = pages.clone();
        async move {
            if r.method != "POST" || r.body["summary"].as_str().is_none_or(str::is_empty) {
                return (400, json!({"status": "invalid event"}));
            }
            pages.lock().expect("lock").push(r.body.clone());
            (202, json!({"status": "success", "dedup_key": "sec-5521"}))
        }
    })
    .await
}

/// Stand-in of the flow engine's test-flow endpoint: a dry-run flow whose context bundle has
/// the PII redacted only when the setting is live on every pod (and `honours_redaction`:
/// a release can ignore it).
async fn test_flow_api(client: kube::Client, ns: String, honours_redaction: bool) -> String {
    stand_in(move |r: Req| {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            if r.method != "POST" || r.path != "/api/v1/test-flow" || r.body["dry_run"] != true {
                return (404, json!({"error": "not found"}));
            }
            let Some((_, true, d)) = serving(&client, &ns, "flow-engine").await else {
                return (503, json!({"status": "unavailable"}));
            };
            let redacting = d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["name"] == "PII_REDACTION_ENABLED" && e["value"] == "true");
            let input = r.body["input"].as_str().unwrap_or_default();
            let context = if redacting && honours_redaction {
                input.replace("jane.doe@example.com", "[REDACTED:email]")
            } else {
                input.to_string()
            };
            (200, json!({"status": "succeeded", "context": context}))
        }
    })
    .await
}

/// Runs security-incident on the scenario's Deployment `flow-engine` for a PII leak, with
/// `more` inputs, `answers` and the pager's webhook `pager`.
async fn security_incident(
    sc: &Scenario,
    more: &[(&'static str, String)],
    answers: &[&str],
    pager: &str,
) -> Run {
    let mut inputs = vec![
        ("namespace", s(sc.ns())),
        ("deployment", s("flow-engine")),
        ("finding", s("pii-leak")),
    ];
    inputs.extend_from_slice(more);
    sc.run(
        "security-incident",
        &inputs,
        answers,
        &[
            ("SECURITY_PAGER_WEBHOOK_URL", pager),
            ("SERVICE_API_TOKEN", "flow-token-of-the-test"),
        ],
    )
    .await
}

/// Mirrors drill security-incident/contain-and-recover: flows halted (scaled to 0, every pod
/// gone), security paged, then the Deployment comes back with PII redaction verified.
#[tokio::test(flavor = "multi_thread")]
async fn security_incident_halts_real_flows_and_brings_them_back_redacted() {
    let Some(sc) = Scenario::k8s(&["rb-sec-ok"]).await else {
        return;
    };
    sc.deployment("flow-engine", 3, FLOW_IMAGE, json!({})).await;
    let pages = Arc::new(Mutex::new(vec![]));
    let pager_url = pager(pages.clone()).await;
    let service = test_flow_api(sc.client().clone(), s(sc.ns()), true).await;
    let r = security_incident(
        &sc,
        &[
            ("task_id", s("t-5521")),
            (
                "artifact_location",
                s("s3://context-bundles/ctx_t-5521.json"),
            ),
            ("quarantine_location", s("s3://quarantine/ctx_t-5521.json")),
            ("service_account", s("flow-engine-sa")),
            ("service_url", service),
            ("verify_timeout", s("30s")),
            ("poll_interval", s("500ms")),
        ],
        &[
            "declare=yes",
            "halt=yes",
            "quarantine=done",
            "restrict_access=done",
            "incident_record=done",
            "hand_over=done",
            "cleared=yes",
            "all_clear=done",
        ],
        &format!("{pager_url}/v2/enqueue"),
    )
    .await;
    r.assert_ok();
    assert_eq!(r.capture("halted", "pods"), 0);
    let pages = pages.lock().expect("lock").clone();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0]["details"]["task_id"], "t-5521");
    let (_, all, d) = sc.serving("flow-engine").await;
    assert!(all, "{d}");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_mirrors(&r, "security-incident/contain-and-recover.yaml");
}

/// Mirrors drill security-incident/redaction-not-verified: recovery only; the release
/// ignores the redaction setting, the test flow returns the PII, so the Deployment is halted
/// again and the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn security_incident_halts_again_when_redaction_is_not_verified() {
    let Some(sc) = Scenario::k8s(&["rb-sec-pii"]).await else {
        return;
    };
    sc.deployment("flow-engine", 0, FLOW_IMAGE, json!({})).await;
    let service = test_flow_api(sc.client().clone(), s(sc.ns()), false).await;
    let r = security_incident(
        &sc,
        &[
            ("recover_only", s("true")),
            ("replicas", s("3")),
            ("service_url", service),
            ("verify_timeout", s("3s")),
            ("poll_interval", s("500ms")),
        ],
        &["cleared=yes", "escalate=done"],
        "http://127.0.0.1:9/never-called",
    )
    .await;
    r.assert_exit(1);
    r.assert_error(
        "redaction_verified",
        &["the PII sample does not appear anywhere in the answer"],
    );
    let (_, _, d) = sc.serving("flow-engine").await;
    assert_eq!(d["spec"]["replicas"], 0, "halted again");
    assert_mirrors(&r, "security-incident/redaction-not-verified.yaml");
}

// ------------------------------------------------------------------------------------------
// compose-rollback: real images and containers on tests/env's Compose; the service is a real
// HTTP server in the container (busybox httpd: /health, and /cgi-bin/chat for the smoke
// test), so no stand-in is needed.

/// Podman 4.3 can lose a layer when two builds share its store at once: builds take turns.
static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Takes the project down and removes its images when the scenario ends, passed or not.
struct ComposeProject {
    env: TestEnv,
    project: String,
    images: Vec<String>,
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .envs(&self.env.vars)
                .stdin(std::process::Stdio::null())
                .output();
        };
        docker(&["compose", "-p", &self.project, "down", "--remove-orphans"]);
        for i in &self.images {
            docker(&["rmi", "-f", i]);
        }
    }
}

/// A compose project of the scenario (see `compose_project`).
struct ComposeStack {
    guard: ComposeProject,
    dir: PathBuf,
    /// The images' name, without tag.
    image: String,
    port: u16,
}

impl ComposeStack {
    /// The runbook's inputs, with `known_good` as the image to go back to.
    fn inputs(&self, known_good: &str) -> Vec<(&'static str, String)> {
        vec![
            ("project_directory", s(self.dir.to_str().expect("utf-8"))),
            ("project", s(&self.guard.project)),
            ("service", s("web")),
            ("known_good_image", s(known_good)),
            ("service_url", format!("http://127.0.0.1:{}", self.port)),
            ("smoke_path", s("/cgi-bin/chat")),
        ]
    }
}

/// `compose_project` in the scenario's work directory, off the async runtime.
async fn compose_stack(sc: &Scenario) -> ComposeStack {
    let (env, work) = (sc.env.clone(), sc.work.path().to_path_buf());
    tokio::task::spawn_blocking(move || compose_project(&env, &work))
        .await
        .expect("stack")
}

/// A compose project `dir` whose `web` service runs `<image>:v2` (a release without a
/// health endpoint), with `<image>:v1` (healthy, with a chat endpoint) and `<image>-broken:v1`
/// (exits at once) built on the host.
fn compose_project(env: &TestEnv, work: &Path) -> ComposeStack {
    let project = backend_env::unique("rb-compose");
    let image = format!("localhost/{project}-web");
    let guard = ComposeProject {
        env: env.clone(),
        project: project.clone(),
        images: vec![
            format!("{image}:v1"),
            format!("{image}:v2"),
            format!("{image}-broken:v1"),
        ],
    };
    let port = free_port();
    let dir = work.join(&project);
    common::write(
        &dir,
        "web/chat",
        "#!/bin/sh\necho 'Content-Type: application/json'\necho\necho '{\"status\": \"success\", \"correlation_id\": \"9f1c-77\"}'\n",
    );
    common::write(
        &dir,
        "web/Dockerfile",
        "FROM localhost/busybox:test\nARG VERSION=v1\nARG HEALTHY=yes\nCOPY chat /chat\n\
         RUN mkdir -p /www/cgi-bin && echo \"hello $VERSION\" > /www/index.html \\\n \
         && if [ \"$HEALTHY\" = yes ]; then echo '{\"status\": \"ok\"}' > /www/health \\\n \
         && cp /chat /www/cgi-bin/chat && chmod +x /www/cgi-bin/chat; fi\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    );
    common::write(
        &dir,
        "web/Dockerfile.broken",
        "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"echo configuration invalid; exit 3\"]\n",
    );
    // Images only exist on this host: compose never pulls them (`pull_policy: never`).
    common::write(
        &dir,
        "compose.yaml",
        "services:\n  web:\n    image: ${WEB_IMAGE}\n    pull_policy: never\n    ports: [\"127.0.0.1:${WEB_PORT}:8080\"]\n    stop_signal: SIGKILL\n",
    );
    common::write(
        &dir,
        ".env",
        &format!("WEB_IMAGE={image}:v2\nWEB_PORT={port}\n"),
    );
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .current_dir(&dir)
            .envs(&env.vars)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    {
        let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
        docker(&["build", "-q", "-t", &format!("{image}:v1"), "web"]);
        docker(&[
            "build",
            "-q",
            "-t",
            &format!("{image}:v2"),
            "--build-arg",
            "VERSION=v2",
            "--build-arg",
            "HEALTHY=no",
            "web",
        ]);
        docker(&[
            "build",
            "-q",
            "-t",
            &format!("{image}-broken:v1"),
            "-f",
            "web/Dockerfile.broken",
            "web",
        ]);
    }
    docker(&["compose", "-p", &project, "up", "-d", "--wait"]);
    ComposeStack {
        guard,
        dir,
        image,
        port,
    }
}

/// Mirrors drill compose-rollback/recover-previous-tag: v2 answers no health; v1 is pulled
/// (nothing to pull here), started, and passes the health and smoke checks.
#[tokio::test(flavor = "multi_thread")]
async fn compose_rollback_runs_the_previous_image_of_a_real_service() {
    let Some(sc) = Scenario::compose() else {
        return;
    };
    let stack = compose_stack(&sc).await;
    let r = sc
        .run(
            "compose-rollback",
            &stack.inputs(&format!("{}:v1", stack.image)),
            &["approve=yes", "tell=done", "persist=done", "record=done"],
            &[("SERVICE_API_TOKEN", "compose-token-of-the-test")],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.capture("current", "image"), format!("{}:v2", stack.image));
    assert_eq!(r.capture("running", "image"), format!("{}:v1", stack.image));
    assert_mirrors(&r, "compose-rollback/recover-previous-tag.yaml");
}

/// Mirrors drill compose-rollback/previous-tag-crashes: the known-good image exits at once,
/// `up --wait` fails, the service is pointed back at v2 and recreated, and the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn compose_rollback_puts_the_release_back_when_the_previous_image_crashes() {
    let Some(sc) = Scenario::compose() else {
        return;
    };
    let stack = compose_stack(&sc).await;
    let r = sc
        .run(
            "compose-rollback",
            &stack.inputs(&format!("{}-broken:v1", stack.image)),
            &["approve=yes", "escalate=done"],
            &[("SERVICE_API_TOKEN", "compose-token-of-the-test")],
        )
        .await;
    r.assert_exit(1);
    r.assert_outcome("up", "failed");
    r.assert_undone(&["pin"]);
    assert_mirrors(&r, "compose-rollback/previous-tag-crashes.yaml");
}

/// A GitOps repository whose promotion of api 1.5.0 was merged as a merge commit
/// ("Merge pull request #127 from platform/promote-api-1.5.0"): `promotion` is that merge.
fn gitops_repo_merged_promotion(work: &Path) -> GitopsRepo {
    gitops_history(work, false, |seed| {
        git(seed, &["checkout", "-q", "-b", "promote-api-1.5.0"]);
        common::write(seed, DEPLOYMENT_FILE, &gitops_manifest("1.5.0"));
        git(seed, &["commit", "-q", "-am", "bump api prod to 1.5.0"]);
        git(seed, &["checkout", "-q", "main"]);
        common::write(seed, "docs/on-call.md", "who to call\n");
        git(seed, &["add", "-A"]);
        git(seed, &["commit", "-q", "-m", "on-call notes"]);
        git(
            seed,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge pull request #127 from platform/promote-api-1.5.0",
                "promote-api-1.5.0",
            ],
        );
    })
}

/// Stand-in of Argo CD's application controller for the Application `api-prod`: it syncs
/// the deployed branch of the real remote to the real Deployment, and writes the whole
/// Application (the CRD has no status subresource) with the sync status and revision, the
/// images, and the health it reads from the Deployment's rollout; it clears the refresh
/// annotation once it has compared. Runs until the returned sender drops.
async fn argocd_controller(
    client: kube::Client,
    remote: PathBuf,
    argocd_ns: String,
    app_ns: String,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let ar = resource(&client, "argoproj.io/v1alpha1", "Application").await;
        let apps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &argocd_ns, &ar);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &app_ns);
        loop {
            let r2 = remote.clone();
            let head = tokio::task::spawn_blocking(move || {
                let image = image_on_main(&r2)?;
                let out = Command::new("git")
                    .args(["rev-parse", "main"])
                    .current_dir(&r2)
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .output()
                    .ok()?;
                Some((
                    image,
                    String::from_utf8_lossy(&out.stdout).trim().to_string(),
                ))
            })
            .await
            .ok()
            .flatten();
            if let Some((image, sha)) = head {
                let running = serving(&client, &app_ns, "api").await;
                if running.as_ref().is_some_and(|(i, _, _)| *i != image) {
                    let patch = json!({"spec": {"template": {"spec": {"containers": [
                        {"name": "api", "image": image}]}}}});
                    deployments
                        .patch("api", &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                        .expect("Argo CD applies the Deployment");
                }
                let healthy = matches!(serving(&client, &app_ns, "api").await, Some((i, true, _)) if i == image);
                let status = json!({
                    "sync": {"status": "Synced", "revision": sha},
                    "health": {"status": if healthy { "Healthy" } else { "Progressing" }},
                    "summary": {"images": [image]}
                });
                let _ = apps
                    .patch(
                        "api-prod",
                        &PatchParams::default(),
                        &Patch::Merge(json!({
                            "metadata": {"annotations": {"argocd.argoproj.io/refresh": null}},
                            "status": status
                        })),
                    )
                    .await;
            }
            tokio::select! {
                _ = &mut rx => break,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    });
    tx
}

/// Mirrors drill gitops-revert/argocd-revert-merge-commit: the promotion was a merge commit,
/// so the real `git revert --mainline 1` reverts it against its first parent on the rollback
/// branch; once merged, Argo CD (stand-in) syncs the real Deployment back to 1.4.2 and
/// reports the Application Synced and Healthy; the canary gates pass in the real Prometheus.
#[tokio::test(flavor = "multi_thread")]
async fn gitops_revert_reverts_a_merge_commit_promotion_deployed_by_argocd() {
    let Some(sc) = Scenario::k8s_and_prometheus(&["rb-gitops-argo", "rb-gitops-argo-app"]).await
    else {
        return;
    };
    let client = sc.client();
    install_gitops_crds(client).await;
    let (argocd_ns, app_ns) = (sc.namespace(0), sc.namespace(1));
    let repo = repo_in(sc.work.path(), gitops_repo_merged_promotion).await;
    let after = AfterRollback {
        failed_per_1000: 6,
        slowest: 0.8,
    };
    api_on_the_bad_release(client, app_ns).await;
    create(
        client,
        argocd_ns,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "api-prod"},
               "spec": {"source": {"repoURL": format!("file://{}", repo.remote.display()), "path": "apps/api/prod"},
                        "destination": {"namespace": app_ns}},
               "status": {"sync": {"status": "Synced"}, "health": {"status": "Degraded"},
                          "summary": {"images": ["registry.example/api:1.5.0"]}}}),
    )
    .await;
    let _argocd = argocd_controller(
        client.clone(),
        repo.remote.clone(),
        argocd_ns.to_string(),
        app_ns.to_string(),
    )
    .await;
    let canary = canary_traffic(&sc.env, client, app_ns, "rb-gitops-argo", after).await;
    let (_forge, mut inputs) = merging_forge(&sc, &repo, "flux-system", app_ns, &canary).await;
    inputs.retain(|(k, _)| !["controller", "flux_image_policy"].contains(k));
    inputs.extend([
        ("controller", s("argocd")),
        ("argocd_application", s("api-prod")),
        ("argocd_namespace", s(argocd_ns)),
    ]);
    let r = gitops_revert(&sc, &inputs, &MERGED_ANSWERS).await;
    canary.watcher.abort();
    r.assert_ok();
    assert_eq!(r.capture("promotion", "parents"), 2);
    // The revert against the first parent brings 1.4.2 back and keeps the unrelated change
    // merged on main's side.
    assert_eq!(image_on_main(&repo.remote).as_deref(), Some(GOOD_API));
    let notes = Command::new("git")
        .args(["show", "main:docs/on-call.md"])
        .current_dir(&repo.remote)
        .output()
        .expect("git show");
    assert!(notes.status.success(), "the on-call notes stay");
    assert_eq!(r.capture("argocd_app", "health"), "Healthy");
    api_serves_good(sc.client(), sc.namespace(1)).await;
    assert_mirrors(&r, "gitops-revert/argocd-revert-merge-commit.yaml");
}
