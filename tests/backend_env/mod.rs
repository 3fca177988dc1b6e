//! Shared by the integration tests of the real backends: finds the test environment that
//! `tests/env/up.sh` started (a Kubernetes API server, a Docker-compatible engine), and runs
//! the `runbook` binary (through `common`) on fixture runbooks against it.
//!
//! Only the dedicated variables are trusted (`RUNBOOK_TEST_KUBECONFIG`, and `DOCKER_HOST`
//! only with `RUNBOOK_TESTENV_COMPOSE=1`), never a developer's own `KUBECONFIG`: these tests
//! create and delete things. Without an environment a test skips, loudly; with `CI` set it
//! fails instead, so that CI can never pass by skipping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::common;

/// The variables of a running stack, to hand to child processes.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub vars: BTreeMap<String, String>,
}

impl TestEnv {
    pub fn var(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or_default()
    }
}

fn state_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("RUNBOOK_TESTENV").unwrap_or_else(|_| "/var/tmp/runbook-testenv".into()),
    )
}

/// The exports of `$RUNBOOK_TESTENV/env.sh` (written by tests/env/up.sh).
fn env_file_vars() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(state_dir().join("env.sh")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect()
}

/// This process's variables when they describe a stack (`flag` set), else env.sh's.
fn vars_for(flag: &str, keys: &[&str]) -> Option<BTreeMap<String, String>> {
    let from_env = std::env::var(flag).ok().as_deref() == Some("1");
    let source: BTreeMap<String, String> = if from_env {
        keys.iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect()
    } else {
        let f = env_file_vars();
        if f.get(flag).map(String::as_str) != Some("1") {
            return None;
        }
        f
    };
    let picked: BTreeMap<String, String> = keys
        .iter()
        .filter_map(|k| source.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Some(picked)
}

/// Skips (or, under CI, fails) a test whose environment is missing.
fn absent(what: &str, why: &str) -> Option<TestEnv> {
    let msg = format!(
        "{what} test environment unavailable ({why}); start it with `eval \"$(tests/env/up.sh)\"`"
    );
    crate::common::skip_or_fail(&msg);
    None
}

/// The Kubernetes API server of the test environment, if it is up.
pub fn k8s() -> Option<TestEnv> {
    let Some(vars) = vars_for(
        "RUNBOOK_TESTENV_K8S",
        &["RUNBOOK_TEST_KUBECONFIG", "RUNBOOK_TEST_KUBECONFIG_NOPERM"],
    ) else {
        return absent(
            "Kubernetes",
            "RUNBOOK_TESTENV_K8S is not 1 and env.sh has no k8s stack",
        );
    };
    let kubeconfig = vars
        .get("RUNBOOK_TEST_KUBECONFIG")
        .cloned()
        .unwrap_or_default();
    let text = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_start_matches("https://").to_string());
    match server {
        Some(addr) if answers(&addr) => Some(TestEnv { vars }),
        Some(addr) => absent(
            "Kubernetes",
            &format!(
                "nothing answers on {addr}{}",
                daemon_report(&["etcd", "kube-apiserver", "kube-controller-manager"])
            ),
        ),
        None => absent(
            "Kubernetes",
            &format!("no server in kubeconfig `{kubeconfig}`"),
        ),
    }
}

/// Does something accept connections on `addr`? Tries for a few seconds: an API server that
/// is busy (a loaded CI machine) may not accept at once.
fn answers(addr: &str) -> bool {
    for _ in 0..20 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    false
}

