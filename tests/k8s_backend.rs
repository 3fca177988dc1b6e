//! The Kubernetes backend against a real API server (tests/env): every test drives
//! `runbook run` on a fixture runbook in a namespace of its own, then checks the journal and
//! reads the cluster back through its own client.

use crate::backend_env;
use crate::common;

use backend_env::{fixture, journal_text, run, runbook, unique, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

async fn client(env: &TestEnv) -> kube::Client {
    runbook::backends::http::install_crypto_provider();
    let kc = Kubeconfig::read_from(env.var("RUNBOOK_TEST_KUBECONFIG")).expect("test kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("test kubeconfig loads");
    kube::Client::try_from(cfg).expect("client")
}

/// Deletes the test's namespace when the test ends, passed or not.
struct NamespaceGuard {
    env: TestEnv,
    name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let (env, name) = (self.env.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let api: Api<Namespace> = Api::all(client(&env).await);
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        })
        .join();
    }
}

/// A Deployment as the API server returns it, as JSON.
async fn deployment(env: &TestEnv, ns: &str, name: &str) -> serde_json::Value {
    let api: Api<Deployment> = Api::namespaced(client(env).await, ns);
    let d = api.get(name).await.expect("the Deployment exists");
    serde_json::to_value(d).expect("json")
}

