//! `provider-outage` and `rate-limit`, unchanged, run end to end by the real binary against
//! the Kubernetes API server of tests/env (a real Deployment whose environment the runbooks
//! change) and the real Prometheus, which scrapes the model traffic the flow service would
//! meter: counters exposed by a loopback exporter (`backend_env::Exporter`) that grow every
//! 200 ms at rates that follow the Deployment's real state (its environment, its rollout).
//! The runbooks' PromQL (`topk`, `sum by`, `rate`, ratios) is evaluated by Prometheus itself.
//!
//! Loopback **stand-ins**, named as such, serve only what no open-source server can run here:
//! the model providers' status pages, the flow service's test-flow endpoint and the ops
//! channel's incoming webhook.
//!
//! Each scenario mirrors one drill (`runbooks/drills/<name>/`): the step outcomes of the real
//! journal equal the drill's (`builtin_real::assert_mirrors`). Poll intervals and timeouts are
//! the runbooks' own inputs, set short here; the queries' windows are 10 s instead of 5m/15m.

use crate::backend_env::{Exporter, Run};
use crate::builtin_real::{assert_mirrors, s, serving, stand_in, Req, FLOW_IMAGE};
use crate::scenario::{assert_env, env_of, set_input, Scenario};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// The metered traffic: counters whose rates follow the Deployment's real state.

/// The value of `name` in the Deployment's container environment (`None`: absent).
fn env_var(d: &Value, name: &str) -> Option<String> {
    env_of(d).remove(name)
}

/// The flow service's Deployment (3 replicas of `FLOW_IMAGE`) in the scenario's namespace.
async fn flow_service(prefix: &str) -> Option<Scenario> {
    let sc = Scenario::k8s_and_prometheus(&[prefix]).await?;
    sc.deployment("flow-engine", 3, FLOW_IMAGE, json!({})).await;
    Some(sc)
}

/// What the Deployment serves now, as the traffic sees it.
struct Now {
    /// The Deployment (`{}` when it cannot be read).
    d: Value,
    /// Every replica runs the current template and is available.
    rolled_out: bool,
}

impl Now {
    async fn read(client: &kube::Client, ns: &str, name: &str) -> Now {
        match serving(client, ns, name).await {
            Some((_, all, d)) => Now { d, rolled_out: all },
            None => Now {
                d: json!({}),
                rolled_out: false,
            },
        }
    }
}

