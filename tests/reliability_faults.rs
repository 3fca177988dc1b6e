//! Faults at the boundary: an HTTP server that resets connections, stalls past the timeout,
//! returns invalid JSON or a 10 MB body; a child that ignores SIGTERM. Each is a failed (or
//! retried) attempt with a clear message and a complete journal, never a crash or a hang.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A raw TCP server on loopback: `handle(n, stream)` serves the n-th connection (from 0).
struct RawServer {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
}

impl RawServer {
    fn start(handle: fn(usize, TcpStream)) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = c.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || handle(n, stream));
            }
        });
        RawServer { addr, conns }
    }

    fn url(&self) -> String {
        format!("http://{}/x", self.addr)
    }

    fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// Reads one request's head.
fn read_head(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// Closes with RST instead of FIN: SO_LINGER on, zero seconds.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

fn respond(s: &mut TcpStream, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn http_runbook(url: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: faulty, title: A faulty server }}
steps:
  - id: get
    safety: read-only
    http: {{ request: {{ method: GET, url: "{url}" }} }}
{extra}
"#
    )
}

/// Runs the binary, killing it if it has not ended within a minute (a hang is a failure, not
/// a measurement: the limit is far above any correct run).
fn run_bounded(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut child = runbook(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("runbook {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn run_rb(dir: &std::path::Path, rb: &str) -> (Output, Vec<Value>) {
    write(dir, "rb.yaml", rb);
    let out = run_bounded(
        dir,
        &[
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ],
    );
    let (_, err) = text(&out);
    assert!(!err.contains("panicked"), "{err}");
    let ev = events(&journal_path(&dir.join("runs")));
    assert_eq!(of_kind(&ev, "run_finished").len(), 1, "journal incomplete");
    (out, ev)
}

fn attempt_errors(ev: &[Value]) -> Vec<String> {
    of_kind(ev, "attempt_finished")
        .iter()
        .map(|e| e["error"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn connection_resets_are_failed_attempts_that_are_retried() {
    // Resets every connection: three failed attempts, a clear message, exit 1.
    let srv = RawServer::start(|_, mut s| {
        read_head(&mut s);
        reset(s);
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(
        dir.path(),
        &http_runbook(&srv.url(), "    retry: { attempts: 3, delay: 10ms }"),
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors = attempt_errors(&ev);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("GET http://")),
        "{errors:?}"
    );
    assert_eq!(srv.connections(), 3);

    // Resets the first two, then answers: the retries carry the step through.
    let srv = RawServer::start(|n, mut s| {
        read_head(&mut s);
        if n < 2 {
            reset(s);
        } else {
            respond(&mut s, br#"{"ok": true}"#);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(
        dir.path(),
        &http_runbook(
            &srv.url(),
            "    retry: { attempts: 3, delay: 10ms }\n    verify: [ { that: \"result.json.ok\" } ]",
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(of_kind(&ev, "attempt_finished").len(), 3);
}

#[test]
fn a_server_that_stalls_hits_the_step_timeout() {
    // Never answers.
    let srv = RawServer::start(|_, mut s| {
        read_head(&mut s);
        std::thread::sleep(Duration::from_secs(120));
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(
        dir.path(),
        &http_runbook(
            &srv.url(),
            "    timeout: 300ms\n    retry: { attempts: 2, delay: 10ms }",
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let errors = attempt_errors(&ev);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("timed out")), "{errors:?}");
    assert_eq!(srv.connections(), 2);

    // Sends the head and half the body, then stalls.
    let srv = RawServer::start(|_, mut s| {
        read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"a\":",
        );
        std::thread::sleep(Duration::from_secs(120));
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(dir.path(), &http_runbook(&srv.url(), "    timeout: 300ms"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let errors = attempt_errors(&ev);
    assert!(errors[0].contains("timed out"), "{errors:?}");
}

#[test]
fn invalid_json_is_data_not_a_crash() {
    let srv = RawServer::start(|_, mut s| {
        read_head(&mut s);
        respond(&mut s, br#"{"status": "ok", "#);
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(
        dir.path(),
        &http_runbook(
            &srv.url(),
            "    capture: { raw: \"result.body\" }\n    verify: [ { that: \"result.json.status == 'ok'\" } ]",
        ),
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let fin = of_kind(&ev, "attempt_finished");
    assert_eq!(fin[0]["result"]["json"], Value::Null);
    assert_eq!(fin[0]["result"]["body"], r#"{"status": "ok", "#);
    // A body that is not JSON leaves `result.json` null: the check cannot see a status, so it
    // is inconclusive (no data), never a pass and never "the value was wrong".
    let verify = of_kind(&ev, "verify_evaluated");
    assert_eq!(verify[0]["ok"], false);
    assert_eq!(verify[0]["verdict"], "inconclusive", "{err}");
    assert!(err.contains("verify inconclusive"), "{err}");
    assert!(err.contains("no data"), "{err}");
}

#[test]
fn a_ten_megabyte_body_is_cut_and_the_journal_stays_small() {
    let srv = RawServer::start(|_, mut s| {
        read_head(&mut s);
        let body = vec![b'x'; 10 << 20];
        respond(&mut s, &body);
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(
        dir.path(),
        &http_runbook(
            &srv.url(),
            "    capture: { size: \"result.body | length\" }\n    verify: [ { that: \"result.status == 200\" } ]",
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let size = of_kind(&ev, "capture")[0]["value"].as_u64().unwrap();
    assert!(
        (1 << 20..(1 << 20) + 200).contains(&size),
        "kept {size} bytes of the body"
    );
    let journal = std::fs::metadata(journal_path(&dir.path().join("runs")))
        .unwrap()
        .len();
    assert!(journal < 64 * 1024, "journal is {journal} bytes");
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

fn wait_dead(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

const IGNORES_TERM: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: stubborn, title: A child that ignores SIGTERM }
steps:
  - id: stubborn
    safety: read-only
    shell:
      script: |
        trap '' TERM
        sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
        echo $! > pid2
        echo $$ > pid
        while :; do sleep 0.05; done
    timeout: 500ms
"#;

#[test]
fn a_child_ignoring_sigterm_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = run_rb(dir.path(), IGNORES_TERM);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    for f in ["pid", "pid2"] {
        let pid: i32 = std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_dead(pid),
            "a process that ignored SIGTERM survived ({f})"
        );
    }
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "failed");
}

#[test]
fn ctrl_c_kills_a_child_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &IGNORES_TERM.replace("timeout: 500ms", "timeout: 30s"),
    );
    let mut child = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("pid2").exists() || !dir.path().join("pid").exists() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for f in ["pid", "pid2"] {
        let pid: i32 = std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_dead(pid),
            "a process that ignored SIGTERM survived ({f})"
        );
    }
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "aborted");
}
