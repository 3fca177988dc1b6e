//! The built-in runbooks that act on the flow service — `flow-failure` and `timeout-recovery` —
//! run end to end by the real binary, unchanged, against real components: tests/env's
//! Kubernetes API server (the flow service's Deployment, its env switches, scale and
//! rollouts) and the real Prometheus scraping a loopback exporter whose series the scenario
//! writes as a service would (counters and histograms that grow while flows run, a gauge a
//! recording rule would give). The flow service's own HTTP API (failed flows, retries) is a
//! loopback **stand-in**: no open-source server plays it.
//!
//! Each scenario mirrors one drill of its runbook (`runbooks/drills/<name>/`): the step
//! outcomes of the real run's journal must equal the drill's (`assert_mirrors`). The
//! harness (stand-ins, Kubernetes helpers, `run_builtin`) is `builtin_real`'s.

use crate::backend_env;
use crate::builtin_real::{assert_mirrors, s, serving, stand_in, Req, FLOW_IMAGE};
use crate::scenario::{assert_env, env_of, set_input, Scenario};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_env::{Exporter, Run};
use serde_json::{json, Value};

/// The drill says where and why its run fails (`expect.failed_step`, `expect.message`): the
/// real run fails at that step for the same reason. Step outcomes alone do not tell "no
/// data" from "the value was wrong".
pub(crate) fn assert_fails_like(real: &backend_env::Run, drill: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runbooks/drills")
        .join(drill);
    let text = std::fs::read_to_string(&path).expect("the drill file");
    let d: Value = serde_saphyr::from_str(&text).expect("the drill's YAML");
    let step = d["expect"]["failed_step"]
        .as_str()
        .unwrap_or_else(|| panic!("drill {drill} names no failed_step"));
    let message = d["expect"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("drill {drill} names no message"));
    assert_eq!(real.outcome(step), "failed", "{}", real.log());
    let err = real.error(step);
    assert!(
        err.contains(message),
        "drill {drill} fails `{step}` with \"{message}\"; the real run with: {err}"
    );
}

// ------------------------------------------------------------------------------------------
// The metrics side: a loopback exporter whose text is recomputed every 200 ms, scraped by the
// real Prometheus every second.

/// Keeps recomputing an exporter's text with `render` until dropped (a service's counters
/// growing while it serves).
pub(crate) struct Feed {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn feed(ex: Arc<Exporter>, mut render: impl FnMut() -> String + Send + 'static) -> Feed {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let thread = std::thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            ex.set(&render());
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    Feed {
        stop,
        thread: Some(thread),
    }
}

/// A Prometheus histogram in the text format: cumulative bucket counters (`le`), `_sum` and
/// `_count`, fed with observations.
pub(crate) struct Histogram {
    name: &'static str,
    bounds: Vec<f64>,
    /// Per bucket (non-cumulative, the last one is +Inf).
    counts: Vec<u64>,
    sum: f64,
    /// Labels of every series, `key="value",` each.
    labels: String,
}

impl Histogram {
    pub(crate) fn new(name: &'static str, bounds: &[f64]) -> Self {
        Histogram {
            name,
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            labels: String::new(),
        }
    }

    /// The same with labels on every series (`service="api"`).
    pub(crate) fn labelled(mut self, labels: &str) -> Self {
        self.labels = format!("{labels},");
        self
    }

    /// Records `n` observations of `v` seconds.
    pub(crate) fn observe(&mut self, v: f64, n: u64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += n;
        self.sum += v * n as f64;
    }

    pub(crate) fn text(&self) -> String {
        let mut out = format!("# TYPE {} histogram\n", self.name);
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            let le = self
                .bounds
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            out.push_str(&format!(
                "{}_bucket{{{}le=\"{le}\"}} {cum}\n",
                self.name, self.labels
            ));
        }
        let l = match self.labels.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        out.push_str(&format!(
            "{n}_sum{l} {}\n{n}_count{l} {cum}\n",
            self.sum,
            n = self.name
        ));
        out
    }
}

/// Waits (off the runtime) until Prometheus answers `query` as `ok` says.
pub(crate) async fn prom_ready(
    ex: &Arc<Exporter>,
    query: String,
    ok: impl Fn(&Value) -> bool + Send + 'static,
) {
    let ex = ex.clone();
    tokio::task::spawn_blocking(move || ex.wait_for(&query, ok))
        .await
        .expect("the wait's thread");
}