/// For a stack that was up and is not any more: whether each daemon's recorded PID is still
/// alive, and the tail of its log, so that a CI log says why without a second run.
fn daemon_report(names: &[&str]) -> String {
    let run = state_dir().join("run");
    let mut out = String::new();
    for name in names {
        let pid = std::fs::read_to_string(run.join(format!("{name}.pid"))).unwrap_or_default();
        let pid = pid.trim();
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        let log = std::fs::read_to_string(run.join(format!("{name}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out.push_str(&format!(
            "\n--- {name}: pid {} {} ---\n",
            if pid.is_empty() { "(none)" } else { pid },
            if alive { "alive" } else { "gone" }
        ));
        for l in tail.into_iter().rev() {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The Docker-compatible engine and Compose CLI of the test environment, if it is up.
pub fn compose() -> Option<TestEnv> {
    let Some(vars) = vars_for(
        "RUNBOOK_TESTENV_COMPOSE",
        &[
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "CONTAINERS_CONF",
            "CONTAINERS_STORAGE_CONF",
            "DOCKER_BUILDKIT",
            "PATH",
        ],
    ) else {
        return absent(
            "Compose",
            "RUNBOOK_TESTENV_COMPOSE is not 1 and env.sh has no compose stack",
        );
    };
    let host = vars.get("DOCKER_HOST").cloned().unwrap_or_default();
    let Some(sock) = host.strip_prefix("unix://") else {
        return absent(
            "Compose",
            &format!("DOCKER_HOST `{host}` is not a unix socket"),
        );
    };
    if std::os::unix::net::UnixStream::connect(sock).is_err() {
        return absent(
            "Compose",
            &format!("nothing answers on {sock}{}", daemon_report(&["podman"])),
        );
    }
    Some(TestEnv { vars })
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 10_000)
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// What one `runbook` invocation did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
    pub run_dir: Option<PathBuf>,
}

impl Run {
    fn finished(&self, step: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "step_finished" && e["step"] == step)
            .unwrap_or_else(|| panic!("no step_finished for `{step}`\n{}", self.log()))
    }

    pub fn outcome(&self, step: &str) -> String {
        self.finished(step)["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn error(&self, step: &str) -> String {
        self.finished(step)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The result of the step's last attempt.
    pub fn result(&self, step: &str) -> Value {
        self.events
            .iter()
            .rfind(|e| e["event"] == "attempt_finished" && e["step"] == step)
            .map(|e| e["result"].clone())
            .unwrap_or_else(|| panic!("no attempt of `{step}`\n{}", self.log()))
    }

    pub fn capture(&self, step: &str, name: &str) -> Value {
        self.events
            .iter()
            .find(|e| e["event"] == "capture" && e["step"] == step && e["name"] == name)
            .map(|e| e["value"].clone())
            .unwrap_or_else(|| panic!("no capture {step}.{name}\n{}", self.log()))
    }

    pub fn undo(&self, step: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "undo_finished" && e["step"] == step)
            .unwrap_or_else(|| panic!("no undo of `{step}`\n{}", self.log()))
    }

    /// Everything, for assertion messages.
    pub fn log(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.code, 0, "the run failed\n{}", self.log());
    }

    /// The run exited with `code` (1: a step failed).
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.code,
            code,
            "the run exited {}, not {code}\n{}",
            self.code,
            self.log()
        );
    }

    /// The step finished with `outcome` (`succeeded`, `failed`, ...).
    pub fn assert_outcome(&self, step: &str, outcome: &str) {
        assert_eq!(
            self.outcome(step),
            outcome,
            "the outcome of `{step}` (error: {:?})\n{}",
            self.error(step),
            self.log()
        );
    }

    /// The step's error says each of `needles`.
    pub fn assert_error(&self, step: &str, needles: &[&str]) {
        let err = self.error(step);
        for n in needles {
            assert!(
                err.contains(n),
                "the error of `{step}` does not say {n:?}: {err:?}\n{}",
                self.log()
            );
        }
    }

    /// Each step's undo ran and succeeded.
    pub fn assert_undone(&self, steps: &[&str]) {
        for step in steps {
            assert_eq!(
                self.undo(step)["ok"],
                true,
                "the undo of `{step}`: {}\n{}",
                self.undo(step),
                self.log()
            );
        }
    }
}

/// Runs `runbook run <file> --non-interactive --yes --reason .. [--answer ..] [--input ..]` with the
/// environment's variables, journaling under `journal_dir` (a fresh directory per run).
pub fn run(
    env: &TestEnv,
    file: &Path,
    journal_dir: &Path,
    inputs: &[(&str, &str)],
    answers: &[&str],
    extra_env: &[(&str, &str)],
) -> Run {
    let mut args: Vec<String> = vec![
        "run".into(),
        file.display().to_string(),
        "--non-interactive".into(),
        "--yes".into(),
        "--reason".into(),
        "integration test".into(),
        "--journal-dir".into(),
        journal_dir.display().to_string(),
    ];
    for (k, v) in inputs {
        args.push("--input".into());
        args.push(format!("{k}={v}"));
    }
    for a in answers {
        args.push("--answer".into());
        args.push(a.to_string());
    }
    let mut r = runbook(env, &args, extra_env);
    assert!(
        journal_dir.is_dir(),
        "the run wrote no journal under {}\n{}",
        journal_dir.display(),
        r.log()
    );
    r.run_dir =
        Some(common::journal_path(journal_dir)).and_then(|j| j.parent().map(Path::to_path_buf));
    r.events = common::events(&r.run_dir.clone().unwrap_or_default().join("journal.jsonl"));
    r
}

