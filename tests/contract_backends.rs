//! Contract tests: the drill world answers like the real backends. Each case makes the same
//! call, from equivalent starting states, through the backend traits the runner uses, once
//! against the real backend (real processes, a loopback HTTP server, tests/env's Compose and
//! Kubernetes API server) and once against the simulated world, and compares: success or
//! failure, the error class and message, the result's keys and JSON types, and the state it
//! leaves (read back through the same verbs). Whatever must differ is named once, below.
//! A divergence is fixed in the simulator (or in the real backend when it is the wrong one),
//! never here.

use crate::backend_env;
use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runbook::backends::{
    ActionError, CallCtx, ComposeBackend, ComposeCall, ErrorKind, HttpBackend, HttpRequest,
    KubeCall, KubernetesBackend, NoProgress, Output, ShellBackend, ShellRequest,
};
use runbook::drill::spec::DrillSpec;
use runbook::drill::world::{build::build, World};
use runbook::exec::clock::{Clock, SystemClock, VirtualClock};
use runbook::spec::{ComposeBackendSpec, KubernetesBackendSpec};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

// ---- What must differ, named once ----------------------------------------------------------

/// Result fields whose values differ by nature (times, durations, identities); their presence
/// and type are still compared.
/// (Durations inside messages: `without_durations`; transport causes: `same_message`.)
/// Kubernetes objects: `metadata.uid`, `metadata.resourceVersion`, `metadata.creationTimestamp`
/// and the conditions' `lastUpdateTime` / `lastTransitionTime` are identities and times too;
/// the Kubernetes cases compare what a runbook reads of an object (`deployment_state`), so
/// these are compared by presence and type only.
const VARYING: &[&str] = &["duration_ms", "elapsed_ms"];

/// Result fields whose keys are data, not shape (a response's headers, a body's JSON, labels,
/// annotations, environment maps): only their JSON type is compared.
const DATA: &[&str] = &[
    "headers",
    "json",
    "metadata.labels",
    "metadata.annotations",
    "spec.selector.matchLabels",
    "spec.template.metadata.labels",
    "spec.template.metadata.annotations",
    "items[].metadata.labels",
    "items[].metadata.annotations",
    "items[].spec.selector.matchLabels",
    "items[].spec.template.metadata.labels",
    "items[].spec.template.metadata.annotations",
    "data",
];

/// Fields the real backend returns that the simulator does not model (docs/drills.md lists
/// them per verb). A prefix covers everything under it.
const NOT_MODELLED: &[&str] = &[];

// ---- Comparison --------------------------------------------------------------------------

/// Messages are compared whole, except for the cause of a transport error: the operating
/// system words it (`tcp connect error: Connection refused (os error 111)`), a drill names it
/// (`connection refused`); the simulated cause must appear in the real one.
fn same_message(real: &Answer, sim: &Answer) -> bool {
    if without_durations(&real.message) == without_durations(&sim.message) {
        return true;
    }
    const SENDING: &str = "error sending request for url (";
    if real.kind != Some(ErrorKind::Transport) {
        return false;
    }
    let split = |m: &str| -> Option<(String, String)> {
        let i = m.find(SENDING)?;
        let j = m[i..].find("): ")? + i + 3;
        Some((m[..j].to_string(), m[j..].to_lowercase()))
    };
    match (split(&real.message), split(&sim.message)) {
        (Some((rh, rc)), Some((sh, sc))) => rh == sh && rc.contains(&sc),
        _ => false,
    }
}

/// Cases whose failure the engine words itself: Docker says `pull access denied for X`,
/// podman `initializing source docker://X: pinging container registry ...`. Their messages are
/// compared up to the CLI's last line (`... exited with code 1: `).
const ENGINE_WORDED: &[&str] = &["compose pull (not in a registry)"];

