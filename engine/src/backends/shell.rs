//! Real processes. `argv` runs without a shell; scripts arrive here already as
//! `["sh", "-c", script]`. Each process leads its own session (setsid), hence its own process
//! group, so a timeout or an interrupt kills the whole tree, not only the child; and it has no
//! controlling terminal, so a child that opens `/dev/tty` (an ssh or sudo password prompt)
//! fails at once instead of being stopped by SIGTTIN while the run waits forever. Standard
//! input is never inherited.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::spawn::start_ticks;
use super::{ActionError, CallCtx, ErrorKind, Output, ShellBackend, ShellRequest};

/// Keep at most this much of each output stream (the tail).
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// Time a process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessShell;

/// Set on every step's process, naming the run and the step (a step's own `env` cannot
/// replace them): a process group left running by a runner killed before it journaled
/// `process_started` is still found by `resume` ([`marked_groups`]).
pub const RUN_ID_VAR: &str = "RUNBOOK_RUN_ID";
/// See [`RUN_ID_VAR`].
pub const STEP_ID_VAR: &str = "RUNBOOK_STEP_ID";

/// The request's variables with the run's and the step's marks (see [`RUN_ID_VAR`]).
fn marked_env(env: &[(String, String)], ctx: &CallCtx) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != RUN_ID_VAR && k != STEP_ID_VAR)
        .cloned()
        .collect();
    out.push((RUN_ID_VAR.into(), ctx.run_id()));
    out.push((STEP_ID_VAR.into(), ctx.step.clone()));
    out
}

/// The tail of a stream, with a count of what was dropped.
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
    dropped: usize,
}

impl Tail {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_OUTPUT {
            let cut = self.buf.len() - MAX_OUTPUT;
            self.buf.drain(..cut);
            self.dropped += cut;
        }
    }

    pub fn text(&self) -> String {
        let body = String::from_utf8_lossy(&self.buf).into_owned();
        if self.dropped > 0 {
            format!("[… {} bytes truncated …]\n{body}", self.dropped)
        } else {
            body
        }
    }
}

/// A line of output longer than this keeps its first and last `MAX_LINE / 2` bytes, with a
/// note of what was cut: memory stays bounded whatever a process prints (one 256 MB line
/// without a newline took 1 GB before).
pub const MAX_LINE: usize = 64 * 1024;

/// One line being read, bounded: the head, and a tail that keeps the most recent bytes.
#[derive(Default)]
struct LongLine {
    head: Vec<u8>,
    tail: Vec<u8>,
    cut: usize,
}

