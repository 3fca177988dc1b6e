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
    NoProgress, Output, ShellBackend, ShellRequest,
};
use runbook::drill::spec::DrillSpec;
use runbook::drill::world::{build::build, World};
use runbook::exec::clock::{Clock, SystemClock, VirtualClock};
use runbook::spec::ComposeBackendSpec;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

// ---- What must differ, named once ----------------------------------------------------------

/// Result fields whose values differ by nature (times, durations, identities); their presence
/// and type are still compared.
/// (Durations inside messages: `without_durations`; transport causes: `same_message`.)
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
    ]);
    let silent = silent_server();
    let refused = closed_port();
    let ok = srv.url("/ok");
    let down = srv.url("/down");
    let slow = format!("http://{silent}/slow");
    let gone = format!("http://127.0.0.1:{refused}/");
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
"#
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
    ];
    for (case, req, timeout) in cases {
        let r = answer(real.send(&req, &sides.real(timeout)).await);
        let s = answer(w.send(&req, &sides.sim(timeout)).await);
        let (r, s) = rep.compare(case, r, s);
        rep.values(case, &r, &s);
        rep.same(case, "json", &r.result["json"], &s.result["json"]);
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
