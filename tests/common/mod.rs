//! Helpers shared by the integration tests: the real binary, temp dirs, journals, and a real
//! HTTP server on loopback.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The `runbook` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runbook"))
}

/// A test whose prerequisite is missing: under `CI` it fails (CI may not skip), otherwise it
/// says SKIPPED on the process's stderr, not through `eprintln!` (the harness captures that
/// one and shows it only for failing tests or with `--nocapture`, so a skip would be silent).
pub fn skip_or_fail(msg: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test may not skip: {msg}");
    }
    let bar = "!".repeat(72);
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n{bar}\nSKIPPED: {msg}\n{bar}\n").as_bytes(),
    );
}

/// Runs `cmd` (stdout discarded, stderr to `stderr_file`) under GNU time and returns its exit
/// code and peak resident memory in bytes, or `None` (after `skip_or_fail`) without
/// `/usr/bin/time`. Measured by a small parent, not by this process's `wait4`: a child forked
/// from the test binary counts the test binary's pages until its exec, which would be noise.
pub fn run_measured(cmd: &Command, stderr_file: &Path) -> Option<(i32, u64)> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        skip_or_fail("/usr/bin/time is not installed (Debian: apt-get install -y time)");
        return None;
    }
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut m = Command::new(time);
    m.arg("-f").arg("%M").arg("-o").arg(out.path());
    m.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => m.env(k, v),
            None => m.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        m.current_dir(d);
    }
    let status = m
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_file).unwrap())
        .status()
        .unwrap();
    let report = std::fs::read_to_string(out.path()).unwrap();
    // GNU time writes "Command exited with non-zero status N" before the number when it fails.
    let kb: u64 = report
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time wrote {report:?}"));
    Some((status.code().unwrap_or(-1), kb * 1024))
}

/// A command for the binary with a clean, predictable environment.
pub fn runbook(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("RUNBOOK_OPERATOR", "tester")
        .stdin(Stdio::null());
    c
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The single journal under a journal dir.
pub fn journal_path(journal_dir: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(journal_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(
        runs.len(),
        1,
        "expected one run in {}",
        journal_dir.display()
    );
    runs[0].join("journal.jsonl")
}

/// Every event of a journal (skipping the blank lines a killed run leaves at its end); panics
/// on a line that is not JSON.
pub fn events(journal: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(journal).unwrap();
    text.trim_end_matches('\n')
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad journal line {l}: {e}")))
        .collect()
}

pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

pub fn run_id(events: &[Value]) -> String {
    events[0]["run_id"].as_str().unwrap().to_string()
}

/// Waits (up to 30 s) until a run directory under `runs` holds the file `name` (a test hook's
/// `paused-*` marker) and returns its path; fails if `child` ends first.
pub fn wait_for_marker(runs: &Path, name: &str, child: &mut std::process::Child) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(name))
            .find(|m| m.exists());
        if let Some(m) = found {
            return m;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {name} appeared"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never appeared under {}",
            runs.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A scripted response: status, body and extra headers.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Self {
        Reply {
            status,
            body: v.to_string(),
            headers: vec![],
        }
    }

    /// A body given as it goes on the wire (JSON escapes chosen by the test).
    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            body: body.to_string(),
            headers: vec![],
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Reply {
            status,
            body: String::new(),
            headers: vec![("location".into(), location.to_string())],
        }
    }
}

/// Each path with the replies still to give.
type Routes = Vec<(String, VecDeque<Reply>)>;

