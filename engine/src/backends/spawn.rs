//! Starting a step's process in a session of its own, without copying the engine.
//!
//! `std`/`tokio` `Command` with a `pre_exec` hook (the only stable way to call `setsid` in the
//! child) must `fork`: the kernel copies the page tables of the whole engine (its binary, heap
//! and runtime threads' stacks), and `exec` then tears them down again. Profiled on a run of
//! 1,000 `/bin/true` steps, that copy and teardown were about a quarter of all CPU time, and
//! made each step cost twice what bash pays. glibc's `posix_spawn` (2.26 and later) starts the
//! child with `clone(CLONE_VM | CLONE_VFORK)`, sharing the parent's memory until `exec`, and
//! can make it lead a new session itself (`POSIX_SPAWN_SETSID`): the same child, with no copy.
//!
//! What the child gets is what `std`'s spawn gives it, plus the session: an empty signal mask,
//! every signal the engine did not ignore at its default action (see [`default_signals`]),
//! SIGPIPE too (Rust ignores it, and ignored signals survive `exec`),
//! the engine's environment with the request's variables on top, standard input from
//! `/dev/null` or a pipe, standard output and error into pipes, and no other descriptor (the
//! engine opens every descriptor close-on-exec). A program without a `/` is looked up in the
//! `PATH` the child will have, as `execvp` does; a file that is not an executable format
//! (`ENOEXEC`, a script without `#!`) runs under `/bin/sh`, as `execvp` does too.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// A process started by [`spawn_session`]: the leader of its own session and process group
/// (its pid is the group id). Dropping it before it was waited for kills it (SIGKILL to the
/// leader, as `kill_on_drop` does) and reaps it in the background, so no zombie is left.
pub struct SessionChild {
    pid: libc::pid_t,
    /// Its start time in clock ticks since boot, when known without `/proc` (see
    /// [`boot_ticks`]).
    start_ticks: Option<u64>,
    /// Readable when the process has exited (`pidfd_open`, Linux 5.3 and later).
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

/// The started process and the parent's ends of its pipes.
pub struct Spawned {
    pub child: SessionChild,
    pub stdin: Option<pipe::Sender>,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

/// What to start.
pub struct SpawnRequest<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    /// Variables set on top of the engine's own environment.
    pub env: &'a [(String, String)],
    pub cwd: Option<&'a Path>,
    /// Give the child a pipe on standard input (otherwise `/dev/null`).
    pub stdin: bool,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument, variable or path holds a NUL byte",
        )
    })
}

/// A pipe whose both ends are close-on-exec: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The engine's own environment, read once: nothing in the engine changes it (no `set_var`),
/// and every step's child starts from it. Each entry is kept with its `NAME=value` string
/// ready for `execve`, so that starting a step copies none of it.
fn engine_environment() -> &'static [(OsString, CString)] {
    static ENV: std::sync::OnceLock<Vec<(OsString, CString)>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                // The OS never hands out a variable holding a NUL byte.
                CString::new(kv).ok().map(|c| (k, c))
            })
            .collect()
    })
}

/// The environment the child gets: the engine's, with the request's variables on top (a
/// request's variable replaces the engine's of the same name). The `NAME=value` strings of
/// the request are built here; the engine's are borrowed.
struct ChildEnv<'a> {
    request: &'a [(String, String)],
    overrides: Vec<CString>,
    /// `PATH` as the child will have it.
    path: Option<OsString>,
}

impl<'a> ChildEnv<'a> {
    fn new(request: &'a [(String, String)]) -> io::Result<ChildEnv<'a>> {
        let overrides = request
            .iter()
            .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let path = request
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsString::from(v))
            .or_else(|| {
                engine_environment()
                    .iter()
                    .find(|(k, _)| k.as_os_str() == "PATH")
                    .map(|(_, kv)| OsStr::from_bytes(&kv.as_bytes()[5..]).to_os_string())
            });
        Ok(ChildEnv {
            request,
            overrides,
            path,
        })
    }

