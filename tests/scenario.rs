//! The scaffolding every real-component scenario of the built-in runbooks shares
//! (`builtin_real*`): the backends it needs (or a skip, a failure under CI), its own
//! namespaces (deleted when it ends), a work directory, the runbook run by the real binary
//! with its inputs, answers and environment, and the Deployment's state afterwards.
//!
//! A scenario reads:
//!
//! ```ignore
//! let Some(sc) = Scenario::k8s(&["rb-k8s-ok"]).await else { return };
//! sc.deployment("flowengine", 3, "flowengine:v1.0.0", json!({})).await;
//! let r = sc.run("k8s-rollback", &inputs, &["approve=yes"], &[]).await;
//! r.assert_exit(1);
//! r.assert_error("rollout", &["the rollout did not finish"]);
//! ```
//!
//! The assertions on the journal (`assert_exit`, `assert_error`, `assert_undone`, ...) are
//! `backend_env::Run`'s: each prints the evidence (the step's error, the run's output) when
//! it fails.

use crate::backend_env::{self, Run, TestEnv};
use crate::builtin_real::{kube_client, namespaces, run_builtin, serving, Namespaces};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::Value;

/// The Kubernetes side of a scenario: a client and the scenario's own namespaces.
struct Kube {
    client: kube::Client,
    names: Vec<String>,
    _guard: Namespaces,
}

pub(crate) struct Scenario {
    pub(crate) env: TestEnv,
    /// Fresh per scenario: repositories, compose projects and the runs' journals live here.
    pub(crate) work: tempfile::TempDir,
    kube: Option<Kube>,
    runs: AtomicUsize,
}

impl Scenario {
    fn new(env: TestEnv) -> Scenario {
        Scenario {
            env,
            work: tempfile::tempdir().expect("tempdir"),
            kube: None,
            runs: AtomicUsize::new(0),
        }
    }

    /// Loopback only (stand-ins): never skips.
    pub(crate) fn plain() -> Scenario {
        Scenario::new(TestEnv {
            vars: BTreeMap::new(),
        })
    }

    /// tests/env's Compose, or `None` after a skip (a failure under CI).
    pub(crate) fn compose() -> Option<Scenario> {
        Some(Scenario::new(backend_env::compose()?))
    }

    /// tests/env's Kubernetes API server with one new namespace per prefix, or `None` after a
    /// skip (a failure under CI).
    pub(crate) async fn k8s(prefixes: &[&str]) -> Option<Scenario> {
        Some(Scenario::with_namespaces(backend_env::k8s()?, prefixes).await)
    }

    /// The Kubernetes API server (namespaces as `k8s`) and the real Prometheus, both up, or
    /// `None` after a skip (a failure under CI).
    pub(crate) async fn k8s_and_prometheus(prefixes: &[&str]) -> Option<Scenario> {
        Some(Scenario::with_namespaces(k8s_and_prometheus()?, prefixes).await)
    }

    async fn with_namespaces(env: TestEnv, prefixes: &[&str]) -> Scenario {
        let client = kube_client(&env).await;
        let (guard, names) = namespaces(&env, &client, prefixes).await;
        let mut sc = Scenario::new(env);
        sc.kube = Some(Kube {
            client,
            names,
            _guard: guard,
        });
        sc
    }

    fn kube(&self) -> &Kube {
        self.kube
            .as_ref()
            .expect("a Kubernetes scenario (Scenario::k8s)")
    }

    pub(crate) fn client(&self) -> &kube::Client {
        &self.kube().client
    }

    /// The scenario's first namespace (the application's).
    pub(crate) fn ns(&self) -> &str {
        self.namespace(0)
    }

    /// The namespace made for the `i`-th prefix.
    pub(crate) fn namespace(&self, i: usize) -> &str {
        &self.kube().names[i]
    }

    /// The real Prometheus's URL (`metrics_url` of the runbooks).
    pub(crate) fn prometheus_url(&self) -> String {
        self.env.var("RUNBOOK_TEST_PROMETHEUS_URL").to_string()
    }

    /// The real Prometheus answers `query` with an empty vector (no series).
    pub(crate) fn assert_no_series(&self, query: &str) {
        let answer = backend_env::prom_query(&self.prometheus_url(), query);
        assert_eq!(
            answer["data"]["result"],
            serde_json::json!([]),
            "{query}: {answer}"
        );
    }

    /// A Deployment of one container in the first namespace, created and rolled out.
    pub(crate) async fn deployment(&self, name: &str, replicas: i32, image: &str, extra: Value) {
        crate::builtin_real::deployment(self.client(), self.ns(), name, replicas, image, extra)
            .await;
    }

    /// A release of the Deployment in the first namespace (its image, its resources), rolled
    /// out.
    pub(crate) async fn release(&self, name: &str, image: &str, resources: Value) {
        crate::builtin_real::release(self.client(), self.ns(), name, image, resources).await;
    }

    /// The Deployment in the first namespace now: its image, whether every replica is
    /// available, the object. Fails when it does not exist.
    pub(crate) async fn serving(&self, name: &str) -> (String, bool, Value) {
        serving(self.client(), self.ns(), name)
            .await
            .unwrap_or_else(|| panic!("no Deployment {}/{name}", self.ns()))
    }

    /// The environment of the Deployment's container now (name → value).
    pub(crate) async fn env_now(&self, name: &str) -> BTreeMap<String, String> {
        env_of(&self.serving(name).await.2)
    }

    /// The Deployment's revision, once the controller numbers it `want` (at most 30 s).
    pub(crate) async fn revision_soon(&self, name: &str, want: &str) -> String {
        crate::builtin_real::revision_soon(self.client(), self.ns(), name, want).await
    }

    /// Where the next run journals (a fresh directory under the work directory).
    fn journals(&self) -> PathBuf {
        match self.runs.fetch_add(1, Ordering::SeqCst) {
            0 => self.work.path().join("runs"),
            n => self.work.path().join(format!("runs-{}", n + 1)),
        }
    }

    /// Runs the built-in runbook `name` (`runbooks/<name>.yaml`) with the scenario's backends,
    /// non-interactively with `answers`, and returns what it did (its journal read back).
    pub(crate) async fn run(
        &self,
        name: &str,
        inputs: &[(&str, String)],
        answers: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Run {
        let started = Instant::now();
        let r = run_builtin(
            &self.env,
            name,
            &self.journals(),
            inputs,
            answers,
            extra_env,
        )
        .await;
        eprintln!(
            "{name}: real run {:.1} s, exit {}",
            started.elapsed().as_secs_f64(),
            r.code
        );
        r
    }
}

/// Both the Kubernetes API server and the real Prometheus, or a skip (a failure under CI).
pub(crate) fn k8s_and_prometheus() -> Option<TestEnv> {
    let k8s = backend_env::k8s()?;
    let prom = backend_env::prometheus()?;
    let mut vars = k8s.vars;
    vars.extend(prom.vars);
    Some(TestEnv { vars })
}

/// The environment of a Deployment's first container (name → value), from its object.
pub(crate) fn env_of(d: &Value) -> BTreeMap<String, String> {
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Each variable of `want` has its value in `env` (`None`: is absent).
pub(crate) fn assert_env(env: &BTreeMap<String, String>, want: &[(&str, Option<&str>)]) {
    for (k, v) in want {
        assert_eq!(
            env.get(*k).map(String::as_str),
            *v,
            "{k} in the Deployment's environment {env:?}"
        );
    }
}

/// Sets a runbook input: replaces its value, or adds it.
pub(crate) fn set_input(inputs: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    match inputs.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = value.to_string(),
        None => inputs.push((key, value.to_string())),
    }
}
