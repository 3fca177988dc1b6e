//! Runs the real `runbook` binary the way a user does, with a time limit: bad input must never
//! hang it, and a panic is a failure whatever the exit code.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the workspace, one level above the crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit code and stderr, the form the diagnostics snapshots take.
    pub fn exit_and_stderr(&self) -> String {
        format!("exit code: {}\n---\n{}", self.code, self.stderr)
    }
}

/// No check of a file should take anywhere near this long, even in a debug build.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `runbook ARGS...` in `dir` with colours off and `env` added, and fails the test when it
/// panics, is killed by a signal, or runs past the time limit.
pub fn runbook_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the runbook binary starts");
    // Read both pipes on threads so that a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for runbook") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`runbook {}` hung for more than {LIMIT:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_t.join().expect("stdout reader");
    let stderr = err_t.join().expect("stderr reader");
    assert!(
        !stderr.contains("panicked"),
        "`runbook {}` panicked:\n{stderr}",
        args.join(" ")
    );
    let code = status
        .code()
        .unwrap_or_else(|| panic!("`runbook {}` was killed: {status}", args.join(" ")));
    Output {
        code,
        stdout,
        stderr,
    }
}

/// Runs `runbook ARGS...` from the repository root.
pub fn runbook(args: &[&str]) -> Output {
    runbook_in(&root(), args, &[])
}