/// Per-second increments of each series (`metric{labels}`), given the Deployment's state.
type Rates = dyn Fn(&Now) -> Vec<(&'static str, f64)> + Send + Sync;

/// Whether the service exports a series (`metric{labels}`) now, given the Deployment's state.
type Exported = dyn Fn(&Now, &str) -> bool + Send + Sync;

/// Counters exposed to the real Prometheus; they stop when this is dropped.
struct Traffic {
    exporter: Arc<Exporter>,
    stop: Arc<AtomicBool>,
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Traffic {
    /// Starts the counters at `initial` (series absent until their first increment, as a
    /// client library creates them), updated every 200 ms from `rates` of the Deployment
    /// flow-engine of the scenario.
    fn start(sc: &Scenario, initial: &[(&'static str, f64)], rates: Box<Rates>) -> Traffic {
        Traffic::start_exporting(sc, initial, rates, Box::new(|_, _| true))
    }

    /// As `start`, exporting only the series `exported` names at each moment (a series no
    /// longer exported goes stale in Prometheus).
    fn start_exporting(
        sc: &Scenario,
        initial: &[(&'static str, f64)],
        rates: Box<Rates>,
        exported: Box<Exported>,
    ) -> Traffic {
        let exporter = Arc::new(Exporter::start(&sc.env, "rb-providers"));
        let stop = Arc::new(AtomicBool::new(false));
        let counters: BTreeMap<&'static str, f64> = initial.iter().copied().collect();
        let (e2, s2, client, ns) = (
            exporter.clone(),
            stop.clone(),
            sc.client().clone(),
            s(sc.ns()),
        );
        tokio::spawn(async move {
            let mut counters = counters;
            let mut last = Instant::now();
            while !s2.load(Ordering::SeqCst) {
                let now = Now::read(&client, &ns, "flow-engine").await;
                let dt = last.elapsed().as_secs_f64();
                last = Instant::now();
                for (series, per_s) in rates(&now) {
                    *counters.entry(series).or_insert(0.0) += per_s * dt;
                }
                let text: String = counters
                    .iter()
                    .filter(|(k, _)| exported(&now, k))
                    .map(|(k, v)| format!("{k} {v:.3}\n"))
                    .collect();
                e2.set(&text);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Traffic { exporter, stop }
    }

    /// The selector label of this test's series, `test="<name>"`.
    fn label(&self) -> String {
        format!("test=\"{}\"", self.exporter.name)
    }

    /// Waits until Prometheus answers `query` with one series whose value `ok` accepts.
    async fn wait_for(&self, query: String, ok: impl Fn(f64) -> bool + Send + 'static) {
        let e = self.exporter.clone();
        tokio::task::spawn_blocking(move || {
            e.wait_for(&query, |r| {
                r.as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(&ok)
                })
            })
        })
        .await
        .expect("waiting for Prometheus");
    }
}

/// The Deployment's environment now (name → value), for assertions.
/// The flow service's Deployment now (its environment, for assertions).
async fn env_now(sc: &Scenario) -> BTreeMap<String, String> {
    sc.env_now("flow-engine").await
}

// ------------------------------------------------------------------------------------------
// provider-outage

const FALLBACK_MODEL: &str = "fallback-large-v1";

/// Stand-in of the two providers' status pages (the common `/api/v2/status.json` format):
/// `/primary/...` and `/fallback/...` answer the given indicator and description.
async fn status_pages(primary: (&str, &str), fallback: (&str, &str)) -> String {
    let pages = Arc::new(BTreeMap::from([
        (
            "/primary/api/v2/status.json".to_string(),
            json!({"page": {"name": "Primary"}, "status": {"indicator": primary.0, "description": primary.1}}),
        ),
        (
            "/fallback/api/v2/status.json".to_string(),
            json!({"page": {"name": "Fallback"}, "status": {"indicator": fallback.0, "description": fallback.1}}),
        ),
    ]));
    stand_in(move |r: Req| {
        let pages = pages.clone();
        async move {
            match (r.method.as_str(), pages.get(&r.path)) {
                ("GET", Some(p)) => (200, p.clone()),
                _ => (404, json!({"error": "not found"})),
            }
        }
    })
    .await
}

/// Does the flow service route model calls to the fallback? Only when the setting is in its
/// environment, the rollout is complete, and the release honours FALLBACK_ON_5XX.
fn routes_to_fallback(now: &Now, honours: bool) -> bool {
    honours
        && now.rolled_out
        && env_var(&now.d, "FALLBACK_MODEL").as_deref() == Some(FALLBACK_MODEL)
        && env_var(&now.d, "FALLBACK_ON_5XX").as_deref() == Some("true")
}

/// Stand-in of the flow service's test-flow endpoint: a dry-run flow served by the fallback
/// model when the service routes to it, else by the failing primary (502).
async fn test_flow_api(
    client: kube::Client,
    ns: String,
    token: &'static str,
    honours: bool,
    seen: Arc<Mutex<Vec<Value>>>,
) -> String {
    stand_in(move |r: Req| {
        let (client, ns, seen) = (client.clone(), ns.clone(), seen.clone());
        async move {
            if r.bearer() != Some(token) {
                return (401, json!({"error": "unauthenticated"}));
            }
            if r.method != "POST" || r.path != "/api/v1/test-flow" || r.body["dry_run"] != true {
                return (404, json!({"error": "not found"}));
            }
            seen.lock().expect("lock").push(r.body.clone());
            let now = Now::read(&client, &ns, "flow-engine").await;
            if routes_to_fallback(&now, honours) {
                (200, json!({"status": "succeeded", "model": FALLBACK_MODEL}))
            } else {
                (
                    502,
                    json!({"status": "failed", "model": "primary-large-v1", "error": "upstream 503"}),
                )
            }
        }
    })
    .await
}

/// Model calls per second: 100, to the fallback once the service routes there, else to the
/// primary with `primary_5xx` of them answered 503 (`calls` 0: no traffic at all).
fn model_calls(calls: f64, primary_5xx: f64, honours: bool) -> Box<Rates> {
    Box::new(move |now: &Now| {
        if routes_to_fallback(now, honours) {
            vec![(
                "model_api_calls_total{provider=\"fallback\",model=\"fallback-large-v1\",code=\"200\"}",
                calls,
            )]
        } else {
            vec![
                (
                    "model_api_calls_total{provider=\"primary\",model=\"primary-large-v1\",code=\"200\"}",
                    calls * (1.0 - primary_5xx),
                ),
                (
                    "model_api_calls_total{provider=\"primary\",model=\"primary-large-v1\",code=\"503\"}",
                    calls * primary_5xx,
                ),
            ]
        }
    })
}

/// The runbook's example queries over this test's series, with 10 s windows.
fn error_rate_query(t: &Traffic) -> String {
    let l = t.label();
    format!(
        "topk(1, sum by (provider) (rate(model_api_calls_total{{{l},code=~\"5..\"}}[10s])) / sum by (provider) (rate(model_api_calls_total{{{l}}}[10s])))"
    )
}

fn provider_inputs(w: &ProviderWorld) -> Vec<(&'static str, String)> {
    let l = w.traffic.label();
    let status = &w.status;
    vec![
        ("namespace", s(w.sc.ns())),
        ("deployment", s("flow-engine")),
        ("metrics_url", w.sc.prometheus_url()),
        ("error_rate_query", error_rate_query(&w.traffic)),
        (
            "primary_status_url",
            format!("{status}/primary/api/v2/status.json"),
        ),
        (
            "fallback_status_url",
            format!("{status}/fallback/api/v2/status.json"),
        ),
        ("fallback_model", s(FALLBACK_MODEL)),
        (
            "fallback_share_query",
            format!(
                "sum(rate(model_api_calls_total{{{l},model=\"{FALLBACK_MODEL}\"}}[10s])) / sum(rate(model_api_calls_total{{{l}}}[10s]))"
            ),
        ),
        ("service_url", s(&w.service)),
        ("test_flow_timeout", s("8s")),
        ("poll_interval", s("500ms")),
        ("share_timeout", s("40s")),
        ("share_interval", s("2s")),
    ]
}

const FLOW_TOKEN: &str = "flow-token-of-the-test";

/// A namespace with the flow service's Deployment (3 replicas), its metered traffic, the
/// status pages and the test-flow endpoint.
struct ProviderWorld {
    sc: Scenario,
    traffic: Traffic,
    status: String,
    service: String,
    test_flows: Arc<Mutex<Vec<Value>>>,
}

impl ProviderWorld {
    /// Runs provider-outage with `inputs` (`provider_inputs`, changed or not).
    async fn run(&self, inputs: &[(&str, String)], answers: &[&str]) -> Run {
        self.sc
            .run(
                "provider-outage",
                inputs,
                answers,
                &[("SERVICE_API_TOKEN", FLOW_TOKEN)],
            )
            .await
    }

    /// Waits until the real Prometheus reads the primary's 5xx rate as `rate` (± 0.02).
    async fn error_rate_reads(&self, rate: f64) {
        self.traffic
            .wait_for(error_rate_query(&self.traffic), move |v| {
                (v - rate).abs() < 0.02
            })
            .await;
    }
}

/// The traffic starts at `initial` (see `Traffic::start`); `None` after a skip.
async fn provider_world(
    prefix: &str,
    primary: (&str, &str),
    fallback: (&str, &str),
    honours: bool,
    initial: &[(&'static str, f64)],
    rates: Box<Rates>,
) -> Option<ProviderWorld> {
    let sc = flow_service(prefix).await?;
    let client = sc.client().clone();
    let traffic = Traffic::start(&sc, initial, rates);
    let status = status_pages(primary, fallback).await;
    let test_flows = Arc::new(Mutex::new(vec![]));
    let service = test_flow_api(client, s(sc.ns()), FLOW_TOKEN, honours, test_flows.clone()).await;
    Some(ProviderWorld {
        sc,
        traffic,
        status,
        service,
        test_flows,
    })
}

/// Mirrors drill provider-outage/failover-to-fallback: 23 % of the calls to the primary fail
/// with 503 and its status page reports a major outage; all traffic moves to the fallback
/// model (a real rollout), test flows are served by it and Prometheus measures its share.
#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_fails_over_to_the_fallback_and_prometheus_sees_it_serve() {
    let Some(w) = provider_world(
        "rb-prov-ok",
        ("major", "Partial System Outage"),
        ("none", "All Systems Operational"),
        true,
        &[],
        model_calls(100.0, 0.23, true),
    )
    .await
    else {
        return;
    };
    w.error_rate_reads(0.23).await;
    let r = w
        .run(
            &provider_inputs(&w),
            &[
                "approve_fallback=yes",
                "status_page=done",
                "page=skipped",
                "record=done",
            ],
        )
        .await;
    r.assert_ok();
    let rate = r.capture("error_rate", "rate").as_f64().expect("a number");
    assert!((rate - 0.23).abs() < 0.02, "{rate}");
    assert_eq!(r.capture("error_rate", "provider"), "primary");
    assert!(
        r.capture("fallback_share", "share")
            .as_f64()
            .expect("a number")
            >= 0.5
    );
    assert_env(
        &env_now(&w.sc).await,
        &[
            ("FALLBACK_MODEL", Some(FALLBACK_MODEL)),
            ("FALLBACK_ON_5XX", Some("true")),
            ("MANUAL_REVIEW_MODE", None),
        ],
    );
    assert!(!w.test_flows.lock().expect("lock").is_empty());
    assert_mirrors(&r, "provider-outage/failover-to-fallback.yaml");
}

/// Mirrors drill provider-outage/fallback-not-serving: the release ignores FALLBACK_ON_5XX,
/// so test flows keep going to the failing primary; after `test_flow_timeout` the runbook
/// removes the setting again (a real rollout back) and escalates.
#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_removes_the_fallback_setting_when_the_release_ignores_it() {
    let Some(w) = provider_world(
        "rb-prov-ignored",
        ("minor", "Degraded Performance"),
        ("none", "All Systems Operational"),
        false,
        &[],
        model_calls(100.0, 0.18, false),
    )
    .await
    else {
        return;
    };
    w.error_rate_reads(0.18).await;
    let r = w
        .run(
            &provider_inputs(&w),
            &["approve_fallback=yes", "escalate=done"],
        )
        .await;
    r.assert_exit(1);
    r.assert_error("test_flow", &["the test flow endpoint answers 200"]);
    r.assert_undone(&["fallback"]);
    assert_env(
        &env_now(&w.sc).await,
        &[("FALLBACK_MODEL", None), ("FALLBACK_ON_5XX", None)],
    );
    assert_mirrors(&r, "provider-outage/fallback-not-serving.yaml");
}

/// Mirrors drill provider-outage/all-providers-down: 71 % of the primary's calls fail and
/// both status pages report an outage, so the runbook switches the real Deployment to manual
/// review mode (a real rollout) instead of routing to a fallback that is down too.
#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_switches_to_manual_review_when_the_fallback_is_down_too() {
    let Some(w) = provider_world(
        "rb-prov-alldown",
        ("critical", "Major System Outage"),
        ("major", "Elevated error rates on all models"),
        true,
        &[],
        model_calls(100.0, 0.71, true),
    )
    .await
    else {
        return;
    };
    w.error_rate_reads(0.71).await;
    let r = w
        .run(
            &provider_inputs(&w),
            &[
                "approve_manual_review=yes",
                "reviewers=done",
                "status_page=done",
                "page=done",
                "record=done",
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.capture("fallback_status", "healthy"), false);
    assert_eq!(r.capture("fallback_status", "indicator"), "major");
    assert_env(
        &env_now(&w.sc).await,
        &[
            ("MANUAL_REVIEW_MODE", Some("true")),
            ("FALLBACK_MODEL", None),
        ],
    );
    assert!(w.test_flows.lock().expect("lock").is_empty());
    assert_mirrors(&r, "provider-outage/all-providers-down.yaml");
}

/// Mirrors drill provider-outage/error-rate-nan: no model call at all in the window (every
/// flow paused): the 5xx rate is 0/0, which the real Prometheus answers as NaN. That is no
/// data, not a rate under the threshold: `error_rate` fails saying so (with the query), and
/// nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_stops_on_a_nan_error_rate_from_the_real_prometheus() {
    // The counters exist (the service ran) but no longer grow.
    let Some(w) = provider_world(
        "rb-prov-nan",
        ("major", "Partial System Outage"),
        ("none", "All Systems Operational"),
        true,
        &[],
        model_calls(0.0, 0.23, true),
    )
    .await
    else {
        return;
    };
    w.traffic
        .wait_for(
            format!("count(model_api_calls_total{{{}}})", w.traffic.label()),
            |v| v == 2.0,
        )
        .await;
    let nan = w.traffic.exporter.clone();
    let q = error_rate_query(&w.traffic);
    tokio::task::spawn_blocking(move || {
        nan.wait_for(&q, |r| {
            r.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["value"][1] == "NaN")
        })
    })
    .await
    .expect("NaN from Prometheus");
    let r = w.run(&provider_inputs(&w), &["escalate=done"]).await;
    r.assert_exit(1);
    // With the query as sent.
    r.assert_error(
        "error_rate",
        &["inconclusive", "NaN", &error_rate_query(&w.traffic)],
    );
    assert_env(&env_now(&w.sc).await, &[("FALLBACK_MODEL", None)]);
    assert!(w.test_flows.lock().expect("lock").is_empty());
    assert_mirrors(&r, "provider-outage/error-rate-nan.yaml");
}

/// Mirrors drill provider-outage/fallback-share-nan: test flows are served by the fallback,
/// but once the pods restart with the setting no model call is made at all (flows paused):
/// the share reads 0, then, when the query's window holds no call, 0/0, which the real
/// Prometheus answers as NaN. No evidence that the fallback takes the traffic is not a pass:
/// `fallback_share` fails saying the query gave NaN, the setting is removed, the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_does_not_take_a_nan_share_for_a_working_fallback() {
    const FALLBACK_CALLS: &str =
        "model_api_calls_total{provider=\"fallback\",model=\"fallback-large-v1\",code=\"200\"}";
    let primary = model_calls(100.0, 0.23, true);
    let Some(w) = provider_world(
        "rb-prov-sharenan",
        ("major", "Partial System Outage"),
        ("none", "All Systems Operational"),
        true,
        // The service registered the fallback's series when it started (at 0).
        &[(FALLBACK_CALLS, 0.0)],
        Box::new(move |now: &Now| {
            if routes_to_fallback(now, true) {
                vec![]
            } else {
                primary(now)
            }
        }),
    )
    .await
    else {
        return;
    };
    w.error_rate_reads(0.23).await;
    let mut inputs = provider_inputs(&w);
    set_input(&mut inputs, "share_timeout", "25s");
    let r = w
        .run(&inputs, &["approve_fallback=yes", "escalate=done"])
        .await;
    r.assert_exit(1);
    r.assert_error(
        "fallback_share",
        &[
            "inconclusive",
            "the query gave NaN",
            "sum(rate(model_api_calls_total{",
        ],
    );
    r.assert_undone(&["fallback"]);
    assert_env(&env_now(&w.sc).await, &[("FALLBACK_MODEL", None)]);
    assert_mirrors(&r, "provider-outage/fallback-share-nan.yaml");
}

// ------------------------------------------------------------------------------------------
// rate-limit

/// Stand-in of the ops channel's incoming webhook (`{"text": ...}` → 200 `ok`).
async fn ops_webhook(posts: Arc<Mutex<Vec<Value>>>) -> String {
    stand_in(move |r: Req| {
        let posts = posts.clone();
        async move {
            if r.method != "POST" || r.path != "/hooks/T0/B0/test" || !r.body["text"].is_string() {
                return (400, json!({"ok": false, "error": "invalid_payload"}));
            }
            posts.lock().expect("lock").push(r.body.clone());
            (200, json!("ok"))
        }
    })
    .await
}

const QUOTA_LIMIT: f64 = 1_000_000.0;

/// Token consumption per second and the quota: the primary provider burns `before` tokens/s;
/// once the circuit breaker is on and the architect role goes to the secondary provider on
/// every pod, `after` of them stay on the primary and the rest move to the secondary. The
/// quota gauges are the tokens used so far (starting at `used` of the limit) and the limit.
fn token_traffic(before: f64, after: f64) -> Box<Rates> {
    Box::new(move |now: &Now| {
        let eased = breaker_live(now);
        let primary = if eased { after } else { before };
        let secondary = if eased {
            (before - after).max(0.0)
        } else {
            0.0
        };
        vec![
            ("model_api_tokens_total{provider=\"primary\"}", primary),
            ("model_api_quota_used_tokens{provider=\"primary\"}", primary),
            ("model_api_tokens_total{provider=\"secondary\"}", secondary),
            (
                "model_api_quota_used_tokens{provider=\"secondary\"}",
                secondary,
            ),
        ]
    })
}

/// The circuit breaker and the architect's routing are live on every pod.
fn breaker_live(now: &Now) -> bool {
    now.rolled_out
        && env_var(&now.d, "ENABLE_CIRCUIT_BREAKER").as_deref() == Some("true")
        && env_var(&now.d, "FALLBACK_ROLE").as_deref() == Some("architect")
        && env_var(&now.d, "FALLBACK_ROLE_MODEL").as_deref() == Some("secondary-large-v1")
}

fn quota_initial(used: f64) -> Vec<(&'static str, f64)> {
    vec![
        (
            "model_api_quota_used_tokens{provider=\"primary\"}",
            used * QUOTA_LIMIT,
        ),
        (
            "model_api_quota_limit_tokens{provider=\"primary\"}",
            QUOTA_LIMIT,
        ),
        (
            "model_api_quota_used_tokens{provider=\"secondary\"}",
            0.1 * QUOTA_LIMIT,
        ),
        (
            "model_api_quota_limit_tokens{provider=\"secondary\"}",
            QUOTA_LIMIT,
        ),
    ]
}

/// The runbook's example: the rate, only while the counter is exported (`and`).
fn consumption_query(t: &Traffic) -> String {
    let tokens = format!(
        "model_api_tokens_total{{{},provider=\"primary\"}}",
        t.label()
    );
    format!("sum(rate({tokens}[10s]) and {tokens})")
}

fn rate_limit_inputs(w: &RateLimitWorld, verify_timeout: &str) -> Vec<(&'static str, String)> {
    let l = w.traffic.label();
    vec![
        ("namespace", s(w.sc.ns())),
        ("deployment", s("flow-engine")),
        ("metrics_url", w.sc.prometheus_url()),
        (
            "quota_usage_query",
            format!(
                "topk(1, model_api_quota_used_tokens{{{l}}} / model_api_quota_limit_tokens{{{l}}})"
            ),
        ),
        ("consumption_query", consumption_query(&w.traffic)),
        ("role", s("architect")),
        ("secondary_model", s("secondary-large-v1")),
        ("verify_timeout", s(verify_timeout)),
        ("poll_interval", s("2s")),
    ]
}

struct RateLimitWorld {
    sc: Scenario,
    traffic: Traffic,
    webhook: String,
    posts: Arc<Mutex<Vec<Value>>>,
}

impl RateLimitWorld {
    /// Runs rate-limit with `inputs` (`rate_limit_inputs`, changed or not).
    async fn run(&self, inputs: &[(&str, String)], answers: &[&str]) -> Run {
        self.sc
            .run(
                "rate-limit",
                inputs,
                answers,
                &[("OPS_WEBHOOK_URL", &self.webhook)],
            )
            .await
    }
}

/// `exported_after_change`: whether the token counters are still exported once the change is
/// live on every pod.
async fn rate_limit_world(
    prefix: &str,
    before: f64,
    after: f64,
    exported_after_change: bool,
) -> Option<RateLimitWorld> {
    let sc = flow_service(prefix).await?;
    let traffic = Traffic::start_exporting(
        &sc,
        &quota_initial(0.82),
        token_traffic(before, after),
        Box::new(move |now: &Now, series: &str| {
            exported_after_change
                || !(series.starts_with("model_api_tokens_total") && breaker_live(now))
        }),
    );
    let posts = Arc::new(Mutex::new(vec![]));
    let webhook = format!("{}/hooks/T0/B0/test", ops_webhook(posts.clone()).await);
    traffic
        .wait_for(consumption_query(&traffic), move |v| {
            (v - before).abs() < 5.0
        })
        .await;
    Some(RateLimitWorld {
        sc,
        traffic,
        webhook,
        posts,
    })
}

/// Mirrors drill rate-limit/recover-with-breaker: the primary's quota is at 82 % and burns
/// 240 tokens/s; the circuit breaker and the routing of the architect role (a real rollout)
/// bring the primary's consumption to 118.5 tokens/s, which Prometheus measures.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_breaker_and_routing_lower_the_consumption_prometheus_measures() {
    let Some(w) = rate_limit_world("rb-quota-ok", 240.0, 118.5, true).await else {
        return;
    };
    let r = w
        .run(
            &rate_limit_inputs(&w, "40s"),
            &[
                "reset_time=23:59 UTC (in 8h 23m)",
                "approve=yes",
                "tell=done",
                "record=done",
            ],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.capture("quota", "provider"), "primary");
    let before = r
        .capture("consumption_before", "rate")
        .as_f64()
        .expect("a number");
    let after = r
        .capture("consumption_falls", "rate")
        .as_f64()
        .expect("a number");
    assert!((before - 240.0).abs() < 10.0, "{before}");
    assert!(after <= before * 0.75, "{before} → {after}");
    let posts = w.posts.lock().expect("lock").clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("quota at 82%"),
        "{posts:?}"
    );
    assert_env(
        &env_now(&w.sc).await,
        &[
            ("ENABLE_CIRCUIT_BREAKER", Some("true")),
            ("CIRCUIT_BREAKER_THRESHOLD", Some("85")),
            ("FALLBACK_ROLE", Some("architect")),
        ],
    );
    assert_mirrors(&r, "rate-limit/recover-with-breaker.yaml");
}

/// Mirrors drill rate-limit/consumption-keeps-rising: a runaway client burns the quota
/// whatever the service does (240, then 265 tokens/s); after `verify_timeout` the runbook
/// switches the breaker and the routing off again (a real rollout back) and escalates.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_undoes_the_breaker_and_the_routing_when_consumption_keeps_rising() {
    let Some(w) = rate_limit_world("rb-quota-runaway", 240.0, 265.0, true).await else {
        return;
    };
    let r = w
        .run(
            &rate_limit_inputs(&w, "12s"),
            &["reset_time=in 3h", "approve=yes", "escalate=done"],
        )
        .await;
    r.assert_exit(1);
    r.assert_error("consumption_falls", &["verify failed"]);
    r.assert_undone(&["breaker", "route"]);
    assert_env(
        &env_now(&w.sc).await,
        &[
            ("ENABLE_CIRCUIT_BREAKER", None),
            ("CIRCUIT_BREAKER_THRESHOLD", None),
            ("FALLBACK_ROLE", None),
            ("FALLBACK_ROLE_MODEL", None),
        ],
    );
    assert_mirrors(&r, "rate-limit/consumption-keeps-rising.yaml");
}

/// Mirrors drill rate-limit/quota-no-data: the quota query names a metric that is not
/// scraped (`model_api_quota_used_token`, a typo): the real Prometheus answers an empty
/// vector. That is no data, not a quota under the threshold: `quota` fails saying so with
/// the query as sent, and nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_stops_when_the_real_prometheus_has_no_quota_series() {
    let Some(w) = rate_limit_world("rb-quota-typo", 240.0, 118.5, true).await else {
        return;
    };
    let l = w.traffic.label();
    let typo =
        format!("topk(1, model_api_quota_used_token{{{l}}} / model_api_quota_limit_tokens{{{l}}})");
    let mut inputs = rate_limit_inputs(&w, "40s");
    set_input(&mut inputs, "quota_usage_query", &typo);
    let r = w.run(&inputs, &["escalate=done"]).await;
    r.assert_exit(1);
    r.assert_error("quota", &["no data: the query returned no series", &typo]);
    assert!(w.posts.lock().expect("lock").is_empty());
    assert_env(&env_now(&w.sc).await, &[("ENABLE_CIRCUIT_BREAKER", None)]);
    assert_mirrors(&r, "rate-limit/quota-no-data.yaml");
}

/// Mirrors drill rate-limit/consumption-no-data: once the breaker and the routing are live,
/// the restarted pods no longer export the token counter; the real Prometheus marks the
/// series stale and, when its samples leave the query's window, answers an empty vector. No
/// data is not a fall in consumption: after `verify_timeout` `consumption_falls` fails saying
/// "no data" with the query, both switches are undone and the run escalates.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_does_not_take_a_vanished_token_counter_for_a_fall_in_consumption() {
    let Some(w) = rate_limit_world("rb-quota-gone", 240.0, 118.5, false).await else {
        return;
    };
    let r = w
        .run(
            &rate_limit_inputs(&w, "25s"),
            &["reset_time=in 3h", "approve=yes", "escalate=done"],
        )
        .await;
    r.assert_exit(1);
    r.assert_error(
        "consumption_falls",
        &[
            "no data: the query returned no series",
            &consumption_query(&w.traffic),
        ],
    );
    r.assert_undone(&["breaker", "route"]);
    assert_env(&env_now(&w.sc).await, &[("ENABLE_CIRCUIT_BREAKER", None)]);
    assert_mirrors(&r, "rate-limit/consumption-no-data.yaml");
}
