//! One error story (README, "Exit codes"): every error a command can end with, one type per
//! layer (`load`, `session`, `report`, the drill command, this command line and its runtime),
//! the exit code of each in one table (`Error::exit_code`), and the one function that prints
//! them (`report`), called once, by `main`. The library returns errors and prints none.
//!
//! A run that started is not an error here: it ends with its outcome (failed 1, aborted 3,
//! needs an answer 4, interrupted 130), which the runner journals with its code
//! (`RunOutcome::exit_code`) and the terminal view shows as the run goes.

use std::io::Write;
use std::path::PathBuf;

use super::drill::DrillError;
use crate::exit;
use crate::load::LoadError;
use crate::report::ReportError;
use crate::session::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path given on the command line (`check`, `list`) does not exist.
    #[error("{} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    /// The async runtime (its threads, its I/O driver, its signal pipe) could not be built;
    /// `fd_limit`: the open-file limit, when it ran out of file descriptors.
    #[error("cannot start the runtime: {why}{}", fd_limit.map(|n| format!("; the open-file limit is {n}: raise it (ulimit -n)")).unwrap_or_default())]
    Runtime {
        why: String,
        fd_limit: Option<libc::rlim_t>,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Drill(#[from] DrillError),
}

impl Error {
    /// The exit code of each error: the one table (README, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoSuchPath(_) => exit::INVALID,
            Error::Runtime { .. } => exit::RUNTIME,
            Error::Load(_) => exit::INVALID,
            Error::Session(e) => match e {
                SessionError::Load(_)
                | SessionError::Invalid(_)
                | SessionError::Secrets(_)
                | SessionError::Identity(_)
                | SessionError::NoRun(_)
                | SessionError::Journal(_)
                | SessionError::NotResumable { .. }
                | SessionError::Changed { .. } => exit::INVALID,
                SessionError::Declined { interrupted: true } => exit::INTERRUPTED,
                SessionError::Declined { interrupted: false } => exit::ABORTED,
                SessionError::JournalCreate { .. }
                | SessionError::JournalReopen { .. }
                | SessionError::DrillJournal(_)
                | SessionError::Lock(_)
                // The run's lock is held by another process (or cannot be taken): the journal
                // cannot be locked, nothing was run.
                | SessionError::Busy { .. } => exit::JOURNAL,
            },
            Error::Report(e) => match e {
                ReportError::Write { .. } => exit::FAILED,
                ReportError::Read { .. }
                | ReportError::NoJournal { .. }
                | ReportError::NotAJournal { .. }
                | ReportError::Template { .. }
                | ReportError::UnknownFormat { .. }
                | ReportError::OverJournal { .. } => exit::INVALID,
            },
            Error::Drill(e) => match e {
                DrillError::Junit { .. } => exit::FAILED,
                DrillError::NoSuchPath(_) | DrillError::NotADrill(_) | DrillError::NoDrills(_) => {
                    exit::INVALID
                }
            },
        }
    }

    /// The file's diagnostics, shown before the message (a runbook or drill with errors).
    fn diagnostics(&self) -> Option<&LoadError> {
        match self {
            Error::Load(e) | Error::Session(SessionError::Load(e)) => Some(e),
            _ => None,
        }
    }

    /// What is printed, each line as `error: <line>`.
    fn lines(&self) -> Vec<String> {
        match self {
            Error::Session(e) => e.lines(),
            other => vec![other.to_string()],
        }
    }
}

/// Prints an error on stderr, sanitised (`eprintln!` is term.rs's): a file's diagnostics,
/// rendered, then each message as `error: ...`. Called once, by `main`.
pub fn report(e: &Error) {
    if let Some(load) = e.diagnostics() {
        let (diagnostics, text) = load.diagnostics();
        let color = crate::term::color();
        // Rendered diagnostics carry miette's colours and sanitise their own text.
        let mut err = std::io::stderr().lock();
        for d in diagnostics {
            let _ = write!(err, "{}", d.render(text, color));
        }
    }
    for line in e.lines() {
        eprintln!("error: {line}");
    }
}