/// Runs any `runbook` command line (e.g. `plan --live`) with the environment's variables.
pub fn runbook<S: AsRef<std::ffi::OsStr>>(
    env: &TestEnv,
    args: &[S],
    extra_env: &[(&str, &str)],
) -> Run {
    let mut cmd = common::runbook(Path::new(env!("CARGO_MANIFEST_DIR")));
    cmd.args(args);
    // A developer's own cluster must never be touched: only the test kubeconfig is visible.
    cmd.env_remove("KUBECONFIG");
    if let Some(k) = env.vars.get("RUNBOOK_TEST_KUBECONFIG") {
        cmd.env("KUBECONFIG", k);
    }
    cmd.envs(&env.vars).envs(extra_env.iter().copied());
    let out = cmd.output().expect("the runbook binary runs");
    let (stdout, stderr) = common::text(&out);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        events: vec![],
        run_dir: None,
    }
}

/// The whole journal as text, for "this never appears anywhere" checks.
pub fn journal_text(run: &Run) -> String {
    run.run_dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("journal.jsonl")).ok())
        .unwrap_or_default()
}

/// The real Prometheus of the test environment (tests/env/prom-up.sh), if it is up: its URL
/// (`RUNBOOK_TEST_PROMETHEUS_URL`) and the directory of its file-based targets
/// (`RUNBOOK_TEST_PROMETHEUS_TARGETS`).
pub fn prometheus() -> Option<TestEnv> {
    let Some(vars) = vars_for(
        "RUNBOOK_TESTENV_PROM",
        &[
            "RUNBOOK_TEST_PROMETHEUS_URL",
            "RUNBOOK_TEST_PROMETHEUS_TARGETS",
        ],
    ) else {
        return absent(
            "Prometheus",
            "RUNBOOK_TESTENV_PROM is not 1 and env.sh has no Prometheus",
        );
    };
    let url = vars
        .get("RUNBOOK_TEST_PROMETHEUS_URL")
        .cloned()
        .unwrap_or_default();
    let addr = url.trim_start_matches("http://").to_string();
    if !answers(&addr) {
        return absent(
            "Prometheus",
            &format!(
                "nothing answers on {addr}{}",
                daemon_report(&["prometheus"])
            ),
        );
    }
    Some(TestEnv { vars })
}

/// A metrics endpoint on loopback whose text the test sets, scraped by the test
/// environment's Prometheus (every second) for as long as it lives. Every series it exposes
/// carries the label `test="<name>"`, so tests never read each other's series.
pub struct Exporter {
    pub name: String,
    text: std::sync::Arc<std::sync::Mutex<String>>,
    target_file: PathBuf,
    prom_url: String,
}

impl Exporter {
    pub fn start(env: &TestEnv, prefix: &str) -> Exporter {
        use std::io::{Read, Write};
        let name = unique(prefix);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let t2 = text.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let t3 = t2.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut buf = [0u8; 8192];
                    let mut req = Vec::new();
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = t3.lock().unwrap().clone();
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        let dir = PathBuf::from(env.var("RUNBOOK_TEST_PROMETHEUS_TARGETS"));
        let target_file = dir.join(format!("{name}.json"));
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(
            &tmp,
            format!(r#"[{{"targets":["{addr}"],"labels":{{"test":"{name}"}}}}]"#),
        )
        .unwrap();
        // Renamed into place: Prometheus never reads a half-written file.
        std::fs::rename(&tmp, &target_file).unwrap();
        Exporter {
            name,
            text,
            target_file,
            prom_url: env.var("RUNBOOK_TEST_PROMETHEUS_URL").to_string(),
        }
    }

    /// Sets the exposition text (Prometheus text format), e.g. `rb_rate 0.002\n`.
    pub fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }

    /// Waits until Prometheus answers `query` (an instant query) with a result for which
    /// `ok` holds (the `data.result` array), and returns it. Panics after 60 s with the last
    /// answer: Prometheus scrapes every second, so this only waits for a scrape or two.
    pub fn wait_for(&self, query: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = prom_query(&self.prom_url, query);
            if ok(&last["data"]["result"]) {
                return last["data"]["result"].clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("Prometheus never answered `{query}` as expected; last answer: {last}");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.target_file);
    }
}

/// An instant query against Prometheus's HTTP API (a plain HTTP/1.0 GET).
pub fn prom_query(prom_url: &str, query: &str) -> Value {
    use std::io::{Read, Write};
    let addr = prom_url.trim_start_matches("http://").trim_end_matches('/');
    let enc: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Value::Null;
    };
    let _ = write!(
        s,
        "GET /api/v1/query?query={enc} HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}