/// What the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Shown in a failing assertion's `{:?}` of what the server saw.
    #[allow(dead_code)]
    pub method: String,
    /// The path as received (percent-encoded as it was sent).
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A real HTTP server on 127.0.0.1, answering each path from a queue of replies (the last
/// reply repeats), and recording every request.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn start(routes: Vec<(&str, Vec<Reply>)>) -> Server {
        let routes: Arc<Mutex<Routes>> = Arc::new(Mutex::new(
            routes
                .into_iter()
                .map(|(p, r)| (p.to_string(), r.into_iter().collect()))
                .collect(),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                    let routes = routes.clone();
                    let seen = seen2.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = axum::body::to_bytes(body, 16 << 20)
                            .await
                            .unwrap_or_default();
                        seen.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            query: parts.uri.query().map(str::to_string),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect(),
                            body: bytes.to_vec(),
                        });
                        let mut routes = routes.lock().unwrap();
                        let reply = routes
                            .iter_mut()
                            .find(|(p, _)| p == parts.uri.path())
                            .and_then(|(_, q)| {
                                if q.len() > 1 {
                                    q.pop_front()
                                } else {
                                    q.front().cloned()
                                }
                            });
                        let reply = reply.unwrap_or(Reply {
                            status: 404,
                            body: "no route".into(),
                            headers: vec![],
                        });
                        let mut b = axum::response::Response::builder()
                            .status(reply.status)
                            .header("content-type", "application/json");
                        for (k, v) in &reply.headers {
                            b = b.header(k.as_str(), v.as_str());
                        }
                        b.body(axum::body::Body::from(reply.body)).unwrap()
                    }
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        Server {
            addr: rx.recv().unwrap(),
            seen,
        }
    }
}

/// The repository's root (`runbooks/`, `tests/fixtures/`, ...).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory where the binary runs (its working directory): runbook files are written
/// in it and runs journal under `runs`.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A work directory whose `rb.yaml` is `runbook`.
    pub fn with_runbook(runbook: &str) -> Workdir {
        let w = Workdir::new();
        w.write("rb.yaml", runbook);
        w
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write(self.path(), name, text)
    }

    /// Whether the file `name` exists (a step's mark).
    pub fn has(&self, name: &str) -> bool {
        self.path().join(name).exists()
    }

    /// The binary in this directory (`runbook(dir)`), for any command line.
    pub fn cmd(&self) -> Command {
        runbook(self.path())
    }

    /// Runs `cmd` to its end.
    pub fn output(&self, cmd: &mut Command) -> Ran {
        let o = cmd.output().unwrap();
        let (stdout, stderr) = text(&o);
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    /// The command `runbook run <file> --journal-dir runs --non-interactive`.
    pub fn run_cmd(&self, file: &str) -> Command {
        let mut c = self.cmd();
        c.args(["run", file, "--journal-dir", "runs", "--non-interactive"]);
        c
    }

    /// `runbook run <file> --journal-dir runs --non-interactive <args>`.
    pub fn run(&self, file: &str, args: &[&str]) -> Ran {
        self.output(self.run_cmd(file).args(args))
    }

    /// A training run of the built-in `k8s-rollback` against its drill `recovers`, virtual
    /// time (`--fast`), non-interactive, with an `--answer` for each of `answers`.
    pub fn train_k8s_rollback(&self, answers: &[&str]) -> Ran {
        let root = repo_root();
        let mut c = self.cmd();
        c.arg("run")
            .arg(root.join("runbooks/k8s-rollback.yaml"))
            .arg("--world")
            .arg(root.join("runbooks/drills/k8s-rollback/recovers.yaml"))
            .args(["--fast", "--non-interactive", "--reason", "x", "--yes"])
            .args(["--journal-dir", "runs"]);
        for a in answers {
            c.args(["--answer", a]);
        }
        self.output(&mut c)
    }

    /// `runbook resume <id> --journal-dir runs <args>`.
    pub fn resume(&self, id: &str, args: &[&str]) -> Ran {
        self.output(
            self.cmd()
                .args(["resume", id, "--journal-dir", "runs"])
                .args(args),
        )
    }

    /// The events of the one run under `runs`.
    pub fn events(&self) -> Vec<Value> {
        events(&journal_path(&self.path().join("runs")))
    }
}

/// What one invocation of the binary did.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// It exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Ran {
        assert_eq!(
            self.code, code,
            "exit {}, not {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Its stderr says each of `needles`.
    pub fn assert_says(&self, needles: &[&str]) -> &Ran {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr does not say {n:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// The `step_skipped` event of `step`, if it was skipped.
pub fn skipped<'a>(events: &'a [Value], step: &str) -> Option<&'a Value> {
    of_kind(events, "step_skipped")
        .into_iter()
        .find(|e| e["step"] == step)
}
