//! Shared by the report tests: the real binary run on fixture runbooks in a scratch
//! directory, a loopback HTTP service for steps to poll, and insta settings that hide what
//! changes from run to run (times, durations, run ids, hosts, ports, paths).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The zone the tests run the binary in: a half-hour offset shows that times are converted,
/// not just labelled.
pub const TZ: &str = "Asia/Kolkata";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_runbook")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/report")
        .join(name)
}

/// A scratch directory holding copies of fixture runbooks; the binary runs inside it, so the
/// journal lands in `.runbook/runs` there and journaled paths are relative.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// One finished `runbook run`.
pub struct Run {
    pub code: i32,
    pub id: String,
    pub journal: PathBuf,
    pub stderr: String,
}

impl Workspace {
    pub fn new(fixtures: &[&str]) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in fixtures {
            std::fs::copy(fixture(f), dir.path().join(f)).expect("copy fixture");
        }
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.path())
            .env("TZ", TZ)
            .env_remove("RUNBOOK_OPERATOR")
            .env("NO_COLOR", "1");
        c
    }

    pub fn runbook(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the runbook binary")
    }

    /// `runbook run FILE --non-interactive --operator alice EXTRA...`.
    pub fn run(&self, file: &str, extra: &[&str]) -> Run {
        let mut args = vec!["run", file, "--non-interactive", "--operator", "alice"];
        args.extend_from_slice(extra);
        let out = self.runbook(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let journal = stderr
            .lines()
            .find_map(|l| l.strip_prefix("journal: "))
            .unwrap_or_else(|| panic!("no journal line in:\n{stderr}"))
            .trim()
            .to_string();
        let id = Path::new(&journal)
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .expect("run id from the journal path");
        Run {
            code: out.status.code().unwrap_or(-1),
            id,
            journal: self.path().join(journal),
            stderr,
        }
    }

    /// `runbook report ARGS...`, which must succeed; returns stdout.
    pub fn report(&self, args: &[&str]) -> String {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        let out = self.runbook(&all);
        assert!(
            out.status.success(),
            "runbook {all:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("the report is UTF-8")
    }

    /// Snapshot settings hiding everything that changes between runs.
    pub fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/snapshots"));
        s.set_prepend_module_to_snapshot(false);
        let tmp = self.path().to_string_lossy().into_owned();
        s.add_filter(&regex::escape(&tmp), "[tmp]");
        s.add_filter(r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-f]{4}", "[run-id]");
        s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}", "[ts]");
        s.add_filter(r"\b\d{4}-\d{2}-\d{2}\b", "[date]");
        s.add_filter(r"\b\d{2}:\d{2}:\d{2}\b", "[time]");
        s.add_filter(r"\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?s\b|\b\d+ms\b", "[dur]");
        s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
        s.add_filter(r"(started by \w+ on )\S+( \()", "$1[host]$2");
        s.add_filter(r"( on )\S+(, (?:non-)?interactive run)", "$1[host]$2");
        s.add_filter(r"runbook \d+\.\d+\.\d+\S*", "runbook [version]");
        for field in [
            ".duration_ms",
            ".time_to_verified_ms",
            ".steps[].duration_ms",
            ".steps[].verification.duration_ms",
        ] {
            s.add_redaction(field, "[ms]");
        }
        s.add_redaction(".host", "[host]");
        s.add_redaction(".engine_version", "[version]");
        s
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A loopback HTTP service: `/health` answers 503 twice, then 200; `/echo` answers with the
/// Authorization header it received (so a leak of the token would show in the evidence).
pub struct Service {
    pub url: String,
}

impl Service {
    pub fn start() -> Service {
        use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::get, Router};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let calls = Arc::new(AtomicU32::new(0));
        let state = calls;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = Router::new()
                    .route(
                        "/health",
                        get(|State(n): State<Arc<AtomicU32>>| async move {
                            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                                (StatusCode::SERVICE_UNAVAILABLE, "warming up")
                            } else {
                                (StatusCode::OK, "ok")
                            }
                        }),
                    )
                    .route(
                        "/echo",
                        get(|h: HeaderMap| async move {
                            let auth = h
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("none")
                                .to_string();
                            format!("you sent: {auth}")
                        }),
                    )
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        Service { url }
    }
}