fn setup(prefix: &str) -> Option<(TestEnv, String, NamespaceGuard, tempfile::TempDir)> {
    let env = backend_env::k8s()?;
    let ns = unique(prefix);
    let guard = NamespaceGuard {
        env: env.clone(),
        name: ns.clone(),
    };
    Some((env, ns, guard, tempfile::tempdir().expect("tempdir")))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_rolls_forward_back_and_is_scaled_restarted_and_reconfigured() {
    let Some((env, ns, _guard, journals)) = setup("rb-rollout") else {
        return;
    };
    let r = run(
        &env,
        &fixture("k8s/rollout.yaml"),
        journals.path(),
        &[("namespace", &ns)],
        &[],
        &[],
    );
    r.assert_ok();

    assert_eq!(r.capture("to_v2", "image"), "flowengine:v1.1.0");
    assert_eq!(r.capture("history", "revisions"), json!([1, 2, 3]));
    assert_eq!(r.capture("history", "current"), 3);
    // `rollout_undo` went back to the previous revision (v1.1.0), then to revision 1.
    assert_eq!(r.capture("after_undo", "image"), "flowengine:v1.1.0");
    assert_eq!(r.capture("after_undo_to_1", "image"), "flowengine:v1.0.0");
    assert_eq!(r.capture("scaled", "ready"), 3);
    assert_eq!(r.capture("pods", "count"), 3);
    assert!(r
        .capture("restart", "restarted_at")
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    assert!(
        r.stderr
            .contains("deployment \"web\" successfully rolled out"),
        "{}",
        r.log()
    );
    assert!(
        r.stderr.contains("image: flowengine:v1.2.0 → v1.1.0"),
        "the undo describes its change\n{}",
        r.log()
    );

    // Read back from the API, independently of the runbook.
    let d = deployment(&env, &ns, "web").await;
    assert_eq!(d["spec"]["replicas"], 3);
    let app = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(app["image"], "flowengine:v1.0.0");
    assert_eq!(
        app["env"],
        json!([{"name": "LOG_LEVEL", "value": "debug"}, {"name": "WORKERS", "value": "4"}])
    );
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["availableReplicas"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_step_failures_that_quote_the_server() {
    let Some((env, ns, _guard, journals)) = setup("rb-errors") else {
        return;
    };
    let noperm = env.var("RUNBOOK_TEST_KUBECONFIG_NOPERM").to_string();
    assert!(
        !noperm.is_empty(),
        "the test environment exports RUNBOOK_TEST_KUBECONFIG_NOPERM"
    );
    let r = run(
        &env,
        &fixture("k8s/errors.yaml"),
        journals.path(),
        &[("namespace", &ns), ("noperm_kubeconfig", &noperm)],
        &[],
        &[],
    );
    assert_eq!(r.outcome("namespace"), "succeeded", "{}", r.log());

    let e = r.error("missing");
    assert_eq!(r.outcome("missing"), "failed");
    assert!(
        e.contains(&format!("Deployment {ns}/does-not-exist: 404 Not Found: deployments.apps \"does-not-exist\" not found")),
        "{e}"
    );

    let e = r.error("forbidden");
    assert_eq!(r.outcome("forbidden"), "failed");
    assert!(e.contains("403 Forbidden"), "{e}");
    assert!(
        e.contains("User \"nobody\" cannot get resource \"deployments\" in API group \"apps\""),
        "the server's own message is quoted: {e}"
    );
    assert!(
        e.contains("context `runbook-noperm`"),
        "the context is named: {e}"
    );

    let e = r.error("invalid");
    assert_eq!(r.outcome("invalid"), "failed");
    assert!(e.contains("422 Invalid"), "{e}");
    assert!(
        e.contains("`selector` does not match template `labels`"),
        "{e}"
    );

    let e = r.error("unknown_kind");
    assert!(
        e.contains("no kind `Deploymnet` (did you mean `Deployment`?)"),
        "{e}"
    );

    // The kubeconfigs' bearer tokens appear nowhere.
    for kubeconfig in [env.var("RUNBOOK_TEST_KUBECONFIG"), noperm.as_str()] {
        let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
        let token = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("token:"))
            .map(|t| t.trim().to_string())
            .expect("the test kubeconfigs use bearer tokens");
        for (what, text) in [
            ("journal", journal_text(&r)),
            ("stdout", r.stdout.clone()),
            ("stderr", r.stderr.clone()),
        ] {
            assert!(
                !text.contains(&token),
                "a bearer token leaked into the {what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_of_any_kind_and_statefulset_revisions() {
    let Some((env, ns, _guard, journals)) = setup("rb-objects") else {
        return;
    };
    let r = run(
        &env,
        &fixture("k8s/objects.yaml"),
        journals.path(),
        &[("namespace", &ns)],
        &["delete=yes"],
        &[],
    );
    r.assert_ok();
    assert_eq!(r.capture("config", "count"), 2);
    assert_eq!(r.capture("by_label", "names"), json!(["settings"]));
    assert_eq!(r.capture("settings", "owner"), format!("team-{ns}"));
    assert_eq!(r.capture("settings", "has_stale"), false);
    assert_eq!(r.capture("settings", "mode"), "fast");
    assert_eq!(r.capture("pause", "paused"), true);
    assert_eq!(r.capture("resume", "paused"), false);
    assert_eq!(r.capture("db_history", "revisions"), json!([1, 2]));
    assert_eq!(r.capture("db_undo", "image"), "postgres:15");
    assert_eq!(r.capture("delete", "name"), "settings");
    assert_eq!(r.capture("gone", "count"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_live_reads_the_cluster_and_shows_the_change() {
    let Some((env, ns, _guard, journals)) = setup("rb-plan") else {
        return;
    };
    let r = run(
        &env,
        &fixture("k8s/rollout.yaml"),
        journals.path(),
        &[("namespace", &ns)],
        &[],
        &[],
    );
    r.assert_ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plan.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: p, title: p}}\n\
             backends:\n  c:\n    kubernetes: {{namespace: {ns}}}\n\
             steps:\n  - id: roll\n    kubernetes:\n      set_image: {{name: web, image: 'flowengine:v0.9.0'}}\n    no_undo: plan only\n\
             \x20 - id: up\n    kubernetes:\n      scale: {{name: web, replicas: 3}}\n\
             \x20 - id: back\n    kubernetes:\n      rollout_undo: {{name: web}}\n    no_undo: plan only\n"
        ),
    )
    .expect("write");
    let p = runbook(
        &env,
        &["plan", file.to_str().expect("utf-8"), "--live"],
        &[],
    );
    assert_eq!(p.code, 0, "{}", p.log());
    assert!(
        p.stdout.contains(&format!(
            "Deployment {ns}/web: image: flowengine:v1.0.0 → v0.9.0"
        )),
        "{}",
        p.log()
    );
    assert!(
        p.stdout.contains(&format!(
            "Deployment {ns}/web: already as asked; nothing changed"
        )),
        "{}",
        p.log()
    );
    assert!(p.stdout.contains("pod template of revision"), "{}", p.log());
    // Nothing changed on the cluster.
    let d = deployment(&env, &ns, "web").await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "flowengine:v1.0.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_rollout_fails_at_the_progress_deadline_or_the_step_timeout() {
    let Some((env, ns, _guard, journals)) = setup("rb-stall") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stall.yaml");
    // A LimitRange its pods exceed: admission rejects every pod, so the rollout stalls.
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{name: stall, title: stall}}
backends:
  c:
    kubernetes: {{namespace: {ns}}}
steps:
  - id: ns
    kubernetes:
      apply: {{manifest: {{apiVersion: v1, kind: Namespace, metadata: {{name: {ns}}}}}}}
    no_undo: test
  - id: limits
    kubernetes:
      apply: {{manifest: {{apiVersion: v1, kind: LimitRange, metadata: {{name: small}}, spec: {{limits: [{{type: Container, max: {{cpu: 100m}}}}]}}}}}}
    no_undo: test
  - id: deploy
    kubernetes:
      apply:
        manifest:
          apiVersion: apps/v1
          kind: Deployment
          metadata: {{name: stuck}}
          spec:
            progressDeadlineSeconds: 2
            selector: {{matchLabels: {{app: stuck}}}}
            template:
              metadata: {{labels: {{app: stuck}}}}
              spec: {{containers: [{{name: app, image: x, resources: {{limits: {{cpu: "1"}}}}}}]}}
    no_undo: test
  - id: timeout
    continue_on_failure: true
    timeout: 1s
    kubernetes:
      rollout_status: {{name: stuck}}
  - id: deadline
    timeout: 60s
    kubernetes:
      rollout_status: {{name: stuck}}
"#
        ),
    )
    .expect("write");
    let r = run(&env, &file, journals.path(), &[], &[], &[]);
    assert_ne!(r.code, 0, "{}", r.log());
    let e = r.error("timeout");
    assert!(e.contains("the rollout did not finish within"), "{e}");
    assert!(
        e.contains("0 out of 1 new replicas have been updated"),
        "{e}"
    );
    let e = r.error("deadline");
    assert!(
        e.contains("deployment \"stuck\" exceeded its progress deadline: "),
        "{e}"
    );
    assert!(
        e.contains("maximum cpu usage per Container is 100m"),
        "the cause is quoted: {e}"
    );
}

/// The built-in `runbooks/k8s-rollback.yaml`, unchanged, against the real cluster (the drill
/// runs the same file against the simulated world): both strategies, with the service's
/// health, chat and agents APIs served on loopback.
#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_rollback_runbook_rolls_back_a_real_deployment() {
    let Some((env, ns, _guard, journals)) = setup("rb-builtin") else {
        return;
    };
    let service = common::Server::start(vec![
        (
            "/health",
            vec![common::Reply::json(200, json!({"status": "ok"}))],
        ),
        (
            "/api/v1/chat",
            vec![common::Reply::json(200, json!({"correlation_id": "c-1"}))],
        ),
        ("/api/v1/agents", vec![common::Reply::json(200, json!([]))]),
    ]);
    let setup_run = run(
        &env,
        &fixture("k8s/two-revisions.yaml"),
        &journals.path().join("setup"),
        &[("namespace", &ns)],
        &[],
        &[],
    );
    setup_run.assert_ok();
    let builtin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/k8s-rollback.yaml");
    let service_url = service.url("");
    let token = "orch-token-for-the-builtin-test";
    let answers = ["approve=yes", "metrics=done", "tell=done", "record=done"];

    // strategy undo: back to the previous ReplicaSet.
    let r = run(
        &env,
        &builtin,
        &journals.path().join("undo"),
        &[
            ("namespace", &ns),
            ("deployment", "web"),
            ("service_url", &service_url),
        ],
        &answers,
        &[("SERVICE_API_TOKEN", token)],
    );
    r.assert_ok();
    assert_eq!(r.capture("current", "image"), "flowengine:v1.1.0");
    assert_eq!(r.capture("running", "image"), "flowengine:v1.0.0");
    assert_eq!(
        deployment(&env, &ns, "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "flowengine:v1.0.0"
    );

    // strategy set-image, with the runbook's empty `container` default (the only container).
    let r = run(
        &env,
        &builtin,
        &journals.path().join("pin"),
        &[
            ("namespace", &ns),
            ("deployment", "web"),
            ("service_url", &service_url),
            ("strategy", "set-image"),
            ("known_good_image", "flowengine:v0.9.0"),
        ],
        &answers,
        &[("SERVICE_API_TOKEN", token)],
    );
    r.assert_ok();
    assert_eq!(r.capture("running", "image"), "flowengine:v0.9.0");
    assert_eq!(
        deployment(&env, &ns, "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "flowengine:v0.9.0"
    );
    assert!(
        !journal_text(&r).contains(token),
        "the API token is redacted in the journal"
    );
    let seen = service.seen.lock().expect("lock");
    assert!(seen.iter().any(|s| s.path == "/health"
        && s.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {token}"))));
}

/// The words of a rollout in progress, as `rollout_status` reports them (kubectl's), with the
/// numbers taken out: the shape both the real backend and the drill world must use.
fn rollout_shapes(stderr: &str) -> Vec<String> {
    let numbers = regex::Regex::new(r"\d+").unwrap();
    stderr
        .lines()
        .filter_map(|l| l.split_once("… ").map(|(_, m)| m.trim().to_string()))
        .filter(|m| m.contains("rollout") || m.contains("spec update"))
        .map(|m| numbers.replace_all(&m, "N").into_owned())
        .collect()
}

/// Contract: the drill world's `rollout_status` reports progress in the same words as the
/// real backend against the real API server, and, on the virtual clock, each replica as it
/// is updated ("1 out of 3 new replicas have been updated...").
#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_rollout_reports_progress_in_the_real_backends_words() {
    let Some((env, ns, _guard, journals)) = setup("rb-progress") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tail = r#"  - id: to_v2
    kubernetes:
      set_image: {name: web, image: "flowengine:v1.1.0"}
    no_undo: test
  - id: rolled
    timeout: 120s
    kubernetes:
      rollout_status: {name: web}
"#;
    let real = dir.path().join("real.yaml");
    std::fs::write(
        &real,
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{name: progress, title: Progress}}
backends:
  cluster:
    kubernetes: {{namespace: {ns}}}
steps:
  - id: ns
    kubernetes:
      apply: {{manifest: {{apiVersion: v1, kind: Namespace, metadata: {{name: {ns}}}}}}}
    no_undo: test
  - id: deploy
    kubernetes:
      apply:
        manifest:
          apiVersion: apps/v1
          kind: Deployment
          metadata: {{name: web}}
          spec:
            replicas: 3
            selector: {{matchLabels: {{app: web}}}}
            template:
              metadata: {{labels: {{app: web}}}}
              spec: {{containers: [{{name: app, image: "flowengine:v1.0.0"}}]}}
    no_undo: test
  - id: created
    timeout: 120s
    kubernetes:
      rollout_status: {{name: web}}
{tail}"#
        ),
    )
    .unwrap();
    let r = run(&env, &real, journals.path(), &[], &[], &[]);
    r.assert_ok();
    let real_shapes = rollout_shapes(&r.stderr);

    let simulated = dir.path().join("simulated.yaml");
    std::fs::write(
        &simulated,
        format!(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: progress, title: Progress}}\nbackends:\n  cluster:\n    kubernetes: {{namespace: prod}}\nsteps:\n{tail}"
        ),
    )
    .unwrap();
    let drill = dir.path().join("drill.yaml");
    std::fs::write(
        &drill,
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: {name: progress}\nrunbook: simulated.yaml\nworld:\n  kubernetes:\n    deployments:\n      - { namespace: prod, name: web, container: app, replicas: 3, revisions: [\"flowengine:v1.0.0\"], rollout: { takes: 45s } }\nexpect: { outcome: succeeded }\n",
    )
    .unwrap();
    let o = common::runbook(dir.path())
        .args([
            "run",
            "simulated.yaml",
            "--world",
            "drill.yaml",
            "--fast",
            "--non-interactive",
        ])
        .args(["--reason", "contract", "--journal-dir", "runs"])
        .output()
        .unwrap();
    let (_, sim_err) = common::text(&o);
    assert_eq!(o.status.code(), Some(0), "{sim_err}");
    let sim_shapes = rollout_shapes(&sim_err);

    eprintln!("real: {real_shapes:#?}\nsimulated: {sim_shapes:#?}");
    // On the virtual clock, every replica shows as it is updated.
    for n in 0..3 {
        let line = format!(
            "Waiting for deployment \"web\" rollout to finish: {n} out of 3 new replicas have been updated..."
        );
        assert!(sim_err.contains(&line), "no `{line}`:\n{sim_err}");
    }
    // Every message the simulator gives is one the real backend gives, word for word but
    // the numbers; the real one (fast here: the fake kubelet readies pods in ~0.5 s) shows
    // at least the first of them.
    let progress = "Waiting for deployment \"web\" rollout to finish: N out of N new replicas have been updated...";
    assert!(
        real_shapes.iter().any(|s| s == progress),
        "the real backend reported {real_shapes:#?}\n{}",
        r.stderr
    );
    let known = [
        progress,
        "Waiting for deployment spec update to be observed...",
        "Waiting for deployment \"web\" rollout to finish: N old replicas are pending termination...",
        "Waiting for deployment \"web\" rollout to finish: N of N updated replicas are available...",
    ];
    for s in real_shapes.iter().chain(&sim_shapes) {
        assert!(
            known.contains(&s.as_str()),
            "unexpected rollout message `{s}`"
        );
    }
    for s in &sim_shapes {
        assert!(
            real_shapes.contains(s) || s == progress,
            "`{s}` only in the simulator: {real_shapes:#?}"
        );
    }
}