/// Durations in messages (`timed out after 1.0s`) are times: compared as `<duration>`.
fn without_durations(m: &str) -> String {
    m.split(' ')
        .map(|w| {
            let core = w.trim_end_matches([';', ',', ')', ':']);
            let digits = core.trim_end_matches(char::is_alphabetic);
            let unit = &core[digits.len()..];
            let is_duration = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                && ["ms", "s", "m", "h"].contains(&unit);
            if is_duration {
                w.replacen(core, "<duration>", 1)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One answer of a backend, as the runner sees it.
#[derive(Debug)]
struct Answer {
    kind: Option<ErrorKind>,
    message: String,
    result: Value,
}

fn answer(r: Result<Output, ActionError>) -> Answer {
    match r {
        Ok(o) => Answer {
            kind: None,
            message: String::new(),
            result: o.result,
        },
        Err(e) => Answer {
            kind: Some(e.kind),
            message: e.message,
            result: e.result.unwrap_or(Value::Null),
        },
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path of a JSON value with its type; array items share the path `name[]`.
fn shape(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    if !path.is_empty() {
        out.insert(path.to_string(), json_type(v));
    }
    if DATA.contains(&path) {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                shape(x, &p, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                shape(x, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn not_modelled(path: &str) -> bool {
    NOT_MODELLED.iter().any(|p| {
        path == *p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}[]"))
    })
}

/// The divergences between a real and a simulated answer to the same call.
fn diverges(real: &Answer, sim: &Answer) -> Vec<String> {
    let mut d = vec![];
    if real.kind != sim.kind {
        d.push(format!(
            "outcome: real {:?} ({}), simulated {:?} ({})",
            real.kind, real.message, sim.kind, sim.message
        ));
        return d;
    }
    if !same_message(real, sim) {
        d.push(format!(
            "message:\n      real:      {}\n      simulated: {}",
            real.message, sim.message
        ));
    }
    let (mut r, mut s) = (BTreeMap::new(), BTreeMap::new());
    shape(&real.result, "", &mut r);
    shape(&sim.result, "", &mut s);
    for (path, t) in &s {
        match r.get(path) {
            None => d.push(format!(
                "result: `{path}` ({t}) only in the simulated result"
            )),
            Some(rt) if rt != t => {
                d.push(format!("result: `{path}` is {rt} for real, {t} simulated"))
            }
            _ => {}
        }
    }
    for (path, t) in &r {
        if !s.contains_key(path) && !not_modelled(path) {
            d.push(format!(
                "result: `{path}` ({t}) missing from the simulated result"
            ));
        }
    }
    d
}

/// The cases run so far and their divergences; the test fails listing all of them.
#[derive(Default)]
struct Report {
    cases: Vec<String>,
    divergences: Vec<String>,
}

impl Report {
    fn compare(&mut self, case: &str, real: Answer, mut sim: Answer) -> (Answer, Answer) {
        if ENGINE_WORDED.contains(&case) {
            let head = |m: &str| {
                m.find("exited with code")
                    .and_then(|i| m[i..].find(": ").map(|j| i + j + 2))
            };
            if let (Some(r), Some(s)) = (head(&real.message), head(&sim.message)) {
                if real.message[..r] == sim.message[..s] {
                    sim.message = real.message.clone();
                }
            }
        }
        self.cases.push(case.to_string());
        // With --nocapture: what each side answered.
        eprintln!(
            "{case}:\n  real:      {:?} {}\n  simulated: {:?} {}",
            real.kind, real.message, sim.kind, sim.message
        );
        for d in diverges(&real, &sim) {
            self.divergences.push(format!("{case}: {d}"));
        }
        (real, sim)
    }

    /// Every top-level scalar of the two results must agree, except the `VARYING` ones.
    fn values(&mut self, case: &str, real: &Answer, sim: &Answer) {
        let (Some(r), Some(s)) = (real.result.as_object(), sim.result.as_object()) else {
            return;
        };
        for (k, rv) in r {
            let scalar = !rv.is_object() && !rv.is_array();
            if scalar && !VARYING.contains(&k.as_str()) {
                let sv = s.get(k).unwrap_or(&Value::Null);
                self.same(case, k, rv, sv);
            }
        }
    }

    /// A value both sides must agree on (the state a call left behind).
    fn same(&mut self, case: &str, what: &str, real: &Value, sim: &Value) {
        if real != sim {
            self.divergences
                .push(format!("{case}: {what}: real {real}, simulated {sim}"));
        }
    }

    fn assert_none(&self) {
        assert!(
            self.divergences.is_empty(),
            "{} divergence(s) in {} case(s):\n  {}",
            self.divergences.len(),
            self.cases.len(),
            self.divergences.join("\n  ")
        );
    }
}

// ---- The two sides ---------------------------------------------------------------------------

fn start() -> chrono::DateTime<chrono::Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn world(yaml: &str) -> World {
    let text = format!(
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: {{ name: contract }}\nrunbook: x.yaml\n{yaml}"
    );
    let doc = runbook::yaml::parse("contract.yaml", text.as_bytes()).unwrap();
    let spec: DrillSpec = serde_json::from_value(doc.value).unwrap();
    let (state, problems) = build(&spec, start());
    assert!(problems.is_empty(), "{problems:?}");
    World::new(state)
}

fn ctx(clock: Arc<dyn Clock>, dir: &std::path::Path, timeout: Option<Duration>) -> CallCtx {
    CallCtx {
        step: "contract".into(),
        attempt: 1,
        deadline: timeout.map(|t| clock.now() + chrono::Duration::from_std(t).unwrap()),
        clock,
        cancel: CancellationToken::new(),
        progress: Arc::new(NoProgress),
        run_dir: dir.to_path_buf(),
        base_dir: dir.to_path_buf(),
        spawned: None,
    }
}

struct Sides {
    dir: tempfile::TempDir,
    virt: Arc<VirtualClock>,
}

impl Sides {
    fn new() -> Self {
        Sides {
            dir: tempfile::tempdir().unwrap(),
            virt: Arc::new(VirtualClock::new(start())),
        }
    }

    fn real(&self, timeout: Option<Duration>) -> CallCtx {
        ctx(Arc::new(SystemClock), self.dir.path(), timeout)
    }

    fn sim(&self, timeout: Option<Duration>) -> CallCtx {
        ctx(self.virt.clone(), self.dir.path(), timeout)
    }
}

// ---- Shell -----------------------------------------------------------------------------------

fn argv(a: &[&str]) -> ShellRequest {
    ShellRequest {
        argv: a.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn shell_answers_like_real_processes() {
    let sides = Sides::new();
    let w = world(
        r#"
world:
  shell:
    - match: { argv: [sh, -c, "*exit 3"] }
      respond: { exit: 3, stderr: "boom\n" }
    - match: { argv: [sh, -c, "echo*"] }
      respond: { stdout: "{\"ok\": true}\n" }
    - match: { argv: [sleep, "5"] }
      respond: { takes: 5s }
"#,
    );
    let real = runbook::backends::shell::ProcessShell;
    let mut rep = Report::default();
    let cases: Vec<(&str, ShellRequest, Option<Duration>)> = vec![
        (
            "shell ok, JSON stdout",
            argv(&["sh", "-c", "echo '{\"ok\": true}'"]),
            None,
        ),
        (
            "shell exit 3",
            argv(&["sh", "-c", "echo boom >&2; exit 3"]),
            None,
        ),
        (
            "shell exit 3 expected",
            ShellRequest {
                expect_exit: vec![3],
                ..argv(&["sh", "-c", "echo boom >&2; exit 3"])
            },
            None,
        ),
        (
            "shell timeout",
            argv(&["sleep", "5"]),
            Some(Duration::from_secs(1)),
        ),
    ];
    for (case, req, timeout) in cases {
        let r = answer(real.run(&req, &sides.real(timeout)).await);
        let s = answer(w.run(&req, &sides.sim(timeout)).await);
        let (r, s) = rep.compare(case, r, s);
        rep.values(case, &r, &s);
        rep.same(case, "json", &r.result["json"], &s.result["json"]);
    }
    rep.assert_none();
}

// ---- HTTP ------------------------------------------------------------------------------------

/// A loopback server that accepts connections and never answers (for timeouts).
fn silent_server() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = vec![];
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    addr
}

/// A second loopback server answering `301` to `to` (another origin than the first server).
fn srv2_url(to: &str) -> (String, common::Server) {
    let srv = common::Server::start(vec![("/away", vec![common::Reply::redirect(301, to)])]);
    (srv.url("/away"), srv)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn http_answers_like_a_real_server() {
    let sides = Sides::new();
    let srv = common::Server::start(vec![
        (
            "/ok",
            vec![common::Reply::json(200, json!({"status": "ok"}))],
        ),
        (
            "/down",
            vec![common::Reply {
                status: 503,
                body: "unavailable".into(),
                headers: vec![],
            }],
        ),
        ("/moved", vec![common::Reply::redirect(302, "/ok")]),
        ("/loop", vec![common::Reply::redirect(307, "/loop")]),
    ]);
    let silent = silent_server();
    let refused = closed_port();
    let ok = srv.url("/ok");
    let down = srv.url("/down");
    let slow = format!("http://{silent}/slow");
    let gone = format!("http://127.0.0.1:{refused}/");
    let moved = srv.url("/moved");
    let looping = srv.url("/loop");
    let away = srv2_url(&gone);
    let w = world(&format!(
        r#"
world:
  http:
    - match: {{ url: "{ok}" }}
      respond: {{ status: 200, json: {{ status: ok }} }}
    - match: {{ url: "{down}" }}
      respond: {{ status: 503, body: unavailable, headers: {{ content-type: application/json }} }}
    - match: {{ url: "{slow}" }}
      respond: {{ status: 200, takes: 10s }}
    - match: {{ url: "{gone}" }}
      respond: {{ error: connection refused }}
    - match: {{ url: "{moved}" }}
      respond: {{ status: 302, headers: {{ location: /ok, content-type: application/json }} }}
    - match: {{ url: "{looping}" }}
      respond: {{ status: 307, headers: {{ location: /loop, content-type: application/json }} }}
    - match: {{ url: "{}" }}
      respond: {{ status: 301, headers: {{ location: "{gone}", content-type: application/json }} }}
"#,
        away.0
    ));
    let real = runbook::backends::http::ReqwestHttp::default();
    let get = |url: &str, timeout: Option<Duration>| HttpRequest {
        method: "GET".into(),
        url: url.into(),
        timeout,
        ..Default::default()
    };
    let mut rep = Report::default();
    let cases = vec![
        ("http 200 JSON", get(&ok, None), None),
        ("http 503 text", get(&down, None), None),
        (
            "http timeout (request)",
            get(&slow, Some(Duration::from_secs(1))),
            None,
        ),
        (
            "http timeout (step)",
            get(&slow, None),
            Some(Duration::from_secs(1)),
        ),
        ("http connection refused", get(&gone, None), None),
        // Redirects: followed to the same origin by default, as the real client does.
        (
            "http redirect, same origin: followed",
            get(&moved, None),
            None,
        ),
        (
            "http redirect, never followed",
            HttpRequest {
                follow_redirects: runbook::spec::FollowRedirects::Never,
                ..get(&moved, None)
            },
            None,
        ),
        (
            "http redirect to another origin: not followed",
            get(&away.0, None),
            None,
        ),
        ("http redirect loop: stops", get(&looping, None), None),
    ];
    for (case, req, timeout) in cases {
        let r = answer(real.send(&req, &sides.real(timeout)).await);
        let s = answer(w.send(&req, &sides.sim(timeout)).await);
        let (r, s) = rep.compare(case, r, s);
        rep.values(case, &r, &s);
        rep.same(case, "json", &r.result["json"], &s.result["json"]);
        for f in ["redirect", "redirected_from"] {
            rep.same(case, f, &r.result[f], &s.result[f]);
        }
        rep.same(
            case,
            "content-type",
            &r.result["headers"]["content-type"],
            &s.result["headers"]["content-type"],
        );
    }
    rep.assert_none();
}

// ---- Compose ---------------------------------------------------------------------------------

/// Takes the project down and removes its extra tag when the test ends, passed or not.
struct ProjectGuard {
    env: backend_env::TestEnv,
    project: String,
    tag: String,
}

impl Drop for ProjectGuard {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = std::process::Command::new("docker")
                .args(args)
                .envs(&self.env.vars)
                .stdin(std::process::Stdio::null())
                .output();
        };
        docker(&[
            "compose",
            "-p",
            &self.project,
            "down",
            "--remove-orphans",
            "-t",
            "0",
        ]);
        docker(&["rmi", "-f", &self.tag]);
    }
}

const BASE_IMAGE: &str = "localhost/busybox:test";

#[tokio::test(flavor = "multi_thread")]
async fn compose_answers_like_the_real_cli() {
    let Some(env) = backend_env::compose() else {
        return;
    };
    // The real CLI reads DOCKER_HOST and friends from this process's environment. tests/run
    // exports them already; set one only when it differs, since other tests' threads of this
    // binary read the environment concurrently.
    for (k, v) in &env.vars {
        if std::env::var_os(k).as_deref() != Some(std::ffi::OsStr::new(v)) {
            std::env::set_var(k, v);
        }
    }
    let sides = Sides::new();
    let project = backend_env::unique("rbc");
    let tag = format!("localhost/{project}-alt:v2");
    let _guard = ProjectGuard {
        env: env.clone(),
        project: project.clone(),
        tag: tag.clone(),
    };
    let st = std::process::Command::new("docker")
        .args(["tag", BASE_IMAGE, &tag])
        .envs(&env.vars)
        .status()
        .unwrap();
    assert!(st.success(), "docker tag");
    let file = sides.dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: {BASE_IMAGE}\n    command: [sh, -c, \"echo web ready; exec sleep 3600\"]\n    stop_signal: SIGKILL\n  db:\n    image: {BASE_IMAGE}\n    command: [sh, -c, \"echo db ready; exec sleep 3600\"]\n    stop_signal: SIGKILL\n"
        ),
    )
    .unwrap();
    let w = world(&format!(
        r#"
world:
  compose:
    projects:
      {project}:
        services:
          web: {{ image: "{BASE_IMAGE}", state: absent, logs: "web ready" }}
          db: {{ image: "{BASE_IMAGE}", state: absent, logs: "db ready" }}
        unpullable_images: ["{BASE_IMAGE}"]
"#
    ));
    let target = ComposeBackendSpec {
        file: Some(file.display().to_string()),
        project: Some(project.clone()),
        ..Default::default()
    };
    let real = runbook::backends::compose::ComposeCli::default();
    let mut rep = Report::default();
    let cases: Vec<(&str, &str, Value, Option<Duration>)> = vec![
        ("compose ps, nothing up", "ps", json!({}), None),
        ("compose up", "up", json!({"wait": false}), None),
        ("compose ps", "ps", json!({}), None),
        (
            "compose ps of an unknown service",
            "ps",
            json!({"services": ["nope"]}),
            None,
        ),
        (
            "compose logs",
            "logs",
            json!({"services": ["web"], "tail": 5}),
            None,
        ),
        ("compose stop", "stop", json!({"services": ["web"]}), None),
        ("compose ps after stop", "ps", json!({}), None),
        (
            "compose restart",
            "restart",
            json!({"services": ["web"]}),
            None,
        ),
        ("compose ps after restart", "ps", json!({}), None),
        (
            "compose set_image",
            "set_image",
            json!({"service": "web", "image": tag}),
            None,
        ),
        (
            "compose ps after set_image",
            "ps",
            json!({"services": ["web"]}),
            None,
        ),
        (
            "compose set_image back",
            "set_image",
            json!({"service": "web", "image": BASE_IMAGE}),
            None,
        ),
        (
            "compose set_image of an unknown service",
            "set_image",
            json!({"service": "nope", "image": tag}),
            None,
        ),
        (
            "compose pull (not in a registry)",
            "pull",
            json!({"services": ["db"]}),
            None,
        ),
        (
            "compose restart, timeout",
            "restart",
            json!({}),
            Some(Duration::from_millis(1)),
        ),
        ("compose down", "down", json!({}), None),
        ("compose ps after down", "ps", json!({}), None),
        (
            "compose stop with nothing up",
            "stop",
            json!({"services": ["web"]}),
            None,
        ),
    ];
    for (case, verb, args, timeout) in cases {
        let call = ComposeCall::parse(verb, &args).unwrap();
        let r = answer(real.call(&target, &call, &sides.real(timeout)).await);
        let s = answer(ComposeBackend::call(&w, &target, &call, &sides.sim(timeout)).await);
        let (r, s) = rep.compare(case, r, s);
        for f in ["exit_code", "service", "image", "previous_image"] {
            rep.same(case, f, &r.result[f], &s.result[f]);
        }
        // The state: each service's state and image, as `ps` reports it.
        let rows = |a: &Answer| -> Value {
            a.result["services"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| json!([row["service"], row["state"], row["image"]]))
                        .collect()
                })
                .unwrap_or(Value::Null)
        };
        rep.same(
            case,
            "services (service, state, image)",
            &rows(&r),
            &rows(&s),
        );
    }
    rep.assert_none();
}
// ---- Kubernetes ------------------------------------------------------------------------------

/// What a runbook reads of a Deployment's state: images, env, replicas, revision, paused,
/// the annotations and labels set by the cases, the restart stamp's presence, the status
/// counts and the selector.
fn deployment_state(d: &Value) -> Value {
    let ctrs = &d["spec"]["template"]["spec"]["containers"];
    json!({
        "images": ctrs.as_array().map(|c| c.iter().map(|c| c["image"].clone()).collect::<Vec<_>>()),
        "env": ctrs[0]["env"],
        "replicas": d["spec"]["replicas"],
        "revision": d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "paused": d["spec"]["paused"],
        "team": d["metadata"]["annotations"]["team"],
        "tier": d["metadata"]["labels"]["tier"],
        "selector": d["spec"]["selector"],
        "template_labels": d["spec"]["template"]["metadata"]["labels"],
        "restarted": d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "status": [d["status"]["replicas"], d["status"]["updatedReplicas"], d["status"]["availableReplicas"]],
    })
}

/// What a runbook reads of a history: revision numbers, their images, which is current.
fn history_state(h: &Value) -> Value {
    json!({
        "current": h["current_revision"],
        "revisions": h["revisions"].as_array().map(|r| r.iter().map(|r| json!([r["revision"], r["images"], r["current"]])).collect::<Vec<_>>()),
    })
}

/// The real cluster's controller has seen the Deployment's latest spec (its
/// `observedGeneration` caught up), so that what follows reads a settled state. Polls a
/// bounded number of times; not a timed assertion.
async fn observed(
    real: &runbook::backends::kubernetes::KubeBackend,
    target: &KubernetesBackendSpec,
    sides: &Sides,
) {
    let get = KubeCall::parse("get", &json!({"kind": "Deployment", "name": "web"})).unwrap();
    for _ in 0..600 {
        let d = real
            .call(target, &get, &sides.real(None))
            .await
            .unwrap()
            .result;
        if d["status"]["observedGeneration"] == d["metadata"]["generation"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the controller never observed the Deployment's spec");
}

/// Every verb `runbook schema` lists for `kubernetes`, each with its error paths: not found
/// (404), forbidden (403, tests/env's no-permission kubeconfig; a `users:` entry in the world),
/// apply conflicts between field managers (409), invalid arguments (a bad selector, an
/// unknown container or revision, an invalid name: 422), an unknown apiVersion, a timeout.
#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_answers_like_the_real_api_server() {
    let Some(env) = backend_env::k8s() else {
        return;
    };
    runbook::backends::http::install_crypto_provider();
    let sides = Sides::new();
    let ns = backend_env::unique("rbk");
    let noperm_file = env.var("RUNBOOK_TEST_KUBECONFIG_NOPERM").to_string();
    let target = KubernetesBackendSpec {
        kubeconfig: Some(env.var("RUNBOOK_TEST_KUBECONFIG").to_string()),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    let noperm = KubernetesBackendSpec {
        kubeconfig: Some(noperm_file.clone()),
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    let real = runbook::backends::kubernetes::KubeBackend::new(Default::default());
    let call = |verb: &str, args: Value| KubeCall::parse(verb, &args).unwrap();
    let deployment = |image: &str| {
        json!({"manifest": {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}}})
    };
    // The real starting state: a namespace, and a Deployment at revision 2 (web:v1 → web:v2).
    let setup = [
        call(
            "apply",
            json!({"manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}}),
        ),
        call("apply", deployment("web:v1")),
        call("rollout_status", json!({"name": "web"})),
        call("set_image", json!({"name": "web", "image": "web:v2"})),
        call("rollout_status", json!({"name": "web"})),
    ];
    let _guard = NamespaceGuard(env.var("RUNBOOK_TEST_KUBECONFIG").to_string(), ns.clone());
    for c in &setup {
        real.call(&target, c, &sides.real(Some(Duration::from_secs(60))))
            .await
            .unwrap_or_else(|e| panic!("setup {:?}: {e}", c.verb()));
    }
    // The same state in the world; the no-permission kubeconfig's user has no rules.
    let w = world(&format!(
        r#"
world:
  kubernetes:
    deployments:
      - {{ namespace: {ns}, name: web, replicas: 2, labels: {{ app: web }}, revisions: ["web:v1", "web:v2"], rollout: {{ takes: 2s }} }}
    users:
      - {{ user: nobody, context: runbook-noperm, kubeconfig: "{noperm_file}" }}
"#
    ));
    let configmap = |manager: Option<&str>, value: &str, force: bool| {
        let mut a = json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": value}}, "force": force});
        if let Some(m) = manager {
            a["field_manager"] = json!(m);
        }
        a
    };
    let get_web = json!({"kind": "Deployment", "name": "web"});
    let web = json!({"name": "web"});
    let long = Some(Duration::from_secs(60));
    let short = Some(Duration::from_millis(1));
    // (case, target, verb, arguments, timeout); `None` as the verb: wait until the real
    // controller has observed the latest spec.
    type Case<'a> = (
        &'a str,
        &'a KubernetesBackendSpec,
        &'a str,
        Value,
        Option<Duration>,
    );
    let cases: Vec<Case> = vec![
        ("get", &target, "get", get_web.clone(), None),
        (
            "get, not found",
            &target,
            "get",
            json!({"kind": "Deployment", "name": "nope"}),
            None,
        ),
        (
            "get, by plural",
            &target,
            "get",
            json!({"kind": "deployments", "name": "web"}),
            None,
        ),
        (
            "get, unknown apiVersion",
            &target,
            "get",
            json!({"kind": "Deployment", "name": "web", "apiVersion": "extensions/v1beta9"}),
            None,
        ),
        (
            "get, kind not in apiVersion",
            &target,
            "get",
            json!({"kind": "ConfigMap", "name": "web", "apiVersion": "apps/v1"}),
            None,
        ),
        ("get, forbidden", &noperm, "get", get_web.clone(), None),
        (
            "list, forbidden",
            &noperm,
            "list",
            json!({"kind": "Deployment"}),
            None,
        ),
        (
            "set_image, forbidden",
            &noperm,
            "set_image",
            json!({"name": "web", "image": "web:v9"}),
            None,
        ),
        (
            "rollout_history, forbidden",
            &noperm,
            "rollout_history",
            web.clone(),
            None,
        ),
        (
            "apply, forbidden",
            &noperm,
            "apply",
            configmap(None, "x", false),
            None,
        ),
        (
            "delete, forbidden",
            &noperm,
            "delete",
            get_web.clone(),
            None,
        ),
        (
            "list",
            &target,
            "list",
            json!({"kind": "Deployment", "selector": "app=web"}),
            None,
        ),
        (
            "list, set-based selector",
            &target,
            "list",
            json!({"kind": "Deployment", "selector": "app in (web,api),!canary"}),
            None,
        ),
        (
            "list, no match",
            &target,
            "list",
            json!({"kind": "Deployment", "selector": "app notin (web)"}),
            None,
        ),
        (
            "list ConfigMaps, none",
            &target,
            "list",
            json!({"kind": "ConfigMap", "selector": "app=web"}),
            None,
        ),
        (
            "rollout_history",
            &target,
            "rollout_history",
            web.clone(),
            None,
        ),
        (
            "rollout_status, done",
            &target,
            "rollout_status",
            web.clone(),
            None,
        ),
        (
            "set_image",
            &target,
            "set_image",
            json!({"name": "web", "image": "web:v3"}),
            None,
        ),
        (
            "set_image, unknown container",
            &target,
            "set_image",
            json!({"name": "web", "container": "sidecar", "image": "web:v3"}),
            None,
        ),
        (
            "rollout_status",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "set_image, no change",
            &target,
            "set_image",
            json!({"name": "web", "image": "web:v3"}),
            None,
        ),
        (
            "rollout_history after set_image",
            &target,
            "rollout_history",
            web.clone(),
            None,
        ),
        ("rollout_undo", &target, "rollout_undo", web.clone(), None),
        (
            "rollout_status after undo",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "rollout_history after undo",
            &target,
            "rollout_history",
            web.clone(),
            None,
        ),
        (
            "rollout_undo, unknown revision",
            &target,
            "rollout_undo",
            json!({"name": "web", "to_revision": 99}),
            None,
        ),
        (
            "rollout_undo, to a revision",
            &target,
            "rollout_undo",
            json!({"name": "web", "to_revision": 1}),
            None,
        ),
        (
            "rollout_status after undo to 1",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "rollout_history after undo to 1",
            &target,
            "rollout_history",
            web.clone(),
            None,
        ),
        (
            "set_env",
            &target,
            "set_env",
            json!({"name": "web", "set": {"MODE": "fast"}}),
            None,
        ),
        (
            "set_env, unknown container",
            &target,
            "set_env",
            json!({"name": "web", "container": "sidecar", "set": {"MODE": "x"}}),
            None,
        ),
        (
            "rollout_status after set_env",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "scale",
            &target,
            "scale",
            json!({"name": "web", "replicas": 3}),
            None,
        ),
        (
            "rollout_status after scale",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        ("pause", &target, "pause", web.clone(), None),
        ("pause, already paused", &target, "pause", web.clone(), None),
        (
            "set_image while paused",
            &target,
            "set_image",
            json!({"name": "web", "image": "web:v4"}),
            None,
        ),
        ("(settle)", &target, "", Value::Null, None),
        (
            "rollout_status, paused: timeout",
            &target,
            "rollout_status",
            web.clone(),
            short,
        ),
        (
            "rollout_restart, paused",
            &target,
            "rollout_restart",
            web.clone(),
            None,
        ),
        (
            "rollout_undo, paused",
            &target,
            "rollout_undo",
            web.clone(),
            None,
        ),
        ("resume", &target, "resume", web.clone(), None),
        (
            "rollout_status after resume",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "rollout_restart",
            &target,
            "rollout_restart",
            web.clone(),
            None,
        ),
        (
            "rollout_status after restart",
            &target,
            "rollout_status",
            web.clone(),
            long,
        ),
        (
            "annotate",
            &target,
            "annotate",
            json!({"kind": "Deployment", "name": "web", "set": {"team": "sre"}}),
            None,
        ),
        (
            "label",
            &target,
            "label",
            json!({"kind": "Deployment", "name": "web", "set": {"tier": "web"}}),
            None,
        ),
        (
            "label, no change",
            &target,
            "label",
            json!({"kind": "Deployment", "name": "web", "set": {"tier": "web"}}),
            None,
        ),
        (
            "get after the changes",
            &target,
            "get",
            get_web.clone(),
            None,
        ),
        (
            "rollout_history at the end",
            &target,
            "rollout_history",
            web.clone(),
            None,
        ),
        (
            "apply a ConfigMap",
            &target,
            "apply",
            configmap(Some("other"), "slow", false),
            None,
        ),
        (
            "apply, conflict",
            &target,
            "apply",
            configmap(None, "fast", false),
            None,
        ),
        (
            "apply, same value: no conflict",
            &target,
            "apply",
            configmap(None, "slow", false),
            None,
        ),
        (
            "apply, forced",
            &target,
            "apply",
            configmap(None, "fast", true),
            None,
        ),
        (
            "apply by another manager, the same value: shared",
            &target,
            "apply",
            configmap(Some("other"), "fast", false),
            None,
        ),
        (
            "apply, two fields by a third manager",
            &target,
            "apply",
            json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast", "extra": "x"}}, "field_manager": "third"}),
            None,
        ),
        (
            "apply, conflicts with two managers",
            &target,
            "apply",
            json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "slow", "extra": "y"}}}),
            None,
        ),
        (
            "apply, a manager lets a field go",
            &target,
            "apply",
            json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}}, "field_manager": "third"}),
            None,
        ),
        (
            "apply, invalid name",
            &target,
            "apply",
            json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}, "data": {"a": "b"}}}),
            None,
        ),
        (
            "get a ConfigMap",
            &target,
            "get",
            json!({"kind": "ConfigMap", "name": "settings"}),
            None,
        ),
        (
            "annotate a ConfigMap",
            &target,
            "annotate",
            json!({"kind": "ConfigMap", "name": "settings", "set": {"team": "sre"}}),
            None,
        ),
        (
            "label a ConfigMap",
            &target,
            "label",
            json!({"kind": "ConfigMap", "name": "settings", "set": {"app": "web"}}),
            None,
        ),
        (
            "list ConfigMaps",
            &target,
            "list",
            json!({"kind": "ConfigMap", "selector": "app=web"}),
            None,
        ),
        (
            "label, not found",
            &target,
            "label",
            json!({"kind": "ConfigMap", "name": "nope", "set": {"a": "b"}}),
            None,
        ),
        (
            "delete a ConfigMap",
            &target,
            "delete",
            json!({"kind": "ConfigMap", "name": "settings"}),
            None,
        ),
        (
            "delete, not found",
            &target,
            "delete",
            json!({"kind": "ConfigMap", "name": "settings"}),
            None,
        ),
        (
            "delete the Deployment",
            &target,
            "delete",
            get_web.clone(),
            None,
        ),
        ("get, deleted", &target, "get", get_web.clone(), None),
        (
            "scale, deleted",
            &target,
            "scale",
            json!({"name": "web", "replicas": 1}),
            None,
        ),
        (
            "rollout_status, deleted",
            &target,
            "rollout_status",
            web.clone(),
            None,
        ),
    ];
    let mut rep = Report::default();
    let mut verbs = std::collections::BTreeSet::new();
    for (case, t, verb, args, timeout) in cases {
        if verb.is_empty() {
            observed(&real, &target, &sides).await;
            continue;
        }
        verbs.insert(verb);
        let c = call(verb, args);
        let r = answer(real.call(t, &c, &sides.real(timeout)).await);
        let s = answer(KubernetesBackend::call(&w, t, &c, &sides.sim(timeout)).await);
        let (r, s) = rep.compare(case, r, s);
        if r.kind.is_some() || s.kind.is_some() {
            continue;
        }
        match verb {
            "rollout_history" => rep.same(
                case,
                "history",
                &history_state(&r.result),
                &history_state(&s.result),
            ),
            "list" => rep.same(
                case,
                "items",
                &json!(r.result["items"]
                    .as_array()
                    .map(|i| i.iter().map(deployment_state).collect::<Vec<_>>())),
                &json!(s.result["items"]
                    .as_array()
                    .map(|i| i.iter().map(deployment_state).collect::<Vec<_>>())),
            ),
            _ if r.result["kind"] == "Deployment" => rep.same(
                case,
                "state",
                &deployment_state(&r.result),
                &deployment_state(&s.result),
            ),
            _ => {
                for f in ["data", "metadata"] {
                    let strip = |v: &Value| {
                        let mut v = v[f].clone();
                        if let Some(m) = v.as_object_mut() {
                            for k in ["uid", "resourceVersion", "creationTimestamp"] {
                                m.remove(k);
                            }
                        }
                        v
                    };
                    rep.same(case, f, &strip(&r.result), &strip(&s.result));
                }
            }
        }
    }
    // Every verb the schema lists was called.
    let listed: std::collections::BTreeSet<&str> =
        runbook::spec::KUBE_VERBS.iter().copied().collect();
    assert_eq!(verbs, listed, "verbs covered vs. the schema's");
    rep.assert_none();
}

/// Deletes the test's namespace when the test ends, passed or not.
struct NamespaceGuard(String, String);

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.1,
                "--kubeconfig",
                &self.0,
                "--wait=false",
            ])
            .output();
    }
}