pub(crate) fn one_value(r: &Value) -> Option<String> {
    let a = r.as_array()?;
    (a.len() == 1).then(|| a[0]["value"][1].as_str().unwrap_or_default().to_string())
}

/// The one sample of an instant query's answer, as a number (`NaN` included).
pub(crate) fn one_number(r: &Value) -> Option<f64> {
    one_value(r)?.parse().ok()
}

// ------------------------------------------------------------------------------------------
// The flow service: a real Deployment (its env is what the runbooks switch), and a stand-in
// of its HTTP API.

const TOKEN: &str = "flow-token-of-the-test";

/// The env of the Deployment's first container, as a map.
/// The flow service's Deployment (`replicas` of `FLOW_IMAGE`) in a new namespace `prefix`, and
/// an exporter of the same name that the real Prometheus scrapes; `None` after a skip (a
/// failure under CI).
async fn flow_service(prefix: &str, replicas: i32) -> Option<(Scenario, Arc<Exporter>)> {
    let sc = Scenario::k8s_and_prometheus(&[prefix]).await?;
    sc.deployment("flow-engine", replicas, FLOW_IMAGE, json!({}))
        .await;
    let ex = Arc::new(Exporter::start(&sc.env, prefix));
    Some((sc, ex))
}

/// Runs `then` every 200 ms while every replica of the flow service is available and `live`
/// holds of its image and object: how the service behaves follows its real Deployment.
fn while_live(
    sc: &Scenario,
    live: impl Fn(&str, &Value) -> bool + Send + 'static,
    then: impl Fn() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (client, ns) = (sc.client().clone(), s(sc.ns()));
    tokio::spawn(async move {
        loop {
            if let Some((image, true, d)) = serving(&client, &ns, "flow-engine").await {
                if live(&image, &d) {
                    then();
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The Deployment's environment sets `name` to `true`.
fn switched_on(d: &Value, name: &str) -> bool {
    env_of(d).get(name).map(String::as_str) == Some("true")
}

/// What the stand-in's flow service accepts a retry with.
#[derive(Clone, Copy, PartialEq, Debug)]
enum RetryNeeds {
    /// `enable_pruning: true` with `max_context_size_kb: 180` (the flow timed out on its
    /// context otherwise).
    Pruning,
    /// The circuit breaker live on the Deployment (`ENABLE_CIRCUIT_BREAKER=true`): the model
    /// API's quota is exhausted otherwise.
    Breaker,
    /// Every pod on this image (another release rejects the task's schema).
    Image(&'static str),
}

struct FlowState {
    flow: Value,
    needs: RetryNeeds,
    /// When an accepted retry finishes (the flow runs meanwhile).
    retried_at: Option<Instant>,
    /// Every retry request's body, accepted or not.
    retries: Vec<Value>,
}

impl FlowApi {
    /// The flow was retried once.
    fn assert_retried_once(&self) {
        let st = self.state.lock().expect("lock");
        assert_eq!(st.retries.len(), 1, "{:?}", st.retries);
    }
}

/// Stand-in of the flow service's API (`/api/v1/flows`): one failed flow, listed with
/// `?status=failed`, read by id, retried with `POST /<id>/retry` when `needs` holds; an
/// accepted retry runs for 1.5 s, then succeeds and `succeeded` is set.
#[derive(Clone)]
struct FlowApi {
    state: Arc<Mutex<FlowState>>,
    succeeded: Arc<AtomicBool>,
}

impl FlowApi {
    fn new(flow: Value, needs: RetryNeeds) -> Self {
        FlowApi {
            state: Arc::new(Mutex::new(FlowState {
                flow,
                needs,
                retried_at: None,
                retries: vec![],
            })),
            succeeded: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn handle(&self, client: &kube::Client, ns: &str, r: Req) -> (u16, Value) {
        if r.bearer() != Some(TOKEN) {
            return (401, json!({"error": "unauthenticated"}));
        }
        let running = serving(client, ns, "flow-engine").await;
        // The breaker is live once every pod runs with it.
        let breaker_live = match &running {
            Some((_, all, d)) => {
                *all && env_of(d).get("ENABLE_CIRCUIT_BREAKER").map(String::as_str) == Some("true")
            }
            None => false,
        };
        let on_image = |want: &str| matches!(&running, Some((i, true, _)) if i == want);
        if (r.method.as_str(), r.path.as_str()) == ("GET", "/health") {
            return match &running {
                Some((_, true, _)) => (200, json!({"status": "ok"})),
                _ => (503, json!({"status": "error"})),
            };
        }
        let mut st = self.state.lock().expect("lock");
        let id = st.flow["id"].as_str().unwrap_or_default().to_string();
        let item = format!("/api/v1/flows/{id}");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/flows") => {
                if r.query.get("status").map(String::as_str) != Some("failed") {
                    return (400, json!({"error": "status is required"}));
                }
                let f = &st.flow;
                (
                    200,
                    json!({"items": [{"id": f["id"], "flow_type": f["flow_type"], "error": f["error"],
                                      "created_at": "2026-01-01T00:00:00Z"}]}),
                )
            }
            ("GET", p) if p == item => {
                let mut f = st.flow.clone();
                if let Some(at) = st.retried_at {
                    let done = Instant::now() >= at;
                    f["status"] = json!(if done { "succeeded" } else { "running" });
                    if st.needs == RetryNeeds::Pruning {
                        f["context_size_kb"] = json!(180);
                    }
                    if done {
                        self.succeeded.store(true, Ordering::SeqCst);
                    }
                }
                (200, f)
            }
            ("POST", p) if p == format!("{item}/retry") => {
                st.retries.push(r.body.clone());
                let ok = match st.needs {
                    RetryNeeds::Pruning => {
                        r.body["enable_pruning"] == json!(true)
                            && r.body["max_context_size_kb"] == json!(180)
                    }
                    RetryNeeds::Breaker => breaker_live && r.body["enable_pruning"] == json!(false),
                    RetryNeeds::Image(want) => {
                        on_image(want) && r.body["enable_pruning"] == json!(false)
                    }
                };
                if !ok {
                    let why = match st.needs {
                        RetryNeeds::Pruning => "the context exceeds the deadline without pruning",
                        RetryNeeds::Breaker => "429: model API quota exhausted",
                        RetryNeeds::Image(_) => "TaskObject schema v3 expected, got v2",
                    };
                    return (422, json!({"error": why}));
                }
                st.retried_at = Some(Instant::now() + Duration::from_millis(1500));
                (202, json!({"id": id, "status": "queued"}))
            }
            _ => (404, json!({"error": "not found"})),
        }
    }

    async fn serve(&self, sc: &Scenario) -> String {
        let (client, ns) = (sc.client().clone(), s(sc.ns()));
        let me = self.clone();
        stand_in(move |r| {
            let (me, client, ns) = (me.clone(), client.clone(), ns.clone());
            async move { me.handle(&client, &ns, r).await }
        })
        .await
    }
}

// ------------------------------------------------------------------------------------------
// flow-failure

/// The flow-failure metrics as the recording rules of a flow service give them: flows per
/// second over 1h and over 5m, failed flows per second likewise (in flows per 1000 s, so that
/// the shares are exact: 12/1000 is 0.012), and failures per reason over 1h. `recent` is
/// (failed, total) over 5m.
struct FlowRates {
    failed_1h: u64,
    recent: Arc<Mutex<(u64, u64)>>,
    reasons: Vec<(&'static str, u64)>,
    quota: f64,
}

/// Feeds the flow service's `rates` to its exporter until dropped; returns once the real
/// Prometheus reads the recent failure rate `recent` (as it prints it, e.g. `0.011`).
async fn flow_rates(ex: &Arc<Exporter>, rates: FlowRates, recent: &'static str) -> Feed {
    let f = feed(ex.clone(), move || rates.text());
    prom_ready(ex, recent_query(&ex.name), move |r| {
        one_value(r).as_deref() == Some(recent)
    })
    .await;
    f
}

impl FlowRates {
    fn text(&self) -> String {
        let (failed_5m, total_5m) = *self.recent.lock().expect("lock");
        let mut t = format!(
            "flow:runs:rate1h 1000\nflow:runs_failed:rate1h {}\nflow:runs:rate5m {total_5m}\nflow:runs_failed:rate5m {failed_5m}\nmodel_api_quota_used_ratio {}\n",
            self.failed_1h,
            self.quota
        );
        for (reason, n) in &self.reasons {
            t.push_str(&format!(
                "flow:runs_failed:increase1h{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        t
    }
}

fn flow_failure_inputs(
    sc: &Scenario,
    service: &str,
    test: &str,
    recent_query: String,
) -> Vec<(&'static str, String)> {
    let sel = format!("{{test=\"{test}\"}}");
    vec![
        ("namespace", s(sc.ns())),
        ("deployment", s("flow-engine")),
        ("metrics_url", sc.prometheus_url()),
        (
            "failure_rate_query",
            format!("sum(flow:runs_failed:rate1h{sel}) / sum(flow:runs:rate1h{sel})"),
        ),
        ("recent_failure_rate_query", recent_query),
        (
            "failure_reasons_query",
            format!("topk(1, sum by (reason) (flow:runs_failed:increase1h{sel}))"),
        ),
        (
            "quota_usage_query",
            format!("max(model_api_quota_used_ratio{sel})"),
        ),
        ("service_url", s(service)),
        ("breaker_settle", s("1s")),
        ("retried_timeout", s("20s")),
        ("poll_interval", s("500ms")),
        ("recovery_timeout", s("20s")),
        ("recovery_interval", s("1s")),
    ]
}

/// The answers of a run that switches the circuit breaker on, and escalates.
const BREAKER_ANSWERS: [&str; 6] = [
    "classify=rate-limit",
    "page_tl=done",
    "approve_breaker=yes",
    "tell=done",
    "record=done",
    "escalate=done",
];

/// Runs flow-failure with `inputs` and `answers`, with the flow service's token.
async fn flow_failure(sc: &Scenario, inputs: &[(&str, String)], answers: &[&str]) -> Run {
    sc.run(
        "flow-failure",
        inputs,
        answers,
        &[("SERVICE_API_TOKEN", TOKEN)],
    )
    .await
}

fn recent_query(test: &str) -> String {
    let sel = format!("{{test=\"{test}\"}}");
    format!("sum(flow:runs_failed:rate5m{sel}) / sum(flow:runs:rate5m{sel})")
}

/// Mirrors drill flow-failure/timeout-pruning: 1.2% of flows fail on their deadline
/// (deadline_exceeded is the top reason in real `topk`), the latest failed flow has a 612 KB
/// context; the stand-in only accepts its retry with pruning on, the flow succeeds, and the
/// recent failure rate read from the real Prometheus falls to 0. The Deployment is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn flow_failure_retries_a_timed_out_flow_with_pruning_and_sees_the_rate_fall() {
    let Some((sc, ex)) = flow_service("rb-flow-timeout", 3).await else {
        return;
    };
    let recent = Arc::new(Mutex::new((11, 1000)));
    let rates = FlowRates {
        failed_1h: 12,
        recent: recent.clone(),
        reasons: vec![("deadline_exceeded", 3), ("rate_limited", 1)],
        quota: 0.35,
    };
    let _feed = flow_rates(&ex, rates, "0.011").await;

    let api = FlowApi::new(
        json!({"id": "f-2002", "flow_type": "impl", "status": "failed",
               "error": "flow exceeded its 45s deadline", "context_size_kb": 612}),
        RetryNeeds::Pruning,
    );
    let service = api.serve(&sc).await;
    // Once the retried flow succeeded, the recent failure rate falls (after a few scrapes).
    let done = api.succeeded.clone();
    let falls = tokio::spawn(async move {
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        *recent.lock().expect("lock") = (0, 1000);
    });

    let r = flow_failure(
        &sc,
        &flow_failure_inputs(&sc, &service, &ex.name, recent_query(&ex.name)),
        &["classify=timeout", "tell=done", "record=done"],
    )
    .await;
    falls.abort();
    r.assert_ok();
    assert_eq!(r.capture("failure_rate", "rate"), json!(0.012));
    assert_eq!(r.capture("top_reason", "reason"), "deadline_exceeded");
    assert_eq!(r.capture("context", "kb"), 612);
    assert_eq!(r.capture("recovered", "rate"), json!(0.0));
    api.assert_retried_once();
    let (image, all, d) = sc.serving("flow-engine").await;
    assert_eq!((image.as_str(), all), (FLOW_IMAGE, true));
    assert!(env_of(&d).is_empty(), "nothing changed: {d}");
    assert_mirrors(&r, "flow-failure/timeout-pruning.yaml");
}

/// Mirrors drill flow-failure/recovery-query-typo: rate-limit failures with the quota at 91%;
/// the circuit breaker is really switched on (set_env, a real rollout), the stand-in accepts
/// the retry only once it is live, the flow succeeds — but the recovery query has a typo and
/// the real Prometheus answers an empty vector. No data is not a recovery: `recovered`
/// fails saying so, the breaker is switched off again on the Deployment, and the run
/// escalates.
#[tokio::test(flavor = "multi_thread")]
async fn flow_failure_does_not_take_an_empty_recovery_query_for_a_recovery() {
    let Some((sc, ex)) = flow_service("rb-flow-typo", 3).await else {
        return;
    };
    let rates = FlowRates {
        failed_1h: 34,
        recent: Arc::new(Mutex::new((2, 1000))),
        reasons: vec![("rate_limited", 41), ("deadline_exceeded", 2)],
        quota: 0.91,
    };
    let _feed = flow_rates(&ex, rates, "0.002").await;
    // The typo: `flow:run_failed` for `flow:runs_failed`. Prometheus answers an empty vector
    // (the correct query gives 0.002: with the old `else 0.0` both would have "recovered").
    let sel = format!("{{test=\"{}\"}}", ex.name);
    let typo = format!("sum(flow:run_failed:rate5m{sel}) / sum(flow:runs:rate5m{sel})");
    sc.assert_no_series(&typo);

    let api = FlowApi::new(
        json!({"id": "f-8841", "flow_type": "impl", "status": "failed",
               "error": "model API 429: rate limit exceeded"}),
        RetryNeeds::Breaker,
    );
    let service = api.serve(&sc).await;
    let mut inputs = flow_failure_inputs(&sc, &service, &ex.name, typo.clone());
    set_input(&mut inputs, "recovery_timeout", "4s");
    let r = flow_failure(&sc, &inputs, &BREAKER_ANSWERS).await;
    r.assert_exit(1);
    r.assert_outcome("retried", "succeeded");
    r.assert_outcome("recovered", "failed");
    r.assert_error(
        "recovered",
        &["no data: the query returned no series", &typo],
    );
    r.assert_undone(&["breaker"]);
    api.assert_retried_once();
    // The breaker is off again.
    assert_env(
        &sc.env_now("flow-engine").await,
        &[("ENABLE_CIRCUIT_BREAKER", None)],
    );
    // The template is revision 1's again: the controller numbers it 3, as the simulator
    // does (drill breaker-does-not-help).
    assert_eq!(sc.revision_soon("flow-engine", "3").await, "3");
    assert_fails_like(&r, "flow-failure/recovery-query-typo.yaml");
    assert_mirrors(&r, "flow-failure/recovery-query-typo.yaml");
}

/// Mirrors drill flow-failure/breaker-pauses-traffic: the circuit breaker, live on every pod
/// of the real Deployment, pauses all traffic: no flow runs in the 5m window, and the real
/// Prometheus answers the recent failure share 0/0 with NaN. NaN is not under the threshold:
/// `recovered` fails saying so (not "no series", not a pass), the breaker is switched off
/// again and the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn flow_failure_does_not_take_a_real_nan_failure_rate_for_a_recovery() {
    let Some((sc, ex)) = flow_service("rb-flow-nan", 3).await else {
        return;
    };
    let recent = Arc::new(Mutex::new((31, 1000)));
    let rates = FlowRates {
        failed_1h: 34,
        recent: recent.clone(),
        reasons: vec![("rate_limited", 41)],
        quota: 0.91,
    };
    let _feed = flow_rates(&ex, rates, "0.031").await;
    // Once the breaker is live on every pod, no flow runs at all.
    let world = while_live(
        &sc,
        |_, d| switched_on(d, "ENABLE_CIRCUIT_BREAKER"),
        move || *recent.lock().expect("lock") = (0, 0),
    );

    let api = FlowApi::new(
        json!({"id": "f-8841", "flow_type": "impl", "status": "failed",
               "error": "model API 429: rate limit exceeded"}),
        RetryNeeds::Breaker,
    );
    let service = api.serve(&sc).await;
    let mut inputs = flow_failure_inputs(&sc, &service, &ex.name, recent_query(&ex.name));
    set_input(&mut inputs, "recovery_timeout", "5s");
    let r = flow_failure(&sc, &inputs, &BREAKER_ANSWERS).await;
    world.abort();
    r.assert_exit(1);
    assert_eq!(r.result("recovered")["text"], "NaN", "{}", r.log());
    r.assert_error("recovered", &["the query gave NaN, not a number"]);
    r.assert_undone(&["breaker"]);
    // The breaker is off again.
    assert_env(
        &sc.env_now("flow-engine").await,
        &[("ENABLE_CIRCUIT_BREAKER", None)],
    );
    assert_fails_like(&r, "flow-failure/breaker-pauses-traffic.yaml");
    assert_mirrors(&r, "flow-failure/breaker-pauses-traffic.yaml");
}

/// Mirrors drill flow-failure/schema-mismatch-rollback: v1.2.0 rejects every task's schema;
/// the operator confirms the mismatch and flow-failure calls k8s-rollback, which undoes the
/// real rollout (revision 1's template comes back as revision 3); the stand-in's health
/// answers, the retry is accepted on v1.1.0 only, and the recent failure rate falls in the
/// real Prometheus once every pod runs it.
#[tokio::test(flavor = "multi_thread")]
async fn flow_failure_rolls_a_real_deployment_back_through_k8s_rollback_on_a_schema_mismatch() {
    let Some((sc, ex)) = flow_service("rb-flow-schema", 4).await else {
        return;
    };
    sc.release(
        "flow-engine",
        "registry.example/flow-engine:v1.2.0",
        json!({}),
    )
    .await;
    let recent = Arc::new(Mutex::new((120, 1000)));
    let rates = FlowRates {
        failed_1h: 127,
        recent: recent.clone(),
        reasons: vec![("validation_error", 212), ("deadline_exceeded", 3)],
        quota: 0.4,
    };
    let _feed = flow_rates(&ex, rates, "0.12").await;
    // Once every pod runs v1.1.0 again, tasks validate and flows stop failing.
    let world = while_live(
        &sc,
        |image, _| image == FLOW_IMAGE,
        move || *recent.lock().expect("lock") = (1, 1000),
    );
    let api = FlowApi::new(
        json!({"id": "f-1207", "flow_type": "plan", "status": "failed",
               "error": "TaskObject schema v3 expected, got v2"}),
        RetryNeeds::Image(FLOW_IMAGE),
    );
    let service = api.serve(&sc).await;
    let r = flow_failure(
        &sc,
        &flow_failure_inputs(&sc, &service, &ex.name, recent_query(&ex.name)),
        &[
            "classify=validation",
            "page_tl=done",
            "schema_mismatch=true",
            "rollback/approve=yes",
            "tell=done",
            "record=done",
        ],
    )
    .await;
    world.abort();
    r.assert_ok();
    assert_eq!(r.capture("top_reason", "reason"), "validation_error");
    let (image, all, d) = sc.serving("flow-engine").await;
    assert_eq!((image.as_str(), all), (FLOW_IMAGE, true), "{d}");
    assert_eq!(sc.revision_soon("flow-engine", "3").await, "3");
    assert_mirrors(&r, "flow-failure/schema-mismatch-rollback.yaml");
}

// ------------------------------------------------------------------------------------------
// timeout-recovery

/// How the flows of the simulated service run, as the histograms show it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Flows {
    /// No flow finishes: the duration histogram does not move (`histogram_quantile` over a
    /// window without observations is NaN).
    Stuck,
    /// Flows take 150 s (P95 in the 120-180 s bucket).
    Slow,
    /// 80% take 50 s, 20% 100 s: P95 112.5 s.
    Fast,
}

/// The flow service's metrics for timeout-recovery: flow and model call durations
/// (histograms fed while flows run), the largest context seen (KB) and the busiest pod's CPU
/// share of its limit (gauges).
struct Latency {
    flows: Histogram,
    model: Histogram,
    mode: Arc<Mutex<Flows>>,
    model_seconds: f64,
    context_kb: u64,
    cpu: f64,
}

impl Latency {
    fn new(mode: Arc<Mutex<Flows>>, model_seconds: f64, context_kb: u64, cpu: f64) -> Self {
        Latency {
            flows: Histogram::new(
                "flow_duration_seconds",
                &[30.0, 60.0, 90.0, 120.0, 180.0, 300.0],
            ),
            model: Histogram::new(
                "model_call_duration_seconds",
                &[5.0, 10.0, 20.0, 30.0, 45.0, 60.0],
            ),
            mode,
            model_seconds,
            context_kb,
            cpu,
        }
    }

    /// One tick of traffic, then the exposition text.
    fn tick(&mut self) -> String {
        match *self.mode.lock().expect("lock") {
            Flows::Stuck => {}
            Flows::Slow => self.flows.observe(150.0, 10),
            Flows::Fast => {
                self.flows.observe(50.0, 8);
                self.flows.observe(100.0, 2);
            }
        }
        self.model.observe(self.model_seconds, 10);
        format!(
            "{}{}flow_context_size_kb {}\nflow_engine_cpu_limit_ratio {}\n",
            self.flows.text(),
            self.model.text(),
            self.context_kb,
            self.cpu
        )
    }
}

fn timeout_recovery_inputs(sc: &Scenario, test: &str) -> Vec<(&'static str, String)> {
    let sel = format!("{{test=\"{test}\"}}");
    vec![
        ("namespace", s(sc.ns())),
        ("deployment", s("flow-engine")),
        ("metrics_url", sc.prometheus_url()),
        ("p95_query", p95_query(test)),
        (
            "context_size_query",
            format!("max(max_over_time(flow_context_size_kb{sel}[1h]))"),
        ),
        ("cpu_query", format!("max(flow_engine_cpu_limit_ratio{sel})")),
        (
            "model_latency_query",
            format!("histogram_quantile(0.95, sum by (le) (rate(model_call_duration_seconds_bucket{sel}[10s])))"),
        ),
        ("fallback_model", s("fast-model-v2")),
        ("recovery_timeout", s("20s")),
        ("poll_interval", s("1s")),
    ]
}

/// Feeds the flow service's `latency` to its exporter until dropped; returns once the real
/// Prometheus answers P95 as `ok` says.
async fn flow_latency(ex: &Arc<Exporter>, mut latency: Latency, ok: fn(&Value) -> bool) -> Feed {
    let f = feed(ex.clone(), move || latency.tick());
    prom_ready(ex, p95_query(&ex.name), ok).await;
    f
}

/// P95 is over the 120 s target.
fn p95_over_target(r: &Value) -> bool {
    one_number(r).is_some_and(|v| v > 120.0)
}

fn p95_query(test: &str) -> String {
    format!(
        "histogram_quantile(0.95, sum by (le) (rate(flow_duration_seconds_bucket{{test=\"{test}\"}}[10s])))"
    )
}

/// The flows run fast again once context pruning is live on every pod of the real
/// Deployment (a stand-in for the service's behaviour: nothing else could decide it).
fn flows_follow_pruning(sc: &Scenario, mode: Arc<Mutex<Flows>>) -> tokio::task::JoinHandle<()> {
    while_live(
        sc,
        |_, d| switched_on(d, "CONTEXT_PRUNING_ENABLED"),
        move || *mode.lock().expect("lock") = Flows::Fast,
    )
}

/// Mirrors drill timeout-recovery/flows-stuck: no flow finishes, so the real Prometheus
/// answers P95 with NaN (`histogram_quantile` over a window without observations); the
/// runbook reads that as stuck — not as no data, not as a number under target — turns
/// context pruning on (the largest context is 512 KB) on the real Deployment, and once it is
/// live the flows finish and P95 (112.5 s) is under the 120 s target.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_recovery_reads_a_real_nan_p95_as_stuck_and_recovers_with_pruning() {
    let Some((sc, ex)) = flow_service("rb-timeout-stuck", 3).await else {
        return;
    };
    let mode = Arc::new(Mutex::new(Flows::Stuck));
    let latency = Latency::new(mode.clone(), 25.0, 512, 0.46);
    let _feed = flow_latency(&ex, latency, |r| one_value(r).as_deref() == Some("NaN")).await;
    let world = flows_follow_pruning(&sc, mode.clone());

    let r = sc
        .run(
            "timeout-recovery",
            &timeout_recovery_inputs(&sc, &ex.name),
            &[
                "approve=yes",
                "retry_stuck=done",
                "tell=done",
                "record=done",
            ],
            &[],
        )
        .await;
    world.abort();
    r.assert_ok();
    assert_eq!(r.result("p95")["text"], "NaN", "{}", r.log());
    assert_eq!(r.capture("p95", "stuck"), true);
    // 80% of flows in the 30-60 s bucket, 20% in 90-120 s: P95 interpolates to 112.5 s.
    let p95 = r
        .capture("p95_recovered", "seconds")
        .as_f64()
        .unwrap_or_default();
    assert!((p95 - 112.5).abs() < 1e-6, "{p95}");
    let (_, all, d) = sc.serving("flow-engine").await;
    assert!(all, "{d}");
    assert_env(
        &env_of(&d),
        &[
            ("CONTEXT_PRUNING_ENABLED", Some("true")),
            ("CONTEXT_MAX_SIZE_KB", Some("180")),
            ("FALLBACK_MODEL", None),
        ],
    );
    assert_eq!(d["spec"]["replicas"], 3);
    assert_mirrors(&r, "timeout-recovery/flows-stuck.yaml");
}

/// Mirrors drill timeout-recovery/latency-persists: contexts of 730 KB and pods at 85% of
/// their CPU limit; pruning, the larger database pool and the scale-out to 5 replicas are
/// applied to the real Deployment, but P95 stays at 177 s: after `recovery_timeout` the run
/// undoes all three (3 replicas, no env switches) and escalates.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_recovery_undoes_its_real_changes_when_p95_stays_over_target() {
    let Some((sc, ex)) = flow_service("rb-timeout-persists", 3).await else {
        return;
    };
    let mode = Arc::new(Mutex::new(Flows::Slow));
    let latency = Latency::new(mode, 12.0, 730, 0.85);
    let _feed = flow_latency(&ex, latency, p95_over_target).await;

    let mut inputs = timeout_recovery_inputs(&sc, &ex.name);
    set_input(&mut inputs, "recovery_timeout", "5s");
    let r = sc
        .run(
            "timeout-recovery",
            &inputs,
            &["approve=yes", "retry_stuck=done", "escalate=done"],
            &[],
        )
        .await;
    r.assert_exit(1);
    r.assert_outcome("p95_recovered", "failed");
    r.assert_error("p95_recovered", &["P95 flow latency is under the target"]);
    r.assert_undone(&["pruning", "db_pool", "scale"]);
    let (_, _, d) = sc.serving("flow-engine").await;
    assert_eq!(d["spec"]["replicas"], 3, "{d}");
    assert!(env_of(&d).is_empty(), "every switch unset: {d}");
    assert_fails_like(&r, "timeout-recovery/latency-persists.yaml");
    assert_mirrors(&r, "timeout-recovery/latency-persists.yaml");
}

/// Mirrors drill timeout-recovery/cpu-query-empty: the CPU query names a renamed metric and
/// the real Prometheus answers an empty vector. That is no data, not "CPU is fine": the
/// diagnosis stops at `cpu` (after its retries) before anything changes on the Deployment.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_recovery_stops_at_an_empty_cpu_query_before_changing_anything() {
    let Some((sc, ex)) = flow_service("rb-timeout-cpu", 3).await else {
        return;
    };
    let mode = Arc::new(Mutex::new(Flows::Slow));
    let latency = Latency::new(mode, 25.0, 512, 0.46);
    let _feed = flow_latency(&ex, latency, p95_over_target).await;
    // The exporter has `flow_engine_cpu_limit_ratio`; the query asks for the old name.
    let renamed = format!("max(flow_engine_cpu_ratio{{test=\"{}\"}})", ex.name);
    sc.assert_no_series(&renamed);

    let mut inputs = timeout_recovery_inputs(&sc, &ex.name);
    set_input(&mut inputs, "cpu_query", &renamed);
    let r = sc
        .run(
            "timeout-recovery",
            &inputs,
            &[
                "approve=yes",
                "retry_stuck=done",
                "tell=done",
                "record=done",
                "escalate=done",
            ],
            &[],
        )
        .await;
    r.assert_exit(1);
    // The query as sent.
    r.assert_error("cpu", &["no data: the query returned no series", &renamed]);
    let (_, all, d) = sc.serving("flow-engine").await;
    assert!(all, "{d}");
    assert!(env_of(&d).is_empty(), "nothing changed: {d}");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_fails_like(&r, "timeout-recovery/cpu-query-empty.yaml");
    assert_mirrors(&r, "timeout-recovery/cpu-query-empty.yaml");
}
