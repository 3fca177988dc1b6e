//! Shared by the integration tests of the real backends: finds the test environment that
//! `tests/env/up.sh` started (a Kubernetes API server, a Docker-compatible engine), and runs
//! the `runbook` binary (through `common`) on fixture runbooks against it.
//!
//! Only the dedicated variables are trusted (`RUNBOOK_TEST_KUBECONFIG`, and `DOCKER_HOST`
//! only with `RUNBOOK_TESTENV_COMPOSE=1`), never a developer's own `KUBECONFIG`: these tests
//! create and delete things. Without an environment a test skips, loudly; with `CI` set it
//! fails instead, so that CI can never pass by skipping.

#![allow(dead_code)]

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
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test may not skip: {msg}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
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