impl LongLine {
    fn push(&mut self, mut bytes: &[u8]) {
        let half = MAX_LINE / 2;
        if self.head.len() < half {
            let n = (half - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * half {
            let drop = self.tail.len() - half;
            self.tail.drain(..drop);
            self.cut += drop;
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// The line as kept; `take`s it, leaving an empty line.
    fn take(&mut self) -> Vec<u8> {
        let half = MAX_LINE / 2;
        if self.tail.len() > half {
            let drop = self.tail.len() - half;
            self.tail.drain(..drop);
            self.cut += drop;
        }
        let mut out = std::mem::take(&mut self.head);
        if self.cut > 0 {
            // Cut on a character boundary is not guaranteed; lossy decoding shows U+FFFD.
            out.extend_from_slice(
                format!("[… {} bytes of this line truncated …]", self.cut).as_bytes(),
            );
        }
        out.append(&mut self.tail);
        self.cut = 0;
        out
    }
}

/// Makes the child lead a session of its own (setsid): its own process group, which a
/// timeout or an interrupt kills whole, and no controlling terminal, so that opening
/// `/dev/tty` fails instead of stopping the child (and the run) on SIGTTIN.
pub fn own_session(cmd: &mut Command) {
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; it cannot
    // fail in a freshly forked child, which leads no process group yet.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 8 * 1024;

async fn pump<R: AsyncRead + Unpin>(mut r: R, stream: &'static str, ctx: CallCtx) -> Tail {
    // Read into spare capacity (`read_buf`), which is never zeroed: a buffered reader's
    // zero-filled buffer cost two 8 KiB fills a step, for processes that mostly print nothing.
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut tail = Tail::default();
    let mut line = LongLine::default();
    loop {
        buf.clear();
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut rest = &buf[..];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            line.push(&rest[..=i]);
            emit(&mut line, &mut tail, stream, &ctx);
            rest = &rest[i + 1..];
        }
        line.push(rest);
    }
    if !line.is_empty() {
        emit(&mut line, &mut tail, stream, &ctx);
    }
    tail
}

fn emit(line: &mut LongLine, tail: &mut Tail, stream: &'static str, ctx: &CallCtx) {
    let bytes = line.take();
    tail.push(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    ctx.progress
        .line(stream, text.trim_end_matches(['\n', '\r']));
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Is any process of the group still alive?
fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// Set by [`kill_running_groups`]: the process is exiting at once, no grace period.
static HARD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGTERM the group, then SIGKILL whatever is left after the grace period.
async fn kill_group(pgid: i32) {
    signal_group(pgid, libc::SIGTERM);
    let start = Instant::now();
    while group_alive(pgid)
        && start.elapsed() < KILL_GRACE
        && !HARD.load(std::sync::atomic::Ordering::SeqCst)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_group(pgid, libc::SIGKILL);
}

fn result(code: Option<i32>, stdout: &Tail, stderr: &Tail, started: Instant) -> Value {
    let out = stdout.text();
    let parsed = serde_json::from_str::<Value>(out.trim()).ok();
    let mut r = json!({
        "exit_code": code,
        "stdout": out,
        "stderr": stderr.text(),
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    if let Some(j) = parsed {
        r["json"] = j;
    }
    r
}

#[async_trait]
impl ShellBackend for ProcessShell {
    async fn run(&self, req: &ShellRequest, ctx: &CallCtx) -> Result<Output, ActionError> {
        let Some((program, args)) = req.argv.split_first() else {
            return Err(ActionError::new(ErrorKind::Invalid, "empty argv"));
        };
        let started = Instant::now();
        let env = marked_env(&req.env, ctx);
        let spawned = super::spawn::spawn_session(&super::spawn::SpawnRequest {
            program,
            args,
            env: &env,
            cwd: req.cwd.as_deref(),
            stdin: req.stdin.is_some(),
        })
        .map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::Invalid
            } else {
                ErrorKind::Failed
            };
            ActionError::new(kind, format!("cannot start `{program}`: {e}"))
        })?;
        let mut child = spawned.child;
        let pgid = child.id() as i32;
        // Make sure the group dies with us if the runner drops this future (timeout).
        let mut guard = GroupGuard::new(pgid);
        pause_at_spawn(ctx);
        if let (Some(tx), true) = (&ctx.spawned, pgid > 0) {
            let _ = tx.send(super::Spawn {
                pgid: pgid as u32,
                start_ticks: child.start_ticks(),
            });
        }

        if let (Some(input), Some(mut stdin)) = (&req.stdin, spawned.stdin) {
            let input = input.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(input.as_bytes()).await;
            });
        }
        let mut pumps = Pumps {
            out: Pump::Running(Box::pin(pump(spawned.stdout, "stdout", ctx.clone()))),
            err: Pump::Running(Box::pin(pump(spawned.stderr, "stderr", ctx.clone()))),
        };

        let deadline = sleep_opt(ctx.remaining());
        tokio::pin!(deadline);
        let waited = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                _ = ctx.cancel.cancelled() => break None,
                _ = &mut deadline => break None,
                // The output ended before the process did: go on waiting for it.
                _ = pumps.all(), if !pumps.done() => {}
            }
        };
        let status = match waited {
            Some(s) => s.map_err(|e| {
                ActionError::new(ErrorKind::Failed, format!("waiting for `{program}`: {e}"))
            })?,
            None => {
                // The time it ran, not counting the grace period the kill gives it.
                let ran = started.elapsed();
                kill_group(pgid).await;
                let _ = child.wait().await;
                pumps.all().await;
                let (stdout, stderr) = (pumps.out.take(), pumps.err.take());
                let r = result(None, &stdout, &stderr, started);
                let (kind, msg) = if ctx.cancel.is_cancelled() {
                    (
                        ErrorKind::Cancelled,
                        format!("`{program}` was interrupted; its process group was killed"),
                    )
                } else {
                    (
                        ErrorKind::Timeout,
                        format!(
                            "`{program}` timed out after {}; its process group was killed",
                            crate::model::fmt_duration(ran)
                        ),
                    )
                };
                return Err(ActionError::new(kind, msg).with_result(r));
            }
        };
        // The leader exited normally: what it left running in the background is its business.
        guard.release();
        // Output readers finish when every holder of the pipes is gone;
        // give background children a moment, then stop waiting for them.
        let _ = tokio::time::timeout(Duration::from_secs(2), pumps.stream(Stream::Out)).await;
        let stdout = pumps.out.take();
        let _ = tokio::time::timeout(Duration::from_secs(2), pumps.stream(Stream::Err)).await;
        let stderr = pumps.err.take();
        let code = status.code();
        let r = result(code, &stdout, &stderr, started);
        let allowed = if req.expect_exit.is_empty() {
            &[0][..]
        } else {
            &req.expect_exit[..]
        };
        match code {
            Some(c) if allowed.contains(&c) => Ok(r.into()),
            Some(c) => {
                let last = stderr.text();
                let last = last.trim().lines().last().unwrap_or("").to_string();
                let msg = if last.is_empty() {
                    format!("`{program}` exited with code {c}")
                } else {
                    format!("`{program}` exited with code {c}: {last}")
                };
                Err(ActionError::new(ErrorKind::Failed, msg).with_result(r))
            }
            None => Err(ActionError::new(
                ErrorKind::Failed,
                format!("`{program}` was killed by a signal"),
            )
            .with_result(r)),
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// A stream's pump: running, or done with the stream's tail.
enum Pump<'a> {
    Running(std::pin::Pin<Box<dyn std::future::Future<Output = Tail> + Send + 'a>>),
    Done(Tail),
}

impl Pump<'_> {
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        if let Pump::Running(f) = self {
            match f.as_mut().poll(cx) {
                Poll::Ready(tail) => *self = Pump::Done(tail),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    /// The tail read; for a stream still open (held by a background child after the
    /// process exited), a note saying it was not read further. Stops the pump.
    fn take(&mut self) -> Tail {
        match std::mem::replace(self, Pump::Done(Tail::default())) {
            Pump::Done(t) => t,
            Pump::Running(_) => Tail {
                buf: b"[output still open after the command exited; not read further]\n".to_vec(),
                dropped: 0,
            },
        }
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// The two output pumps of a running process, polled inside the step's own task together
/// with its wait (not spawned as tasks of their own): the process's exit and the end of its
/// output are then handled in one turn of the runtime instead of three. Every future here is
/// cancel-safe: the pumps' state lives in this struct, so a `select!` that drops `all` or
/// `stream` loses nothing.
struct Pumps<'a> {
    out: Pump<'a>,
    err: Pump<'a>,
}

impl Pumps<'_> {
    fn done(&self) -> bool {
        matches!((&self.out, &self.err), (Pump::Done(_), Pump::Done(_)))
    }

    /// Until both streams have ended.
    async fn all(&mut self) {
        std::future::poll_fn(|cx| {
            let out = self.out.poll(cx);
            let err = self.err.poll(cx);
            if out.is_ready() && err.is_ready() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Until one stream has ended (both are read meanwhile).
    async fn stream(&mut self, which: Stream) {
        std::future::poll_fn(|cx| {
            let out = self.out.poll(cx);
            let err = self.err.poll(cx);
            match which {
                Stream::Out => out,
                Stream::Err => err,
            }
        })
        .await
    }
}

/// The process groups of steps running now, for [`kill_running_groups`].
static RUNNING: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Kills a process group when dropped, unless it is already gone.
struct GroupGuard(i32);

impl GroupGuard {
    fn new(pgid: i32) -> Self {
        if pgid > 0 {
            if let Ok(mut r) = RUNNING.lock() {
                r.push(pgid);
            }
        }
        GroupGuard(pgid)
    }

    /// The group is no longer ours to kill.
    fn release(&mut self) {
        forget(self.0);
        self.0 = 0;
    }
}

fn forget(pgid: i32) {
    if let Ok(mut r) = RUNNING.lock() {
        r.retain(|p| *p != pgid);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if group_alive(self.0) {
            signal_group(self.0, libc::SIGKILL);
        }
        forget(self.0);
    }
}

/// SIGKILLs the process group of every step running now (a second Ctrl-C, SIGTERM or
/// SIGHUP: exit at once, leaving nothing behind, even children that ignore SIGTERM).
pub fn kill_running_groups() {
    HARD.store(true, std::sync::atomic::Ordering::SeqCst);
    let groups: Vec<i32> = RUNNING.lock().map(|r| r.clone()).unwrap_or_default();
    for g in groups {
        signal_group(g, libc::SIGKILL);
    }
}

/// This machine's host name, read once per process (every step's `process_started` records
/// it).
pub fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into())
    })
    .clone()
}

/// This boot of the kernel (`/proc/sys/kernel/random/boot_id`), empty when unknown. Read once
/// per process: a process lives within one boot.
pub fn boot_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// Is a process group journaled earlier (by this host, this boot) still alive? A leader that
/// is alive with another start time means the pid was reused: not the same group. Zombies do
/// not count.
pub fn journaled_group_alive(pgid: u32, leader_start: Option<u64>) -> bool {
    if pgid == 0 || pgid > i32::MAX as u32 {
        return false;
    }
    if let (Some(want), Some(now)) = (leader_start, start_ticks(pgid)) {
        if want != now {
            return false;
        }
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return group_alive(pgid as i32);
    };
    procs.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(live_group)
            == Some(pgid)
    })
}

/// The process group of process `pid` (field 5 of `/proc/<pid>/stat`), if the process is
/// alive: zombies and dead processes have none.
fn live_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields follow the last `)`.
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?;
    let pgrp = f.nth(1)?.parse().ok()?;
    (state != "Z" && state != "X").then_some(pgrp)
}

/// The process groups of this host whose processes carry the marks of `run_id` and `step`
/// (see [`RUN_ID_VAR`]), each with its leader's start time when the leader is alive. This
/// process and its own group are never among them. Reads `/proc/<pid>/environ`, which the
/// kernel shows to the same user only: another user's processes are not looked at.
pub fn marked_groups(run_id: &str, step: &str) -> Vec<(u32, Option<u64>)> {
    let run = format!("{RUN_ID_VAR}={run_id}");
    let step = format!("{STEP_ID_VAR}={step}");
    let me = std::process::id();
    // SAFETY: getpgrp takes nothing and cannot fail.
    let my_group = unsafe { libc::getpgrp() } as u32;
    let mut groups = std::collections::BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        if !vars.contains(&run.as_bytes()) || !vars.contains(&step.as_bytes()) {
            continue;
        }
        if let Some(g) = live_group(pid).filter(|g| *g > 0 && *g != my_group) {
            groups.insert(g);
        }
    }
    groups.into_iter().map(|g| (g, start_ticks(g))).collect()
}