    /// The `envp` array (without its terminating null pointer).
    fn pointers(&self) -> Vec<*mut libc::c_char> {
        let mut p: Vec<*mut libc::c_char> = engine_environment()
            .iter()
            .filter(|(k, _)| {
                !self
                    .request
                    .iter()
                    .any(|(o, _)| OsStr::new(o) == k.as_os_str())
            })
            .map(|(_, kv)| kv.as_ptr() as *mut _)
            .collect();
        p.extend(self.overrides.iter().map(|c| c.as_ptr() as *mut _));
        p
    }
}

/// The file `execvp` would run for `program`: itself when it holds a `/`, else the first
/// executable file named so in `PATH` (an empty entry is the working directory). `None` when
/// there is none.
fn resolve(program: &str, path: Option<&OsStr>, cwd: Option<&Path>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = path
        .map(|p| p.to_os_string())
        .unwrap_or_else(|| "/bin:/usr/bin".into());
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir = Path::new(OsStr::from_bytes(dir));
        let candidate = if dir.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            dir.join(program)
        };
        let on_disk = match (candidate.is_relative(), cwd) {
            (true, Some(c)) => c.join(&candidate),
            _ => candidate.clone(),
        };
        let Ok(c) = cstring(on_disk.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: `c` is a valid NUL-terminated path.
        let executable = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
        if executable && on_disk.is_file() {
            return Some(candidate);
        }
    }
    None
}

/// Owns the attribute and file-action objects for one `posix_spawn` call.
struct Attrs {
    attr: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

impl Attrs {
    fn new() -> io::Result<Box<Attrs>> {
        // SAFETY: zeroed storage is initialised by the two init calls before any other use;
        // Drop destroys both (they are only created together).
        unsafe {
            let mut a: Box<Attrs> = Box::new(std::mem::zeroed());
            check(libc::posix_spawnattr_init(&mut a.attr))?;
            if let Err(e) = check(libc::posix_spawn_file_actions_init(&mut a.actions)) {
                libc::posix_spawnattr_destroy(&mut a.attr);
                std::mem::forget(a);
                return Err(e);
            }
            Ok(a)
        }
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `new`.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

/// posix_spawn's functions return the error number instead of setting `errno`.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// The signals the child sets to their default action (`POSIX_SPAWN_SETSIGDEF`): every signal
/// but those the engine ignored when it first spawned (ignored signals survive `exec`, as
/// POSIX says: a runner started under `nohup` passes that on), and SIGPIPE always (Rust
/// ignores it). glibc's child must otherwise ask for each signal outside this set whether it
/// is ignored before setting it: 64 more system calls a step, about 15 µs, while the engine
/// waits (the child shares its memory until `exec`). Asked once: the engine never ignores a
/// signal after it starts (its handlers, for SIGINT, SIGTERM and SIGHUP, are set to the default
/// action by this set). A signal outside it is still asked about by glibc, as before.
fn default_signals() -> &'static libc::sigset_t {
    static SET: std::sync::OnceLock<libc::sigset_t> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        // SAFETY: the set is initialised by sigfillset before any other use; sigaction with a
        // null new action only reads the current one into `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            // glibc leaves its own internal signals out of a filled set.
            libc::sigfillset(&mut set);
            libc::sigdelset(&mut set, libc::SIGKILL);
            libc::sigdelset(&mut set, libc::SIGSTOP);
            for sig in 1..=libc::SIGRTMAX() {
                if sig == libc::SIGPIPE || libc::sigismember(&set, sig) != 1 {
                    continue;
                }
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
                {
                    libc::sigdelset(&mut set, sig);
                }
            }
            set
        }
    })
}

