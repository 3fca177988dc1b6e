//! One process at a time per run: `run` and `resume` hold an exclusive lock (flock) on
//! `<run dir>/lock` for as long as they live. The kernel releases it when the process ends,
//! however it ends (exit, crash, SIGKILL), so a stale lock cannot block a resume. The file
//! names its holder (pid, host, start time) for the message of whoever finds it taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The lock file's name inside a run directory.
pub const FILE_NAME: &str = "lock";

/// Who holds a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, UTC.
    pub since: String,
    /// `run` or `resume`.
    pub command: String,
}

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Takes the run's lock, or says who holds it.
pub fn acquire(run_dir: &Path, holder: &Holder) -> Result<RunLock, String> {
    let path = run_dir.join(FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open the run's lock {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let who = serde_json::from_str::<Holder>(text.trim())
                .ok()
                // The file names the last holder until a new one rewrites it, an instant
                // after taking the lock: a holder of this host that has ended is not the one.
                .filter(|h| h.host != crate::backends::shell::host_name() || alive(h.pid))
                .map(|h| {
                    format!(
                        "`runbook {}` (pid {} on host {}, since {})",
                        h.command, h.pid, h.host, h.since
                    )
                })
                .unwrap_or_else(|| "another process (it is starting)".into());
            return Err(format!(
                "the run is held by {who}: one process at a time runs or resumes a run. Wait for it to end, or stop it, then resume"
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    let text = serde_json::to_string(holder).unwrap_or_default();
    let written = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(format!("{text}\n").as_bytes()));
    if let Err(e) = written {
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(RunLock { _file: file })
}

/// Does process `pid` exist (on this host)?
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_naming_a_holder_that_ended_does_not_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        let mut gone = gone;
        gone.wait().unwrap();
        let me = Holder {
            pid: std::process::id(),
            host: crate::backends::shell::host_name(),
            since: "2026-01-01T00:00:00Z".into(),
            command: "run".into(),
        };
        let _held = acquire(dir.path(), &me).unwrap();
        // The file still names an earlier holder of this host, which has ended: the new
        // holder has the lock and has not rewritten the file yet.
        let ended = Holder { pid, ..me.clone() };
        std::fs::write(
            dir.path().join(FILE_NAME),
            serde_json::to_string(&ended).unwrap(),
        )
        .unwrap();
        let err = acquire(dir.path(), &me).unwrap_err();
        assert!(err.contains("another process (it is starting)"), "{err}");
        assert!(!err.contains(&format!("pid {pid}")), "{err}");
        // Named while it lives.
        std::fs::write(
            dir.path().join(FILE_NAME),
            serde_json::to_string(&me).unwrap(),
        )
        .unwrap();
        let err = acquire(dir.path(), &me).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn a_second_holder_is_told_who_holds_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let h = Holder {
            pid: 4242,
            host: "box".into(),
            since: "2026-01-01T00:00:00Z".into(),
            command: "resume".into(),
        };
        let held = acquire(dir.path(), &h).unwrap();
        let err = acquire(dir.path(), &h).unwrap_err();
        assert!(err.contains("pid 4242 on host box"), "{err}");
        drop(held);
        acquire(dir.path(), &h).unwrap();
    }
}