/// The test hook of the suite that kills a runner between a step's spawn and its
/// `process_started` (docs/reliability.md): with `RUNBOOK_TEST_PAUSE_AT_SPAWN=<step>`, once
/// that step's process has started the runner creates `<run dir>/paused-spawn` and waits
/// until the file is removed. Debug builds only, like the emitter's pause hook.
#[cfg(debug_assertions)]
fn pause_at_spawn(ctx: &CallCtx) {
    if std::env::var("RUNBOOK_TEST_PAUSE_AT_SPAWN").ok().as_deref() != Some(ctx.step.as_str()) {
        return;
    }
    crate::exec::emitter::hold_at(&ctx.run_dir.join("paused-spawn"));
}

/// See above: release builds have no hook.
#[cfg(not(debug_assertions))]
fn pause_at_spawn(_ctx: &CallCtx) {}

/// Stops a journaled process group: SIGTERM, then SIGKILL after the grace period.
pub async fn kill_journaled_group(pgid: u32) {
    if pgid > 0 && pgid <= i32::MAX as u32 {
        kill_group(pgid as i32).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::backends::NoProgress;
    use crate::exec::clock::SystemClock;

    fn ctx(timeout: Option<Duration>) -> CallCtx {
        let clock = Arc::new(SystemClock);
        CallCtx {
            step: "s".into(),
            attempt: 1,
            deadline: timeout.map(|t| {
                crate::exec::clock::Clock::now(&*clock) + chrono::Duration::from_std(t).unwrap()
            }),
            clock,
            cancel: CancellationToken::new(),
            progress: Arc::new(NoProgress),
            run_dir: std::env::temp_dir(),
            base_dir: std::env::temp_dir(),
            spawned: None,
        }
    }

    fn script(s: &str) -> ShellRequest {
        ShellRequest {
            argv: vec!["sh".into(), "-c".into(), s.into()],
            ..ShellRequest::default()
        }
    }

    fn run(req: ShellRequest, ctx: CallCtx) -> Result<Output, ActionError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { ProcessShell.run(&req, &ctx).await })
    }

    #[test]
    fn a_steps_processes_carry_the_run_and_the_step_and_are_found_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("20261207T120000Z-marks-1a2b");
        let mut c = ctx(None);
        c.run_dir = run_dir;
        c.step = "call/inner".into();
        // The step's own variables cannot replace the marks.
        let mut req = script("echo \"$RUNBOOK_RUN_ID $RUNBOOK_STEP_ID $OTHER\"");
        req.env = vec![
            ("RUNBOOK_STEP_ID".into(), "forged".into()),
            ("RUNBOOK_RUN_ID".into(), "forged".into()),
            ("OTHER".into(), "kept".into()),
        ];
        let out = run(req, c.clone()).expect("runs").result;
        assert_eq!(
            out["stdout"], "20261207T120000Z-marks-1a2b call/inner kept\n",
            "{out}"
        );
        // A process left running is found by its marks, with its group's leader.
        use std::os::unix::process::CommandExt;
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .env(RUN_ID_VAR, "20261207T120000Z-marks-1a2b")
            .env(STEP_ID_VAR, "call/inner")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let leader = start_ticks(pid);
        // The spawn returns once the child has begun its `exec`, which sets the environment
        // that /proc shows a moment later (on a loaded machine, later still): look until it
        // is there.
        let mut found = vec![];
        for _ in 0..500 {
            found = marked_groups("20261207T120000Z-marks-1a2b", "call/inner");
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let other_step = marked_groups("20261207T120000Z-marks-1a2b", "call");
        let other_run = marked_groups("20261207T120000Z-marks-9999", "call/inner");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(leader.is_some());
        assert_eq!(found, [(pid, leader)]);
        assert!(other_step.is_empty(), "{other_step:?}");
        assert!(other_run.is_empty(), "{other_run:?}");
        assert!(marked_groups("20261207T120000Z-marks-1a2b", "call/inner").is_empty());
    }

    #[test]
    fn output_closed_before_the_process_ends_does_not_end_the_wait() {
        // Both streams end first; the exit code still comes from the process's own end.
        let e = run(
            script("echo out; echo err >&2; exec >&- 2>&-; sleep 0.3; exit 4"),
            ctx(None),
        )
        .expect_err("exit 4 is a failure");
        let r = e.result.expect("the failure carries the result");
        assert_eq!(r["exit_code"], 4, "{r}");
        assert_eq!(r["stdout"], "out\n", "{r}");
        assert_eq!(r["stderr"], "err\n", "{r}");
    }

    #[test]
    fn output_held_open_by_a_background_child_is_not_waited_for_past_its_moment() {
        // The leader exits at once; its background child keeps both streams open for 8 s.
        let out = run(script("sleep 8 & echo started"), ctx(None)).expect("exit 0");
        assert_eq!(out.result["exit_code"], 0, "{}", out.result);
        let note = "[output still open after the command exited; not read further]\n";
        assert_eq!(out.result["stdout"], note, "{}", out.result);
        assert_eq!(out.result["stderr"], note, "{}", out.result);
    }

    #[test]
    fn a_timeout_kills_the_group_and_keeps_what_it_printed() {
        let e = run(
            script("echo before; sleep 30"),
            ctx(Some(Duration::from_millis(300))),
        )
        .expect_err("a timeout");
        assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
        let r = e.result.expect("the timeout carries the result");
        assert_eq!(r["stdout"], "before\n", "{r}");
        assert_eq!(r["exit_code"], Value::Null, "{r}");
    }
}