/// Starts `req` as the leader of a new session, with its output piped back.
pub fn spawn_session(req: &SpawnRequest<'_>) -> io::Result<Spawned> {
    let env = ChildEnv::new(req.env)?;
    let Some(file) = resolve(req.program, env.path.as_deref(), req.cwd) else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };

    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin = if req.stdin { Some(pipe()?) } else { None };

    let mut a = Attrs::new()?;
    // SAFETY: every pointer passed below is valid for the call (the CStrings outlive it) and
    // the attribute objects were initialised by `Attrs::new`.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        check(libc::posix_spawnattr_setsigmask(&mut a.attr, &mask))?;
        check(libc::posix_spawnattr_setsigdefault(
            &mut a.attr,
            default_signals(),
        ))?;
        let flags = libc::POSIX_SPAWN_SETSID
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short;
        check(libc::posix_spawnattr_setflags(&mut a.attr, flags))?;

        match &stdin {
            Some((r, _)) => check(libc::posix_spawn_file_actions_adddup2(
                &mut a.actions,
                r.as_raw_fd(),
                0,
            ))?,
            None => {
                let null = c"/dev/null";
                check(libc::posix_spawn_file_actions_addopen(
                    &mut a.actions,
                    0,
                    null.as_ptr(),
                    libc::O_RDONLY,
                    0,
                ))?
            }
        }
        check(libc::posix_spawn_file_actions_adddup2(
            &mut a.actions,
            out_w.as_raw_fd(),
            1,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(
            &mut a.actions,
            err_w.as_raw_fd(),
            2,
        ))?;
        if let Some(cwd) = req.cwd {
            let c = cstring(cwd.as_os_str().as_bytes())?;
            check(libc::posix_spawn_file_actions_addchdir_np(
                &mut a.actions,
                c.as_ptr(),
            ))?;
        }
    }

    let envp = env.pointers();
    let file_c = cstring(file.as_os_str().as_bytes())?;
    let mut argv: Vec<CString> = vec![cstring(req.program.as_bytes())?];
    for arg in req.args {
        argv.push(cstring(arg.as_bytes())?);
    }
    let (pid, start_ticks) = match posix_spawn(&a, &file_c, &argv, &envp) {
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            // Not an executable format: run it as a shell script, as execvp does.
            let mut sh_argv = vec![cstring(b"/bin/sh")?, file_c.clone()];
            sh_argv.extend(argv.into_iter().skip(1));
            posix_spawn(&a, c"/bin/sh", &sh_argv, &envp)?
        }
        other => other?,
    };
    drop(a);
    // The child's ends now live in the child only.
    drop((out_w, err_w));
    let mut child = SessionChild::new(pid);
    child.start_ticks = start_ticks;
    // The parent's ends, non-blocking, on the runtime's reactor.
    let stdin = stdin
        .map(|(r, w)| {
            drop(r);
            pipe::Sender::from_owned_fd(w)
        })
        .transpose()?;
    Ok(Spawned {
        child,
        stdin,
        stdout: receiver(out_r)?,
        stderr: receiver(err_r)?,
    })
}

/// The read end of a pipe made by [`pipe`], non-blocking, on the runtime's reactor. A fresh
/// pipe's end has no status flag but its access mode, so setting `O_NONBLOCK` needs no read
/// of the flags first, and tokio need not check what it is given.
fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// Starts the child; its pid, and its start time in clock ticks when [`boot_ticks`] could
/// tell it without reading `/proc`.
fn posix_spawn(
    a: &Attrs,
    file: &std::ffi::CStr,
    argv: &[CString],
    envp: &[*mut libc::c_char],
) -> io::Result<(libc::pid_t, Option<u64>)> {
    let mut argv_p: Vec<*mut libc::c_char> = argv.iter().map(|s| s.as_ptr() as *mut _).collect();
    argv_p.push(std::ptr::null_mut());
    let mut envp_p: Vec<*mut libc::c_char> = envp.to_vec();
    envp_p.push(std::ptr::null_mut());
    let mut pid: libc::pid_t = 0;
    let before = boot_ticks();
    // SAFETY: all pointers are valid and NUL-terminated for the duration of the call; the
    // arrays end with a null pointer; the attribute objects are initialised.
    check(unsafe {
        libc::posix_spawn(
            &mut pid,
            file.as_ptr(),
            &a.actions,
            &a.attr,
            argv_p.as_ptr(),
            envp_p.as_ptr(),
        )
    })?;
    let after = boot_ticks();
    let start_ticks = match (before, after) {
        (Some(b), Some(a)) if a == b => Some(b),
        _ => None,
    };
    Ok((pid, start_ticks))
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22).
pub fn start_ticks(pid: u32) -> Option<u64> {
    // One read: the file is generated whole at the first read and is far shorter than this.
    use std::io::Read as _;
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read(&mut buf)
        .ok()?;
    let stat = &buf[..n];
    // The command name (field 2) may hold spaces, parentheses and any byte: fields follow the
    // last `)`.
    let rest = std::str::from_utf8(&stat[stat.iter().rposition(|b| *b == b')')? + 1..]).ok()?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `CLOCK_BOOTTIME` in the clock ticks `/proc/<pid>/stat` counts a process's start time in
/// (`sysconf(_SC_CLK_TCK)`, 100 a second), computed as the kernel does (`nsec_to_clock_t`).
///
/// The kernel stamps a child's start time with the same clock while it creates it, inside
/// `posix_spawn`; when the clock reads the same tick before and after the call, that tick is
/// the child's start time, which spares reading `/proc/<pid>/stat` while the child is being
/// loaded (that read takes the child's memory-map lock, and made every step wait for it).
/// A tick boundary falls inside the call about once in a hundred steps: then the caller reads
/// `/proc` as before.
fn boot_ticks() -> Option<u64> {
    static HZ: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    // SAFETY: sysconf reads a constant of the process.
    let hz = *HZ.get_or_init(|| unsafe { libc::sysconf(libc::_SC_CLK_TCK) });
    if hz <= 0 || 1_000_000_000 % hz != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    Some(ns / (1_000_000_000 / hz as u64))
}

impl SessionChild {
    fn new(pid: libc::pid_t) -> Self {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The
        // pid is our unreaped child: it cannot have been reused.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        let pidfd = (fd >= 0)
            // SAFETY: the syscall returned a new descriptor that nothing else owns.
            .then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
            .filter(|_| in_runtime)
            .and_then(|fd| {
                // pidfd_open always makes its descriptor close-on-exec.
                // SAFETY: the AsyncFd owns the OwnedFd, which keeps the descriptor open and
                // returns the same number until it is dropped with the AsyncFd.
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
            });
        SessionChild {
            pid,
            start_ticks: None,
            pidfd,
            status: None,
        }
    }

    /// The process id (also its process group and session id).
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Its start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`): as known at
    /// its start without reading `/proc` (see [`boot_ticks`]), else read there.
    pub fn start_ticks(&self) -> Option<u64> {
        self.start_ticks.or_else(|| start_ticks(self.id()))
    }

    /// Reaps the process if it has exited.
    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut raw = 0;
        // SAFETY: waitpid on our own child, with a valid status pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) };
        match r {
            0 => Ok(None),
            -1 => Err(io::Error::last_os_error()),
            _ => {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                Ok(Some(s))
            }
        }
    }

    /// Waits for the process to exit. Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.try_reap()? {
                return Ok(s);
            }
            match &self.pidfd {
                Some(fd) => {
                    let mut ready = fd.readable().await?;
                    ready.clear_ready();
                }
                // No pidfd (a kernel before 5.3): look again shortly.
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

impl Drop for SessionChild {
    fn drop(&mut self) {
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        // SAFETY: our own unreaped child: the pid cannot belong to another process.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let pid = self.pid;
        // Reap it once it is gone, without holding anything up.
        std::thread::spawn(move || {
            let mut raw = 0;
            // SAFETY: blocking waitpid on our own child.
            unsafe { libc::waitpid(pid, &mut raw, 0) };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn run(req: SpawnRequest<'_>) -> (ExitStatus, String, String, u32) {
        let mut s = spawn_session(&req).unwrap();
        let pid = s.child.id();
        let (mut out, mut err) = (String::new(), String::new());
        s.stdout.read_to_string(&mut out).await.unwrap();
        s.stderr.read_to_string(&mut err).await.unwrap();
        (s.child.wait().await.unwrap(), out, err, pid)
    }

    #[test]
    fn the_child_leads_its_own_session_with_the_requested_environment() {
        rt().block_on(async {
            let args: Vec<String> = vec![
                "-c".into(),
                "ps -o sid= -p $$; echo \"$RB_SPAWN_TEST\"; pwd; echo oops >&2; exit 3".into(),
            ];
            let env = vec![("RB_SPAWN_TEST".to_string(), "it is set".to_string())];
            let (status, out, err, pid) = run(SpawnRequest {
                program: "sh",
                args: &args,
                env: &env,
                cwd: Some(Path::new("/tmp")),
                stdin: false,
            })
            .await;
            assert_eq!(status.code(), Some(3));
            let lines: Vec<&str> = out.lines().map(str::trim).collect();
            assert_eq!(
                lines,
                [pid.to_string().as_str(), "it is set", "/tmp"],
                "{out}"
            );
            assert_eq!(err, "oops\n");
        });
    }

    #[test]
    fn a_missing_program_is_not_found_and_a_script_without_shebang_runs_under_sh() {
        rt().block_on(async {
            let e = spawn_session(&SpawnRequest {
                program: "surely-no-such-program-here",
                args: &[],
                env: &[],
                cwd: None,
                stdin: false,
            })
            .err()
            .unwrap();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);

            let dir = std::env::temp_dir().join(format!("rb-spawn-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let script = dir.join("plain");
            std::fs::write(&script, "echo from a plain script \"$1\"\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            let (status, out, _, _) = run(SpawnRequest {
                program: script.to_str().unwrap(),
                args: &["arg".to_string()],
                env: &[],
                cwd: None,
                stdin: false,
            })
            .await;
            std::fs::remove_dir_all(&dir).unwrap();
            assert!(status.success());
            assert_eq!(out, "from a plain script arg\n");
        });
    }

    #[test]
    fn a_start_time_known_without_proc_is_the_one_proc_gives() {
        rt().block_on(async {
            let args = vec!["5".to_string()];
            let mut known = 0;
            for _ in 0..40 {
                let mut s = spawn_session(&SpawnRequest {
                    program: "sleep",
                    args: &args,
                    env: &[],
                    cwd: None,
                    stdin: false,
                })
                .unwrap();
                let pid = s.child.id();
                let from_proc = start_ticks(pid);
                if let Some(t) = s.child.start_ticks {
                    known += 1;
                    assert_eq!(Some(t), from_proc, "pid {pid}");
                }
                // SAFETY: our own child.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let _ = s.child.wait().await;
            }
            // A tick boundary inside posix_spawn is rare: most starts are known.
            assert!(known > 0, "no start time was known without /proc");
        });
    }

    #[test]
    fn the_requests_variables_replace_the_engines_and_path_is_the_childs() {
        rt().block_on(async {
            // HOME is the engine's; the request replaces it, adds one, and gives a PATH in
            // which `sh` is found.
            let args: Vec<String> = vec!["-c".into(), "echo \"$HOME|$RB_X|$PATH\"".into()];
            let env = vec![
                ("HOME".to_string(), "/nowhere".to_string()),
                ("RB_X".to_string(), "x=1".to_string()),
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ];
            let (status, out, _, _) = run(SpawnRequest {
                program: "sh",
                args: &args,
                env: &env,
                cwd: None,
                stdin: false,
            })
            .await;
            assert!(status.success());
            assert_eq!(out, "/nowhere|x=1|/usr/bin:/bin\n");
            let unset = vec![("PATH".to_string(), "/surely/not/here".to_string())];
            let e = spawn_session(&SpawnRequest {
                program: "sh",
                args: &[],
                env: &unset,
                cwd: None,
                stdin: false,
            })
            .err()
            .expect("sh is not in the child's PATH");
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
        });
    }

    #[test]
    fn sigpipe_is_back_to_its_default_in_the_child() {
        rt().block_on(async {
            // `yes` dies of SIGPIPE (status 128 + 13) only if the signal is not ignored;
            // ignored, it gets EPIPE and exits 1.
            let args: Vec<String> = vec![
                "-c".into(),
                "yes | head -n 1 >/dev/null; echo ${PIPESTATUS[0]}".into(),
            ];
            let (status, out, _, _) = run(SpawnRequest {
                program: "bash",
                args: &args,
                env: &[],
                cwd: None,
                stdin: false,
            })
            .await;
            assert!(status.success());
            assert_eq!(out.trim(), "141");
        });
    }
}
